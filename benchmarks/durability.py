"""Durability: what it costs to put a backup set, or a restored tree, on
stable storage before the command says it is done, and which way is cheaper
on each file system (durable.py chooses by this).

Backup (a folder set from a tmpfs source onto the file system measured):
  - no sync: the manifest's own fsync only (before);
  - one syncfs() of the set's file system before the manifest is published;
  - an fsync pass before the manifest is published: every object, every folder;
  - an fsync per object in the C export workers as each is written (then the
    pass, which finds them clean and syncs the folders).
Restore (a folder set on tmpfs into a tree on the file system measured):
  - no sync (before; --no-sync);
  - one syncfs() at the end;
  - an fsync pass at the end: every file and folder written;
  - an fsync per file in C before it is published (PosixBackend's
    benchmark-only _sync_each), then one per folder.
File systems: tmpfs, an ext4 image mounted through a loop device, an NTFS
image mounted by ntfs-3g -o efs_raw (FUSE: syncfs never reaches the daemon,
so there the syncfs rows measure a sync that does not happen).  The images
live on the disk (--disk), so an fsync reaches a device.  Variants are
interleaved round-robin, best of N with the spread; between runs the output
is removed and the machine's dirty data written back, untimed.

    python benchmarks/durability.py [--quick] [--disk /var/tmp] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from backup_sets import Ntfs3gVolume, make_source  # noqa: E402  (a sibling script)

from efsfast import _core, durable, tree  # noqa: E402
from efsfast.backupset import FolderSink, backup_set  # noqa: E402
from efsfast.backupset.restore import restore_set  # noqa: E402

MIB = 1 << 20
Way = durable.SyncWay


class Mounted:
    """A file system to write to: tmpfs (a folder in /dev/shm), an ext4
    image on a loop device, or an ntfs-3g efs_raw mount of an NTFS image
    (backup_sets.Ntfs3gVolume, its image here on the disk)."""

    def __init__(self, kind: str, disk: str, size: int):
        self.kind, self.ntfs, self.ext4 = kind, None, False
        self.work = tempfile.mkdtemp(prefix="efsfast-bench-durable-",
                                     dir="/dev/shm" if kind == "tmpfs" else disk)
        if kind == "ntfs-3g":
            self.ntfs = Ntfs3gVolume(self.work, size)
            self.root = self.ntfs.mnt
            return
        self.root = os.path.join(self.work, "mnt")
        os.makedirs(self.root)
        if kind == "ext4":
            image = os.path.join(self.work, "ext4.img")
            with open(image, "wb") as f:
                f.truncate(size)
            subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True, capture_output=True)
            subprocess.run(["mount", "-o", "loop", image, self.root], check=True,
                           capture_output=True)
            self.ext4 = True

    @staticmethod
    def why_not(kind: str) -> str:
        if kind == "ntfs-3g":
            return Ntfs3gVolume.why_not()
        if kind == "ext4" and (os.geteuid() != 0 or not shutil.which("mkfs.ext4")):
            return "an ext4 image needs root and mkfs.ext4"
        if kind == "tmpfs" and not os.path.isdir("/dev/shm"):
            return "no /dev/shm"
        return ""

    def close(self) -> None:
        if self.ntfs is not None:
            self.ntfs.close()
        elif self.ext4:
            subprocess.run(["umount", self.root], check=True, capture_output=True)
        shutil.rmtree(self.work, ignore_errors=True)


def _settle(path: str) -> None:
    """Untimed: the output removed and every dirty page written back, so a
    variant never pays for the one before it."""
    shutil.rmtree(path, ignore_errors=True)
    os.sync()


def _folders(result: tree.TreeResult, top: str) -> List[str]:
    written = [r.path for r in result.bulk.results if r is not None]
    return durable.folders_up({os.path.dirname(p) for p in written}, top)


def backup_variants(src: str, dest: str, workers: int) -> Dict[str, Callable[[], None]]:
    def run(way: Way, in_workers: bool = False) -> Callable[[], None]:
        def fn() -> None:
            sink = FolderSink(dest, sync=way)
            sink.sync_in_workers = in_workers
            backup_set(src, sink, workers=workers).bulk.raise_for_errors()
        return fn
    out = {"backup: no sync (the manifest's fsync only)": run(Way.NONE),
           "backup: one syncfs before the manifest": run(Way.FILESYSTEM),
           "backup: fsync pass before the manifest (objects, folders)": run(Way.EACH),
           # the pass then finds every object clean: its folders are what it syncs
           "backup: fsync per object in the C workers, then the pass": run(Way.EACH, True)}
    if _flushes_device(dest):
        out["backup: one device flush before the manifest (FSYNCDIR)"] = run(Way.DEVICE)
    return out


def _flushes_device(dest: str) -> bool:
    """Whether ``dest`` is on ntfs-3g, whose FSYNCDIR flushes its whole
    device (durable.SyncWay.DEVICE: measured there only)."""
    return durable.way_for(dest) is Way.DEVICE


def restore_variants(set_dir: str, dest: str, workers: int) -> Dict[str, Callable[[], None]]:
    def run(way: Way) -> Callable[[], None]:
        def fn() -> None:
            r = restore_set(set_dir, dest, workers=workers)
            r.bulk.raise_for_errors()
            tree.sync_restored(r, dest, way)
            r.bulk.raise_for_errors()
        return fn

    def threaded_pass() -> None:
        durable.PASS_THREADS = 4
        try:
            run(Way.EACH)()
        finally:
            durable.PASS_THREADS = 1

    def in_c() -> None:
        r = restore_set(set_dir, dest, workers=workers,
                        backend=_core.PosixBackend(_sync_each=True))
        r.bulk.raise_for_errors()
        for folder in _folders(r, dest):
            durable.fsync_path(folder)
    out = {"restore: no sync (--no-sync)": run(Way.NONE),
           "restore: one syncfs at the end": run(Way.FILESYSTEM),
           "restore: fsync pass at the end (files, folders)": run(Way.EACH),
           "restore: fsync pass at the end on 4 threads": threaded_pass,
           "restore: fsync per file in C before publication, then folders": in_c}
    if _flushes_device(dest):
        out["restore: one device flush at the end (FSYNCDIR)"] = run(Way.DEVICE)
    return out


def measure(fns: Dict[str, Callable[[], None]], out: str, rounds: int) -> Dict[str, Tuple[float, float]]:
    times: Dict[str, List[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            _settle(out)
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    _settle(out)
    return {k: (min(v), (max(v) - min(v)) / min(v)) for k, v in times.items()}


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--disk", default="/var/tmp", help="where the ext4 and NTFS images go")
    ap.add_argument("--only", default="tmpfs,ext4,ntfs-3g", help="file systems to measure")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = ap.parse_args(argv)
    shapes = [("2,000 files of 16 KiB", 2000, 16 << 10), ("100 files of 1 MiB", 100, MIB)]
    if args.quick:
        shapes = [("100 files of 16 KiB", 100, 16 << 10), ("10 files of 1 MiB", 10, MIB)]
        args.rounds = min(args.rounds, 2)
    load_before = os.getloadavg()[0]
    rows, results, skipped = [], {}, {}
    base = tempfile.mkdtemp(prefix="efsfast-bench-durable-src-", dir="/dev/shm")
    try:
        for label, n, size in shapes:
            src, set_dir = os.path.join(base, "src"), os.path.join(base, "set")
            shutil.rmtree(base, ignore_errors=True)
            make_source(src, n, size)
            backup_set(src, FolderSink(set_dir)).bulk.raise_for_errors()
            for kind in args.only.split(","):
                why = Mounted.why_not(kind)
                if why:
                    skipped[kind] = why
                    continue
                fs = Mounted(kind, args.disk, 3 * n * (size + 8192) + (64 << 20))
                try:
                    out = os.path.join(fs.root, "out")
                    r = measure(backup_variants(src, out, args.workers), out, args.rounds)
                    r |= measure(restore_variants(set_dir, out, args.workers), out, args.rounds)
                finally:
                    fs.close()
                key = f"{label} onto {kind}"
                results[key] = {k: {"best_s": b, "spread": s} for k, (b, s) in r.items()}
                for k, (best, spread) in r.items():
                    first = next(v for name, v in r.items()
                                 if name.split(":")[0] == k.split(":")[0])[0]
                    rows.append((key, k, best, spread, best / first))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    os.makedirs(args.out, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = ["# Durability: what syncing costs, and which way", "",
             f"{stamp} · {platform.platform()} · Python {platform.python_version()} · "
             f"{os.cpu_count()} CPUs · {args.workers} workers · best of {args.rounds}, "
             f"variants interleaved · images on {args.disk} · load average "
             f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
             + "".join(f" · {k} not run: {v}" for k, v in skipped.items()), "",
             "| tree and file system | variant | best s | spread | vs no sync |",
             "| --- | --- | --- | --- | --- |"]
    for key, k, best, spread, ratio in rows:
        lines.append(f"| {key} | {k} | {best:.3f} | {spread:.0%} | {ratio:.2f}× |")
    lines += ["", "On ntfs-3g the syncfs rows sync nothing: the kernel sends a FUSE daemon "
              "no request for syncfs() (durable.py uses one device flush there, the FSYNCDIR "
              "row)."]
    with open(os.path.join(args.out, "durability.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out, "durability.json"), "w") as f:
        json.dump({"when": stamp, "workers": args.workers, "rounds": args.rounds,
                   "results": results, "skipped": skipped}, f, indent=2)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
