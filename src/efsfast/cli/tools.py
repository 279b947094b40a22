"""demo and bench: the commands that try efsfast out rather than use it."""
from __future__ import annotations

import argparse

from .options import whole_number, workers
from .output import ExitCode, emit, record
from .progress import Progress

TYPE_CHECKING = False           # as in efsfast/__init__.py: no typing import at start-up
if TYPE_CHECKING:
    from typing import Any, List


def cmd_demo(args: argparse.Namespace) -> int:
    import dataclasses
    from ..demo import run_demo
    bars: List[Progress] = []

    def bar(label: str, total: int) -> Progress:
        bars.append(Progress(label, total, True))
        return bars[-1]

    def log(line: str) -> None:
        for b in bars:          # a step's bar ends before the line that reports it
            b.close()
        print(line)
    report = run_demo(args.dir, files=args.files, seed=args.seed, workers=args.workers,
                      progress_factory=None if args.json else bar,
                      log=(lambda m: None) if args.json else log)
    for b in bars:
        b.close()
    code = ExitCode.OK if report.ok else ExitCode.FAILED
    if args.json:
        from ..messages import ErrorKind
        failures = [{"path": str(p), "error": "differs from the raw stream it was restored "
                     "from", "kind": ErrorKind.MISMATCH.value, "errno": None, "winerror": None}
                    for p in report.different]
        failures += [{"path": None, "error": str(f), "kind": ErrorKind.ERROR.value,
                      "errno": None, "winerror": None} for f in report.failures]
        emit(args, record("demo", code, failures, demo=dataclasses.asdict(report)))
        return code
    else:
        print("demo: OK, every raw stream round-tripped byte for byte" if report.ok
              else f"demo: FAILED ({len(report.different)} different, "
                   f"{len(report.failures)} failed)")
        for f in report.failures:
            print(f"  {f}")
    return code


def cmd_bench(args: argparse.Namespace) -> int:
    from ..bench import run
    code: int = run.main(args.bench_args)
    return code


def register(sub: Any) -> None:
    s = sub.add_parser("demo", help="make a synthetic backup set, restore it, back it up "
                                    "again, check byte identity (no Windows needed)")
    s.add_argument("dir", nargs="?", default=None, metavar="DIR",
                   help="work folder, on a file system with user extended attributes; its "
                        "backup-set, restored and backup-again folders are removed and made "
                        "anew (default: a temporary folder, removed on success)")
    s.add_argument("--files", type=whole_number(1), default=200, metavar="N",
                   help="how many encrypted files the synthetic set holds, a few bytes to a "
                        "few MiB each, besides its encrypted folders (default 200)")
    s.add_argument("--seed", type=int, default=2026, metavar="N",
                   help="random seed of the synthetic set (default 2026: the same set every "
                        "run)")
    s.add_argument("--workers", type=workers(), default=None, metavar="N",
                   help="parallel workers of the restore and the backup (default: as "
                        "restore-tree and backup-tree choose)")
    s.add_argument("--json", action="store_true",
                   help="one machine-readable report instead of the progress and the "
                        "summary")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("bench", help="run the benchmarks (see benchmarks/README.md)",
                       add_help=False)
    s.add_argument("bench_args", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_bench)
