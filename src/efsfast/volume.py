"""What the file system under a path can do for EFS: whether an object is
encrypted, and whether an NTFS volume mounted by ntfs-3g gives raw access
(``-o efs_raw``).  Without efs_raw, ntfs-3g shows encrypted files as
unreadable and ``user.ntfs.efsinfo`` as an ordinary named stream, so a
restore there would write plain files and a backup would see nothing
encrypted (spec 8.1, 8.2)."""
from __future__ import annotations

import errno
import os
import sys
from typing import Dict, Optional, Union

from ._errors import EfsError

PathArg = Union[str, "os.PathLike[str]"]

FILE_ATTRIBUTE_ENCRYPTED = 0x4000
EFSINFO_XATTR = "user.ntfs.efsinfo"
NTFS_ATTRIB_XATTR = "system.ntfs_attrib"       # ntfs-3g and ntfs3, any mount: u32 LE
NTFS_EFSINFO_XATTR = "system.ntfs_efsinfo"     # ntfs-3g: EPERM unless efs_raw
ERROR_NOT_SUPPORTED = 50
# "no such attribute" and "this file system has no user attributes": not encrypted
_NO_XATTR = {getattr(errno, n) for n in ("ENODATA", "ENOATTR", "ENOTSUP", "EOPNOTSUPP")
             if hasattr(errno, n)}

NO_EFS_RAW_RESTORE = ("the NTFS volume is not mounted with -o efs_raw: files would be stored as "
                      "plain data, not encrypted (mount it with ntfs-3g -o efs_raw)")
NO_EFS_RAW_BACKUP = ("the file is encrypted, but the NTFS volume is not mounted with -o efs_raw, "
                     "so its raw ciphertext cannot be read (mount it with ntfs-3g -o efs_raw)")


def _ntfs_attributes(path: str) -> Optional[int]:
    """The NTFS attributes ntfs-3g reports, or None off NTFS."""
    try:
        value = os.getxattr(path, NTFS_ATTRIB_XATTR, follow_symlinks=False)
    except OSError:
        return None
    return int.from_bytes(value[:4], "little") if len(value) >= 4 else None


def ntfs_without_efs_raw(path: PathArg) -> bool:
    """True on an NTFS volume that ntfs-3g mounted without ``-o efs_raw``.
    ``path`` need not exist yet: its nearest existing parent is asked."""
    if sys.platform == "win32" or not hasattr(os, "getxattr"):
        return False
    path = os.path.abspath(os.fspath(path))
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    if _ntfs_attributes(path) is None:
        return False
    try:
        os.getxattr(path, NTFS_EFSINFO_XATTR, follow_symlinks=False)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return False


def no_raw_access(path: PathArg, restore: bool) -> Optional[str]:
    """Why restoring below (or backing up from) ``path`` cannot give a
    correct result, found before anything is read or written; None where it
    can go ahead."""
    if ntfs_without_efs_raw(path):
        return NO_EFS_RAW_RESTORE if restore else NO_EFS_RAW_BACKUP
    return None


def raw_access_error(reason: str, path: PathArg) -> EfsError:
    return EfsError(ERROR_NOT_SUPPORTED, reason, os.fspath(path))


class EncryptionProbe:
    """``probe(path, st)``: is this object encrypted?  On Windows the
    ENCRYPTED attribute; on NTFS under ntfs-3g the same attribute read from
    ``system.ntfs_attrib`` (with or without efs_raw); elsewhere the efs_raw
    layout's ``user.ntfs.efsinfo``.  Which way a file system answers is
    found once per device, for one walk (device numbers are reused after an
    unmount, so the answer is not kept longer).  Raises OSError where it
    cannot tell (EACCES, EIO)."""

    def __init__(self) -> None:
        self._has_attrib: Dict[int, bool] = {}

    def __call__(self, path: str, st: Optional[os.stat_result] = None) -> bool:
        if sys.platform == "win32":
            st = st or os.stat(path)
            return bool(getattr(st, "st_file_attributes", 0) & FILE_ATTRIBUTE_ENCRYPTED)
        st = st or os.lstat(path)
        if self._has_attrib.get(st.st_dev, True):
            try:
                value = os.getxattr(path, NTFS_ATTRIB_XATTR, follow_symlinks=False)
            except OSError as exc:
                if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                    self._has_attrib[st.st_dev] = False
            else:
                self._has_attrib[st.st_dev] = True
                return bool(int.from_bytes(value[:4], "little") & FILE_ATTRIBUTE_ENCRYPTED)
        try:
            os.getxattr(path, EFSINFO_XATTR, follow_symlinks=False)
            return True
        except OSError as exc:
            if exc.errno in _NO_XATTR:
                return False
            raise       # cannot tell (EACCES, EIO...): the caller fails the item, never skips it


def is_encrypted(path: PathArg) -> bool:
    """Whether the file or folder ``path`` is EFS-encrypted (see EncryptionProbe)."""
    return EncryptionProbe()(os.fspath(path))


# ---- how many workers suit the file system ----

# FUSE daemons such as ntfs-3g serve requests on one thread: two workers
# keep it busy (one prepares a file while the daemon serves the other's
# request); more only queue behind it (benchmarks/results, ntfs-3g series).
FUSE_WORKERS = 2
_FUSE_TYPES = ("fuse", "fuseblk")


def filesystem_type(path: PathArg) -> Optional[str]:
    """The type of the file system holding ``path`` (or its nearest existing
    parent) as /proc/self/mountinfo names it, or None where that is unknown
    (not Linux)."""
    if sys.platform == "win32" or not hasattr(os, "major"):
        return None          # (under Wine, /proc/self/mountinfo is Linux's own)
    path = os.path.abspath(os.fspath(path))
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    try:
        dev = os.stat(path).st_dev
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    want = f"{os.major(dev)}:{os.minor(dev)}"
    for line in lines:
        fields = line.split()
        # ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE ...
        if len(fields) > 2 and fields[2] == want and "-" in fields:
            kind = fields[fields.index("-") + 1]
            return kind.split(".", 1)[0]    # "fuse.sshfs" -> "fuse"
    return None


def default_workers(path: PathArg) -> int:
    """The worker count that is fastest for a tree job on the file system of
    ``path`` (the destination of a restore, the source of a backup): two on
    FUSE (ntfs-3g), one per CPU elsewhere."""
    if filesystem_type(path) in _FUSE_TYPES:
        return FUSE_WORKERS
    return os.cpu_count() or 1
