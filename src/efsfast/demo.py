"""The main job, end to end on this platform's system side: make a
synthetic backup set, restore it into a tree, back the tree up again, and
check that every raw stream came back byte for byte."""
from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

from . import _core, raw as _raw
from .backends import default as default_backend, describe
from .tree import SUFFIX, Progress, backup_tree, restore_tree

FOLDERS = ["Documents", "Documents/Projects", "Finance", "Photos/2026"]
KINDS = [(".docx", 40_000, 2_000_000), (".xlsx", 10_000, 800_000), (".pdf", 50_000, 4_000_000),
         (".txt", 10, 20_000), (".jpg", 200_000, 3_000_000), (".key", 100, 4_000)]


@dataclass
class DemoReport:
    workdir: str
    files: int
    directories: int
    raw_bytes: int
    restore_seconds: float
    backup_seconds: float
    identical: int
    different: List[str]            # raw streams that did not come back the same
    failures: List[str]
    system_side: str = ""

    @property
    def ok(self) -> bool:
        return not self.different and not self.failures


def make_backup_set(root: str, files: int = 200, seed: int = 2026) -> Tuple[int, int, int]:
    """Write a synthetic backup set of ``files`` encrypted files (sizes from a
    few bytes to a few MiB, three made-up users, some recovery agents, some
    Zone.Identifier streams) plus encrypted folders.  Returns (files, dirs, bytes)."""
    rng = random.Random(seed)
    users = [_raw.User.random(rng, name=n) for n in ("alice", "bob", "carol")]
    agent = _raw.User.random(rng, name="recovery", rid=500)
    total = 0
    for folder in FOLDERS:                           # the folders are encrypted too
        meta = _raw.metadata_from_users([rng.choice(users)], [agent], efs_id=rng.randbytes(16))
        path = os.path.join(root, folder + SUFFIX)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = _raw.build_raw(meta)
        with open(path, "wb") as f:
            f.write(data)
        total += len(data)
    for i in range(files):
        ext, lo, hi = rng.choice(KINDS)
        size = int(lo * (hi / lo) ** rng.random())     # log-uniform: many small, few large
        owners = rng.sample(users, rng.choice([1, 1, 1, 2]))
        meta = _raw.metadata_from_users(owners, [agent] if rng.random() < 0.7 else [],
                                        efs_id=rng.randbytes(16))
        streams = [_raw.DataStream(_raw.UNNAMED_STREAM, size, rng.randbytes((size + 511) & ~511))]
        if rng.random() < 0.2:
            streams.append(_raw.DataStream(":Zone.Identifier:$DATA", 90, rng.randbytes(512)))
        folder = rng.choice(FOLDERS)
        path = os.path.join(root, folder, f"file-{i:04d}{ext}{SUFFIX}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = _raw.build_raw(meta, streams)
        with open(path, "wb") as f:
            f.write(data)
        total += len(data)
    return files, len(FOLDERS), total


def _same_tree(a: str, b: str) -> Tuple[int, List[str]]:
    same, different = 0, []
    for dirpath, _d, filenames in os.walk(a):
        for f in filenames:
            p = os.path.join(dirpath, f)
            q = os.path.join(b, os.path.relpath(p, a))
            try:
                with open(p, "rb") as x, open(q, "rb") as y:
                    if x.read() == y.read():
                        same += 1
                        continue
            except OSError:
                pass
            different.append(os.path.relpath(p, a))
    return same, different


def _holds_xattrs(folder: str) -> bool:
    if not hasattr(os, "setxattr"):
        return True                      # Windows: advapi32 does the storing
    try:
        # a name of its own: two demos may probe the same folder at once
        fd, probe = tempfile.mkstemp(prefix=".efsfast-xattr-probe-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    try:
        os.setxattr(probe, "user.efsfast.probe", b"x" * 2048)
        return True
    except OSError:
        return False
    finally:
        os.unlink(probe)


def _pick_workdir() -> str:
    """A temporary folder on a file system with user xattrs (the efs_raw
    layout keeps $EFS and named streams in them): the system's temporary
    folder, else /var/tmp, else the current folder."""
    for base in (None, "/var/tmp", os.getcwd()):
        if base is not None and not os.path.isdir(base):
            continue
        d = tempfile.mkdtemp(prefix="efsfast-demo-", dir=base)
        if _holds_xattrs(d):
            return d
        shutil.rmtree(d, ignore_errors=True)
    raise OSError("no folder with user extended attributes found for the demo; "
                  "pass one: efsfast demo DIR")


def run_demo(workdir: Optional[str] = None, *, files: int = 200, seed: int = 2026,
             workers: Optional[int] = None,
             progress_factory: Optional[Callable[[str, int], Progress]] = None,
             log: Callable[[str], None] = print,
             backend: Optional[_core.Backend] = None) -> DemoReport:
    own = workdir is None
    backend = backend if backend is not None else default_backend()
    workdir = workdir or _pick_workdir()
    backup_set = os.path.join(workdir, "backup-set")
    restored = os.path.join(workdir, "restored")
    again = os.path.join(workdir, "backup-again")
    for d in (backup_set, restored, again):
        if os.path.exists(d):
            shutil.rmtree(d)
    nfiles, ndirs, nbytes = make_backup_set(backup_set, files, seed)
    log(f"made a synthetic backup set: {nfiles} encrypted files and {ndirs} encrypted folders, "
        f"{nbytes / 1e6:.1f} MB of raw streams, in {backup_set}")

    t0 = time.perf_counter()
    r = restore_tree(backup_set, restored, workers=workers, backend=backend,
                     progress=progress_factory("restore", nfiles + ndirs) if progress_factory else None)
    t1 = time.perf_counter()
    log(f"restored them with {describe(backend)} into {restored}: "
        f"{r.bulk.files} items in {t1 - t0:.2f} s ({nbytes / 1e6 / max(t1 - t0, 1e-9):.0f} MB/s)")
    b = backup_tree(restored, again, workers=workers, backend=backend,
                    progress=progress_factory("backup", nfiles + ndirs) if progress_factory else None)
    t2 = time.perf_counter()
    log(f"backed the tree up again into {again}: {b.bulk.files} items in {t2 - t1:.2f} s "
        f"({nbytes / 1e6 / max(t2 - t1, 1e-9):.0f} MB/s)")
    same, different = _same_tree(backup_set, again)
    failures = [str(e) for e in r.failures + b.failures]
    log(f"byte identity: {same} of {nfiles + ndirs} raw streams identical"
        + (f", {len(different)} different: {', '.join(different[:5])}" if different else ""))
    report = DemoReport(workdir, nfiles, ndirs, nbytes, t1 - t0, t2 - t1, same, different, failures,
                        describe(backend))
    if own and report.ok:
        shutil.rmtree(workdir, ignore_errors=True)
    return report
