"""backup-tree with a manifest: every encrypted object's raw stream, its
SHA-256 (computed in the export path as the stream is written) and its NTFS
metadata, into a folder set or a tar stream (sinks.py, tarsink.py).
``since`` makes an incremental set: objects whose change time, size and
$EFS match the previous manifest are recorded as references to the set
that holds them.
"""
from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, cast

from .. import tree
from .. import volume as _volume
from ..treefolders import ERROR_FILE_NOT_ENCRYPTED
from ..treewalk import check_source_dir, parent_folders
from ..bulkjob import BulkResult, ItemError
from ..bulkjob import run_many as _run_many
from .. import _core
from .._core import CancelToken
from .._errors import EfsError, RefusedError
from ..messages import describe
from . import metadata as _meta
from .manifest import (ERROR_INCOMPLETE_SET, ERROR_INVALID_NAME, MANIFEST_NAME, NOT_UTF8, Entry,
                       Header, Kind, find_manifest, read_manifest, recordable, shown)
from .bulk import backup_bulk
from .result import SetResult
from .sinks import FolderSink, SetSink
from .tarbulk import stream_bulk
from .tarsink import TarSink


@dataclass(frozen=True, eq=False)
class _Done:
    # (one object per item made in the calling thread: no __dict__ beside it;
    # frozen: bulk.py gives objects of one kind and size the same one; eq
    # False: compared by identity, as _drop_skipped does)
    __slots__ = ("kind", "bytes")
    kind: Optional[Kind]        # None: not encrypted (a candidate the worker skipped)
    bytes: int


# every candidate found not encrypted has this one (_drop_skipped looks for it)
_PLAIN = _Done(None, 0)


def _done(kind: Optional[Kind], nbytes: int) -> _Done:
    return _PLAIN if kind is None else _Done(kind, nbytes)


def _recordable(jobs: tree.Jobs, failed: List[ItemError]) -> tree.Jobs:
    """The jobs whose names a manifest can record; each other one becomes a
    failed item of ``failed``, named, with the cause."""
    if all(map(str.isascii, map(itemgetter(0), jobs))):    # (no Python step per job)
        return jobs
    out: tree.Jobs = []
    for j in jobs:
        if recordable(j[0]):
            out.append(j)
        else:
            failed.append(ItemError(-1, j[0], EfsError(ERROR_INVALID_NAME, NOT_UTF8, j[0])))
    return out


def _rel(path: str, top: str) -> str:
    # plan_backup joins below ``top``: a prefix cut is relpath without its cost
    rel = path[len(top) + 1:] if path.startswith(top + os.sep) else os.path.relpath(path, top)
    return rel.replace(os.sep, "/") if os.sep != "/" else rel


def efs_sha256(path: str) -> Optional[str]:
    """SHA-256 of the object's $EFS value where the file system shows it
    (efs_raw layout: the user.ntfs.efsinfo xattr); None elsewhere."""
    if not hasattr(os, "getxattr"):
        return None
    try:
        return hashlib.sha256(os.getxattr(path, _volume.EFSINFO_XATTR,
                                          follow_symlinks=False)).hexdigest()
    except OSError:
        return None


def _unchanged(prev: Optional[Entry], now: Entry) -> bool:
    """The incremental test: same kind, NTFS change time (POSIX
    ctime elsewhere), size and $EFS as a whole entry of the previous set."""
    if prev is None or prev.failed or prev.sha256 is None or prev.kind is not now.kind:
        return False
    stamp = _meta.change_stamp(now.meta)
    # where the $EFS is not readable apart from the stream (Windows), the MFT
    # change time alone answers for it: NTFS moves it when $EFS is rewritten
    return (stamp is not None and stamp == _meta.change_stamp(prev.meta)
            and prev.source_size == now.source_size and prev.efs_sha256 == now.efs_sha256)


class _Previous:
    """The set an incremental run compares with."""

    def __init__(self, path: str) -> None:
        from ..store import is_s3_url
        if is_s3_url(path):             # a set in an object store: its URL is its path
            from .storeread import read_store_set_at
            self.path = path
            m = read_store_set_at(path, command="backup-tree --since", done="written")
        else:
            self.path = os.path.abspath(path)
            where, complete = find_manifest(self.path)
            if where is not None and not complete:
                raise RefusedError(ERROR_INCOMPLETE_SET, "an incomplete set (its backup did "
                                   "not finish) cannot be the base of an incremental one: "
                                   "resume it with backup-tree --skip-existing first",
                                   self.path)
            m = read_manifest(os.path.join(self.path, MANIFEST_NAME))
        self.header = m.header
        self.entries = m.by_path()
        # the new set refers to this one, and to every set it refers to
        self.refs = [dict(r) for r in m.header.refs]
        self.refs.append({"set_id": m.header.set_id, "path": self.path,
                          "manifest_sha256": m.sha256})
        self.since = {"set_id": m.header.set_id, "path": self.path,
                      "manifest_sha256": m.sha256}

    def ref_of(self, prev: Entry) -> str:
        return prev.ref or self.header.set_id


def backup_set(src_dir: tree.PathArg, sink: SetSink, *, workers: Optional[int] = None,
               skip_existing: bool = False, metadata: bool = True,
               since: Optional[str] = None,
               progress: Optional[Callable[[int, int, int], None]] = None,
               cancel: Optional[CancelToken] = None,
               backend: Optional[_core.Backend] = None) -> SetResult:
    """Back up every encrypted object below ``src_dir`` into ``sink`` and
    finish the set with its manifest.  A folder set that cannot be finished
    (its destination is full, its manifest cannot be written) is left
    incomplete and the result says why (``complete`` False); Ctrl-C
    (KeyboardInterrupt) and other errors abort the sink too (see sinks.py
    for what each keeps).  A folder the set must not go into is refused
    (RefusedError) before any work."""
    src_dir = os.path.abspath(os.fspath(src_dir))
    check_source_dir(src_dir)
    folder = sink.resumable        # a folder or an object store, not a stream
    if folder:
        sink.check(src_dir, resume=skip_existing)
    # by default as many as the source is fastest with; into an object store
    # as many as its requests in flight (--jobs): a worker holds its object
    # until the store has it, so fewer workers would leave requests unsent
    # (2 PUTs in flight on 2 CPUs at --jobs 16), and more would wait with
    # their objects in memory for a request thread
    workers = workers or sink.in_flight or _volume.default_workers(src_dir)
    sink.workers = workers
    prev = _Previous(since) if since else None
    kind = (_meta.source_kind(src_dir) if metadata else _meta.MetaSource.NONE)
    be = backend if backend is not None else _core.default_backend()
    reason = _volume.no_raw_access(src_dir, restore=False)
    # on the POSIX system side a worker opens each object once and reads
    # what the set needs through that descriptor, which also tells whether
    # it is encrypted: the plan need not visit every file first
    opened_facts = isinstance(be, _core.PosixBackend) and not reason
    in_c = (opened_facts and isinstance(sink, (FolderSink, TarSink)) and prev is None
            and not skip_existing)
    errors: tree.Errors = []        # what cannot be listed or read: failed items, never skipped
    dirs, files, skipped = tree.plan_backup(src_dir, sink.plan_root, errors, cancel,
                                            classify=not opened_facts)
    unreadable = tree._unreadable(errors)
    # a name the manifest cannot record fails as that object, named, before any work
    dirs, files = _recordable(dirs, unreadable), _recordable(files, unreadable)
    if opened_facts and unreadable:     # a folder that cannot be listed fails once, as such
        failed = {e.dest for e in unreadable}
        dirs = [j for j in dirs if j[0] not in failed]
    if reason and (dirs or files):      # every encrypted object would fail the same way
        return SetResult(tree.all_failed(dirs + files, reason), directories=len(dirs),
                         skipped=skipped, unreadable=unreadable)
    header = Header.new(src_dir, kind.value, since=prev.since if prev else None,
                        refs=prev.refs if prev else None)
    sink.begin(header)
    try:
        if kind is not _meta.MetaSource.NONE and not opened_facts:
            _plain_folders(src_dir, dirs + files, dirs, kind, sink)
    except BaseException as exc:
        sink.abort(_why(exc))
        raise
    lock = threading.Lock()
    existing: List[str] = []
    unchanged = [0]
    plain_seen = [0]         # candidates found not encrypted so far

    def finish(raw: Optional[_core.RawContext], entry: Entry, path: str, out: str,
               token: CancelToken) -> _Done:
        """The entry of an object whose metadata is captured: a reference to
        the previous set, the backup already there, or the stream now."""
        p = prev.entries.get(entry.path) if prev else None
        if prev and p is not None and _unchanged(p, entry):
            entry.ref, entry.raw_size, entry.sha256 = prev.ref_of(p), p.raw_size, p.sha256
            with lock:
                unchanged[0] += 1
            sink.add_entry(entry)
            return _Done(entry.kind, 0)
        if skip_existing and sink.keeps(entry):
            with lock:
                existing.append(out)
            sink.add_entry(entry)
            return _Done(entry.kind, 0)
        digest = hashlib.sha256()
        if raw is None:
            with _core.open_raw(path, entry_flags(entry), be) as raw:
                entry.raw_size = sink.store(raw, entry, digest, cancel=token)
        else:
            entry.raw_size = sink.store(raw, entry, digest, cancel=token)
        entry.sha256 = digest.hexdigest()
        try:
            sink.add_entry(entry)
        except OSError:
            if folder:          # stored, but its line could not be written: not kept
                sink.discard(entry)
            raise
        return _Done(entry.kind, entry.raw_size)

    def entry_flags(entry: Entry) -> int:
        return _core.CREATE_FOR_DIR if entry.kind is Kind.DIRECTORY else 0

    def one(path: str, out: str, opts: Dict[str, Any], token: CancelToken) -> _Done:
        directory = bool(opts.get("directory"))
        entry = Entry(path=_rel(path, src_dir), kind=Kind.DIRECTORY if directory else Kind.FILE)
        if opened_facts:
            with _core.open_raw(path, entry_flags(entry), be) as raw:
                if not _capture_opened(raw, entry, kind):
                    with lock:
                        plain_seen[0] += 1
                    return _PLAIN       # not encrypted: skipped
                return finish(raw, entry, path, out, token)
        # metadata before the data: a change during the backup shows as a
        # newer change time next time, so an incremental run takes it again
        st = os.lstat(path)
        entry.meta = _meta.capture(path, kind, st)
        entry.source_size = 0 if directory else st.st_size
        entry.efs_sha256 = efs_sha256(path)
        return finish(None, entry, path, out, token)

    parts: List[BulkResult] = []
    jobs = candidates = dirs + files
    sifted = None           # (result, jobs) once plain candidates are left out
    try:
        counted = [0, 0]        # objects and bytes of the batches before this one

        def step(f: int, b: int, _t: int) -> None:
            # objects, not candidates: a file found not encrypted leaves
            # the count of what is done and of what there is to do
            if progress is not None:
                progress(counted[0] + f - plain_seen[0], counted[1] + b,
                         len(jobs) - plain_seen[0])
        # a stream needs each folder before what it holds: folders one at a time
        batches = [(dirs, 1), (files, workers)] if sink.ordered else [(jobs, workers)]
        # a full folder set on the POSIX side: every object in C (in_c says
        # the sink and the backend are these)
        if (in_c and isinstance(sink, FolderSink) and isinstance(be, _core.PosixBackend)
                and jobs):
            parts.append(backup_bulk(jobs, sink, kind=kind, backend=be, workers=workers,
                                     rel=lambda p: _rel(p, src_dir), make_done=_done,
                                     progress=progress, cancel=cancel,
                                     rel_prefix=src_dir + os.sep))
            batches = []
        # a full tar stream there: every export in C, this thread writing
        # the members (folders first, in the plan's order)
        if (in_c and isinstance(sink, TarSink) and isinstance(be, _core.PosixBackend)
                and jobs):
            parts.append(stream_bulk(jobs, sink, folders=len(dirs), kind=kind, backend=be,
                                     workers=workers, rel=lambda p: _rel(p, src_dir),
                                     make_done=_done, progress=progress, cancel=cancel))
            batches = []
        for batch, n in batches:
            if batch:
                r = _run_many(batch, one, workers=n, progress=step, cancel=cancel,
                              fail_fast=sink.fail_fast)
                parts.append(r)
                counted[0] += r.files
                counted[1] += r.bytes
        if sink.broken is not None and not folder:
            raise sink.broken
        bulk = _merge(parts, jobs)
        if opened_facts:
            bulk, jobs, plain = _drop_skipped(bulk, jobs)
            skipped.extend(sorted(plain))
            if jobs is not candidates:      # (some dropped: the plan's dirs otherwise)
                dirs = [j for j in jobs if len(j) > 2]
        sifted = (bulk, jobs)
        try:
            if opened_facts and kind is not _meta.MetaSource.NONE:
                _plain_folders(src_dir, jobs, dirs, kind, sink)
            for e in bulk.failures:
                job = jobs[e.index]
                sink.add_entry(Entry(path=shown(_rel(job[0], src_dir)),
                                     kind=Kind.DIRECTORY if len(job) > 2 else Kind.FILE,
                                     failed=describe(e.error, job[0])))
            for e in unreadable:
                sink.add_entry(Entry(path=shown(_rel(e.dest, src_dir)),
                                     kind=Kind.DIRECTORY if os.path.isdir(e.dest) else Kind.FILE,
                                     failed=describe(e.error, e.dest)))
        except OSError:
            if not (folder and sink.broken is not None):
                raise           # (a broken manifest: the set stays incomplete, said below)
        if bulk.cancelled:
            raise KeyboardInterrupt("cancelled")
        unfinished = sink.unfinished(bulk.failures)
        if unfinished is None:
            try:
                digest = sink.finish()
            except OSError as exc:
                if not folder:
                    raise
                unfinished = f"its manifest could not be published and synced: {exc}"
        if unfinished is not None:
            sink.abort(unfinished)
    except BaseException as exc:
        sink.abort(_why(exc))
        # the account of what was done, for the summary of an interrupted
        # run: what is whole in the set, per kind (candidates found not
        # encrypted are no objects of it: they are not counted as done)
        if hasattr(exc, "result") or sifted is None:
            if not hasattr(exc, "result"):
                setattr(exc, "result", _merge(parts, candidates))
            done, left = getattr(exc, "result"), candidates
            if opened_facts:
                done, left, plain = _drop_skipped(done, candidates)
                skipped.extend(sorted(set(plain) - set(skipped)))
        else:
            done, left = sifted
            setattr(exc, "result", done)
        setattr(exc, "tree", SetResult(done, directories=sum(
            1 for r in done.results if isinstance(r, _Done) and r.kind is Kind.DIRECTORY),
            skipped=skipped, existing=existing,
            unreadable=unreadable, jobs=[j[:2] for j in left], unchanged=unchanged[0],
            set_id=header.set_id, complete=False, reason=_why(exc)))
        raise
    return SetResult(bulk, directories=len(dirs), skipped=skipped, existing=existing,
                     unchanged=unchanged[0], set_id=header.set_id,
                     manifest_sha256="" if unfinished else digest, unreadable=unreadable,
                     jobs=_pairs(jobs, len(dirs)), complete=unfinished is None,
                     reason=unfinished or "")


def _pairs(jobs: tree.Jobs, folders: int) -> tree.Jobs:
    """The result's (object, backup file) of each job, where the first
    ``folders`` jobs are the folders' (with options) and the rest the
    files' pairs as the plan made them (not taken apart again: this runs
    over every object in the calling thread)."""
    if not folders:
        return jobs
    return [j[:2] for j in jobs[:folders]] + jobs[folders:]


def _why(exc: BaseException) -> str:
    """The reason an aborted set's manifest gives."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return describe(exc)


def _capture_opened(raw: _core.RawContext, entry: Entry, kind: _meta.MetaSource) -> bool:
    """Metadata, size and $EFS hash of the object open in ``raw`` (POSIX
    system side), all through its descriptor; False where it is not
    encrypted.  The $EFS read here is the one the export sends."""
    st = _core.object_stat(raw)
    meta = _meta.capture_opened(raw, kind, st)
    if meta is None:
        return False
    try:
        efs = _core.load_efs(raw)
    except EfsError as exc:
        if exc.winerror == ERROR_FILE_NOT_ENCRYPTED:
            return False
        raise
    entry.meta = meta
    entry.source_size = 0 if entry.kind is Kind.DIRECTORY else st[0]
    entry.efs_sha256 = hashlib.sha256(efs).hexdigest()
    return True


def _drop_skipped(bulk: BulkResult, jobs: tree.Jobs) -> Tuple[BulkResult, tree.Jobs, List[str]]:
    """(result, jobs) without the objects a worker found not encrypted, and
    the paths of such files (skipped, as a plan that probes first reports
    them; plain folders are not): they were candidates, never items of the
    set."""
    # (most trees have none: one search by identity in C first, as this runs
    # in the calling thread over every object)
    results = cast(List[object], bulk.results)     # (_Done here, not RestoreResult)
    if _PLAIN not in results:
        return bulk, jobs, []
    dropped = [i for i, r in enumerate(results) if r is _PLAIN]
    drop = set(dropped)
    keep = [i for i in range(len(jobs)) if i not in drop]
    plain = [jobs[i][0] for i in dropped if len(jobs[i]) == 2]
    ran = len(bulk.results)         # (an interrupted run: the rest never started)
    where = {old: new for new, old in enumerate(keep)}
    out = BulkResult(results=[bulk.results[i] for i in keep if i < ran], bytes=bulk.bytes,
                     files=bulk.files - (len(jobs) - len(keep)), cancelled=bulk.cancelled)
    out.failures = [type(e)(where[e.index], e.dest, e.error) for e in bulk.failures]
    return out, [jobs[i] for i in keep], plain


def _plain_folders(src_dir: str, jobs: tree.Jobs, dirs: tree.Jobs, kind: _meta.MetaSource,
                   sink: SetSink) -> None:
    """Lines for the unencrypted folders between the source and its objects
    (``jobs``, the folders among them ``dirs``): their metadata only, so a
    restore gives them their times, attributes and descriptors too (the
    source folder itself is the destination's)."""
    encrypted = {_rel(j[0], src_dir) for j in dirs}
    # (the folders holding objects found in C: this runs over every object
    # in the calling thread)
    plain: Set[str] = set()
    for folder in parent_folders(jobs, 0):
        if folder == src_dir:
            continue
        rel = _rel(folder, src_dir)
        while rel not in plain:     # (else so is every folder above it)
            if rel not in encrypted:
                plain.add(rel)
            if "/" not in rel:
                break
            rel = rel.rsplit("/", 1)[0]
    for rel in sorted(plain):
        path = os.path.join(src_dir, *rel.split("/"))
        try:
            meta = _meta.capture(path, kind)
        except OSError as exc:
            sink.add_entry(Entry(path=rel, kind=Kind.PLAIN_DIRECTORY,
                                 failed=describe(exc, path)))
            continue
        sink.add_entry(Entry(path=rel, kind=Kind.PLAIN_DIRECTORY, meta=meta))


def _merge(parts: List[BulkResult], jobs: tree.Jobs) -> BulkResult:
    return tree._merge(parts, jobs) if parts else BulkResult(results=[])
