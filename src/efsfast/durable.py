"""What puts a finished job's output on stable storage before the job says
it is done (docs/RELIABILITY.md, "Durability").

Two ways, chosen per file system:

- ``FILESYSTEM``: one ``syncfs()`` of the destination's file system writes
  back every dirty page and inode there and commits the journal (ext4, xfs,
  btrfs, tmpfs, ...).  Measured cheaper than one ``fsync`` per object (one
  journal commit instead of one per object).
- ``EACH``: an ``fsync`` of every file and folder written.  FUSE file
  systems hear of durability only through FSYNC/FSYNCDIR requests:
  ``syncfs()`` and ``sync()`` send the daemon nothing (seen with strace on
  ntfs-3g), so there a syncfs would promise what it does not do.  Also the
  way wherever the file system cannot be told (not Linux).
- ``DEVICE``: ntfs-3g (a FUSE mount that answers ``system.ntfs_attrib``):
  one FSYNCDIR of the job's folder after its last change.  The daemon
  serves FSYNC and FSYNCDIR alike by flushing its whole device, whatever
  the object ("sync the full device", ntfs-3g.c and lowntfs-3g.c), and only
  if a change since the last flush left it dirty; every other request has
  written its changes to the device before it is answered.  So the ``EACH``
  pass there made one device flush and then, per file, an OPEN, an FSYNC
  that flushed nothing and a RELEASE (3 of restore-tree's 14 requests per
  file, counted at the daemon); one flush after the last change puts the
  same on stable storage.

``NONE`` is ``--no-sync``.
"""
from __future__ import annotations

import enum
import errno
import os
import stat
import sys
from typing import Callable, Iterable, List, Optional, Set, Tuple

from .volume import NTFS_ATTRIB_XATTR, filesystem_type

Failure = Tuple[str, OSError]               # (path, why it could not be synced)


class SyncWay(enum.Enum):
    NONE = "none"
    FILESYSTEM = "syncfs"
    EACH = "fsync"
    DEVICE = "device"       # one fsync: the FUSE daemon flushes its whole device (ntfs-3g)


# the kernel's default max_background for a FUSE mount.  A RELEASE (where
# ntfs-3g fixes up an efs_raw file) is a background request on a `fuse`
# mount, and background requests beyond this many wait outside the daemon's
# queue, where the one flush (DEVICE) could pass them; each worker has at
# most one RELEASE outstanding, so DEVICE holds with fewer workers than this
# (docs/RELIABILITY.md, "One flush on ntfs-3g"); with more, each object is
# synced (EACH)
FUSE_MAX_BACKGROUND = 12

_syncfs: Optional[Callable[[int], int]] = None


def _syncfs_call() -> Optional[Callable[[int], int]]:
    """libc's syncfs (Linux; Python has no binding), looked up once."""
    global _syncfs
    if _syncfs is None and sys.platform.startswith("linux"):
        try:
            import ctypes       # (only here: ctypes costs start-up time)
            fn = ctypes.CDLL(None, use_errno=True).syncfs
        except (OSError, AttributeError):
            return None
        fn.argtypes = [ctypes.c_int]

        def call(fd: int) -> int:
            return 0 if fn(fd) == 0 else ctypes.get_errno() or errno.EIO
        _syncfs = call
    return _syncfs


def way_for(path: str) -> SyncWay:
    """How to make what was written below the folder ``path`` durable."""
    fstype = filesystem_type(path) if sys.platform.startswith("linux") else None
    if fstype in ("fuse", "fuseblk"):
        return SyncWay.DEVICE if _is_ntfs3g(path) else SyncWay.EACH
    if fstype is None:
        return SyncWay.EACH
    return SyncWay.FILESYSTEM if _syncfs_call() is not None else SyncWay.EACH


def _is_ntfs3g(path: str) -> bool:
    """Whether the FUSE mount holding ``path`` is served by ntfs-3g (one
    GETXATTR request; a path not there yet is asked of its nearest folder;
    a symlink is followed, as filesystem_type and the fsync do)."""
    while True:
        try:
            # (ntfs-3g's own attribute: on a FUSE mount only ntfs-3g and
            # lowntfs-3g answer it; the kernel's ntfs3 is not FUSE)
            os.getxattr(path, NTFS_ATTRIB_XATTR)
            return True
        except FileNotFoundError:
            parent = os.path.dirname(os.path.abspath(path))
            if parent == path:
                return False
            path = parent
        except OSError:         # ENODATA, ENOTSUP: another FUSE file system
            return False


def syncfs(folder: str) -> None:
    """syncfs() of the file system holding ``folder``; raises OSError (since
    Linux 5.8 it reports the file system's unseen writeback errors)."""
    call = _syncfs_call()
    if call is None:
        raise OSError(errno.ENOSYS, "syncfs() is not available here", folder)
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
                 | getattr(os, "O_CLOEXEC", 0))
    try:
        err = call(fd)
    finally:
        os.close(fd)
    if err:
        raise OSError(err, os.strerror(err), folder)


def fsync_path(path: str) -> None:
    """fsync a file or a folder by name (O_RDONLY: enough for fsync on
    Linux; on a folder FUSE sends FSYNCDIR).  Windows cannot open folders:
    NTFS journals their entries itself; a folder whose file system cannot
    sync it (EINVAL, ENOTSUP: some FUSE file systems) has nothing to do."""
    if sys.platform == "win32":
        if os.path.isdir(path):
            return
        fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    else:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
                     | getattr(os, "O_NOFOLLOW", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _NOT_FOR_FOLDERS or not stat.S_ISDIR(os.fstat(fd).st_mode):
            raise
    finally:
        os.close(fd)


_NOT_FOR_FOLDERS = (errno.EINVAL, errno.ENOTSUP)
_NO_FOLDER_FSYNC = _NOT_FOR_FOLDERS + (errno.ENOSYS,)


def fsync_device(folder: str) -> None:
    """The ``DEVICE`` way: an fsync of ``folder`` (FSYNCDIR), which makes
    ntfs-3g flush its whole device; raises OSError, whatever the errno (a
    folder fsync refused here would mean nothing was flushed)."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
                 | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def folders_up(folders: Iterable[str], top: str) -> List[str]:
    """Each of ``folders`` and every folder above it up to ``top``, with
    ``top`` and ``top``'s own parent (where ``top`` itself may have been
    made), deepest first: the folders whose entries a job wrote."""
    top = os.path.abspath(top)
    out: Set[str] = {top, os.path.dirname(top)}
    for d in folders:
        d = os.path.abspath(d)
        while d not in out and len(d) > len(top):
            out.add(d)
            d = os.path.dirname(d)
    return sorted(out, key=lambda d: -d.count(os.sep))


# fsync_each's threads.  On FUSE every open / fsync / close is a round trip
# to a daemon that serves one request at a time; on one thread it idles while
# each reply travels back and the next request is made (restore-tree of 1,000
# files on ntfs-3g: OPEN, FSYNC and RELEASE per file after the restores, 3 of
# its 14 requests per file, counted at the daemon).  More threads keep a
# request queued; whether that pays on 2 cores, where they compete with the
# daemon, is for benchmarks/durability.py to say (its "on 4 threads" row)
# before this changes from 1
PASS_THREADS = 1
_THREADS_FROM = 64          # fewer objects: one thread (starting more costs more)


def fsync_each(paths: Iterable[str], top: str, folders: Iterable[str] = ()) -> List[Failure]:
    """fsync each of ``paths`` (files or folders), then every folder from
    them and from ``folders`` up to ``top`` (``folders_up``); what could not
    be synced, named, in that order.  A folder that is gone was emptied and
    removed: the folder above it holds that change."""
    paths = list(paths)
    above = folders_up({os.path.dirname(p) for p in paths} | set(folders), top)
    return _fsync_all(paths, set()) + _fsync_all(above, set(above))


def _fsync_all(paths: List[str], gone_ok: Set[str]) -> List[Failure]:
    """fsync_path of each path, on PASS_THREADS threads (os.open, fsync and
    close run without the GIL); failures in the order of ``paths``, except
    a FileNotFoundError of a path in ``gone_ok``."""
    errors: List[Optional[OSError]] = [None] * len(paths)

    def sync(i: int) -> None:
        try:
            fsync_path(paths[i])
        except OSError as exc:
            if not (isinstance(exc, FileNotFoundError) and paths[i] in gone_ok):
                errors[i] = exc

    if PASS_THREADS <= 1 or len(paths) < _THREADS_FROM:
        for i in range(len(paths)):
            sync(i)
    else:
        import threading
        from .threadrun import run_threads
        next_index = iter(range(len(paths)))
        lock = threading.Lock()

        def stop() -> None:
            with lock:          # no further path is taken; those under way finish
                for _ in next_index:
                    pass

        def worker() -> None:
            while True:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                sync(i)
        if run_threads(worker, PASS_THREADS, name="efsfast-sync", stop=stop):
            raise KeyboardInterrupt
    return [(p, e) for p, e in zip(paths, errors) if e is not None]


def sync_written(top: str, paths: Iterable[str], way: Optional[SyncWay] = None,
                 folders: Iterable[str] = (), workers: int = 1) -> List[Failure]:
    """Make what a job wrote below the folder ``top`` durable (``paths``:
    the files and folders it wrote, ``folders``: others whose entries it
    changed; both needed by the ``EACH`` way only): returns what could not
    be synced, named (an empty list: all of it is on stable storage).
    ``FILESYSTEM`` and ``DEVICE``: one sync of ``top``'s file system or
    device, then ``top``'s parent (where the job made ``top``).  ``workers``:
    how many wrote at once (``DEVICE`` holds only below FUSE_MAX_BACKGROUND)."""
    if way is None:
        way = way_for(top)
    if way is SyncWay.DEVICE and workers >= FUSE_MAX_BACKGROUND:
        way = SyncWay.EACH
    if way is SyncWay.NONE:
        return []
    if way is SyncWay.EACH:
        return fsync_each(paths, top, folders)
    if way is SyncWay.DEVICE:       # (listed only here: FILESYSTEM needs no paths)
        paths = list(paths)
        if not paths and not os.path.lexists(top):
            return []       # nothing was written, not even ``top`` (as EACH finds it)
    failures: List[Failure] = []
    try:
        if way is SyncWay.DEVICE:
            fsync_device(top)
        else:
            syncfs(top)
    except OSError as exc:
        if way is SyncWay.DEVICE and exc.errno in _NO_FOLDER_FSYNC:
            # a FUSE file system in front of ntfs-3g that passes its
            # attributes on but not a folder's fsync: each object, then
            return fsync_each(paths, top, folders)
        failures.append((top, exc))
    parent = os.path.dirname(os.path.abspath(top))
    try:        # ``top``'s own entry, where the job made it
        fsync_path(parent)
    except OSError as exc:
        failures.append((parent, exc))
    return failures


def sync_stream(fileobj: object) -> None:
    """A stream written to (a tar on stdout): flushed, and fsynced where it
    is a regular file (a pipe or a terminal has nothing to sync)."""
    flush = getattr(fileobj, "flush", None)
    if flush is not None:
        flush()
    try:
        fd = fileobj.fileno()       # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return
    if stat.S_ISREG(os.fstat(fd).st_mode):
        os.fsync(fd)
