"""restore-tree and verify-set of a set in an object store
(``s3://BUCKET/PREFIX``, efsfast.store): the folder set's rules, with
objects fetched instead of files opened.

Restores fetch objects in batches of at most half the store's memory
limit (and BATCH_OBJECTS objects), the next batch fetched while the one
before is restored, and hand
the library's buffers straight to the C import path (``restore_many``
with bytes-like sources: no copy in Python); each object is checked against
its manifest line (size and SHA-256) as it passes, as a folder set's is.
An object larger than a batch is read as a stream of ranged GETs.
"""
from __future__ import annotations

import concurrent.futures
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from .. import tree
from .._core import CancelToken
from .._errors import EfsError, RefusedError
from ..api import BulkResult, ItemError
from ..store import Store, StoreError, is_s3_url, open_store
from .manifest import (ERROR_INCOMPLETE_SET, MANIFEST_NAME, PARTIAL_NAME, Entry, Kind,
                       Manifest, ManifestError, find_manifest, read_manifest)
from .restore import (MissingSetsError, apply_metadata, checkable, incomplete_set,
                      refuse_missing, take_if_referred, target_path)
from .result import SetResult
from .s3sink import read_store_manifest, refused
from .storeverify import Prover, check_objects
from .verify import Problem, Progress, VerifyReport, compare_refs

ERROR_FILE_NOT_FOUND = 2
# objects a batch holds at most, whatever their size: a set of small objects
# within the memory limit is still several batches, so that restoring one
# overlaps fetching the next (one batch would be fetched whole, then restored)
BATCH_OBJECTS = 256
# where a set's objects are: a store, or (an incremental's earlier set) a folder
Place = Union[Store, str]


def read_store_set(store: Store, *, partial: bool = False, command: str = "restore-tree",
                   done: str = "restored") -> Manifest:
    """The manifest of the set in ``store``: refused (exit 2) where the
    store cannot be used, where there is no set, and for an incomplete set
    unless ``partial``."""
    try:
        store.check(write=False)
        keys = {o.key for o in store.list()}
    except StoreError as exc:
        raise refused_read(exc, done) from None
    complete = MANIFEST_NAME in keys
    if not complete and PARTIAL_NAME not in keys:
        raise RefusedError(ERROR_FILE_NOT_FOUND, f"no backup set there (no {MANIFEST_NAME}); "
                           f"nothing was {done}", store.url)
    try:
        m = read_store_manifest(store, MANIFEST_NAME if complete else PARTIAL_NAME,
                                partial=not complete)
    except StoreError as exc:
        raise refused_read(exc, done) from None
    except ManifestError as exc:
        if complete:
            raise
        raise RefusedError(ERROR_INCOMPLETE_SET, "an incomplete backup set whose partial "
                           f"manifest cannot be read ({exc}); nothing was {done}",
                           store.url) from None
    if not complete and not partial:
        raise incomplete_set(store.url, m, command, done)
    m.complete = m.complete and complete
    return m


def read_store_set_at(url: str, *, command: str, done: str) -> Manifest:
    """The manifest of the complete set at ``url`` (an incomplete one is
    refused, naming ``command``)."""
    try:
        store = open_store(url)
    except StoreError as exc:
        raise refused(exc) from None
    with store:
        m = read_store_set(store, partial=True, command=command, done=done)
    if not m.complete:
        raise RefusedError(ERROR_INCOMPLETE_SET, "an incomplete set (its backup did not "
                           "finish) cannot be the base of an incremental one: resume it "
                           "with backup-tree --skip-existing first", url)
    return m


def refused_read(exc: StoreError, done: str) -> RefusedError:
    return RefusedError(exc.winerror, f"{exc.strerror}; nothing was {done}", exc.filename,
                        exc.errno)


def locate_places(m: Manifest, extra: Sequence[str], own: Store,
                  **store_options: Any) -> Dict[str, Place]:
    """Where every set ``m`` refers to is, by set id: the sets named in
    ``extra`` (URLs or folders), then each reference's recorded path; a set
    counts only where its id and manifest hash match the reference."""
    wanted = {r["set_id"]: r for r in m.header.refs}
    found: Dict[str, Place] = {}
    for name in list(extra) + [r.get("path") or "" for r in m.header.refs]:
        if not name or len(found) == len(wanted):
            continue
        place: Place
        try:
            if is_s3_url(name):
                place = open_store(name, **store_options)
                other = read_store_manifest(place, MANIFEST_NAME)
            else:
                where, complete = find_manifest(name)
                if not complete or where is None:
                    continue
                place, other = name, read_manifest(where)
        except (StoreError, ValueError, OSError):
            continue
        take_if_referred(wanted, found, other, place)
    refuse_missing(m, found, own.url)
    return found


def _url(place: Place, key: str) -> str:
    return place.object_url(key) if isinstance(place, Store) else \
        os.path.join(place, *key.split("/"))


class _Job:
    __slots__ = ("target", "entry", "place", "index", "there")

    def __init__(self, target: str, entry: Entry, place: Place, index: int):
        self.target, self.entry, self.place, self.index = target, entry, place, index
        self.there = False      # --skip-existing: a file already at its target

    @property
    def size(self) -> int:
        return 0 if self.there else self.entry.raw_size or 0


def _batches(jobs: List[_Job], limit: int) -> List[List[_Job]]:
    """At most ``limit`` bytes and BATCH_OBJECTS objects a batch."""
    out: List[List[_Job]] = []
    size = 0
    for j in jobs:
        if not out or (out[-1] and (size + j.size > limit or len(out[-1]) >= BATCH_OBJECTS)):
            out.append([])
            size = 0
        out[-1].append(j)
        size += j.size
    return out


def _fetch(batch: List[_Job], limit: int) -> List[Any]:
    """Start fetching a batch: per job a future of its bytes, the generator
    of its chunks (an object larger than ``limit``), or its folder path."""
    out: List[Any] = []
    for j in batch:
        key = j.entry.stored_name
        if j.there:         # skipped by the restore, unread: not fetched either
            out.append(_NotFetched(j.target))
        elif not isinstance(j.place, Store):
            out.append(_url(j.place, key))
        elif j.size > limit:
            out.append(j.place.read_chunks(key))
        else:
            submit = getattr(j.place, "submit_read", None)
            out.append(submit(key) if submit else j.place.read(key))
    return out


def _close(fetched: List[Any]) -> None:
    """End the chunk streams of a restored batch: one its restore stopped
    reading (the target failed) gives its memory back now, not when it is
    collected; a later stream would wait for that memory, maybe forever."""
    for got in fetched:
        close = getattr(got, "close", None)     # (only the chunk streams have one)
        if close is not None:
            try:
                close()
            except ValueError:      # still read by a thread the interrupt left
                pass


class _NotFetched:
    """The source of a file that was at its target when the restore began
    (--skip-existing skips it); should it have gone since, its restore
    fails, named, rather than write what was never fetched."""

    def __init__(self, target: str):
        self.target = target

    def read(self, n: int = -1) -> bytes:
        raise EfsError(ERROR_FILE_NOT_FOUND, "not fetched: it was already there as the "
                       "restore began (--skip-existing), and has gone since", self.target)


def restore_store_set(url: str, dest_dir: str, *, workers: Optional[int] = None,
                      overwrite: bool = False, skip_existing: bool = False,
                      metadata: bool = True, acl: bool = True, sets: Sequence[str] = (),
                      progress: Optional[Callable[[int, int, int], None]] = None,
                      cancel: Optional[CancelToken] = None, backend: Any = None,
                      partial: bool = False, **store_options: Any) -> SetResult:
    """Restore the set at ``url`` (an object store) into ``dest_dir``, every
    object checked against its manifest line as it passes."""
    dest_dir = os.fspath(dest_dir)
    try:
        store = open_store(url, **store_options)
    except StoreError as exc:
        raise refused(exc) from None
    with store:
        m = read_store_set(store, partial=partial)
        places: Dict[str, Place] = {m.header.set_id: store}
        places.update(locate_places(m, sets, store, **store_options))
        jobs: List[_Job] = []
        unusable: List[ItemError] = []
        for e, target in checkable(m.entries, dest_dir, unusable):
            jobs.append(_Job(target, e, places[e.ref or m.header.set_id], len(jobs)))
        dirs = sorted((j for j in jobs if j.entry.kind is Kind.DIRECTORY),
                      key=lambda j: j.target.count(os.sep))
        files = [j for j in jobs if j.entry.kind is not Kind.DIRECTORY]
        if skip_existing:   # no GET for what the restore will skip
            for j in files:
                j.there = os.path.lexists(j.target)
        budget = getattr(store, "budget", None)
        limit = max((budget.limit if budget else 256 << 20) // 2, 1)
        try:
            bulk, existing, done = _run(dirs, files, limit, dest_dir, workers=workers,
                                        overwrite=overwrite, skip_existing=skip_existing,
                                        progress=progress, cancel=cancel, backend=backend)
        finally:
            for place in places.values():
                if isinstance(place, Store) and place is not store:
                    place.close()
    extra = [ItemError(0, target_path(dest_dir, e.path), EfsError(
        ERROR_FILE_NOT_FOUND, f"not in the set: its backup failed ({e.failed})"))
        for e in m.entries if e.failed] + unusable
    failed = {f.dest for f in bulk.failures}
    if metadata:
        extra += apply_metadata(m.entries, dest_dir, acl=acl,
                                skip=failed | {u.dest for u in unusable})
    ordered = dirs + files
    for item in extra:
        bulk.failures.append(ItemError(len(bulk.results), item.dest, item.error))
        bulk.results.append(None)
    return SetResult(bulk, directories=len(dirs), existing=existing,
                     unchanged=sum(1 for e in m.entries if e.ref), set_id=m.header.set_id,
                     manifest_sha256=m.sha256, complete=m.complete, verified=done,
                     jobs=[(j.target, _url(j.place, j.entry.stored_name)) for j in ordered])


def _run(dirs: List[_Job], files: List[_Job], limit: int, dest_dir: str, *,
         progress: Optional[Callable[[int, int, int], None]], cancel: Optional[CancelToken],
         **opts: Any) -> Tuple[BulkResult, List[str], int]:
    """Fetch and restore batch after batch (folders first, then files), the
    next batch's requests running while one is restored.  (result in the
    order dirs + files, what was already there, objects restored)."""
    total = len(dirs) + len(files)
    out = BulkResult(results=[])
    existing: List[str] = []
    counts = [0, 0]

    def step(f: int, b: int, _t: int) -> None:
        if progress is not None:
            progress(counts[0] + f, counts[1] + b, total)
    batches = _batches(dirs, limit) + _batches(files, limit)
    fetching = _fetch(batches[0], limit) if batches else []
    try:
        for n, batch in enumerate(batches):
            fetched = fetching
            if cancel is not None and cancel.cancelled:
                break
            fetching = _fetch(batches[n + 1], limit) if n + 1 < len(batches) else []
            try:
                part, ex = _restore_batch(batch, fetched, dest_dir, step, cancel, **opts)
            finally:
                _close(fetched)
            existing += ex
            _append(out, part)
            counts[0] += part.files
            counts[1] += part.bytes
    except BaseException as exc:
        got = getattr(exc, "result", None)
        if got is not None:
            _append(out, got)
        setattr(exc, "tree", SetResult(out, existing=existing, complete=False))
        raise
    out.cancelled = bool(cancel is not None and cancel.cancelled)
    return out, existing, out.files


def _restore_batch(batch: List[_Job], fetched: List[Any], dest_dir: str,
                   step: Callable[[int, int, int], None], cancel: Optional[CancelToken],
                   **opts: Any) -> Tuple[BulkResult, List[str]]:
    """One batch: objects whose fetch failed are failed items (named by the
    store's error); the rest go to restore_planned with their buffers."""
    ready: List[Tuple[int, Tuple[Any, ...]]] = []
    failed: List[ItemError] = []
    for i, (j, got) in enumerate(zip(batch, fetched)):
        if isinstance(got, concurrent.futures.Future):
            try:
                got = got.result()
            except StoreError as exc:
                failed.append(ItemError(i, j.target, exc))
                continue
        o: Dict[str, Any] = {"expect": (j.entry.raw_size, j.entry.sha256)}
        if j.entry.kind is Kind.DIRECTORY:
            o["directory"] = True
        ready.append((i, (j.target, got, o)))
    dirs = [job for _i, job in ready if job[2].get("directory")]
    files = [job for _i, job in ready if not job[2].get("directory")]
    r = tree.restore_planned(dirs, files, dest_dir, progress=step, cancel=cancel, **opts)
    # back into the batch's order: planned results are dirs then files
    where = [i for i, job in ready if job[2].get("directory")] + \
        [i for i, job in ready if not job[2].get("directory")]
    part = BulkResult(results=[None] * len(batch), bytes=r.bulk.bytes, files=r.bulk.files,
                      cancelled=r.bulk.cancelled)
    for k, res in enumerate(r.bulk.results):
        part.results[where[k]] = res
    part.failures = [ItemError(where[f.index], f.dest, f.error) for f in r.bulk.failures]
    part.failures += failed
    part.failures.sort(key=lambda f: f.index)
    return part, r.existing


def _append(out: BulkResult, part: BulkResult) -> None:
    offset = len(out.results)
    out.results.extend(part.results)
    out.failures.extend(ItemError(f.index + offset, f.dest, f.error) for f in part.failures)
    out.bytes += part.bytes
    out.files += part.files
    out.cancelled = out.cancelled or part.cancelled


# ---- verify-set


def verify_store_set(url: str, *, mode: str = "strict", sets: Sequence[str] = (),
                     prove: Optional[Prover] = None, workers: Optional[int] = None,
                     progress: Optional[Progress] = None,
                     **store_options: Any) -> VerifyReport:
    """verify-set of the set at ``url``: the folder set's checks (manifest
    whole, every object there with its size and SHA-256 and valid, nothing
    unlisted, an incremental's sets there) on fetched objects, ``workers``
    threads checking them (default: one per CPU).  ``prove(object)``, when
    given (efsfast.crypto.prover), returns per object None (the user's keys
    decrypt it) or why not: the decryptability proof of ``verify --key``,
    run on every object that passed the other checks, on the bytes fetched
    for them.  ``progress(objects, bytes, total)`` after each object checked."""
    report = VerifyReport(url)
    try:
        store = open_store(url, **store_options)
    except StoreError as exc:
        raise refused(exc) from None
    with store:
        try:
            store.check(write=False)
            listing = {o.key: o.size for o in store.list()}
        except StoreError as exc:
            raise refused_read(exc, "verified") from None
        complete = MANIFEST_NAME in listing
        if not complete and PARTIAL_NAME not in listing:
            report.problems.append(Problem(MANIFEST_NAME, "no manifest: not a backup set, or "
                                                          "its backup did not finish"))
            return report
        name = MANIFEST_NAME if complete else PARTIAL_NAME
        try:
            m = read_store_manifest(store, name, partial=not complete)
        except ManifestError as exc:
            report.problems.append(Problem(name, str(exc)))
            return report
        except StoreError as exc:
            report.problems.append(Problem(name, f"cannot read it: {exc.strerror}"))
            return report
        report.set_id, report.complete = m.header.set_id, complete
        if not complete:
            why = f": {m.reason}" if m.reason else ""
            report.problems.append(Problem(PARTIAL_NAME, f"incomplete: its backup did not "
                                           f"finish{why}; it lists {len(m.entries)} objects "
                                           "(resume it with backup-tree --skip-existing)"))
        for e in m.entries:
            if e.failed:
                report.problems.append(Problem(e.path, f"its backup failed: {e.failed}"))
        own = [e for e in m.entries if e.has_stream and not e.ref]
        _check_store_refs(m, sets, store, report, store_options)
        checked = check_objects(store, own, listing, mode, prove=prove, workers=workers,
                                progress=progress)
        for e, found in zip(own, checked):
            report.problems.extend(Problem(e.stored_name, msg) for msg in found)
            if not found:
                report.objects += 1
                report.bytes += e.raw_size or 0
        listed = {e.stored_name for e in own} | {MANIFEST_NAME, PARTIAL_NAME}
        for key in sorted(set(listing) - listed):
            report.problems.append(Problem(key, "in the set but not in its manifest"))
    return report


def _check_store_refs(m: Manifest, sets: Sequence[str], store: Store, report: VerifyReport,
                      store_options: Dict[str, Any]) -> None:
    if not m.header.refs:
        return
    try:
        places = locate_places(m, sets, store, **store_options)
    except MissingSetsError as exc:
        report.problems.append(Problem(MANIFEST_NAME, exc.strerror or str(exc)))
        return
    listed = {}
    for sid, place in places.items():
        other = (read_store_manifest(place, MANIFEST_NAME) if isinstance(place, Store)
                 else read_manifest(os.path.join(place, MANIFEST_NAME)))
        listed[sid] = other.by_path()
    compare_refs(m, listed, report)
