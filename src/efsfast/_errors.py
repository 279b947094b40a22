"""Exceptions raised by efsfast.

Every failure that comes back from the C layers carries a Win32 error code
(`winerror`), the currency of the advapi32 raw-EFS calls, and a matching POSIX
`errno` so that ``except OSError`` code behaves sensibly on both platforms.
"""
from __future__ import annotations

import errno as _errno

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


def win32_message(winerror: int) -> str:
    return _WIN32.get(winerror, (None, f"Win32 error {winerror}"))[1]


class EfsError(OSError):
    """An EFS raw operation failed; ``winerror`` holds the Win32 code."""

    def __init__(self, winerror: int, message: str | None = None,
                 filename: object = None) -> None:
        err, text = _WIN32.get(winerror, (_errno.EIO, f"Win32 error {winerror}"))
        super().__init__(err, message or text, *(() if filename is None else (filename,)))
        self.winerror = winerror

    def __reduce__(self):
        return (type(self), (self.winerror, self.strerror, self.filename))


class RawFormatError(EfsError, ValueError):
    """A raw stream broke a validation rule (R1-R20 of the format spec).

    ``rule`` is the rule's name ("R9"), ``offset`` the absolute byte offset in
    the raw stream, ``code`` the sub-code ("E_TRAILING_GARBAGE").
    """

    def __init__(self, rule: str, offset: int, code: str, detail: str,
                 winerror: int = ERROR_INVALID_DATA, filename: object = None) -> None:
        self.rule = rule
        self.offset = offset
        self.code = code
        self.detail = detail
        super().__init__(winerror, f"{rule} {code} at offset {offset}: {detail}", filename)

    def __reduce__(self):
        return (type(self), (self.rule, self.offset, self.code, self.detail,
                             self.winerror, self.filename))


class CancelledError(EfsError):
    """A restore or backup stopped because its CancelToken was set."""
