"""Where a backup set goes: a folder (one .efsraw file per object, the
manifest published last) or a tar stream (one member per object, the
manifest as the last member), both written as objects finish."""
from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import re
import tarfile
import threading
import time
import uuid
from typing import IO, List, Optional, Tuple

from .. import _core, _winfs, api, durable
from .._errors import EfsError
from ..treewalk import problem
from .manifest import MANIFEST_NAME, Entry, Header, ManifestWriter

READ_CHUNK = 1 << 20
# a tar header carries the member's size before its data, and an export
# learns the size only at its end: objects up to this size are exported into
# memory first; larger ones are exported twice (size and hash, then the data)
STREAM_MEMORY_LIMIT = 64 << 20


def hash_file(path: str) -> Tuple[int, str]:
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(READ_CHUNK):
            h.update(chunk)
            n += len(chunk)
    return n, h.hexdigest()


_STALE_MANIFEST = re.compile(r"\." + re.escape(MANIFEST_NAME) + r"\.[0-9a-f]{8}\.tmp")
_STALE_OBJECT = re.compile(r"\.efsfast-[0-9a-f]{16}\.tmp")


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class StreamBroken(EfsError):
    """The tar stream cannot go on (a member could not be completed)."""


class SetSink:
    plan_root = ""
    ordered = False             # must folders reach the sink before their contents?
    fail_fast = False

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.writer: Optional[ManifestWriter] = None
        self.broken: Optional[BaseException] = None

    def begin(self, header: Header) -> None:
        raise NotImplementedError

    def add_entry(self, entry: Entry) -> None:
        with self.lock:
            self.writer.add(entry)

    def has(self, entry: Entry) -> bool:
        return False

    def hash_existing(self, entry: Entry) -> Tuple[int, str]:
        raise NotImplementedError

    def store(self, raw, entry: Entry, digest, *, cancel) -> int:
        """Write the raw stream of the object open for export in ``raw``,
        feeding ``digest``; return its size."""
        raise NotImplementedError

    def finish(self) -> str:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError


class FolderSink(SetSink):
    """The folder layout of before (``REL.efsraw`` per object) plus the
    manifest, written under a temporary name as objects finish and given
    its name only when the set is complete: every object durable first
    (``sync``: how, durable.py; by default as the file system needs), then
    the manifest, then its name."""
    # benchmarks only: also fsync each object in the worker that wrote it
    # (measured slower than durable.py's ways everywhere: docs/RELIABILITY.md)
    sync_in_workers = False

    def __init__(self, dest: str, *, overwrite: bool = False,
                 sync: Optional[durable.SyncWay] = None):
        super().__init__()
        self.dest = self.plan_root = os.fspath(dest)
        self.overwrite = overwrite
        self.sync = sync
        self.written: List[str] = []        # the objects in the set (SyncWay.EACH syncs them)
        self.final = os.path.join(self.dest, MANIFEST_NAME)
        self.tmp = os.path.join(self.dest, f".{MANIFEST_NAME}.{uuid.uuid4().hex[:8]}.tmp")
        self.out: Optional[IO[bytes]] = None
        self.made: set = set()

    def begin(self, header: Header) -> None:
        try:
            os.makedirs(self.dest, exist_ok=True)
        except OSError as exc:      # the destination cannot be written: the job fails
            raise problem(self.dest, "cannot create the folder", exc) from None
        if self.sync is None:
            self.sync = durable.way_for(self.dest)
        if not self.overwrite and os.path.lexists(self.final):
            raise EfsError(api.ERROR_FILE_EXISTS, "a backup set is already there (pass "
                           "--overwrite to replace it)", self.final)
        self._remove_stale_manifests()
        self.out = open(self.tmp, "xb")
        self.writer = ManifestWriter(self.out, header)

    def _remove_stale_manifests(self) -> None:
        """A run killed outright (no chance to abort) leaves its temporary
        manifest; the run that resumes it takes its place."""
        for name in os.listdir(self.dest):
            if _STALE_MANIFEST.fullmatch(name):
                _unlink_quietly(os.path.join(self.dest, name))

    def remove_leftovers(self) -> int:
        """Resuming (skip_existing): remove the partial objects a killed run
        left (efsfast's fixed-form temporary names, _winfs.temp_beside), so
        the finished set holds exactly what its manifest lists."""
        n = 0
        for dirpath, _dirs, files in os.walk(self.dest):
            for name in files:
                if _STALE_OBJECT.fullmatch(name):
                    _unlink_quietly(os.path.join(dirpath, name))
                    n += 1
        return n

    def _stored(self, entry: Entry) -> str:
        return os.path.join(self.dest, *entry.stored_name.split("/"))

    def has(self, entry: Entry) -> bool:
        return os.path.lexists(self._stored(entry))

    def hash_existing(self, entry: Entry) -> Tuple[int, str]:
        path = self._stored(entry)
        self.note_written(path)     # kept from a run that may not have synced it
        return hash_file(path)

    def note_written(self, path: str) -> None:
        with self.lock:
            self.written.append(path)

    def store(self, raw, entry, digest, *, cancel) -> int:
        out = self._stored(entry)
        parent = os.path.dirname(out)
        if parent not in self.made:         # one makedirs per folder, not per object
            os.makedirs(parent, exist_ok=True)
            self.made.add(parent)
        r = api.export_opened(raw, out, cancel=cancel, overwrite=self.overwrite, digest=digest,
                              sync=self.sync_in_workers)
        self.note_written(out)
        return r.bytes

    def finish(self) -> str:
        digest = self.writer.finish()
        self.out.flush()
        self.sync_objects()
        os.fsync(self.out.fileno())
        self.out.close()
        if self.overwrite:
            os.replace(self.tmp, self.final)
        else:
            api._publish_no_replace(self.tmp, self.final)
        if self.sync is not durable.SyncWay.NONE:
            durable.fsync_path(self.dest)       # the manifest's name
        return digest

    def sync_objects(self) -> None:
        """Every object's data and name durable before the manifest is
        published: one syncfs, or an fsync of each object and of the
        folders that hold them (durable.py)."""
        failed = durable.sync_written(self.dest, self.written, self.sync)
        if failed:
            path, exc = failed[0]
            raise problem(path, "could not be synced to stable storage", exc)

    def abort(self) -> None:
        try:
            if self.out is not None:
                self.out.close()    # may fail again (the disk that is full)
        except OSError:
            pass
        finally:
            _winfs.remove_quietly(self.tmp)


class _CountingSink:
    def __init__(self, digest):
        self.digest = digest
        self.count = 0

    def write(self, view) -> int:
        self.digest.update(view)
        self.count += len(view)
        return len(view)


class _QueueWriter(_CountingSink):
    """Export side of the bridge: hands copies of each buffer to the tar
    writer (bounded, so memory stays a few system buffers)."""

    def __init__(self, digest, q: "queue.Queue"):
        super().__init__(digest)
        self.q = q

    def write(self, view) -> int:
        n = super().write(view)
        self.q.put(bytes(view))
        return n


class _QueueReader:
    """Tar side of the bridge: read(n) returns n bytes until the export ends."""

    def __init__(self, q: "queue.Queue"):
        self.q = q
        self.pending = bytearray()
        self.ended = False

    def read(self, n: int) -> bytes:
        while len(self.pending) < n and not self.ended:
            chunk = self.q.get()
            if chunk is None:
                self.ended = True
            else:
                self.pending += chunk
        out = bytes(self.pending[:n])
        del self.pending[:n]
        return out


class _Appender:
    """The caller's stream as tarfile's plain "w" mode needs it: write()
    and a tell() that counts, so stdout (a pipe) needs no seeking."""

    def __init__(self, out: IO[bytes]):
        self.out = out
        self.position = 0

    def write(self, b) -> int:
        self.out.write(b)
        self.position += len(b)
        return len(b)

    def tell(self) -> int:
        return self.position


class _MemoryReader:
    """An exported raw stream as a file for tarfile.addfile, handed on in
    slices without copying."""

    def __init__(self, data: bytes):
        self.view = memoryview(data)
        self.position = 0

    def read(self, n: int):
        out = self.view[self.position:self.position + n]
        self.position += len(out)
        return out


class TarSink(SetSink):
    """A POSIX (pax) tar stream written by the standard library's tarfile,
    front to back without seeking: members ``REL.efsraw`` in the folder
    layout, each carrying its manifest line as the standard ``comment``
    record (which tar implementations ignore), then the manifest.  An aborted
    stream gets no manifest and no end-of-archive blocks, so a reader sees
    it truncated.  (tarfile's "w|" mode would do the same with two more
    copies of every byte through its record buffer.)"""
    ordered = True

    def __init__(self, fileobj: IO[bytes], *, memory_limit: int = STREAM_MEMORY_LIMIT):
        super().__init__()
        self.fileobj = fileobj
        self.memory_limit = memory_limit
        self.manifest = io.BytesIO()
        self.tar: Optional[tarfile.TarFile] = None
        self.mtime = time.time()

    def begin(self, header: Header) -> None:
        self.tar = tarfile.open(fileobj=_Appender(self.fileobj), mode="w",
                                format=tarfile.PAX_FORMAT)
        self.writer = ManifestWriter(self.manifest, header)

    def _info(self, name: str, size: int, comment: Optional[dict] = None) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.size, ti.mtime, ti.mode = size, self.mtime, 0o644
        if comment is not None:
            ti.pax_headers = {"comment": json.dumps(comment, separators=(",", ":"),
                                                    sort_keys=True)}
        return ti

    def _add(self, ti: tarfile.TarInfo, fileobj, chunk: int) -> None:
        if self.broken is not None:
            raise StreamBroken(31, "the tar stream was already broken", ti.name)
        self.tar.copybufsize = chunk        # how much tarfile reads per write
        try:
            self.tar.addfile(ti, fileobj)
        except BaseException as exc:
            self.broken = exc
            raise

    def store(self, raw, entry, digest, *, cancel) -> int:
        if self.broken is not None:
            raise StreamBroken(31, "the tar stream was already broken", raw.path)
        if entry.source_size is not None and entry.source_size > self.memory_limit:
            return self._store_large(raw, entry, digest, cancel)
        data = api.export_opened(raw, None, cancel=cancel, digest=digest)
        entry.raw_size, entry.sha256 = len(data), digest.hexdigest()
        with self.lock:
            self._add(self._info(entry.stored_name, len(data), entry.to_json()),
                      _MemoryReader(data), max(len(data), 1))
        return len(data)

    def _store_large(self, raw, entry, digest, cancel) -> int:
        path = raw.path
        first = _CountingSink(digest)
        api.export_opened(raw, first, cancel=cancel)
        entry.raw_size, entry.sha256 = first.count, digest.hexdigest()
        again = hashlib.sha256()
        q: "queue.Queue" = queue.Queue(maxsize=16)
        failed = []

        def produce():
            try:
                with _core.open_raw(path, raw.flags, raw.backend) as second:
                    api.export_opened(second, _QueueWriter(again, q), cancel=cancel)
            except BaseException as exc:      # reported once the member is closed
                failed.append(exc)
            finally:
                q.put(None)
        with self.lock:
            t = threading.Thread(target=produce, name="efsfast-tar-export", daemon=True)
            t.start()
            reader = _QueueReader(q)
            try:
                self._add(self._info(entry.stored_name, first.count, entry.to_json()), reader,
                          READ_CHUNK)
            finally:
                while not reader.ended and q.get() is not None:
                    pass            # let the export finish if the tar side stopped
                t.join()
            if failed or again.hexdigest() != entry.sha256:
                why = failed[0] if failed else "it changed while it was being backed up"
                self.broken = StreamBroken(31, f"the tar member could not be completed: {why}",
                                           path)
                raise self.broken
        return first.count

    def finish(self) -> str:
        if self.broken is not None:
            raise self.broken
        digest = self.writer.finish()
        data = self.manifest.getvalue()
        self._add(self._info(MANIFEST_NAME, len(data)), _MemoryReader(data), max(len(data), 1))
        self.tar.close()          # end-of-archive blocks; the caller's file stays open
        durable.sync_stream(self.fileobj)
        return digest

    def abort(self) -> None:
        try:
            self.fileobj.flush()
        except (OSError, ValueError):
            pass
