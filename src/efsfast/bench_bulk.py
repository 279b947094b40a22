"""Bulk benchmarks against the real ceilings (issue 12): ``restore_many`` and
``restore-tree`` at 1, 2, 4, 8 and 16 workers against a C program that
creates the same files the way a no-replace restore must
(benchmarks/bulk_ceiling.c), on tmpfs and on the machine's disk; and, on a
real ``ntfs-3g -o efs_raw`` mount, efsfast against ``tar`` and ``cp`` with
the system calls per file counted by ``strace -c -f``.

Run through ``efsfast bench`` (sections ``bulk`` and ``ntfs3g``).  Every
point interleaves its variants round-robin and reports the best time and the
spread; nothing asserts a timing.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Callable, Dict, List, Optional

from . import raw
from .api import restore_many
from .tree import restore_tree

KIB, MIB = 1 << 10, 1 << 20
WORKERS = (1, 2, 4, 8, 16)


def _stream(size: int, seed: int = 1) -> bytes:
    from .bench import make_stream
    return make_stream(size, seed)


def _timed(fn: Callable[[], object]) -> float:
    from .bench import timed
    return timed(fn)


# ------------------------------------------------------------ the C ceiling

def ceiling_source() -> Optional[str]:
    """benchmarks/bulk_ceiling.c of the checkout this package runs from (or
    of the current directory): the ceiling is part of the benchmarks, not of
    the installed package."""
    here = os.path.dirname(os.path.abspath(__file__))
    for base in (os.getcwd(), os.path.join(here, "..", "..")):
        p = os.path.normpath(os.path.join(base, "benchmarks", "bulk_ceiling.c"))
        if os.path.isfile(p):
            return p
    return None


def build_ceiling(workdir: str) -> "str | dict":
    """The compiled ceiling, or {"skipped": why}."""
    src = ceiling_source()
    if src is None:
        return {"skipped": "benchmarks/bulk_ceiling.c not found (run from a checkout)"}
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return {"skipped": "no C compiler for benchmarks/bulk_ceiling.c"}
    exe = os.path.join(workdir, "bulk_ceiling")
    r = subprocess.run([cc, "-O2", "-pthread", "-o", exe, src], capture_output=True, text=True)
    if r.returncode:
        return {"skipped": f"bulk_ceiling.c did not compile: {r.stderr.strip()[:200]}"}
    return exe


def has_tmpfile(directory: str) -> bool:
    """Whether the file system takes O_TMPFILE (the ceiling then uses it, as
    efsfast's POSIX side does)."""
    try:
        fd = os.open(directory, getattr(os, "O_TMPFILE", 0) | os.O_WRONLY, 0o600)
    except (OSError, ValueError):
        return False
    os.close(fd)
    return bool(getattr(os, "O_TMPFILE", 0))


def fs_type(path: str) -> str:
    r = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
    return r.stdout.strip() or "?"


# ------------------------------------------------------------ bulk series

def bench_bulk(workdir: str, quick: bool, repeat: int, log) -> dict:
    exe = build_ceiling(workdir)
    places = {"tmpfs": "/dev/shm" if os.path.isdir("/dev/shm") else None,
              "disk": os.environ.get("EFSFAST_BENCH_DISK", "/var/tmp")}
    sizes = {16 * KIB: 1000 if quick else 10_000, MIB: 40 if quick else 400}
    workers = WORKERS[:3] if quick else WORKERS
    out: dict = {"cpus": os.cpu_count(), "workers": list(workers), "places": {}}
    if isinstance(exe, dict):
        out["ceiling"] = exe
    for place, base in places.items():
        if base is None or not os.path.isdir(base):
            out["places"][place] = {"skipped": f"no {place} directory"}
            continue
        root = tempfile.mkdtemp(prefix="efsfast-bench-bulk-", dir=base)
        try:
            out["places"][place] = _bench_place(root, exe, sizes, workers, repeat, log, place)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return out


def _bench_place(root: str, exe, sizes: Dict[int, int], workers, repeat: int, log,
                 place: str) -> dict:
    res: dict = {"fs": fs_type(root), "tmpfile": has_tmpfile(root), "series": {}}
    for size, count in sizes.items():
        streams = [_stream(size, seed=i) for i in range(8)]
        srcs = [streams[i % len(streams)] for i in range(count)]
        set_dir = os.path.join(root, f"set-{size}")       # a backup set on the same place
        os.makedirs(set_dir)
        for i, s in enumerate(srcs):
            with open(os.path.join(set_dir, f"f{i}.efsraw"), "wb") as f:
                f.write(s)
        series: dict = {}
        for w in workers:
            def fresh(tag: str) -> str:
                d = os.path.join(root, tag)
                shutil.rmtree(d, ignore_errors=True)
                os.makedirs(d)
                return d

            def many(w=w):
                d = fresh("many")
                r = restore_many([(os.path.join(d, f"f{i}"), s) for i, s in enumerate(srcs)],
                                 workers=w)
                if r.failures:
                    raise r.failures[0].error

            def tree(w=w):
                d = os.path.join(root, "tree")
                shutil.rmtree(d, ignore_errors=True)
                r = restore_tree(set_dir, d, workers=w)
                if r.failures:
                    raise r.failures[0].error

            cases: Dict[str, Callable[[], object]] = {"restore_many": many, "restore-tree": tree}
            if isinstance(exe, str):
                mode = "tmpfile" if res["tmpfile"] else "link"

                def ceiling(w=w, mode=mode):
                    d = fresh("ceiling")
                    subprocess.run([exe, d, str(count), str(size), str(w), mode], check=True,
                                   capture_output=True)
                cases = {"C ceiling": ceiling, **cases}
            times: Dict[str, List[float]] = {k: [] for k in cases}
            for _ in range(repeat):
                for name, fn in cases.items():
                    times[name].append(_timed(fn))
            point = {}
            for name, ts in times.items():
                best = min(ts)
                point[name] = {"files_per_s": count / best, "gbps": count * size / best / 1e9,
                               "spread": (max(ts) - best) / best, "best_s": best}
            if "C ceiling" in point:
                for name in ("restore_many", "restore-tree"):
                    point[name]["vs_ceiling"] = (point[name]["files_per_s"]
                                                 / point["C ceiling"]["files_per_s"])
            series[w] = point
            log(f"  bulk {place} {size >> 10} KiB x{count}, {w} worker(s): " + ", ".join(
                f"{k}={v['files_per_s']:,.0f}/s" for k, v in point.items()))
        res["series"][size] = {"count": count, "points": series}
        shutil.rmtree(set_dir, ignore_errors=True)
    return res


# ------------------------------------------------------------ ntfs-3g vs tar

def ntfs3g_missing() -> str:
    missing = [t for t in ("mkntfs", "ntfs-3g", "tar") if shutil.which(t) is None]
    if missing:
        return f"missing: {', '.join(missing)} (apt-get install ntfs-3g tar)"
    if os.geteuid() != 0:
        return "mounting ntfs-3g over FUSE needs root"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    return ""


class _Mount:
    """A fresh NTFS volume on an image in tmpfs, mounted with efs_raw: so
    that ntfs-3g, not a disk, sets the pace."""

    def __init__(self, base: str, size: int):
        self.image = os.path.join(base, "ntfs.img")
        self.mnt = os.path.join(base, "mnt")
        os.makedirs(self.mnt)
        with open(self.image, "wb") as f:
            f.truncate(size)
        subprocess.run(["mkntfs", "-F", "-q", "-Q", self.image], check=True, capture_output=True)
        subprocess.run(["ntfs-3g", "-o", "efs_raw", self.image, self.mnt], check=True,
                       capture_output=True)

    def close(self) -> None:
        for _ in range(50):
            if subprocess.run(["umount", self.mnt], capture_output=True).returncode == 0:
                return
            import time
            time.sleep(0.1)
        subprocess.run(["umount", "-l", self.mnt], capture_output=True)


def _efsfast(*args: str) -> List[str]:
    return [sys.executable, "-m", "efsfast", *args]


def _syscalls(cmd: List[str]) -> Optional[int]:
    """Total system calls of a command and its threads (strace -c -f)."""
    if shutil.which("strace") is None:
        return None
    fd, out = tempfile.mkstemp(prefix="efsfast-strace-")
    os.close(fd)
    try:
        subprocess.run(["strace", "-f", "-c", "-o", out, *cmd], check=True, capture_output=True)
        with open(out) as f:
            m = re.search(r"^-+.*\n\s*[\d.]+\s+[\d.]+\s+\d*\s+(\d+)\s+\d*\s*total", f.read(), re.M)
        return int(m.group(1)) if m else None
    finally:
        os.unlink(out)


# FUSE opcodes (linux/fuse.h) of the requests ntfs-3g serves for these jobs
FUSE_OPCODES = {1: "LOOKUP", 2: "FORGET", 3: "GETATTR", 4: "SETATTR", 8: "MKNOD", 9: "MKDIR",
                10: "UNLINK", 11: "RMDIR", 12: "RENAME", 13: "LINK", 14: "OPEN", 15: "READ",
                16: "WRITE", 17: "STATFS", 18: "RELEASE", 20: "FSYNC", 21: "SETXATTR",
                22: "GETXATTR", 23: "LISTXATTR", 24: "REMOVEXATTR", 25: "FLUSH", 27: "OPENDIR",
                28: "READDIR", 29: "RELEASEDIR", 34: "ACCESS", 35: "CREATE", 42: "BATCH_FORGET",
                44: "READDIRPLUS", 45: "RENAME2"}
_FUSE_READ = re.compile(r'read\(\d+, "((?:\\x[0-9a-f]{2}){8})')


def _daemon_pid(image: str) -> Optional[int]:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"ntfs-3g" and os.fsencode(image) in argv:
            return int(pid)
    return None


def _fuse_requests(cmd: List[str], daemon: Optional[int]) -> Optional[Dict[str, int]]:
    """The requests the FUSE daemon reads from /dev/fuse while ``cmd`` runs,
    by opcode (strace attached to the daemon; bytes 4-7 of each request are
    its opcode): the round trips that cost on ntfs-3g."""
    import time
    if daemon is None or shutil.which("strace") is None:
        return None
    fd, out = tempfile.mkstemp(prefix="efsfast-fuse-")
    os.close(fd)
    tracer = subprocess.Popen(["strace", "-f", "-p", str(daemon), "-e", "trace=read", "-xx",
                               "-s", "8", "-o", out], stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)                  # attached to every daemon thread
        subprocess.run(cmd, check=True, capture_output=True)
        time.sleep(0.3)                  # the last replies (RELEASE, FORGET) are read
    finally:
        tracer.terminate()
        tracer.wait()
    counts: Dict[str, int] = {}
    try:
        with open(out) as f:
            for line in f:
                m = _FUSE_READ.search(line)
                if m:
                    b = bytes(int(x, 16) for x in m.group(1).split("\\x")[1:])
                    op = int.from_bytes(b[4:8], "little")
                    name = FUSE_OPCODES.get(op, str(op))
                    counts[name] = counts.get(name, 0) + 1
    finally:
        os.unlink(out)
    return counts


TAR_X = ["tar", "--xattrs", "--xattrs-include=user.*"]


def bench_ntfs3g(workdir: str, quick: bool, repeat: int, log) -> dict:
    why = ntfs3g_missing()
    if why:
        return {"skipped": why}
    count = 300 if quick else 2000
    # 10,000-byte files: ciphertext 10,240 bytes, not a multiple of the
    # cluster, so tar -c is not hit by ntfs-3g's trailer bug (README)
    size = 10_000
    base = tempfile.mkdtemp(prefix="efsfast-bench-ntfs-", dir="/dev/shm")
    vol = None
    try:
        set_dir = os.path.join(base, "set")
        os.makedirs(set_dir)
        streams = [_stream(size, seed=i) for i in range(8)]
        for i in range(count):
            with open(os.path.join(set_dir, f"f{i:05d}.efsraw"), "wb") as f:
                f.write(streams[i % len(streams)])
        # the same tree in the efs_raw layout on tmpfs, made into a tar: what
        # a Linux user restores with tar
        layout = os.path.join(base, "layout")
        subprocess.run(_efsfast("restore-tree", "--quiet", set_dir, layout), check=True,
                       capture_output=True)
        tarball = os.path.join(base, "set.tar")
        subprocess.run([*TAR_X, "-cf", tarball, "-C", layout, "."], check=True, capture_output=True)
        big = os.path.join(base, "big.efsraw")
        big_size = 32 * MIB if quick else 256 * MIB
        with open(big, "wb") as f:
            f.write(_stream(big_size))
        big_layout = os.path.join(base, "big.layout")
        subprocess.run(_efsfast("restore", big, big_layout), check=True, capture_output=True)

        vol = _Mount(base, (2 << 30) if not quick else (512 << 20))
        mnt = vol.mnt
        seq = [0]

        def target(tag: str) -> str:
            seq[0] += 1
            return os.path.join(mnt, f"{tag}{seq[0]}")

        def run(cmd: List[str]) -> None:
            subprocess.run(cmd, check=True, capture_output=True)

        def restore_tree_cmd(workers: Optional[int]) -> Callable[[], None]:
            extra = [] if workers is None else ["--workers", str(workers)]
            return lambda: run(_efsfast("restore-tree", "--quiet", *extra, set_dir, target("r")))

        def tar_x() -> None:
            d = target("t")
            os.makedirs(d)
            run([*TAR_X, "-xf", tarball, "-C", d])

        cases = {"efsfast restore-tree (default workers)": restore_tree_cmd(None),
                 "efsfast restore-tree --workers 1": restore_tree_cmd(1),
                 "tar -x": tar_x}
        restore_times = _interleave(cases, repeat)
        # back up a tree that is on the volume
        src_tree = os.path.join(mnt, "src")
        run(_efsfast("restore-tree", "--quiet", set_dir, src_tree))
        out_base = os.path.join(base, "out")

        def backup_tree() -> None:
            d = out_base + str(seq[0])
            seq[0] += 1
            run(_efsfast("backup-tree", "--quiet", src_tree, d))
            shutil.rmtree(d)

        def tar_c() -> None:
            p = out_base + str(seq[0]) + ".tar"
            seq[0] += 1
            run([*TAR_X, "-cf", p, "-C", src_tree, "."])
            os.unlink(p)
        backup_times = _interleave({"efsfast backup-tree": backup_tree, "tar -c": tar_c}, repeat)

        def big_restore() -> None:
            p = target("big")
            run(_efsfast("restore", big, p))
            os.unlink(p)

        def big_cp() -> None:
            p = target("bigcp")
            run(["cp", big_layout, p])
            os.unlink(p)
        big_times = _interleave({"efsfast restore": big_restore, "cp": big_cp}, repeat)

        # system calls per file, each side over the same files, less the
        # same command over an empty set (interpreter start-up)
        empty = os.path.join(base, "empty")
        os.makedirs(empty)
        empty_tar = os.path.join(base, "empty.tar")
        run(["tar", "-cf", empty_tar, "-T", "/dev/null"])
        calls: Dict[str, Optional[float]] = {}
        fuse: Dict[str, Optional[dict]] = {}
        daemon = _daemon_pid(vol.image)

        def per_file(name: str, cmd_full, cmd_empty, prepare=lambda: None) -> None:
            """System calls of the command (strace -c -f) and requests the
            daemon served, per file, less the same command over nothing."""
            prepare()
            a, b = _syscalls(cmd_full[0]), _syscalls(cmd_empty[0])
            calls[name] = None if a is None or b is None else (a - b) / count
            prepare()
            fa, fb = _fuse_requests(cmd_full[1], daemon), _fuse_requests(cmd_empty[1], daemon)
            if fa is None or fb is None:
                fuse[name] = None
                return
            ops = {k: (fa.get(k, 0) - fb.get(k, 0)) / count for k in fa}
            fuse[name] = {"total": sum(ops.values()),
                          "by_opcode": {k: v for k, v in sorted(ops.items(), key=lambda kv: -kv[1])
                                        if v >= 0.05}}

        per_file("efsfast restore-tree",
                 tuple(_efsfast("restore-tree", "--quiet", set_dir, target("s")) for _ in "ab"),
                 tuple(_efsfast("restore-tree", "--quiet", empty, target("s")) for _ in "ab"))
        tx = [target("st") for _ in range(4)]
        per_file("tar -x",
                 ([*TAR_X, "-xf", tarball, "-C", tx[0]], [*TAR_X, "-xf", tarball, "-C", tx[1]]),
                 ([*TAR_X, "-xf", empty_tar, "-C", tx[2]], [*TAR_X, "-xf", empty_tar, "-C", tx[3]]),
                 prepare=lambda: [os.makedirs(d, exist_ok=True) for d in tx])
        outs = [out_base + f"-s{i}" for i in range(4)]
        per_file("efsfast backup-tree",
                 (_efsfast("backup-tree", "--quiet", src_tree, outs[0]),
                  _efsfast("backup-tree", "--quiet", src_tree, outs[1])),
                 (_efsfast("backup-tree", "--quiet", empty, outs[2]),
                  _efsfast("backup-tree", "--quiet", empty, outs[3])))
        per_file("tar -c",
                 ([*TAR_X, "-cf", outs[0] + ".tar", "-C", src_tree, "."],
                  [*TAR_X, "-cf", outs[1] + ".tar", "-C", src_tree, "."]),
                 ([*TAR_X, "-cf", outs[2] + ".tar", "-C", empty, "."],
                  [*TAR_X, "-cf", outs[3] + ".tar", "-C", empty, "."]))
        res = {"count": count, "size": size, "big_size": big_size,
               "restore": restore_times, "backup": backup_times, "big": big_times,
               "syscalls_per_file": calls, "fuse_requests_per_file": fuse}
        log("  ntfs-3g restore: " + _fmt(restore_times) + "; backup: " + _fmt(backup_times)
            + "; large file: " + _fmt(big_times))
        log("  ntfs-3g system calls per file: " + ", ".join(
            f"{k}={v:.1f}" if v is not None else f"{k}=?" for k, v in calls.items()))
        log("  ntfs-3g FUSE requests per file: " + ", ".join(
            f"{k}={v['total']:.1f}" if v else f"{k}=?" for k, v in fuse.items()))
        return res
    finally:
        if vol is not None:
            vol.close()
        shutil.rmtree(base, ignore_errors=True)


def _interleave(cases: Dict[str, Callable[[], None]], repeat: int) -> dict:
    times: Dict[str, List[float]] = {k: [] for k in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            times[name].append(_timed(fn))
    return {k: {"best_s": min(v), "spread": (max(v) - min(v)) / min(v)} for k, v in times.items()}


def _fmt(times: dict) -> str:
    return ", ".join(f"{k}={v['best_s']:.2f}s" for k, v in times.items())


# ------------------------------------------------------------ reports

def bulk_targets(r: dict) -> List[dict]:
    """restore_many >= 0.7x the C ceiling at every worker count, for every
    size and place; throughput never falls when workers are added."""
    out: List[dict] = []
    for place, res in r.get("places", {}).items():
        for size, s in res.get("series", {}).items():
            pts = s["points"]
            label = f"{place} {int(size) >> 10} KiB"
            ratios = [p["restore_many"].get("vs_ceiling") for p in pts.values()]
            if all(x is not None for x in ratios) and ratios:
                worst = min(ratios)
                out.append({"target": f"restore_many vs C ceiling, worst of 1–{max(map(int, pts))} "
                                      f"workers, {label}", "ratio": worst, "goal": 0.7,
                            "met": worst >= 0.7})
            rates = [p["restore_many"]["files_per_s"] for _, p in sorted(pts.items(),
                                                                          key=lambda kv: int(kv[0]))]
            falls = min((b / a for a, b in zip(rates, rates[1:])), default=1.0)
            out.append({"target": f"restore_many never slower with more workers, {label}",
                        "ratio": falls, "goal": 0.95, "met": falls >= 0.95,
                        "note": "worst ratio of a worker count's rate to the previous one's"})
    return out


def ntfs_targets(r: dict) -> List[dict]:
    if "skipped" in r:
        return []
    rt, bk, big = r["restore"], r["backup"], r["big"]
    tar_x = rt["tar -x"]["best_s"]
    out = [
        {"target": "ntfs-3g restore-tree (default workers) vs tar -x",
         "ratio": tar_x / rt["efsfast restore-tree (default workers)"]["best_s"], "goal": 1.5},
        {"target": "ntfs-3g restore-tree --workers 1 vs tar -x",
         "ratio": tar_x / rt["efsfast restore-tree --workers 1"]["best_s"], "goal": 1.0},
        {"target": "ntfs-3g backup-tree vs tar -c",
         "ratio": bk["tar -c"]["best_s"] / bk["efsfast backup-tree"]["best_s"], "goal": 1.0},
        {"target": "ntfs-3g large-file restore vs cp",
         "ratio": big["cp"]["best_s"] / big["efsfast restore"]["best_s"], "goal": 0.95},
    ]
    fuse = r.get("fuse_requests_per_file", {})
    for ours, theirs in (("efsfast restore-tree", "tar -x"), ("efsfast backup-tree", "tar -c")):
        if fuse.get(ours) and fuse.get(theirs):
            out.append({"target": f"ntfs-3g FUSE requests per file, {theirs} / {ours}",
                        "ratio": fuse[theirs]["total"] / fuse[ours]["total"], "goal": 1.0})
    for t in out:
        t["met"] = t["ratio"] >= t["goal"]
    return out


def report_lines(bulk: dict, ntfs: dict) -> List[str]:
    lines: List[str] = []
    if bulk:
        lines += ["", f"## Bulk restores against the C ceiling (files/s, best; spread in brackets;"
                      f" {bulk.get('cpus')} CPUs)", ""]
        if "ceiling" in bulk:
            lines.append(f"C ceiling skipped: {bulk['ceiling']['skipped']}")
        for place, res in bulk.get("places", {}).items():
            if "skipped" in res:
                lines.append(f"{place}: skipped: {res['skipped']}")
                continue
            for size, s in res["series"].items():
                lines += ["", f"### {place} ({res['fs']}), {s['count']:,} files of "
                              f"{int(size) >> 10} KiB", ""]
                names = list(next(iter(s["points"].values())).keys())
                lines.append("| workers | " + " | ".join(names) + " | restore_many / ceiling |")
                lines.append("| --- |" + " --- |" * (len(names) + 1))
                for w, p in s["points"].items():
                    vs = p["restore_many"].get("vs_ceiling")
                    lines.append(f"| {w} | " + " | ".join(
                        f"{p[n]['files_per_s']:,.0f} ({p[n]['spread']:.0%})" for n in names)
                        + f" | {vs:.2f}× |" if vs is not None else " | – |")
    if ntfs:
        lines += ["", "## ntfs-3g `efs_raw` mount (image on tmpfs) against tar and cp", ""]
        if "skipped" in ntfs:
            lines.append(f"skipped: {ntfs['skipped']}")
        else:
            lines.append(f"{ntfs['count']:,} files of {ntfs['size']:,} bytes; one file of "
                         f"{ntfs['big_size'] >> 20} MiB")
            lines += ["", "| command | seconds (best) | spread |", "| --- | --- | --- |"]
            for group in ("restore", "backup", "big"):
                for k, v in ntfs[group].items():
                    lines.append(f"| {k} | {v['best_s']:.3f} | {v['spread']:.0%} |")
            lines += ["", "| command | system calls per file (strace -c -f, less start-up) |",
                      "| --- | --- |"]
            for k, v in ntfs["syscalls_per_file"].items():
                lines.append(f"| {k} | {'?' if v is None else f'{v:.1f}'} |")
            fuse = ntfs.get("fuse_requests_per_file", {})
            if fuse:
                lines += ["", "| command | FUSE requests per file (served by the ntfs-3g daemon) "
                              "| by opcode |", "| --- | --- | --- |"]
                for k, v in fuse.items():
                    lines.append(f"| {k} | " + ("? | ?" if not v else f"{v['total']:.1f} | " + ", ".join(
                        f"{op} {n:.1f}" for op, n in v["by_opcode"].items())) + " |")
    return lines


def plot_bulk(bulk: dict, path: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    panels = [(place, size, s) for place, res in bulk.get("places", {}).items()
              if "series" in res for size, s in res["series"].items()]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), squeeze=False)
    for ax, (place, size, s) in zip(axes[0], panels):
        ws = [int(w) for w in s["points"]]
        for name in next(iter(s["points"].values())):
            style = {"linestyle": "--", "color": "black"} if name == "C ceiling" else {}
            ax.plot(ws, [p[name]["files_per_s"] for p in s["points"].values()], marker="o",
                    label=name, **style)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ws)
        ax.set_xticklabels([str(w) for w in ws])
        ax.set_xlabel("workers / threads")
        ax.set_ylabel("files/s (best of N)")
        ax.set_title(f"{place}, {int(size) >> 10} KiB files")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Bulk restore vs the C ceiling ({bulk.get('cpus')} CPUs)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
