"""NTFS metadata through the Win32 API, in the same shape ntfs-3g gives
(metadata.py): the four FILETIMEs and the attribute word of FILE_BASIC_INFO
(GetFileInformationByHandleEx / SetFileInformationByHandle, which also set
the change time), and the self-relative security descriptor
(GetKernelObjectSecurity / SetKernelObjectSecurity).  Handles are opened
with FILE_FLAG_BACKUP_SEMANTICS, so folders open too and SeBackupPrivilege /
SeRestorePrivilege (Win32Backend.enable_privileges) override the DACL; the
SACL is included only where ACCESS_SYSTEM_SECURITY is granted (it needs
SeSecurityPrivilege).  Windows only: ctypes binds kernel32 and advapi32."""
from __future__ import annotations

import ctypes
import enum
import sys
from ctypes import wintypes
from typing import Any, Dict, Optional, Tuple

if sys.platform != "win32":     # (so mypy checks the rest for Windows: .ci/typecheck)
    raise ImportError("efsfast.backupset.metadata_win32 is for Windows only")

FILE_BASIC_INFO_CLASS = 0              # FILE_INFO_BY_HANDLE_CLASS.FileBasicInfo
FILE_FLAG_BACKUP_SEMANTICS = 0x02000000
FILE_FLAG_OPEN_REPARSE_POINT = 0x00200000
OPEN_EXISTING = 3
SHARE_ALL = 0x7                        # read | write | delete
ERROR_INSUFFICIENT_BUFFER = 122
ERROR_PRIVILEGE_NOT_HELD = 1314
ERROR_ACCESS_DENIED = 5


class Access(enum.IntFlag):
    FILE_READ_ATTRIBUTES = 0x0080
    FILE_WRITE_ATTRIBUTES = 0x0100
    READ_CONTROL = 0x00020000
    WRITE_DAC = 0x00040000
    WRITE_OWNER = 0x00080000
    ACCESS_SYSTEM_SECURITY = 0x01000000


class SecurityInfo(enum.IntFlag):
    OWNER = 0x1
    GROUP = 0x2
    DACL = 0x4
    SACL = 0x8


class FILE_BASIC_INFO(ctypes.Structure):
    _fields_ = [("CreationTime", ctypes.c_int64), ("LastAccessTime", ctypes.c_int64),
                ("LastWriteTime", ctypes.c_int64), ("ChangeTime", ctypes.c_int64),
                ("FileAttributes", wintypes.DWORD)]


_k32 = ctypes.WinDLL("kernel32", use_last_error=True)
_adv = ctypes.WinDLL("advapi32", use_last_error=True)
_k32.CreateFileW.restype = wintypes.HANDLE
_k32.CreateFileW.argtypes = [wintypes.LPCWSTR, wintypes.DWORD, wintypes.DWORD, ctypes.c_void_p,
                             wintypes.DWORD, wintypes.DWORD, wintypes.HANDLE]
_k32.CloseHandle.argtypes = [wintypes.HANDLE]
_k32.GetFileInformationByHandleEx.argtypes = [wintypes.HANDLE, ctypes.c_int, ctypes.c_void_p,
                                              wintypes.DWORD]
_k32.SetFileInformationByHandle.argtypes = [wintypes.HANDLE, ctypes.c_int, ctypes.c_void_p,
                                            wintypes.DWORD]
_adv.GetKernelObjectSecurity.argtypes = [wintypes.HANDLE, wintypes.DWORD, ctypes.c_void_p,
                                         wintypes.DWORD, ctypes.POINTER(wintypes.DWORD)]
_adv.SetKernelObjectSecurity.argtypes = [wintypes.HANDLE, wintypes.DWORD, ctypes.c_void_p]
INVALID_HANDLE = wintypes.HANDLE(-1).value


def _fail(what: str, path: str) -> OSError:
    code = ctypes.get_last_error()
    return OSError(None, f"{what}: {ctypes.FormatError(code)}", path, code)


def _open(path: str, access: int) -> int:
    h: Optional[int] = _k32.CreateFileW(path, access, SHARE_ALL, None, OPEN_EXISTING,
                         FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT, None)
    if h is None or h == INVALID_HANDLE:
        raise _fail("CreateFileW", path)
    return h


def _open_best(path: str, base: int, extra: int) -> Tuple[int, bool]:
    """A handle with ``base | extra`` access, or ``base`` alone where the
    extra right (the SACL's) is not granted: (handle, got the extra)."""
    try:
        return _open(path, base | extra), True
    except OSError as exc:
        if exc.winerror not in (ERROR_PRIVILEGE_NOT_HELD, ERROR_ACCESS_DENIED):
            raise
    return _open(path, base), False


def capture(path: str) -> Dict[str, Any]:
    """{"times": {...}, "attributes": int, "security_descriptor": bytes}
    (the descriptor is absent, with the reason, where it cannot be read)."""
    h, sacl = _open_best(path, Access.FILE_READ_ATTRIBUTES | Access.READ_CONTROL,
                         Access.ACCESS_SYSTEM_SECURITY)
    try:
        info = FILE_BASIC_INFO()
        if not _k32.GetFileInformationByHandleEx(h, FILE_BASIC_INFO_CLASS, ctypes.byref(info),
                                                 ctypes.sizeof(info)):
            raise _fail("GetFileInformationByHandleEx", path)
        out: Dict[str, Any] = {
            "times": {"creation": info.CreationTime, "last_write": info.LastWriteTime,
                      "last_access": info.LastAccessTime, "change": info.ChangeTime},
            "attributes": info.FileAttributes}
        which = SecurityInfo.OWNER | SecurityInfo.GROUP | SecurityInfo.DACL
        which |= SecurityInfo.SACL if sacl else 0
        need = wintypes.DWORD(0)
        _adv.GetKernelObjectSecurity(h, which, None, 0, ctypes.byref(need))
        buf = ctypes.create_string_buffer(max(need.value, 1))
        if need.value and _adv.GetKernelObjectSecurity(h, which, buf, need.value,
                                                       ctypes.byref(need)):
            out["security_descriptor"] = buf.raw[:need.value]
        else:
            out["security_descriptor_unreadable"] = str(_fail("GetKernelObjectSecurity", path))
        return out
    finally:
        _k32.CloseHandle(h)


def apply(path: str, times: Dict[str, int], attributes: int, sd: Optional[bytes] = None) -> None:
    """Descriptor first, then attributes and all four times in one call
    (FILE_BASIC_INFO sets the change time too, which ntfs-3g cannot)."""
    base = Access.FILE_WRITE_ATTRIBUTES
    if sd is not None:
        base |= Access.WRITE_DAC | Access.WRITE_OWNER
    h, sacl = _open_best(path, base, Access.ACCESS_SYSTEM_SECURITY if sd is not None else 0)
    try:
        if sd is not None:
            which = SecurityInfo.OWNER | SecurityInfo.GROUP | SecurityInfo.DACL
            which |= SecurityInfo.SACL if sacl else 0
            buf = ctypes.create_string_buffer(sd, len(sd))
            if not _adv.SetKernelObjectSecurity(h, which, buf):
                raise _fail("SetKernelObjectSecurity", path)
        info = FILE_BASIC_INFO(times["creation"], times["last_access"], times["last_write"],
                               times["change"], attributes)
        if not _k32.SetFileInformationByHandle(h, FILE_BASIC_INFO_CLASS, ctypes.byref(info),
                                               ctypes.sizeof(info)):
            raise _fail("SetFileInformationByHandle", path)
    finally:
        _k32.CloseHandle(h)
