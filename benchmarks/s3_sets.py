"""s3:// sets against the two-step path through a local folder and rclone,
side by side in one run, against a local SeaweedFS (tests/s3_server.py).

Per tree (2,000 x 16 KiB and 64 x 16 MiB, efs_raw layout on tmpfs) and
per concurrency (1, 4 and 16 requests in flight: efsfast --jobs, rclone
--transfers and --checkers), the variants interleaved round-robin, best
of N with the spread:

  backup   efsfast backup-tree SRC s3://...           (one step)
           efsfast backup-tree SRC DIR; rclone copy DIR remote:...
  restore  efsfast restore-tree s3://... DEST          (one step)
           rclone copy remote:... DIR; efsfast restore-tree DIR DEST

Peak memory, each side on its own: the RSS high-water mark of every
efsfast process and of the rclone process (GNU time's %M: the peak of the
program itself, not of the benchmark it was started from), and of the
SeaweedFS server while each variant ran (its VmHWM, reset before each run
through /proc/PID/clear_refs).  Every series records the 1-minute load
average before and after it (efsfast.bench.timing.LoadWatch) and is marked
NOISY above 0.3 per CPU: a series taken under load measures the load.
rclone runs without AWS_CA_BUNDLE (the server is plain HTTP; rclone reads
that variable too and is configured through RCLONE_CONFIG_SW_*).
Targets (issue): both directions at least 1.0x the two-step path.

    python benchmarks/s3_sets.py [--quick] [--rounds N] [--out benchmarks/results]

--quick is a smoke run at a tiny size (its numbers mean nothing).  Take
the full run alone on an idle machine: it moves gigabytes through one
local server.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
KIB, MIB = 1 << 10, 1 << 20
GNU_TIME = "/usr/bin/time"
ONE_UP, TWO_UP = "backup-tree to s3", "backup-tree to folder + rclone copy up"
ONE_DOWN, TWO_DOWN = "restore-tree from s3", "rclone copy down + restore-tree"
PAIRS = (("backup", ONE_UP, TWO_UP), ("restore", ONE_DOWN, TWO_DOWN))


def make_source(root: str, files: int, size: int) -> None:
    import efsfast
    meta = efsfast.synthetic_metadata(seed=1)
    r = (size + 511) & ~511
    for i in range(files):
        d = os.path.join(root, f"d{i % 8}")
        os.makedirs(d, exist_ok=True)
        block = hashlib.sha256(str(i).encode()).digest() * (r // 32 + 1)
        efsfast.restore(os.path.join(d, f"f{i:05d}.bin"), efsfast.build_raw(
            meta, [efsfast.DataStream("::$DATA", size, block[:r])]))


def timed(argv: List[str], env: Dict[str, str], scratch: str) -> Tuple[float, Optional[float]]:
    """(seconds, peak RSS in MiB of the program) of one command; raises
    where it fails.  The peak comes from GNU time: wait4 here would report
    at least this process's own size (the kernel carries the memory peak of
    the process that was forked over into the program it execs)."""
    out = os.path.join(scratch, "rss")
    wrap = [GNU_TIME, "-f", "%M", "-o", out] if os.access(GNU_TIME, os.X_OK) else []
    t0 = time.perf_counter()
    p = subprocess.run(wrap + argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace")
        raise RuntimeError(f"{' '.join(argv)} failed: {err[-2000:]}")
    if not wrap:
        return wall, None
    with open(out) as f:
        return wall, int(f.read().split()[-1]) / 1024


class ServerPeak:
    """The server's RSS high-water mark (VmHWM) since the last reset, and
    its RSS at that reset (a Go heap grows and keeps what it took: the
    server's peak is read beside where it began)."""

    def __init__(self, pid: int):
        self.pid = pid

    def reset(self) -> Optional[float]:
        """Reset the peak to the RSS now, and return that RSS (MiB)."""
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as f:
                f.write("5")        # 5: reset the peak RSS to the current RSS
        except OSError:
            return None
        return self._read("VmRSS:")

    def mib(self) -> Optional[float]:
        return self._read("VmHWM:")

    def _read(self, field: str) -> Optional[float]:
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith(field):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return None


def peak(values: List[Optional[float]]) -> Optional[float]:
    known = [v for v in values if v is not None]
    return round(max(known), 1) if known else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run at a tiny size")
    ap.add_argument("--rounds", type=int, default=None,
                    help="best of N (default 3; 1 with --quick)")
    ap.add_argument("--out", default=None, help="write s3-sets.json and .md here")
    a = ap.parse_args()
    from s3_server import SeaweedServer
    from efsfast.bench.timing import LoadWatch, summary
    rclone = shutil.which("rclone")
    if rclone is None:
        sys.exit("s3_sets: rclone is not installed (apt-get install rclone)")
    trees = [(40, 16 * KIB), (2, 4 * MIB)] if a.quick else [(2000, 16 * KIB), (64, 16 * MIB)]
    concurrency = [1, 4, 16]
    rounds = a.rounds or (1 if a.quick else 3)
    efs = [sys.executable, "-m", "efsfast"]
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    results: Dict[str, Dict[str, Any]] = {}
    began = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="efsfast-s3sets-", dir=base) as work, \
            tempfile.TemporaryDirectory(prefix="efsfast-weed-") as weed_dir, \
            SeaweedServer(weed_dir) as server:
        server.make_bucket("bench")
        assert server.proc is not None
        weed = ServerPeak(server.proc.pid)
        env = dict(os.environ)
        env.update(server.env(), AWS_SHARED_CREDENTIALS_FILE=os.devnull,
                   AWS_CONFIG_FILE=os.devnull)
        rc_env = {k: v for k, v in env.items() if k != "AWS_CA_BUNDLE"}
        rc_env.update(RCLONE_CONFIG=os.path.join(work, "rclone.conf"),
                      RCLONE_CONFIG_SW_TYPE="s3", RCLONE_CONFIG_SW_PROVIDER="Other",
                      RCLONE_CONFIG_SW_ENDPOINT=server.endpoint,
                      RCLONE_CONFIG_SW_REGION="us-east-1",
                      RCLONE_CONFIG_SW_ACCESS_KEY_ID=server.admin.access_key_id,
                      RCLONE_CONFIG_SW_SECRET_ACCESS_KEY=server.admin.secret_access_key)
        n = 0
        for files, size in trees:
            src = os.path.join(work, f"src-{files}x{size}")
            make_source(src, files, size)
            nbytes = files * size
            for conc in concurrency:
                key = f"{files} x {size // KIB} KiB, {conc} in flight"
                times: Dict[str, List[float]] = {}
                rss: Dict[str, Dict[str, List[Optional[float]]]] = {}
                # its own runnable threads: the client's and the server's,
                # one request each in flight on either side (the server
                # answers each on a goroutine of its own), plus their main
                # threads; what loads the machine beyond them is not its own
                with LoadWatch(own=2 + 2 * conc) as watch:
                    for _r in range(rounds):
                        n += 1
                        scratch = os.path.join(work, f"run{n}")
                        os.makedirs(scratch)
                        url, two = f"s3://bench/one-{n}", f"bench/two-{n}"
                        jobs = ["--jobs", str(conc)]
                        rc = [rclone, "copy", "--transfers", str(conc), "--checkers", str(conc)]
                        steps = {
                            ONE_UP: [("efsfast", efs + ["backup-tree", "--quiet", src, url]
                                      + jobs)],
                            TWO_UP: [("efsfast", efs + ["backup-tree", "--quiet", src,
                                                        f"{scratch}/set"]),
                                     ("rclone", rc + [f"{scratch}/set", f"sw:{two}"])],
                            ONE_DOWN: [("efsfast", efs + ["restore-tree", "--quiet", url,
                                                          f"{scratch}/r1"] + jobs)],
                            TWO_DOWN: [("rclone", rc + [f"sw:{url[5:]}", f"{scratch}/down"]),
                                       ("efsfast", efs + ["restore-tree", "--quiet",
                                                          f"{scratch}/down",
                                                          f"{scratch}/r2"])],
                        }
                        for name, cmds in steps.items():
                            wall = 0.0
                            got = rss.setdefault(name, {"efsfast": [], "rclone": [],
                                                        "server": [], "server_start": []})
                            got["server_start"].append(weed.reset())
                            for who, argv in cmds:
                                w, m = timed(argv, rc_env if who == "rclone" else env,
                                             scratch)
                                wall += w
                                got[who].append(m)
                            got["server"].append(weed.mib())
                            times.setdefault(name, []).append(wall)
                        # (untimed) the round's objects go: the server keeps no gigabytes
                        for prefix in (url[5:], two):
                            subprocess.run([rclone, "purge", f"sw:{prefix}"], env=rc_env,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        shutil.rmtree(scratch)
                r: Dict[str, Any] = {"files": files, "size": size, "in_flight": conc,
                                     "load": watch.load.to_json()}
                for name, ts in times.items():
                    s = summary(ts, nbytes)
                    r[name] = {"seconds": round(s["best_s"], 3),
                               "MB/s": round(nbytes / s["best_s"] / 1e6, 1),
                               "spread": round(s["spread"], 3), "runs": s["runs"],
                               # (only the processes this path runs)
                               "peak_rss_mib": {who: peak(v) for who, v in rss[name].items()
                                                if v}}
                for what, one, two_step in PAIRS:
                    r[f"ratio {what} (two-step / one-step)"] = round(
                        r[two_step]["seconds"] / r[one]["seconds"], 2)
                results[key] = r
                print(key, ("NOISY " + watch.load.note()) if watch.load.noisy else "",
                      json.dumps(r), flush=True)
            shutil.rmtree(src)
    meta = {"when": began, "machine": platform.platform(), "cpus": os.cpu_count(),
            "rounds": rounds, "quick": a.quick, "rclone": _rclone_version(rclone),
            "peak_rss_from": "GNU time %M" if os.access(GNU_TIME, os.X_OK) else None}
    if a.out:
        write_reports(a.out, meta, results)


def _rclone_version(rclone: str) -> str:
    p = subprocess.run([rclone, "version"], capture_output=True, text=True)
    return (p.stdout.splitlines() or ["?"])[0]


def write_reports(out: str, meta: Dict[str, Any], results: Dict[str, Dict[str, Any]]) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "s3-sets.json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)
    def fmt(p: Dict[str, Optional[float]], who: str) -> str:
        if who not in p:
            return "–"              # the path runs no such process
        v = p[who]
        return "?" if v is None else f"{v:.0f}"
    noisy = [k for k, r in results.items() if r["load"]["noisy"]]
    lines = ["# s3:// sets against a local folder + rclone", "",
             f"{meta['when']} · {meta['machine']} · {meta['cpus']} CPUs · {meta['rclone']} · "
             f"a local SeaweedFS · best of {meta['rounds']}, variants interleaved"
             + (" · **quick smoke run: tiny trees, the numbers mean nothing**"
                if meta["quick"] else ""), ""]
    if noisy:
        lines += [f"**Noisy run**: {', '.join(noisy)} ran while other work loaded the machine "
                  "(1-minute load average above 0.3 per CPU); do not quote those numbers.", ""]
    lines += ["Seconds are the best run, spread (worst − best) / best. Peak RSS in MiB, each "
              "process on its own: efsfast (the largest of its commands), rclone, and the "
              "server while the variant ran (its peak, after the RSS it began the run with: "
              "its Go heap keeps what it took). A ratio above 1.0 means the one-step path is "
              "faster than the two-step one.", "",
              "| tree, in flight | path | seconds | spread | MB/s | efsfast | rclone | server |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for key, r in results.items():
        label = key + (" (noisy)" if r["load"]["noisy"] else "")
        for _what, one, two in PAIRS:
            for name in (one, two):
                v = r[name]
                p = v["peak_rss_mib"]
                lines.append(f"| {label} | {name} | {v['seconds']:.3f} | {v['spread']:.0%} | "
                             f"{v['MB/s']} | {fmt(p, 'efsfast')} | {fmt(p, 'rclone')} | "
                             f"{fmt(p, 'server')} (from {fmt(p, 'server_start')}) |")
        lines.append(f"| {label} | ratios backup / restore (two-step / one-step) | "
                     f"{r['ratio backup (two-step / one-step)']:.2f} / "
                     f"{r['ratio restore (two-step / one-step)']:.2f} | | | | | |")
    lines += ["", "## Load while each series ran", "",
              "| series | before | after | noisy |", "| --- | --- | --- | --- |"]
    for key, r in results.items():
        ld = r["load"]
        lines.append(f"| {key} | {fmt2(ld['before'])} | {fmt2(ld['after'])} | "
                     f"{'**yes**' if ld['noisy'] else 'no'} |")
    with open(os.path.join(out, "s3-sets.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def fmt2(v: Optional[float]) -> str:
    return "?" if v is None else f"{v:.2f}"


if __name__ == "__main__":
    main()
