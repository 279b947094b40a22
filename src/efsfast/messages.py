"""How efsfast words an error for a person and for a script: one voice for
every command and for what the library writes down (a set's manifest
records why an object failed).

- :func:`describe`: one line, the file at fault (as the user named it),
  then the cause in the system's words: ``strerror`` on POSIX, never a
  Python class name, a repr or an ``[Errno N]`` prefix.
- :func:`error_fields`: the same error as the fields of a failure in the
  ``--json`` record (``src/efsfast/schema/record-v1.json``): ``error`` (the
  text), ``kind`` (a stable token, :class:`ErrorKind`), ``errno``,
  ``winerror`` and, for a format error, ``rule``, ``offset``, ``code``.

An exception class outside this module that has a kind of its own (a key
file, a missing optional package, the object store) says so with a class
attribute ``error_kind`` holding an :class:`ErrorKind` value, so this module
imports none of them.
"""
from __future__ import annotations

import enum
import errno as _errno
import os

from ._errors import CancelledError, ObjectMismatchError, RawFormatError, RefusedError

TYPE_CHECKING = False           # no typing import at start-up (the command line imports this)
if TYPE_CHECKING:
    from typing import Any, Dict, Optional

STDIO = "-"
STDIN_NAME = "standard input"
STDOUT_NAME = "standard output"


class ErrorKind(enum.Enum):
    """What kind of failure, for scripts (the ``kind`` of a failure record)."""
    USAGE = "usage"                 # the command line itself
    KEY = "key"                     # a key file or its password
    DEPENDENCY = "dependency"       # an optional package is missing
    REFUSED = "refused"             # a destination or set that must not be touched
    NOT_FOUND = "not_found"
    EXISTS = "exists"
    NOT_A_DIRECTORY = "not_a_directory"
    IS_A_DIRECTORY = "is_a_directory"
    PERMISSION = "permission"
    NO_SPACE = "no_space"
    FORMAT = "format"               # a raw stream breaks a rule of the spec
    MISMATCH = "mismatch"           # an object differs from its manifest line
    NOT_DECRYPTABLE = "not_decryptable"
    PROBLEM = "problem"             # verify-set found the set not as written
    BROKEN_PIPE = "broken_pipe"     # standard output was closed
    INTERRUPTED = "interrupted"     # Ctrl-C
    IO = "io"                       # any other system error
    ERROR = "error"                 # anything else


# checked in this order: the first class that matches gives the kind
_BY_CLASS = (
    (RawFormatError, ErrorKind.FORMAT),
    (ObjectMismatchError, ErrorKind.MISMATCH),
    (RefusedError, ErrorKind.REFUSED),
    (CancelledError, ErrorKind.INTERRUPTED),
    (KeyboardInterrupt, ErrorKind.INTERRUPTED),
    (BrokenPipeError, ErrorKind.BROKEN_PIPE),
    (FileNotFoundError, ErrorKind.NOT_FOUND),
    (FileExistsError, ErrorKind.EXISTS),
    (NotADirectoryError, ErrorKind.NOT_A_DIRECTORY),
    (IsADirectoryError, ErrorKind.IS_A_DIRECTORY),
    (PermissionError, ErrorKind.PERMISSION),
)
_NO_SPACE = {_errno.ENOSPC, getattr(_errno, "EDQUOT", _errno.ENOSPC)}


def kind(exc: BaseException) -> ErrorKind:
    own = getattr(exc, "error_kind", None)
    if own is not None:
        return ErrorKind(own)
    for cls, k in _BY_CLASS:
        if isinstance(exc, cls):
            return k
    if isinstance(exc, OSError):
        return ErrorKind.NO_SPACE if exc.errno in _NO_SPACE else ErrorKind.IO
    return ErrorKind.ERROR


def cause(exc: BaseException) -> str:
    """The error's own words, without the file it names: an OSError's
    ``strerror`` (the system's wording on POSIX), a format error's rule,
    offset and detail; never ``[Errno N]`` or a class name."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, OSError):
        text = exc.strerror
        if not text and exc.errno is not None:
            text = os.strerror(exc.errno)
        if not text:
            text = str(exc) if exc.args else ""
        return text or "failed"
    text = str(exc)
    if not text:                        # an exception raised without a message
        return "failed" if exc.__cause__ is None else cause(exc.__cause__)
    return text


def display_name(name: object) -> Optional[str]:
    """A path as a message shows it; ``-`` and a missing name (a stream
    that has no path) become "standard input"."""
    if name is None:
        return None
    if isinstance(name, bytes):
        return os.fsdecode(name)
    return os.fspath(name) if isinstance(name, (str, os.PathLike)) else str(name)


def describe(exc: BaseException, path: Optional[str] = None) -> str:
    """One line for a person: the file at fault, then what went wrong (the
    file is left out where ``path`` already names it, as a table row
    does)."""
    if isinstance(exc, RawFormatError):
        where = display_name(exc.filename) or STDIN_NAME
        if where == STDIO:
            where = STDIN_NAME
        dest = display_name(getattr(exc, "dest", None))
        text = f"not a valid raw stream: {exc.strerror}"
        if where != path:
            text = f"{where}: {text}"
        return text + (f" (nothing was written to {dest})" if dest and dest != path else "")
    text = cause(exc)
    name = display_name(getattr(exc, "filename", None)) if isinstance(exc, OSError) else None
    if name is None or name == path or text.startswith(f"{name}:"):
        return text
    return f"{name}: {text}"


def error_fields(exc: BaseException, path: Optional[str] = None) -> Dict[str, Any]:
    """The fields of a failure record (schema record-v1, ``failure``) for
    ``exc``; ``path`` is the object the failure is about, where the caller
    knows it better than the error does (a restore's destination)."""
    if path is None and isinstance(exc, OSError):
        path = display_name(getattr(exc, "dest", None) or exc.filename)
    out: Dict[str, Any] = {
        "path": path, "error": describe(exc, path), "kind": kind(exc).value,
        "errno": getattr(exc, "errno", None) if isinstance(exc, OSError) else None,
        "winerror": getattr(exc, "winerror", None) if isinstance(exc, OSError) else None}
    if isinstance(exc, RawFormatError):
        out.update(rule=exc.rule, offset=exc.offset, code=exc.code,
                   source=display_name(exc.filename))
    elif isinstance(exc, ObjectMismatchError):
        out.update(expected_sha256=exc.expected_sha256, sha256=exc.sha256,
                   expected_size=exc.expected_size, size=exc.size,
                   source=display_name(exc.filename))
    return out
