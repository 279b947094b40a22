"""Exceptions raised by efsfast.

Every failure that comes back from the C layers carries a Win32 error code
(`winerror`), the currency of the advapi32 raw-EFS calls, and a matching POSIX
`errno` so that ``except OSError`` code behaves sensibly on both platforms.
"""
from __future__ import annotations

import errno as _errno
import os as _os
import sys as _sys

TYPE_CHECKING = False           # typing itself is not imported at run time (start-up)
if TYPE_CHECKING:
    from typing import Any, Tuple

# Win32 code -> (errno, message).  Only the codes efsfast produces or maps.
_WIN32 = {
    2: (_errno.ENOENT, "The system cannot find the file specified"),
    3: (_errno.ENOENT, "The system cannot find the path specified"),
    5: (_errno.EACCES, "Access is denied"),
    6: (_errno.EBADF, "The handle is invalid"),
    8: (_errno.ENOMEM, "Not enough memory"),
    13: (_errno.EINVAL, "The data is invalid"),
    29: (_errno.EIO, "The system cannot write to the specified device"),
    30: (_errno.EIO, "The system cannot read from the specified device"),
    31: (_errno.EIO, "A device attached to the system is not functioning"),
    32: (_errno.EBUSY, "The file is being used by another process"),
    38: (_errno.EIO, "Reached the end of the file"),
    50: (_errno.EOPNOTSUPP, "The request is not supported"),
    80: (_errno.EEXIST, "The file exists"),
    87: (_errno.EINVAL, "The parameter is incorrect"),
    112: (_errno.ENOSPC, "There is not enough space on the disk"),
    120: (_errno.ENOSYS, "This function is not supported on this system"),
    122: (_errno.ENOBUFS, "The data area passed to a system call is too small"),
    145: (_errno.ENOTEMPTY, "The directory is not empty"),
    183: (_errno.EEXIST, "Cannot create a file when that file already exists"),
    206: (_errno.ENAMETOOLONG, "The filename or extension is too long"),
    277: (_errno.E2BIG, "The extended attribute table is full"),
    267: (_errno.ENOTDIR, "The directory name is invalid"),
    282: (_errno.ENOTSUP, "The file system does not support extended attributes"),
    998: (_errno.EFAULT, "Invalid access to memory location"),
    995: (_errno.EINTR, "The I/O operation has been aborted"),
    1223: (_errno.ECANCELED, "The operation was canceled by the user"),
    6007: (_errno.EINVAL, "The specified file is not encrypted"),
}

ERROR_INVALID_DATA = 13
ERROR_NOT_SUPPORTED = 50

# Win32 codes that stand for a plain system error: off Windows their text is
# the system's own (strerror), so one run never says both "Access is denied"
# and "Permission denied".  The others keep their words: they say more than
# the errno they map to ("The specified file is not encrypted" is EINVAL).
_SYSTEM_WORDED = frozenset((2, 3, 5, 6, 8, 29, 30, 31, 32, 80, 87, 112, 145, 183, 206, 267))
_ON_WINDOWS = _sys.platform == "win32"


def win32_message(winerror: int) -> str:
    return _WIN32.get(winerror, (None, f"Win32 error {winerror}"))[1]


class EfsError(OSError):
    """An EFS raw operation failed; ``winerror`` holds the Win32 code.

    Like ``OSError(errno, ...)`` itself, ``EfsError(winerror, ...)`` gives the
    standard library's subclass for the errno where one fits: a missing file
    is an :class:`EfsError` *and* a :class:`FileNotFoundError`, an existing
    destination a :class:`FileExistsError`, and so on (``errno`` overrides the
    one the Win32 code maps to, for failures that came from a POSIX call).
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> "EfsError":
        if cls is EfsError and args:
            cls = _BY_ERRNO.get(_errno_of(*args, **kwargs), cls)
        return super().__new__(cls)

    def __init__(self, winerror: int, message: str | None = None,
                 filename: object = None, errno: int | None = None) -> None:
        # set the fields directly: OSError.__init__ ignores its arguments in
        # a subclass that defines __new__
        err, text = _WIN32.get(winerror, (_errno.EIO, f"Win32 error {winerror}"))
        self.errno = errno if errno is not None else err
        if message is None and not _ON_WINDOWS and winerror in _SYSTEM_WORDED:
            text = _os.strerror(self.errno)
        self.strerror = message or text
        if filename is not None:      # None would print as ": None"
            self.filename = filename
        self.args = (self.errno, self.strerror)
        self.winerror = winerror

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), (self.winerror, self.strerror, self.filename, self.errno))


def _errno_of(winerror: int, message: object = None, filename: object = None,
              errno: int | None = None) -> int:
    return errno if errno is not None else _WIN32.get(winerror, (_errno.EIO,))[0]


def _efs_subclass(base: type) -> type:
    """EfsError and ``base`` (FileNotFoundError, ...) at once; a module-level
    class, so pickling finds it by name."""
    cls = type(f"Efs{base.__name__}", (EfsError, base), {
        "__module__": __name__,
        "__doc__": f"An EfsError that is also a {base.__name__}."})
    globals()[cls.__name__] = cls
    return cls


# errno -> the standard library's OSError subclass (what OSError(errno, ...) picks)
_BY_ERRNO = {}
for _base in (BlockingIOError, ChildProcessError, ConnectionError, BrokenPipeError,
              ConnectionAbortedError, ConnectionRefusedError, ConnectionResetError,
              FileExistsError, FileNotFoundError, InterruptedError, IsADirectoryError,
              NotADirectoryError, PermissionError, ProcessLookupError, TimeoutError):
    _sub = _efs_subclass(_base)
    for _code, _cls in ((e, type(OSError(e, ""))) for e in _errno.errorcode):
        if _cls is _base:
            _BY_ERRNO[_code] = _sub


def as_efs_error(exc: OSError, filename: object = None) -> EfsError:
    """An OSError from a plain system call as the EfsError of the same kind
    (FileNotFoundError stays one), naming ``filename`` where given."""
    if isinstance(exc, EfsError):
        return exc
    err = exc.errno if exc.errno is not None else _errno.EIO
    winerror = next((w for w, (e, _t) in _WIN32.items() if e == err), 31)
    return EfsError(winerror, exc.strerror or str(exc),
                    filename if filename is not None else exc.filename, err)


class RawFormatError(EfsError, ValueError):
    """A raw stream broke a validation rule (R1-R20 of the format spec).

    ``rule`` is the rule's name ("R9"), ``offset`` the absolute byte offset in
    the raw stream, ``code`` the sub-code ("E_TRAILING_GARBAGE").
    """
    dest: object = None     # the destination a restore left as it was, where there was one

    def __init__(self, rule: str, offset: int, code: str, detail: str,
                 winerror: int = ERROR_INVALID_DATA, filename: object = None) -> None:
        self.rule = rule
        self.offset = offset
        self.code = code
        self.detail = detail
        super().__init__(winerror, f"{rule} {code} at offset {offset}: {detail}", filename)

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), (self.rule, self.offset, self.code, self.detail,
                             self.winerror, self.filename))


class RefusedError(EfsError):
    """A job refused before it did any work, since going on would replace or
    mix with what it must not touch (a folder that holds another set or
    other files, a set another backup is writing, an incomplete set given
    to a restore): the command line exits 2 and names the cause."""


class CancelledError(EfsError):
    """A restore or backup stopped because its CancelToken was set."""


class ObjectMismatchError(EfsError, ValueError):
    """A raw stream a restore read is not the one its backup set's manifest
    lists: its size or SHA-256 differs (a damaged, truncated or swapped
    object).  The restore checked it as the bytes passed and published
    nothing.  ``filename`` is the raw stream; ``expected_sha256`` /
    ``expected_size`` are the manifest's, ``sha256`` / ``size`` what was
    read (``sha256`` is None where the rest could not be read to hash it)."""

    def __init__(self, filename: object, expected_size: int, expected_sha256: str,
                 size: int, sha256: str | None, detail: str | None = None) -> None:
        self.expected_size, self.expected_sha256 = expected_size, expected_sha256
        self.size, self.sha256 = size, sha256
        self.detail = detail
        got = (f"SHA-256 {sha256} ({size:,} bytes)" if sha256 is not None else
               f"{size:,} bytes or more, whose SHA-256 could not be made (the rest was unreadable)")
        super().__init__(ERROR_INVALID_DATA,
                         f"does not match the manifest: expected SHA-256 {expected_sha256} "
                         f"({expected_size:,} bytes), got {got}"
                         + (f"; {detail}" if detail else "") + "; nothing of it was restored",
                         filename)

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), (self.filename, self.expected_size, self.expected_sha256,
                             self.size, self.sha256, self.detail))
