"""The commands on one object or raw stream: inspect, verify (without
--key), synth, restore and backup."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

from .options import backend_from, is_s3
from .output import ExitCode, error_dict, info_dict, print_info
from .progress import ctrl_c_cancels

TYPE_CHECKING = False           # as in efsfast/__init__.py: no typing import at start-up
if TYPE_CHECKING:
    from typing import Any, Dict, List, Tuple


def cmd_inspect(args: argparse.Namespace) -> int:
    from .. import raw
    try:
        info = raw.inspect(args.file, mode=args.mode)
    except OSError as exc:
        if args.json:
            print(json.dumps({"path": args.file} | error_dict(exc)))
        else:
            print(f"efsfast: {args.file}: {exc.strerror}", file=sys.stderr)
        return ExitCode.FAILED
    if args.json:
        print(json.dumps({"path": args.file} | info_dict(info), indent=2))
    else:
        print_info(args.file, info)
    return ExitCode.OK


def cmd_verify(args: argparse.Namespace) -> int:
    from .. import raw
    if args.key:
        from .crypto import cmd_verify_keys
        return cmd_verify_keys(args)
    failed = 0
    results: List[Dict[str, Any]] = []
    for path in args.files:
        try:
            info = raw.verify(path, mode=args.mode)
        except OSError as exc:
            failed += 1
            results.append({"path": path, "valid": False} | error_dict(exc))
            if not args.json:
                print(f"{path}: INVALID: {exc.strerror}")
        else:
            results.append({"path": path, "valid": True, "raw_size": info.raw_size,
                            "streams": len(info.streams)})
            if not args.json:
                print(f"{path}: ok ({info.raw_size} bytes, {len(info.streams)} data stream(s))")
    if args.json:
        print(json.dumps(results, indent=2))
    return ExitCode.FAILED if failed else ExitCode.OK


def stream_arg(text: str) -> Tuple[str, int]:
    """An argparse type: NAME=SIZE, a named stream of synth."""
    name, sep, size = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=SIZE, got {text!r}")
    return name, int(size)


def cmd_synth(args: argparse.Namespace) -> int:
    from .. import raw
    data = raw.synthetic_raw(args.size, named_streams=dict(args.stream or ()),
                             directory=args.directory, users=args.users,
                             recovery_agents=args.recovery_agents, seed=args.seed)
    with open(args.output, "xb" if not args.force else "wb") as f:
        f.write(data)
    print(f"wrote {args.output}: {len(data)} bytes")
    return ExitCode.OK


def cmd_restore(args: argparse.Namespace) -> int:
    from ..api import restore
    src: Any = sys.stdin.buffer if args.src == "-" else args.src
    if sys.stderr.isatty() and not args.json:
        print(f"efsfast: restoring {args.src} -> {args.dest} ...", file=sys.stderr, flush=True)
    with ctrl_c_cancels(args.program) as token, contextlib.ExitStack() as stack:
        if is_s3(args.src):         # one object of a bucket: its buffer, fetched
            from ..store.single import object_source
            src = stack.enter_context(object_source(args.src))
        r = restore(args.dest, src, directory=args.directory, overwrite=args.overwrite,
                    backend=backend_from(args), cancel=token)
    out = {"path": r.path, "bytes": r.bytes, "calls": r.calls}
    print(json.dumps(out) if args.json else f"restored {r.path} ({r.bytes} bytes of raw stream)")
    return ExitCode.OK


def cmd_backup(args: argparse.Namespace) -> int:
    from ..api import backup
    from ..tree import SUFFIX
    with ctrl_c_cancels(args.program) as token:
        if args.dest == "-":
            backup(args.src, sys.stdout.buffer, directory=args.directory,
                   backend=backend_from(args), cancel=token)
            return ExitCode.OK
        dest = args.dest
        if is_s3(dest):     # written here first, then uploaded (create-only)
            import tempfile
            from ..store.single import upload_file
            with tempfile.TemporaryDirectory(prefix=".efsfast-up-") as work:
                staged = os.path.join(work, "object" + SUFFIX)
                r = backup(args.src, staged, directory=args.directory,
                           backend=backend_from(args), cancel=token)
                upload_file(staged, dest, replace=args.overwrite)
        elif os.path.isdir(dest):            # like cp: into the folder, as NAME.efsraw
            dest = os.path.join(dest, os.path.basename(os.path.normpath(args.src)) + SUFFIX)
        if not is_s3(dest):
            r = backup(args.src, dest, directory=args.directory, overwrite=args.overwrite,
                       backend=backend_from(args), cancel=token)
    out = {"path": r.path, "output": dest, "bytes": r.bytes, "calls": r.calls}
    print(json.dumps(out) if args.json else f"backed up {r.path} to {dest} ({r.bytes} bytes)")
    return ExitCode.OK


# ---- the parsers ----

def add_inspect(sub: Any, mode: argparse.ArgumentParser) -> None:
    s = sub.add_parser("inspect", parents=[mode], help="describe a raw stream")
    s.add_argument("file")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_inspect)


def add_verify(sub: Any, mode: argparse.ArgumentParser) -> None:
    from .crypto import add_verify_options
    s = sub.add_parser("verify", parents=[mode],
                       help="validate raw streams (exit 0 only if all are valid)")
    s.add_argument("files", nargs="+", metavar="FILE")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    add_verify_options(s)
    s.set_defaults(func=cmd_verify)


def add_synth(sub: Any) -> None:
    s = sub.add_parser("synth", help="write a synthetic (made-up but valid) raw stream")
    s.add_argument("output")
    s.add_argument("--size", type=int, default=4096, help="size of the unnamed stream")
    s.add_argument("--stream", type=stream_arg, action="append", metavar="NAME=SIZE",
                   help="add a named stream (repeatable)")
    s.add_argument("--directory", action="store_true", help="an encrypted directory")
    s.add_argument("--users", type=int, default=1)
    s.add_argument("--recovery-agents", type=int, default=0)
    s.add_argument("--seed", type=int)
    s.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    s.set_defaults(func=cmd_synth)


def add_restore_backup(sub: Any, common: argparse.ArgumentParser,
                       mode: argparse.ArgumentParser) -> None:
    s = sub.add_parser("restore", parents=[common, mode], help="restore a raw stream as an encrypted file")
    s.add_argument("src", metavar="SRC", help="raw stream file, or - for standard input")
    s.add_argument("dest", metavar="DEST")
    s.add_argument("--directory", action="store_true", help="DEST is an encrypted directory")
    s.set_defaults(func=cmd_restore)

    s = sub.add_parser("backup", parents=[common, mode], help="back up an encrypted file as a raw stream")
    s.add_argument("src", metavar="SRC")
    s.add_argument("dest", metavar="DEST", help="output file, or - for standard output")
    s.add_argument("--directory", action="store_true", help="SRC is an encrypted directory")
    s.set_defaults(func=cmd_backup)
