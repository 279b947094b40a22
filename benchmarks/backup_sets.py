"""Backup sets: what the manifest and the SHA-256 cost, a tar stream
against a folder set, and what the checks a restore makes cost.

Variants, interleaved round-robin, best of N with the spread:
  - backup-tree without a manifest (tree.backup_tree: the ceiling);
  - backup-tree with the manifest and hashes into a folder set (each stream
    hashed in the export worker as it is written);
  - the same set as a tar stream to /dev/null;
  - restore-tree of the folder set, every object checked against its
    manifest line (size and SHA-256, hashed in the restore worker);
  - the same restore without the checks (benchmark only: the jobs without
    their expectation, see unchecked_restores).
Sources are efs_raw-layout trees on tmpfs (the POSIX system side), so the
file system costs little and efsfast's own costs show; on ntfs-3g the
source of the backups and the destination of the restores are the volume.
Each series records the load around it (efsfast.bench.timing.LoadWatch:
the CPUs busy in the second before it, the 1-minute load average before
and after) and is marked noisy where neighbours ran above 0.3 per CPU, or
the load rose beyond the series's own threads: a series taken under load
measures the load.

    python benchmarks/backup_sets.py [--quick] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import efsfast
from efsfast import _benchhooks, tree
from efsfast.backupset import FolderSink, TarSink, backup_set, restore_set
from efsfast.backupset import restore as set_restore
from efsfast.bench.timing import QUIET_LOAD_PER_CPU, LoadWatch, load_average

MIB = 1 << 20


def make_source(root: str, files: int, size: int) -> None:
    meta = efsfast.synthetic_metadata(seed=1)
    block = hashlib.sha256(b"x").digest() * (((size + 511) & ~511) // 32 + 1)
    raw = efsfast.build_raw(meta, [efsfast.DataStream("::$DATA", size,
                                                      block[:(size + 511) & ~511])])
    for i in range(files):
        d = os.path.join(root, f"d{i % 8}")
        os.makedirs(d, exist_ok=True)
        efsfast.restore(os.path.join(d, f"f{i:05d}.bin"), raw)


class Ntfs3gVolume:
    """An mkntfs image in /dev/shm mounted with ntfs-3g -o efs_raw (the
    real source of a backup on Linux), or a reason why not."""

    def __init__(self, work: str, size: int):
        self.mnt = os.path.join(work, "mnt")
        self.image = os.path.join(work, "ntfs.img")
        self.mounted = False
        os.makedirs(self.mnt)
        with open(self.image, "wb") as f:
            f.truncate(size)
        subprocess.run(["mkntfs", "-F", "-q", "-Q", self.image], check=True,
                       capture_output=True)
        subprocess.run(["ntfs-3g", "-o", "efs_raw", self.image, self.mnt], check=True,
                       capture_output=True)
        self.mounted = True

    @staticmethod
    def why_not() -> str:
        if not all(shutil.which(t) for t in ("mkntfs", "ntfs-3g")):
            return "ntfs-3g tools missing"
        if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
            return "mounting ntfs-3g needs root and /dev/fuse"
        return ""

    def close(self) -> None:
        if self.mounted:
            for _ in range(50):
                if subprocess.run(["umount", self.mnt], capture_output=True).returncode == 0:
                    break
                time.sleep(0.1)
            self.mounted = False


@contextlib.contextmanager
def unchecked_restores():
    """Benchmark only: restore_set with the same jobs minus their
    expectation (size and SHA-256), so the two restores differ by the checks
    alone.  Kept here, out of the modules users import."""
    real = set_restore.checked_jobs

    def without_checks(*args, **kw):
        dirs, files, unusable = real(*args, **kw)

        def strip(jobs):
            return [(j[0], j[1], {k: v for k, v in j[2].items() if k != "expect"})
                    for j in jobs]
        return strip(dirs), strip(files), unusable
    set_restore.checked_jobs = without_checks
    try:
        yield
    finally:
        set_restore.checked_jobs = real


BACKUP_PLAIN = "backup-tree, no manifest (before)"
BACKUP_SET = "backup-tree, manifest + SHA-256, folder set"
BACKUP_TAR = "backup-tree -, tar stream to /dev/null"
RESTORE_CHECKED = "restore-tree of the folder set, checked (size + SHA-256)"
RESTORE_UNCHECKED = "restore-tree of the folder set, unchecked (benchmark only)"


def variants(src: str, work: str, dest_root: str, workers: int):
    """{name: fn}; fn runs one variant (timed) and returns what cleans up
    after it (not timed), or None."""
    def removing(path):
        return lambda: shutil.rmtree(path)

    def plain():
        out = os.path.join(work, "plain")
        tree.backup_tree(src, out, workers=workers).bulk.raise_for_errors()
        return removing(out)

    def folder_set():
        out = os.path.join(work, "set")
        backup_set(src, FolderSink(out), workers=workers).bulk.raise_for_errors()
        return removing(out)

    def tar_null():
        with open(os.devnull, "wb") as f:
            backup_set(src, TarSink(f), workers=workers).bulk.raise_for_errors()

    the_set = os.path.join(work, "restore-from")     # made once, below
    backup_set(src, FolderSink(the_set), workers=workers).bulk.raise_for_errors()

    def checked():
        out = os.path.join(dest_root, "restored")
        r = restore_set(the_set, out, workers=workers)
        r.bulk.raise_for_errors()
        assert r.verified == r.bulk.files
        return removing(out)

    def unchecked():
        out = os.path.join(dest_root, "restored")
        with unchecked_restores():
            r = restore_set(the_set, out, workers=workers)
        r.bulk.raise_for_errors()
        return removing(out)
    return {BACKUP_PLAIN: plain, BACKUP_SET: folder_set, BACKUP_TAR: tar_null,
            RESTORE_CHECKED: checked, RESTORE_UNCHECKED: unchecked}


def measure(fns: dict, rounds: int) -> dict:
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t = time.perf_counter()
            cleanup = fn()
            times[k].append(time.perf_counter() - t)
            if cleanup is not None:
                cleanup()
    return {k: (min(v), (max(v) - min(v)) / min(v)) for k, v in times.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = ap.parse_args(argv)
    shapes = [("200 files of 1 MiB", 200, MIB), ("4,000 files of 16 KiB", 4000, 16 << 10)]
    if args.quick:
        shapes = [("20 files of 1 MiB", 20, MIB), ("400 files of 16 KiB", 400, 16 << 10)]
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    cpus = os.cpu_count() or 1
    rows, results = [], {}
    load_before = load_average()
    sha = _sha_rate()
    sources = ["tmpfs"] + (["ntfs-3g"] if not Ntfs3gVolume.why_not() else [])
    skipped = Ntfs3gVolume.why_not()
    for label, n, size in shapes:
        for source in sources:
            for workers in (1, 2):
                work = tempfile.mkdtemp(prefix="efsfast-bench-sets-", dir=base)
                vol = None
                try:
                    if source == "ntfs-3g":
                        vol = Ntfs3gVolume(work, 3 * n * (size + 8192) + (64 << 20))
                        src, dest_root = vol.mnt, vol.mnt
                    else:
                        src, dest_root = os.path.join(work, "src"), work
                    make_source(src, n, size)
                    # its own threads: the workers, and on ntfs-3g the FUSE daemon
                    own = workers + (1 if vol is not None else 0)
                    with LoadWatch(own=own) as watch:
                        r = measure(variants(src, work, dest_root, workers), args.rounds)
                finally:
                    if vol is not None:
                        vol.close()
                    shutil.rmtree(work, ignore_errors=True)
                noisy = watch.load.noisy
                series = f"{label} on {source}, {workers} worker(s)"
                total = n * size
                for k, (best, spread) in r.items():
                    ref = r[RESTORE_UNCHECKED if k.startswith("restore") else BACKUP_PLAIN][0]
                    rows.append((series, k, total / best / 1e9, spread, best / ref, noisy))
                results[series] = {"load": watch.load.to_json(), "noisy": noisy,
                                   "workers": workers, "bytes": total,
                                   "variants": {k: {"best_s": b, "spread": s}
                                                for k, (b, s) in r.items()}}
    os.makedirs(args.out, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = ["# Backup sets: manifest, hashing, tar streams and restore checks", "",
             f"{stamp} · {platform.platform()} · Python {platform.python_version()} · "
             f"{cpus} CPUs · best of {args.rounds}, variants interleaved · "
             f"sources on tmpfs (efs_raw layout) and on an ntfs-3g efs_raw mount of an image "
             f"in /dev/shm" + (f" (not run: {skipped})" if skipped else "") +
             f" · sets written to tmpfs · SHA-256 alone on one core: efsfast's "
             f"{sha['efsfast']:.2f} GB/s ({sha['impl']}), hashlib's {sha['hashlib']:.2f} GB/s"
             f" · load average {_fmt(load_before)} before, {_fmt(load_average())} after;"
             f" a series marked noisy ran beside neighbours above {QUIET_LOAD_PER_CPU} per "
             f"CPU (see the last table)",
             "",
             "| tree | variant | GB/s of ciphertext | spread | time vs reference |",
             "| --- | --- | --- | --- | --- |"]
    for series, k, rate, spread, ratio, noisy in rows:
        lines.append(f"| {series}{' (noisy)' if noisy else ''} | {k} | {rate:.2f} | "
                     f"{spread:.0%} | {ratio:.2f}× |")
    lines += ["", "The reference of a backup is backup-tree without a manifest, of a restore "
              "the same restore without its checks. Targets: a folder set ≤ 1.10× the "
              "backup without a manifest, a checked restore ≤ 1.10× the unchecked one.", "",
              "## Reading", "",
              "Hashing adds SHA-256's own work to every byte, on the worker that moves it: "
              "where a worker moves R GB/s without it and SHA-256 runs at S GB/s on one core, "
              "the same work takes about 1 + R/S as long (unless cores are idle to absorb "
              "it: hashing is CPU work, not a wait). The model against the measurement, per "
              "series (R per worker):", "",
              "| tree | R, backup | model | folder set | R, restore | model | checked |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for series, res in results.items():
        v, w, total = res["variants"], res["workers"], res["bytes"]
        rb = total / v[BACKUP_PLAIN]["best_s"] / 1e9 / w
        rr = total / v[RESTORE_UNCHECKED]["best_s"] / 1e9 / w
        lines.append(f"| {series} | {rb:.2f} GB/s | {1 + rb / sha['efsfast']:.2f}× | "
                     f"{v[BACKUP_SET]['best_s'] / v[BACKUP_PLAIN]['best_s']:.2f}× | "
                     f"{rr:.2f} GB/s | {1 + rr / sha['efsfast']:.2f}× | "
                     f"{v[RESTORE_CHECKED]['best_s'] / v[RESTORE_UNCHECKED]['best_s']:.2f}× |")
    lines += ["", "## Load while each series ran", "",
              "| tree | CPUs busy before | load before | load after | own threads | noisy |",
              "| --- | --- | --- | --- | --- | --- |"]
    for series, res in results.items():
        ld = res["load"]
        lines.append(f"| {series} | {_fmt(ld['busy_cpus_before'])} | {_fmt(ld['before'])} | "
                     f"{_fmt(ld['after'])} | {ld['own_threads']} | "
                     f"{'**yes**' if ld['noisy'] else 'no'} |")
    with open(os.path.join(args.out, "backup-sets.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out, "backup-sets.json"), "w") as f:
        json.dump({"when": stamp, "cpus": cpus, "sha256_gbps": sha, "results": results}, f,
                  indent=2)
    print("\n".join(lines))
    return 0


def _fmt(v) -> str:
    return "?" if v is None else f"{v:.2f}"


def _sha_rate() -> dict:
    """SHA-256 on one core: efsfast's own C code (what the workers run) and
    hashlib's, over 64 MiB, best of 3."""
    b = bytes(64 * MIB)
    ours = min(_timed(lambda: _benchhooks._sha256(b)) for _ in range(3))
    theirs = min(_timed(lambda: hashlib.sha256(b).digest()) for _ in range(3))
    return {"efsfast": len(b) / ours / 1e9, "hashlib": len(b) / theirs / 1e9,
            "impl": "SHA-NI" if _sha_ni() else "portable C"}


def _sha_ni() -> bool:
    try:
        _benchhooks._sha256(b"", 2)
    except ValueError:
        return False
    return True


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    sys.exit(main())
