"""A backup set written into an object store (``s3://BUCKET/PREFIX``): the
folder set's layout, key for key, through efsfast.store.

What a folder set does with files and renames, this does with objects:

- before any work the prefix is surveyed (one listing) and judged by the
  same rules as a folder (destination.check): empty, or a set of the same
  source to replace (``--overwrite``) or resume (``--skip-existing``);
  a missing bucket or refused keys end here (exit 2);
- the in-progress manifest ``efsfast-manifest.partial.jsonl`` is created
  first and create-only: a second backup into the prefix is refused, and
  keys that may not write are found before any object is written;
- objects go up as they are exported (in memory up to ``MEMORY_OBJECT``,
  larger ones streamed into a multipart upload), each whole or absent;
- the in-progress manifest is uploaded again as lines accumulate (every
  ``FLUSH_S`` seconds at most; S3 has no append), so an interrupted backup
  leaves an incomplete set listing what it had finished by then;
- the manifest is published last, create-only, after every object is
  stored (an S3 PUT is durable when answered), then the in-progress one is
  removed.
"""
from __future__ import annotations

import hashlib
import io
import queue
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Set

from .. import api
from .._core import ExportBuffer
from .._errors import RefusedError
from ..api import ItemError
from ..store import Failure, Store, StoreError
from . import destination as _destination
from .manifest import (MANIFEST_NAME, PARTIAL_NAME, SUFFIX, Entry, Header, Manifest,
                       ManifestError, ManifestWriter, read_manifest)
from .sinks import SetSink, source_unchanged

MEMORY_OBJECT = 64 << 20        # exported into memory, then one PUT or multipart from it
RAW_OVERHEAD = 1 << 20          # what a raw stream may add to its source (headers, $EFS,
                                # padding): mapped up front, counted against the memory limit
FLUSH_S = 2.0                   # the in-progress manifest goes up at most this often
QUEUE_CHUNKS = 16               # streamed exports: system buffers waiting for the upload


def refused(exc: StoreError) -> RefusedError:
    """A store that cannot be used (missing bucket, refused keys, no answer)
    found before any work: refused, exit 2, nothing written."""
    return RefusedError(exc.winerror, f"{exc.strerror}; nothing was written", exc.filename,
                        exc.errno)


def read_store_manifest(store: Store, name: str, partial: bool = False) -> Manifest:
    """The manifest ``name`` of the set in ``store``, parsed and checked."""
    data = store.read(name)
    return read_manifest(io.BytesIO(memoryview(data)), store.object_url(name),
                         partial=partial)


# how often survey lists the prefix again when a manifest it listed is gone
# before it could be read (another backup finishing there meanwhile)
_SURVEYS = 3


def survey(store: Store, sizes: Optional[Dict[str, int]] = None) -> _destination.Destination:
    """The prefix as destination.check judges a folder; ``sizes`` gets each
    object's size from the same listing.  A manifest that vanished between
    the listing and its reading (another backup publishing its set, which
    removes its in-progress manifest) makes it look again."""
    attempts = 0
    while True:
        attempts += 1
        d = _destination.Destination(store.url)
        listing = {o.key: o.size for o in store.list()}
        keys = set(listing)
        for key in keys - {MANIFEST_NAME, PARTIAL_NAME}:
            (d.stored.add if key.endswith(SUFFIX) else d.other.append)(key)
        d.incomplete = PARTIAL_NAME in keys and MANIFEST_NAME not in keys
        name = MANIFEST_NAME if MANIFEST_NAME in keys else PARTIAL_NAME if d.incomplete else None
        if name is not None:
            try:
                d.manifest = read_store_manifest(store, name, partial=d.incomplete)
            except ManifestError as exc:
                d.unreadable = str(exc)
            except StoreError as exc:
                if exc.failure is Failure.NOT_FOUND and attempts < _SURVEYS:
                    continue
                raise
        if sizes is not None:
            sizes.update(listing)
        return d


class _Uploading:
    """Export side of a streamed upload: each system buffer copied into a
    bounded queue that the upload drains; stops the export (raising the
    upload's error) where the upload ended first."""

    def __init__(self, digest: Any, q: "queue.Queue[Optional[bytes]]", upload: Any):
        self.digest, self.q, self.upload = digest, q, upload
        self.count = 0

    def write(self, view: Any) -> int:
        self.digest.update(view)
        chunk = bytes(view)
        while True:
            try:
                self.q.put(chunk, timeout=0.2)
                break
            except queue.Full:
                if self.upload.done():
                    self.upload.result()            # raises its error
                    raise StoreError(Failure.OTHER, "the upload ended before the object")
        self.count += len(chunk)
        return len(chunk)


_FAILED = b""       # (by identity) the export failed: the upload must fail, not end


def _drain(q: "queue.Queue[Optional[bytes]]") -> Iterator[bytes]:
    while True:
        chunk = q.get()
        if chunk is None:
            return
        if chunk is _FAILED:
            # raising here fails the multipart upload, which is then aborted:
            # an object cut short is never completed
            raise StoreError(Failure.OTHER, "the export of the object failed")
        yield chunk


class StoreSink(SetSink):
    """A set in ``store`` (an efsfast.store.Store, e.g. S3Store)."""
    resumable = True

    def __init__(self, store: Store, *, overwrite: bool = False):
        super().__init__()
        self.objects = store
        # a worker waits for its PUT: as many workers as requests in flight
        self.in_flight = max(1, int(getattr(store, "jobs", 1)))
        self.plan_root = store.url
        self.overwrite = overwrite
        self.resume = False
        self.found: Optional[_destination.Destination] = None
        self.known: Dict[str, Entry] = {}
        self.listed: Set[str] = set()
        self.sizes: Dict[str, int] = {}         # what the survey's listing found
        self.buffer = io.BytesIO()
        self.flushed_at = 0.0
        self.flushed_len = 0
        self.flush_lock = threading.Lock()
        self.began = False

    # ---- before any work ----

    def check(self, source: str, *, resume: bool) -> None:
        self.resume = resume
        try:
            self.objects.check(write=True)
            self.found = survey(self.objects, self.sizes)
        except StoreError as exc:
            raise refused(exc) from None
        _destination.check(self.found, source, overwrite=self.overwrite, resume=resume)
        m = self.found.manifest
        if resume and m is not None:
            self.known = {e.path: e for e in m.entries}

    def begin(self, header: Header) -> None:
        if self.found is None:
            self.check(header.source, resume=False)
        found = self.found
        assert found is not None
        self.writer = ManifestWriter(self.buffer, header)
        try:
            if found.incomplete:        # the one an earlier backup left: this run's now
                self.objects.remove(PARTIAL_NAME)
            self.objects.write(PARTIAL_NAME, self.buffer.getvalue())      # create-only
        except StoreError as exc:
            # NOT_FOUND: a server (SeaweedFS) can answer a create-only write that
            # races another backup's removal of its in-progress manifest with 404
            if exc.failure in (Failure.EXISTS, Failure.NOT_FOUND):
                raise RefusedError(_destination.ERROR_SHARING_VIOLATION, "another backup "
                                   "began writing a set into this prefix; nothing was "
                                   "written", exc.filename) from None
            raise refused(exc) from None
        if found.manifest is None and self.objects.stat(MANIFEST_NAME) is not None:
            # another backup began and finished here after the survey (its
            # in-progress manifest gone by the time this one's was created)
            self.objects.remove(PARTIAL_NAME)
            raise RefusedError(_destination.ERROR_SHARING_VIOLATION, "another backup wrote a "
                               "set into this prefix meanwhile; nothing was written",
                               self.objects.object_url(MANIFEST_NAME))
        self.began = True
        self.flushed_at = time.monotonic()
        # the old manifest goes before any object changes: from now on the
        # prefix is an incomplete set (replacing) or stays one (resuming)
        if found.manifest is not None and not found.incomplete:
            self.objects.remove(MANIFEST_NAME)

    # ---- as objects finish ----

    def add_entry(self, entry: Entry) -> None:
        with self.lock:
            assert self.writer is not None
            self.writer.add(entry)
            if entry.has_stream and not entry.ref:
                self.listed.add(entry.stored_name)
        self._flush(force=False)

    def _flush(self, *, force: bool) -> None:
        """Upload the in-progress manifest again where lines were added and
        FLUSH_S has passed (or ``force``).  A failed upload is not the
        object's failure: the next one carries the lines too."""
        if not force and time.monotonic() - self.flushed_at < FLUSH_S:
            return
        if not self.flush_lock.acquire(blocking=force):
            return          # another thread is uploading it now
        try:
            with self.lock:
                assert self.writer is not None
                data = self.buffer.getvalue()[:self.writer.written]
            if len(data) == self.flushed_len and not force:
                return
            try:
                self.objects.write(PARTIAL_NAME, data, replace=True)
                self.flushed_len = len(data)
            except StoreError:
                if force:
                    raise
            self.flushed_at = time.monotonic()
        finally:
            self.flush_lock.release()

    def discard(self, entry: Entry) -> None:
        try:
            self.objects.remove(entry.stored_name)
        except StoreError:
            pass

    def keeps(self, entry: Entry) -> bool:
        """Resuming: the object there is kept only if the set's manifest
        lists it with the same size and SHA-256 (read back and hashed now)
        and the source has not changed since.  The survey's listing says
        what is there and its size (no request per object for that: this
        backup holds the prefix since); one object is one GET, a large one
        ranged GETs."""
        known = self.known.get(entry.path)
        if known is None or not source_unchanged(known, entry):
            return False
        size = self.sizes.get(entry.stored_name)
        if size is None or size != known.raw_size:
            return False
        try:
            h, n = hashlib.sha256(), 0
            part = getattr(self.objects, "part_size", 0)
            chunks = ([self.objects.read(entry.stored_name)] if size <= part
                      else self.objects.read_chunks(entry.stored_name))
            for chunk in chunks:
                h.update(chunk)
                n += memoryview(chunk).nbytes
        except StoreError:
            return False
        if (n, h.hexdigest()) != (known.raw_size, known.sha256):
            return False
        entry.raw_size, entry.sha256 = n, h.hexdigest()
        return True

    def store(self, raw: Any, entry: Entry, digest: Any, *, cancel: Any) -> int:
        key = entry.stored_name
        replace = self.overwrite or self.resume
        if entry.source_size is None or entry.source_size <= MEMORY_OBJECT:
            budget = getattr(self.objects, "budget", None)
            expect = (entry.source_size or 0) + RAW_OVERHEAD
            held = budget.take(expect) if budget else 0
            try:
                # memory of its own, handed to the upload as it is (no copy
                # into bytes) and back to the system when the PUT is done
                data = ExportBuffer(expect)
                api.export_opened(raw, data, cancel=cancel, digest=digest)
                self.objects.write(key, memoryview(data), replace=replace)
                return len(data)
            finally:
                if budget:
                    budget.give(held)
        q: "queue.Queue[Optional[bytes]]" = queue.Queue(maxsize=QUEUE_CHUNKS)
        submit = getattr(self.objects, "submit_write")
        upload = submit(key, _drain(q), replace=replace)
        sink = _Uploading(digest, q, upload)
        try:
            api.export_opened(raw, sink, cancel=cancel)
        except BaseException:
            _put_end(q, upload, _FAILED)
            try:
                upload.result()
            except Exception:
                pass            # (the export's own error is the one to report)
            raise
        _put_end(q, upload, None)
        upload.result()
        return sink.count

    # ---- the end ----

    def unfinished(self, failures: List[ItemError]) -> Optional[str]:
        gone = next((f.error for f in failures if isinstance(f.error, StoreError)
                     and f.error.failure is Failure.UNAVAILABLE), None)
        if gone is not None:
            return f"the store stopped answering ({gone.strerror})"
        return None

    def finish(self) -> str:
        """The end line; objects a replaced or resumed set had that this one
        does not list removed; the manifest published (create-only, read
        back); the in-progress manifest removed."""
        assert self.writer is not None
        digest = self.writer.finish()
        if self.found is not None:
            for key in sorted(self.found.stored - self.listed):
                self.objects.remove(key)
        self.objects.sync()
        self.objects.publish(MANIFEST_NAME, self.buffer.getvalue())
        try:
            self.objects.remove(PARTIAL_NAME)
        except StoreError:
            pass        # (a complete set: its manifest's name says so)
        return digest

    def abort(self, reason: str = "the backup stopped") -> None:
        """End the in-progress manifest with a line saying the set is not
        complete and why, and upload it (best effort: the store may be
        gone; then what the last upload carried stays)."""
        if not self.began or self.writer is None:
            return
        with self.lock:
            self.buffer.truncate(self.writer.written)
            self.buffer.seek(self.writer.written)
            self.writer.abort(reason)
            data = self.buffer.getvalue()
        try:
            self.objects.write(PARTIAL_NAME, data, replace=True)
        except StoreError:
            pass
        self.began = False


def _put_end(q: "queue.Queue[Optional[bytes]]", upload: Any, end: Optional[bytes]) -> None:
    """The end of a streamed object (None: whole; _FAILED: cut short); where
    the upload has stopped reading, nothing waits for it."""
    while True:
        try:
            q.put(end, timeout=0.2)
            return
        except queue.Full:
            if upload.done():
                return
