"""verify-set: prove that a backup set on disk is the set that was
written.  The manifest's own hash holds, every object it lists is there
with its size and SHA-256, every raw stream validates (rules R1-R20), the
sets an incremental set refers to are there and list the same objects, and
nothing unlisted lies in the set."""
from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from .. import raw
from ..bulkjob import Progress as Progress  # (objects checked, bytes, objects to check)
from .._errors import EfsError
from ..treewalk import walk
from .manifest import (MANIFEST_NAME, PARTIAL_NAME, Entry, Manifest, ManifestError,
                       find_manifest, read_manifest)
from .restore import MissingSetsError, locate_sets

READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class Problem:
    path: str           # relative to the set
    message: str


@dataclass
class VerifyReport:
    set_dir: str
    set_id: Optional[str] = None
    complete: Optional[bool] = None     # None: no readable manifest
    objects: int = 0
    bytes: int = 0
    problems: List[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class _HashingReader:
    """Feeds the validator and the hash from one read of the file."""

    def __init__(self, f: raw.Readable) -> None:
        self.f = f
        self.digest = hashlib.sha256()
        self.count = 0

    def read(self, n: int) -> bytes:
        b = self.f.read(n)
        self.digest.update(b)
        self.count += len(b)
        return b


def check_object(path: str, e: Entry, mode: str) -> List[str]:
    """What is wrong with the stored raw stream of ``e`` (empty: nothing).
    An object that is there but cannot be read is a problem of its own,
    never "missing" and never the end of the whole check."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return ["missing from the set"]
        with open(path, "rb") as f:
            return check_stream(f, e, mode)
    except (FileNotFoundError, NotADirectoryError):
        return ["missing from the set"]
    except OSError as exc:
        return [f"cannot read it: {exc.strerror or exc}"]


def check_stream(f: raw.Readable, e: Entry, mode: str) -> List[str]:
    """The checks of :func:`check_object` on a binary file object: one read
    feeds the validator and the hash."""
    count, sha256, problems = measure_stream(f, mode)
    return _against(e, count, sha256, problems)


def check_buffer(data: Any, e: Entry, mode: str) -> List[str]:
    """The checks of :func:`check_object` on a bytes-like object (an object
    store's buffer), read in place: the validator and the hash each take
    the whole buffer in one call, without the GIL and without a copy."""
    view = memoryview(data)
    problems: List[str] = []
    try:
        raw.verify(view, mode=mode)
    except (OSError, ValueError) as exc:
        problems.append(f"the raw stream does not validate: {exc}")
    return _against(e, view.nbytes, hashlib.sha256(view).hexdigest(), problems)


def _against(e: Entry, count: int, sha256: str, problems: List[str]) -> List[str]:
    if count != e.raw_size:
        problems.append(f"{count} bytes, the manifest says {e.raw_size}")
    if sha256 != e.sha256:
        problems.append("SHA-256 differs from the manifest's")
    return problems


def measure_stream(f: raw.Readable, mode: str) -> Tuple[int, str, List[str]]:
    """(size, SHA-256, what does not validate) of the raw stream in the
    binary file object ``f``, from one read."""
    problems: List[str] = []
    reader = _HashingReader(f)
    try:
        raw.verify(reader, mode=mode)
    except (OSError, ValueError) as exc:
        if isinstance(exc, tarfile.ReadError):
            raise                            # the tar stream itself ended: not this object
        problems.append(f"the raw stream does not validate: {exc}")
    while reader.read(READ_CHUNK):           # a stream that stopped early: hash the rest
        pass
    return reader.count, reader.digest.hexdigest(), problems


Prove = Callable[[List[str]], List[Optional[str]]]


def verify_set(set_dir: Union[str, "os.PathLike[str]"], *, mode: str = "strict",
               sets: Sequence[str] = (),
               workers: Optional[int] = None, prove: Optional[Prove] = None,
               progress: Optional[Progress] = None) -> VerifyReport:
    """Check the folder set ``set_dir``; every problem is named in the
    report (``ok`` is False when there is any).  ``prove(paths)``, when
    given, returns per raw stream None (the user's keys decrypt it) or why
    not: the decryptability proof of ``verify --key``, run on
    every object that passed the other checks.  ``progress`` is called
    after each object's check, in order.  Ctrl-C stops it once the objects
    under way are checked (KeyboardInterrupt is raised then)."""
    set_dir = os.fspath(set_dir)
    report = VerifyReport(set_dir)
    where, complete = find_manifest(set_dir)
    try:
        if where is None:
            raise FileNotFoundError(os.path.join(set_dir, MANIFEST_NAME))
        m = read_manifest(where, partial=not complete)
    except FileNotFoundError:
        report.problems.append(Problem(MANIFEST_NAME, "no manifest: not a backup set, or its "
                                                      "backup did not finish"))
        return report
    except ManifestError as exc:
        assert where is not None            # (read_manifest raised it)
        report.problems.append(Problem(os.path.basename(where), str(exc)))
        return report
    except OSError as exc:
        report.problems.append(Problem(os.path.basename(where or MANIFEST_NAME),
                                       f"cannot read it: {exc.strerror or exc}"))
        return report
    report.set_id, report.complete = m.header.set_id, complete
    if not complete:        # what it lists is still checked below
        cause = (f": {m.reason}" if m.reason else
                 ": it stopped while publishing the set" if m.complete else "")
        report.problems.append(Problem(PARTIAL_NAME, f"incomplete: its backup did not finish"
                                       f"{cause}; it lists {len(m.entries)} objects (resume it "
                                       "with backup-tree --skip-existing)"))
    own = [e for e in m.entries if e.has_stream and not e.ref]
    for e in m.entries:
        if e.failed:
            report.problems.append(Problem(e.path, f"its backup failed: {e.failed}"))
    _check_refs(m, sets, report)

    def one(e: Entry) -> List[Problem]:
        p = os.path.join(set_dir, *e.stored_name.split("/"))
        return [Problem(e.stored_name, msg) for msg in check_object(p, e, mode)]
    good: List[Entry] = []
    checked = checked_bytes = 0
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        futures = [pool.submit(one, e) for e in own]
        try:
            for e, future in zip(own, futures):
                found = future.result()
                report.problems.extend(found)
                if not found:
                    good.append(e)
                checked += 1
                checked_bytes += e.raw_size or 0
                if progress is not None:
                    progress(checked, checked_bytes, len(own))
        except BaseException:       # Ctrl-C: the objects not yet started stay so
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    if prove is not None and good:
        paths = [os.path.join(set_dir, *e.stored_name.split("/")) for e in good]
        why_not = prove(paths)
        for e, why in zip(good, why_not):
            if why is not None:
                report.problems.append(Problem(e.stored_name, "not decryptable with the given "
                                                              f"key(s): {why}"))
        good = [e for e, why in zip(good, why_not) if why is None]
    report.objects = len(good)
    report.bytes = sum(e.raw_size or 0 for e in good)     # (good: its size matched)
    listed = {e.stored_name for e in own} | {MANIFEST_NAME, PARTIAL_NAME}
    unlistable: List[Tuple[str, EfsError]] = []
    for folder in walk(set_dir, unlistable):
        for f in folder.files + folder.others:
            rel = os.path.relpath(os.path.join(folder.path, f), set_dir).replace(os.sep, "/")
            if rel not in listed:
                report.problems.append(Problem(rel, "in the set but not in its manifest"))
    for path, error in unlistable:      # what it holds could not be checked
        rel = os.path.relpath(path, set_dir).replace(os.sep, "/")
        report.problems.append(Problem(rel, error.strerror or str(error)))
    return report


def _check_refs(m: Manifest, sets: Sequence[str], report: VerifyReport) -> None:
    """Unchanged objects of an incremental set: their sets are there and
    list them with the same hash (those sets' data is checked by running
    verify-set on them)."""
    if not m.header.refs:
        return
    try:
        folders = locate_sets(m, sets)
    except MissingSetsError as exc:
        report.problems.append(Problem(MANIFEST_NAME, exc.strerror or str(exc)))
        return
    listed = {sid: read_manifest(os.path.join(folder, MANIFEST_NAME)).by_path()
              for sid, folder in folders.items()}
    compare_refs(m, listed, report)


def compare_refs(m: Manifest, listed: Dict[str, Dict[str, Entry]],
                 report: VerifyReport) -> None:
    """Every unchanged object of the incremental set ``m`` is listed, with
    the same SHA-256, by the set it refers to (``listed``: per set id, its
    entries by path)."""
    for e in m.entries:
        if e.ref and not e.failed:
            there = listed.get(e.ref, {}).get(e.path)
            if there is None or there.sha256 != e.sha256 or there.ref:
                report.problems.append(Problem(e.path, f"set {e.ref} does not hold it with "
                                                       "the same SHA-256"))
