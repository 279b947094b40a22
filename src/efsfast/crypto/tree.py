"""Decrypt a whole tree into a plaintext tree.  Three kinds of source:

- a backup set (a folder with ``efsfast-manifest.jsonl``): planned from its
  manifest, like restore-tree, and every object checked against the size
  and SHA-256 its manifest lists as it is decrypted (nothing of an object
  that does not match is left at the destination);
- an incomplete set (the partial manifest of a backup that did not finish):
  refused unless ``partial=True``, then what it lists is decrypted and
  checked;
- a folder of ``.efsraw`` files (backup-tree's objects without a manifest)
  or a folder on an ntfs-3g ``efs_raw`` mount holding encrypted files:
  walked; a folder that cannot be listed or a file that cannot be examined
  is a failed item, and the job goes on.

Folders become folders; files run in parallel (the sector loop runs without
the GIL); every item is done, failed (named, with the cause) or skipped
(said why)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, Union

from .._errors import EfsError
from ..bulkjob import ItemError
from ..bulkjob import run_many as _run_many
from ..backupset.result import SetResult
from ..tree import sync_restored
from ..treewalk import problem, walk
from ..volume import EncryptionProbe, default_workers
from . import forked
from .decrypt import DecryptResult, decrypt
from .expect import Cancel, Expected
from .keys import KeysArg, Password, as_keys

if TYPE_CHECKING:
    from .._core import CancelToken
    from ..api import PathLike
    from ..backupset.manifest import Manifest

SUFFIX = ".efsraw"
COMMAND, DONE = "decrypt-tree", "decrypted"     # as refusals name them
ERROR_FILE_NOT_FOUND = 2
_WINDOWS_PATHS = os.sep == "\\"     # (backupset.restore's rule: a set's "/" paths become "\\")
Jobs = List[Tuple[Any, ...]]            # (plaintext dest, raw stream or object, options)
Errors = List[Tuple[str, EfsError]]     # (path, error) of what could not be listed or read


@dataclass
class Plan:
    """What a decrypt-tree job will do, found before anything is written."""
    folders: List[str]          # to create (besides the parents of the jobs' files)
    jobs: Jobs = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)     # not encrypted, links, ...
    failed: List[ItemError] = field(default_factory=list)  # known failed before any work
    set_id: str = ""                    # a set's, planned from its manifest
    complete: bool = True               # False: an incomplete set's (partial=True)
    unchecked: bool = False             # raw streams with no manifest to check them against
    # the folders the jobs' files go into, where the plan knows them (None:
    # found from the jobs), and how many jobs are encrypted folders
    parents: Optional[List[str]] = None
    folder_jobs: int = 0


def is_folder_stream(path: str) -> bool:
    """A raw stream with no unnamed data stream is a folder's (found from
    the headers alone; one that does not walk is left to the decryption
    to report)."""
    from .. import raw      # (a folder of raw streams only: a set's plan needs no raw.py)
    try:
        return raw.has_unnamed_stream(path) is False
    except OSError:
        return False


# ---- a folder of raw streams, or an efs_raw tree: walked

def plan_tree(src_dir: str, dest_dir: str, cancel: Optional[CancelToken] = None) -> Plan:
    """The walk of ``src_dir``: what cannot be listed or examined is a
    failed item (by the path that could not be read), never skipped."""
    errors: Errors = []
    plan = Plan([])
    probe = EncryptionProbe()
    for folder in walk(src_dir, errors, cancel):
        rel = os.path.relpath(folder.path, src_dir)
        out = dest_dir if rel == "." else os.path.join(dest_dir, rel)
        if rel != ".":
            plan.folders.append(out)        # (only a folder that could be listed)
        for f in folder.files:
            p = os.path.join(folder.path, f)
            try:
                encrypted = probe(p)
            except OSError as exc:
                if not f.endswith(SUFFIX):
                    errors.append((p, problem(p, "cannot tell whether it is encrypted", exc)))
                    continue
                encrypted = False   # a raw stream that cannot be read: decrypting it says why
            if encrypted:
                plan.jobs.append((os.path.join(out, f), p, {"object": True}))
            elif not f.endswith(SUFFIX):
                plan.skipped.append(p)
            elif is_folder_stream(p):
                plan.folders.append(os.path.join(out, f[:-len(SUFFIX)]))
            else:
                plan.jobs.append((os.path.join(out, f[:-len(SUFFIX)]), p, {"object": False}))
                plan.unchecked = True
        plan.skipped += [os.path.join(folder.path, o) for o in folder.others]
    plan.failed = _unreadable(errors)
    return plan


def _unreadable(errors: Errors) -> List[ItemError]:
    """One failed item per path, first error kept."""
    seen: Set[str] = set()
    out: List[ItemError] = []
    for path, exc in errors:
        if path not in seen:
            seen.add(path)
            out.append(ItemError(-1, path, exc))
    return out


# ---- a backup set: planned from its manifest, every object checked

def check_complete(src_dir: str, partial: bool = False) -> None:
    """Raise RefusedError for a set whose backup did not finish, unless
    ``partial`` (before any work: the command line asks for no password
    then).  A complete set's manifest is not read here."""
    from ..backupset.manifest import find_manifest
    from ..backupset.restore import read_set
    where, complete = find_manifest(src_dir)
    if where is not None and not complete and not partial:
        read_set(src_dir, command=COMMAND, done=DONE)


def open_set(src_dir: str, partial: bool = False) -> Optional[Manifest]:
    """The manifest of the set in ``src_dir`` (its ``complete`` False for
    an incomplete one read with ``partial``), or None where it is no set (a
    folder of raw streams, an efs_raw tree).  Raises RefusedError for an
    incomplete set without ``partial``."""
    from ..backupset.manifest import find_manifest
    from ..backupset.restore import read_set
    if find_manifest(src_dir)[0] is None:
        return None
    return read_set(src_dir, partial=partial, command=COMMAND, done=DONE)


def plan_set(set_dir: str, dest_dir: str, m: Manifest, sets: Sequence[str] = ()) -> Plan:
    """Jobs from the manifest ``m`` of the set in ``set_dir`` (the objects
    of an incremental set's earlier sets from those sets, found as
    restore-tree finds them), each with the size and SHA-256 to check
    (its option "expect": (raw size, SHA-256), as restore-tree's jobs have
    it; the worker makes the Expected)."""
    from ..backupset.restore import locate_sets
    folders = {m.header.set_id: set_dir} | (locate_sets(m, sets, set_dir) if m.header.refs else {})
    plan = Plan([], set_id=m.header.set_id, complete=m.complete)
    if _plan_rows(plan, m, set_dir, dest_dir):
        return plan
    if _WINDOWS_PATHS or not _plan_checked(plan, m, dest_dir, folders):
        plan = Plan([], set_id=m.header.set_id, complete=m.complete)
        _plan_each(plan, m, dest_dir, folders)
    return plan


def _plan_rows(plan: Plan, m: Manifest, set_dir: str, dest_dir: str) -> bool:
    """:func:`plan_set`'s work from the manifest's C rows, as restore-tree
    makes its jobs (backupset.restore.set_files: no Entry per object), the
    encrypted folders' jobs first.  False, having planned nothing, where
    the rows cannot stand for the set (see set_files)."""
    from ..backupset.restore import set_files, target_path
    from ..treewalk import parent_folders
    table, files = m.table, set_files(m, set_dir, dest_dir)
    if table is None or files is None:
        return False
    for e in table.foreign:                 # (no stream: a plain folder, or a failed object)
        target = target_path(dest_dir, e.path)
        if e.failed:
            plan.failed.append(_not_in_set(target, e.failed))
        else:
            plan.folders.append(target)
    dirs = [(t, s, {**opts, "object": False}) for t, s, opts in files.dirs]
    plan.jobs = dirs + files.jobs({"object": False})
    plan.folder_jobs = len(dirs)
    plan.parents = sorted(parent_folders(plan.jobs, 0))
    return True


def _plan_checked(plan: Plan, m: Manifest, dest_dir: str, folders: Dict[str, str]) -> bool:
    """:func:`plan_set`'s work as restore-tree plans a set (POSIX): every
    object path checked in one search (backupset.restore.checkable), each
    source one concatenation, each job's folder once (this runs in the
    calling thread, the serial part of the job: per object ~2 us less than
    :func:`_plan_each`).  False, having planned nothing that counts, where
    some line would be a failed item or a path would leave ``dest_dir``:
    :func:`_plan_each` then plans (and names them) in manifest order."""
    from ..backupset.manifest import SUFFIX as STORED, Kind
    from ..backupset.restore import checkable, target_path
    unusable: List[ItemError] = []
    try:
        checked = list(checkable(m.entries, dest_dir, unusable))
        others = [(e, target_path(dest_dir, e.path)) for e in m.entries if not e.has_stream]
    except EfsError:
        return False
    if unusable:
        return False
    for e, target in others:
        if e.failed:
            plan.failed.append(_not_in_set(target, e.failed))
        else:                               # (a plain folder)
            plan.folders.append(target)
    bases = {k: v if not v or v.endswith("/") else v + "/" for k, v in folders.items()}
    own, folder_kind = m.header.set_id, Kind.DIRECTORY
    parents: Set[str] = set()
    jobs = plan.jobs
    for e, target in checked:
        opts: Dict[str, Any] = {"expect": (e.raw_size, e.sha256), "object": False}
        if e.kind is folder_kind:
            opts["directory"] = True
            plan.folder_jobs += 1
        jobs.append((target, bases[e.ref or own] + e.path + STORED, opts))
        parents.add(e.path.rpartition("/")[0])
    plan.parents = sorted(target_path(dest_dir, p) if p else dest_dir for p in parents)
    return True


def _not_in_set(target: str, why: str) -> ItemError:
    return ItemError(-1, target, EfsError(ERROR_FILE_NOT_FOUND,
                                          f"not in the set: its backup failed ({why})"))


def _plan_each(plan: Plan, m: Manifest, dest_dir: str, folders: Dict[str, str]) -> None:
    """:func:`plan_set`'s work line by line (Windows paths, failed items)."""
    from ..backupset.manifest import Kind
    from ..backupset.restore import target_path, unchecked
    for e in m.entries:
        target = target_path(dest_dir, e.path)
        if e.failed:
            plan.failed.append(_not_in_set(target, e.failed))
        elif e.kind is Kind.PLAIN_DIRECTORY:
            plan.folders.append(target)
        else:
            bad = unchecked(e, target)      # nothing to check it against: named as
            if bad is not None:             # restore-tree names it
                plan.failed.append(bad)
                continue
            assert e.raw_size is not None and e.sha256 is not None     # (unchecked said so)
            source = os.path.join(folders[e.ref or m.header.set_id], *e.stored_name.split("/"))
            opts: Dict[str, Any] = {"expect": (e.raw_size, e.sha256), "object": False}
            if e.kind is Kind.DIRECTORY:
                opts["directory"] = True
                plan.folder_jobs += 1
            plan.jobs.append((target, source, opts))


@dataclass
class _FolderDone:
    """The result of an encrypted folder's object: checked, folder made."""
    path: str
    bytes: int = 0


def _folder(dest: str, source: str, expect: Expected) -> _FolderDone:
    """An encrypted folder of a set: its raw stream checked (it is small:
    the $EFS and any named streams) and the folder made.  As for a folder
    of raw streams, its named streams are not written."""
    from .decrypt import naming_errors
    from .expect import Tally
    tally = Tally(expect)
    with naming_errors(source) as filename:
        with open(source, "rb") as f:
            while chunk := f.read(1 << 20):
                tally.update(chunk)
    tally.check(filename)
    os.makedirs(dest, exist_ok=True)
    return _FolderDone(dest)


# ---- the job

def plan(src_dir: str, dest_dir: str, *, partial: bool = False, sets: Sequence[str] = (),
         cancel: Optional[CancelToken] = None) -> Plan:
    """The plan for ``src_dir`` whatever it holds (see the module doc)."""
    m = open_set(src_dir, partial)
    if m is None:
        return plan_tree(src_dir, dest_dir, cancel)
    return plan_set(src_dir, dest_dir, m, sets)


def _make_folders(folders: Sequence[str]) -> None:
    for d in folders:
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as exc:          # the destination cannot be written: the job fails
            raise problem(d, "cannot create the folder", exc) from None


@dataclass
class DecryptTreeResult(SetResult):
    """A decrypt-tree job's account: ``set_id`` where the source was a set
    (``complete`` False for an incomplete one; ``verified`` counts the
    objects that matched their manifest lines: every one decrypted);
    ``unchecked`` where raw streams were decrypted with no manifest to
    check them against."""
    unchecked: bool = False


def _is_folder(job: Tuple[Any, ...]) -> bool:
    return len(job) > 2 and bool(job[2].get("directory"))


def decrypt_tree(src_dir: PathLike, dest_dir: PathLike, keys: KeysArg, *,
                 workers: Optional[int] = None,
                 overwrite: bool = False, skip_existing: bool = False,
                 progress: Optional[Callable[[int, int, int], None]] = None,
                 cancel: Optional[CancelToken] = None, password: Password = None,
                 partial: bool = False,
                 sets: Sequence[str] = (), sync: bool = True) -> DecryptTreeResult:
    """Decrypt every ``.efsraw`` file (or encrypted file of an efs_raw
    mount) below ``src_dir`` into the same layout below ``dest_dir``
    (``name.efsraw`` -> ``name``); a backup set's objects are checked
    against its manifest (the result then names the set).
    ``skip_existing`` resumes a run; ``partial`` decrypts what an
    incomplete set lists; ``sets``: the earlier sets an incremental set
    refers to (by default where each was recorded); ``sync``: what was
    written is on stable storage before this returns."""
    keys = as_keys(keys, password)
    src_dir, dest_dir = os.fspath(src_dir), os.fspath(dest_dir)
    p = plan(src_dir, dest_dir, partial=partial, sets=sets, cancel=cancel)
    jobs, existing = p.jobs, []
    if skip_existing:           # (an encrypted folder of a set is checked again: it is small)
        existing = [j[0] for j in jobs if not _is_folder(j) and os.path.lexists(j[0])]
        jobs = [j for j in jobs if _is_folder(j) or not os.path.lexists(j[0])]
    parents = p.parents if p.parents is not None else sorted({os.path.dirname(j[0]) for j in jobs})
    _make_folders([dest_dir] + p.folders + parents)

    def one(dest: str, source: str, opts: Dict[str, Any],
            token: Optional[Cancel]) -> Union[DecryptResult, _FolderDone]:
        expect = Expected(*opts["expect"]) if "expect" in opts else None
        if opts.get("directory"):
            assert expect is not None           # (a set's folder: plan_set gives its line's)
            return _folder(dest, source, expect)
        return decrypt(source, dest, keys, overwrite=overwrite, directory=False, cancel=token,
                       expect=expect, encrypted_object=opts.get("object"))
    workers = workers or default_workers(src_dir)   # (2 on an efs_raw FUSE mount)
    if forked.usable(jobs, workers):        # RSA holds the GIL: processes share it out
        from . import resultrows
        bulk = forked.run_forked(jobs, one, workers=workers, progress=progress, cancel=cancel,
                                 pack=resultrows.pack, unpack=resultrows.Unpacker())
    else:
        bulk = _run_many(jobs, one, workers=workers, progress=progress, cancel=cancel,
                         fail_fast=False)
    # (an encrypted folder's job is never left out by skip_existing: the plan's count holds)
    result = DecryptTreeResult(bulk, directories=len(p.folders) + p.folder_jobs,
                               skipped=p.skipped, existing=existing, unreadable=p.failed,
                               jobs=[j[:2] for j in jobs], set_id=p.set_id,
                               complete=p.complete, unchecked=p.unchecked,
                               # (a set's every job was checked: decrypted means verified)
                               verified=bulk.files if p.set_id else 0)
    if sync:
        sync_restored(result, dest_dir, workers=workers)
    return result
