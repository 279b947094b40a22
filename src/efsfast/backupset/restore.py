"""restore-tree from a backup set: planned from the manifest (no source is
parsed first), content first, then the metadata (files, then folders deepest
first, so that restoring children does not move a folder's times).  Sets
come as folders or as a tar stream; an incremental set also needs the sets
its unchanged objects live in."""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from typing import Callable, Dict, Iterable, List, Optional, Sequence

from .. import tree
from .._core import CancelToken
from .._errors import CancelledError, EfsError, RefusedError
from ..api import BulkResult, ItemError, restore
from . import metadata as _meta
from .manifest import (MANIFEST_NAME, SUFFIX, Entry, Kind, Manifest, ManifestError,
                       find_manifest, read_manifest)
from .result import SetResult

ERROR_FILE_NOT_FOUND = 2
ERROR_INVALID_DATA = 13
ERROR_HANDLE_EOF = 38
ERROR_INCOMPLETE_SET = 38       # (the set ends early, as a file does)


class MissingSetsError(EfsError):
    """An incremental set refers to sets that cannot be found."""


class TruncatedStreamError(EfsError):
    """A tar stream that ends before its manifest."""


def has_manifest(set_dir: str) -> bool:
    """Whether ``set_dir`` has a manifest: a set, complete or incomplete."""
    return find_manifest(set_dir)[0] is not None


def incomplete_set(set_dir: str, m: Manifest) -> RefusedError:
    """The refusal to restore an incomplete set as if it were whole."""
    listed = sum(1 for e in m.entries if e.has_stream)
    why = f": {m.reason}" if m.reason else ""
    return RefusedError(ERROR_INCOMPLETE_SET, f"an incomplete backup set (its backup did not "
                        f"finish{why}); it lists {listed} objects.  Resume the backup with "
                        f"backup-tree {m.header.source} {set_dir} --skip-existing, or restore "
                        "what it lists with restore-tree --partial; nothing was restored",
                        set_dir)


def locate_sets(m: Manifest, extra: Sequence[str] = ()) -> Dict[str, str]:
    """Folder of every set ``m`` refers to, by set id: the folders in
    ``extra``, then the path each reference recorded.  Raises
    :class:`MissingSetsError` naming every one that is not found."""
    wanted = {r["set_id"]: r for r in m.header.refs}
    found: Dict[str, str] = {}
    for folder in list(extra) + [r.get("path") or "" for r in m.header.refs]:
        where, complete = find_manifest(folder) if folder else (None, False)
        if not complete:            # (an incomplete set is not the one referred to)
            continue
        try:
            other = read_manifest(where)
        except ValueError:
            continue
        ref = wanted.get(other.header.set_id)
        if ref and other.header.set_id not in found and other.sha256 == ref["manifest_sha256"]:
            found[other.header.set_id] = folder
    missing = [r for sid, r in wanted.items() if sid not in found]
    if missing:
        names = "; ".join(f"set {r['set_id']} (last seen at {r.get('path')})" for r in missing)
        raise MissingSetsError(ERROR_FILE_NOT_FOUND, "this incremental set needs the sets its "
                               f"unchanged objects are in, and these are missing: {names} "
                               "(name them with --with)", m.header.source)
    return found


def _target(dest: str, rel: str) -> str:
    parts = rel.split("/")
    if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise EfsError(ERROR_INVALID_DATA, f"an object path that leaves the destination: {rel!r}")
    return os.path.join(dest, *parts)


def _depth(e: Entry) -> int:
    return e.path.count("/")


def apply_metadata(entries: Iterable[Entry], dest: str, *, acl: bool,
                   skip: set) -> List[ItemError]:
    """Metadata onto restored objects: files, then folders deepest first, so
    that setting a folder's contents never moves its times.  One thread: on
    ntfs-3g two were slower (0.29 s against 0.17 s for 2,000 files; the
    daemon serves one request at a time and the calls are short)."""
    failures = []
    todo = sorted(entries, key=lambda e: (e.kind is not Kind.FILE, -_depth(e)))
    ntfs = _meta.is_ntfs3g(dest)
    for i, e in enumerate(todo):
        target = _target(dest, e.path)
        if e.failed or target in skip or not e.meta:
            continue
        try:        # (no lexists first: on FUSE each check is two round trips)
            _meta.apply(target, e.meta, acl=acl, target_ntfs3g=ntfs)
        except FileNotFoundError:
            continue            # not restored (a plain folder with nothing restored below)
        except OSError as exc:
            if exc.filename is None:
                exc.filename = target
            failures.append(ItemError(i, target, exc))
    return failures


def _failed_entries(entries: Iterable[Entry], dest: str) -> List[ItemError]:
    return [ItemError(0, _target(dest, e.path),
                      EfsError(ERROR_FILE_NOT_FOUND, f"not in the set: its backup failed "
                               f"({e.failed})")) for e in entries if e.failed]


def _finish(bulk: BulkResult, extra: List[ItemError]) -> BulkResult:
    for e in extra:
        bulk.failures.append(ItemError(len(bulk.results), e.dest, e.error))
        bulk.results.append(None)
    return bulk


def restore_set(set_dir, dest_dir, *, workers: Optional[int] = None, overwrite: bool = False,
                skip_existing: bool = False, metadata: bool = True, acl: bool = True,
                sets: Sequence[str] = (),
                progress: Optional[Callable[[int, int, int], None]] = None,
                cancel: Optional[CancelToken] = None, backend=None,
                partial: bool = False) -> SetResult:
    """Restore the folder set ``set_dir`` (which has a manifest) into
    ``dest_dir``.  An incomplete set (its backup did not finish) is refused
    (:class:`RefusedError`) unless ``partial``: then what it lists."""
    set_dir, dest_dir = os.fspath(set_dir), os.fspath(dest_dir)
    where, complete = find_manifest(set_dir)
    try:
        m = read_manifest(where or os.path.join(set_dir, MANIFEST_NAME), partial=not complete)
    except ManifestError:
        if complete or where is None:
            raise
        raise RefusedError(ERROR_INCOMPLETE_SET, "an incomplete backup set: its backup "
                           "stopped before it listed anything; nothing was restored",
                           set_dir) from None
    if not complete and not partial:
        raise incomplete_set(set_dir, m)
    folders = {m.header.set_id: set_dir} | locate_sets(m, sets)
    dirs, files = [], []
    for e in m.entries:
        if not e.has_stream:
            continue
        source = os.path.join(folders[e.ref or m.header.set_id], *e.stored_name.split("/"))
        target = _target(dest_dir, e.path)
        if e.kind is Kind.DIRECTORY:
            dirs.append((target, source, {"directory": True}))
        else:
            files.append((target, source))
    dirs.sort(key=lambda j: j[0].count(os.sep))
    r = tree.restore_planned(dirs, files, dest_dir, workers=workers, overwrite=overwrite,
                             skip_existing=skip_existing, progress=progress, cancel=cancel,
                             backend=backend)
    extra = _failed_entries(m.entries, dest_dir)
    if metadata:
        extra += apply_metadata(m.entries, dest_dir, acl=acl,
                                skip={f.dest for f in r.bulk.failures})
    return SetResult(_finish(r.bulk, extra), directories=r.directories, existing=r.existing,
                     unchanged=sum(1 for e in m.entries if e.ref), set_id=m.header.set_id,
                     manifest_sha256=m.sha256, jobs=r.jobs, complete=complete)


class _HashingReader:
    """A restore source over a tar member that hashes what it hands on."""

    def __init__(self, f):
        self.f = f
        self.digest = hashlib.sha256()
        self.count = 0

    def readinto(self, b) -> int:
        n = self.f.readinto(b)
        if n:
            with memoryview(b) as v:
                self.digest.update(v[:n])
            self.count += n
        return n


def restore_stream(fileobj, dest_dir, *, overwrite: bool = False, skip_existing: bool = False,
                   metadata: bool = True, acl: bool = True, sets: Sequence[str] = (),
                   progress: Optional[Callable[[int, int, int], None]] = None,
                   cancel: Optional[CancelToken] = None, backend=None) -> SetResult:
    """Restore a set from a tar stream (``backup-tree SRC -``), object by
    object as the members arrive, each hashed on the way and checked against
    its manifest line; then the objects of the sets it refers to, then the
    metadata.  A stream that ends early raises :class:`TruncatedStreamError`
    naming the last whole object; what was restored whole stays."""
    dest_dir = os.fspath(dest_dir)
    os.makedirs(dest_dir, exist_ok=True)
    bulk = BulkResult(results=[])
    got: Dict[str, str] = {}
    existing: List[str] = []
    manifest: Optional[Manifest] = None
    last = "(none: no object was complete)"
    try:
        tar = tarfile.open(fileobj=fileobj, mode="r|")
    except tarfile.ReadError as exc:
        raise EfsError(ERROR_INVALID_DATA, f"standard input is not a tar stream ({exc})") from None
    current = previous = None
    try:
        while (member := tar.next()) is not None:
            tar.members.clear()          # stream mode would keep every header
            if manifest is not None:
                raise EfsError(ERROR_INVALID_DATA, f"a member after the manifest: {member.name}")
            if member.name == MANIFEST_NAME:
                current = member.name
                manifest = read_manifest(io.BytesIO(tar.extractfile(member).read()),
                                         name=f"{MANIFEST_NAME} (in the stream)")
                continue
            current = previous = member.name
            e = member_entry(member)
            target = _target(dest_dir, e.path)
            if skip_existing and os.path.lexists(target):
                existing.append(target)
                got[e.path] = e.sha256
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            src = _HashingReader(tar.extractfile(member))
            try:
                r = restore(target, src, directory=e.kind is Kind.DIRECTORY,
                            overwrite=overwrite, backend=backend, cancel=cancel)
            except CancelledError:
                raise KeyboardInterrupt(f"interrupted in {e.path}; the last whole object "
                                        f"was {last}") from None
            except tarfile.ReadError:
                raise
            except Exception as exc:    # this object failed; the stream goes on
                bulk.failures.append(ItemError(len(bulk.results), target, exc))
                bulk.results.append(None)
                current = None
                continue
            if src.digest.hexdigest() != e.sha256:
                tree_remove(target)
                bulk.failures.append(ItemError(len(bulk.results), target, EfsError(
                    ERROR_INVALID_DATA, "SHA-256 differs from the manifest's: removed")))
                bulk.results.append(None)
                current = None
                continue
            current = None
            got[e.path] = e.sha256
            bulk.results.append(r)
            bulk.files += 1
            bulk.bytes += r.bytes
            last = e.path
            if progress is not None:
                progress(bulk.files, bulk.bytes, 0)
    except tarfile.ReadError as exc:
        where = f"in {current}" if current else (f"after {previous}" if previous
                                                 else "in its first member")
        raise TruncatedStreamError(ERROR_HANDLE_EOF, f"the tar stream is truncated or damaged "
                                   f"{where} ({exc}); the last whole object was {last}") from None
    if manifest is None:
        raise TruncatedStreamError(ERROR_HANDLE_EOF, "the tar stream ended before its manifest "
                                   f"(truncated?); the last whole object was {last}")
    return _complete(manifest, got, dest_dir, bulk, existing, metadata=metadata, acl=acl,
                     sets=sets, overwrite=overwrite, skip_existing=skip_existing,
                     cancel=cancel, backend=backend)


def member_entry(member: tarfile.TarInfo) -> Entry:
    """The manifest line a set member carries in its pax ``comment``."""
    if not member.isfile() or not member.name.endswith(SUFFIX):
        raise EfsError(ERROR_INVALID_DATA, f"not a member of a backup set: {member.name}")
    try:
        d = json.loads(member.pax_headers["comment"])
        e = Entry.from_json(d)
    except (KeyError, ValueError, TypeError) as exc:
        raise EfsError(ERROR_INVALID_DATA, f"{member.name}: no manifest line in its tar "
                       f"header ({exc!r})") from None
    if e.stored_name != member.name or e.sha256 is None:
        raise EfsError(ERROR_INVALID_DATA, f"{member.name}: its manifest line names "
                       f"{e.stored_name}")
    return e


def tree_remove(path: str) -> None:
    try:
        os.rmdir(path) if os.path.isdir(path) else os.unlink(path)
    except OSError:
        pass


def _complete(m: Manifest, got: Dict[str, str], dest_dir: str, bulk: BulkResult,
              existing: List[str], *, metadata: bool, acl: bool, sets: Sequence[str],
              overwrite: bool, skip_existing: bool, cancel, backend) -> SetResult:
    """After the stream: every listed object arrived with the manifest's
    hash, referenced ones restored from their sets, then the metadata."""
    extra = _failed_entries(m.entries, dest_dir)
    listed = set()
    refs = [e for e in m.entries if e.ref and e.has_stream]
    for e in m.entries:
        listed.add(e.path)
        if e.ref or not e.has_stream:
            continue
        if e.path not in got and not any(f.dest == _target(dest_dir, e.path)
                                         for f in bulk.failures):
            extra.append(ItemError(0, _target(dest_dir, e.path), EfsError(
                ERROR_FILE_NOT_FOUND, "listed in the manifest, missing from the stream")))
        elif e.path in got and got[e.path] != e.sha256:
            extra.append(ItemError(0, _target(dest_dir, e.path), EfsError(
                ERROR_INVALID_DATA, "its tar header and the manifest disagree on its SHA-256")))
    for path in sorted(set(got) - listed):
        extra.append(ItemError(0, _target(dest_dir, path), EfsError(
            ERROR_INVALID_DATA, "in the stream but not in the manifest")))
    directories = sum(1 for e in m.entries if e.kind is Kind.DIRECTORY and not e.failed)
    if refs:
        folders = locate_sets(m, sets)
        dirs = sorted(((_target(dest_dir, e.path),
                        os.path.join(folders[e.ref], *e.stored_name.split("/")),
                        {"directory": True}) for e in refs if e.kind is Kind.DIRECTORY),
                      key=lambda j: j[0].count(os.sep))
        files = [(_target(dest_dir, e.path), os.path.join(folders[e.ref],
                                                           *e.stored_name.split("/")))
                 for e in refs if e.kind is Kind.FILE]
        r = tree.restore_planned(dirs, files, dest_dir, overwrite=overwrite,
                                 skip_existing=skip_existing, cancel=cancel, backend=backend)
        bulk = tree._merge([bulk, r.bulk], [])
        existing += r.existing
    if metadata:
        extra += apply_metadata(m.entries, dest_dir, acl=acl,
                                skip={f.dest for f in bulk.failures})
    return SetResult(_finish(bulk, extra), directories=directories, existing=existing,
                     unchanged=len(refs), set_id=m.header.set_id, manifest_sha256=m.sha256)
