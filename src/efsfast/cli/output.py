"""What the command line says: exit codes, errors as one line or as JSON
fields, and the summary of a tree job with its failures."""
from __future__ import annotations

import enum
import json
import os
import sys

from .. import ObjectMismatchError, RawFormatError

TYPE_CHECKING = False           # as in efsfast/__init__.py: no typing import at start-up
if TYPE_CHECKING:
    import argparse
    from typing import Any, Dict, List, Optional

    from ..raw import RawInfo
    from ..tree import TreeResult


class ExitCode(enum.IntEnum):
    """The exit status of every command (docs/COMMAND-LINE.md)."""
    OK = 0                  # everything asked was done (or found as it should be)
    FAILED = 1              # some items failed, or the check failed
    REFUSED = 2             # usage or environment refused before any work was done
    INTERRUPTED = 130       # Ctrl-C: what was done is whole and counted


def info_dict(info: RawInfo) -> Dict[str, Any]:
    import dataclasses
    return dataclasses.asdict(info) | {"is_directory_like": info.is_directory_like}


def error_dict(exc: BaseException) -> Dict[str, Any]:
    """An error as JSON fields; a format error names its source (the raw
    stream's path, null for a stream that has none), rule and offset."""
    d: Dict[str, Any] = {
        "error": type(exc).__name__,
        "message": getattr(exc, "strerror", None) or str(exc),
        "errno": getattr(exc, "errno", None), "winerror": getattr(exc, "winerror", None)}
    if isinstance(exc, RawFormatError):
        d.update(rule=exc.rule, offset=exc.offset, code=exc.code, source=exc.filename)
    elif isinstance(exc, ObjectMismatchError):
        d.update(expected_sha256=exc.expected_sha256, sha256=exc.sha256,
                 expected_size=exc.expected_size, size=exc.size)
    return d


def describe(exc: BaseException, path: Optional[str] = None) -> str:
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


def fail(args: argparse.Namespace, exc: BaseException, code: int, **fields: Any) -> int:
    """Report a command that failed as a whole: a JSON record on stdout with
    --json (the same fields as a tree job's failures), a line on stderr
    otherwise."""
    if getattr(args, "json", False):
        # "path": the object the command was about (a restore's destination
        # even where a format error names the raw stream as its source)
        path = getattr(exc, "dest", None) or getattr(exc, "filename", None)
        print(json.dumps({"command": args.command, "ok": False, "path": path}
                         | fields | error_dict(exc)))
    else:
        print(f"efsfast: {describe(exc)}", file=sys.stderr)
    return code


def print_info(path: str, info: RawInfo) -> None:
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


# ---- tree jobs ----

EXISTS_HINT = "it exists (add --overwrite to replace it, or --skip-existing to keep it)"


def failure_records(result: TreeResult, restore: bool) -> List[Dict[str, Any]]:
    """One JSON record per failed item: the object, the file on the other
    side (the raw stream it came from, or the backup file it was to go
    to), and the error's fields."""
    out = []
    for e in result.failures:
        other = result.jobs[e.index][1] if 0 <= e.index < len(result.jobs) else None
        rec: Dict[str, Any] = {"index": e.index, "path": e.dest,
                               "source" if restore else "dest":
                               None if other is None else os.fspath(other)}
        rec |= error_dict(e.error)
        rec["text"] = (EXISTS_HINT if isinstance(e.error, FileExistsError)
                       else describe(e.error, e.dest))
        out.append(rec)
    return out


def print_failures(failures: List[Dict[str, Any]]) -> None:
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


def report_tree(args: argparse.Namespace, kind: str, result: TreeResult,
                extra: Dict[str, Any], interrupted: bool = False) -> int:
    """The summary of a tree job (``result``: a TreeResult), its failures
    named one by one; with --json one record on stdout."""
    bulk = result.bulk
    # restore-tree and decrypt-tree jobs are (object, raw stream it came from)
    failures = failure_records(result, restore=kind.startswith(("restore", "decrypt")))
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
            print_failures(failures)
    if interrupted:
        return ExitCode.INTERRUPTED
    return ExitCode.FAILED if failures else ExitCode.OK
