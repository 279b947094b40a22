"""backup-tree into a folder set with every object's work in C (POSIX side,
full sets): each worker opens an object once, reads its NTFS metadata and
$EFS through that descriptor, tells plain from encrypted and writes the raw
stream into the set, hashing it as it is written (efs_posix_backup.c, without
the GIL); this thread takes the finished objects as they come and writes their
manifest lines, which the workers made too where the metadata is POSIX's or
none (efs_manifest.c; nothing is read back to hash it).
A full tar stream has a batch of its own (tarbulk.py: the same work into
memory, one thread writing the members); incremental and resumed sets go
object by object through writer.py."""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Tuple

from .. import _core
from ..tree import Jobs
from ..bulkjob import BulkResult, ItemError
from ..bulkjob import SafeProgress as _Progress
from ..bulkjob import close_result as _close
from ..bulkjob import run_on_threads as _run_threads
from ..bulkjob import watch_ctrl_c as _watch_ctrl_c
from . import metadata as _meta
from .bulktake import object_taker
from .linepipe import LinePipe
from .manifest import SUFFIX, Entry, Kind
from ..treewalk import problem
from .sinks import FolderSink

# the metadata whose lines the workers make (efs_manifest.c); ntfs-3g's
# (times, attributes, descriptor) are made here
_LINES_IN_C = (_meta.MetaSource.POSIX, _meta.MetaSource.NONE)


def backup_bulk(jobs: Jobs, sink: FolderSink, *, kind: _meta.MetaSource,
                backend: _core.PosixBackend, workers: int, rel: Callable[[str], str],
                make_done: Callable[[Optional[Kind], int], Any],
                progress: Optional[Callable[[int, int, int], None]],
                cancel: Optional[_core.CancelToken], rel_prefix: Optional[str] = None
                ) -> BulkResult:
    """Export every candidate in ``jobs`` ((object, backup file[, options]))
    into ``sink``; results: ``make_done(kind, bytes)`` per object (objects
    whose lines the workers made share one per distinct pair: it must be
    immutable), ``make_done(None, 0)`` per plain candidate, None where it
    failed (see failures) or never started.  ``rel_prefix``: the source folder and a
    separator, which ``rel`` cuts from a path below it: given, the workers
    make the manifest lines of such objects (POSIX metadata, or none)."""
    _watch_ctrl_c()
    token = cancel if cancel is not None else _core.CancelToken()
    # the manifest lines made by the workers (efs_manifest.c): an Entry, its
    # metadata and its line made here cost the calling thread ~4 us per object
    lines = (kind.value if kind in _LINES_IN_C and rel_prefix is not None and os.sep == "/"
             else None)
    # the plan's jobs as they are (plan=True: no job list made again), each
    # temporary named by the workers, in temp_beside's form: naming each
    # here cost the calling thread ~1.5 us per object
    batch = _core.BulkExport(jobs, backend, token, capture_ntfs=kind is _meta.MetaSource.NTFS3G,
                             overwrite=sink.overwrite, sync=sink.sync_in_workers, lines=lines,
                             rel_prefix=rel_prefix, plan=True)
    # (the folders listed as the batch read the jobs: a parent_folder per
    # object here cost ~0.2 us each)
    made = _make_folders(sorted(set(batch.folders)))
    result = BulkResult(results=[None] * len(jobs))
    taken = [False] * len(jobs)
    low = [0]                       # every item below this one is taken
    report = _Progress(progress, token)

    def store(_i: int, _src: str, out: str, entry: Entry, size: int) -> int:
        sink.add_entry(entry, written=out)      # the line, once the object is in the set
        return size

    def undo(entry: Entry, _out: str) -> None:
        sink.discard(entry)         # in the set, but not in its manifest: removed

    take, counts = object_taker(batch, jobs, taken, result, token, kind=kind, rel=rel,
                                make_done=make_done, store=store, undo=undo)

    made_done: Dict[int, Any] = {}      # one result per (kind, size), shared

    def make(directory: bool, size: int) -> Any:
        return make_done(Kind.DIRECTORY if directory else Kind.FILE, size)

    # the runs' lines are written on a thread of their own (linepipe.py);
    # a ticket is what a run stood for, undone if its write fails
    pipe: LinePipe[Tuple[int, int, int]] = LinePipe()

    def outs(i: int, j: int) -> List[str]:
        return [jobs[k][1] for k in range(i, j)]

    def take_run(i: int, stop: int) -> int:
        """The run of objects from ``i`` on (below ``stop``) whose lines the
        workers made, sent to be written at once; returns the first item
        not taken."""
        j, nbytes = batch.take_run(i, stop, result.results, made_done, make)
        if j == i:
            return i
        taken[i:j] = [True] * (j - i)
        result.files += j - i
        result.bytes += nbytes
        # (the lines are joined on the pipe's thread: reading them where
        # the workers made them cost this thread ~0.2 us per object)
        pipe.send((i, j, nbytes),
                  lambda: sink.add_lines(batch.join_lines(i, j), j - i, lambda: outs(i, j),
                                         lambda: [rel(jobs[k][0]) + SUFFIX for k in range(i, j)]))
        return j

    def unrecorded(failed: List[Tuple[Tuple[int, int, int], BaseException]]) -> None:
        """Runs whose lines could not be written: their objects are not in
        the set (each file removed, each a failed item, named)."""
        for (i, j, nbytes), exc in failed:
            result.results[i:j] = [None] * (j - i)      # (take_run gave them theirs)
            result.files -= j - i
            result.bytes -= nbytes
            for k, out in zip(range(i, j), outs(i, j)):
                sink.discard_file(out)
                result.failures.append(ItemError(k, os.fspath(jobs[k][0]), exc))

    def sweep(i: int, stop: int, *, to_gap: bool) -> int:
        """Take the finished items from ``i`` on (below ``stop``); with
        ``to_gap``, up to the first not finished, whose index it returns."""
        while i < stop:
            if not taken[i]:
                j = take_run(i, stop) if lines is not None else i
                if j > i:
                    i = j
                    continue
                if batch.ready(i):
                    take(i)
                elif to_gap:
                    return i
            i += 1
        return i

    def drain() -> None:
        i = low[0] = sweep(low[0], len(jobs), to_gap=True)
        # items past a slow one are taken too, so memory stays a few items
        sweep(i + 1, min(len(jobs), i + 64), to_gap=False)

    def tick() -> None:
        drain()
        unrecorded(pipe.failed())
        report(result.files - counts[1], result.bytes, len(jobs) - counts[1])

    interrupted = False
    try:
        interrupted = _run_threads(batch.work, min(workers, len(jobs)) or 1, token, tick)
    finally:
        try:
            sweep(low[0], len(jobs), to_gap=False)  # what finished, also after Ctrl-C
        finally:        # (no write of this batch may follow its return: abort cuts the manifest)
            failed = pipe.close()
        unrecorded(failed)                          # every line written, or undone
        result.failures.sort(key=lambda e: e.index)
        _remove_empty(made)
    report(result.files - counts[1], result.bytes, len(jobs) - counts[1])
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
