"""backup-tree into a tar stream with every object's export in C (POSIX
side, full sets): workers open each object once, read its NTFS metadata
and $EFS through that descriptor, tell plain from encrypted and export the
raw stream into memory, hashing it as it comes (efs_posix_streamexport.c,
without the GIL); this thread takes the finished objects and writes each
one's manifest line and member (tarsink.py), so the stream has one writer
and no lock is contended per object.  Folders are written in the order of
the plan (each before what it holds), files as they finish.  An object over
the sink's memory limit is streamed by this thread (exported twice); the
workers start no object while more than that waits to be written, so what
is held stays under the limit plus one object per worker."""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional

from .. import _core
from ..bulkjob import BulkResult, ItemError, SafeProgress, close_result, watch_ctrl_c
from ..tree import Jobs
from . import metadata as _meta
from .bulktake import object_taker
from .manifest import Entry, Kind
from .tarsink import TarSink

# how long this thread sleeps when no object has finished: short against
# one object's export (tens of microseconds), long against the few
# microseconds a wake costs
PAUSE_S = 0.001
# how far past an unfinished file the finished ones are written
WINDOW = 256
# how often progress is reported while objects finish (and once at the end)
REPORT_S = 0.05


def stream_bulk(jobs: Jobs, sink: TarSink, *, folders: int, kind: _meta.MetaSource,
                backend: _core.PosixBackend, workers: int, rel: Callable[[str], str],
                make_done: Callable[[Optional[Kind], int], Any],
                progress: Optional[Callable[[int, int, int], None]],
                cancel: Optional[_core.CancelToken]) -> BulkResult:
    """Write every candidate in ``jobs`` ((object, member name[, options]);
    the first ``folders`` are folders, in the plan's order) into ``sink``;
    results as bulk.backup_bulk's: ``make_done(kind, bytes)`` per object,
    ``make_done(None, 0)`` per plain candidate, None where it failed (see
    failures) or was not written."""
    watch_ctrl_c()
    token = cancel if cancel is not None else _core.CancelToken()
    n = len(jobs)
    flags = [_core.CREATE_FOR_DIR if len(j) > 2 else 0 for j in jobs]
    batch = _core.StreamExport([(j[0], f) for j, f in zip(jobs, flags)], backend, token,
                               capture_ntfs=kind is _meta.MetaSource.NTFS3G,
                               limit=sink.memory_limit, held_limit=sink.memory_limit)
    result = BulkResult(results=[None] * n)
    taken = [False] * n
    low = [0]                       # every item below this one is taken
    report = SafeProgress(progress, token)

    def store(i: int, src: str, _out: str, entry: Entry, size: int) -> int:
        if batch.large(i):          # left unexported: streamed here
            entry.raw_size = entry.sha256 = None
            return sink.store_large(src, flags[i], backend, entry, token)
        sink.add_member(entry, batch.stream(i))
        return size

    def undo(_entry: Entry, _out: str) -> None:
        if sink.broken is not None:
            token.cancel()          # nothing more can go into the stream

    take, count = object_taker(batch, jobs, taken, result, token, kind=kind, rel=rel,
                               make_done=make_done, store=store, undo=undo, out_is_object=True)

    def drain(finished: int) -> None:
        i = low[0]
        while i < n and (taken[i] or batch.ready(i)):
            if not taken[i]:
                take(i)
            i += 1
        low[0] = i
        # past the folders, files finished behind a slow one are written too
        # (memory stays bounded); a scan only while some wait
        j = i + 1
        while i >= folders and count[0] < finished and j < min(n, i + WINDOW):
            if not taken[j] and batch.ready(j):
                take(j)
            j += 1

    def done() -> None:
        report(result.files - count[1], result.bytes, n - count[1])

    threads = [threading.Thread(target=batch.work, name=f"efsfast-worker-{k}", daemon=True)
               for k in range(max(min(workers, n), 1))]
    interrupted = False
    try:
        for t in threads:               # inside the try: a Ctrl-C between two starts
            t.start()                   # must not leave started workers unwaited
        seen = -1
        next_report = 0.0
        while low[0] < n and not token.cancelled:
            finished = batch.finished
            if finished != seen:
                seen = finished
                drain(finished)
                now = time.monotonic()
                if now >= next_report:
                    done()
                    next_report = now + REPORT_S
            elif not any(t.is_alive() for t in threads):
                drain(batch.finished)   # (what finished as the last one stopped)
                break
            else:
                time.sleep(PAUSE_S)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if interrupted:
            token.cancel()
        for t in threads:
            if t.ident is not None:     # started (a thread sets its ident first thing)
                t.join()
        result.failures.sort(key=lambda e: e.index)
    done()
    return close_result(result, token, interrupted, n, report)
