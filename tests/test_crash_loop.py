"""kill -9 at random moments (docs/RELIABILITY.md, "Durability"): 102 kills
in all, 34 each of backup-tree into a folder set, backup-tree - into a file
and restore-tree, at seeded moments spread evenly over each command's
measured run time (interpreter start-up included); restore-tree up to 24
more, closing in on the few milliseconds its objects land in, where the
seeded moments all missed them.  After every kill:

- a folder set either passes verify-set or is recognisably incomplete (a
  partial manifest, no final one, every object it lists whole; or, killed
  before its first line, an empty one and no object), or holds no object at
  all (killed before it began);
- a tar stream either passes verify-set - or is rejected as truncated, by
  verify-set - and by restore-tree -;
- a restore destination holds only whole objects at their names (each
  one's raw stream is the set's; a folder killed between its temporary
  name and its own may leave that temporary, which the resume removes);
- a rerun (backup-tree --skip-existing, backup-tree - again, restore-tree
  --skip-existing) exits 0 and gives a set that passes verify-set, or a
  tree holding every object of the set and nothing else.

Small trees on tmpfs; the whole loop takes about 1-2 minutes on 2 CPUs.
"""
import hashlib
import io
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Tuple

import pytest

import efsfast
from efsfast import _winfs, cli
from efsfast.backupset import read_manifest, restore_stream, verify_set, verify_stream

MANIFEST = "efsfast-manifest.jsonl"
PARTIAL = "efsfast-manifest.partial.jsonl"
KILLS = 34                      # per command: 102 in all
SEED = 20261205
EFS = [sys.executable, "-m", "efsfast"]


def _tree(root, n: int = 60, seed: int = SEED) -> None:
    """n files of 1-120 KB in a plain folder, an encrypted folder and the
    top (the encrypted folder is an object too)."""
    rng = random.Random(seed)
    meta = efsfast.synthetic_metadata(seed=seed)
    (root / "plain").mkdir(parents=True)
    efsfast.restore(root / "enc", efsfast.build_raw(meta), directory=True)
    for i in range(n):
        size = rng.randrange(1000, 120_000)
        rel = ("plain/", "enc/", "")[i % 3] + f"f{i:03d}"
        efsfast.restore(root / rel, efsfast.build_raw(meta, [efsfast.DataStream(
            "::$DATA", size, rng.randbytes((size + 511) & ~511))]))


def _watch(p: subprocess.Popen, mark: Callable[[], bool]) -> None:
    """Until ``mark()`` (the job's work has begun) or the process ends."""
    while not mark() and p.poll() is None:
        time.sleep(0.0005)


def _timing(argv: List[str], mark: Callable[[], bool], reset: Callable[[], None],
            stdout=subprocess.DEVNULL) -> Tuple[float, float]:
    """(seconds until ``mark()`` holds, seconds from then to the end) of a
    complete run: start-up and work, the shorter of two runs each."""
    up = work = float("inf")
    for _ in range(2):
        reset()
        t = time.perf_counter()
        p = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.DEVNULL)
        _watch(p, mark)
        m = time.perf_counter()
        assert p.wait() == 0
        up, work = min(up, m - t), min(work, time.perf_counter() - m)
    return up, max(work, 0.01)


def _moments(up: float, work: float, seed: int) -> List[Tuple[bool, float]]:
    """KILLS moments as (after the mark?, delay), spread evenly: a quarter
    over start-up (from the start), the rest over the work (from the
    mark), each in its own equal slice, in a seeded order."""
    rng = random.Random(seed)
    early = KILLS // 4
    out = [(False, up * (k + rng.random()) / early) for k in range(early)]
    late = KILLS - early
    out += [(True, work * (k + rng.random()) / late) for k in range(late)]
    rng.shuffle(out)
    return out


def _kill_at(argv: List[str], moment: Tuple[bool, float], mark: Callable[[], bool],
             **kw) -> None:
    """Start the command and kill -9 it at ``moment`` (see _moments), unless
    it has finished by then."""
    after_mark, delay = moment
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, **kw)
    if after_mark:
        _watch(p, mark)
    try:
        p.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        return
    assert p.returncode == 0


def _sha(path) -> str:
    return hashlib.sha256(efsfast.backup(path, directory=os.path.isdir(path))).hexdigest()


def _files(root) -> List[str]:
    out = []
    for dirpath, dirs, files in os.walk(root):
        out += [os.path.join(dirpath, n) for n in dirs + files]
    return out


def _listed_objects_whole(set_dir, manifest) -> None:
    for e in manifest.entries:
        if e.has_stream and not e.failed and not e.ref:
            data = (set_dir / e.stored_name).read_bytes()
            assert (len(data), hashlib.sha256(data).hexdigest()) == (e.raw_size, e.sha256), e.path


@pytest.fixture(scope="module")
def source():
    """The source tree and its folder set, on tmpfs."""
    if not os.path.isdir("/dev/shm") or not hasattr(os, "setxattr"):
        pytest.skip("no tmpfs at /dev/shm (the loop's trees live there)")
    root = pathlib.Path(tempfile.mkdtemp(prefix="efsfast-crash-", dir="/dev/shm"))
    try:
        try:
            os.setxattr(root, "user.efsfast.probe", b"x")
        except OSError:
            pytest.skip("no user xattrs on /dev/shm (Linux >= 6.6 has them on tmpfs)")
        _tree(root / "src")
        assert cli.main(["backup-tree", str(root / "src"), str(root / "set"), "--quiet"]) == 0
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _report(kind: str, outcomes: Dict[str, int]) -> None:
    print(f"\n{kind}: {sum(outcomes.values())} kills: "
          + ", ".join(f"{v} {k}" for k, v in outcomes.items()))


def test_backup_tree_killed_at_random_moments(source, capsys):
    src, work = source / "src", source / "backup"
    work.mkdir()
    timing = work / "timing"
    up, busy = _timing(EFS + ["backup-tree", str(src), str(timing), "--quiet"],
                       lambda: (timing / PARTIAL).exists(),
                       lambda: shutil.rmtree(timing, ignore_errors=True))
    outcomes = {"before the set began": 0, "empty partial manifest": 0, "incomplete": 0,
                "ended, not published": 0, "complete": 0}
    for i, moment in enumerate(_moments(up, busy, SEED)):
        dest = work / f"set{i}"
        _kill_at(EFS + ["backup-tree", str(src), str(dest), "--quiet"], moment,
                 lambda: (dest / PARTIAL).exists(), stdout=subprocess.DEVNULL)
        if (dest / MANIFEST).exists():
            r = verify_set(dest)
            assert r.ok, [p.message for p in r.problems]
            outcomes["complete"] += 1
            continue            # (--skip-existing refuses a complete set: nothing to resume)
        if (dest / PARTIAL).exists() and (dest / PARTIAL).stat().st_size == 0:
            # killed between creating the partial manifest and its first
            # line: no object written yet, and no set to take for whole
            assert not [f for f in _files(dest) if f.endswith(".efsraw")], _files(dest)
            assert not verify_set(dest).ok
            outcomes["empty partial manifest"] += 1
        elif (dest / PARTIAL).exists():
            m = read_manifest(dest / PARTIAL, partial=True)
            _listed_objects_whole(dest, m)
            r = verify_set(dest)
            # (killed after the end line, before the manifest took its name:
            # ended but not published, and still no set to take for whole)
            assert not r.ok and any("incomplete" in p.message for p in r.problems)
            outcomes["ended, not published" if m.complete else "incomplete"] += 1
        else:
            assert not [f for f in _files(dest) if f.endswith(".efsraw")], _files(dest)
            outcomes["before the set began"] += 1
        capsys.readouterr()
        rc = cli.main(["backup-tree", str(src), str(dest), "--quiet", "--skip-existing"])
        assert rc == 0, capsys.readouterr()
        r = verify_set(dest)
        assert r.ok, [p.message for p in r.problems]
    _report("backup-tree", outcomes)
    assert outcomes["incomplete"] > 0       # some kills landed while objects were written


def test_backup_tree_to_a_stream_killed_at_random_moments(source, tmp_path):
    src = source / "src"

    def to_file(path):
        return open(path, "wb")

    def started(path) -> Callable[[], bool]:
        return lambda: path.stat().st_size > 0
    timing = tmp_path / "timing.tar"
    with to_file(timing) as f:
        up, busy = _timing(EFS + ["backup-tree", str(src), "-", "--quiet"], started(timing),
                           lambda: (f.seek(0), f.truncate()), stdout=f)
    outcomes = {"truncated": 0, "complete": 0}
    for i, moment in enumerate(_moments(up, busy, SEED + 1)):
        stream = tmp_path / f"s{i}.tar"
        with to_file(stream) as f:
            _kill_at(EFS + ["backup-tree", str(src), "-", "--quiet"], moment, started(stream),
                     stdout=f)
        data = stream.read_bytes()
        r = verify_stream(io.BytesIO(data))
        if r.ok:                # (killed after its last byte, or finished)
            outcomes["complete"] += 1
        else:
            # (a run killed before its first byte left an empty file: "not a
            # tar stream (empty file)")
            said = "truncated" if data else "empty file"
            assert any(said in p.message for p in r.problems), [p.message for p in r.problems]
            with pytest.raises(OSError, match=said):
                restore_stream(io.BytesIO(data), tmp_path / f"r{i}")
            outcomes["truncated"] += 1
        stream.unlink()
        with to_file(stream) as f:      # the rerun: the whole stream again
            subprocess.run(EFS + ["backup-tree", str(src), "-", "--quiet"], stdout=f, check=True,
                           stderr=subprocess.DEVNULL)
        with open(stream, "rb") as f:
            r = verify_stream(f)
        assert r.ok, [p.message for p in r.problems]
        stream.unlink()
    _report("backup-tree -", outcomes)
    assert outcomes["truncated"] > 0


def test_restore_tree_killed_at_random_moments(source, capsys):
    set_dir, work = source / "set", source / "restore"
    work.mkdir()
    m = read_manifest(set_dir / MANIFEST)
    want = {str(work / "DEST" / e.path): e.sha256 for e in m.entries if e.has_stream}
    timing = work / "timing"
    up, busy = _timing(EFS + ["restore-tree", str(set_dir), str(timing), "--quiet"],
                       timing.exists, lambda: shutil.rmtree(timing, ignore_errors=True))
    outcomes = {"nothing restored": 0, "part restored": 0, "all restored": 0}

    def kill_once(i: int, moment: Tuple[bool, float]) -> str:
        dest = work / f"d{i}"
        expected = {p.replace(str(work / "DEST"), str(dest), 1): s for p, s in want.items()}
        _kill_at(EFS + ["restore-tree", str(set_dir), str(dest), "--quiet"], moment,
                 dest.exists, stdout=subprocess.DEVNULL)
        there = [p for p in _files(dest)
                 if not _winfs.is_temporary(os.path.basename(p))]   # (the resume's to remove)
        for path in there:      # at every object's name, the whole object
            if path in expected:
                assert _sha(path) == expected[path], path
            else:               # a plain folder made for the objects below it
                assert os.path.isdir(path) and not efsfast.tree.is_encrypted(path), path
        done = sum(1 for p in there if p in expected)
        outcome = ("nothing restored" if done == 0 else
                   "all restored" if done == len(expected) else "part restored")
        outcomes[outcome] += 1
        capsys.readouterr()
        rc = cli.main(["restore-tree", str(set_dir), str(dest), "--quiet", "--skip-existing"])
        assert rc == 0, capsys.readouterr()
        for path, sha in expected.items():
            assert _sha(path) == sha, path
        assert sorted(_files(dest)) == sorted(set(expected) | {str(dest / "plain")})
        return outcome

    # after the mark: the longest delay that left nothing, the shortest that left all
    lo, hi = 0.0, busy
    moments = _moments(up, busy, SEED + 2)
    for i, moment in enumerate(moments):
        outcome = kill_once(i, moment)
        if moment[0] and outcome == "nothing restored":
            lo = max(lo, moment[1])
        elif moment[0] and outcome == "all restored":
            hi = min(hi, moment[1])
    # the objects land in a few milliseconds of the run, which the seeded
    # moments can all miss on a fast machine: then look for that window by
    # halving the delays between the last that left nothing and the first
    # that left everything
    for i in range(len(moments), len(moments) + 24):
        if outcomes["part restored"] or hi <= lo:
            break
        delay = (lo + hi) / 2
        outcome = kill_once(i, (True, delay))
        lo, hi = (delay, hi) if outcome == "nothing restored" else (
            (lo, delay) if outcome == "all restored" else (lo, hi))
    _report("restore-tree", outcomes)
    assert outcomes["part restored"] > 0
    assert verify_set(set_dir).ok
