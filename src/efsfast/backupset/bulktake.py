"""Taking one finished object of a C batch into a set: what the folder set
(bulk.py) and the tar stream (tarbulk.py) do alike with a worker's facts.
A plain candidate is counted as done and left out; a failed one is named
(or, cancelled, stops the job); a backed-up one gets its ``Entry`` from
what the worker found, and the sink's own step (a manifest line, a tar
member) records it.  This runs once per object in the calling thread (the
serial part of a bulk job), so it is a closure over everything fixed for
the batch, called with only what differs per object."""
from __future__ import annotations

import os
from typing import Any, Callable, List, Optional, Tuple

from .. import _core
from .._errors import CancelledError
from ..bulkjob import BulkResult, ItemError
from ..tree import Jobs
from . import metadata as _meta
from .manifest import Entry, Kind

# the sink's step for one backed-up object: (item, object, its output,
# entry, stream size) -> the size recorded; it may raise (the object fails)
Store = Callable[[int, str, str, Entry, int], int]
# after a failed Store: (entry, its output) -> None (what is left is undone)
Undo = Callable[[Entry, str], None]
# take(item): its facts taken and recorded
Take = Callable[[int], None]


def object_taker(batch: _core.BulkExport, jobs: Jobs, taken: List[bool], result: BulkResult,
                 token: _core.CancelToken, *, kind: _meta.MetaSource,
                 rel: Callable[[str], str], make_done: Callable[[Optional[Kind], int], Any],
                 store: Store, undo: Undo, out_is_object: bool = False
                 ) -> Tuple[Take, List[int]]:
    """(take, counts): ``take(i)`` hands item i's facts over from ``batch``
    (the job ``jobs[i]``: (object, output[, options]), a folder where
    options are given; ``out_is_object``: the batch was given the object as
    its output, as a stream's is), marks it in ``taken`` and records the
    object in ``result`` (``make_done(kind, bytes)``, ``make_done(None, 0)``
    for a plain candidate, a failure named by the object); counts: [items
    taken, plain candidates among them]."""
    counts = [0, 0]
    results = result.results
    failures = result.failures
    directory_kind, file_kind = Kind.DIRECTORY, Kind.FILE

    def take(i: int) -> None:
        job = jobs[i]
        src = job[0]
        out = src if out_is_object else job[1]
        directory = len(job) > 2
        taken[i] = True
        outcome, error, st, attrib, times, acl, acl_errno, efs_sha256, sha256, size = \
            batch.take(i, src, out)
        counts[0] += 1
        if outcome == "plain":
            counts[1] += 1
            results[i] = make_done(None, 0)
            result.files += 1          # (writer.py drops plain candidates from the count)
            return
        if outcome == "failed":
            assert error is not None        # (C gives a failed item its error)
            if isinstance(error, CancelledError):
                token.cancel()         # stopped: not done, not failed
            else:
                failures.append(ItemError(i, os.fspath(src), error))
            return
        # (C gives an item it took its stat and NTFS attribute values)
        assert st is not None and attrib is not None and times is not None
        # (one positional call: this runs once per object in the calling thread)
        entry = Entry(rel(src), directory_kind if directory else file_kind, size, sha256,
                      0 if directory else st[0], efs_sha256)
        try:        # (never raises into the wait: the workers still run)
            entry.meta = _meta.from_facts(kind, st, attrib, times, acl, acl_errno)
            size = store(i, src, out, entry, size)
        except CancelledError:
            token.cancel()
            return
        except Exception as exc:
            undo(entry, out)
            failures.append(ItemError(i, os.fspath(src), exc))
            return
        results[i] = make_done(entry.kind, size)
        result.files += 1
        result.bytes += size

    return take, counts
