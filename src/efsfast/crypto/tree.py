"""Decrypt a whole tree: a folder of ``.efsraw`` files (what backup-tree
writes), or a folder on an ntfs-3g ``efs_raw`` mount holding encrypted
files.  Folders become folders; files run in parallel (the sector loop
runs without the GIL); every item is done, failed (named, with the cause)
or skipped (said why)."""
from __future__ import annotations

import os
from typing import Callable, Optional

from .. import raw
from ..api import _run_many
from ..tree import TreeResult, sync_restored
from .decrypt import decrypt, is_object
from .keys import as_keys

SUFFIX = ".efsraw"


def is_folder_stream(path: str) -> bool:
    """A raw stream with no unnamed data stream is a folder's (found from
    the headers alone; one that does not walk is left to the decryption
    to report)."""
    try:
        return raw.has_unnamed_stream(path) is False
    except OSError:
        return False


def plan(src_dir: str, dest_dir: str):
    """(folders to create, (dest, source) file jobs, skipped paths)."""
    folders, jobs, skipped = [dest_dir], [], []
    for dirpath, dirnames, filenames in os.walk(src_dir):
        dirnames.sort()
        rel = os.path.relpath(dirpath, src_dir)
        out = dest_dir if rel == "." else os.path.join(dest_dir, rel)
        folders += [os.path.join(out, d) for d in dirnames]
        for f in sorted(filenames):
            p = os.path.join(dirpath, f)
            if os.path.islink(p):
                skipped.append(p)
            elif is_object(p):
                jobs.append((os.path.join(out, f), p))
            elif f.endswith(SUFFIX):
                target = os.path.join(out, f[:-len(SUFFIX)])
                if is_folder_stream(p):
                    folders.append(target)
                else:
                    jobs.append((target, p))
            else:
                skipped.append(p)
    return folders, jobs, skipped


def decrypt_tree(src_dir, dest_dir, keys, *, workers: Optional[int] = None,
                 overwrite: bool = False, skip_existing: bool = False,
                 progress: Optional[Callable[[int, int, int], None]] = None,
                 cancel=None, password=None, sync: bool = True) -> TreeResult:
    """Decrypt every ``.efsraw`` file (or encrypted file of an efs_raw
    mount) below ``src_dir`` into the same layout below ``dest_dir``
    (``name.efsraw`` -> ``name``).  ``skip_existing`` resumes a run;
    ``sync``: what was written is on stable storage before this returns."""
    keys = as_keys(keys, password)
    src_dir, dest_dir = os.fspath(src_dir), os.fspath(dest_dir)
    folders, jobs, skipped = plan(src_dir, dest_dir)
    for d in folders:
        os.makedirs(d, exist_ok=True)
    existing = []
    if skip_existing:
        existing = [d for d, _ in jobs if os.path.lexists(d)]
        jobs = [(d, s) for d, s in jobs if not os.path.lexists(d)]

    def one(dest, source, opts, token):
        return decrypt(source, dest, keys, overwrite=overwrite, directory=False, cancel=token)
    bulk = _run_many(jobs, one, workers=workers, progress=progress, cancel=cancel,
                     fail_fast=False)
    result = TreeResult(bulk, directories=len(folders), skipped=skipped, existing=existing,
                        jobs=jobs)
    if sync:
        sync_restored(result, dest_dir)
    return result
