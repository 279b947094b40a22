"""Walking a tree without losing anything.

``os.walk`` drops a folder it cannot list without a word; a backup that did
that would report success with data missing.  Here every folder that cannot
be listed and every entry that cannot be examined comes back as an error for
its path, which the tree jobs count as a failed item.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import (TYPE_CHECKING, Any, Callable, Iterable, Iterator, List, Optional, Sequence,
                    Set, Tuple, Union)

from ._errors import EfsError, as_efs_error

if TYPE_CHECKING:
    from ._core import CancelToken

PathArg = Union[str, "os.PathLike[str]"]
ERROR_DIRECTORY = 267          # "The directory name is invalid": ENOTDIR


#: a folder's path -> (what its children's paths begin with, what their
#: outputs' paths begin with, the suffix, whether the jobs are a restore's)
#: or None: a backup's output is the name with the suffix added, a
#: restore's target the name with it taken off (only names with it are jobs)
JobPrefixes = Callable[[str], Optional[Tuple[str, str, str, bool]]]


@dataclass
class Folder:
    """One listed folder: sorted names of its sub-folders, regular files and
    other entries (symbolic links, devices, sockets: never EFS objects).
    ``jobs``: where the walk was asked for them and C could make them, the
    regular files' jobs in name order instead of ``files`` (a backup's
    (path, output) each; a restore's (target, path) for each raw stream)."""
    path: str
    dirs: List[str] = field(default_factory=list)
    files: List[str] = field(default_factory=list)
    others: List[str] = field(default_factory=list)
    jobs: Optional[List[Tuple[str, str]]] = None


def problem(path: str, what: str, exc: OSError) -> EfsError:
    """``exc`` as the EfsError of its kind (PermissionError, ...) naming
    ``path``, its message saying what could not be done."""
    e = as_efs_error(exc, path)
    e.strerror = f"{what}: {exc.strerror or exc}"
    return e


def walk(top: str, errors: List[Tuple[str, EfsError]],
         cancel: Optional[CancelToken] = None,
         file_jobs: Optional[JobPrefixes] = None) -> Iterator[Folder]:
    """Folders below ``top`` (``top`` first, then depth first, in name
    order).  What cannot be listed or examined is appended to ``errors`` as
    ``(path, error)`` instead; a set ``cancel`` token stops the walk.
    ``file_jobs``: a folder's regular files come as ``Folder.jobs`` (made
    in C from the listing, no str per name) where it gives the folder's
    prefixes and the names allow."""
    # (POSIX: each folder listed in C, no DirEntry per entry: those were
    # most of a backup plan's cost in the calling thread)
    lister = _listed if os.name != "nt" else _scanned
    stack = [top]
    while stack:
        if cancel is not None and cancel.cancelled:
            return
        path = stack.pop()
        try:
            folder = lister(path, errors, file_jobs)
        except OSError as exc:
            errors.append((path, problem(path, "cannot list the folder", exc)))
            continue
        yield folder
        stack.extend(os.path.join(path, d) for d in reversed(folder.dirs))


def _listed(path: str, errors: List[Tuple[str, EfsError]],
            file_jobs: Optional[JobPrefixes] = None) -> Folder:
    """The folder ``path`` listed in C (efs_listdir.h), each list in name
    order; an entry that cannot be examined goes to ``errors``.  OSError
    where the folder cannot be listed.  ``file_jobs``: see :func:`walk`."""
    from ._core import list_folder, plan_folder
    prefixes = file_jobs(path) if file_jobs is not None else None
    planned = plan_folder(path, *prefixes) if prefixes is not None else None
    if planned is not None:             # (sorted in C)
        dirs, jobs, others, unexamined = planned
        folder = Folder(path, dirs, [], others, jobs)
    else:
        dirs, files, others, unexamined = list_folder(path)
        dirs.sort()
        files.sort()
        others.sort()
        unexamined.sort()
        folder = Folder(path, dirs, files, others)
    for name, err in unexamined:
        p = os.path.join(path, name)
        errors.append((p, problem(p, "cannot examine it", OSError(err, os.strerror(err), p))))
    return folder


def _scanned(path: str, errors: List[Tuple[str, EfsError]],
             file_jobs: Optional[JobPrefixes] = None) -> Folder:
    """:func:`_listed` through os.scandir (Windows; never ``jobs``)."""
    with os.scandir(path) as it:
        entries = sorted(it, key=lambda e: e.name)
    folder = Folder(path)
    for e in entries:
        try:
            if e.is_dir(follow_symlinks=False):
                folder.dirs.append(e.name)
            elif e.is_file(follow_symlinks=False):
                folder.files.append(e.name)
            else:
                folder.others.append(e.name)
        except OSError as exc:
            errors.append((e.path, problem(e.path, "cannot examine it", exc)))
    return folder


def parent_folder(path: str) -> str:
    """os.path.dirname(path), without its general case where it cannot
    differ: a tree job takes it once or twice per object while holding the
    GIL (restore-tree's serial part)."""
    i = path.rfind(os.sep)
    if i > 0 and os.altsep is None and path[i - 1] != os.sep:
        return path[:i]
    return os.path.dirname(path)


def parent_folders(paths: Iterable[Any], item: int = -1) -> Set[str]:
    """The set of :func:`parent_folder` of every path (str or path-like),
    made in C where paths are POSIX ones (no Python call per object).
    ``item``: the paths are each ``job[item]`` of jobs."""
    if os.altsep is None:
        from ._core import parent_folders as in_c
        return in_c(paths, item)
    return {parent_folder(os.fspath(p if item < 0 else p[item])) for p in paths}


def folders_among(jobs: Sequence[Sequence[Any]], item: int, folders: Set[str]) -> List[int]:
    """The positions of the jobs whose path ``job[item]`` is one of
    ``folders``, in order (in C where paths are POSIX ones: no hash per
    job whose path has no folder's length)."""
    if os.altsep is None:
        from ._core import positions_in
        return positions_in(jobs, item, folders)
    return [i for i, j in enumerate(jobs) if os.fspath(j[item]) in folders]


def child_prefix(folder: str) -> Optional[str]:
    """What ``os.path.join(folder, name)`` puts before a plain ``name`` (one
    from os.scandir: no separator, not absolute), so a tree job can make
    each child's path by one concatenation; None where that is not so
    simple (Windows drives: ``C:`` joins as ``C:name``)."""
    if os.altsep is not None or not folder:
        return None
    return folder if folder.endswith(os.sep) else folder + os.sep


def check_source_dir(path: str) -> None:
    """Raise the right EfsError (FileNotFoundError, NotADirectoryError) when
    ``path`` is not a folder that exists: a tree job of a mistyped source
    must not look like a tree with nothing in it."""
    try:
        st = os.stat(path)
    except FileNotFoundError as exc:
        e = as_efs_error(exc, path)
        e.strerror = "no such folder"
        raise e from None
    except OSError as exc:
        raise problem(path, "cannot reach the folder", exc) from None
    if not stat.S_ISDIR(st.st_mode):
        raise EfsError(ERROR_DIRECTORY, "not a folder (a tree job takes a folder; "
                                        "backup and restore take one file)", path)


def find_sources(paths: Sequence[PathArg],
                 errors: Optional[List[Tuple[str, EfsError]]] = None) -> List[str]:
    """Files given, and below folders given: ``.efsraw`` files and encrypted
    objects (efs_raw mounts), in a stable order.  A folder that cannot be
    listed or an entry that cannot be examined goes to ``errors`` as
    ``(path, error)``, one per path; with ``errors`` None the first is
    raised (never dropped in silence).  ``verify`` and ``verify --key``
    take their sources from here, so both read a folder the same way."""
    from .volume import EncryptionProbe
    probe = EncryptionProbe()
    found: List[str] = []
    problems: List[Tuple[str, EfsError]] = []

    def encrypted(q: str) -> bool:
        try:
            return probe(q)
        except OSError as exc:
            problems.append((q, problem(q, "cannot tell whether it is encrypted", exc)))
            return False
    for given in paths:
        p = os.fspath(given)
        if not os.path.isdir(p):
            found.append(p)         # a file, or a path whose check says what it is not
            continue
        for folder in walk(p, problems):
            # a folder is examined once listed: one that cannot be listed is
            # named for that (its contents are what goes unchecked)
            if encrypted(folder.path):
                found.append(folder.path)
            for f in folder.files:
                q = os.path.join(folder.path, f)
                if f.endswith(".efsraw") or encrypted(q):
                    found.append(q)
    seen: Set[str] = set()
    unique: List[Tuple[str, EfsError]] = []                     # one per path (a folder neither examined nor listed)
    for q, e in problems:
        if q not in seen:
            seen.add(q)
            unique.append((q, e))
    if errors is None and unique:
        raise unique[0][1]
    if errors is not None:
        errors.extend(unique)
    return found
