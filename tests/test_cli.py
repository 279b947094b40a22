"""The command line: tree jobs, progress on a terminal, exit codes, Ctrl-C."""
import json
import os
import random
import subprocess
import sys

import pytest

import efsfast
from efsfast import cli, tree

from conftest import WINE_STUBS, listing, under_wine
from ttyrun import run_in_pty

def small_set(root, n, seed=1):
    """n small raw streams in a few folders, plus two encrypted folders."""
    rng = random.Random(seed)
    meta = efsfast.synthetic_metadata(seed=seed)
    for folder in ("a", "a/deep", "b"):
        os.makedirs(root / folder, exist_ok=True)
    (root / "a.efsraw").write_bytes(efsfast.build_raw(meta))
    (root / "a" / "deep.efsraw").write_bytes(efsfast.build_raw(meta))
    for i in range(n):
        size = rng.randrange(0, 3000)
        raw = efsfast.build_raw(meta, [efsfast.DataStream("::$DATA", size,
                                                          rng.randbytes((size + 511) & ~511))])
        (root / rng.choice(["a", "a/deep", "b"]) / f"f{i:04d}.bin.efsraw").write_bytes(raw)


def tree_bytes(root):
    out = {}
    for dirpath, _d, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = open(p, "rb").read()
    return out


def test_tree_round_trip_1000_files(xattr_dir, capsys):
    src, restored, again = xattr_dir / "set", xattr_dir / "restored", xattr_dir / "again"
    small_set(src, 1000)
    assert cli.main(["restore-tree", str(src), str(restored), "--json", "--workers", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["counts"]["done"], out["counts"]["failed"], out["counts"]["directories"]) == (1002, 0, 2)
    assert cli.main(["backup-tree", str(restored), str(again), "--json"]) == 0
    json.loads(capsys.readouterr().out)
    got = tree_bytes(again)
    # 1002 objects, folder b (plain: its metadata only), the set and end lines
    assert got.pop("efsfast-manifest.jsonl").count(b"\n") == 1002 + 1 + 2
    assert got == tree_bytes(src)
    # every restored object is an encrypted object of the layout, but for
    # folder b, which had no raw stream of its own (a plain folder)
    for dirpath, dirs, files in os.walk(restored):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            assert tree.is_encrypted(p) == (p != str(restored / "b")), p


def test_tree_failures_are_summarised(xattr_dir, capsys):
    src = xattr_dir / "set"
    small_set(src, 20)
    (src / "b" / "broken.efsraw").write_bytes(b"\0\1\0\0" + b"R\0O\0B\0S\0" + b"\0" * 30)
    code = cli.main(["restore-tree", str(src), str(xattr_dir / "out")])
    text = capsys.readouterr().out
    assert code == 1
    assert "1 failed" in text and "broken" in text and "R4" in text
    assert not (xattr_dir / "out" / "b" / "broken").exists()


def test_exit_codes(tmp_path, capsys):
    # a missing source is refused before any work, as the tree jobs refuse one
    assert cli.main(["verify", str(tmp_path / "missing")]) == 2
    assert cli.main(["no-such-command"]) == 2       # a usage error returns, never exits


def test_restore_and_backup_commands(xattr_dir, capsys):
    raw = efsfast.synthetic_raw(5000, seed=3)
    (xattr_dir / "in.efsraw").write_bytes(raw)
    assert cli.main(["restore", str(xattr_dir / "in.efsraw"), str(xattr_dir / "f")]) == 0
    # an existing DEST without --overwrite is refused, nothing written (exit 2)
    assert cli.main(["restore", str(xattr_dir / "in.efsraw"), str(xattr_dir / "f")]) == 2
    assert "exists" in capsys.readouterr().err
    assert cli.main(["backup", str(xattr_dir / "f"), str(xattr_dir / "out.efsraw")]) == 0
    assert (xattr_dir / "out.efsraw").read_bytes() == raw


@pytest.mark.skipif(under_wine(), reason=WINE_STUBS)
def test_demo_json(tmp_path, capsys):
    assert cli.main(["demo", str(tmp_path / "work"), "--files", "30", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["demo"]["identical"] == 34


def test_progress_bar_on_terminal_and_plain_otherwise(xattr_dir):
    src = xattr_dir / "set"
    small_set(src, 300)
    code, screen = run_in_pty(["restore-tree", str(src), str(xattr_dir / "tty")])
    assert code == 0, screen
    assert "restore: 100%" in screen and "302/302" in screen and "MB" in screen, screen
    p = subprocess.run([sys.executable, "-m", "efsfast", "restore-tree", str(src),
                        str(xattr_dir / "pipe")], capture_output=True, text=True)
    assert p.returncode == 0
    assert "%|" not in p.stdout + p.stderr                   # no bar when not a terminal
    assert "restore-tree: 302 done, 0 failed" in p.stdout


def test_sigint_during_tree_restore(xattr_dir):
    src, dest = xattr_dir / "set", xattr_dir / "dest"
    rng = random.Random(5)
    meta = efsfast.synthetic_metadata(seed=5)
    src.mkdir()
    blob = rng.randbytes(3 << 20)
    for i in range(60):
        (src / f"big{i:02d}.efsraw").write_bytes(
            efsfast.build_raw(meta, [efsfast.DataStream("::$DATA", len(blob), blob)]))
    code, screen = run_in_pty(["restore-tree", str(src), str(dest), "--buffer-size", "64",
                               "--workers", "2"], sigint_on=b"file/s")
    assert code == 130, screen
    assert "interrupted" in screen
    assert "run the same restore-tree again with --skip-existing" in screen   # how to resume
    names = listing(dest)
    assert not [n for n in names if n.endswith(".tmp")], names       # nothing partial
    assert len(names) < 60
    for n in names:                                                  # what is there is whole
        assert efsfast.backup(dest / n) == (src / (n + ".efsraw")).read_bytes()
    # and the run resumes where it stopped
    assert cli.main(["restore-tree", str(src), str(dest), "--skip-existing", "--quiet"]) == 0
    assert len(listing(dest)) == 60
    for n in listing(dest):
        assert efsfast.backup(dest / n) == (src / (n + ".efsraw")).read_bytes()


def test_sigint_during_single_restore(xattr_dir):
    """Ctrl-C during one long restore (GIL released, inside the C path) stops
    within one system buffer: exit 130, nothing partial left. One-byte system
    buffers make the whole restore take ~10 s here (64 Mi callbacks), so the
    signal lands inside it however slowly this process sees the screen (with
    16 bytes it took 0.8 s).  (A run of this test that ended with exit 0 had
    another cause: its runner, started in the background, had SIGINT ignored,
    and the child inherited that: see ttyrun._CHILD.)"""
    raw = efsfast.synthetic_raw(64 << 20, seed=6)
    (xattr_dir / "in.efsraw").write_bytes(raw)
    code, screen = run_in_pty(["restore", str(xattr_dir / "in.efsraw"), str(xattr_dir / "out"),
                               "--buffer-size", "1"], sigint_on=b"efsfast: restoring")
    assert code == 130, screen
    assert listing(xattr_dir) == ["in.efsraw"]


def test_sigint_ignored_at_start_stays_ignored(xattr_dir):
    """Started with SIGINT ignored (``nohup``, a script's ``cmd &``), the
    program keeps ignoring it, as the Unix custom is and as Python itself
    does: a Ctrl-C meant for the terminal's foreground job does not stop a
    restore running in the background.  It runs to its end, whole."""
    raw = efsfast.synthetic_raw(16 << 20, seed=7)
    (xattr_dir / "in.efsraw").write_bytes(raw)
    code, screen = run_in_pty(["restore", str(xattr_dir / "in.efsraw"), str(xattr_dir / "out"),
                               "--buffer-size", "1"], sigint_on=b"efsfast: restoring",
                              sigint_ignored=True)
    assert code == 0, screen
    assert efsfast.backup(xattr_dir / "out") == raw


def test_inspect_and_verify_output(tmp_path, capsys):
    good = tmp_path / "good.efsraw"
    good.write_bytes(efsfast.synthetic_raw(5000, named_streams={"alt": 3}, recovery_agents=1,
                                           seed=4))
    bad = tmp_path / "bad.efsraw"
    bad.write_bytes(good.read_bytes()[:-7])
    assert cli.main(["inspect", str(good), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["info"]
    assert [s["name"] for s in info["streams"]] == ["::$DATA", ":alt:$DATA"]
    assert len(info["metadata"]["drf"]) == 1 and info["metadata"]["ddf"][0]["sid"].startswith("S-1-5-21-")
    assert cli.main(["inspect", str(good)]) == 0
    text = capsys.readouterr().out
    assert "DDF S-1-5-21-" in text and ":alt:$DATA" in text
    assert cli.main(["verify", str(good), str(bad), "--json"]) == 1
    rec = json.loads(capsys.readouterr().out)
    results = rec["results"]
    assert results[0]["valid"] and not results[1]["valid"]
    (f,) = rec["failures"]
    assert f["path"] == str(bad) and f["rule"] == "R8" and f["offset"] > 0
    assert cli.main(["verify", str(good)]) == 0
