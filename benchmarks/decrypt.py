"""Decryption: the sector loop against its physical ceiling, end
to end against a plain restore, and verify --key against the RSA bound.

Every comparison is a ratio taken in one run, variants interleaved
round-robin, best of N with the spread (max - min) / min:
  - the sector loop alone (benchmarks/sector_kernel.c, cache-resident, as
    `openssl speed` measures OpenSSL) against that ceiling;
  - in memory, one core: a raw AES-256 stream decrypted to a null sink, on
    the AES-NI path and on the path without it (OpenSSL ECB through
    `cryptography` + the CBC step in C), against the ceiling
    `openssl speed -evp aes-256-cbc -decrypt -bytes 512` and against what a
    user would otherwise write (one `cryptography` CBC decryptor per sector);
  - the same in 2 threads at once (aggregate);
  - 3DES on both paths (the ECB pass is OpenSSL's);
  - end to end: `decrypt` of a raw stream file to a file against `restore` of
    the same stream to the same file system (tmpfs and the disk);
  - verify --key of 10,000 small streams ($EFS only) with 1 and all
    processes, against the time the RSA decryptions alone take on all cores;
  - the command line end to end, each command a process of its own as a user
    runs it (start-up, key file, imports included): `efsfast decrypt --key`
    against `efsfast restore` of the same 256 MiB stream (tmpfs and disk),
    and of a 4 KiB stream (what start-up, imports and the key file cost),
    and `efsfast decrypt-tree --key` against `efsfast restore-tree` of the
    same backup set of 1,000 small files (tmpfs), with the RSA-2048
    decryptions those files need alone, on one thread, as their bound.  The
    load average is recorded before and after each series, and a series
    taken above 0.3 per core is marked noisy.

    python benchmarks/decrypt.py [--quick] [--rounds N] [--out benchmarks/results]
    python benchmarks/decrypt.py --cli-only [--size-mib 256] [--files 1000]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import efsfast
from efsfast import _decrypt, raw
from efsfast.crypto import Key, fek
from efsfast.crypto.decrypt import run as run_decrypt

MIB = 1 << 20
STARTUP_SIZE = 4096     # the stream of the start-up rows: its streaming costs nothing
# rows timed by the wall clock (aggregate throughput of threads); the others by CPU time
WALL_CLOCK = {"efsfast AES-NI, 1 thread (wall clock)", "efsfast AES-NI, 2 threads (aggregate)"}


def make_key():
    from cryptography.hazmat.primitives.asymmetric import rsa
    return Key("bench", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def make_stream(key: Key, size: int, algorithm=fek.Algorithm.CALG_AES_256,
                thumbprint: bytes = b"") -> bytes:
    """A raw stream whose FEK the key opens and whose ciphertext is random
    (decrypting it costs exactly what decrypting real ciphertext costs);
    ``thumbprint``: its certificate's, where the key comes with one."""
    blob = fek.fek_blob(algorithm, os.urandom(fek.KEY_LENGTH[algorithm]))
    user = raw.User(sid=None, display_name="bench", thumbprint=thumbprint or os.urandom(20),
                    container=None,
                    provider=None, encrypted_fek=fek.wrap(key.private_key.public_key(), blob))
    cipher = os.urandom(min(size, 64 * MIB))
    cipher = (cipher * (size // len(cipher) + 1))[:(size + 511) & ~511]
    return raw.build_raw(raw.metadata_from_users([user]),
                         [raw.DataStream(raw.UNNAMED_STREAM, size, cipher)])


def null_decrypt(stream, key, force_ecb=False):
    return lambda: run_decrypt(stream, [key], lambda n, f: _decrypt.SINK_NULL,
                               force_ecb=force_ecb)


def per_sector_python(stream: bytes, key: Key):
    """What one writes without efsfast: a cryptography CBC decryptor per sector."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from efsfast.crypto.verify import read_metadata
    fk = fek.unwrap(read_metadata(stream), [key])
    aes = algorithms.AES(bytes(fk.take()))
    data = memoryview(stream)      # every 512 bytes of it: the same work as the ciphertext

    def go():
        n = len(data) - len(data) % 512
        for o in range(0, n, 512):
            iv = _decrypt.sector_iv(_decrypt.AES256, o)
            Cipher(aes, modes.CBC(iv)).decryptor().update(data[o:o + 512])
    return go


def openssl_ceiling() -> float:
    """GB/s of `openssl speed -evp aes-256-cbc -decrypt -bytes 512` (1 s)."""
    out = subprocess.run(["openssl", "speed", "-evp", "aes-256-cbc", "-decrypt", "-bytes", "512",
                          "-seconds", "1"], capture_output=True, text=True).stdout
    m = re.search(r"aes-256-cbc\s+([\d.]+)k", out, re.I)
    return float(m.group(1)) * 1000 / 1e9 if m else float("nan")


def build_kernel(workdir: str):
    """benchmarks/sector_kernel.c compiled with efs_sector.c, or None."""
    here = os.path.dirname(os.path.abspath(__file__))
    c_dir = os.path.join(here, "..", "src", "efsfast", "_c")
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    exe = os.path.join(workdir, "sector_kernel")
    if cc is None or not os.path.isdir(c_dir):
        return None
    r = subprocess.run([cc, "-O2", "-I", c_dir, os.path.join(here, "sector_kernel.c"),
                        os.path.join(c_dir, "efs_sector.c"), "-o", exe], capture_output=True)
    return exe if r.returncode == 0 else None


def kernel_rate(exe) -> float:
    """GB/s of efsfast's sector loop alone (cache-resident, 1 s, 1 core)."""
    if exe is None:
        return float("nan")
    out = subprocess.run([exe, "1"], capture_output=True, text=True).stdout.split()
    return float(out[0]) if out and out[0] != "no-aesni" else float("nan")


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def cpu_timed(fn) -> float:
    """CPU time of this process: what `openssl speed` divides by, so a shared
    machine's waiting for a core does not count against either side."""
    t = time.process_time()
    fn()
    return time.process_time() - t


def in_threads(fn, n: int):
    def go():
        ts = [threading.Thread(target=fn) for _ in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    return go


def measure(fns: dict, rounds: int, clock=timed) -> dict:
    """Best time and spread per variant, interleaved round-robin."""
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            times[k].append(clock(fn))
    return {k: (min(v), (max(v) - min(v)) / min(v)) for k, v in times.items()}


def end_to_end(key: Key, size: int, base: str, rounds: int) -> dict:
    work = tempfile.mkdtemp(prefix="efsfast-bench-dec-", dir=base)
    try:
        src = os.path.join(work, "src.efsraw")
        with open(src, "wb") as f:
            f.write(make_stream(key, size))
        counter = iter(range(10 ** 6))

        def dec():
            efsfast.decrypt(src, os.path.join(work, f"p{next(counter)}"), [key])

        def res():
            efsfast.restore(os.path.join(work, f"r{next(counter)}"), src)

        def clean():
            for n in os.listdir(work):
                if n != "src.efsraw":
                    os.unlink(os.path.join(work, n))
        times = {"restore (ciphertext, efs_raw layout)": [], "decrypt (plaintext)": []}
        for _ in range(rounds):
            for k, fn in (("restore (ciphertext, efs_raw layout)", res),
                          ("decrypt (plaintext)", dec)):
                clean()
                times[k].append(timed(fn))
        clean()
        return {k: (min(v), (max(v) - min(v)) / min(v)) for k, v in times.items()}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def verify_many(key: Key, files: int, base: str, rounds: int) -> dict:
    from cryptography.hazmat.primitives.asymmetric import padding
    from efsfast.crypto.verify import check_many, read_metadata
    work = tempfile.mkdtemp(prefix="efsfast-bench-verify-", dir=base)
    try:
        stream = make_stream(key, 4096)
        paths = []
        for i in range(files):
            d = os.path.join(work, f"d{i % 16}")
            os.makedirs(d, exist_ok=True)
            p = os.path.join(d, f"f{i:05d}.efsraw")
            with open(p, "wb") as f:
                f.write(stream)
            paths.append(p)
        enc = fek.entries(read_metadata(stream))[0].encrypted_fek[::-1]
        cores = os.cpu_count() or 1

        def rsa_only():
            for _ in range(files // cores):
                key.private_key.decrypt(enc, padding.PKCS1v15())

        def all_ok(workers):
            def go():
                proofs = check_many(paths, [key], workers=workers)
                assert all(p.ok for p in proofs)
            return go
        return measure({"RSA decryptions alone, 1/cores of them (the bound)": rsa_only,
                        "verify --key, 1 process": all_ok(1),
                        f"verify --key, {cores} processes": all_ok(cores)}, rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---- the command line end to end (each run a process of its own)

NOISY_LOAD_PER_CORE = 0.3


def cli_env() -> dict:
    """The environment the commands run in: bytecode caches written and
    used, as after a pip install (some shells set PYTHONDONTWRITEBYTECODE,
    which would charge every run the compilation of each module)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def efsfast_cli(*args: str):
    """A callable running ``efsfast ARGS`` (output to DEVNULL, exit 0 checked)."""
    cmd = [sys.executable, "-m", "efsfast", *map(str, args)]
    env = cli_env()

    def go():
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.decode()}")
    return go


def load_per_core() -> float:
    return os.getloadavg()[0] / (os.cpu_count() or 1)


def measure_cli(variants: dict, clean, rounds: int) -> dict:
    """Best wall time and spread per variant (interleaved round-robin, each
    run after ``clean()`` and one untimed warm-up), with the load before
    and after the series."""
    for fn in variants.values():      # warm-up: page cache, bytecode caches
        clean()
        fn()
    load = [load_per_core()]
    times = {k: [] for k in variants}
    for _ in range(rounds):
        for k, fn in variants.items():
            clean()
            times[k].append(timed(fn))
    clean()
    load.append(load_per_core())
    return {"times": {k: (min(v), (max(v) - min(v)) / min(v)) for k, v in times.items()},
            "load_per_core": load, "noisy": max(load) > NOISY_LOAD_PER_CORE}


def write_key_files(key: Key, work: str) -> dict:
    """The key as a user has it: an unencrypted PEM and a password-protected
    PFX with its certificate (as Windows exports it)."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12
    k = key.private_key
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "bench")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(k.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=3650)).sign(k, hashes.SHA256()))
    paths = {"pem": os.path.join(work, "key.pem"), "pfx": os.path.join(work, "key.pfx"),
             "pw": os.path.join(work, "key.pw"),
             "thumbprint": hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).digest()}
    with open(paths["pem"], "wb") as f:
        f.write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))
    with open(paths["pfx"], "wb") as f:
        f.write(pkcs12.serialize_key_and_certificates(
            b"bench", k, cert, None, serialization.BestAvailableEncryption(b"bench pw")))
    with open(paths["pw"], "w") as f:
        f.write("bench pw\n")
    return paths


def cli_stream(key: Key, size: int, base, rounds: int) -> dict:
    """`efsfast decrypt --key` (PEM; PFX with a password file) against
    `efsfast restore` of the same raw stream file, on the file system of
    ``base``."""
    work = tempfile.mkdtemp(prefix="efsfast-bench-cli-", dir=base)
    try:
        keys = write_key_files(key, work)
        src = os.path.join(work, "src.efsraw")
        with open(src, "wb") as f:
            f.write(make_stream(key, size, thumbprint=keys["thumbprint"]))
        out = os.path.join(work, "out")

        def clean():
            for p in (out, out + "_"):
                if os.path.lexists(p):
                    os.unlink(p)
        return measure_cli({
            "efsfast restore SRC DEST": efsfast_cli("restore", src, out),
            "efsfast decrypt --key KEY.pem SRC DEST": efsfast_cli(
                "decrypt", "--key", keys["pem"], src, out),
            "efsfast decrypt --key KEY.pfx --password-file PW SRC DEST": efsfast_cli(
                "decrypt", "--key", keys["pfx"], "--password-file", keys["pw"], src, out),
        }, clean, rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def make_set(key: Key, files: int, work: str) -> str:
    """A backup set (backup-tree of an efs_raw tree on tmpfs) of ``files``
    files of 12-16 KB in 10 folders, encrypted for ``key``."""
    import random
    from efsfast.crypto import encrypt
    rnd = random.Random(2026)
    tree = os.path.join(work, "tree")
    for i in range(files):
        d = os.path.join(tree, f"d{i % 10}")
        os.makedirs(d, exist_ok=True)
        efsfast.restore(os.path.join(d, f"f{i:05d}.bin"),
                        encrypt(rnd.randbytes(rnd.randint(12_000, 16_000)), [key]))
    set_dir = os.path.join(work, "set")
    efsfast_cli("backup-tree", tree, set_dir, "--quiet")()
    shutil.rmtree(tree)
    return set_dir


def cli_trees(key: Key, files: int, base, rounds: int) -> dict:
    """`efsfast decrypt-tree --key` against `efsfast restore-tree` of the
    same set, and the RSA decryptions those files need, alone (one thread:
    RSA in `cryptography` holds the GIL)."""
    from cryptography.hazmat.primitives.asymmetric import padding
    from efsfast.crypto.verify import read_metadata
    work = tempfile.mkdtemp(prefix="efsfast-bench-clitree-", dir=base)
    try:
        keys = write_key_files(key, work)
        set_dir = make_set(key, files, work)
        out = os.path.join(work, "out")
        first = os.path.join(set_dir, "d0", "f00000.bin.efsraw")
        enc = fek.entries(read_metadata(first))[0].encrypted_fek[::-1]

        def rsa_alone():
            for _ in range(files):
                key.private_key.decrypt(enc, padding.PKCS1v15())

        def clean():
            shutil.rmtree(out, ignore_errors=True)
        r = measure_cli({
            "efsfast restore-tree SET DEST": efsfast_cli("restore-tree", set_dir, out, "--quiet"),
            "efsfast decrypt-tree --key KEY.pem SET DEST": efsfast_cli(
                "decrypt-tree", "--key", keys["pem"], set_dir, out, "--quiet"),
        }, clean, rounds)
        r["rsa_alone_s"] = min(timed(rsa_alone) for _ in range(rounds))
        return r
    finally:
        shutil.rmtree(work, ignore_errors=True)


def cli_section(stream: dict, trees: dict, size: int, files: int) -> list:
    lines = ["", f"## Command line end to end: {size // MIB} MiB stream; a set of {files} "
             "small files", "",
             "Each command a process of its own (start-up, imports and key file included), "
             "variants interleaved, best of the rounds; load average per core before → after.",
             "", "| file system | command | s | spread | × restore | load/core |",
             "| --- | --- | --- | --- | --- | --- |"]
    for label, r in list(stream.items()) + [("tmpfs (/dev/shm), set of "
                                             f"{files} files", trees)] if trees else             list(stream.items()):
        base = next(iter(r["times"].values()))[0]
        load = " → ".join(f"{x:.2f}" for x in r["load_per_core"]) + (
            " **noisy**" if r["noisy"] else "")
        for k, (t, spread) in r["times"].items():
            lines.append(f"| {label} | `{k}` | {t:.3f} | {spread:.0%} | {t / base:.2f}× | {load} |")
        if "rsa_alone_s" in r:
            lines.append(f"| {label} | RSA-2048 decryptions alone ({files}, one thread: "
                         f"`cryptography` holds the GIL) | {r['rsa_alone_s']:.3f} | — | "
                         f"{r['rsa_alone_s'] / base:.2f}× | — |")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    ap.add_argument("--cli-only", action="store_true",
                    help="only the command-line comparisons (decrypt vs restore, "
                         "decrypt-tree vs restore-tree)")
    ap.add_argument("--size-mib", type=int, default=None,
                    help="stream size for the command-line comparison (default 256)")
    ap.add_argument("--files", type=int, default=1000,
                    help="files in the set of the tree comparison (default 1000)")
    args = ap.parse_args(argv)
    size = 32 * MIB if args.quick else 256 * MIB
    files = 1000 if args.quick else 10_000
    key = make_key()
    base_shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    cli_size = (args.size_mib * MIB) if args.size_mib else size
    cli_stream_r = {}
    for label, base in (("tmpfs (/dev/shm)", base_shm),
                        (f"disk ({tempfile.gettempdir()})", None)):
        if base is None and label.startswith("tmpfs"):
            continue
        cli_stream_r[label] = cli_stream(key, cli_size, base, args.rounds)
        # the same commands on a 4 KiB stream: what start-up, imports and the
        # key file cost, apart from the streaming (more rounds: it is short)
        cli_stream_r[f"{label}, 4 KiB stream (start-up and key)"] = cli_stream(
            key, STARTUP_SIZE, base, 2 * args.rounds)
    # the set's objects are restored into an efs_raw tree first: tmpfs has the xattrs
    cli_tree_r = cli_trees(key, args.files, base_shm, args.rounds) if base_shm else {}
    cli_lines = cli_section(cli_stream_r, cli_tree_r, cli_size, args.files)
    cli_json = {"stream_size": cli_size, "tree_files": args.files,
                "stream": cli_stream_r, "tree": cli_tree_r}
    if args.cli_only:
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        lines = ["# Decryption on the command line", "",
                 f"{stamp} · {platform.platform()} · {os.cpu_count()} CPUs · AES-NI path: "
                 f"{_decrypt.have_aesni()} · best of {args.rounds}"] + cli_lines
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "decrypt-cli.md"), "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(os.path.join(args.out, "decrypt-cli.json"), "w") as f:
            json.dump({"when": stamp, "cpus": os.cpu_count()} | cli_json, f, indent=2)
        print("\n".join(lines))
        return 0
    aes = make_stream(key, size)
    des = make_stream(key, size // 16, fek.Algorithm.CALG_3DES)
    small = make_stream(key, size // 32)
    fns = {
        "openssl speed (ceiling, 1 core)": None,
        "efsfast AES-NI, 1 thread": null_decrypt(aes, key),
        "efsfast AES-NI, 1 thread (wall clock)": null_decrypt(aes, key),
        "efsfast AES-NI, 2 threads (aggregate)": in_threads(null_decrypt(aes, key), 2),
        "efsfast ECB pass + C unchain (no AES-NI path), 1 thread": null_decrypt(aes, key, True),
        "cryptography, one CBC decryptor per sector (Python)": per_sector_python(small, key),
    }
    sizes = {k: size for k in fns}
    sizes["efsfast AES-NI, 2 threads (aggregate)"] = 2 * size
    sizes["cryptography, one CBC decryptor per sector (Python)"] = len(small)
    times = {k: [] for k in fns}
    ceiling, kernel = [], []
    kdir = tempfile.mkdtemp(prefix="efsfast-bench-kernel-")
    exe = build_kernel(kdir)
    for _ in range(args.rounds):
        ceiling.append(openssl_ceiling())
        kernel.append(kernel_rate(exe))
        for k, fn in fns.items():
            if fn is not None:
                times[k].append((timed if k in WALL_CLOCK else cpu_timed)(fn))
    shutil.rmtree(kdir, ignore_errors=True)
    ceil = max(ceiling)
    mem_rows = [("openssl speed (ceiling, 1 core)", ceil, (ceil - min(ceiling)) / min(ceiling)),
                ("efsfast sector loop alone (sector_kernel.c, cache-resident, 1 core)",
                 max(kernel), (max(kernel) - min(kernel)) / min(kernel))]
    for k, v in times.items():
        if v:
            mem_rows.append((k, sizes[k] / min(v) / 1e9, (max(v) - min(v)) / min(v)))
    des_r = measure({"3DES, ECB pass + C unchain": null_decrypt(des, key)}, args.rounds,
                    cpu_timed)
    e2e = {}
    for label, base in (("tmpfs (/dev/shm)", base_shm), ("disk (" + tempfile.gettempdir() + ")",
                                                           None)):
        if label.startswith("tmpfs") and base is None:
            continue
        e2e[label] = end_to_end(key, size, base, args.rounds)
    ver = verify_many(key, files, base_shm, max(3, args.rounds // 2))

    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = ["# Decryption", "",
             f"{stamp} · {platform.platform()} · {platform.processor() or platform.machine()} · "
             f"Python {platform.python_version()} · {os.cpu_count()} CPUs (shared with other "
             f"jobs) · AES-NI path: {_decrypt.have_aesni()} · best of {args.rounds}, variants "
             "interleaved · single-thread rows divide by CPU time, as `openssl speed` does; "
             "the thread rows by the wall clock", "",
             f"## In memory: {size // MIB} MiB raw AES-256 stream to a null sink", "",
             "| variant | GB/s | spread | × ceiling |", "| --- | --- | --- | --- |"]
    for k, rate, spread in mem_rows:
        lines.append(f"| {k} | {rate:.2f} | {spread:.0%} | {rate / ceil:.2f} |")
    (dt, dspread), = des_r.values()
    lines.append(f"| 3DES ({len(des) // MIB} MiB), ECB pass + C unchain | "
                 f"{len(des) / dt / 1e9:.2f} | {dspread:.0%} | — |")
    lines += ["", f"## End to end: {size // MIB} MiB raw stream file → file on the same file system",
              "", "| file system | restore (s) | decrypt (s) | decrypt / restore | spreads |",
              "| --- | --- | --- | --- | --- |"]
    for label, r in e2e.items():
        (rt, rs), (dt2, ds) = r.values()
        lines.append(f"| {label} | {rt:.3f} | {dt2:.3f} | {dt2 / rt:.2f}× | {rs:.0%} / {ds:.0%} |")
    lines += ["", f"## verify --key: {files} streams of 4 KiB, $EFS only (RSA-2048)", "",
              "| variant | s | spread | × the RSA bound |", "| --- | --- | --- | --- |"]
    bound = ver["RSA decryptions alone, 1/cores of them (the bound)"][0]
    for k, (t, s) in ver.items():
        lines.append(f"| {k} | {t:.3f} | {s:.0%} | {t / bound:.2f} |")
    lines += cli_lines
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "decrypt.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out, "decrypt.json"), "w") as f:
        json.dump({"when": stamp, "cpus": os.cpu_count(), "size": size,
                   "ceiling_rounds_gbps": ceiling, "kernel_rounds_gbps": kernel,
                   "in_memory_gbps": {k: [r, s] for k, r, s in mem_rows},
                   "end_to_end_s": {k: {n: list(v) for n, v in r.items()} for k, r in e2e.items()},
                   "verify_s": {k: list(v) for k, v in ver.items()},
                   "command_line": cli_json}, f, indent=2)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
