"""Ctrl-C at any moment (issue 10, case 5): SIGINT is sent to backup-tree
and restore-tree at many points of their run, from start-up to the end.
Whenever it lands, nothing partial or temporary is left, and the summary
counts exactly the objects that are on disk, each of them whole."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

import efsfast
from efsfast import tree
from efsfast.backupset import read_manifest, verify_set
from efsfast.backupset.manifest import MANIFEST_NAME, PARTIAL_NAME
from efsfast.schema import record_schema

# (every test here needs the POSIX system side's xattrs; the Windows run
# under Wine, which installs no jsonschema, skips them all the same)
jsonschema = pytest.importorskip("jsonschema", reason="the records are checked against "
                                 "their schema with jsonschema (the test extra has it)")

POINTS = 14                     # interrupt points per command
ARGS = ("--workers", "2", "--buffer-size", "1024", "--json")


def _set(root, n=96, seed=7):
    """n raw streams of 40-120 KB in two folders (one of them encrypted)."""
    rng = random.Random(seed)
    meta = efsfast.synthetic_metadata(seed=seed)
    (root / "d").mkdir(parents=True)
    (root / "d.efsraw").write_bytes(efsfast.build_raw(meta))
    raws = {}
    for i in range(n):
        size = rng.randrange(40_000, 120_000)
        rel = f"{'d/' if i % 2 else ''}f{i:03d}"
        raws[rel] = efsfast.build_raw(meta, [efsfast.DataStream(
            "::$DATA", size, rng.randbytes((size + 511) & ~511))])
        (root / (rel + ".efsraw")).write_bytes(raws[rel])
    raws["d"] = (root / "d.efsraw").read_bytes()
    return raws


def _leftovers(root):
    """Temporary or partial names anywhere below root."""
    bad = []
    for dirpath, dirs, files in os.walk(root):
        bad += [os.path.join(dirpath, n) for n in dirs + files
                if n.endswith(".tmp") or n.startswith(".efsfast-")]
    return bad


def _count(root, suffix=""):
    """Finished objects below root so far (temporary names left out)."""
    n = 0
    for _dirpath, dirs, files in os.walk(root):
        n += sum(1 for x in dirs + files
                 if x.endswith(suffix) and not x.startswith(".efsfast-"))
    return n


def _run_interrupted(args, when, watch, suffix=""):
    """Start the CLI and send SIGINT at a moment: ``when`` is a number of
    seconds (a moment of the interpreter's start-up), or ("done", k) for
    as soon as k objects are finished below ``watch`` (0: as soon as it
    exists).  Returns (exit code, JSON record or None, signal sent, stderr)."""
    p = subprocess.Popen([sys.executable, "-m", "efsfast", *map(str, args)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if isinstance(when, tuple):
        k = when[1]
        while p.poll() is None and not (os.path.isdir(watch) and _count(watch, suffix) >= k):
            time.sleep(0.002)
    else:
        time.sleep(when)
    sent = p.poll() is None
    if sent:
        p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=300)
    try:
        rec = json.loads(out)
    except ValueError:
        rec = None
    return p.returncode, rec, sent, err


# two moments in the interpreter's start-up, then points by progress: as the
# destination appears, and after 1 ... 85 of the 97 objects
MOMENTS = [0.05, 0.2] + [("done", k) for k in (0, 1, 3, 8, 15, 25, 35, 45, 55, 65, 75, 85)]
assert len(MOMENTS) == POINTS


def _check(code, rec, sent, err, on_disk, kind):
    """The promises: a known exit, no leftovers, the count is what is there."""
    if rec is not None:         # whenever Ctrl-C lands, the record is one of the schema
        jsonschema.validate(rec, record_schema())
        assert rec["exit_code"] == code
    if rec is None:
        # a signal that landed before the command began its job (in the
        # interpreter's start-up or the imports) ends it with nothing done
        assert sent and code != 0, (code, err)
        assert on_disk == 0, (on_disk, err)
        return
    if "counts" not in rec:
        # landed after the options were read but before the job took over
        # Ctrl-C (a slow start-up: seen on CPython 3.9 in CI): the command's
        # interrupted record, with no account because no job began
        assert sent and code == 130 and rec["interrupted"] is True, (code, rec)
        assert rec["command"] == kind and on_disk == 0, (rec, on_disk)
        return
    assert rec["command"] == kind
    if code == 130:
        assert sent and rec["interrupted"] is True
    else:
        assert code == 0 and rec["interrupted"] is False and rec["counts"]["not_done"] == 0, (code, rec)
    assert rec["counts"]["failed"] == 0, rec["failures"]
    assert rec["counts"]["done"] == on_disk, (rec, on_disk)


def test_sigint_at_many_points_of_restore_tree(xattr_dir):
    src = xattr_dir / "set"
    raws = _set(src)
    dest = xattr_dir / "dest"
    args = ("restore-tree", src, dest, *ARGS)
    outcomes = []
    for when in MOMENTS:
        code, rec, sent, err = _run_interrupted(args, when, dest)
        assert _leftovers(dest) == [] if dest.exists() else True
        objects = []
        if dest.exists():
            for dirpath, dirs, files in os.walk(dest):
                for n in dirs + files:
                    p = os.path.join(dirpath, n)
                    if tree.is_encrypted(p):
                        objects.append(os.path.relpath(p, dest))
        for rel in objects:                       # each whole
            assert efsfast.backup(dest / rel, directory=rel == "d") == raws[rel], rel
        _check(code, rec, sent, err, len(objects), "restore-tree")
        outcomes.append(code)
        _rmtree(dest)
    print(f"\nrestore-tree, SIGINT at {POINTS} points: exit codes {outcomes}")
    assert outcomes.count(130) >= POINTS // 3        # most points landed inside the job


def test_sigint_at_many_points_of_backup_tree(xattr_dir):
    src, restored = xattr_dir / "set", xattr_dir / "tree"
    raws = _set(src)
    assert subprocess.run([sys.executable, "-m", "efsfast", "restore-tree", str(src),
                           str(restored), "--quiet"]).returncode == 0
    for rel in ("a.txt", "d/b.txt", "d/c.txt"):     # plain files: candidates, never objects
        (restored / rel).write_text("not encrypted")
    out = xattr_dir / "out"
    args = ("backup-tree", restored, out, *ARGS)
    outcomes = []
    resumable = None
    for when in MOMENTS:
        code, rec, sent, err = _run_interrupted(args, when, out, ".efsraw")
        assert _leftovers(out) == [] if out.exists() else True
        backups = []
        if out.exists():
            for dirpath, _dirs, files in os.walk(out):
                backups += [os.path.relpath(os.path.join(dirpath, n), out)
                            for n in files if n.endswith(".efsraw")]
        for rel in backups:                       # each whole
            assert (out / rel).read_bytes() == raws[rel[:-len(".efsraw")]], rel
        # stopped before it began the set (while listing the source): no set;
        # else an incomplete set, whose partial manifest lists what is there
        if code == 130 and out.exists():
            assert not (out / MANIFEST_NAME).exists()
            m = read_manifest(out / PARTIAL_NAME, partial=True)
            assert not m.complete and m.reason == "interrupted"
            assert sorted(e.stored_name for e in m.entries if e.has_stream) == sorted(backups)
            resumable = out
        _check(code, rec, sent, err, len(backups), "backup-tree")
        outcomes.append(code)
        if out == resumable:
            out = xattr_dir / f"out{len(outcomes)}"     # kept for the resume below
            args = ("backup-tree", restored, out, *ARGS)
        else:
            _rmtree(out)
    print(f"\nbackup-tree, SIGINT at {POINTS} points: exit codes {outcomes}")
    assert outcomes.count(130) >= POINTS // 3
    # the last set left incomplete: refused by restore-tree, then resumed
    r = subprocess.run([sys.executable, "-m", "efsfast", "restore-tree", str(resumable),
                        str(xattr_dir / "dest")], capture_output=True, text=True)
    assert r.returncode == 2 and "incomplete backup set" in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "efsfast", "backup-tree", str(restored),
                        str(resumable), "--skip-existing", "--quiet"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert verify_set(resumable).ok and PARTIAL_NAME not in os.listdir(resumable)


def _rmtree(path):
    import shutil
    shutil.rmtree(path, ignore_errors=True)


def test_ctrl_c_after_the_summary_does_not_change_the_exit(xattr_dir):
    """Ctrl-C pressed (again and again) once the summary is out: the job is
    done and reported, so the exit status stays 0, never a signal's."""
    src = xattr_dir / "set"
    _set(src, n=8)
    for attempt in range(5):
        dest = xattr_dir / f"dest{attempt}"
        p = subprocess.Popen([sys.executable, "-m", "efsfast", "restore-tree", str(src),
                              str(dest), "--json"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, bufsize=0)
        first = p.stdout.read(1)                 # the summary has begun to come out
        assert first, p.stderr.read()
        while p.poll() is None:
            p.send_signal(signal.SIGINT)
            time.sleep(0.0005)
        rest, err = p.communicate(timeout=60)
        rec = json.loads(first + rest)
        assert rec["counts"]["done"] == 9 and rec["interrupted"] is False, rec
        assert p.returncode == 0, (p.returncode, err)
