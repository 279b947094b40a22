"""The efsfast command line."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading

from . import __version__
from ._errors import (CancelledError, EfsError, ObjectMismatchError, RawFormatError,
                      RefusedError)

TYPE_CHECKING = False           # as in __init__.py: no typing import at start-up
if TYPE_CHECKING:
    from typing import Collection, Iterator, List, Optional, Sequence

    from . import raw
    from ._core import CancelToken

# A command's modules are imported when it runs, not at start-up (the start-up
# is a tenth of a short tree job on ntfs-3g): see build_parser.

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _info_dict(info: raw.RawInfo) -> dict:
    import dataclasses
    return dataclasses.asdict(info) | {"is_directory_like": info.is_directory_like}


def _error_dict(exc: BaseException) -> dict:
    """An error as JSON fields; a format error names its source (the raw
    stream's path, null for a stream that has none), rule and offset."""
    d = {"error": type(exc).__name__,
         "message": getattr(exc, "strerror", None) or str(exc),
         "errno": getattr(exc, "errno", None), "winerror": getattr(exc, "winerror", None)}
    if isinstance(exc, RawFormatError):
        d.update(rule=exc.rule, offset=exc.offset, code=exc.code, source=exc.filename)
    elif isinstance(exc, ObjectMismatchError):
        d.update(expected_sha256=exc.expected_sha256, sha256=exc.sha256,
                 expected_size=exc.expected_size, size=exc.size)
    return d


def _describe(exc: BaseException, path: Optional[str] = None) -> str:
    """One line for a person: the file at fault, then what went wrong (the
    file is left out where ``path`` already names it)."""
    if isinstance(exc, RawFormatError):
        where = exc.filename or "the raw stream"
        dest = getattr(exc, "dest", None)
        return (f"{where}: not a valid raw stream: {exc.strerror}"
                + (f" (nothing was written to {dest})" if dest and dest != path else ""))
    if not isinstance(exc, OSError):
        return str(exc)
    # the API's advice, in the command line's words
    text = (exc.strerror or str(exc)).replace("pass overwrite=True", "add --overwrite")
    name = exc.filename
    return text if name is None or os.fspath(name) == path else f"{name}: {text}"


def _fail(args: argparse.Namespace, exc: BaseException, code: int, **fields) -> int:
    """Report a command that failed as a whole: a JSON record on stdout with
    --json (the same fields as a tree job's failures), a line on stderr
    otherwise."""
    if getattr(args, "json", False):
        # "path": the object the command was about (a restore's destination
        # even where a format error names the raw stream as its source)
        path = getattr(exc, "dest", None) or getattr(exc, "filename", None)
        print(json.dumps({"command": args.command, "ok": False, "path": path}
                         | fields | _error_dict(exc)))
    else:
        print(f"efsfast: {_describe(exc)}", file=sys.stderr)
    return code


@contextlib.contextmanager
def _ctrl_c_cancels(keep: bool = False) -> Iterator[CancelToken]:
    """Ctrl-C cancels the token instead of raising KeyboardInterrupt at some
    bytecode: the job stops within one system buffer, removes what was
    partial, and returns an exact account of what was done.  A third Ctrl-C
    gives up waiting.  ``keep`` (the efsfast program itself) leaves the
    handler in place afterwards: a Ctrl-C after the summary has nothing to
    stop and must not turn a finished job's exit status into a signal's."""
    from ._core import CancelToken
    token = CancelToken()
    if threading.current_thread() is not threading.main_thread():
        yield token
        return
    presses = []

    def on_sigint(_signum, _frame):
        presses.append(1)
        token.cancel()
        if len(presses) >= 3:
            raise KeyboardInterrupt
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield token
    finally:
        if not keep:
            signal.signal(signal.SIGINT, previous)


def _print_info(path: str, info: raw.RawInfo) -> None:
    m = info.metadata
    print(f"{path}: {info.raw_size} bytes, valid")
    layout = {1: "Version 1", 2: "Version 2 (ECDH/DPAPI-NG)", 3: "Version 3 (RMS .pfile)"}
    print(f"  $EFS: {m.length} bytes, EFS_Version {m.version}, {layout.get(m.layout, '?')} layout"
          + ("" if m.supported else ", not decoded"))
    for kind, entries in (("DDF", m.ddf), ("DRF", m.drf)):
        for e in entries:
            print(f"  {kind} {e.sid or '-'}  {e.display_name or '-'}")
            print(f"      thumbprint {e.thumbprint or '-'}  container {e.container or '-'}")
            print(f"      provider {e.provider or '-'}  encrypted FEK {e.encrypted_fek_length} bytes")
    if not m.drf and m.supported:
        print("  DRF: none (no recovery agent)")
    if info.is_directory_like:
        print("  no data streams (an encrypted directory)")
    else:
        width = max(len(s.name) for s in info.streams)
        print(f"  {'stream':<{width}}  {'size':>12}  {'ciphertext':>12}  encrypted")
        for s in info.streams:
            print(f"  {s.name:<{width}}  {s.size:>12}  {s.ciphertext_size:>12}  "
                  f"{'yes' if s.encrypted else 'no'}")


def cmd_inspect(args: argparse.Namespace) -> int:
    from . import raw
    try:
        info = raw.inspect(args.file, mode=args.mode)
    except OSError as exc:
        if args.json:
            print(json.dumps({"path": args.file} | _error_dict(exc)))
        else:
            print(f"efsfast: {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps({"path": args.file} | _info_dict(info), indent=2))
    else:
        _print_info(args.file, info)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from . import raw
    if args.key:
        from .crypto import cli as crypto_cli
        return crypto_cli.cmd_verify_keys(args)
    failed = 0
    results = []
    for path in args.files:
        try:
            info = raw.verify(path, mode=args.mode)
        except OSError as exc:
            failed += 1
            results.append({"path": path, "valid": False} | _error_dict(exc))
            if not args.json:
                print(f"{path}: INVALID: {exc.strerror}")
        else:
            results.append({"path": path, "valid": True, "raw_size": info.raw_size,
                            "streams": len(info.streams)})
            if not args.json:
                print(f"{path}: ok ({info.raw_size} bytes, {len(info.streams)} data stream(s))")
    if args.json:
        print(json.dumps(results, indent=2))
    return EXIT_FAILED if failed else EXIT_OK


def _stream_arg(text: str) -> tuple:
    name, sep, size = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=SIZE, got {text!r}")
    return name, int(size)


def cmd_synth(args: argparse.Namespace) -> int:
    from . import raw
    data = raw.synthetic_raw(args.size, named_streams=dict(args.stream or ()),
                             directory=args.directory, users=args.users,
                             recovery_agents=args.recovery_agents, seed=args.seed)
    with open(args.output, "xb" if not args.force else "wb") as f:
        f.write(data)
    print(f"wrote {args.output}: {len(data)} bytes")
    return EXIT_OK


# ---- progress ----

class Progress:
    """A tqdm bar (files, MB, rate, ETA) on a terminal; silent otherwise.
    A "scanning" line shows while the tree is listed; the bar replaces it
    with the first finished item, once the total is known."""

    # counts and MB first: a narrow terminal cuts the end of the line, so
    # what is cut is the bar and the timing, never the figures
    FORMAT = ("{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} files, {postfix} "
              "|{bar}| {elapsed}<{remaining}, {rate_fmt}")

    def __init__(self, label: str, total_files: int, enabled: bool):
        self.label = label
        self.enabled = enabled and sys.stderr.isatty()
        self.bar = None
        self.files = 0
        self.scan_line = False
        self.lock = threading.Lock()     # items finish on worker threads

    def scanning(self, folder: str) -> None:
        if self.enabled:
            sys.stderr.write(f"{self.label}: scanning {folder} ...")
            sys.stderr.flush()
            self.scan_line = True

    def __call__(self, files: int, nbytes: int, total: int) -> None:
        if not self.enabled:
            return
        with self.lock:
            self._update(files, nbytes, total)

    def _clear_scan_line(self) -> None:
        if self.scan_line:
            sys.stderr.write("\r\x1b[K")
            self.scan_line = False

    def _update(self, files: int, nbytes: int, total: int) -> None:
        if self.bar is None:
            import shutil
            from tqdm import tqdm
            self._clear_scan_line()
            # a terminal that reports no size (some ptys) gets 80 columns
            sized = shutil.get_terminal_size((0, 0)).columns > 0
            self.bar = tqdm(total=total, unit="file", desc=self.label, file=sys.stderr,
                            dynamic_ncols=sized, ncols=None if sized else 80, leave=True,
                            bar_format=self.FORMAT, postfix="0.0 MB")
        self.bar.update(files - self.files)
        self.bar.set_postfix_str(f"{nbytes / 1e6:.1f} MB", refresh=False)
        self.files = files

    def close(self) -> None:
        with self.lock:
            self._clear_scan_line()
            if self.bar is not None:
                self.bar.close()
                self.bar = None


def _backend_from(args: argparse.Namespace):
    """efsfast's own system side when an option asks for it; on Windows
    advapi32 validates and ``--mode`` only affects verify and inspect."""
    mode = getattr(args, "mode", "strict")
    if getattr(args, "buffer_size", None) is None and mode == "strict":
        return None
    from .backends import PosixBackend
    from . import _core
    if not _core.HAVE_POSIX:
        return None
    return PosixBackend(buffer_size=args.buffer_size or 65536, mode=mode)


# ---- tree jobs ----

EXISTS_HINT = "it exists (add --overwrite to replace it, or --skip-existing to keep it)"


def _failure_records(result, restore: bool) -> List[dict]:
    """One JSON record per failed item: the object, the file on the other
    side (the raw stream it came from, or the backup file it was to go
    to), and the error's fields."""
    out = []
    for e in result.failures:
        other = result.jobs[e.index][1] if 0 <= e.index < len(result.jobs) else None
        rec = {"index": e.index, "path": e.dest,
               "source" if restore else "dest": None if other is None else os.fspath(other)}
        rec |= _error_dict(e.error)
        rec["text"] = (EXISTS_HINT if isinstance(e.error, FileExistsError)
                       else _describe(e.error, e.dest))
        out.append(rec)
    return out


def _print_failures(failures: List[dict]) -> None:
    """The failure table: the path column is as wide as the paths up to half
    the terminal; a longer path gets a line of its own, its error below."""
    import shutil
    import textwrap
    cols = max(shutil.get_terminal_size((100, 24)).columns, 60)
    w = max(12, min(max(len(f["path"]) for f in failures), cols // 2))
    msg_width = max(cols - w - 4, 30)
    print(f"  {'failed item':<{w}}  error")
    for f in failures:
        lines = textwrap.wrap(f["text"], msg_width) or [""]
        if len(f["path"]) > w:
            print(f"  {f['path']}")
            first = " " * w
        else:
            first = f"{f['path']:<{w}}"
        print(f"  {first}  {lines[0]}")
        for line in lines[1:]:
            print(f"  {'':<{w}}  {line}")


def _report_tree(args, kind: str, result, extra: dict, interrupted: bool = False) -> int:
    """The summary of a tree job (``result``: a TreeResult), its failures
    named one by one; with --json one record on stdout."""
    bulk = result.bulk
    # restore-tree and decrypt-tree jobs are (object, raw stream it came from)
    failures = _failure_records(result, restore=kind.startswith(("restore", "decrypt")))
    interrupted = interrupted or bulk.cancelled
    summary = {"command": kind, "ok": bulk.files, "failed": len(failures),
               "not_done": result.not_done, "bytes": bulk.bytes,
               "interrupted": interrupted} | extra
    if args.json:
        print(json.dumps(summary | {"failures": failures}, indent=2))
    else:
        print(f"{kind}: {bulk.files} done, {len(failures)} failed, "
              + (f"{result.not_done} not done, " if result.not_done else "")
              + f"{bulk.bytes / 1e6:.1f} MB" + (" (interrupted)" if interrupted else ""))
        for k, v in extra.items():
            if k == "notes":            # lines to print as they are
                for line in v:
                    print(f"  {line}")
            elif v and not isinstance(v, bool):     # (flags are for --json)
                print(f"  {k}: {v if not isinstance(v, list) else len(v)}")
        if failures:
            _print_failures(failures)
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failures else EXIT_OK


def _tree(args: argparse.Namespace, restore: bool) -> int:
    from .backupset import commands      # backup sets: manifest, metadata, tar streams
    from .treewalk import check_source_dir
    label = "restore" if restore else "backup"
    if args.src != "-" and not args.src.lower().startswith("s3://"):
        try:
            check_source_dir(args.src)       # a mistyped SRC_DIR is a usage error
        except OSError as exc:
            return _fail(args, exc, EXIT_USAGE)
    bar = Progress(label, 0, not args.json and not args.quiet)
    args.backend = _backend_from(args)
    with _ctrl_c_cancels(args.program) as token:
        args.cancel = token
        if args.src != "-":
            bar.scanning(args.src)
        try:
            run = commands.restore_tree if restore else commands.backup_tree
            return run(args, bar, _report_tree)
        except RefusedError as exc:          # refused before any work: nothing was done
            bar.close()
            return _fail(args, exc, EXIT_USAGE)
        except OSError as exc:               # the destination cannot be written, ...
            bar.close()
            return _fail(args, exc, EXIT_FAILED)
        finally:
            bar.close()


def cmd_restore_tree(args): return _tree(args, True)
def cmd_backup_tree(args): return _tree(args, False)


def _s3(name: str) -> bool:
    return name.lower().startswith("s3://")


def cmd_restore(args: argparse.Namespace) -> int:
    from .api import restore
    src = sys.stdin.buffer if args.src == "-" else args.src
    if sys.stderr.isatty() and not args.json:
        print(f"efsfast: restoring {args.src} -> {args.dest} ...", file=sys.stderr, flush=True)
    with _ctrl_c_cancels(args.program) as token, contextlib.ExitStack() as stack:
        if _s3(args.src):           # one object of a bucket: its buffer, fetched
            from .store.single import object_source
            src = stack.enter_context(object_source(args.src))
        r = restore(args.dest, src, directory=args.directory, overwrite=args.overwrite,
                    backend=_backend_from(args), cancel=token)
    out = {"path": r.path, "bytes": r.bytes, "calls": r.calls}
    print(json.dumps(out) if args.json else f"restored {r.path} ({r.bytes} bytes of raw stream)")
    return EXIT_OK


def cmd_backup(args: argparse.Namespace) -> int:
    from .api import backup
    from .tree import SUFFIX
    with _ctrl_c_cancels(args.program) as token:
        if args.dest == "-":
            backup(args.src, sys.stdout.buffer, directory=args.directory,
                   backend=_backend_from(args), cancel=token)
            return EXIT_OK
        dest = args.dest
        if _s3(dest):       # written here first, then uploaded (create-only)
            import tempfile
            from .store.single import upload_file
            with tempfile.TemporaryDirectory(prefix=".efsfast-up-") as work:
                staged = os.path.join(work, "object" + SUFFIX)
                r = backup(args.src, staged, directory=args.directory,
                           backend=_backend_from(args), cancel=token)
                upload_file(staged, dest, replace=args.overwrite)
        elif os.path.isdir(dest):            # like cp: into the folder, as NAME.efsraw
            dest = os.path.join(dest, os.path.basename(os.path.normpath(args.src)) + SUFFIX)
        if not _s3(dest):
            r = backup(args.src, dest, directory=args.directory, overwrite=args.overwrite,
                       backend=_backend_from(args), cancel=token)
    out = {"path": r.path, "output": dest, "bytes": r.bytes, "calls": r.calls}
    print(json.dumps(out) if args.json else f"backed up {r.path} to {dest} ({r.bytes} bytes)")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    import dataclasses
    from .demo import run_demo
    log = (lambda m: None) if args.json else print
    factory = None if args.json else (lambda label, n: Progress(label, n, True))
    report = run_demo(args.dir, files=args.files, seed=args.seed, workers=args.workers,
                      progress_factory=factory, log=log)
    if args.json:
        print(json.dumps(dataclasses.asdict(report) | {"ok": report.ok}, indent=2))
    else:
        print("demo: OK, every raw stream round-tripped byte for byte" if report.ok
              else f"demo: FAILED ({len(report.different)} different, "
                   f"{len(report.failures)} failed)")
        for f in report.failures:
            print(f"  {f}")
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run
    return run.main(args.bench_args)


def _whole_number(minimum: int):
    """An argparse type: an integer of at least ``minimum`` (exit 2 otherwise)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    parse.__name__ = "whole number"
    return parse


def build_parser(commands: Optional[Collection[str]] = None) -> argparse.ArgumentParser:
    """The parser of every command, or with ``commands`` one that defines in
    full at least those: the commands whose options come from modules that
    take long to import (backup sets, keys) are then left out unless named."""
    def wanted(*names: str) -> bool:
        return commands is None or any(n in commands for n in names)

    p = argparse.ArgumentParser(prog="efsfast", description=(
        "Back up and restore Windows EFS-encrypted files as ciphertext."))
    p.add_argument("--version", action="version", version=f"efsfast {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    mode = argparse.ArgumentParser(add_help=False)
    mode.add_argument("--mode", choices=("strict", "compatible"), default="strict",
                      help="validation mode (default: strict)")

    s = sub.add_parser("inspect", parents=[mode], help="describe a raw stream")
    s.add_argument("file")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_inspect)

    if wanted("verify"):
        from .crypto import cli as crypto_cli
        s = sub.add_parser("verify", parents=[mode],
                           help="validate raw streams (exit 0 only if all are valid)")
        s.add_argument("files", nargs="+", metavar="FILE")
        s.add_argument("--json", action="store_true", help="machine-readable output")
        crypto_cli.add_verify_options(s)
        s.set_defaults(func=cmd_verify)

    s = sub.add_parser("synth", help="write a synthetic (made-up but valid) raw stream")
    s.add_argument("output")
    s.add_argument("--size", type=int, default=4096, help="size of the unnamed stream")
    s.add_argument("--stream", type=_stream_arg, action="append", metavar="NAME=SIZE",
                   help="add a named stream (repeatable)")
    s.add_argument("--directory", action="store_true", help="an encrypted directory")
    s.add_argument("--users", type=int, default=1)
    s.add_argument("--recovery-agents", type=int, default=0)
    s.add_argument("--seed", type=int)
    s.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    s.set_defaults(func=cmd_synth)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--overwrite", action="store_true",
                        help="replace an existing destination (the old one stays whole until "
                             "its replacement is complete)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument("--buffer-size", type=_whole_number(1), default=None,
                        help="POSIX system side: system buffer size in bytes (default 65536)")

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

    tree_common = argparse.ArgumentParser(add_help=False, parents=[common, mode])
    tree_common.add_argument("--workers", type=_whole_number(1), default=None,
                             help="parallel workers (default: 2 on FUSE mounts such as ntfs-3g, whose daemon is single-threaded; one per CPU elsewhere)")
    tree_common.add_argument("--quiet", action="store_true", help="no progress bar")
    tree_common.add_argument("--skip-existing", action="store_true",
                             help="leave what is already at the destination alone (resume an "
                                  "interrupted run)")
    if wanted("restore-tree", "backup-tree"):
        from .backupset.commands import add_set_options
        rs = sub.add_parser("restore-tree", parents=[tree_common],
                            help="restore a backup set (folder, or - for a tar stream on stdin) "
                                 "into a tree")
        rs.add_argument("src", metavar="SET", help="set folder, or - to read a tar stream")
        rs.add_argument("dest", metavar="DEST_DIR")
        rs.set_defaults(func=cmd_restore_tree)
        bs = sub.add_parser("backup-tree", parents=[tree_common],
                            help="back up every encrypted file and folder of a tree as a backup "
                                 "set (.efsraw files and a manifest)")
        bs.add_argument("src", metavar="SRC_DIR")
        bs.add_argument("dest", metavar="SET", help="set folder, or - for a tar stream on stdout")
        bs.set_defaults(func=cmd_backup_tree)
        add_set_options(bs, rs)
    if wanted("verify-set"):
        from .backupset.commands import add_verify_set
        add_verify_set(sub, mode)              # --key: the key options

    if wanted("decrypt", "decrypt-tree"):
        from .crypto import cli as crypto_cli
        crypto_cli.register(sub, common, mode)

    s = sub.add_parser("demo", help="make a synthetic backup set, restore it, back it up "
                                    "again, check byte identity (no Windows needed)")
    s.add_argument("dir", nargs="?", default=None,
                   help="work folder (default: a temporary one, removed on success)")
    s.add_argument("--files", type=int, default=200)
    s.add_argument("--seed", type=int, default=2026)
    s.add_argument("--workers", type=_whole_number(1), default=None)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("bench", help="run the benchmarks (see benchmarks/README.md)",
                       add_help=False)
    s.add_argument("bench_args", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_bench)
    if commands is not None and not set(commands) <= set(sub.choices):
        return build_parser()            # not a command: the error lists them all
    return p


def _commands_named(argv: Sequence[str]) -> Optional[Collection[str]]:
    """The commands a parser for ``argv`` must define: the one it names; none
    for ``--version``, which answers before any command is read; all of them
    for help and usage errors, which list them."""
    for arg in argv:
        if arg in ("-h", "--help"):
            return None
        if not arg.startswith("-"):
            return (arg,)
    return () if "--version" in argv else None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command.  With ``argv`` None this is the efsfast program
    (sys.argv): Ctrl-C is then handled for the life of the process and
    blocked once the command has reported.  Pass ``argv`` to call it from
    Python without either."""
    parser = build_parser(_commands_named(sys.argv[1:] if argv is None else argv))
    # bench takes its own options (--quick, ...): hand it whatever follows
    args, rest = parser.parse_known_args(argv)
    args.program = argv is None          # the efsfast program, not a call from Python
    if args.command == "bench":
        args.bench_args = rest + args.bench_args
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return args.func(args)
    except (KeyboardInterrupt, CancelledError) as exc:
        if getattr(args, "json", False):
            print(json.dumps({"command": args.command, "ok": False, "interrupted": True}
                             | _error_dict(exc)))
        print("efsfast: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (EfsError, OSError, ValueError, TypeError) as exc:
        return _fail(args, exc, EXIT_FAILED)
    finally:
        if args.program:
            _ignore_ctrl_c_from_now_on()


def _ignore_ctrl_c_from_now_on() -> None:
    """The program has done its work and reported it: a Ctrl-C during the
    interpreter's shutdown (which puts back the default action) must not
    turn the exit status into a signal's."""
    sys.stdout.flush()
    if threading.current_thread() is not threading.main_thread():
        return
    # SIG_IGN, process-wide: a thread that does not block SIGINT could
    # otherwise take it once finalization has put the default action back
    # (CPython resets a Python-level handler to SIG_DFL at exit, but leaves
    # SIG_IGN alone); seen as exit -2 after a complete summary
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})

if __name__ == "__main__":
    sys.exit(main())
