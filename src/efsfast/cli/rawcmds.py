"""The commands on one object or raw stream: inspect, verify (without
--key), synth, restore and backup."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys

from .options import STDIO, backend_from, is_s3, whole_number
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
    """An argparse type: NAME=SIZE, a named stream of synth."""
    name, sep, size = text.partition("=")
    if not sep or not name or not size.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=SIZE (SIZE a whole number), not {text}")
    return name, int(size)


def cmd_synth(args: argparse.Namespace) -> int:
    from .. import raw
    data = raw.synthetic_raw(args.size, named_streams=dict(args.stream or ()),
                             directory=args.directory, users=args.users,
                             recovery_agents=args.recovery_agents, seed=args.seed)
    if args.output == STDIO:
        args.data_on_stdout = True
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        try:
            with open(args.output, "xb" if not args.force else "wb") as f:
                f.write(data)
        except FileExistsError as exc:
            exc.strerror = "it exists (add --force to replace it)"
            return fail(args, exc, ExitCode.FAILED)
    if args.json:
        emit(args, record("synth", ExitCode.OK, dest=args.output, bytes=len(data),
                          object={"path": args.output}))
    elif args.output != STDIO:
        say(f"wrote {args.output}: {len(data)} bytes")
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
            from ..store.single import object_source
            src = stack.enter_context(object_source(args.src))
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
    s = sub.add_parser("inspect", parents=[mode], help="describe a raw stream")
    s.add_argument("file", help="a raw stream or an encrypted object, or - for standard input")
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
    s = sub.add_parser("synth", help="write a synthetic (made-up but valid) raw stream")
    s.add_argument("output", help="the raw stream to write, or - for standard output")
    s.add_argument("--size", type=whole_number(0), default=4096,
                   help="size of the unnamed stream")
    s.add_argument("--stream", type=stream_arg, action="append", metavar="NAME=SIZE",
                   help="add a named stream (repeatable)")
    s.add_argument("--directory", action="store_true", help="an encrypted directory")
    s.add_argument("--users", type=whole_number(0), default=1)
    s.add_argument("--recovery-agents", type=whole_number(0), default=0)
    s.add_argument("--seed", type=int)
    s.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
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
