"""The object checks of verify-set on a set in an object store: every
object a manifest lists fetched and checked as a folder set's file is
(there, its size and SHA-256, rules R1-R20) and, with keys, proved
decryptable as ``verify --key`` proves a file.

Fetching is bounded and parallel as a restore's is (storeread): objects
are fetched whole, in batches of at most half the store's memory limit,
the next batch's requests running while one batch is checked, and the
objects of a batch are checked on several threads (the validator and
SHA-256 read the library's buffer in place, without the GIL).  An object
larger than a batch is read as a stream of ranged GETs (within the store's
memory limit), its $EFS fetched again by a small ranged read for the proof.
"""
from __future__ import annotations

import concurrent.futures
import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

from ..store import Store, StoreError
from .manifest import Entry
from .verify import Progress, check_buffer, check_stream

# per object (a bytes-like object or a binary file): None where a given key
# opens it, else why not (efsfast.crypto.prover)
Prover = Callable[[Any], Optional[str]]
MISSING = "missing from the set"
BATCH_OBJECTS = 256     # (as a restore's batches: checking one overlaps fetching the next)
NOT_DECRYPTABLE = "not decryptable with the given key(s): "


def check_objects(store: Store, entries: Sequence[Entry], listing: Dict[str, int], mode: str,
                  *, prove: Optional[Prover] = None, workers: Optional[int] = None,
                  progress: Optional[Progress] = None) -> List[List[str]]:
    """Per entry of ``entries`` (in order) what is wrong with its object in
    ``store`` (empty: nothing); ``listing`` is the store's keys and sizes.
    ``prove`` runs on the objects that passed the other checks.
    ``progress(objects, bytes, total)`` after each object checked (those
    missing from the listing count as checked at once)."""
    limit = max(getattr(getattr(store, "budget", None), "limit", 256 << 20) // 2, 1)
    out: List[List[str]] = [[] for _ in entries]
    whole: List[int] = []
    large: List[int] = []
    for i, e in enumerate(entries):
        size = listing.get(e.stored_name)
        if size is None:
            out[i] = [MISSING]
        else:
            (whole if size <= limit else large).append(i)
    done = [len(entries) - len(whole) - len(large), 0]      # objects, bytes checked

    def checked(i: int) -> None:
        done[0] += 1
        done[1] += entries[i].raw_size or 0
        if progress is not None:
            progress(done[0], done[1], len(entries))
    threads = max(1, workers or os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="efsfast-verify") \
            as pool:
        batches = list(_batches(whole, entries, listing, limit))
        fetching = _fetch(store, entries, batches[0]) if batches else []
        fetched: List[Any] = []
        try:
            for n, batch in enumerate(batches):
                # at most two batches held: the one checked, the one fetched
                fetched = fetching
                fetching = (_fetch(store, entries, batches[n + 1]) if n + 1 < len(batches)
                            else [])
                for i, found in zip(batch, pool.map(
                        lambda job: _check_whole(store, job[0], job[1], mode, prove),
                        [(entries[i], got) for i, got in zip(batch, fetched)])):
                    out[i] = found
                    checked(i)
        except BaseException:       # Ctrl-C: requests and checks not yet started stay so
            for got in fetched + fetching:
                if got is not None:
                    got.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    for i in large:             # one at a time: each is a window of ranged GETs
        out[i] = _check_large(store, entries[i], mode, prove)
        checked(i)
    return out


def _batches(indexes: List[int], entries: Sequence[Entry], listing: Dict[str, int],
             limit: int) -> Iterator[List[int]]:
    batch: List[int] = []
    size = 0
    for i in indexes:
        n = listing[entries[i].stored_name]
        if batch and (size + n > limit or len(batch) >= BATCH_OBJECTS):
            yield batch
            batch, size = [], 0
        batch.append(i)
        size += n
    if batch:
        yield batch


def _fetch(store: Store, entries: Sequence[Entry], batch: List[int]) -> List[Any]:
    """Per object of ``batch`` a future of its bytes (its request queued in
    the store's pool of ``jobs`` threads), or None for a store without
    futures (read by the checking thread)."""
    submit = getattr(store, "submit_read", None)
    out: List[Any] = []
    for i in batch:
        try:
            out.append(submit(entries[i].stored_name) if submit else None)
        except StoreError as exc:       # (a key the store refuses: failed as that object)
            failed: "concurrent.futures.Future[Any]" = concurrent.futures.Future()
            failed.set_exception(exc)
            out.append(failed)
    return out


def _check_whole(store: Store, e: Entry, got: Any, mode: str,
                 prove: Optional[Prover]) -> List[str]:
    try:
        data = got.result() if got is not None else store.read(e.stored_name)
    except StoreError as exc:
        return [f"cannot read it: {exc.strerror}"]
    found = check_buffer(data, e, mode)
    if not found and prove is not None:
        why = prove(data)
        if why is not None:
            found.append(NOT_DECRYPTABLE + why)
    return found


def _check_large(store: Store, e: Entry, mode: str, prove: Optional[Prover]) -> List[str]:
    chunks = store.read_chunks(e.stored_name)
    try:
        try:
            found = check_stream(ChunkReader(chunks), e, mode)
        finally:
            # a check that stopped early gives the window's memory back now
            getattr(chunks, "close", lambda: None)()
        if not found and prove is not None:
            why = prove(RangeReader(store, e.stored_name))
            if why is not None:
                found.append(NOT_DECRYPTABLE + why)
        return found
    except StoreError as exc:
        return [f"cannot read it: {exc.strerror}"]


class ChunkReader:
    """An object read as a stream of ranged GETs, as a binary file: a read
    within one chunk is a view of it (no copy)."""

    def __init__(self, chunks: Any):
        self.chunks = iter(chunks)
        self.pending = memoryview(b"")

    def read(self, n: int = -1) -> Any:
        parts = []
        want = n if n is not None and n >= 0 else None
        while want is None or want > 0:
            if not len(self.pending):
                nxt = next(self.chunks, None)
                if nxt is None:
                    break
                self.pending = memoryview(nxt)
            take = len(self.pending) if want is None else min(want, len(self.pending))
            parts.append(self.pending[:take])
            self.pending = self.pending[take:]
            if want is not None:
                want -= take
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)


class RangeReader:
    """An object in a store as a binary file read by ranged GETs on demand
    (the proof reads only as far as the $EFS, at the start)."""

    def __init__(self, store: Store, key: str):
        self.store, self.key, self.pos = store, key, 0

    def read(self, n: int = -1) -> Any:
        end = None if n is None or n < 0 else self.pos + n
        data = self.store.read(self.key, self.pos, end)
        self.pos += memoryview(data).nbytes
        return data
