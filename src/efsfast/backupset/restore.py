"""restore-tree from a backup set: planned from the manifest (no source is
parsed first), content first, then the metadata (files, then folders deepest
first, so that restoring children does not move a folder's times).  Sets
come as folders or as a tar stream; an incremental set also needs the sets
its unchanged objects live in."""
from __future__ import annotations

import errno
import os
import sys
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set,
                    Tuple)

from .. import tree
from .._core import Backend, CancelToken, SetFiles
from ..volume import default_workers
from .._errors import EfsError, RefusedError
from ..api import BulkResult, ItemError
from . import metadata as _meta
from .manifest import (ERROR_INCOMPLETE_SET, MANIFEST_NAME, Entry, JsonObject, Kind, Manifest,
                       ManifestError, SUFFIX, find_manifest, read_manifest)
from .result import SetResult
from .setfiles import has_manifest as has_manifest  # (re-exported: this module's interface)

ERROR_FILE_NOT_FOUND = 2
ERROR_INVALID_DATA = 13
ERROR_HANDLE_EOF = 38


class MissingSetsError(RefusedError):
    """An incremental set refers to sets that cannot be found: refused
    before any work (the command line exits 2)."""


class TruncatedStreamError(EfsError):
    """A tar stream that ends before its manifest.  ``tree`` (a SetResult,
    as a KeyboardInterrupt carries it) accounts for what was restored
    before: whole, and left in place."""
    tree: Optional[SetResult] = None


def incomplete_set(set_dir: str, m: Manifest, command: str = "restore-tree",
                   done: str = "restored") -> RefusedError:
    """The refusal to restore (``command``: or decrypt) an incomplete set
    as if it were whole."""
    listed = sum(1 for e in m.entries if e.has_stream)
    why = f": {m.reason}" if m.reason else ""
    verb = command.split("-")[0]
    return RefusedError(ERROR_INCOMPLETE_SET, f"an incomplete backup set (its backup did not "
                        f"finish{why}); it lists {listed} objects.  Resume the backup with "
                        f"backup-tree {m.header.source} {set_dir} --skip-existing, or {verb} "
                        f"what it lists with {command} --partial; nothing was {done}",
                        set_dir)


def read_set(set_dir: str, *, partial: bool = False, command: str = "restore-tree",
             done: str = "restored") -> Manifest:
    """The manifest of the folder set ``set_dir`` (which has one): a
    complete set's, or with ``partial`` an incomplete one's (its
    ``complete`` says which).  An incomplete set is refused
    (:class:`RefusedError`, naming ``command``) unless ``partial``."""
    where, complete = find_manifest(set_dir)
    try:
        m = read_manifest(where or os.path.join(set_dir, MANIFEST_NAME), partial=not complete)
    except ManifestError as exc:
        if complete or where is None:
            raise
        raise RefusedError(ERROR_INCOMPLETE_SET, "an incomplete backup set whose partial "
                           f"manifest cannot be read ({exc}); nothing was {done}",
                           set_dir) from None
    if not complete and not partial:
        raise incomplete_set(set_dir, m, command, done)
    # only the manifest's own name makes a set complete (a whole-looking
    # partial one is a backup stopped before it published it)
    m.complete = m.complete and complete
    return m


def locate_sets(m: Manifest, extra: Sequence[str] = (), named: object = None) -> Dict[str, str]:
    """Folder of every set ``m`` refers to, by set id: the folders in
    ``extra``, then the path each reference recorded.  Raises
    :class:`MissingSetsError` naming every one that is not found, against
    ``named`` (the incremental set as the user named it)."""
    wanted = {r["set_id"]: r for r in m.header.refs}
    found: Dict[str, str] = {}
    for folder in list(extra) + [r.get("path") or "" for r in m.header.refs]:
        where, complete = find_manifest(folder) if folder else (None, False)
        if not complete or where is None:   # (an incomplete set is not the one referred to)
            continue
        try:
            other = read_manifest(where)
        except ValueError:
            continue
        take_if_referred(wanted, found, other, folder)
    refuse_missing(m, found, named)
    return found


def take_if_referred(wanted: Dict[str, JsonObject], found: Dict[str, Any], other: Manifest,
                     place: Any) -> None:
    """Record ``place`` as where set ``other`` lies if it is one of the
    ``wanted`` references (same id and manifest hash) not found yet."""
    ref = wanted.get(other.header.set_id)
    if ref and other.header.set_id not in found and other.sha256 == ref["manifest_sha256"]:
        found[other.header.set_id] = place


def refuse_missing(m: Manifest, found: Mapping[str, object], named: object = None) -> None:
    """Raise :class:`MissingSetsError` naming every set ``m`` refers to that
    is not in ``found`` (by set id); its ``filename`` is ``named``, the
    incremental set as the user named it (never the source folder its
    backup once read: that is not what the user gave, nor what is missing)."""
    missing = [r for r in m.header.refs if r["set_id"] not in found]
    if missing:
        names = "; ".join(f"set {r['set_id']} (last seen at {r.get('path')})" for r in missing)
        raise MissingSetsError(ERROR_FILE_NOT_FOUND, "this incremental set needs the sets its "
                               f"unchanged objects are in, and these are missing: {names} "
                               "(name them with --with)", named)


# Windows reads "\\" as a separator too (so "..\\x" climbs out of DEST) and
# ":" as a drive ("C:\\x", "C:x") or a named stream ("f:s"): neither is in a
# name a manifest may use there (its separator is "/"); elsewhere both are
# ordinary name characters
_WINDOWS_PATHS = os.sep == "\\"


def _target(dest: str, rel: str) -> str:
    # one substring test per kind of bad part on "/rel/" (an empty part is
    # "//", also a leading or trailing "/"), then one concatenation: this runs
    # once per object in the calling thread (split + join cost ~1 us each)
    padded = f"/{rel}/"
    if ("//" in padded or "/./" in padded or "/../" in padded
            or (_WINDOWS_PATHS and ("\\" in rel or ":" in rel))):
        raise EfsError(ERROR_INVALID_DATA, f"an object path that leaves the destination: {rel!r}")
    return _below(dest, rel)


def _below(dest: str, rel: str) -> str:
    """os.path.join(dest, *rel.split("/")) for a ``rel`` :func:`_target` took."""
    if _WINDOWS_PATHS:
        return os.path.join(dest, rel.replace("/", os.sep))
    return _base(dest) + rel


def _base(dest: str) -> str:
    """What :func:`_below` puts before a ``rel`` (POSIX)."""
    return dest if not dest or dest.endswith("/") else dest + "/"


def _targets(dest: str, rels: List[str]) -> Optional[List[str]]:
    """:func:`_target` of each of ``rels``, with one check over them all
    (two substring tests per object cost the calling thread more than the
    search over one string); None where some path would leave ``dest``:
    then each goes through :func:`_target`, which names the first."""
    # each "/rel/" between NULs: the bad parts ("//", "/./", "/../") are made
    # of "/" and "." only, so none spans two paths
    if not rels:
        return []
    joined = "/\0/".join(rels)
    padded = f"/{joined}/"
    if ("//" in padded or "/./" in padded or "/../" in padded
            or (_WINDOWS_PATHS and ("\\" in joined or ":" in joined))):
        return None
    if _WINDOWS_PATHS:
        return [_below(dest, rel) for rel in rels]
    base = _base(dest)
    return [base + rel for rel in rels]


def target_path(dest: str, rel: str) -> str:
    """``dest/rel`` for a manifest's object path; EfsError where the path
    would leave ``dest`` (for other commands that lay out a set's objects)."""
    return _target(dest, rel)


def metadata_in_c(dest: str) -> bool:
    """Whether :func:`apply_metadata` sets the files' metadata in C below
    ``dest`` (a POSIX file system other than ntfs-3g)."""
    return sys.platform != "win32" and not _meta.is_ntfs3g(dest)


def apply_metadata(entries: Iterable[Entry], dest: str, *, acl: bool,
                   skip: Set[str], workers: Optional[int] = None,
                   files: Optional[SetFiles] = None) -> List[ItemError]:
    """Metadata onto restored objects: files, then folders deepest first, so
    that setting a folder's contents never moves its times.  One thread on
    ntfs-3g: two were slower (0.29 s against 0.17 s for 2,000 files; the
    daemon serves one request at a time and the calls are short).  Elsewhere
    the files' POSIX metadata is set in C on ``workers`` threads (by default
    as many as the restore's), the calling thread only listing it.

    ``files``: a set's files as their restore ran them, where
    :func:`metadata_in_c`; their metadata is then set from its C rows, and
    ``entries`` are the set's other objects."""
    failures: List[ItemError] = []
    ntfs = _meta.is_ntfs3g(dest)
    in_c = not ntfs and sys.platform != "win32"
    if files is not None:
        if not in_c:
            raise ValueError(f"{dest}: a set's files' metadata is set from its rows only in C")
        pairs = files.pairs
        failures += [ItemError(i, pairs[i][0], OSError(err, os.strerror(err), pairs[i][0]))
                     for i, err in _meta.run_posix(files.meta_batch(acl, skip),
                                                   workers or default_workers(dest))
                     if err != errno.ENOENT]    # (not restored: no failure)
    file = Kind.FILE
    listed = [e for e in entries if e.meta and not e.failed]
    plain = [e for e in listed if e.kind is file]
    # (folders deepest first; files deepest first too where each is set in
    # Python: its order does not matter in C, where they run in parallel)
    folders = sorted((e for e in listed if e.kind is not file), key=_depth, reverse=True)
    if not in_c:
        plain.sort(key=_depth, reverse=True)
    todo = plain + folders
    targets = _targets(dest, [e.path for e in todo])
    if targets is None:
        targets = [_target(dest, e.path) for e in todo]
    left: Sequence[int] = range(len(todo))
    if in_c and plain:
        batch: Sequence[int] = ([k for k in range(len(plain)) if targets[k] not in skip] if skip
                                else range(len(plain)))
        errors, rest = _meta.apply_posix_many([targets[k] for k in batch],
                                              [todo[k].meta for k in batch], acl,
                                              workers or default_workers(dest))
        failures += [ItemError(batch[k], targets[batch[k]], exc) for k, exc in errors
                     if not isinstance(exc, FileNotFoundError)]  # (not restored: no failure)
        left = [batch[k] for k in rest] + list(range(len(plain), len(todo)))
    for k in left:
        if targets[k] not in skip:
            failures += _apply_one(k, targets[k], todo[k], acl, ntfs)
    return failures


def _depth(e: Entry) -> int:
    return e.path.count("/")


def _apply_one(i: int, target: str, e: Entry, acl: bool, ntfs: bool) -> List[ItemError]:
    try:        # (no lexists first: on FUSE each check is two round trips)
        _meta.apply(target, e.meta, acl=acl, target_ntfs3g=ntfs)
    except FileNotFoundError:
        pass                # not restored (a plain folder with nothing restored below)
    except OSError as exc:
        if exc.filename is None:
            exc.filename = target
        return [ItemError(i, target, exc)]
    return []


def _failed_entries(entries: Iterable[Entry], dest: str) -> List[ItemError]:
    return [ItemError(0, _target(dest, e.path),
                      EfsError(ERROR_FILE_NOT_FOUND, f"not in the set: its backup failed "
                               f"({e.failed})")) for e in entries if e.failed]


def _finish(bulk: BulkResult, extra: List[ItemError]) -> BulkResult:
    for e in extra:
        bulk.failures.append(ItemError(len(bulk.results), e.dest, e.error))
        bulk.results.append(None)
    return bulk


def unchecked(e: Entry, target: str) -> Optional[ItemError]:
    """The failed item of an object whose manifest line gives no size and
    SHA-256 to check it against (it is not restored); None where it does."""
    if e.raw_size is None or e.sha256 is None:
        return ItemError(0, target, EfsError(
            ERROR_INVALID_DATA, f"{e.stored_name}: its manifest line gives no size and "
            "SHA-256 to check it against: not restored"))
    return None


def checkable(entries: Iterable[Entry], dest_dir: str,
              unusable: List[ItemError]) -> Iterator[Tuple[Entry, str]]:
    """(entry, target) of each object with a raw stream that its manifest
    line lets a restore check; a line that gives nothing to check against
    goes to ``unusable`` as a failed item instead (see :func:`unchecked`)."""
    streams, targets = _checkable(entries, dest_dir, unusable)
    return zip(streams, targets)


def _checkable(entries: Iterable[Entry], dest_dir: str,
               unusable: List[ItemError]) -> Tuple[List[Entry], List[str]]:
    """:func:`checkable` as two lists, made without a Python call per object
    in the common case (the calling thread of a set's restore)."""
    plain = Kind.PLAIN_DIRECTORY
    streams = [e for e in entries if e.kind is not plain and not e.failed]
    targets = _targets(dest_dir, [e.path for e in streams])
    if targets is None:
        targets = [_target(dest_dir, e.path) for e in streams]
    if any(e.raw_size is None or e.sha256 is None for e in streams):
        keep = []
        for k, e in enumerate(streams):
            bad = unchecked(e, targets[k])
            if bad is None:
                keep.append(k)
            else:
                unusable.append(bad)
        streams, targets = [streams[k] for k in keep], [targets[k] for k in keep]
    return streams, targets


def checked_jobs(entries: Iterable[Entry], folders: Dict[str, str], own_id: str,
                 dest_dir: str) -> Tuple[tree.Jobs, tree.Jobs, List[ItemError]]:
    """Restore jobs for the set objects ``entries`` (those with a raw stream),
    each checked against its manifest line's size and SHA-256 as it is read
    (restore_many's ``expect``): (directory jobs in creation order, file
    jobs, failed items for lines that give nothing to check against).
    ``folders``: the folder of each set by id (``own_id``: the set itself)."""
    unusable: List[ItemError] = []
    streams, targets = _checkable(entries, dest_dir, unusable)
    if _WINDOWS_PATHS:
        sources = [_below(folders[e.ref or own_id], e.stored_name) for e in streams]
    elif all(e.ref is None for e in streams):
        # (each set's folder as _below puts it before a path: one
        # concatenation per object; the stored name is the path plus a suffix)
        base = _base(folders[own_id])
        sources = [base + e.path + SUFFIX for e in streams]
    else:
        bases = {k: _base(v) for k, v in folders.items()}
        sources = [bases[e.ref or own_id] + e.path + SUFFIX for e in streams]
    folder = Kind.DIRECTORY
    files: tree.Jobs = [(t, s, {"expect": (e.raw_size, e.sha256)})
                        for e, t, s in zip(streams, targets, sources) if e.kind is not folder]
    if len(files) == len(streams):
        return [], files, unusable
    dirs: tree.Jobs = [(t, s, {"directory": True, "expect": (e.raw_size, e.sha256)})
                       for e, t, s in zip(streams, targets, sources) if e.kind is folder]
    dirs.sort(key=lambda j: j[0].count(os.sep))
    return dirs, files, unusable


def restore_set(set_dir: tree.PathArg, dest_dir: tree.PathArg, *, workers: Optional[int] = None,
                overwrite: bool = False,
                skip_existing: bool = False, metadata: bool = True, acl: bool = True,
                sets: Sequence[str] = (),
                progress: Optional[Callable[[int, int, int], None]] = None,
                cancel: Optional[CancelToken] = None, backend: Optional[Backend] = None,
                partial: bool = False) -> SetResult:
    """Restore the folder set ``set_dir`` (which has a manifest) into
    ``dest_dir``.  An incomplete set (its backup did not finish) is refused
    (:class:`RefusedError`) unless ``partial``: then what it lists.  Every
    object, also those of the sets an incremental set refers to, is checked
    against its manifest line (size and SHA-256) as it is read; one that
    differs is a failed item naming both hashes, and nothing of it is left
    in ``dest_dir``."""
    set_dir, dest_dir = os.fspath(set_dir), os.fspath(dest_dir)
    m = read_set(set_dir, partial=partial)
    complete = m.complete
    folders = {m.header.set_id: set_dir} | locate_sets(m, sets, set_dir)
    table, prepared = m.table, set_files(m, set_dir, dest_dir)
    if table is not None and prepared is not None:
        # (from the manifest's C rows: no Entry, job or options per object)
        dirs = sorted(prepared.dirs, key=lambda j: j[0].count(os.sep))
        r = tree.restore_planned(dirs, prepared.pairs, dest_dir, workers=workers,
                                 overwrite=overwrite, skip_existing=skip_existing,
                                 progress=progress, cancel=cancel, backend=backend,
                                 prepared=prepared)
        entries: List[Entry] = table.foreign
        unusable: List[ItemError] = []
    else:
        dirs, files, unusable = checked_jobs(m.entries, folders, m.header.set_id, dest_dir)
        r = tree.restore_planned(dirs, files, dest_dir, workers=workers, overwrite=overwrite,
                                 skip_existing=skip_existing, progress=progress, cancel=cancel,
                                 backend=backend)
        entries = m.entries
    extra = _failed_entries(entries, dest_dir) + unusable
    if metadata:
        skip = {f.dest for f in r.bulk.failures} | {u.dest for u in unusable}
        if table is not None and prepared is not None and metadata_in_c(dest_dir):
            extra += apply_metadata(table.entries(Entry, Kind.FILE, Kind.DIRECTORY, files=False),
                                    dest_dir, acl=acl, skip=skip, workers=workers,
                                    files=prepared)
        else:
            extra += apply_metadata(m.entries, dest_dir, acl=acl, skip=skip, workers=workers)
    # every object restored here was checked: restored means verified
    return SetResult(_finish(r.bulk, extra), directories=r.directories, existing=r.existing,
                     unchanged=sum(1 for e in entries if e.ref), set_id=m.header.set_id,
                     manifest_sha256=m.sha256, jobs=r.jobs, complete=complete,
                     verified=r.bulk.files)


def set_files(m: Manifest, set_dir: str, dest_dir: str) -> Optional[SetFiles]:
    """The files of set ``m`` (in ``set_dir``) as restore jobs made from its
    manifest's C rows (:class:`~efsfast._core.SetFiles`), where they allow:
    every object with a raw stream has a row of its own (the lines json read
    are folders without one, or objects that failed), so none lies in
    another set; POSIX paths only.  None otherwise: the Entry path."""
    table = m.table
    if table is None or _WINDOWS_PATHS or any(e.has_stream for e in table.foreign):
        return None
    return table.set_files(_base(dest_dir), _base(set_dir), SUFFIX)
