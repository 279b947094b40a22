"""A backup set as a tar stream (``backup-tree SRC -``): a POSIX pax
archive written front to back without seeking, one member ``REL.efsraw``
per object in the folder layout, each carrying its manifest line as the
standard pax ``comment`` record (which tar implementations ignore), then
the manifest; the end-of-archive blocks only once the set is complete.  An
aborted stream gets no manifest and no end blocks, so a reader sees it
truncated.  The headers are made by tarheader.py; each member goes out in
one write (os.writev of header, data and padding where the stream has a
descriptor)."""
from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
from typing import IO, Any, List, Optional, Sequence, Tuple, Union

from .. import _core, api, durable
from .manifest import MANIFEST_NAME, Entry, Header, ManifestWriter
from .sinks import Digest, SetSink, StreamBroken
from .tarheader import HeaderMaker, end_of_archive, padding

# a tar header carries the member's size before its data, and an export
# learns the size only at its end: objects up to this size are exported into
# memory first; larger ones are exported twice (size and hash, then the data)
STREAM_MEMORY_LIMIT = 64 << 20
# (the Win32 code a broken stream's errors carry: ERROR_GEN_FAILURE)
ERROR_STREAM_BROKEN = 31
Chunk = Union[bytes, bytearray, memoryview, Any]      # (Any: a HeldStream's buffer)


class _Lines:
    """Where the manifest's lines go until the end: kept, the last one at
    hand (it is also the member's pax comment)."""

    def __init__(self) -> None:
        self.parts: List[bytes] = []
        self.last = b""

    def write(self, b: bytes) -> int:
        self.parts.append(b)
        self.last = b
        return len(b)


class _Out:
    """The caller's stream: a member's pieces written together, with
    os.writev on its descriptor where it has one (its buffer flushed once
    first; nothing else writes to it while the set is written), else with
    its write()."""

    def __init__(self, f: IO[bytes]):
        self.f = f
        self.fd: Optional[int] = None
        if hasattr(os, "writev"):
            try:
                fd = f.fileno()
            except (AttributeError, OSError, ValueError):   # (a BytesIO: no descriptor)
                fd = None
            if fd is not None:
                f.flush()
                self.fd = fd

    def write(self, parts: Sequence[Chunk], total: int) -> None:
        """Write ``parts``, ``total`` bytes in all."""
        if self.fd is None:
            for p in parts:
                self.f.write(p)
            return
        skip = os.writev(self.fd, parts)
        left = total - skip
        if not left:
            return
        # a short write (a signal, a full pipe): the rest
        views: List[memoryview] = [memoryview(p) for p in parts if len(p)]
        while left:
            while skip:
                if skip >= len(views[0]):
                    skip -= len(views.pop(0))
                else:
                    views[0] = views[0][skip:]
                    skip = 0
            skip = os.writev(self.fd, views)
            left -= skip

    def flush(self) -> None:
        if self.fd is None:
            self.f.flush()


class _CountingSink:
    def __init__(self, digest: Digest) -> None:
        self.digest = digest
        self.count = 0

    def write(self, view: memoryview) -> int:
        self.digest.update(view)
        self.count += len(view)
        return len(view)


class _QueueWriter(_CountingSink):
    """Export side of the bridge: hands copies of each buffer to the tar
    writer (bounded, so memory stays a few system buffers)."""

    def __init__(self, digest: Digest, q: "queue.Queue[Optional[bytes]]"):
        super().__init__(digest)
        self.q = q

    def write(self, view: memoryview) -> int:
        n = super().write(view)
        self.q.put(bytes(view))
        return n


class TarSink(SetSink):
    """The set as a pax tar stream on ``fileobj`` (see the module's text).
    Object by object (writer.py's workers): ``store`` exports the object
    into memory, then ``add_entry`` writes its line and its member together.
    In C batches (tarbulk.py): ``add_member`` with the stream the batch
    exported, ``store_large`` for an object over ``memory_limit``."""
    ordered = True

    def __init__(self, fileobj: IO[bytes], *, memory_limit: int = STREAM_MEMORY_LIMIT):
        super().__init__()
        self.fileobj = fileobj
        self.memory_limit = memory_limit
        self.lines = _Lines()
        self.headers = HeaderMaker(int(time.time()))
        self.out: Optional[_Out] = None
        self.offset = 0                 # bytes written to the stream
        # a worker's exported object, from store to its add_entry
        self.held = threading.local()

    def begin(self, header: Header) -> None:
        self.out = _Out(self.fileobj)
        self.writer = ManifestWriter(self.lines, header)

    # ---- writing (under the lock) ----

    def _check(self, name: str) -> None:
        if self.broken is not None:
            raise StreamBroken(ERROR_STREAM_BROKEN, "the tar stream was already broken", name)

    def _line(self, entry: Entry) -> bytes:
        """Record the object's manifest line; it, without its newline."""
        assert self.writer is not None          # (begin made it)
        self.writer.add(entry)
        return self.lines.last[:-1]

    def _write(self, parts: Sequence[Chunk], total: Optional[int] = None) -> None:
        """Bytes of the stream (``total``: their count, where known); a
        failure breaks it (a member cut short)."""
        assert self.out is not None             # (begin made it)
        if total is None:
            total = sum(len(memoryview(p)) for p in parts)
        try:
            self.out.write(parts, total)
        except BaseException as exc:
            self.broken = exc
            raise
        self.offset += total

    def add_member(self, entry: Entry, data: Chunk) -> None:
        """The object's manifest line, and its member carrying that line:
        header, ``data`` (its raw stream: bytes or a HeldStream) and
        padding in one write."""
        size = len(data)
        with self.lock:
            self._check(entry.stored_name)
            head = self.headers.member(entry.stored_name, size, self._line(entry))
            pad = padding(size)
            self._write((head, data, pad), len(head) + size + len(pad))

    def add_entry(self, entry: Entry) -> None:
        """A line; with its member where this thread's ``store`` exported
        the object (a large one's member is written already)."""
        held: Optional[Tuple[Entry, Optional[bytes]]] = getattr(self.held, "item", None)
        if held is not None and held[0] is entry:
            self.held.item = None
            if held[1] is not None:
                self.add_member(entry, held[1])
            return
        with self.lock:         # no member: a reference, a failure, a plain folder
            self._line(entry)

    # ---- object by object ----

    def store(self, raw: _core.RawContext, entry: Entry, digest: Digest, *,
              cancel: Optional[_core.CancelToken]) -> int:
        """Export the object; its member is written with its line
        (add_entry), or here where it is too large to hold in memory."""
        self._check(raw.path)
        if entry.source_size is not None and entry.source_size > self.memory_limit:
            n = self._store_large(raw, entry, digest, cancel)
            self.held.item = (entry, None)
            return n
        data = api.export_opened(raw, None, cancel=cancel, digest=digest)
        self.held.item = (entry, data)
        return len(data)

    def store_large(self, path: str, flags: int, backend: _core.Backend, entry: Entry,
                    cancel: Optional[_core.CancelToken]) -> int:
        """An object a batch left unexported (over the memory limit): its
        line and member, streamed; returns its raw size."""
        with _core.open_raw(path, flags, backend) as raw:
            return self._store_large(raw, entry, hashlib.sha256(), cancel)

    def _store_large(self, raw: _core.RawContext, entry: Entry, digest: Digest,
                     cancel: Optional[_core.CancelToken]) -> int:
        """Exported once for its size and hash, then again into the
        member; a second export that differs breaks the stream."""
        path = raw.path
        first = _CountingSink(digest)
        api.export_opened(raw, first, cancel=cancel)
        entry.raw_size, entry.sha256 = first.count, digest.hexdigest()
        again = hashlib.sha256()
        q: "queue.Queue[Optional[bytes]]" = queue.Queue(maxsize=16)
        failed: List[BaseException] = []

        def produce() -> None:
            try:
                with _core.open_raw(path, raw.flags, raw.backend) as second:
                    api.export_opened(second, _QueueWriter(again, q), cancel=cancel)
            except BaseException as exc:      # reported once the member is closed
                failed.append(exc)
            finally:
                q.put(None)
        with self.lock:
            self._check(path)
            line = self._line(entry)
            t = threading.Thread(target=produce, name="efsfast-tar-export", daemon=True)
            t.start()
            ended = False
            try:
                ended = self._stream_member(entry.stored_name, first.count, line, q)
            finally:
                while not ended and q.get() is not None:
                    pass            # let the export finish if the tar side stopped
                t.join()
            if failed or again.hexdigest() != entry.sha256:
                why = failed[0] if failed else "it changed while it was being backed up"
                self.broken = StreamBroken(ERROR_STREAM_BROKEN, "the tar member could not be "
                                           f"completed: {why}", path)
            if self.broken is not None:
                raise self.broken
        return first.count

    def _stream_member(self, name: str, size: int, line: bytes,
                       q: "queue.Queue[Optional[bytes]]") -> bool:
        """Header, then the chunks as they come (never more than ``size``
        bytes), then the padding; returns whether the queue ended.  Fewer
        or more bytes than ``size`` break the stream."""
        self._write((self.headers.member(name, size, line),))
        left = size
        while (chunk := q.get()) is not None:
            if len(chunk) > left:
                chunk = chunk[:left]
                self.broken = StreamBroken(ERROR_STREAM_BROKEN, "the tar member could not be "
                                           "completed: it grew while it was being backed up",
                                           name)
            self._write((chunk,))
            left -= len(chunk)
            if self.broken is not None:
                return False
        if left:
            self.broken = StreamBroken(ERROR_STREAM_BROKEN, "the tar member could not be "
                                       "completed: it shrank while it was being backed up", name)
            return True
        self._write((padding(size),))
        return True

    # ---- the end ----

    def finish(self) -> str:
        if self.broken is not None:
            raise self.broken
        assert self.writer is not None and self.out is not None     # (begin made them)
        digest = self.writer.finish()
        data = b"".join(self.lines.parts)
        with self.lock:
            self._write((self.headers.member(MANIFEST_NAME, len(data)), data,
                         padding(len(data))))
            self._write((end_of_archive(self.offset),))
        self.out.flush()            # the caller's file stays open
        durable.sync_stream(self.fileobj)
        return digest

    def abort(self, reason: str = "") -> None:
        try:
            self.fileobj.flush()
        except (OSError, ValueError):
            pass
