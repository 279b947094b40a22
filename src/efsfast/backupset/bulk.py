"""backup-tree into a folder set with every object's work in C (POSIX side,
full sets): each worker opens an object once, reads its NTFS metadata and
$EFS through that descriptor, tells plain from encrypted and writes the raw
stream into the set, hashing it as it is written (efs_posix_backup.c, without
the GIL); this thread takes the finished objects as they come and only makes
their manifest lines (nothing is read back to hash it).
Incremental sets, resumed sets and tar streams go object by object through
writer.py instead."""
from __future__ import annotations

import os
from typing import Any, Callable, List, Optional

from .. import _core
from ..tree import Jobs
from ..bulkjob import BulkResult, ItemError
from ..bulkjob import SafeProgress as _Progress
from ..bulkjob import close_result as _close
from ..bulkjob import run_on_threads as _run_threads
from ..bulkjob import watch_ctrl_c as _watch_ctrl_c
from .._errors import CancelledError
from . import metadata as _meta
from .manifest import Entry, Kind
from ..treewalk import parent_folder, problem
from .sinks import FolderSink


def backup_bulk(jobs: Jobs, sink: FolderSink, *, kind: _meta.MetaSource,
                backend: _core.PosixBackend, workers: int, rel: Callable[[str], str],
                make_done: Callable[[Optional[Entry], int], Any],
                progress: Optional[Callable[[int, int, int], None]],
                cancel: Optional[_core.CancelToken]) -> BulkResult:
    """Export every candidate in ``jobs`` ((object, backup file[, options]))
    into ``sink``; results: ``make_done(entry, bytes)`` per object,
    ``make_done(None, 0)`` per plain candidate, None where it failed (see
    failures) or never started."""
    _watch_ctrl_c()
    token = cancel if cancel is not None else _core.CancelToken()
    made = _make_folders(sorted({parent_folder(j[1]) for j in jobs}))
    # temporaries named by the workers (None), in temp_beside's form: naming
    # each here cost the calling thread ~1.5 us per object
    c_jobs = [(j[0], j[1], None, _core.CREATE_FOR_DIR if len(j) > 2 else 0) for j in jobs]
    batch = _core.BulkExport(c_jobs, backend, token, capture_ntfs=kind is _meta.MetaSource.NTFS3G,
                             overwrite=sink.overwrite, sync=sink.sync_in_workers)
    result = BulkResult(results=[None] * len(jobs))
    taken = [False] * len(jobs)
    low = [0]                       # every item below this one is taken
    plain = [0]
    report = _Progress(progress, token)

    def take(i: int) -> None:
        src, out = jobs[i][0], jobs[i][1]
        outcome, error, st, attrib, times, acl, acl_errno, efs_sha256, sha256, size = \
            batch.take(i, src, out)
        taken[i] = True
        if outcome == "plain":
            plain[0] += 1
            result.results[i] = make_done(None, 0)
            result.files += 1          # (writer.py drops plain candidates from the count)
        elif outcome == "failed":
            assert error is not None        # (C gives a failed item its error)
            if isinstance(error, CancelledError):
                token.cancel()         # stopped: not done, not failed
                return
            result.failures.append(ItemError(i, os.fspath(src), error))
        elif outcome == "done":
            # (C gives an item it took its stat and NTFS attribute values)
            assert st is not None and attrib is not None and times is not None
            directory = len(jobs[i]) > 2
            # (one positional call: this runs once per object in the calling thread)
            entry = Entry(rel(src), Kind.DIRECTORY if directory else Kind.FILE, size, sha256,
                          0 if directory else st[0], efs_sha256)
            try:        # (never raises into the wait: the workers still run)
                entry.meta = _meta.from_facts(kind, st, attrib, times, acl, acl_errno)
                # the line, once the object is in the set
                sink.add_entry(entry, written=out)
            except Exception as exc:
                sink.discard(entry)         # in the set, but not in its manifest: removed
                result.failures.append(ItemError(i, os.fspath(src), exc))
                return
            result.results[i] = make_done(entry, size)
            result.files += 1
            result.bytes += size

    def drain() -> None:
        i = low[0]
        while i < len(jobs) and (taken[i] or batch.ready(i)):
            if not taken[i]:
                take(i)
            i += 1
        low[0] = i
        # items past a slow one are taken too, so memory stays a few items
        for j in range(i + 1, min(len(jobs), i + 64)):
            if not taken[j] and batch.ready(j):
                take(j)

    def tick() -> None:
        drain()
        report(result.files - plain[0], result.bytes, len(jobs) - plain[0])

    interrupted = False
    try:
        interrupted = _run_threads(batch.work, min(workers, len(jobs)) or 1, token, tick)
    finally:
        for i in range(len(jobs)):          # what finished, also after Ctrl-C
            if not taken[i] and batch.ready(i):
                take(i)
        result.failures.sort(key=lambda e: e.index)
        _remove_empty(made)
    report(result.files - plain[0], result.bytes, len(jobs) - plain[0])
    return _close(result, token, interrupted, len(jobs), report)


def _make_folders(folders: List[str]) -> List[str]:
    """The set's folders for these objects, made once each; returns those
    made here (one that ends up holding nothing, as below it there were only
    plain files, is removed after).  Every folder above an object is itself
    one of ``folders`` (each candidate folder is a job), so makedirs creates
    nothing unrecorded.  A folder that cannot be made fails the job, named,
    as in tree._make_parents."""
    made = []
    for d in folders:
        if os.path.isdir(d):
            continue
        try:
            os.makedirs(d)
        except FileExistsError:
            continue
        except OSError as exc:
            raise problem(d, "cannot create the folder", exc) from None
        made.append(d)
    return made


def _remove_empty(made: List[str]) -> None:
    for d in sorted(made, key=lambda p: -p.count(os.sep)):
        try:
            os.rmdir(d)
        except OSError:
            pass            # holds backups: stays
