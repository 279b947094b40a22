"""s3:// sets against the two-step path through a local folder and rclone,
side by side in one run, against a local SeaweedFS (tests/s3_server.py).

Per tree (default 2,000 x 16 KiB and 64 x 16 MiB, efs_raw layout on tmpfs)
and per concurrency (1, 4, 16 requests in flight: efsfast --jobs, rclone
--transfers), interleaved round-robin, best of N:

  backup   efsfast backup-tree SRC s3://...           (one step)
           efsfast backup-tree SRC DIR; rclone copy DIR remote:...
  restore  efsfast restore-tree s3://... DEST          (one step)
           rclone copy remote:... DIR; efsfast restore-tree DIR DEST

Each command is a process of its own; its peak RSS comes from wait4.
Targets (issue): both directions at least 1.0x the two-step path.

    python benchmarks/s3_sets.py [--quick] [--rounds N] [--out benchmarks/results]

Take it on an idle machine: it moves gigabytes through one local server.
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
from typing import Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
KIB, MIB = 1 << 10, 1 << 20


def make_source(root: str, files: int, size: int) -> None:
    import efsfast
    meta = efsfast.synthetic_metadata(seed=1)
    for i in range(files):
        d = os.path.join(root, f"d{i % 8}")
        os.makedirs(d, exist_ok=True)
        block = hashlib.sha256(str(i).encode()).digest() * (((size + 511) & ~511) // 32 + 1)
        efsfast.restore(os.path.join(d, f"f{i:05d}.bin"), efsfast.build_raw(
            meta, [efsfast.DataStream("::$DATA", size, block[:(size + 511) & ~511])]))


def timed(argv: List[str], env: Dict[str, str]) -> Tuple[float, float]:
    """(seconds, peak RSS in MiB) of one command; raises where it fails."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {err[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run at a tiny size")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=None, help="write s3-sets.json and .md here")
    a = ap.parse_args()
    from s3_server import SeaweedServer
    rclone = shutil.which("rclone")
    if rclone is None:
        sys.exit("s3_sets: rclone is not installed (apt-get install rclone)")
    trees = [(20, 16 * KIB), (2, 1 * MIB)] if a.quick else [(2000, 16 * KIB), (64, 16 * MIB)]
    concurrency = [1, 4] if a.quick else [1, 4, 16]
    rounds = 1 if a.quick else a.rounds
    efs = [sys.executable, "-m", "efsfast"]
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    results: Dict[str, Dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="efsfast-s3sets-", dir=base) as work, \
            tempfile.TemporaryDirectory(prefix="efsfast-weed-") as weed_dir, \
            SeaweedServer(weed_dir) as server:
        server.make_bucket("bench")
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        env.update(server.env(), AWS_SHARED_CREDENTIALS_FILE=os.devnull,
                   AWS_CONFIG_FILE=os.devnull, RCLONE_CONFIG=os.path.join(work, "rclone.conf"),
                   RCLONE_CONFIG_SW_TYPE="s3", RCLONE_CONFIG_SW_PROVIDER="Other",
                   RCLONE_CONFIG_SW_ENDPOINT=server.endpoint, RCLONE_CONFIG_SW_REGION="us-east-1",
                   RCLONE_CONFIG_SW_ACCESS_KEY_ID=server.admin.access_key_id,
                   RCLONE_CONFIG_SW_SECRET_ACCESS_KEY=server.admin.secret_access_key)
        n = 0
        for files, size in trees:
            src = os.path.join(work, f"src-{files}x{size}")
            make_source(src, files, size)
            for conc in concurrency:
                key = f"{files} x {size // KIB} KiB, {conc} in flight"
                best: Dict[str, Tuple[float, float]] = {}
                for _r in range(rounds):
                    n += 1
                    scratch = os.path.join(work, f"run{n}")
                    os.makedirs(scratch)
                    url, two = f"s3://bench/one-{n}", f"bench/two-{n}"
                    jobs = ["--jobs", str(conc)]
                    rc = [rclone, "copy", "--transfers", str(conc), "--checkers", str(conc)]
                    steps = {
                        "backup-tree to s3": [efs + ["backup-tree", "--quiet", src, url] + jobs],
                        "backup-tree to folder + rclone copy up": [
                            efs + ["backup-tree", "--quiet", src, f"{scratch}/set"],
                            rc + [f"{scratch}/set", f"sw:{two}"]],
                        "restore-tree from s3": [
                            efs + ["restore-tree", "--quiet", url, f"{scratch}/r1"] + jobs],
                        "rclone copy down + restore-tree": [
                            rc + [f"sw:{url[5:]}", f"{scratch}/down"],
                            efs + ["restore-tree", "--quiet", f"{scratch}/down",
                                   f"{scratch}/r2"]],
                    }
                    for name, cmds in steps.items():
                        wall, rss = 0.0, 0.0
                        for argv in cmds:
                            w, m = timed(argv, env)
                            wall, rss = wall + w, max(rss, m)
                        if name not in best or wall < best[name][0]:
                            best[name] = (wall, rss)
                    shutil.rmtree(scratch)
                mb = files * size / 1e6
                results[key] = {name: {"seconds": round(w, 3), "MB/s": round(mb / w, 1),
                                       "peak_rss_mib": round(m, 1)}
                                for name, (w, m) in best.items()}
                r = results[key]
                r["ratio backup (two-step / one-step)"] = round(
                    best["backup-tree to folder + rclone copy up"][0]
                    / best["backup-tree to s3"][0], 2)
                r["ratio restore (two-step / one-step)"] = round(
                    best["rclone copy down + restore-tree"][0]
                    / best["restore-tree from s3"][0], 2)
                print(key, json.dumps(r), flush=True)
            shutil.rmtree(src)
    meta = {"machine": platform.platform(), "cpus": os.cpu_count(), "rounds": rounds,
            "load_after": os.getloadavg()[0], "quick": a.quick}
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "s3-sets.json"), "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)
        with open(os.path.join(a.out, "s3-sets.md"), "w") as f:
            f.write(f"# s3:// sets against folder + rclone ({meta['machine']}, "
                    f"{meta['cpus']} CPUs, best of {rounds})\n\n")
            f.write("| tree, concurrency | path | seconds | MB/s | peak RSS MiB |\n"
                    "| --- | --- | --- | --- | --- |\n")
            for key, r in results.items():
                for name, v in r.items():
                    if isinstance(v, dict):
                        f.write(f"| {key} | {name} | {v['seconds']} | {v['MB/s']} | "
                                f"{v['peak_rss_mib']} |\n")
                f.write(f"| {key} | ratios backup / restore | "
                        f"{r['ratio backup (two-step / one-step)']} / "
                        f"{r['ratio restore (two-step / one-step)']} | | |\n")


if __name__ == "__main__":
    main()
