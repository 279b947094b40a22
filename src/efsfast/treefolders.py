"""Encrypted folders in a tree restore.

A file restored into a folder that was meant to be encrypted and is not
would stay in a plain folder for good (new files there are not encrypted on
Windows).  So: what lies below a folder whose restore failed fails too, as
"parent folder failed", and is never written; and ``skip_existing`` accepts
an existing folder only if backing it up gives the backup's ``$EFS``."""
from __future__ import annotations

import itertools
import os
from typing import Any, Dict, Iterable, List, Optional, Tuple

from . import api
from .api import BulkResult, ItemError
from ._core import Backend
from ._errors import EfsError
from .treewalk import folders_among, parent_folders

Jobs = List[Tuple[Any, ...]]        # (target, raw stream[, options]) per job

ERROR_PATH_NOT_FOUND = 3
ERROR_INVALID_DATA = 13
ERROR_FILE_NOT_ENCRYPTED = 6007
OVERWRITE_ADVICE = ("restore with --overwrite to apply the backup's $EFS and named streams "
                    "to the folder in place, keeping what it holds")


def _metadata(source: Any) -> Optional[bytes]:
    try:
        from . import raw as _raw      # (only resuming onto existing folders: start-up time)
        meta = _raw._parse(source, "compatible").metadata
    except (OSError, ValueError):
        return None
    return None if meta is None else bytes(meta)


def unlike_backup(target: str, source: Any,
                  backend: Optional[Backend] = None) -> Optional[EfsError]:
    """Why the existing folder ``target`` is not the one the raw stream
    ``source`` describes: it is not encrypted, or has another ``$EFS`` than
    backing it up again would give; None when they match."""
    want = _metadata(source)
    if want is None:
        return None                 # a stream that does not parse: left to the restore
    try:
        have = _metadata(api.backup(target, directory=True, backend=backend))
    except OSError as exc:
        return EfsError(ERROR_FILE_NOT_ENCRYPTED, f"the folder exists but is not encrypted as in "
                        f"the backup ({exc.strerror}); {OVERWRITE_ADVICE}", target)
    if have != want:
        return EfsError(ERROR_INVALID_DATA, "the folder exists but is encrypted with another "
                        f"$EFS than the backup's; {OVERWRITE_ADVICE}", target)
    return None


def below_failed(target: str, failed: Iterable[str]) -> Optional[EfsError]:
    """Why ``target`` is not restored where it lies below one of the
    encrypted folders ``failed``; None where it does not."""
    for folder in failed:
        if target.startswith(folder + os.sep):
            return blocked(EfsError(ERROR_PATH_NOT_FOUND, "parent folder failed: its encrypted "
                                    f"folder {folder} could not be restored, so nothing is "
                                    "restored into it", target), folder)
    return None


def blocked(error: EfsError, folder: str) -> EfsError:
    """``error``, marked as the failure of an object that failed only because
    the encrypted folder ``folder`` above it failed: its ``blocked_by``
    attribute names the folder, whose own failure says why (a summary groups
    the two under that cause)."""
    setattr(error, "blocked_by", folder)
    return error


class FolderGate:
    """Decides, batch by batch, which restore jobs run: a job whose target
    was refused up front, or lies below a folder that failed, fails without
    being run.  Folders that fail are noted as each batch ends."""

    def __init__(self, backend: Optional[Backend] = None) -> None:
        self.backend = backend
        self.refused: Dict[str, EfsError] = {}
        self.failed: List[str] = []

    @staticmethod
    def folders_by_position(dirs: Jobs, files: Jobs) -> Tuple[Jobs, Jobs]:
        """A raw stream whose target holds other targets is a folder's, even
        when its headers do not say so (a damaged folder stream): restored as
        a folder, it fails as one and blocks what it holds."""
        held = folders_among(files, 0, parent_folders(itertools.chain(dirs, files), 0))
        if not held:
            return dirs, files          # (the common case, without a Python step per job)
        moved = [(j[0], j[1], {**(j[2] if len(j) > 2 else {}), "directory": True})
                 for j in map(files.__getitem__, held)]
        dirs = sorted(dirs + moved, key=lambda j: os.fspath(j[0]).count(os.sep))
        gone = set(held)
        return dirs, [j for i, j in enumerate(files) if i not in gone]

    def refuse_unlike_backup(self, job: Tuple[Any, ...]) -> bool:
        """For skip_existing: True (keep the job, failing it) where an
        existing folder is not the backup's."""
        if not (len(job) > 2 and job[2].get("directory")):
            return False
        error = unlike_backup(os.fspath(job[0]), job[1], self.backend)
        if error is not None:
            self.refused[os.fspath(job[0])] = error
        return error is not None

    def _blocked(self, target: str) -> Optional[EfsError]:
        if target in self.refused:
            return self.refused[target]
        return below_failed(target, self.failed)

    def split(self, batch: Jobs) -> Tuple[List[int], Dict[int, EfsError]]:
        """(indices of the jobs to run, {index: error} of those that fail now)."""
        if not (self.failed or self.refused):
            return list(range(len(batch))), {}     # (no Python step per job)
        run: List[int] = []
        early: Dict[int, EfsError] = {}
        for i, job in enumerate(batch):
            error = self._blocked(os.fspath(job[0])) if (self.failed or self.refused) else None
            if error is None:
                run.append(i)
            else:
                early[i] = error
        return run, early

    @staticmethod
    def expand(r: BulkResult, batch: Jobs, run: List[int],
               early: Dict[int, EfsError]) -> BulkResult:
        """The result of running ``run`` as a result for the whole batch."""
        if not early and len(run) == len(batch) == len(r.results):
            return r                # (every job ran, each at its own index)
        out = BulkResult(results=[None] * len(batch), bytes=r.bytes, files=r.files,
                         cancelled=r.cancelled)
        for k, i in enumerate(run):
            if k < len(r.results):
                out.results[i] = r.results[k]
        out.failures = sorted(
            [ItemError(run[e.index], e.dest, e.error) for e in r.failures]
            + [ItemError(i, os.fspath(batch[i][0]), err) for i, err in early.items()],
            key=lambda e: e.index)
        return out

    def note(self, batch: Jobs, r: BulkResult) -> None:
        for e in r.failures:
            job = batch[e.index]
            if len(job) > 2 and job[2].get("directory"):
                self.failed.append(os.fspath(job[0]))
