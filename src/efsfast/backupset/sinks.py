"""Where a backup set goes: a folder (one .efsraw file per object, the
manifest published last), written as objects finish; what every sink
offers.  (A tar stream: tarsink.py; an object store: s3sink.py.)"""
from __future__ import annotations

import errno
import hashlib
import itertools
import os
import threading
from typing import Any, Callable, Dict, Iterable, List, Optional, Protocol, Set, Tuple, Union

from .. import _core, _winfs, api, durable
from .._errors import EfsError, RefusedError, as_efs_error
from ..api import ItemError
from ..newfile import publish_no_replace
from ..treewalk import problem
from . import destination as _destination
from . import metadata as _meta
from .manifest import MANIFEST_NAME, PARTIAL_NAME, Entry, Header, ManifestWriter

READ_CHUNK = 1 << 20


class Digest(Protocol):
    """What a sink asks of the hash it feeds (a hashlib object)."""
    def update(self, data: Union[bytes, bytearray, memoryview], /) -> None: ...
    def hexdigest(self) -> str: ...


def hash_file(path: str) -> Tuple[int, str]:
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(READ_CHUNK):
            h.update(chunk)
            n += len(chunk)
    return n, h.hexdigest()


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
    # a set that stays where it is when its backup stops (folder, object
    # store): checked before any work, left incomplete, resumable
    resumable = False
    # objects the sink stores at once where that is what limits a backup
    # (an object store's requests in flight: a worker waits for its PUT),
    # the workers a backup runs by default; None: the source decides
    in_flight: Optional[int] = None
    workers = 1                 # how many export at once (set by backup_set)

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.writer: Optional[ManifestWriter] = None
        self.broken: Optional[BaseException] = None

    def begin(self, header: Header) -> None:
        raise NotImplementedError

    def add_entry(self, entry: Entry) -> None:
        with self.lock:
            assert self.writer is not None      # (begin made it)
            self.writer.add(entry)

    def keeps(self, entry: Entry) -> bool:
        """Resuming: whether the object's stream already in the set is kept."""
        return False

    def store(self, raw: _core.RawContext, entry: Entry, digest: Digest, *,
              cancel: Optional[_core.CancelToken]) -> int:
        """Write the raw stream of the object open for export in ``raw``,
        feeding ``digest``; return its size."""
        raise NotImplementedError

    # a resumable sink's (folder, object store)

    def check(self, source: str, *, resume: bool) -> None:
        """Refuse (:class:`RefusedError`) a destination this backup must not
        write into, before any work."""
        raise NotImplementedError

    def discard(self, entry: Entry) -> None:
        """An object stored whose line could not be written: removed."""
        raise NotImplementedError

    def unfinished(self, failures: List[ItemError]) -> Optional[str]:
        """Why the set cannot be completed (every object has been tried and
        ``failures`` failed), or None where it can."""
        if self.broken is not None:
            raise self.broken
        return None

    def finish(self) -> str:
        raise NotImplementedError

    def abort(self, reason: str) -> None:
        raise NotImplementedError


def _destination_full(exc: BaseException) -> bool:
    return (getattr(exc, "errno", None) in _FULL_ERRNOS
            or getattr(exc, "winerror", None) in _FULL_WINERRORS)


_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_FULL_WINERRORS = {112, 39}         # ERROR_DISK_FULL, ERROR_HANDLE_DISK_FULL


class _LineFile:
    """The partial manifest's file: each line goes to the OS as it comes
    (nothing waits in a buffer of this process), a short write continued."""

    def __init__(self, fd: int):
        self.fd = fd

    def write(self, b: bytes) -> int:
        done = os.write(self.fd, b)
        if done < len(b):       # (the rare short write: no view made per line)
            view = memoryview(b)[done:]
            while view:
                view = view[os.write(self.fd, view):]
        return len(b)


def source_unchanged(known: Entry, entry: Entry) -> bool:
    """Resuming: whether the set's line ``known`` is a whole backup of the
    object ``entry`` describes now (same kind, size, $EFS and change time)."""
    return not (known.failed or known.ref or known.sha256 is None
                or known.kind is not entry.kind or known.source_size != entry.source_size
                or known.efs_sha256 != entry.efs_sha256
                or _meta.change_stamp(known.meta) != _meta.change_stamp(entry.meta))


class FolderSink(SetSink):
    """The folder layout of before (``REL.efsraw`` per object) plus the
    manifest, written as objects finish under the fixed name
    ``efsfast-manifest.partial.jsonl`` (created with O_EXCL and locked while
    the backup runs: a second backup into the folder is refused) and given
    its name only when the set is complete.  An aborted backup ends it with
    an end line saying ``"complete": false`` and why, and keeps it: the
    folder is then an incomplete set, which restores and verify-set
    recognise and ``--skip-existing`` resumes (destination.py: what may be
    there before).  Before the manifest gets its name every object is made
    durable (``sync``: how, durable.py; by default as the file system
    needs), and the folder after."""
    # benchmarks only: also fsync each object in the worker that wrote it
    # (measured slower than durable.py's ways everywhere: docs/RELIABILITY.md)
    sync_in_workers = False

    resumable = True

    def __init__(self, dest: str, *, overwrite: bool = False,
                 sync: Optional[durable.SyncWay] = None):
        super().__init__()
        self.dest = self.plan_root = os.fspath(dest)
        self.overwrite = overwrite
        self.resume = False
        self.sync = sync
        self.written: List[str] = []        # the objects in the set (SyncWay.EACH syncs them)
        # ... and runs of them written by bulk.py, listed only when asked
        # for (a list per run cost the calling thread ~0.1 us per object)
        self.written_runs: List[Callable[[], Iterable[str]]] = []
        self.emptied: Set[str] = set()      # folders objects were removed from
        self.final = os.path.join(self.dest, MANIFEST_NAME)
        self.partial = os.path.join(self.dest, PARTIAL_NAME)
        self.fd: Optional[int] = None
        self.made: Set[str] = set()
        self.found: Optional[_destination.Destination] = None
        self.known: Dict[str, Entry] = {}   # resuming: what the set there lists
        self.listed: Set[str] = set()       # raw streams the new manifest lists

    # ---- before any work ----

    def check(self, source: str, *, resume: bool) -> None:
        """Refuse (:class:`RefusedError`) a destination this backup must not
        write into; nothing is written here."""
        self.resume = resume
        self.found = _destination.survey(self.dest)
        _destination.check(self.found, source, overwrite=self.overwrite, resume=resume)
        m = self.found.manifest
        if resume and m is not None:
            self.known = {e.path: e for e in m.entries}

    def begin(self, header: Header) -> None:
        try:
            os.makedirs(self.dest, exist_ok=True)
        except OSError as exc:      # the destination cannot be written: the job fails
            raise problem(self.dest, "cannot create the folder", exc) from None
        if self.sync is None:
            self.sync = durable.way_for(self.dest)
        if self.found is None:                  # (check was not called: as a new set)
            self.check(header.source, resume=False)
        found = self.found
        assert found is not None                # (check surveyed it)
        _destination.retire(self.partial)       # the one an earlier backup left
        try:
            # (binary: Windows would write each line's "\n" as "\r\n")
            fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
                         | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            raise RefusedError(_destination.ERROR_SHARING_VIOLATION, "another backup began "
                               "writing a set into this folder", self.partial) from None
        if not _destination.lock(fd):           # (another run took it between the calls)
            os.close(fd)
            raise _destination.busy(self.partial)
        self.fd = fd
        try:
            self.writer = ManifestWriter(_LineFile(fd), header)
        except OSError as exc:      # not even its first line fits: as if never begun
            self.fd = None
            os.close(fd)
            _winfs.remove_quietly(self.partial)
            raise as_efs_error(exc, self.partial) from None
        # the old manifest goes before any object changes: from now on the
        # folder is an incomplete set (replacing) or stays one (resuming)
        if found.manifest is not None or found.incomplete:
            _unlink_quietly(self.final)
        for path in found.leftovers:    # what a killed run left half-written
            _unlink_quietly(path)
        # a power cut from here on leaves a folder that says it is incomplete
        self._sync_folder()

    # ---- as objects finish ----

    def _stored(self, entry: Entry) -> str:
        return os.path.join(self.dest, *entry.stored_name.split("/"))

    def add_entry(self, entry: Entry, written: Optional[str] = None) -> None:
        """The object's line, once the object is in the set.  A line that
        cannot be written breaks the manifest: no later line is written
        (the set cannot be complete) and the caller fails the object.
        ``written``: the object's file, noted as :meth:`note_written` does
        once the line is written (under the same lock)."""
        with self.lock:
            self._record(lambda w: w.add(entry))
            if entry.has_stream and not entry.ref:
                self.listed.add(entry.stored_name)
            if written is not None:
                self.written.append(written)

    def add_lines(self, lines: bytes, count: int, written: Callable[[], Iterable[str]],
                  stored: Callable[[], Iterable[str]]) -> None:
        """The lines of ``count`` whole objects made by the backup's C
        workers (bulk.py), written at once: as :meth:`add_entry` for each,
        all failing together.  ``written``: their files, asked for only
        where the set is synced file by file; ``stored``: their stored
        names, asked for only where streams there before must be told from
        the new set's (a set replaced)."""
        with self.lock:
            self._record(lambda w: w.add_lines(lines, count))
            if self.found is not None and self.found.stored:
                self.listed.update(stored())
            self.written_runs.append(written)

    def _record(self, put: Callable[[ManifestWriter], None]) -> None:
        """``put`` lines into the manifest (the lock held)."""
        if self.broken is not None:
            broken: Any = self.broken       # (an EfsError: set below)
            raise EfsError(getattr(broken, "winerror", None) or 29,
                           f"cannot record it in the manifest: {broken.strerror}",
                           self.partial, broken.errno)
        try:
            assert self.writer is not None  # (begin made it)
            put(self.writer)
        except OSError as exc:
            self.broken = error = as_efs_error(exc, self.partial)
            raise EfsError(error.winerror, "cannot record it in the manifest: "
                           f"{error.strerror}", self.partial,
                           error.errno) from None

    def discard(self, entry: Entry) -> None:
        """An object stored whose line could not be written: removed, so the
        set holds nothing its manifest does not list."""
        _unlink_quietly(self._stored(entry))

    def discard_file(self, path: str) -> None:
        """:meth:`discard` of the object stored as ``path``."""
        _unlink_quietly(path)

    def keeps(self, entry: Entry) -> bool:
        """Resuming: the stream there is kept only if the set's manifest
        lists it with the same size and SHA-256 (read again now) and the
        source has not changed since (same change time, size and $EFS)."""
        known = self.known.get(entry.path)
        if known is None or not source_unchanged(known, entry):
            return False
        path = self._stored(entry)
        try:
            if os.lstat(path).st_size != known.raw_size:
                return False
            size, sha = hash_file(path)
        except OSError:
            return False
        if (size, sha) != (known.raw_size, known.sha256):
            return False
        entry.raw_size, entry.sha256 = size, sha
        self.note_written(path)     # kept from a run that may not have synced it
        return True

    def note_written(self, path: str) -> None:
        with self.lock:
            self.written.append(path)

    def store(self, raw: _core.RawContext, entry: Entry, digest: Digest, *,
              cancel: Optional[_core.CancelToken]) -> int:
        out = self._stored(entry)
        parent = os.path.dirname(out)
        if parent not in self.made:         # one makedirs per folder, not per object
            os.makedirs(parent, exist_ok=True)
            self.made.add(parent)
        # resuming, a stream there that is not kept is replaced
        r = api.export_opened(raw, out, cancel=cancel, overwrite=self.overwrite or self.resume,
                              digest=digest, sync=self.sync_in_workers)
        self.note_written(out)
        return r.bytes

    # ---- the end ----

    def unfinished(self, failures: List[ItemError]) -> Optional[str]:
        if self.broken is not None:
            return f"its manifest could not be written: {getattr(self.broken, 'strerror')}"
        full = next((f.error for f in failures if _destination_full(f.error)), None)
        if full is not None:
            return f"the destination is full ({getattr(full, 'strerror', None) or full})"
        return None

    def finish(self) -> str:
        """Publish the set.  Each step is its own method, in this order:
        objects of the set replaced or resumed that the new manifest does
        not list removed, every object (and those removals) durable, the
        end line, the manifest to disk, the manifest given its name, the
        folder (that name) to disk.  (A failure before the end line leaves
        the partial manifest for abort() to end.)"""
        self._remove_unlisted()
        self._sync_objects()
        digest = self._end_manifest()
        self._sync_manifest()
        if os.name == "nt":     # an open file cannot be renamed there (POSIX: the lock
            self._close()       # stays until the manifest has its name)
        self._publish_manifest()
        self._close()
        self._sync_folder()
        return digest

    def _end_manifest(self) -> str:
        assert self.writer is not None          # (begin made it)
        return self.writer.finish()

    def _sync_objects(self) -> None:
        """One syncfs, or an fsync of each object and of the folders that
        hold them or held what was removed (durable.py)."""
        written = itertools.chain(self.written,
                                  itertools.chain.from_iterable(f() for f in self.written_runs))
        failed = durable.sync_written(self.dest, written, self.sync,
                                      folders=self.emptied, workers=self.workers)
        if failed:
            path, exc = failed[0]
            raise problem(path, "could not be synced to stable storage", exc)

    def _sync_manifest(self) -> None:
        assert self.fd is not None              # (begin opened it; finish closes it after this)
        os.fsync(self.fd)

    def _remove_unlisted(self) -> None:
        """Replacing or resuming a set: the raw streams that were there and
        that this set does not list (objects no longer in the source), and
        folders that held only those."""
        if self.found is None:
            return
        for rel in sorted(self.found.stored - self.listed):
            path = os.path.join(self.dest, *rel.split("/"))
            _unlink_quietly(path)
            parent = os.path.dirname(path)
            self.emptied.add(parent)
            while parent != self.dest and parent.startswith(self.dest + os.sep):
                try:
                    os.rmdir(parent)
                except OSError:
                    break           # holds something else: stays
                parent = os.path.dirname(parent)

    def _publish_manifest(self) -> None:
        if self.overwrite:
            os.replace(self.partial, self.final)
        else:
            publish_no_replace(self.partial, self.final)

    def _sync_folder(self) -> None:
        """The folder's entries (the manifest's new name) to disk; where a
        folder cannot be synced there is nothing more to do (durable.py)."""
        if self.sync is not durable.SyncWay.NONE:
            durable.fsync_path(self.dest)

    def _close(self) -> None:
        """Close the partial manifest's file, which drops its lock."""
        fd, self.fd = self.fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def abort(self, reason: str = "the backup stopped") -> None:
        """End the partial manifest with a line saying the set is not
        complete and why, and keep it (best effort: the disk may be full).
        What follows the last whole object line (one a failure cut, or the
        end line of a set that could not be published) is cut away first."""
        if self.fd is None:
            return
        assert self.writer is not None          # (made right after the fd, or the fd reset)
        try:
            os.ftruncate(self.fd, self.writer.written)
            self.writer.abort(reason)
        except OSError:
            try:        # the end line did not fit either: the whole lines stay
                os.ftruncate(self.fd, self.writer.written)
            except OSError:
                pass
        finally:
            self._close()
