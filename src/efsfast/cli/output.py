"""What the command line says: exit codes, errors as one line or as the
failures of a --json record, and the summary of a tree job.

Every --json record is made here (:func:`record`) and printed here
(:func:`emit`), so every command follows the one schema the package ships
(``efsfast/schema/record-v1.json``, docs/JSON-OUTPUT.md): ``schema``,
``command``, ``ok`` (a boolean), ``exit_code``, ``interrupted``,
``failures``, and the command's own fields."""
from __future__ import annotations

import enum
import json
import os
import sys

from .. import RawFormatError


TYPE_CHECKING = False           # as in efsfast/__init__.py: no typing import at start-up
if TYPE_CHECKING:
    import argparse
    from typing import Any, Dict, Iterable, List, Optional, Sequence, TextIO, Tuple

    from ..api import ItemError
    from ..raw import RawInfo
    from ..tree import TreeResult


class ExitCode(enum.IntEnum):
    """The exit status of every command (docs/JSON-OUTPUT.md)."""
    OK = 0                  # everything asked was done (or found as it should be)
    FAILED = 1              # some items failed, or the check failed
    REFUSED = 2             # usage or environment refused before any work was done
    INTERRUPTED = 130       # Ctrl-C: what was done is whole and counted


EXISTS_HINT = "it exists (add --overwrite to replace it, or --skip-existing to keep it)"


def describe(exc: BaseException, path: Optional[str] = None) -> str:
    """One line for a person (efsfast.messages.describe), with the API's
    advice in the command line's words."""
    from ..messages import describe as describe_error   # (not at start-up: --version)
    return describe_error(exc, path).replace("pass overwrite=True", "add --overwrite")


def failure(exc: BaseException, path: Optional[str] = None, **extra: Any) -> Dict[str, Any]:
    """A failure of the record: the error's fields (efsfast.messages), the
    text as :func:`describe` words it, and ``extra`` (index, source, dest)."""
    from ..messages import error_fields
    out = error_fields(exc, path)
    out["error"] = describe(exc, out["path"])
    out.update(extra)
    return out


def usage_failure(message: str, option: Optional[str] = None,
                  path: Optional[str] = None) -> Dict[str, Any]:
    from ..messages import ErrorKind
    out: Dict[str, Any] = {"path": path, "error": message, "kind": ErrorKind.USAGE.value,
                           "errno": None, "winerror": None}
    if option:
        out["option"] = option
    return out


def record(command: Optional[str], code: int, failures: Iterable[Dict[str, Any]] = (),
           **fields: Any) -> Dict[str, Any]:
    """A --json record (schema record-v1): ``ok`` and ``interrupted`` follow
    from the exit code, so the three never disagree."""
    from ..schema import RECORD_VERSION
    code = int(code)
    return {"schema": RECORD_VERSION, "command": command, "ok": code == ExitCode.OK,
            "exit_code": code, "interrupted": code == ExitCode.INTERRUPTED,
            **fields, "failures": list(failures)}


def _stream(args: Optional[argparse.Namespace]) -> TextIO:
    """stdout, or stderr where stdout carries the data (a tar stream, a raw
    stream, plaintext on ``-``)."""
    return sys.stderr if getattr(args, "data_on_stdout", False) else sys.stdout


def emit(args: Optional[argparse.Namespace], rec: Dict[str, Any]) -> None:
    """Print one record; a reader that went away ends it quietly."""
    write(_stream(args), json.dumps(rec, indent=2) + "\n")


def write(stream: TextIO, text: str) -> bool:
    """Write and flush ``text``; False (and stdout quietened) where the
    reader closed the pipe: no traceback, no 'Exception ignored' at exit."""
    try:
        try:
            stream.write(text)
        except UnicodeEncodeError:      # a file name the terminal's encoding cannot show
            stream.write(printable(text, getattr(stream, "encoding", None) or "utf-8"))
        stream.flush()
        return True
    except BrokenPipeError:
        quieten_stdout()
        return False


NAMES_ERRORS = "efsfast-names"


def _escape_unencodable(exc: UnicodeError) -> Tuple[str, int]:
    """The codec error handler of :data:`NAMES_ERRORS`: a byte of a name
    that is not UTF-8 (os.fsdecode's lone surrogate U+DC80-U+DCFF) as
    ``\\xNN``, as a backup set's manifest records it; any other character
    the stream's encoding lacks as ``\\uNNNN``."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    out = []
    for ch in exc.object[exc.start:exc.end]:
        n = ord(ch)
        out.append(f"\\x{n - 0xDC00:02x}" if 0xDC80 <= n <= 0xDCFF else
                   f"\\u{n:04x}" if n <= 0xFFFF else f"\\U{n:08x}")
    return "".join(out), exc.end


def _register() -> None:
    import codecs
    try:
        codecs.lookup_error(NAMES_ERRORS)
    except LookupError:
        codecs.register_error(NAMES_ERRORS, _escape_unencodable)


def show_names_escaped() -> None:
    """The efsfast program's standard output and error show what their
    encoding cannot (file names of other bytes than UTF-8) escaped, never
    failing on them (else a summary naming such a file would end in a
    UnicodeEncodeError, or show raw bytes under a C locale)."""
    _register()
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors=NAMES_ERRORS)
            except (ValueError, OSError):
                pass            # (a stream already written in another way)


def printable(text: str, encoding: str) -> str:
    """``text`` as a stream in ``encoding`` can take it, escaped as
    :func:`show_names_escaped` has the program's own streams escape it."""
    _register()
    return text.encode(encoding, NAMES_ERRORS).decode(encoding)


def quieten_stdout() -> None:
    """Standard output's reader went away: point it at the null device, so
    that the interpreter's last flush has nowhere to fail."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return                  # (not a real file: a test's capture)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


def say(text: str) -> None:
    """A line of the text output (stdout, or stderr where stdout carries data)."""
    write(sys.stdout, text + "\n")


def wants_json(args: Optional[argparse.Namespace]) -> bool:
    return bool(getattr(args, "json", False))


def fail(args: argparse.Namespace, exc: BaseException, code: int,
         path: Optional[str] = None, **fields: Any) -> int:
    """A command that failed as a whole: one record with --json, a line on
    stderr otherwise; returns ``code``.  ``path``: what the failure is
    about where the error does not name it (``-`` for a closed pipe)."""
    if wants_json(args):
        emit(args, record(args.command, code, [failure(exc, path)], **fields))
    else:
        write(sys.stderr, f"efsfast: {describe(exc)}\n")
    return code


def refuse(args: argparse.Namespace, message: str, option: Optional[str] = None,
           path: Optional[str] = None) -> int:
    """A command refused before any work for a reason of the command line's
    own (exit 2): one record with --json, a line on stderr otherwise."""
    if wants_json(args):
        emit(args, record(args.command, ExitCode.REFUSED,
                          [usage_failure(message, option, path)]))
    else:
        write(sys.stderr, f"efsfast: {message}\n")
    return ExitCode.REFUSED


def require_sources(args: argparse.Namespace, *paths: str) -> Optional[int]:
    """A missing source is refused before any work (exit 2), as the tree
    jobs refuse a missing SRC_DIR; None where every one is there.  ``-`` and
    s3:// URLs are not looked for."""
    for p in paths:
        if p == "-" or p.lower().startswith("s3://") or os.path.lexists(p):
            continue
        import errno
        return fail(args, FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), p),
                    ExitCode.REFUSED)
    return None


def require_folder(args: argparse.Namespace, path: str) -> Optional[int]:
    """A SET or SRC_DIR that is missing or not a folder is refused before
    any work (exit 2), in the tree jobs' words; None where it is one (or is
    ``-`` or an s3:// URL)."""
    if path == "-" or path.lower().startswith("s3://"):
        return None
    from ..treewalk import check_source_dir
    try:
        check_source_dir(path)
    except OSError as exc:
        return fail(args, exc, ExitCode.REFUSED)
    return None


def info_dict(info: RawInfo) -> Dict[str, Any]:
    import dataclasses
    return dataclasses.asdict(info) | {"is_directory_like": info.is_directory_like}


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

def failure_records(result: TreeResult, restore: bool) -> List[Dict[str, Any]]:
    """One failure per failed item: the object, the file on the other side
    (the raw stream it came from, or the backup file it was to go to), and
    the error's fields."""
    out = []
    for e in result.failures:
        other = result.jobs[e.index][1] if 0 <= e.index < len(result.jobs) else None
        rec = failure(e.error, e.dest, index=e.index)
        rec["source" if restore else "dest"] = None if other is None else os.fspath(other)
        if isinstance(e.error, FileExistsError):
            rec["error"] = EXISTS_HINT
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


# the text summary's name for each count (the record's keys are snake_case)
COUNT_LABELS = {"directories": "directories", "skipped_not_encrypted": "skipped (not encrypted)",
                "skipped_existing": "skipped (already there)",
                "unchanged": "unchanged (in earlier sets)", "verified": "verified"}


def tree_summary(r: Any, backup: bool, folder: bool = True) -> Dict[str, Any]:
    """A tree job's fields past done/failed/not_done (schema record-v1):
    ``counts`` to add, and the set's facts; ``notes`` are lines the text
    summary prints as they are."""
    counts: Dict[str, int] = {"directories": r.directories,
                              "skipped_existing": len(r.existing)}
    out: Dict[str, Any] = {"counts": counts, "skipped": {"existing": list(r.existing)}}
    if hasattr(r, "skipped") and backup:
        counts["skipped_not_encrypted"] = len(r.skipped)
        out["skipped"]["not_encrypted"] = list(r.skipped)
    notes: List[str] = []
    if getattr(r, "set_id", ""):
        counts["unchanged"] = r.unchanged
        if not backup:      # restored objects whose size and SHA-256 matched the manifest
            counts["verified"] = r.verified
            out["verified"] = True
        out["set_id"] = r.set_id
    complete = getattr(r, "complete", None)
    if backup and complete is not None:
        out["complete"] = complete
        if not complete:
            out["incomplete_reason"] = r.reason
            notes.append(f"the set is incomplete ({r.reason})" + (
                ": resume it with backup-tree --skip-existing" if folder else ""))
    elif complete is False:         # restore-tree --partial
        out["complete"] = False
        notes.append("an incomplete set: restored only what it lists")
    elif complete is None and not backup:
        out["verified"] = False     # a folder of raw streams with no manifest
        notes.append("not verified: no manifest")
    if notes:
        out["notes"] = notes
    return out


def report_tree(args: argparse.Namespace, kind: str, result: TreeResult,
                extra: Dict[str, Any], interrupted: bool = False,
                failed: Optional[Dict[str, Any]] = None) -> int:
    """The summary of a tree job (``result``: a TreeResult; ``extra``: what
    :func:`tree_summary` gives, and ``truncated`` or more notes): with
    --json one record, every failure in it; otherwise the failures grouped
    by cause, then the summary itself, last, where it stays on the screen.
    ``failed``: a failure of the run as a whole (a set left incomplete, a
    stream that ended early), listed where no item stands for it: the exit
    code is then at least 1.  A progress bar must be closed before (see
    Progress.close)."""
    bulk = result.bulk
    # restore-tree and decrypt-tree jobs are (object, raw stream it came from)
    items = failure_records(result, restore=kind.startswith(("restore", "decrypt")))
    interrupted = interrupted or bulk.cancelled
    code = (ExitCode.INTERRUPTED if interrupted else
            ExitCode.FAILED if items or failed else ExitCode.OK)
    failures = items + ([failed] if failed is not None and not items else [])
    extra = dict(extra)
    counts = {"done": bulk.files, "failed": len(items), "not_done": result.not_done}
    counts |= extra.pop("counts", {})
    if wants_json(args):
        emit(args, record(kind, code, failures, counts=counts, bytes=bulk.bytes,
                          source=args.src, dest=args.dest, **extra))
        return code
    if items:
        print_failures(group_failures(result.failures), kind)
    lines = [f"{kind}: {bulk.files} done, {len(items)} failed, "
             + (f"{result.not_done} not done, " if result.not_done else "")
             + f"{bulk.bytes / 1e6:.1f} MB" + (" (interrupted)" if interrupted else "")]
    for key, label in COUNT_LABELS.items():
        if counts.get(key):
            lines.append(f"  {label}: {counts[key]}")
    if extra.get("set_id"):
        lines.append(f"  set: {extra['set_id']}")
    if extra.get("truncated"):
        lines.append(f"  truncated: {extra['truncated']}")
    lines += [f"  {line}" for line in extra.get("notes", ())]
    hint = _resume_hint(args, kind, extra) if interrupted else None
    if hint:
        lines.append(f"  {hint}")
    write(sys.stdout, "\n".join(lines) + "\n")
    return code
