"""The commands on one object or raw stream: inspect, verify (without
--key), synth, restore and backup."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys

from .options import STDIO, backend_from, is_s3
from .output import (ExitCode, describe, emit, fail, failure, info_dict, print_info, record,
                     refuse, require_sources, say)
from .progress import ctrl_c_cancels

TYPE_CHECKING = False           # as in efsfast/__init__.py: no typing import at start-up
if TYPE_CHECKING:
    from typing import Any, Dict, List, Tuple


def cmd_inspect(args: argparse.Namespace) -> int:
    from .. import raw
    refused = require_sources(args, args.file)
    if refused is not None:
        return refused
    try:
        info = raw.inspect(_source(args.file), mode=args.mode)
    except OSError as exc:
        return fail(args, exc, ExitCode.FAILED, args.file)
    if args.json:
        emit(args, record("inspect", ExitCode.OK, source=args.file,
                          info={"path": args.file} | info_dict(info)))
    else:
        print_info(args.file, info)
    return ExitCode.OK


def _source(name: str) -> Any:
    """A raw stream named on the command line: ``-`` is standard input."""
    return sys.stdin.buffer if name == STDIO else name


def cmd_verify(args: argparse.Namespace) -> int:
    """verify FILE...: each raw stream or encrypted object, and those found
    below a folder (as verify --key finds them)."""
    from .. import raw
    from ..treewalk import find_sources
    if args.key:
        from .crypto import cmd_verify_keys
        return cmd_verify_keys(args)
    refused = require_sources(args, *args.files)
    if refused is not None:
        return refused
    unreadable: List[Any] = []
    sources = find_sources(args.files, unreadable)
    if not sources and not unreadable:
        return refuse(args, "no raw streams or encrypted files found in "
                      + ", ".join(args.files))
    results: List[Dict[str, Any]] = []
    failures = [failure(exc, path) for path, exc in unreadable]
    for path, exc in unreadable:
        results.append({"path": path, "valid": False})
        if not args.json:
            say(f"{path}: INVALID: {describe(exc, path)}")
    for path in sources:
        try:
            info = raw.verify(_source(path), mode=args.mode)
        except OSError as exc:
            failures.append(failure(exc, path))
            results.append({"path": path, "valid": False})
            if not args.json:
                say(f"{path}: INVALID: {describe(exc, path)}")
        else:
            results.append({"path": path, "valid": True, "raw_size": info.raw_size,
                            "streams": len(info.streams)})
            if not args.json:
                say(f"{path}: ok ({info.raw_size} bytes, {len(info.streams)} data stream(s))")
    code = ExitCode.FAILED if failures else ExitCode.OK
    if args.json:
        emit(args, record("verify", code, failures, results=results,
                          counts={"valid": len(results) - len(failures),
                                  "invalid": len(failures)}))
    return code


def stream_arg(text: str) -> Tuple[str, int]:
    """An argparse type: NAME=SIZE, a named stream of synth (SIZE as
    :func:`efsfast.sizes.parse_size` reads it)."""
    from ..sizes import parse_size
    name, sep, size = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=SIZE, not {text}")
    if any(c in name for c in ":/\\\0"):
        raise argparse.ArgumentTypeError(f"{name} is not a stream name (one without ':', "
                                         "'/', '\\' or NUL)")
    try:
        return name, parse_size(size)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected NAME=SIZE, not {text}: {exc}") from None


def cmd_synth(args: argparse.Namespace) -> int:
    from .. import raw
    from ..newfile import new_file, refuse_existing
    options: Dict[str, Any] = dict(
        named_streams=dict(args.stream), directory=args.directory, users=args.users,
        recovery_agents=args.recovery_agents, seed=args.seed)
    if args.output == STDIO:
        args.data_on_stdout = True      # (what the command says goes to stderr)
        if sys.stdout.isatty():
            return refuse(args, "will not write a raw stream to a terminal (redirect standard "
                                "output, or give OUTPUT)", path=STDIO)
        n = raw.write_synthetic_raw(sys.stdout.buffer, args.size, **options)
        sys.stdout.buffer.flush()
    else:
        try:
            if not args.overwrite:
                refuse_existing(args.output)
        except OSError as exc:
            return fail(args, exc, ExitCode.REFUSED)
        # written as it is made, one segment at a time: any size in constant memory
        with new_file(args.output, overwrite=args.overwrite) as f:
            n = raw.write_synthetic_raw(f, args.size, **options)
    if args.json:
        emit(args, record("synth", ExitCode.OK, dest=args.output, bytes=n,
                          object={"path": args.output}))
    elif args.output != STDIO:
        say(f"wrote {args.output}: {n} bytes")
    return ExitCode.OK


def cmd_restore(args: argparse.Namespace) -> int:
    from ..api import restore
    refused = require_sources(args, args.src)
    if refused is not None:
        return refused
    src: Any = sys.stdin.buffer if args.src == STDIO else args.src
    if sys.stderr.isatty() and not args.json:
        print(f"efsfast: restoring {args.src} -> {args.dest} ...", file=sys.stderr, flush=True)
    with ctrl_c_cancels(args.program) as token, contextlib.ExitStack() as stack:
        if is_s3(args.src):         # one object of a bucket: its buffer, fetched
            from ..store import StoreError
            from ..store.single import MISSING, object_source
            try:
                src = stack.enter_context(object_source(args.src))
            except StoreError as exc:   # a missing source, as a missing file: refused,
                if exc.failure not in MISSING:      # nothing written at DEST
                    raise
                return fail(args, exc, ExitCode.REFUSED)
        r = restore(args.dest, src, directory=args.directory, overwrite=args.overwrite,
                    backend=backend_from(args), cancel=token)
    if args.json:
        emit(args, record("restore", ExitCode.OK, source=args.src, dest=args.dest,
                          bytes=r.bytes, object={"path": r.path, "calls": r.calls}))
    else:
        say(f"restored {r.path} ({r.bytes} bytes of raw stream)")
    return ExitCode.OK


def cmd_backup(args: argparse.Namespace) -> int:
    from ..api import backup
    from ..tree import SUFFIX
    refused = require_sources(args, args.src)
    if refused is not None:
        return refused
    with ctrl_c_cancels(args.program) as token:
        dest = args.dest
        if dest == STDIO:           # the raw stream is the output: the record goes to stderr
            args.data_on_stdout = True
            r = backup(args.src, sys.stdout.buffer, directory=args.directory,
                       backend=backend_from(args), cancel=token)
            sys.stdout.buffer.flush()
        elif is_s3(dest):   # written here first, then uploaded (create-only)
            import tempfile
            from ..store.single import upload_file
            with tempfile.TemporaryDirectory(prefix=".efsfast-up-") as work:
                staged = os.path.join(work, "object" + SUFFIX)
                try:
                    r = backup(args.src, staged, directory=args.directory,
                               backend=backend_from(args), cancel=token)
                except OSError as exc:      # (no room for the copy, ...): the URL given,
                    if exc.filename == staged:      # never the temporary copy's path
                        exc.filename = dest
                    raise
                upload_file(staged, dest, replace=args.overwrite)
        else:
            if os.path.isdir(dest):          # like cp: into the folder, as NAME.efsraw
                dest = os.path.join(dest, os.path.basename(os.path.normpath(args.src)) + SUFFIX)
            r = backup(args.src, dest, directory=args.directory, overwrite=args.overwrite,
                       backend=backend_from(args), cancel=token)
    if args.json:
        emit(args, record("backup", ExitCode.OK, source=args.src, dest=dest, bytes=r.bytes,
                          object={"path": r.path, "output": dest, "calls": r.calls}))
    elif dest != STDIO:
        say(f"backed up {r.path} to {dest} ({r.bytes} bytes)")
    return ExitCode.OK


# ---- the parsers ----

def add_inspect(sub: Any, mode: argparse.ArgumentParser) -> None:
    s = sub.add_parser("inspect", parents=[mode],
                       help="describe a raw stream: its $EFS entries and data streams")
    s.add_argument("file", metavar="FILE", help="a raw stream file (a .efsraw backup), an "
                   "encrypted object on an efs_raw mount, or - for standard input")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_inspect)


def add_verify(sub: Any, mode: argparse.ArgumentParser) -> None:
    from .crypto import add_verify_options
    s = sub.add_parser("verify", parents=[mode],
                       help="validate raw streams (exit 0 only if all are valid)")
    s.add_argument("files", nargs="+", metavar="FILE",
                   help="raw streams, encrypted objects, folders holding them, or - for "
                        "standard input")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    add_verify_options(s)
    s.set_defaults(func=cmd_verify)


def add_synth(sub: Any) -> None:
    from ..sizes import SIZE_HELP, count_type, size_type
    s = sub.add_parser("synth", help="write a synthetic (made-up but valid) raw stream of any "
                       "size, to try restore, verify and the tools without Windows")
    s.add_argument("output", metavar="OUTPUT",
                   help="the raw stream file to write, or - for standard output")
    s.add_argument("--size", type=size_type(), default=4096,
                   help=f"logical size of the unnamed data stream (default 4096): {SIZE_HELP}")
    s.add_argument("--stream", type=stream_arg, action="append", default=[],
                   metavar="NAME=SIZE",
                   help="also a named data stream NAME (an alternate data stream) of SIZE "
                        "bytes, SIZE as for --size; repeatable")
    s.add_argument("--directory", action="store_true",
                   help="an encrypted directory: $EFS and named streams only, no unnamed "
                        "stream (--size is not used)")
    s.add_argument("--users", type=count_type(1), default=1, metavar="N",
                   help="how many made-up users the $EFS lists (DDF entries; default 1)")
    s.add_argument("--recovery-agents", type=count_type(0), default=0, metavar="N",
                   help="how many made-up recovery agents it lists (DRF entries; default 0)")
    s.add_argument("--seed", type=int, default=None, metavar="N",
                   help="random seed: the same seed and options give the same bytes "
                        "(default: different bytes each run)")
    s.add_argument("--overwrite", "--force", dest="overwrite", action="store_true",
                   help="replace OUTPUT if it exists (the old one stays whole until the new "
                        "one is complete)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
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
