"""Bulk benchmarks against the real ceilings: ``restore_many`` and
``restore-tree`` at 1, 2, 4, 8 and 16 workers against a C program that
creates the same files the way a no-replace restore must
(benchmarks/bulk_ceiling.c), on tmpfs and on the machine's disk.  The
ntfs-3g comparison with tar and cp is ntfs3g.py.

Run through ``efsfast bench`` (section ``bulk``); every point records the
load it ran under (timing.LoadWatch).  Every
point interleaves its variants round-robin and reports the best time and the
spread; nothing asserts a timing.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import Callable, Dict, List, Optional, Sequence, Union

from ..api import restore_many
from ..tree import restore_tree
from .timing import KIB, MIB, LoadWatch, Log, Results, make_stream, timed

WORKERS = (1, 2, 4, 8, 16)


# ------------------------------------------------------------ the C ceiling

def ceiling_source() -> Optional[str]:
    """benchmarks/bulk_ceiling.c of the checkout this package runs from (or
    of the current directory): the ceiling is part of the benchmarks, not of
    the installed package."""
    here = os.path.dirname(os.path.abspath(__file__))
    for base in (os.getcwd(), os.path.join(here, "..", "..", "..")):
        p = os.path.normpath(os.path.join(base, "benchmarks", "bulk_ceiling.c"))
        if os.path.isfile(p):
            return p
    return None


def build_ceiling(workdir: str) -> Union[str, Results]:
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

def bench_bulk(workdir: str, quick: bool, repeat: int, log: Log) -> Results:
    exe = build_ceiling(workdir)
    places = {"tmpfs": "/dev/shm" if os.path.isdir("/dev/shm") else None,
              "disk": os.environ.get("EFSFAST_BENCH_DISK", "/var/tmp")}
    sizes = {16 * KIB: 1000 if quick else 10_000, MIB: 40 if quick else 400}
    workers = WORKERS[:3] if quick else WORKERS
    out: Results = {"cpus": os.cpu_count(), "workers": list(workers), "places": {}}
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


def _bench_place(root: str, exe: Union[str, Results], sizes: Dict[int, int],
                 workers: Sequence[int], repeat: int, log: Log,
                 place: str) -> Results:
    res: Results = {"fs": fs_type(root), "tmpfile": has_tmpfile(root), "series": {}}
    for size, count in sizes.items():
        streams = [make_stream(size, seed=i) for i in range(8)]
        srcs = [streams[i % len(streams)] for i in range(count)]
        set_dir = os.path.join(root, f"set-{size}")       # a backup set on the same place
        os.makedirs(set_dir)
        for i, s in enumerate(srcs):
            with open(os.path.join(set_dir, f"f{i}.efsraw"), "wb") as f:
                f.write(s)
        series: Dict[int, Results] = {}     # per worker count
        loads: Dict[int, Results] = {}
        for w in workers:
            def fresh(tag: str) -> str:
                d = os.path.join(root, tag)
                shutil.rmtree(d, ignore_errors=True)
                os.makedirs(d)
                return d

            def many(w: int = w) -> None:
                d = fresh("many")
                r = restore_many([(os.path.join(d, f"f{i}"), s) for i, s in enumerate(srcs)],
                                 workers=w)
                if r.failures:
                    raise r.failures[0].error

            def tree(w: int = w) -> None:
                d = os.path.join(root, "tree")
                shutil.rmtree(d, ignore_errors=True)
                r = restore_tree(set_dir, d, workers=w)
                if r.failures:
                    raise r.failures[0].error

            cases: Dict[str, Callable[[], object]] = {"restore_many": many, "restore-tree": tree}
            if isinstance(exe, str):
                mode = "tmpfile" if res["tmpfile"] else "link"

                def ceiling(w: int = w, mode: str = mode) -> None:
                    d = fresh("ceiling")
                    subprocess.run([exe, d, str(count), str(size), str(w), mode], check=True,
                                   capture_output=True)
                cases = {"C ceiling": ceiling, **cases}
            times: Dict[str, List[float]] = {k: [] for k in cases}
            with LoadWatch(own=w) as watch:
                for _ in range(repeat):
                    for name, fn in cases.items():
                        times[name].append(timed(fn))
            point: Results = {}
            for name, ts in times.items():
                best = min(ts)
                point[name] = {"files_per_s": count / best, "gbps": count * size / best / 1e9,
                               "spread": (max(ts) - best) / best, "best_s": best}
            if "C ceiling" in point:
                for name in ("restore_many", "restore-tree"):
                    point[name]["vs_ceiling"] = (point[name]["files_per_s"]
                                                 / point["C ceiling"]["files_per_s"])
            series[w] = point
            loads[w] = watch.load.to_json()
            log(f"  bulk {place} {size >> 10} KiB x{count}, {w} worker(s): " + ", ".join(
                f"{k}={v['files_per_s']:,.0f}/s" for k, v in point.items()))
        res["series"][size] = {"count": count, "points": series, "loads": loads}
        shutil.rmtree(set_dir, ignore_errors=True)
    return res




# ------------------------------------------------------------ reports

def bulk_targets(r: Results) -> List[Results]:
    """restore_many >= 0.7x the C ceiling at every worker count, for every
    size and place; throughput never falls when workers are added."""
    out: List[Results] = []
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


def report_lines(bulk: Results) -> List[str]:
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
    return lines


def plot_bulk(bulk: Results, path: str) -> None:
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
