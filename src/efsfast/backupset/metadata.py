"""NTFS metadata of an object, captured for the manifest and applied on
restore: what the raw stream does not hold (README, "What the raw stream
holds").

On an ntfs-3g mount the three ``system.ntfs_*`` extended attributes carry
the NTFS facts: ``system.ntfs_times`` (four little-endian FILETIMEs:
creation, last write, last access, MFT change), ``system.ntfs_attrib`` (the
32-bit FILE_ATTRIBUTE_* word) and ``system.ntfs_acl`` (the self-relative
security descriptor).  Elsewhere the manifest holds the POSIX times and
says so (``"source": "posix"``).
"""
from __future__ import annotations

import base64
import os
import struct
from enum import Enum
from typing import Optional


class MetaSource(str, Enum):
    NTFS3G = "ntfs-3g"
    POSIX = "posix"
    NONE = "none"          # --no-metadata at backup time


class NtfsXattr(str, Enum):
    TIMES = "system.ntfs_times"
    ATTRIB = "system.ntfs_attrib"
    ACL = "system.ntfs_acl"


TIME_FIELDS = ("creation", "last_write", "last_access", "change")
FILETIME_UNIX_EPOCH = 116444736000000000     # 1970-01-01 in 100 ns units since 1601
_TIMES = struct.Struct("<4Q")
_ATTRIB = struct.Struct("<I")


def _getxattr(path: str, name: str) -> bytes:
    return os.getxattr(path, name, follow_symlinks=False)


def is_ntfs3g(path: str) -> bool:
    """Whether ``path`` lies on an ntfs-3g mount (it answers system.ntfs_attrib)."""
    if not hasattr(os, "getxattr"):
        return False
    try:
        return len(_getxattr(path, NtfsXattr.ATTRIB.value)) == _ATTRIB.size
    except OSError:
        return False


def source_kind(path: str) -> MetaSource:
    return MetaSource.NTFS3G if is_ntfs3g(path) else MetaSource.POSIX


def capture(path: str, kind: MetaSource, st: Optional[os.stat_result] = None) -> dict:
    """The metadata of ``path`` (``st``: its lstat, if taken already) as a
    JSON-ready dict.  A security descriptor that cannot be read (no right to
    it) is left out and said so."""
    if kind is MetaSource.NONE:
        return {}
    if kind is MetaSource.NTFS3G:
        times = _TIMES.unpack(_getxattr(path, NtfsXattr.TIMES.value))
        meta = {"source": kind.value, "times": dict(zip(TIME_FIELDS, times)),
                "attributes": _ATTRIB.unpack(_getxattr(path, NtfsXattr.ATTRIB.value))[0]}
        try:
            sd = _getxattr(path, NtfsXattr.ACL.value)
        except OSError as exc:
            meta["security_descriptor_unreadable"] = exc.strerror or str(exc)
        else:
            meta["security_descriptor"] = base64.b64encode(sd).decode("ascii")
        return meta
    st = st or os.lstat(path)
    return {"source": MetaSource.POSIX.value, "atime_ns": st.st_atime_ns,
            "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "mode": st.st_mode & 0o7777}


def change_stamp(meta: dict) -> Optional[int]:
    """The change time an incremental run compares (NTFS MFT change time,
    or POSIX ctime), or None when the manifest holds none."""
    if meta.get("source") == MetaSource.NTFS3G.value:
        return meta["times"]["change"]
    if meta.get("source") == MetaSource.POSIX.value:
        return meta["ctime_ns"]
    return None


def filetime_to_ns(ft: int) -> int:
    return (ft - FILETIME_UNIX_EPOCH) * 100


def apply(path: str, meta: dict, *, acl: bool = True, target_ntfs3g: Optional[bool] = None) -> None:
    """Give ``path`` the metadata ``meta`` captured.  Order: security
    descriptor, attributes, then times last, since setting the others may
    touch the times.  ntfs-3g sets the MFT change time itself (to now): it
    is the one value that cannot be restored."""
    source = meta.get("source")
    if not source or source == MetaSource.NONE.value:
        return
    if target_ntfs3g is None:
        target_ntfs3g = is_ntfs3g(path)
    if source == MetaSource.NTFS3G.value:
        if target_ntfs3g:
            if acl and "security_descriptor" in meta:
                os.setxattr(path, NtfsXattr.ACL.value,
                            base64.b64decode(meta["security_descriptor"]), follow_symlinks=False)
            os.setxattr(path, NtfsXattr.ATTRIB.value, _ATTRIB.pack(meta["attributes"]),
                        follow_symlinks=False)
            t = meta["times"]
            os.setxattr(path, NtfsXattr.TIMES.value,
                        _TIMES.pack(*(t[k] for k in TIME_FIELDS)), follow_symlinks=False)
            return
        t = meta["times"]      # not NTFS: what POSIX can hold
        os.utime(path, ns=(filetime_to_ns(t["last_access"]), filetime_to_ns(t["last_write"])),
                 follow_symlinks=False)
        return
    if source == MetaSource.POSIX.value:
        if acl and not target_ntfs3g:     # the permission bits are POSIX's ACL
            os.chmod(path, meta["mode"])
        os.utime(path, ns=(meta["atime_ns"], meta["mtime_ns"]), follow_symlinks=False)
        return
    raise ValueError(f"{path}: unknown metadata source {source!r}")
