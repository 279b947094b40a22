"""What every benchmark section shares: its inputs (valid raw streams), the
clock (best of N, variants interleaved round-robin, the spread), and the
load on the machine while a series ran.

A series taken while other work shares the CPUs measures that work as much
as efsfast (seen here: ratios 2-3x off at a load average of 7 on 2 cores),
so every series records the CPUs busy in the second before it (while the
benchmark itself runs nothing) and the 1-minute load average before and
after it, and is marked noisy where neighbours ran above
:data:`QUIET_LOAD_PER_CPU` per CPU; reports quote only quiet series.
"""
from __future__ import annotations

import math
import os
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional

from .. import raw

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
Results = Dict[str, Any]        # what a section measured, JSON-ready (results.json)
Log = Callable[[str], None]     # where a section reports its progress
# above this 1-minute load average per CPU a series is marked noisy
QUIET_LOAD_PER_CPU = 0.3


def make_stream(size: int, seed: int = 1) -> bytes:
    """A valid raw stream carrying ``size`` bytes of (non-zero, touched)
    ciphertext: a pattern, since its content does not matter for speed."""
    r = (size + 511) & ~511
    block = bytes((i * 131 + seed) & 0xFF for i in range(4096))
    cipher = (block * (r // 4096 + 1))[:r]
    return raw.build_raw(raw.synthetic_metadata(seed=seed),
                         [raw.DataStream("::$DATA", size, cipher)])


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def in_threads(fn: Callable[[], object], n: int) -> Callable[[], None]:
    """``fn`` run in ``n`` threads at once; the first error is raised after the join."""
    def run() -> None:
        errors: List[BaseException] = []

        def body() -> None:
            try:
                fn()
            except BaseException as exc:        # reported after the join
                errors.append(exc)
        ts = [threading.Thread(target=body) for _ in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errors:
            raise errors[0]
    return run


def measure(cases: Mapping[str, Callable[[], object]], repeat: int) -> Dict[str, List[float]]:
    """Run every case ``repeat`` times, round-robin; return the times."""
    times: Dict[str, List[float]] = {k: [] for k in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            times[name].append(timed(fn))
    return times


def summary(times: List[float], nbytes: int) -> Results:
    best = min(times)
    return {"best_s": best, "median_s": statistics.median(times), "worst_s": max(times),
            "spread": (max(times) - best) / best if best else 0.0,
            "gbps": nbytes / best / 1e9 if best else 0.0, "bytes": nbytes, "runs": len(times)}


def busy_cpus(interval: float = 1.0) -> Optional[float]:
    """How many CPUs were busy, on average, over the next ``interval``
    seconds (/proc/stat: every process and the kernel's own work).  Taken
    while a benchmark runs nothing itself, it is what neighbours run now,
    where the 1-minute load average would still hold the benchmark's own
    previous series (it decays over minutes)."""
    def sample() -> Optional[List[int]]:
        try:
            with open("/proc/stat") as f:
                fields = f.readline().split()
        except OSError:                     # (not Linux)
            return None
        return [int(x) for x in fields[1:]]
    first = sample()
    if first is None:
        return None
    time.sleep(interval)
    second = sample()
    if second is None:
        return None
    delta = [b - a for a, b in zip(first, second)]
    total = sum(delta[:8])                  # user .. steal (guest time is in user)
    idle = delta[3] + delta[4]              # idle, iowait
    return (total - idle) / total * (os.cpu_count() or 1) if total else None


def load_average() -> Optional[float]:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):       # (no load average on Windows)
        return None


@dataclass
class Load:
    """The 1-minute load average around one series, and whether it was quiet.

    ``before`` is what neighbours ran as the series began; ``after`` also
    holds the series's own threads (``own``: a busy worker adds up to 1.0 to
    the average), so it marks the series noisy only beyond them."""
    before: Optional[float]
    after: Optional[float]
    cpus: int
    own: int = 0
    busy_before: Optional[float] = None     # CPUs busy in the second before (busy_cpus)
    seconds: Optional[float] = None         # how long the series ran

    @property
    def per_cpu(self) -> Optional[float]:
        return None if self.before is None else self.before / self.cpus

    @property
    def noisy(self) -> bool:
        """Neighbours ran as the series began: the CPUs busy in the second
        before it where that was measured (the load average then still holds
        the benchmark's own previous series), else the load average; or the
        load rose during it beyond the series's own threads."""
        limit = QUIET_LOAD_PER_CPU * self.cpus
        began = self.busy_before if self.busy_before is not None else self.before
        # what the average held as the series began decays by e^(-t/60 s)
        # (the kernel's 1-minute average): only a rise beyond that counts
        held = 0.0
        if self.busy_before is not None and self.before is not None and self.seconds:
            held = self.before * math.exp(-self.seconds / 60.0)
        return ((began is not None and began > limit)
                or (self.after is not None and self.after > held + limit + self.own))

    def to_json(self) -> Results:
        return {"before": self.before, "after": self.after, "cpus": self.cpus,
                "own_threads": self.own, "busy_cpus_before": self.busy_before,
                "noisy": self.noisy}

    def note(self) -> str:
        if self.before is None or self.after is None:
            return "load not known"
        busy = ("" if self.busy_before is None else
                f", {self.busy_before:.2f} CPUs busy before")
        return (f"load {self.before:.2f} -> {self.after:.2f} on {self.cpus} CPUs{busy}"
                + (f" (NOISY: neighbours above {QUIET_LOAD_PER_CPU} per CPU)"
                   if self.noisy else ""))


class LoadWatch:
    """``with LoadWatch(own=threads) as w: ...`` then ``w.load``: the load
    around the block, ``own`` the most threads the block runs itself."""

    def __init__(self, own: int = 1) -> None:
        self.load = Load(None, None, os.cpu_count() or 1, own)
        self._start = 0.0

    def __enter__(self) -> "LoadWatch":
        self.load.busy_before = busy_cpus()
        self.load.before = load_average()
        self._start = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.load.after = load_average()
        self.load.seconds = time.monotonic() - self._start
