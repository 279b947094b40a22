"""NTFS metadata of an object, captured for the manifest and applied on
restore: what the raw stream does not hold (docs/WINDOWS.md, "What the raw
stream holds").

On an ntfs-3g mount the three ``system.ntfs_*`` extended attributes carry
the NTFS facts: ``system.ntfs_times`` (four little-endian FILETIMEs:
creation, last write, last access, MFT change), ``system.ntfs_attrib`` (the
32-bit FILE_ATTRIBUTE_* word) and ``system.ntfs_acl`` (the self-relative
security descriptor).  On Windows the Win32 API gives the same facts in the
same shape (metadata_win32.py), so either side's sets restore NTFS metadata
on the other.  Elsewhere the manifest holds the POSIX times and says so
(``"source": "posix"``).
"""
from __future__ import annotations

import base64
import os
import struct
import sys
from enum import Enum, IntFlag
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from ..threadrun import run_threads
from ..volume import FILE_ATTRIBUTE_ENCRYPTED

if TYPE_CHECKING:
    from .._core import PosixMetaBatch, RawContext

Meta = Dict[str, Any]       # an object's captured metadata, JSON-ready (a manifest line's "meta")


class MetaSource(str, Enum):
    NTFS3G = "ntfs-3g"
    WIN32 = "win32"        # the same NTFS facts, through the Win32 API (metadata_win32.py)
    POSIX = "posix"
    NONE = "none"          # --no-metadata at backup time


# sources whose metadata is NTFS's (times, attributes, descriptor), in one shape
NTFS_SHAPED = (MetaSource.NTFS3G.value, MetaSource.WIN32.value)
# the POSIX source's text, looked up once (an Enum member's .value is a
# descriptor call, and these run once per object of a set job)
_POSIX = MetaSource.POSIX.value


class NtfsXattr(str, Enum):
    TIMES = "system.ntfs_times"
    ATTRIB = "system.ntfs_attrib"
    ACL = "system.ntfs_acl"


class Attr(IntFlag):
    """The FILE_ATTRIBUTE_* bits a restore may set (others, such as
    DIRECTORY and ENCRYPTED, follow from what was restored)."""
    READONLY = 0x1
    HIDDEN = 0x2
    SYSTEM = 0x4
    ARCHIVE = 0x20
    NORMAL = 0x80
    TEMPORARY = 0x100
    OFFLINE = 0x1000
    NOT_CONTENT_INDEXED = 0x2000


SETTABLE = Attr.READONLY | Attr.HIDDEN | Attr.SYSTEM | Attr.ARCHIVE | Attr.TEMPORARY | \
    Attr.OFFLINE | Attr.NOT_CONTENT_INDEXED
TIME_FIELDS = ("creation", "last_write", "last_access", "change")
FILETIME_UNIX_EPOCH = 116444736000000000     # 1970-01-01 in 100 ns units since 1601
_TIMES = struct.Struct("<4Q")
# the names as the C side takes them (read once per backed-up object)
_ATTRIB_NAME, _TIMES_NAME, _ACL_NAME = (x.value.encode() for x in (
    NtfsXattr.ATTRIB, NtfsXattr.TIMES, NtfsXattr.ACL))
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
    if sys.platform == "win32":
        return MetaSource.WIN32
    return MetaSource.NTFS3G if is_ntfs3g(path) else MetaSource.POSIX


def _ntfs_shaped(kind: MetaSource, times: Sequence[int], attributes: int, sd: Optional[bytes],
                 sd_error: Optional[str]) -> Meta:
    meta: Meta = {"source": kind.value, "times": dict(zip(TIME_FIELDS, times)),
            "attributes": attributes}
    if sd is not None:
        meta["security_descriptor"] = base64.b64encode(sd).decode("ascii")
    else:
        meta["security_descriptor_unreadable"] = sd_error
    return meta


def capture(path: str, kind: MetaSource, st: Optional[os.stat_result] = None) -> Meta:
    """The metadata of ``path`` (``st``: its lstat, if taken already) as a
    JSON-ready dict.  A security descriptor that cannot be read (no right to
    it) is left out and said so."""
    if kind is MetaSource.NONE:
        return {}
    if kind is MetaSource.WIN32:
        from . import metadata_win32
        m = metadata_win32.capture(path)
        return _ntfs_shaped(kind, [m["times"][k] for k in TIME_FIELDS], m["attributes"],
                            m.get("security_descriptor"), m.get("security_descriptor_unreadable"))
    if kind is MetaSource.NTFS3G:
        times = _TIMES.unpack(_getxattr(path, NtfsXattr.TIMES.value))
        attributes = _ATTRIB.unpack(_getxattr(path, NtfsXattr.ATTRIB.value))[0]
        try:
            sd, why = _getxattr(path, NtfsXattr.ACL.value), None
        except OSError as exc:
            sd, why = None, exc.strerror or str(exc)
        return _ntfs_shaped(kind, times, attributes, sd, why)
    st = st or os.lstat(path)
    return {"source": MetaSource.POSIX.value, "atime_ns": st.st_atime_ns,
            "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "mode": st.st_mode & 0o7777}


def capture_opened(raw: RawContext, kind: MetaSource,
                   st: Tuple[int, int, int, int, int]) -> Optional[Meta]:
    """:func:`capture` of the object open for export in ``raw`` on the POSIX
    system side, read through its descriptor (``st``: its
    ``_core.object_stat``), so that a backup set costs no further path
    lookups; None where the NTFS attributes say it is not encrypted."""
    from .. import _core
    if kind is MetaSource.NTFS3G:
        attributes = _ATTRIB.unpack(_core.object_xattr(raw, _ATTRIB_NAME))[0]
        if not attributes & FILE_ATTRIBUTE_ENCRYPTED:
            return None
        times = _TIMES.unpack(_core.object_xattr(raw, _TIMES_NAME))
        try:
            sd, why = _core.object_xattr(raw, _ACL_NAME), None
        except OSError as exc:
            sd, why = None, exc.strerror or str(exc)
        return _ntfs_shaped(kind, times, attributes, sd, why)
    return from_facts(kind, st, b"", b"", None, 0)


def from_facts(kind: MetaSource, st: Tuple[int, int, int, int, int], attrib: bytes,
               times: bytes, acl: Optional[bytes], acl_errno: int) -> Meta:
    """:func:`capture_opened` from what the C side read of an object
    (efs_posix_backup.c): its stat, and on ntfs-3g the three xattr values
    (``acl`` None when it could not be read, ``acl_errno`` why)."""
    if kind is MetaSource.NTFS3G:
        return _ntfs_shaped(kind, _TIMES.unpack(times), _ATTRIB.unpack(attrib)[0], acl,
                            None if acl is not None else os.strerror(acl_errno))
    if kind is MetaSource.POSIX:
        _size, mode, atime_ns, mtime_ns, ctime_ns = st
        return {"source": _POSIX, "atime_ns": atime_ns, "mtime_ns": mtime_ns,
                "ctime_ns": ctime_ns, "mode": mode & 0o7777}
    return {}


def change_stamp(meta: Meta) -> Optional[int]:
    """The change time an incremental run compares (NTFS MFT change time,
    or POSIX ctime), or None when the manifest holds none."""
    if meta.get("source") in NTFS_SHAPED:
        stamp: int = meta["times"]["change"]
        return stamp
    if meta.get("source") == MetaSource.POSIX.value:
        ctime: int = meta["ctime_ns"]
        return ctime
    return None


def filetime_to_ns(ft: int) -> int:
    return (ft - FILETIME_UNIX_EPOCH) * 100


def apply_posix_many(paths: List[str], metas: List[Meta], acl: bool,
                     workers: int) -> Tuple[List[Tuple[int, OSError]], List[int]]:
    """:func:`apply` of POSIX metadata (``metas``, as manifest lines give
    it) onto many objects of a POSIX file system (not ntfs-3g, not Windows),
    on ``workers`` threads in C without the GIL (the calling thread only
    waits): (the index and error of each that failed, the error as os.chmod
    or os.utime would raise it; the indices of those it left to
    :func:`apply`: other sources, and values apply would refuse or C cannot
    hold, so that apply says why)."""
    from .. import _core
    batch = _core.PosixMetaBatch(paths, metas, acl)
    return ([(i, OSError(err, os.strerror(err), paths[i])) for i, err in run_posix(batch, workers)],
            batch.left)


def run_posix(batch: "PosixMetaBatch", workers: int) -> List[Tuple[int, int]]:
    """Run a PosixMetaBatch on ``workers`` threads: (index, errno) of each
    object whose metadata could not be set."""
    if batch.count and run_threads(batch.work, min(workers, batch.count), name="efsfast-metadata",
                                   stop=batch.stop):
        raise KeyboardInterrupt         # (no further object was started)
    return [(i, err) for i, err, _op in batch.failures()]


def apply(path: str, meta: Meta, *, acl: bool = True, target_ntfs3g: Optional[bool] = None) -> None:
    """Give ``path`` the metadata ``meta`` captured.  Order: security
    descriptor, attributes, then times last, since setting the others may
    touch the times.  ntfs-3g sets the MFT change time itself (to now): it
    is the one value that cannot be restored there; Windows sets all four.
    NTFS metadata goes onto NTFS whichever side captured it."""
    source = meta.get("source")
    if not source or source == MetaSource.NONE.value:
        return
    if source in NTFS_SHAPED:
        t = meta["times"]
        sd = base64.b64decode(meta["security_descriptor"]) \
            if acl and "security_descriptor" in meta else None
        if sys.platform == "win32":
            from . import metadata_win32
            metadata_win32.apply(path, t, (meta["attributes"] & SETTABLE) or Attr.NORMAL, sd)
            return
        if target_ntfs3g is None:
            target_ntfs3g = is_ntfs3g(path)
        if target_ntfs3g:
            if sd is not None:
                os.setxattr(path, NtfsXattr.ACL.value, sd, follow_symlinks=False)
            os.setxattr(path, NtfsXattr.ATTRIB.value, _ATTRIB.pack(meta["attributes"]),
                        follow_symlinks=False)
            os.setxattr(path, NtfsXattr.TIMES.value,
                        _TIMES.pack(*(t[k] for k in TIME_FIELDS)), follow_symlinks=False)
            return
        # not NTFS: what POSIX can hold
        os.utime(path, ns=(filetime_to_ns(t["last_access"]), filetime_to_ns(t["last_write"])),
                 follow_symlinks=False)
        return
    if source == MetaSource.POSIX.value:
        if acl and not target_ntfs3g and sys.platform != "win32":
            os.chmod(path, meta["mode"])      # the permission bits are POSIX's ACL
        os.utime(path, ns=(meta["atime_ns"], meta["mtime_ns"]))
        return
    raise ValueError(f"{path}: unknown metadata source {source!r}")
