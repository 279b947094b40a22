"""restore-tree -: a backup set restored from a tar stream as its members
arrive (stream.py says what each member is).

Where the manifest came first, an object is checked before it is published
(its size and SHA-256 as the bytes pass; a mismatch leaves nothing).  A file
that arrives before the manifest is restored, held as its path, size and
SHA-256, and removed again if the manifest, when it comes, does not list it
with that size and hash.  An encrypted folder's raw stream is never applied
before it is checked: until the manifest comes it waits in a temporary file
beside its target (a folder's stream is its $EFS and named streams, small),
and the files that arrive meanwhile go into a plain folder, onto which the
folder's stream is then imported in place.  A tar tool may list a folder's
object before or after what it holds; the result is the same."""
from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass
from enum import Enum
from typing import IO, Any, Dict, List, Optional, Sequence, Set, Tuple, Union

from .. import tree
from .._core import Backend, CancelToken
from .._errors import CancelledError, EfsError
from .._winfs import remove_quietly, temp_beside
from ..api import BulkResult, ItemError, RestoreResult, restore
from ..bulkjob import Progress
from ..treefolders import below_failed, blocked, unlike_backup
from .manifest import MANIFEST_NAME, Entry, Kind, Manifest, ManifestError
from .restore import (ERROR_FILE_NOT_FOUND, ERROR_HANDLE_EOF, ERROR_INVALID_DATA,
                      TruncatedStreamError, _failed_entries, _finish, _target, apply_metadata,
                      checked_jobs, locate_sets)
from .result import SetResult
from .stream import (PEEK_LIMIT, READ_CHUNK, Member, MemberReader, MemberType, PeekExhausted,
                     classify, comment_entry, forget_headers, listed_streams, mismatch, open_stream,
                     read_stream_manifest)



class State(str, Enum):
    RESTORED = "restored"   # at DEST (and, once the manifest came, checked)
    PENDING = "pending"     # a folder's raw stream in a temporary file, waiting for the manifest
    EXISTING = "existing"   # skip_existing: already there, left alone
    FAILED = "failed"       # a named failed item; nothing of it at DEST


@dataclass
class Arrival:
    """What is kept of an object that came: never its bytes."""
    kind: Kind = Kind.FILE
    size: int = 0
    sha256: str = ""
    state: State = State.FAILED
    index: int = -1                 # its slot in the result
    checked: bool = False           # against the manifest
    hinted: bool = False            # against the manifest line in its pax comment
    spool: Optional[str] = None     # PENDING: where its raw stream waits


class _CheckedSource:
    """A member as a restore's source: at its end, a size or SHA-256 other
    than the expected one raises, so the import publishes nothing."""

    def __init__(self, reader: MemberReader, expected: Optional[Entry], against: str):
        self.reader, self.expected, self.against = reader, expected, against

    def readinto(self, b: Any) -> int:
        n = self.reader.readinto(b)
        if n == 0 and self.expected is not None:
            why = mismatch(self.expected, None, self.reader.count, self.reader.sha256,
                           self.against)
            if why is not None:
                raise EfsError(ERROR_INVALID_DATA, f"{why}: not restored")
        return n


class StreamRestore:
    """One restore of a tar stream into ``dest``; :func:`restore_stream` runs it."""

    def __init__(self, dest: str, *, overwrite: bool, skip_existing: bool,
                 progress: Optional[Progress], cancel: Optional[CancelToken],
                 backend: Optional[Backend], peek_limit: int = PEEK_LIMIT):
        self.dest = dest
        self.overwrite, self.skip_existing = overwrite, skip_existing
        self.progress, self.cancel, self.backend = progress, cancel, backend
        self.peek_limit = peek_limit
        self.bulk = BulkResult(results=[])
        self.arrivals: Dict[str, Arrival] = {}
        self.existing: List[str] = []
        self.listed: Optional[Dict[str, Entry]] = None
        self.manifest: Optional[Manifest] = None
        self.made: Set[str] = set()         # plain folders this restore created
        self.known_dirs: Set[str] = {dest}
        self.failed_folders: List[str] = []
        self.folders = 0                    # folder objects restored
        self.last = "(none: no object was complete)"
        self.misplaced_manifest = ""        # why a manifest below the top was not used

    # ---- the account
    def _fail(self, target: str, error: BaseException) -> int:
        i = len(self.bulk.results)
        self.bulk.failures.append(ItemError(i, target, error))
        self.bulk.results.append(None)
        return i

    def _failed(self, a: Arrival, target: str, error: BaseException) -> None:
        a.state, a.index = State.FAILED, self._fail(target, error)

    def _done(self, a: Arrival, r: RestoreResult) -> None:
        a.state, a.index = State.RESTORED, len(self.bulk.results)
        self.bulk.results.append(r)
        self.bulk.files += 1
        self.bulk.bytes += r.bytes
        if a.kind is Kind.DIRECTORY:
            self.folders += 1
        if self.progress is not None:
            self.progress(self.bulk.files, self.bulk.bytes, 0)

    def _revoke(self, path: str, a: Arrival, why: str, inside: Optional[str] = None) -> None:
        """An object restored (or waiting) that must not stay: removed, and
        its slot in the result a failure (``inside``: the failed folder it
        lies in, when that is why)."""
        def error(why: str) -> EfsError:
            e = EfsError(ERROR_INVALID_DATA, why)
            return e if inside is None else blocked(e, inside)
        target = _target(self.dest, path)
        if a.state is State.PENDING:
            remove_quietly(a.spool or "")
            a.spool = None
            self._failed(a, target, error(why))
            return
        if a.state is not State.RESTORED:
            return
        try:
            os.rmdir(target) if a.kind is Kind.DIRECTORY else os.unlink(target)
        except FileNotFoundError:
            pass
        except OSError as exc:          # a folder that holds what this restore did not put there
            why += f" (it could not be removed: {exc.strerror})"
        self._prune(os.path.dirname(target))
        r = self.bulk.results[a.index]
        self.bulk.results[a.index] = None
        self.bulk.files -= 1
        self.bulk.bytes -= r.bytes if r is not None else 0
        if a.kind is Kind.DIRECTORY:
            self.folders -= 1
        self.bulk.failures.append(ItemError(a.index, target, error(why)))
        a.state = State.FAILED

    # ---- folders
    def _parents(self, target: str) -> None:
        """Create the folders above ``target`` that are not there yet, as
        plain folders (an encrypted folder's own stream, when it comes, is
        imported onto it in place)."""
        parent = os.path.dirname(target)
        if parent in self.known_dirs:
            return
        missing = []
        p = parent
        while p not in self.known_dirs and not os.path.isdir(p):
            missing.append(p)
            p = os.path.dirname(p)
        for d in reversed(missing):
            try:
                os.mkdir(d)
            except FileExistsError:
                if not os.path.isdir(d):
                    raise
                continue
            self.made.add(d)
        self.known_dirs.add(parent)

    def _blocked(self, target: str) -> Optional[EfsError]:
        return below_failed(target, self.failed_folders)

    def _folder_failed(self, target: str) -> None:
        """Nothing stays in an encrypted folder that failed (as in a folder
        set's restore, treefolders.py): what was restored below it is
        removed again, then the plain folders made for it."""
        self.failed_folders.append(target)
        prefix = target + os.sep
        below = [(p, a) for p, a in self.arrivals.items()
                 if a.state in (State.RESTORED, State.PENDING)
                 and _target(self.dest, p).startswith(prefix)]
        for p, a in sorted(below, key=lambda pa: -pa[0].count("/")):
            error = self._blocked(_target(self.dest, p))
            self._revoke(p, a, error.strerror if error is not None and error.strerror
                         else "parent folder failed", inside=target)
        self._prune(target)

    def _prune(self, folder: str) -> None:
        """Remove the plain folders this restore made at and above
        ``folder`` that nothing is left in (after a removal)."""
        while folder in self.made:
            try:
                os.rmdir(folder)
            except OSError:
                break
            self.made.discard(folder)
            folder = os.path.dirname(folder)
        self.known_dirs = {self.dest}

    def _remove_made(self, under: Optional[str] = None) -> None:
        """Remove the plain folders this restore made (below ``under``, or
        all) that are empty, deepest first."""
        for d in sorted(self.made, key=lambda d: -d.count(os.sep)):
            if under is None or d == under or d.startswith(under + os.sep):
                try:
                    os.rmdir(d)
                except OSError:
                    continue
                self.made.discard(d)
        self.known_dirs = {self.dest}

    def _import_folder(self, path: str, a: Arrival) -> None:
        """Apply a folder's checked raw stream (in its temporary file) to its
        target: created, or imported in place onto the plain folder made for
        the files that came before it."""
        target = _target(self.dest, path)
        spool, a.spool = a.spool or "", None
        try:
            error = self._blocked(target)
            if error is not None:
                self._failed(a, target, error)
                return
            in_place = target in self.made
            if not in_place and self.skip_existing and os.path.lexists(target):
                error = unlike_backup(target, spool, self.backend)
                if error is None:
                    a.state = State.EXISTING
                    self.existing.append(target)
                else:
                    self._failed(a, target, error)
                    self._folder_failed(target)
                return
            r = restore(target, spool, directory=True, overwrite=self.overwrite or in_place,
                        backend=self.backend, cancel=self.cancel)
        except CancelledError:
            raise self.interrupted(path) from None
        except Exception as exc:        # this folder failed, and what it holds
            self._failed(a, target, exc)
            self._folder_failed(target)
            return
        finally:
            remove_quietly(spool)
        self.made.discard(target)
        self._done(a, r)

    # ---- members
    def interrupted(self, path: str) -> KeyboardInterrupt:
        return KeyboardInterrupt(f"interrupted in {path}; the last whole object was {self.last}")

    def restore_member(self, tar: tarfile.TarFile, m: Member) -> None:
        """One object's member: checked, restored (or, for a folder, held)."""
        path = m.path
        target = _target(self.dest, path)   # one that leaves DEST refuses the whole stream
        if path in self.arrivals:
            self._fail(target, EfsError(ERROR_INVALID_DATA, "a second member for this object "
                                                            "in the tar: not restored"))
            return
        a = self.arrivals[path] = Arrival()
        if self.listed is not None:
            expected, against = self.listed.get(path), "the manifest"
            if expected is None:
                self._failed(a, target, EfsError(ERROR_INVALID_DATA, "in the stream but not "
                                                 "in the manifest: not restored"))
                return
        else:
            expected, against = comment_entry(m.info, path), "its tar header"
        if expected is not None and m.info.size != expected.raw_size:
            why = mismatch(expected, None, m.info.size, "", against)
            self._failed(a, target, EfsError(ERROR_INVALID_DATA, f"{why}: not restored"))
            return
        error = self._blocked(target)
        if error is not None:
            self._failed(a, target, error)
            return
        f = tar.extractfile(m.info)
        assert f is not None                # a regular file (classify)
        reader = MemberReader(f, m.info.size)
        try:
            # from the manifest where it came first, else from the raw stream
            kind: Optional[Kind] = expected.kind if self.listed is not None and expected \
                else reader.kind(self.peek_limit)
        except PeekExhausted:
            kind = None                     # told from its temporary file (_spool)
        a.kind = kind or Kind.FILE
        try:
            if kind is Kind.FILE:
                self._file(path, a, reader, expected, against)
            else:
                self._spool(path, a, reader, expected, against)
        except CancelledError:
            self._drop_spool(a)
            raise self.interrupted(path) from None
        except (tarfile.ReadError, KeyboardInterrupt):
            self._drop_spool(a)
            raise
        except Exception as exc:        # this object failed; the stream goes on
            self._drop_spool(a)
            self._failed(a, target, exc)
            if a.kind is Kind.DIRECTORY:
                self._folder_failed(target)

    @staticmethod
    def _drop_spool(a: Arrival) -> None:
        if a.spool is not None:
            remove_quietly(a.spool)
            a.spool = None

    def _file(self, path: str, a: Arrival, reader: MemberReader, expected: Optional[Entry],
              against: str, spool: Optional[str] = None) -> None:
        target = _target(self.dest, path)
        if self.skip_existing and os.path.lexists(target) and not os.path.isdir(target):
            a.state = State.EXISTING
            self.existing.append(target)
            return
        self._parents(target)
        source = spool if spool is not None else _CheckedSource(reader, expected, against)
        r = restore(target, source, overwrite=self.overwrite, backend=self.backend,
                    cancel=self.cancel)
        a.size, a.sha256 = reader.count, reader.sha256
        a.checked, a.hinted = self.listed is not None, expected is not None
        self._done(a, r)
        self.last = path

    def _spool(self, path: str, a: Arrival, reader: MemberReader, expected: Optional[Entry],
               against: str) -> None:
        """A folder's member, or one whose kind the peek did not tell, into a
        temporary file beside its target (hashed on the way)."""
        target = _target(self.dest, path)
        self._parents(target)
        a.spool = temp_beside(target)
        buf = bytearray(READ_CHUNK)
        with open(a.spool, "xb") as out:
            while n := reader.readinto(buf):
                out.write(memoryview(buf)[:n])
                if self.cancel is not None and self.cancel.cancelled:
                    raise self.interrupted(path)
        a.size, a.sha256 = reader.count, reader.sha256
        a.kind = Kind.DIRECTORY if tree.is_directory_stream(a.spool) else Kind.FILE
        why = mismatch(expected, None, a.size, a.sha256, against) if expected else None
        if why is not None:
            raise EfsError(ERROR_INVALID_DATA, f"{why}: not restored")
        if a.kind is Kind.FILE:
            spool, a.spool = a.spool, None
            try:
                self._file(path, a, reader, expected, against, spool)
            finally:
                remove_quietly(spool)
            return
        a.state, a.hinted = State.PENDING, expected is not None
        self.last = path
        if self.listed is not None:
            self._import_folder(path, a)

    def name_other(self, m: Member) -> None:
        """A member that is no object of the set: named, never restored."""
        if m.name.endswith("/" + MANIFEST_NAME):
            self.misplaced_manifest = m.problem
        self._fail(os.path.join(self.dest, *m.name.split("/")),
                   EfsError(ERROR_INVALID_DATA, f"{m.problem}: not restored"))

    def manifest_arrived(self, tar: tarfile.TarFile, m: Member) -> None:
        """Check what came before the manifest; apply the folders that waited."""
        if self.manifest is not None:
            self._fail(os.path.join(self.dest, m.name), EfsError(
                ERROR_INVALID_DATA, "a second manifest in the stream: not used"))
            return
        try:
            manifest = self.manifest = read_stream_manifest(tar, m.info)
        except ManifestError as exc:
            n = self._discard_unchecked()
            if n:
                exc.args = (f"{exc.args[0]}; nothing restored from the stream can be checked "
                            f"without it, so the {n} objects restored before it were removed",)
            raise
        listed = self.listed = listed_streams(manifest)
        for path, a in list(self.arrivals.items()):
            if a.state is State.RESTORED and not a.checked:
                why = mismatch(listed.get(path), a.kind, a.size, a.sha256)
                if why is not None:
                    self._revoke(path, a, f"{why}: removed")
                a.checked = True
        waiting = sorted((p for p, a in self.arrivals.items() if a.state is State.PENDING),
                         key=lambda p: p.count("/"))
        for path in waiting:
            a = self.arrivals[path]
            if a.state is not State.PENDING:
                continue                    # removed with a folder above it
            why = mismatch(listed.get(path), a.kind, a.size, a.sha256)
            if why is not None:
                self._revoke(path, a, f"{why}: not restored")
                self._folder_failed(_target(self.dest, path))
            else:
                self._import_folder(path, a)

    def _discard_unchecked(self) -> int:
        """Remove every object restored or waiting: nothing can check them."""
        n = 0
        for path, a in sorted(self.arrivals.items(), key=lambda pa: -pa[0].count("/")):
            if a.state in (State.RESTORED, State.PENDING):
                n += 1
                self._revoke(path, a, "removed: the manifest in the stream is damaged")
        self._remove_made()
        return n

    def drop_waiting(self) -> None:
        for a in self.arrivals.values():
            self._drop_spool(a)

    # ---- the end
    def result(self) -> SetResult:
        """The account so far (of a stream that ended early, or was stopped)."""
        bulk = BulkResult(results=list(self.bulk.results), failures=sorted(
            self.bulk.failures, key=lambda e: e.index), bytes=self.bulk.bytes,
            files=self.bulk.files)
        return SetResult(bulk, directories=self.folders, existing=list(self.existing))

    def truncated(self, why: str) -> TruncatedStreamError:
        """A stream that ended before its manifest: the folders that waited
        are applied too (checked against their pax comment where they had
        one), so that what was restored whole stays usable, and is counted."""
        for path in sorted((p for p, a in self.arrivals.items() if a.state is State.PENDING),
                           key=lambda p: p.count("/")):
            if self.arrivals[path].state is State.PENDING:
                self._import_folder(path, self.arrivals[path])
        unchecked = sum(1 for a in self.arrivals.values()
                        if a.state is State.RESTORED and not a.hinted and not a.checked)
        why += f"; {self.bulk.files} objects were restored whole"
        if unchecked:
            why += (f", {unchecked} of them unchecked (only the manifest, which never came, "
                    "could check them)")
        if self.misplaced_manifest:
            why += f"; {self.misplaced_manifest}"
        err = TruncatedStreamError(ERROR_HANDLE_EOF, why)
        tree = self.result()
        tree.complete = False           # (the summary says the set was not whole)
        setattr(err, "tree", tree)
        return err

    def complete(self, *, metadata: bool, acl: bool, sets: Sequence[str]) -> SetResult:
        """After the stream: what the manifest lists and never came is named
        missing, referenced objects come from their sets, then the metadata."""
        m, listed = self.manifest, self.listed
        assert m is not None and listed is not None
        for path, e in listed.items():
            if path not in self.arrivals:
                target = _target(self.dest, path)
                self.arrivals[path] = Arrival(kind=e.kind, index=self._fail(target, EfsError(
                    ERROR_FILE_NOT_FOUND, "listed in the manifest, missing from the stream")))
                if e.kind is Kind.DIRECTORY:
                    self._folder_failed(target)
        extra = _failed_entries(m.entries, self.dest)
        bulk = self.result().bulk
        existing = list(self.existing)
        # every member still restored was checked against the manifest
        verified = sum(1 for a in self.arrivals.values() if a.state is State.RESTORED)
        refs = [e for e in m.entries if e.ref and e.has_stream]
        if refs:
            r, unusable = self._restore_refs(refs, sets)
            bulk = tree._merge([bulk, r.bulk], [])
            existing += r.existing
            extra += unusable
            verified += r.bulk.files        # each checked as it was read
        if metadata:
            extra += apply_metadata(m.entries, self.dest, acl=acl,
                                    skip={f.dest for f in bulk.failures})
        directories = sum(1 for e in m.entries if e.kind is Kind.DIRECTORY and not e.failed)
        return SetResult(_finish(bulk, extra), directories=directories, existing=existing,
                         unchanged=len(refs), set_id=m.header.set_id,
                         manifest_sha256=m.sha256, verified=verified)

    def _restore_refs(self, refs: List[Entry],
                      sets: Sequence[str]) -> Tuple[tree.TreeResult, List[ItemError]]:
        """An incremental set's unchanged objects, from the sets they are in,
        each checked against its manifest line as it is read; and the lines
        that give nothing to check against (failed items).  A folder made
        plain for this stream's files gets its stream in place."""
        assert self.manifest is not None
        dirs, files, unusable = checked_jobs(refs, locate_sets(self.manifest, sets, "-"),
                                             self.manifest.header.set_id, self.dest)
        # folders made plain for files this stream carried: their streams go
        # on in place, first (the rest keeps the caller's overwrite)
        made = [j for j in dirs if j[0] in self.made]
        parts = [tree.restore_planned(made, [], self.dest, overwrite=True, cancel=self.cancel,
                                      backend=self.backend).bulk] if made else []
        rest = tree.restore_planned([j for j in dirs if j[0] not in self.made], files,
                                    self.dest, overwrite=self.overwrite,
                                    skip_existing=self.skip_existing, cancel=self.cancel,
                                    backend=self.backend)
        if not parts:
            return rest, unusable
        rest.bulk = tree._merge(parts + [rest.bulk], [])
        rest.directories += len(made)
        return rest, unusable


def restore_stream(fileobj: IO[bytes], dest_dir: Union[str, "os.PathLike[str]"], *,
                   overwrite: bool = False, skip_existing: bool = False,
                   metadata: bool = True, acl: bool = True, sets: Sequence[str] = (),
                   progress: Optional[Progress] = None,
                   cancel: Optional[CancelToken] = None, backend: Optional[Backend] = None,
                   peek_limit: int = PEEK_LIMIT) -> SetResult:
    """Restore a set from a tar stream (``backup-tree SRC -``, or any tar of
    a set's folder), object by object as the members arrive, each checked
    against the manifest (module docstring); then the objects of the sets it
    refers to, then the metadata.  A stream that ends before its manifest
    raises :class:`TruncatedStreamError` naming the last whole object, with
    the account of what was restored as its ``tree``; what was restored
    whole stays."""
    dest_dir = os.fspath(dest_dir)
    os.makedirs(dest_dir, exist_ok=True)
    job = StreamRestore(dest_dir, overwrite=overwrite, skip_existing=skip_existing,
                        progress=progress, cancel=cancel, backend=backend,
                        peek_limit=peek_limit)
    tar = open_stream(fileobj)
    current = previous = None
    try:
        while (info := tar.next()) is not None:
            forget_headers(tar)
            if cancel is not None and cancel.cancelled:
                raise job.interrupted(previous or "(the first member)")
            m = classify(info)
            current = m.name
            if m.type is MemberType.OBJECT:
                job.restore_member(tar, m)
            elif m.type is MemberType.MANIFEST:
                job.manifest_arrived(tar, m)
            elif m.type is MemberType.OTHER:
                job.name_other(m)
            current, previous = None, m.name
    except tarfile.ReadError as exc:
        where = f"in {current}" if current else (f"after {previous}" if previous
                                                 else "in its first member")
        raise job.truncated(f"the tar stream is truncated or damaged {where} ({exc}); the "
                            f"last whole object was {job.last}") from None
    except BaseException as exc:
        job.drop_waiting()
        if isinstance(exc, KeyboardInterrupt):
            setattr(exc, "tree", job.result())
        raise
    if job.manifest is None:
        # where it ended, as verify-set says it: a cut inside a member's
        # header ends the stream here or raises ReadError above, depending on
        # the Python version's tarfile (3.13.0 ends it inside a pax header)
        where = f", after {previous}" if previous else ""
        raise job.truncated(f"the tar stream ended before its manifest{where} (truncated?); "
                            f"the last whole object was {job.last}")
    return job.complete(metadata=metadata, acl=acl, sets=sets)
