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
    from typing import Any, Dict, List, Optional, Sequence, Tuple

    from ..api import ItemError
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
    text = _in_our_words(exc)
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


# a group of failures names this many of its items; the rest are counted
# (--json lists every one)
NAMED_PER_CAUSE = 5
# what a tree job does to each item, for "not restored" and the like
DONE = {"backup-tree": "backed up", "restore-tree": "restored", "decrypt-tree": "decrypted"}


def cause(exc: BaseException) -> str:
    """What went wrong, in a person's words, naming no file: the line that
    failures of many items share."""
    if isinstance(exc, FileExistsError):
        return EXISTS_HINT
    if isinstance(exc, RawFormatError):
        return f"not a valid raw stream: {exc.strerror}"
    if isinstance(exc, OSError):
        return _in_our_words(exc)
    return str(exc)


def _in_our_words(exc: OSError) -> str:
    """The error's text, the API's advice in it said as the command line's."""
    return (exc.strerror or str(exc)).replace("pass overwrite=True", "add --overwrite")


class CauseGroup:
    """The failed items that share one cause: ``own`` failed for it
    themselves, ``inside`` only because a folder they lie in failed for it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.own: List[str] = []        # item lines: the path, and another file at fault
        self.inside: List[str] = []

    def __len__(self) -> int:
        return len(self.own) + len(self.inside)


def _item_line(path: str, exc: BaseException) -> str:
    """The item's path, and the other file the error names (the raw stream
    a restore read, the backup file it wrote) where there is one."""
    other = getattr(exc, "filename", None) if isinstance(exc, OSError) else None
    if other is None or os.fspath(other) == path:
        return path
    return f"{path}  ({os.fspath(other)})"


def group_failures(failures: Sequence[ItemError]) -> List[CauseGroup]:
    """The failures by cause, the largest group first.  An item that failed
    only because an encrypted folder above it failed (its error's
    ``blocked_by``, see efsfast.treefolders) counts under that folder's
    cause: a cascade never hides why the folder failed."""
    by_path = {e.dest: e.error for e in failures}

    def root_cause(exc: BaseException) -> Tuple[str, bool]:
        inside = False
        seen = set()
        folder = getattr(exc, "blocked_by", None)
        while folder is not None and folder in by_path and folder not in seen:
            seen.add(folder)
            exc, inside = by_path[folder], True
            folder = getattr(exc, "blocked_by", None)
        return cause(exc), inside

    groups: Dict[str, CauseGroup] = {}
    for e in failures:
        text, inside = root_cause(e.error)
        g = groups.setdefault(text, CauseGroup(text))
        (g.inside if inside else g.own).append(_item_line(e.dest, e.error))
    # stable: groups of one size keep the order of their first item
    return sorted(groups.values(), key=len, reverse=True)


def print_failures(groups: List[CauseGroup], kind: str) -> None:
    """The failures, one paragraph per cause: how many items, the cause
    (wrapped to the terminal), the first few items by name, the rest
    counted.  A path is printed whole, never cut or wrapped."""
    import shutil
    import textwrap
    cols = max(shutil.get_terminal_size((100, 24)).columns, 40)
    done = DONE.get(kind, "done")
    for g in groups:
        n = len(g)
        head = f"{n} item{'s' if n != 1 else ''} failed: {g.text}"
        print(textwrap.fill(head, cols - 1, initial_indent="  ", subsequent_indent="    "))
        items = g.own + g.inside
        for line in items[:NAMED_PER_CAUSE]:
            print(f"    {line}")
        if n > NAMED_PER_CAUSE:
            print(f"    and {n - NAMED_PER_CAUSE} more (--json lists every one)")
        if g.inside:
            print(f"    ({len(g.inside)} of them not {done} only because an encrypted folder "
                  "they are in failed)")


def _resume_hint(args: argparse.Namespace, kind: str, extra: Dict[str, Any]) -> Optional[str]:
    """How to finish an interrupted job: the same command with
    --skip-existing, where that command takes it (a tar stream on stdout
    does not) and no note says it already."""
    if kind == "backup-tree" and getattr(args, "dest", None) == "-":
        return None
    if kind not in DONE or any("--skip-existing" in n for n in extra.get("notes", ())):
        return None
    return (f"to finish, run the same {kind} again with --skip-existing: what was "
            f"{DONE[kind]} is kept, the rest is done")


def report_tree(args: argparse.Namespace, kind: str, result: TreeResult,
                extra: Dict[str, Any], interrupted: bool = False) -> int:
    """The summary of a tree job (``result``: a TreeResult): with --json one
    record on stdout, every failure in it; otherwise the failures grouped by
    cause, then the summary itself, last, where it stays on the screen.  A
    progress bar must be closed before (see Progress.close)."""
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
        if failures:
            print_failures(group_failures(result.failures), kind)
        print(f"{kind}: {bulk.files} done, {len(failures)} failed, "
              + (f"{result.not_done} not done, " if result.not_done else "")
              + f"{bulk.bytes / 1e6:.1f} MB" + (" (interrupted)" if interrupted else ""))
        for k, v in extra.items():
            if k == "notes":            # lines to print as they are
                for line in v:
                    print(f"  {line}")
            elif v and not isinstance(v, bool):     # (flags are for --json)
                print(f"  {k}: {v if not isinstance(v, list) else len(v)}")
        hint = _resume_hint(args, kind, extra) if interrupted else None
        if hint:
            print(f"  {hint}")
    if interrupted:
        return ExitCode.INTERRUPTED
    return ExitCode.FAILED if failures else ExitCode.OK
