"""Whole trees: back up every encrypted file and directory below a folder as
one ``.efsraw`` file each, in a mirrored folder, and restore such a folder
back into a tree.  Files run in parallel; directories are created first."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

from . import _core, _winfs
from . import durable as _durable
from . import volume as _volume
from .api import BulkResult, ItemError, backup_many, restore_many, restore_set_files
from .bulkjob import Progress as Progress
from ._core import Backend, CancelToken
from ._errors import EfsError
from .threadrun import run_threads
from .treefolders import FolderGate
from .treewalk import check_source_dir, child_prefix, parent_folders, problem, walk
from .volume import EFSINFO_XATTR, FILE_ATTRIBUTE_ENCRYPTED, is_encrypted  # noqa: F401 (API)

SUFFIX = ".efsraw"
Jobs = List[Tuple[Any, ...]]                     # (object, backup file[, options]) per job
Errors = List[Tuple[str, EfsError]]              # (path, error) of what could not be read
PathArg = Union[str, "os.PathLike[str]"]


@dataclass
class TreeResult:
    bulk: BulkResult
    directories: int = 0
    skipped: List[str] = field(default_factory=list)   # not encrypted: nothing to back up
    existing: List[str] = field(default_factory=list)  # left alone (skip_existing)
    # objects that could not be listed or read: failed items (index -1), never skipped
    unreadable: List[ItemError] = field(default_factory=list)
    # the bulk jobs in index order: (object, backup file) or (object, raw stream)
    jobs: Jobs = field(default_factory=list)

    @property
    def failures(self) -> List[ItemError]:
        return self.unreadable + self.bulk.failures

    @property
    def not_done(self) -> int:
        """Items planned but neither done nor failed (an interrupted run)."""
        planned = len(self.jobs) if self.jobs else len(self.bulk.results)
        return max(planned - self.bulk.files - len(self.bulk.failures), 0)


def _unreadable(errors: Errors) -> List[ItemError]:
    """One failed item per path (a folder that can be neither examined nor
    listed is one object that failed, not two), first error kept."""
    seen: set[str] = set()
    out: List[ItemError] = []
    for path, exc in errors:
        if path not in seen:
            seen.add(path)
            out.append(ItemError(-1, path, exc))
    return out


def plan_backup(src_dir: str, dest_dir: str, errors: Optional[Errors] = None,
                cancel: Optional[CancelToken] = None,
                classify: bool = True) -> Tuple[Jobs, Jobs, List[str]]:
    """(directory jobs, file jobs, skipped) for backing up ``src_dir``; what
    cannot be listed or read goes to ``errors`` as (path, error).  With
    ``classify=False`` every folder and regular file is a job and the
    worker that opens it tells whether it is encrypted (one visit per
    object instead of two: on FUSE each is a round trip)."""
    dirs: Jobs = []
    files: Jobs = []
    skipped: List[str] = []
    errors = [] if errors is None else errors
    probe = _volume.EncryptionProbe()

    def encrypted(p: str) -> Optional[bool]:
        if not classify:
            return True
        try:
            return probe(p)
        except OSError as exc:
            errors.append((p, problem(p, "cannot tell whether it is encrypted", exc)))
            return None

    def prefixes(path: str) -> Tuple[str, str]:
        """(the folder's children's prefix, their outputs' prefix)."""
        rel = os.path.relpath(path, src_dir)
        out = dest_dir if rel == "." else os.path.join(dest_dir, rel)
        # children's paths by concatenation where join is one (two joins per
        # object were ~1 us of a set backup's calling thread)
        src_pre, out_pre = child_prefix(path), child_prefix(out)
        if src_pre is None or out_pre is None:
            return os.path.join(path, ""), os.path.join(out, "")
        return src_pre, out_pre

    # a folder's prefixes, made when the walk lists it (asked for its file
    # jobs) and taken once it yields it: one relpath per folder
    made: Dict[str, Tuple[str, str]] = {}

    def file_jobs(path: str) -> Tuple[str, str, str, bool]:
        src_pre, out_pre = made[path] = prefixes(path)
        return src_pre, out_pre, SUFFIX, False

    # every file a job: made in C from each folder's listing where it can
    for folder in walk(src_dir, errors, cancel, None if classify else file_jobs):
        pre = made.pop(folder.path, None)
        src_pre, out_pre = pre if pre is not None else prefixes(folder.path)
        for d in folder.dirs:
            p = src_pre + d
            if encrypted(p):
                dirs.append((p, f"{out_pre}{d}{SUFFIX}", {"directory": True}))
        if not classify:        # (every file a job: no Python call per file)
            files += (folder.jobs if folder.jobs is not None else
                      [(src_pre + f, f"{out_pre}{f}{SUFFIX}") for f in folder.files])
            skipped.extend(os.path.join(folder.path, o) for o in folder.others)
            continue
        for f in folder.files:
            p = src_pre + f
            state = encrypted(p)
            if state:
                files.append((p, f"{out_pre}{f}{SUFFIX}"))
            elif state is False:
                skipped.append(p)
        skipped.extend(os.path.join(folder.path, o) for o in folder.others)
    return dirs, files, skipped


def _make_parents(paths: Iterable[Any], item: int = -1) -> None:
    """Create each distinct parent folder once (not one mkdir per file: on
    a FUSE mount every call is a round trip to the daemon).  ``item``: the
    paths are each ``job[item]`` of jobs."""
    for d in sorted(parent_folders(paths, item)):
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as exc:          # the destination cannot be written: the job fails
            raise problem(d, "cannot create the folder", exc) from None


def all_failed(jobs: Jobs, reason: str) -> BulkResult:
    """Every job failed for one reason found before anything was touched."""
    return BulkResult(results=[None] * len(jobs), failures=[
        ItemError(i, os.fspath(j[0]), _volume.raw_access_error(reason, j[0]))
        for i, j in enumerate(jobs)])


def _split_existing(jobs: Jobs, target: int,
                    keep: Optional[Callable[[Any], bool]] = None) -> Tuple[Jobs, List[str]]:
    """(jobs whose target does not exist yet, or that ``keep`` keeps,
    targets that do)."""
    todo: Jobs = []
    existing: List[str] = []
    for j in jobs:
        if os.path.lexists(j[target]) and not (keep is not None and keep(j)):
            existing.append(j[target])
        else:
            todo.append(j)
    return todo, existing


def backup_tree(src_dir: PathArg, dest_dir: PathArg, *, workers: Optional[int] = None,
                overwrite: bool = False, skip_existing: bool = False,
                progress: Optional[Progress] = None, cancel: Optional[CancelToken] = None,
                backend: Optional[Backend] = None) -> TreeResult:
    """Back up every encrypted file and folder below ``src_dir`` as
    ``.efsraw`` files mirrored below ``dest_dir``.  ``skip_existing`` leaves
    backups that are already there alone (resuming an interrupted run)."""
    src_dir, dest_dir = os.fspath(src_dir), os.fspath(dest_dir)
    check_source_dir(src_dir)
    errors: Errors = []
    dirs, files, skipped = plan_backup(src_dir, dest_dir, errors, cancel)
    existing: List[str] = []
    if skip_existing:
        dirs, ex1 = _split_existing(dirs, 1)
        files, ex2 = _split_existing(files, 1)
        existing = ex1 + ex2
    jobs = dirs + files
    tree = TreeResult(BulkResult(results=[None] * len(jobs)), directories=len(dirs),
                      skipped=skipped, existing=existing, unreadable=_unreadable(errors),
                      jobs=[j[:2] for j in jobs])
    reason = _volume.no_raw_access(src_dir, restore=False) if jobs else None
    if reason:      # every encrypted object would fail the same way: write nothing
        tree.bulk = all_failed(jobs, reason)
        return tree
    try:
        if not (cancel is not None and cancel.cancelled):
            _make_parents(jobs, 1)
            workers = workers or _volume.default_workers(src_dir)
            tree.bulk = backup_many(jobs, workers=workers, overwrite=overwrite,
                                    progress=progress, cancel=cancel, backend=backend)
    except BaseException as exc:        # Ctrl-C, a progress callback: keep what was done
        tree.bulk = getattr(exc, "result", None) or tree.bulk
        setattr(exc, "tree", tree)      # what was done, for the caller
        raise
    tree.bulk.cancelled = tree.bulk.cancelled or bool(cancel is not None and cancel.cancelled)
    return tree


def is_directory_stream(path: str) -> bool:
    """A raw stream with no unnamed data stream is a directory's (Windows
    directories have only the metadata stream, plus named streams if any).
    Only the headers are read; a stream whose headers do not walk is left
    to the restore to report."""
    try:
        from .raw import has_unnamed_stream     # (on first use, not at start-up)
        return has_unnamed_stream(path) is False
    except OSError:
        return False


def plan_restore(src_dir: str, dest_dir: str, errors: Optional[Errors] = None,
                 cancel: Optional[CancelToken] = None) -> Tuple[Jobs, Jobs]:
    """(directory jobs in creation order, file jobs) for restoring the raw
    streams below ``src_dir``; folders that cannot be listed go to
    ``errors`` as (path, error)."""
    found: Jobs = []        # (target, raw stream)
    cut = len(SUFFIX)
    join = os.path.join

    def target(path: str) -> str:
        rel = os.path.relpath(path, src_dir)
        return dest_dir if rel == "." else join(dest_dir, rel)

    # a folder's target, made when the walk lists it (asked for its jobs)
    # and taken once it yields it: one relpath per folder
    made: Dict[str, str] = {}

    def file_jobs(path: str) -> Optional[Tuple[str, str, str, bool]]:
        src_pre, out_pre = child_prefix(path), child_prefix(made.setdefault(path, target(path)))
        if src_pre is None or out_pre is None:
            return None
        return src_pre, out_pre, SUFFIX, True

    # each raw stream's job made in C from its folder's listing where it can
    # (restore-tree's serial part: ~0.2 us per stream made here in Python)
    for folder in walk(src_dir, [] if errors is None else errors, cancel, file_jobs):
        out = made.pop(folder.path, None)
        if folder.jobs is not None:
            found += folder.jobs
            continue
        out = target(folder.path) if out is None else out
        src_pre, out_pre = child_prefix(folder.path), child_prefix(out)
        if src_pre is not None and out_pre is not None:   # one concatenation per path
            found.extend((out_pre + f[:-cut], src_pre + f)
                         for f in folder.files if f.endswith(SUFFIX))
        else:
            found.extend((join(out, f[:-cut]), join(folder.path, f))
                         for f in folder.files if f.endswith(SUFFIX))
    # (a file's job is its (target, raw stream) pair as found: no new tuple)
    at = _directory_streams(found, 1)
    if not at:
        return [], found
    folders = set(at)
    dirs = [(found[i][0], found[i][1], {"directory": True}) for i in at]
    dirs.sort(key=lambda j: j[0].count(os.sep))
    return dirs, [j for i, j in enumerate(found) if i not in folders]


# below this many streams the calling thread probes them itself (starting
# threads costs more than it saves)
_PROBE_THREADS_FROM = 256


def _directory_streams(jobs: Jobs, item: int) -> List[int]:
    """The positions in ``jobs`` of those whose raw stream ``job[item]`` is
    a folder's (:func:`is_directory_stream`).  On the POSIX side the headers
    are walked in C (efs_probe.c) on a few threads without the GIL, so
    telling folders from files costs the calling thread no GIL time per
    stream (restore-tree's serial part: about 5 us per stream walked in
    Python)."""
    if not _core.HAVE_POSIX or not jobs:
        return [i for i, j in enumerate(jobs) if is_directory_stream(j[item])]
    probe = _core.StreamProbe(jobs, item)
    count = 1 if len(jobs) < _PROBE_THREADS_FROM else min(os.cpu_count() or 1, 8)
    if count == 1:
        probe.work()
    elif run_threads(probe.work, count, name="efsfast-probe"):
        raise KeyboardInterrupt         # (after the probes: a few reads per stream)
    return probe.positions(_core.PROBE_NO_UNNAMED)


def restore_tree(src_dir: PathArg, dest_dir: PathArg, *, workers: Optional[int] = None,
                 overwrite: bool = False, skip_existing: bool = False,
                 progress: Optional[Progress] = None, cancel: Optional[CancelToken] = None,
                 backend: Optional[Backend] = None) -> TreeResult:
    """Restore the ``.efsraw`` files below ``src_dir`` into a tree below
    ``dest_dir``: encrypted folders first, then files in parallel.
    ``skip_existing`` leaves objects that are already there alone (resuming
    an interrupted run: an interrupted restore never leaves a partial one)."""
    src_dir, dest_dir = os.fspath(src_dir), os.fspath(dest_dir)
    check_source_dir(src_dir)
    errors: Errors = []
    dirs, files = plan_restore(src_dir, dest_dir, errors, cancel)
    return restore_planned(dirs, files, dest_dir, workers=workers, overwrite=overwrite,
                           skip_existing=skip_existing, progress=progress, cancel=cancel,
                           backend=backend, unreadable=_unreadable(errors))


def restore_planned(dirs: Jobs, files: Jobs, dest_dir: str, *, workers: Optional[int] = None,
                    overwrite: bool = False, skip_existing: bool = False,
                    progress: Optional[Progress] = None,
                    cancel: Optional[CancelToken] = None, backend: Optional[Backend] = None,
                    unreadable: Optional[List[ItemError]] = None,
                    prepared: Optional[_core.SetFiles] = None) -> TreeResult:
    """Run planned restore jobs: ``dirs`` as ``(target, source, {"directory":
    True})``, ``files`` as ``(target, source)`` (see :func:`plan_restore`);
    ``unreadable``: what planning could not read, failed items of the result.
    ``prepared``: a backup set's files (``files`` are its pairs), run from
    its C rows where they run as given (see api.restore_set_files)."""
    existing: List[str] = []
    gate = FolderGate(backend)
    if prepared is not None and skip_existing:      # (resuming: as restore_many takes them)
        files, prepared = prepared.jobs(), None
    by_position, moved = gate.folders_by_position(dirs, files)
    if prepared is not None and moved is not files:
        # (a file stream that holds others: moved with its check, as restore_many takes it)
        files, prepared = prepared.jobs(), None
        by_position, moved = gate.folders_by_position(dirs, files)
    dirs, files = by_position, moved
    if skip_existing:   # an existing folder counts only if it is the backup's
        remove_leftovers({os.path.dirname(os.fspath(j[0])) for j in dirs + files})
        dirs, ex1 = _split_existing(dirs, 0, keep=gate.refuse_unlike_backup)
        files, ex2 = _split_existing(files, 0)
        existing = ex1 + ex2
    jobs = dirs + files
    tree = TreeResult(BulkResult(results=[None] * len(jobs)), directories=len(dirs),
                      existing=existing, unreadable=list(unreadable or ()),
                      jobs=[j[:2] for j in jobs])
    reason = _volume.no_raw_access(dest_dir, restore=True) if jobs else None
    if reason:      # every object would be stored unencrypted: create nothing
        tree.bulk = all_failed(jobs, reason)
        return tree
    done = [0, 0]
    workers = workers or _volume.default_workers(dest_dir)

    def step(f: int, b: int, _t: int) -> None:
        if progress is not None:
            progress(done[0] + f, done[1] + b, len(jobs))

    # encrypted directories first, one depth at a time, so their files land
    # inside; then the files.  Each batch's result joins ``parts`` in job order
    batches = [[j for j in dirs if j[0].count(os.sep) == depth]
               for depth in sorted({j[0].count(os.sep) for j in dirs})] + [files]
    parts: List[BulkResult] = []
    try:
        if not (cancel is not None and cancel.cancelled):
            _make_parents([os.path.join(dest_dir, "-")])
        for batch in batches:
            if cancel is not None and cancel.cancelled:
                break
            # what lies below a folder that failed fails too, unwritten
            run, early = gate.split(batch)
            _make_parents(batch if len(run) == len(batch) else map(batch.__getitem__, run), 0)
            whole = prepared if batch is files and run and len(run) == len(batch) else None
            jobs_of = (prepared.jobs() if prepared is not None and whole is None and batch is files
                       else batch)     # (below a folder that failed: as restore_many takes them)
            try:
                if whole is not None:
                    r = restore_set_files(whole, workers=workers, overwrite=overwrite,
                                          progress=step, cancel=cancel, backend=backend)
                else:
                    r = restore_many([jobs_of[i] for i in run], workers=workers,
                                     overwrite=overwrite, progress=step, cancel=cancel,
                                     backend=backend) if run else BulkResult(results=[])
            except BaseException as exc:
                if getattr(exc, "result", None) is not None:
                    setattr(exc, "result", gate.expand(getattr(exc, "result"), batch, run, early))
                raise
            r = gate.expand(r, batch, run, early)
            gate.note(batch, r)
            parts.append(r)
            done[0] += r.files
            done[1] += r.bytes
    except BaseException as exc:        # Ctrl-C, a progress callback: keep what was done
        if getattr(exc, "result", None) is not None:
            parts.append(getattr(exc, "result"))
        tree.bulk = _merge(parts, jobs)
        setattr(exc, "tree", tree)
        raise
    tree.bulk = _merge(parts, jobs)
    tree.bulk.cancelled = tree.bulk.cancelled or bool(cancel is not None and cancel.cancelled)
    return tree


def remove_leftovers(folders: Iterable[str]) -> int:
    """Resuming: the temporaries a killed restore left in ``folders`` (its
    temporary objects, by their fixed-form names; an unnamed O_TMPFILE one
    vanishes by itself, a folder's or one on FUSE has a name).  A temporary
    folder holds nothing: it gets its name before anything goes into it."""
    n = 0
    for folder in folders:
        try:
            with os.scandir(folder) as entries:
                names = [e for e in entries if _winfs.is_temporary(e.name)]
        except OSError:
            continue            # not there yet, or not listable: the restore says so
        for e in names:
            try:
                if e.is_dir(follow_symlinks=False):
                    os.rmdir(e.path)
                else:
                    os.unlink(e.path)
            except OSError:
                continue
            n += 1
    return n


def _merge(parts: List[BulkResult], jobs: Jobs) -> BulkResult:
    """One BulkResult from the results of consecutive slices of the jobs
    (slices never run are left out: TreeResult.not_done counts them)."""
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


def sync_restored(result: TreeResult, dest_dir: str,
                  way: Optional[_durable.SyncWay] = None, workers: int = 1) -> None:
    """Put what a restore (or decryption) wrote below ``dest_dir`` on stable
    storage before its summary is given (durable.py; ``way``: by default as
    the file system needs).  An object that could not be synced is a failed
    item, no longer done; a file system that could not be, one failed item
    naming the folder.  Not on Windows: FlushFileBuffers wants the object
    open for writing, which an encrypted one is not without its key."""
    if way is None and sys.platform == "win32":
        return
    where: Dict[str, int] = {}  # written path -> its job's index
    for i, r in enumerate(result.bulk.results):
        if r is not None:
            for p in getattr(r, "files", None) or [r.path]:
                where[p] = i
    for p in result.existing:   # left by a run that may have stopped before its sync
        where.setdefault(p, -1)
    bulk = result.bulk
    for path, exc in _durable.sync_written(dest_dir, list(where), way, workers=workers):
        err = problem(path, "could not be synced to stable storage", exc)
        i = where.get(path, -1)
        if i >= 0 and bulk.results[i] is not None:
            bulk.bytes -= getattr(bulk.results[i], "bytes", 0)
            bulk.files -= 1
            bulk.results[i] = None
            bulk.failures.append(ItemError(i, path, err))
        else:       # a folder, or the file system: no job of its own
            bulk.failures.append(ItemError(-1, path, err))
    bulk.failures.sort(key=lambda e: e.index)
