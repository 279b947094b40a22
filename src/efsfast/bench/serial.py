"""The serial cost per item, and what it allows on many cores.

Amdahl's law: a job of n items whose per-item time is a serial part s (the
GIL, or any section one thread at a time) and a parallel part p takes
``n (s + p / N)`` on N workers.  The C ceiling (benchmarks/bulk_ceiling.c:
the same files made the way a no-replace restore must, no Python) takes
``n c / N`` at best.  So efsfast can reach at most ``c / (N s + p)`` of the
ceiling on N cores: about 2 us of serial time per 16 KiB item is what
0.7x at 16 workers allows.

Two measurements of s, per job:
- **direct**: in the C bulk paths the workers run without the GIL and the
  calling thread does every item's Python work (planning the jobs, making
  the results), before or after the workers run; its CPU time per item
  (``time.thread_time``) is the serial part.
- **fitted**: ``T(N) = s + p / N`` fitted (least squares) to the times per
  item at 1..16 workers, where the machine has the cores for it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Mapping, Optional, Set, Tuple, Union

from ..api import backup_many, restore_many
from ..backupset.restore import restore_set
from ..backupset.sinks import FolderSink
from ..backupset.writer import backup_set
from ..crypto import forked
from ..tree import restore_tree
from .bulk import build_ceiling, has_tmpfile
from .timing import KIB, Log, Results, make_stream

SIZE = 16 * KIB
# the ceiling ratio Amdahl's law must allow at 16 workers
GOAL_AT_16 = 0.7


def _timed_in_caller(fn: Callable[[], object]) -> Tuple[float, float]:
    """(wall seconds, CPU seconds of the calling thread) of ``fn()``."""
    c, t = time.thread_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t, time.thread_time() - c


def fit(points: Dict[int, float]) -> Optional[Tuple[float, float]]:
    """(s, p) of ``t = s + p / N`` by least squares over {N: t}; None with
    fewer than two worker counts."""
    if len(points) < 2:
        return None
    xs = [1 / n for n in points]
    ys = list(points.values())
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    p = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var
    return my - p * mx, p


def bound(s: float, p: float, c: float, n: int) -> float:
    """Amdahl's bound on efsfast's rate over the ceiling's at ``n`` cores."""
    return c / (n * s + p)


class _Outputs:
    """Fresh folders below ``root`` for the runs' outputs, removed between
    runs by ``tidy()``, outside the timed part: 10,000 objects of 16 KiB a
    run, kept, would fill tmpfs and press on memory."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.seq = 0
        self.made: List[str] = []

    def fresh(self) -> str:
        self.seq += 1
        d = os.path.join(self.root, f"t{self.seq}")
        os.makedirs(d)
        self.made.append(d)
        return d

    def tidy(self) -> None:
        while self.made:
            shutil.rmtree(self.made.pop())


def _jobs(root: str, count: int,
          outputs: _Outputs) -> Dict[str, Callable[[int], Callable[[], object]]]:
    """name -> (workers -> one run), each on fresh targets (``outputs``)."""
    streams = [make_stream(SIZE, seed=i) for i in range(8)]
    srcs = [streams[i % len(streams)] for i in range(count)]
    folder = os.path.join(root, "folder")
    os.makedirs(folder)
    paths = []
    for i, s in enumerate(srcs):
        paths.append(os.path.join(folder, f"f{i:06d}.efsraw"))
        with open(paths[-1], "wb") as f:
            f.write(s)
    fresh = outputs.fresh

    def checked(r: object) -> None:
        failures = getattr(r, "failures", None)
        if failures:
            raise failures[0].error

    # the job lists restore_many and backup_many are given are made before
    # the timed call: they are the caller's code, not efsfast's (two
    # os.path.join per item cost ~1.35 us, more than backup_many's own part)
    def many_bytes(w: int) -> Callable[[], object]:
        d = fresh()
        jobs = [(os.path.join(d, f"f{i}"), s) for i, s in enumerate(srcs)]
        return lambda: checked(restore_many(jobs, workers=w))

    def many_paths(w: int) -> Callable[[], object]:
        d = fresh()
        jobs = [(os.path.join(d, f"f{i}"), p) for i, p in enumerate(paths)]
        return lambda: checked(restore_many(jobs, workers=w))

    def tree(w: int) -> Callable[[], object]:
        d = os.path.join(fresh(), "tree")
        return lambda: checked(restore_tree(folder, d, workers=w))

    restored = os.path.join(root, "restored")
    checked(restore_tree(folder, restored))

    def backups(w: int) -> Callable[[], object]:
        d = fresh()
        jobs = [(os.path.join(restored, f"f{i:06d}"), os.path.join(d, f"f{i}.efsraw"))
                for i in range(count)]
        return lambda: checked(backup_many(jobs, workers=w))

    set_dir = os.path.join(root, "set")
    checked(backup_set(restored, FolderSink(set_dir)))

    def set_backups(w: int) -> Callable[[], object]:
        d = os.path.join(fresh(), "set")
        return lambda: checked(backup_set(restored, FolderSink(d), workers=w))

    def set_restores(w: int) -> Callable[[], object]:
        d = os.path.join(fresh(), "tree")
        return lambda: checked(restore_set(set_dir, d, workers=w))

    return {"restore_many (bytes)": many_bytes, "restore_many (paths)": many_paths,
            "restore-tree (folder)": tree, "backup_many (paths)": backups,
            "backup-tree (folder set)": set_backups, "restore-tree (set, checked)": set_restores}


# decrypt-tree run by a process that does only that, as `efsfast
# decrypt-tree` does: [[calling thread's CPU seconds, ran alone], ...] of
# each run, the key loaded first
_DECRYPT_CHILD = """
import json, os, sys, time
from efsfast.crypto import forked
from efsfast.crypto.keys import load_keys
from efsfast.crypto.tree import decrypt_tree
set_dir, out, pem, workers, runs = sys.argv[1:6]
keys = load_keys(pem)
times = []
for k in range(int(runs)):
    alone = forked.alone()
    c = time.thread_time()
    r = decrypt_tree(set_dir, os.path.join(out, str(k)), keys, workers=int(workers), sync=False)
    cpu = time.thread_time() - c
    if r.failures:
        raise r.failures[0].error
    times.append([cpu, alone])
print(json.dumps(times))
"""

# decrypt-tree's runs: (workers -> one run here, (workers, runs) -> the CPU
# seconds and aloneness of each run in a process of its own)
DecryptRuns = Tuple[Callable[[int], Callable[[], object]],
                    Callable[[int, int], List[Tuple[float, bool]]]]


def _decrypt_job(root: str, count: int, outputs: _Outputs) -> DecryptRuns:
    """decrypt-tree of a set of ``count`` 16 KiB files encrypted for one
    RSA-2048 key (each file's FEK its own: one RSA decryption per item),
    run in this process and in one of its own."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from ..crypto import Key, encrypt
    from ..crypto.tree import decrypt_tree
    key = Key("bench", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    pem = os.path.join(root, "bench-key.pem")
    with open(pem, "wb") as f:
        f.write(key.private_key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    src = os.path.join(root, "plain-efs")
    os.makedirs(src)
    plain = os.urandom(SIZE)
    restore_many([(os.path.join(src, f"f{i:06d}"), encrypt(plain, [key]))
                  for i in range(count)])
    set_dir = os.path.join(root, "encrypted-set")
    backup_set(src, FolderSink(set_dir))
    shutil.rmtree(src)

    def run(w: int) -> Callable[[], object]:
        d = os.path.join(outputs.fresh(), "plain")

        def go() -> None:
            r = decrypt_tree(set_dir, d, [key], workers=w, sync=False)
            if r.failures:
                raise r.failures[0].error
        return go

    def own_process(w: int, runs: int) -> List[Tuple[float, bool]]:
        out = subprocess.run([sys.executable, "-c", _DECRYPT_CHILD, set_dir, outputs.fresh(),
                              pem, str(w), str(runs)], check=True, capture_output=True,
                             text=True)
        outputs.tidy()
        return [(float(cpu), bool(alone)) for cpu, alone in json.loads(out.stdout)]
    return run, own_process


def _resident_bytes() -> Optional[int]:
    """This process's resident memory (Linux), which a fork's cost grows with."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# jobs whose workers run Python (a thread pool per item): their GIL time is
# spent on the workers, not in the calling thread, so only the fit over a
# worker series measures their serial part.  None now: backup_many with path
# sinks runs in C (BulkExport) like restore_many, and restore-tree's probe of
# each stream runs in C on threads (tree._directory_streams).  CPU time is
# load-insensitive only roughly: on a loaded 2-core machine the calling
# thread's CPU per item read up to 2x what an idle one gives (caches, SMT,
# clock), still far steadier than wall times there
PYTHON_WORKERS: Set[str] = set()
# decrypt-tree's RSA holds the GIL, so at 2 or more workers its items go to
# forked processes (crypto/forked.py) and the calling thread plans, hands
# out and collects: its CPU per item there is the serial part (at 1 worker it
# does all the work itself).  Its parallel part is the RSA decryption, so its
# bound is a speedup over itself, not a ratio to the file ceiling
DECRYPT = "decrypt-tree (set, RSA-2048)"


def bench_serial(workdir: str, quick: bool, repeat: int, log: Log) -> Results:
    base = "/dev/shm" if os.path.isdir("/dev/shm") else workdir
    root = tempfile.mkdtemp(prefix="efsfast-bench-serial-", dir=base)
    count = 2000 if quick else 10_000
    cpus = os.cpu_count() or 1
    workers = [w for w in (1, 2, 4, 8, 16) if w <= cpus] or [1]
    out: Results = {"count": count, "size": SIZE, "cpus": cpus, "workers": workers, "jobs": {}}
    try:
        exe = build_ceiling(root)
        if isinstance(exe, str):
            mode = "tmpfile" if has_tmpfile(root) else "link"
            cs: Dict[int, float] = {}
            for w in workers:
                fastest: Optional[float] = None
                for _ in range(repeat):
                    d = tempfile.mkdtemp(dir=root)
                    r = subprocess.run([exe, d, str(count), str(SIZE), str(w), mode],
                                       check=True, capture_output=True, text=True)
                    t = float(r.stdout.split()[1])
                    fastest = t if fastest is None else min(fastest, t)
                    shutil.rmtree(d)
                assert fastest is not None
                cs[w] = fastest / count
            out["ceiling_per_item_s"] = cs
        else:
            out["ceiling"] = exe
        outputs = _Outputs(root)
        jobs = _jobs(root, count, outputs)
        jobs[DECRYPT], own_process = _decrypt_job(root, count // 10, outputs)
        for name, make in jobs.items():
            n = count // 10 if name == DECRYPT else count
            caller_at = max(workers) if name == DECRYPT else 1
            per_n: Dict[int, float] = {}
            caller = None
            for w in workers:
                best = None
                # s: the least CPU of the calling thread over the runs, as a
                # time is the best of them: it moves by 0.3-0.6 us per item
                # between runs of the same code in one process (taken from
                # the run with the best wall time before, 2026-12-06 18:19)
                least: Optional[float] = None
                for _ in range(repeat):
                    forked_ok = forked.alone()
                    wall, cpu = _timed_in_caller(make(w))
                    outputs.tidy()
                    if best is None or wall < best[0]:
                        best = (wall, cpu, forked_ok)
                    # (decrypt-tree's runs count where its items went to
                    # forked processes, at 2 workers or more)
                    if name != DECRYPT or (w > 1 and forked_ok):
                        least = cpu if least is None else min(least, cpu)
                assert best is not None
                per_n[w] = best[0] / n
                if w == caller_at and least is not None:
                    caller = least / n
            job: Results = {"per_item_s": per_n, "caller_cpu_per_item_s": caller, "items": n}
            if name == DECRYPT:
                add_speedup(job, caller)
                if max(workers) > 1:
                    job["parent_resident_bytes"] = _resident_bytes()
                    add_own_process(job, own_process(max(workers), repeat + 1), n)
            else:
                add_model(job, name, out.get("ceiling_per_item_s", {}).get(1),
                          out.get("ceiling_per_item_s", {}).get(16))
            out["jobs"][name] = job
            log(f"  serial {name}: {per_n[1] * 1e6:.1f} us per item at 1 worker, of which "
                f"{(caller or 0) * 1e6:.1f} us in the calling thread"
                + ("" if name not in PYTHON_WORKERS
                   else " (its workers run Python: the serial part is fitted)")
                + (f"; bound at 16 cores {job['model']['bound_16']:.2f}x the ceiling"
                   if "model" in job else ""))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


def add_model(job: Results, name: str, c1: Optional[float],
              c16: Optional[float] = None) -> None:
    """The fit and Amdahl's model of one job's measurements (in place).
    ``c16``: the ceiling's time per item as measured on 16 threads, where
    the machine has them: the bound against the ceiling as it scales in
    fact (on tmpfs it stops at ~4 threads), ``c16 / (s + p / 16)``."""
    per_n = {int(k): v for k, v in job["per_item_s"].items()}
    caller = job.get("caller_cpu_per_item_s")
    f = fit(per_n) if len(per_n) >= 3 else None
    if f is not None:
        # a negative parallel part: the job gets slower with more workers
        # (contention), which Amdahl's law does not describe; its serial part
        # is then at least its best time per item at any worker count
        job["fit"] = {"serial_s": f[0], "parallel_s": f[1], "amdahl": f[1] >= 0}
        if f[1] < 0:
            f = (min(per_n.values()), 0.0)
    direct = name not in PYTHON_WORKERS
    job["serial_from"] = ("calling thread" if direct else
                          None if f is None else "fit" if job["fit"]["amdahl"]
                          else "best time per item (slower with more workers)")
    parts = ((caller or 0.0, per_n[1] - (caller or 0.0)) if direct else f)
    if c1 and parts is not None:
        s, p = parts
        job["model"] = {"serial_s": s, "parallel_s": p, "ceiling_s": c1,
                        "bound_16": bound(s, p, c1, 16), "bound_64": bound(s, p, c1, 64),
                        "serial_budget_16_s": max(c1 / GOAL_AT_16 - p, 0.0) / 16}
        if c16:
            job["model"].update({"ceiling_16_s": c16, "bound_16_measured": c16 / (s + p / 16),
                                 "serial_budget_16_measured_s":
                                     max(c16 / GOAL_AT_16 - p / 16, 0.0)})


def add_speedup(job: Results, caller: Optional[float]) -> None:
    """A job measured against itself: s the calling thread's CPU per item
    where the work runs elsewhere, p the rest of its time per item at 1
    worker; Amdahl's bound on its speedup over 1 worker at N cores is
    (s + p) / (s + p / N)."""
    t1 = _at(job["per_item_s"], 1)
    if caller is None:
        return
    s, p = caller, max(t1 - caller, 0.0)
    job["speedup"] = {"serial_s": s, "parallel_s": p,
                      "bound_16": (s + p) / (s + p / 16), "bound_64": (s + p) / (s + p / 64)}


def add_own_process(job: Results, runs: List[Tuple[float, bool]], n: int) -> None:
    """decrypt-tree's speedup bound from runs in a process of its own (in
    place): s the least CPU per item of the calling thread over the runs
    after the first (whose extra is what its first use imports, once per
    process), p as measured here; only runs whose items went to forked
    processes count."""
    first = runs[0][0] / n if runs and runs[0][1] else None
    later = [cpu / n for cpu, alone in runs[1:] if alone]
    out: Results = {"first_run_cpu_per_item_s": first, "runs": len(runs)}
    sp = job.get("speedup")
    if later and sp is not None:
        s = min(later)
        p = max(_at(job["per_item_s"], 1) - s, 0.0)
        out.update({"serial_s": s, "parallel_s": p, "bound_16": (s + p) / (s + p / 16),
                    "bound_64": (s + p) / (s + p / 64)})
    job["own_process"] = out


def serial_targets(r: Results) -> List[Results]:
    out: List[Results] = []
    for name, job in r.get("jobs", {}).items():
        m = job.get("model")
        if m:
            met = m["bound_16"] >= GOAL_AT_16
            t: Results = {
                "target": f"Amdahl bound at 16 cores vs the C ceiling, {name}",
                "ratio": m["bound_16"], "goal": GOAL_AT_16, "met": met,
                "note": f"serial {m['serial_s'] * 1e6:.1f} us + parallel "
                        f"{m['parallel_s'] * 1e6:.1f} us per item; ceiling "
                        f"{m['ceiling_s'] * 1e6:.1f} us; budget at 16: "
                        f"{m['serial_budget_16_s'] * 1e6:.1f} us serial"}
            if not met:
                t["limit"] = _bound_limit(m)
            out.append(t)
    return out


def _bound_limit(m: Results) -> str:
    """What keeps a job under 0.7x of a linearly scaling ceiling, from its
    measured parts: the parallel part alone, and the serial budget left."""
    s, p, c = m["serial_s"], m["parallel_s"], m["ceiling_s"]
    lead = "the parallel part alone" if c / p < GOAL_AT_16 else "the serial part"
    text = (f"{lead}: with no serial time at all the "
            f"bound would be c / p = {c / p:.2f}x (p = {p * 1e6:.1f} us of file work and "
            f"checks per item on one thread, the ceiling's c = {c * 1e6:.1f} us), and 0.7x "
            f"of a ceiling that scales linearly leaves "
            f"{m['serial_budget_16_s'] * 1e6:.2f} us of serial time per item at 16 cores "
            f"(s = {s * 1e6:.2f} us: the calling thread's Python objects per item). The C "
            f"ceiling itself stops scaling at ~4 threads on tmpfs (the kernel's work on "
            f"one folder): benchmarks/README.md holds s against the ceiling measured on 16 "
            f"threads")
    if "bound_16_measured" in m:
        text += f"; against it, as measured here, {m['bound_16_measured']:.2f}x"
    return text


def _at(d: Mapping[Union[int, str], float], w: int) -> float:
    """A value by worker count, whether the keys are ints or (from JSON) strings."""
    return float(d[w] if w in d else d[str(w)])


def report_lines(r: Results) -> List[str]:
    if not r:
        return []
    lines = ["", f"## Serial cost per item and Amdahl's bound ({r['count']:,} items of "
                 f"{r['size'] >> 10} KiB on tmpfs, {r['cpus']} CPUs)", "",
             "s: the serial part per item — in the C bulk paths the CPU time of the calling "
             "thread, which does every item's Python work while the C workers run without the "
             "GIL (the least over the runs, as each time is their best); where workers run "
             "Python (a thread pool), s and p fitted to the worker "
             "series (needs 4 or more CPUs); p: the rest of the time per item at 1 worker; "
             "c: the C ceiling's time per item on 1 thread. Bound on N cores: c / (N s + p).",
             "",
             "| job | s (us) | p (us) | c (us) | bound at 16 | bound at 64 | s allowed for 0.7x "
             "at 16 (us) | fitted s, p over the series (us) | s from |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    if "ceiling" in r:
        lines.append(f"C ceiling skipped: {r['ceiling']['skipped']}")
    for name, job in r["jobs"].items():
        m = job.get("model")
        f = job.get("fit")
        fitted = f"{f['serial_s'] * 1e6:.1f}, {f['parallel_s'] * 1e6:.1f}" if f else "–"
        if name == DECRYPT:
            continue
        if not m:
            lines.append(f"| {name} | not measured on {r['cpus']} CPUs (needs the fit) | | | | "
                         f"| | {fitted} | |")
        else:
            lines.append(f"| {name} | {m['serial_s'] * 1e6:.1f} | {m['parallel_s'] * 1e6:.1f} | "
                         f"{m['ceiling_s'] * 1e6:.1f} | {m['bound_16']:.2f}× | "
                         f"{m['bound_64']:.2f}× | {m['serial_budget_16_s'] * 1e6:.1f} | "
                         f"{fitted} | {job.get('serial_from')} |")
    measured = [(name, job["model"]) for name, job in r["jobs"].items()
                if "bound_16_measured" in job.get("model", {})]
    if measured:
        lines += ["", "Against the ceiling as measured on 16 threads (c16, its own time per "
                      "item there; it does not scale linearly), the bound at 16 is "
                      "c16 / (s + p / 16):", ""]
        lines += [f"- {name}: {m['bound_16_measured']:.2f}× (c16 {m['ceiling_16_s'] * 1e6:.1f} "
                  f"us; s allowed for 0.7×: {m['serial_budget_16_measured_s'] * 1e6:.1f} us)"
                  for name, m in measured]
    d = r["jobs"].get(DECRYPT)
    if d is not None:
        sp = d.get("speedup")
        lines += ["", f"{DECRYPT}, {d.get('items', 0):,} items: its parallel part is the RSA "
                      "decryption of each file's FEK, in forked processes; s is the calling "
                      "thread's CPU per item at the most workers, p the rest of its time per "
                      "item at 1 worker. Amdahl's bound on its speedup over 1 worker: "
                      "(s + p) / (s + p / N).", ""]
        lines.append(f"- s {sp['serial_s'] * 1e6:.1f} us, p {sp['parallel_s'] * 1e6:.1f} us: "
                     f"at most {sp['bound_16']:.1f}× at 16 cores, {sp['bound_64']:.1f}× at 64"
                     if sp else "- s not measured: the process ran other threads, so the "
                                "items did not go to forked processes")
        own = d.get("own_process")
        rss = d.get("parent_resident_bytes")
        if own is not None and "serial_s" in own:
            first = own.get("first_run_cpu_per_item_s")
            lines.append(
                f"- in a process that does only that, as `efsfast decrypt-tree` does (the key "
                f"loaded first): s {own['serial_s'] * 1e6:.1f} us, the least of its runs after "
                f"the first, at most {own['bound_16']:.1f}× at 16 cores, "
                f"{own['bound_64']:.1f}× at 64"
                + (f"; its first run {first * 1e6:.1f} us per item, with what the first use "
                   "imports (once per process)" if first is not None else "")
                + (f". The bench's own process holds {rss / 2 ** 20:,.0f} MiB, and a fork "
                   "costs its parent the more, the more memory it maps" if rss else ""))
    lines += ["", "| job | " + " | ".join(f"{w} workers (us/item)" for w in r["workers"])
              + " |", "| --- |" + " --- |" * len(r["workers"])]
    if "ceiling_per_item_s" in r:
        lines.append("| C ceiling | " + " | ".join(
            f"{_at(r['ceiling_per_item_s'], w) * 1e6:.1f}" for w in r["workers"]) + " |")
    for name, job in r["jobs"].items():
        lines.append(f"| {name} | " + " | ".join(
            f"{_at(job['per_item_s'], w) * 1e6:.1f}" for w in r["workers"]) + " |")
    return lines
