"""``efsfast bench``: run the benchmark sections and write results.md,
results.json and the plots.

Results go to a fresh temporary folder unless ``--out`` names one (the
committed ``benchmarks/results/`` is written only when asked for, by
``benchmarks/run.py`` or ``--out``).  Every section records the load it
ran under; a run taken on a busy machine says so in its results.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from typing import Callable, List, Optional

from ..sizes import count_type
from . import bulk, core, ntfs3g, serial
from .report import targets, write_reports
from .timing import GIB, MIB, LoadWatch, Results, load_average, make_stream

SECTIONS = ("core", "bulk", "ntfs3g", "serial")


def _sections(text: str, p: argparse.ArgumentParser) -> List[str]:
    sections = [x for x in text.split(",") if x]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections: {', '.join(sorted(unknown))} "
                f"(choose from {', '.join(SECTIONS)})")
    return sections


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="efsfast bench",
                                description="efsfast's benchmarks: ratios measured side by side "
                                            "in one run (see benchmarks/README.md)")
    p.add_argument("--quick", action="store_true",
                   help="small volumes (a smoke run; its numbers are not comparable with a "
                        "full run's)")
    p.add_argument("--repeat", type=count_type(1), default=None, metavar="N",
                   help="timings per point; the best is reported, with the spread "
                        "(default 5, 3 with --quick)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="folder for results.md/.json and the plots (default: a new "
                        "temporary folder, printed at the end)")
    p.add_argument("--no-callgrind", action="store_true",
                   help="leave out callgrind's instruction counts (core section)")
    p.add_argument("--sections", default=",".join(SECTIONS), metavar="LIST",
                   help=f"comma-separated, of: {', '.join(SECTIONS)} (default: all)")
    return p


def ensure_bytecode() -> str:
    """Compile efsfast's own modules to bytecode where they have none, as
    installing a wheel does: an editable install under
    PYTHONDONTWRITEBYTECODE (this project's development machines) compiles
    every module from source at each start, which is no user's start-up
    (restore-tree of an empty folder: 61-64 ms of CPU without, 41 ms with,
    loaded machine).  Says what it found, for the results."""
    import compileall
    import io
    import contextlib
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with contextlib.redirect_stdout(io.StringIO()):
        ok = compileall.compile_dir(package, quiet=1)
    return "compiled (as installed)" if ok else "some modules could not be compiled"


def main(argv: Optional[List[str]] = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    sections = _sections(args.sections, p)
    out = args.out or tempfile.mkdtemp(prefix="efsfast-bench-results-")
    repeat = args.repeat or (3 if args.quick else 5)
    stream_size = 16 * MIB if args.quick else 256 * MIB

    def log(m: str) -> None:
        print(m, flush=True)
    workdir = tempfile.mkdtemp(prefix="efsfast-bench-", dir=os.environ.get("EFSFAST_BENCH_DIR"))
    r: Results = {"machine": {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                           "platform": platform.platform(), "python": platform.python_version(),
                           "cpus": os.cpu_count(), "load": load_average(),
               "bytecode": ensure_bytecode()},
               "repeat": repeat, "total": 64 * MIB if args.quick else GIB,
               "py_total": 16 * MIB if args.quick else 128 * MIB,
               "small_count": 1000 if args.quick else 10_000, "stream_size": stream_size,
               "loads": {}}
    few = max(2, repeat - 2)

    def section(name: str, fn: Callable[[], object], own: int = 1) -> object:
        with LoadWatch(own=own) as watch:
            result = fn()
        r["loads"][name] = watch.load.to_json()
        if watch.load.noisy:
            log(f"  NOISY: {name} ran at {watch.load.note()}")
        return result
    try:
        if "core" in sections:
            log(f"making a {stream_size >> 20} MiB raw stream in {workdir}")
            inp = core.Inputs(make_stream(stream_size), workdir)
            r["import"] = section("import path", lambda: core.bench_import(
                inp, r["total"], r["py_total"], repeat, log), own=2)
            r["end_to_end"] = section("end to end", lambda: core.bench_end_to_end(
                inp, workdir, repeat, log))
            r["small_files"] = section("small files", lambda: core.bench_small_files(
                workdir, r["small_count"], few, log), own=2)
            r["callgrind"] = ({"skipped": "--no-callgrind"} if args.no_callgrind
                              else core.bench_callgrind(workdir, log))
            inp.mm.close()
        if "bulk" in sections:
            r["bulk"] = section("bulk", lambda: bulk.bench_bulk(workdir, args.quick, few, log),
                                own=os.cpu_count() or 1)
        if "ntfs3g" in sections:
            r["ntfs3g"] = section("ntfs-3g", lambda: ntfs3g.bench_ntfs3g(
                workdir, args.quick, few, log), own=2)
        if "serial" in sections:
            r["serial"] = section("serial cost", lambda: serial.bench_serial(
                workdir, args.quick, few, log), own=os.cpu_count() or 1)
        r["machine"]["load_after"] = load_average()
        r["targets"] = targets(r)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        core.remove_null_dirs()
    write_reports(r, out)
    for t in r["targets"]:
        log(f"  {'met ' if t['met'] else 'MISS'} {t['target']}: {t['ratio']:.2f} "
            f"(goal {t['goal']})")
    log(f"results in {out}/results.md")
    return 0
