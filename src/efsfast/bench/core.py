"""The core section: the import path at every system buffer size against
a memcpy ceiling and what users would otherwise write (pywin32-style and
ctypes callbacks), one large restore end to end against ``cp``, many small
files against a Python loop, and callgrind's instruction counts (stable
where wall clocks are not)."""
from __future__ import annotations

import ctypes
import io
import mmap
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Any, Callable, Dict, List, Tuple

from .. import _benchhooks, _core, raw
from ..api import restore_many
from ..backends import PosixBackend
from ..compat import win32file
from .timing import KIB, Log, Results, in_threads, make_stream, measure, summary

SIZES = [512, 4096, 65536, 66048, 1 << 20]


# ------------------------------------------------------------ import variants

def _write(data_source: Any, backend: _core.Backend, kind: str = "c") -> None:
    """One restore into the null sink through the given path."""
    with _core.open_raw(os.path.join(_null_dir(), "x"), _core.CREATE_FOR_IMPORT, backend) as ctx:
        if kind == "pywin32":
            _core.write_raw(ctx, data_source, None, None, True)
        else:
            _core.write_raw(ctx, data_source)


_NULL_DIR: List[str] = []


def _null_dir() -> str:
    if not _NULL_DIR:
        _NULL_DIR.append(tempfile.mkdtemp(prefix="efsfast-bench-null-"))
    return _NULL_DIR[0]


def remove_null_dirs() -> None:
    for d in _NULL_DIR:
        shutil.rmtree(d, ignore_errors=True)
    _NULL_DIR.clear()


def pywin32_style(stream: bytes) -> Callable[[memoryview, Any, int], Tuple[int, int]]:
    """What pywin32 users write: a Python function that reads a new bytes
    object per call and copies it into the buffer."""
    f = io.BytesIO(stream)

    def import_cb(data: memoryview, context: Any, length: int) -> Tuple[int, int]:
        chunk = f.read(length)
        data[:len(chunk)] = chunk
        return 0, len(chunk)
    return import_cb


PFE_IMPORT_FUNC = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.POINTER(ctypes.c_ubyte),
                                   ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32))
WRITE_RAW = ctypes.CFUNCTYPE(ctypes.c_uint32, PFE_IMPORT_FUNC, ctypes.c_void_p, ctypes.c_void_p)


def ctypes_restore(stream: bytes, backend: PosixBackend) -> None:
    """What a user without efsfast writes with ctypes against the raw API:
    a CFUNCTYPE callback calling back into Python for every buffer."""
    f = io.BytesIO(stream)

    def read_cb(pb_data: Any, context: Any, pul_length: Any) -> int:     # (ctypes pointers)
        chunk = f.read(pul_length[0])
        ctypes.memmove(pb_data, chunk, len(chunk))
        pul_length[0] = len(chunk)
        return 0
    import_cb = PFE_IMPORT_FUNC(read_cb)
    write = WRITE_RAW(_benchhooks._backend_functions(backend)["write"])
    with _core.open_raw(os.path.join(_null_dir(), "x"), _core.CREATE_FOR_IMPORT, backend) as ctx:
        rc = write(import_cb, None, _benchhooks._context_address(ctx))
    if rc:
        raise OSError(f"ctypes restore failed: {rc}")


class Inputs:
    def __init__(self, stream: bytes, workdir: str):
        self.stream = stream
        self.path = os.path.join(workdir, "stream.efsraw")
        with open(self.path, "wb") as f:
            f.write(stream)
        with open(self.path, "rb") as f:
            self.mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def import_variants(inp: Inputs) -> Dict[str, Callable[[int, int], object]]:
    """name -> run(buffer_size, total_bytes)."""
    s = inp.stream
    n = len(s)

    def reps(total: int) -> int:
        return max(1, round(total / n))

    def nul(bs: int) -> PosixBackend:
        return PosixBackend(buffer_size=bs, null_sink=True)

    return {
        "memcpy ceiling": lambda bs, total: _benchhooks._bench_memcpy(s, bs, reps(total) * n),
        "efsfast C, bytes": lambda bs, total: [_write(s, nul(bs)) for _ in range(reps(total))],
        "efsfast C, mmap": lambda bs, total: [_write(inp.mm, nul(bs)) for _ in range(reps(total))],
        "efsfast C, path (pread)": lambda bs, total: [_write(inp.path, nul(bs))
                                                      for _ in range(reps(total))],
        "efsfast fallback, readinto": lambda bs, total: [_write(io.BytesIO(s), nul(bs))
                                                         for _ in range(reps(total))],
        "pywin32-style callback": lambda bs, total: [_write(pywin32_style(s), nul(bs), "pywin32")
                                                     for _ in range(reps(total))],
        "ctypes CFUNCTYPE callback": lambda bs, total: [ctypes_restore(s, nul(bs))
                                                        for _ in range(reps(total))],
    }


PYTHON_PATHS = {"efsfast fallback, readinto", "pywin32-style callback", "ctypes CFUNCTYPE callback"}


# ------------------------------------------------------------------ sections

def bench_import(inp: Inputs, total: int, py_total: int, repeat: int, log: Log) -> Results:
    variants = import_variants(inp)
    out: Results = {"1 thread": {}, "2 threads": {}}
    n = len(inp.stream)
    for bs in SIZES:
        for threads in (1, 2):
            cases: Dict[str, Callable[[], object]] = {}
            volume: Dict[str, int] = {}
            for name, fn in variants.items():
                t = py_total if name in PYTHON_PATHS else total
                t = max(n, round(t / n) * n)
                def run(fn: Callable[[int, int], object] = fn, t: int = t) -> object:
                    return fn(bs, t)
                cases[name] = run if threads == 1 else in_threads(run, threads)
                volume[name] = t * threads
            times = measure(cases, repeat)
            key = f"{threads} thread" + ("s" if threads > 1 else "")
            out[key][bs] = {name: summary(times[name], volume[name]) for name in cases}
            log(f"  import {bs:>7} B, {threads} thread(s): " + ", ".join(
                f"{k.split(',')[0] if k.startswith('efsfast C') and k.endswith('bytes') else k}"
                f"={v['gbps']:.2f}" for k, v in out[key][bs].items()
                if k in ("memcpy ceiling", "efsfast C, bytes", "pywin32-style callback")) + " GB/s")
    return out


def bench_end_to_end(inp: Inputs, workdir: str, repeat: int, log: Log) -> Results:
    disk = os.path.join(workdir, "disk")
    os.makedirs(disk, exist_ok=True)
    cipher = os.path.join(workdir, "cipher.bin")
    info = raw.inspect(inp.stream)
    with open(cipher, "wb") as f:           # the same ciphertext bytes, for cp
        f.write(inp.stream[-info.streams[0].ciphertext_size:])
    full = PosixBackend(buffer_size=65536)
    unvalidated = PosixBackend(buffer_size=65536, _unvalidated_copy=True)

    def clean(p: str) -> None:
        if os.path.exists(p):
            os.unlink(p)

    def restore_to(backend: PosixBackend, name: str) -> Callable[[], None]:
        def run() -> None:
            p = os.path.join(disk, name)
            clean(p)
            with _core.open_raw(p, _core.CREATE_FOR_IMPORT, backend) as ctx:
                _core.write_raw(ctx, inp.path)
        return run

    def cp() -> None:
        p = os.path.join(disk, "cp")
        clean(p)
        subprocess.run(["cp", cipher, p], check=True)

    # "validation off": the same write path storing the incoming bytes verbatim,
    # without parsing (so without cutting the segment headers out either)
    cases = {"efsfast restore (validated)": restore_to(full, "full"),
             "efsfast restore (validation off)": restore_to(unvalidated, "raw"),
             "cp of the ciphertext": cp}
    times = measure(cases, repeat)
    res = {k: summary(v, len(inp.stream)) for k, v in times.items()}
    log("  end to end: " + ", ".join(f"{k}={v['gbps']:.2f}" for k, v in res.items()) + " GB/s")
    shutil.rmtree(disk, ignore_errors=True)
    return res


def bench_small_files(workdir: str, count: int, repeat: int, log: Log) -> Results:
    streams = [make_stream(16 * KIB, seed=i % 251) for i in range(min(count, 64))]
    jobs_src = [streams[i % len(streams)] for i in range(count)]
    # tmpfs where there is one: on a shared disk, journal and discard noise
    # swamps the per-file cost being compared (seen here: 4x between rounds)
    base = tempfile.mkdtemp(prefix="efsfast-bench-small-",
                            dir="/dev/shm" if os.path.isdir("/dev/shm") else workdir)

    def fresh(tag: str) -> str:
        d = os.path.join(base, tag)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        return d

    def many(workers: int) -> Callable[[], None]:
        def run() -> None:
            d = fresh(f"w{workers}")
            r = restore_many([(os.path.join(d, f"f{i}"), s) for i, s in enumerate(jobs_src)],
                             workers=workers)
            if r.failures:
                raise r.failures[0].error
        return run

    def python_loop() -> None:
        d = fresh("loop")
        for i, s in enumerate(jobs_src):
            f = io.BytesIO(s)

            def import_cb(data: memoryview, context: io.BytesIO,
                          length: int) -> Tuple[int, int]:
                chunk = context.read(length)
                data[:len(chunk)] = chunk
                return 0, len(chunk)
            h = win32file.OpenEncryptedFileRaw(os.path.join(d, f"f{i}"), win32file.CREATE_FOR_IMPORT)
            try:
                win32file.WriteEncryptedFileRaw(import_cb, f, h)
            finally:
                win32file.CloseEncryptedFileRaw(h)

    cases = {"restore_many, 1 worker": many(1), "restore_many, 2 workers": many(2),
             "Python loop, pywin32-style": python_loop}
    times = measure(cases, repeat)
    nbytes = sum(len(s) for s in jobs_src)
    res = {k: summary(v, nbytes) | {"files_per_s": count / min(v)} for k, v in times.items()}
    log("  small files: " + ", ".join(f"{k}={v['files_per_s']:.0f}/s" for k, v in res.items()))
    shutil.rmtree(base, ignore_errors=True)
    return res


CALLGRIND_SCRIPT = r'''
import io, os, sys, tempfile
from efsfast import _core
from efsfast.bench.timing import make_stream
from efsfast.backends import PosixBackend
mib, kind = int(sys.argv[1]), sys.argv[2]
s = make_stream(mib << 20)
be = PosixBackend(buffer_size=4096, null_sink=True)
d = tempfile.mkdtemp()
with _core.open_raw(os.path.join(d, "x"), _core.CREATE_FOR_IMPORT, be) as ctx:
    _core.write_raw(ctx, s if kind == "c" else io.BytesIO(s))
'''


def bench_callgrind(workdir: str, log: Log) -> Results:
    if shutil.which("valgrind") is None:
        return {"skipped": "valgrind is not installed"}
    script = os.path.join(workdir, "cg.py")
    with open(script, "w") as f:
        f.write(CALLGRIND_SCRIPT)
    res = {}
    for kind, label in (("c", "efsfast C, bytes"), ("fallback", "efsfast fallback, readinto")):
        counts = {}
        for mib in (4, 12):
            out = os.path.join(workdir, f"cg.{kind}.{mib}")
            subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                            sys.executable, script, str(mib), kind],
                           check=True, capture_output=True)
            with open(out) as f:
                m = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.M)
            assert m is not None, f"{out}: callgrind wrote no totals line"
            counts[mib] = int(m.group(1))
        per_mib = (counts[12] - counts[4]) / 8
        res[label] = {"instructions_per_mib": per_mib, "buffer_size": 4096}
        log(f"  callgrind: {label}: {per_mib / 1e6:.2f} M instructions per MiB at 4 KiB buffers")
    return res


# ------------------------------------------------------------------ targets

def core_targets(r: Results) -> List[Results]:
    out: List[Results] = []
    if "import" in r:
        out += _import_targets(r)
    if "small_files" in r:
        out += _small_file_targets(r)
    if "end_to_end" in r:
        out += _end_to_end_targets(r)
    return out


def _add(out: List[Results], name: str, ratio: float, goal: float, note: str = "") -> None:
    out.append({"target": name, "ratio": ratio, "goal": goal, "met": ratio >= goal, "note": note})


def _import_targets(r: Results) -> List[Results]:
    imp1, imp2 = r["import"]["1 thread"], r["import"]["2 threads"]
    out: List[Results] = []

    def add(name: str, ratio: float, goal: float) -> None:
        _add(out, name, ratio, goal)

    for bs in SIZES:
        if bs >= 4096:
            add(f"C trampoline vs memcpy ceiling, {bs} B", imp1[bs]["efsfast C, bytes"]["gbps"]
                / imp1[bs]["memcpy ceiling"]["gbps"], 0.9)
    add("C trampoline vs pywin32-style, 4 KiB", imp1[4096]["efsfast C, bytes"]["gbps"]
        / imp1[4096]["pywin32-style callback"]["gbps"], 2.0)
    add("C trampoline vs pywin32-style, 4 KiB, 2 threads", imp2[4096]["efsfast C, bytes"]["gbps"]
        / imp2[4096]["pywin32-style callback"]["gbps"], 3.5)
    return out


def _small_file_targets(r: Results) -> List[Results]:
    out: List[Results] = []
    sf = r["small_files"]
    _add(out, "restore_many 2 workers vs 1", sf["restore_many, 2 workers"]["files_per_s"]
        / sf["restore_many, 1 worker"]["files_per_s"], 1.8)
    _add(out, "10,000 small files vs Python loop", sf["restore_many, 2 workers"]["files_per_s"]
         / sf["Python loop, pywin32-style"]["files_per_s"], 3.0)
    return out


def _end_to_end_targets(r: Results) -> List[Results]:
    out: List[Results] = []
    e2e = r["end_to_end"]
    _add(out, "end-to-end restore vs cp", e2e["efsfast restore (validated)"]["gbps"]
        / e2e["cp of the ciphertext"]["gbps"], 0.8)
    cost = 1 - e2e["efsfast restore (validated)"]["gbps"] / e2e["efsfast restore (validation off)"]["gbps"]
    out.append({"target": "streaming validation cost", "ratio": cost, "goal": 0.05,
                "met": cost <= 0.05, "note": "fraction of the unvalidated speed lost (<= goal)"})
    return out


def plot(r: Results, path: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(8, 5))
    rows = r["import"]["1 thread"]
    sizes = [int(b) for b in rows]
    for name in next(iter(rows.values())):
        ax.plot(sizes, [rows[b][name]["gbps"] for b in rows], marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("system buffer size (bytes)")
    ax.set_ylabel("throughput (GB/s, best of N)")
    ax.set_title("efsfast import path, 1 thread (POSIX system side, null sink)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report_lines(r: Results) -> List[str]:
    """The core section's tables for results.md."""
    lines: List[str] = []
    if "import" not in r:
        return lines
    for threads in ("1 thread", "2 threads"):
        lines += ["", f"## Import path, {threads} (GB/s, best; spread in brackets)", ""]
        names = list(next(iter(r["import"][threads].values())).keys())
        lines.append("| buffer | " + " | ".join(names) + " |")
        lines.append("| --- |" + " --- |" * len(names))
        for bs, row in r["import"][threads].items():
            lines.append(f"| {int(bs):,} B | " + " | ".join(
                f"{row[n]['gbps']:.2f} ({row[n]['spread']:.0%})" for n in names) + " |")
    lines += ["", "## End to end (256 MiB stream to a file on disk)", "",
              "| variant | GB/s | spread |", "| --- | --- | --- |"]
    for k, v in r["end_to_end"].items():
        lines.append(f"| {k} | {v['gbps']:.2f} | {v['spread']:.0%} |")
    lines += ["", f"## Small files ({r['small_count']:,} files of 16 KiB, on tmpfs)", "",
              "| variant | files/s | spread |", "| --- | --- | --- |"]
    for k, v in r["small_files"].items():
        lines.append(f"| {k} | {v['files_per_s']:,.0f} | {v['spread']:.0%} |")
    lines += ["", "## Instructions (callgrind, stable on noisy machines)", ""]
    cg = r["callgrind"]
    if "skipped" in cg:
        lines.append(f"skipped: {cg['skipped']}")
    else:
        lines += ["| path | instructions per MiB (4 KiB buffers) |", "| --- | --- |"]
        for k, v in cg.items():
            lines.append(f"| {k} | {v['instructions_per_mib']:,.0f} |")
    return lines
