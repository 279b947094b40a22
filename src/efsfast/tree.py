"""Whole trees: back up every encrypted file and directory below a folder as
one ``.efsraw`` file each, in a mirrored folder, and restore such a folder
back into a tree.  Files run in parallel; directories are created first."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Callable, Iterable, List, Optional, Tuple

from . import raw as _raw
from .api import BulkResult, backup_many, restore_many
from ._core import CancelToken

SUFFIX = ".efsraw"
FILE_ATTRIBUTE_ENCRYPTED = 0x4000
EFSINFO_XATTR = "user.ntfs.efsinfo"


def is_encrypted(path: str) -> bool:
    """Windows: the ENCRYPTED attribute; elsewhere: the efs_raw $EFS xattr."""
    if sys.platform == "win32":
        return bool(getattr(os.stat(path), "st_file_attributes", 0) & FILE_ATTRIBUTE_ENCRYPTED)
    try:
        os.getxattr(path, EFSINFO_XATTR, follow_symlinks=False)
        return True
    except OSError:
        return False


@dataclass
class TreeResult:
    bulk: BulkResult
    directories: int = 0
    skipped: List[str] = field(default_factory=list)   # not encrypted: nothing to back up
    existing: List[str] = field(default_factory=list)  # left alone (skip_existing)

    @property
    def failures(self):
        return self.bulk.failures


def _walk(top: str):
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        yield dirpath, sorted(dirnames), sorted(filenames)


def plan_backup(src_dir: str, dest_dir: str) -> Tuple[list, list, list]:
    """(directory jobs, file jobs, skipped) for backing up ``src_dir``."""
    dirs, files, skipped = [], [], []
    for dirpath, dirnames, filenames in _walk(src_dir):
        rel = os.path.relpath(dirpath, src_dir)
        out = dest_dir if rel == "." else os.path.join(dest_dir, rel)
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if is_encrypted(p):
                dirs.append((p, os.path.join(out, d + SUFFIX), {"directory": True}))
        for f in filenames:
            p = os.path.join(dirpath, f)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            if is_encrypted(p):
                files.append((p, os.path.join(out, f + SUFFIX)))
            else:
                skipped.append(p)
    return dirs, files, skipped


def _make_parents(paths: Iterable[str]) -> None:
    """Create each distinct parent folder once (not one mkdir per file: on
    a FUSE mount every call is a round trip to the daemon)."""
    for d in sorted({os.path.dirname(p) for p in paths}):
        os.makedirs(d, exist_ok=True)


def _split_existing(jobs: list, target: int) -> Tuple[list, List[str]]:
    """(jobs whose target does not exist yet, targets that do)."""
    todo, existing = [], []
    for j in jobs:
        if os.path.lexists(j[target]):
            existing.append(j[target])
        else:
            todo.append(j)
    return todo, existing


def backup_tree(src_dir, dest_dir, *, workers: Optional[int] = None, overwrite: bool = False,
                skip_existing: bool = False,
                progress: Optional[Callable[[int, int, int], None]] = None,
                cancel: Optional[CancelToken] = None, backend=None) -> TreeResult:
    """Back up every encrypted file and folder below ``src_dir`` as
    ``.efsraw`` files mirrored below ``dest_dir``.  ``skip_existing`` leaves
    backups that are already there alone (resuming an interrupted run)."""
    src_dir, dest_dir = os.fspath(src_dir), os.fspath(dest_dir)
    dirs, files, skipped = plan_backup(src_dir, dest_dir)
    existing: List[str] = []
    if skip_existing:
        dirs, ex1 = _split_existing(dirs, 1)
        files, ex2 = _split_existing(files, 1)
        existing = ex1 + ex2
    _make_parents(out for _, out, *_ in dirs + files)
    bulk = backup_many(dirs + files, workers=workers, overwrite=overwrite, progress=progress,
                       cancel=cancel, backend=backend)
    return TreeResult(bulk, directories=len(dirs), skipped=skipped, existing=existing)


def is_directory_stream(path: str) -> bool:
    """A raw stream with no unnamed data stream is a directory's (Windows
    directories have only the metadata stream, plus named streams if any).
    Only the headers are read; a stream whose headers do not walk is left
    to the restore to report."""
    try:
        return _raw.has_unnamed_stream(path) is False
    except OSError:
        return False


def plan_restore(src_dir: str, dest_dir: str) -> Tuple[list, list]:
    """(directory jobs in creation order, file jobs) for restoring the raw
    streams below ``src_dir``."""
    dirs, files = [], []
    for dirpath, _dirnames, filenames in _walk(src_dir):
        rel = os.path.relpath(dirpath, src_dir)
        out = dest_dir if rel == "." else os.path.join(dest_dir, rel)
        for f in filenames:
            if not f.endswith(SUFFIX):
                continue
            p = os.path.join(dirpath, f)
            target = os.path.join(out, f[:-len(SUFFIX)])
            if is_directory_stream(p):
                dirs.append((target, p, {"directory": True}))
            else:
                files.append((target, p))
    dirs.sort(key=lambda j: j[0].count(os.sep))
    return dirs, files


def restore_tree(src_dir, dest_dir, *, workers: Optional[int] = None, overwrite: bool = False,
                 skip_existing: bool = False,
                 progress: Optional[Callable[[int, int, int], None]] = None,
                 cancel: Optional[CancelToken] = None, backend=None) -> TreeResult:
    """Restore the ``.efsraw`` files below ``src_dir`` into a tree below
    ``dest_dir``: encrypted folders first, then files in parallel.
    ``skip_existing`` leaves objects that are already there alone (resuming
    an interrupted run: an interrupted restore never leaves a partial one)."""
    src_dir, dest_dir = os.fspath(src_dir), os.fspath(dest_dir)
    dirs, files = plan_restore(src_dir, dest_dir)
    return restore_planned(dirs, files, dest_dir, workers=workers, overwrite=overwrite,
                           skip_existing=skip_existing, progress=progress, cancel=cancel,
                           backend=backend)


def restore_planned(dirs: list, files: list, dest_dir: str, *, workers: Optional[int] = None,
                    overwrite: bool = False, skip_existing: bool = False,
                    progress: Optional[Callable[[int, int, int], None]] = None,
                    cancel: Optional[CancelToken] = None, backend=None) -> TreeResult:
    """Run planned restore jobs: ``dirs`` as ``(target, source, {"directory":
    True})``, ``files`` as ``(target, source)`` (see :func:`plan_restore`)."""
    existing: List[str] = []
    if skip_existing:
        dirs, ex1 = _split_existing(dirs, 0)
        files, ex2 = _split_existing(files, 0)
        existing = ex1 + ex2
    os.makedirs(dest_dir, exist_ok=True)
    total = len(dirs) + len(files)
    done = [0, 0]

    def step(f, b, _t):
        if progress is not None:
            progress(done[0] + f, done[1] + b, total)

    # encrypted directories first, one depth at a time, so their files land inside
    parts: List[BulkResult] = []
    for depth in sorted({j[0].count(os.sep) for j in dirs}):
        level = [j for j in dirs if j[0].count(os.sep) == depth]
        _make_parents(j[0] for j in level)
        r = restore_many(level, workers=workers, overwrite=overwrite, progress=step,
                         cancel=cancel, backend=backend)
        parts.append(r)
        done[0] += r.files
        done[1] += r.bytes
    _make_parents(target for target, _src in files)
    r = restore_many(files, workers=workers, overwrite=overwrite, progress=step, cancel=cancel,
                     backend=backend)
    parts.append(r)
    return TreeResult(_merge(parts, dirs + files), directories=len(dirs), existing=existing)


def _merge(parts: List[BulkResult], jobs: list) -> BulkResult:
    out = BulkResult(results=[])
    offset = 0
    for p in parts:
        out.results.extend(p.results)
        for e in p.failures:
            out.failures.append(type(e)(e.index + offset, e.dest, e.error))
        out.bytes += p.bytes
        out.files += p.files
        out.cancelled = out.cancelled or p.cancelled
        offset += len(p.results)
    return out
