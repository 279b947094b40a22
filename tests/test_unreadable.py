"""Unreadable folders and files (issue 10, case 3): every object a tree job
cannot list or read is a failed item, named in the summary and in --json;
nothing is skipped in silence.  The tests run as root, so they drop the DAC
override capabilities with capsh for the command under test."""
import json
import os
import shutil
import subprocess
import sys

import pytest

import efsfast

from conftest import listing

DROP = "cap_dac_override,cap_dac_read_search"


def _why_not() -> str:
    if shutil.which("capsh") is None:
        return "capsh is missing (apt-get install libcap2-bin): cannot drop root's DAC override"
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root (to drop DAC override with capsh and own the test tree)"
    return ""


pytestmark = pytest.mark.skipif(bool(_why_not()), reason=_why_not() or "ok")


def run_without_dac_override(*args):
    """The CLI with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped: mode
    bits bind root as they bind everyone."""
    cmd = " ".join(map(_quote, [sys.executable, "-m", "efsfast", *map(str, args)]))
    p = subprocess.run(["capsh", f"--drop={DROP}", "--", "-c", cmd],
                       capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def _quote(s: str) -> str:
    import shlex
    return shlex.quote(s)


def _encrypted_tree(root):
    """root/a/{f1,f2,secret} and root/locked/{g1,g2}: encrypted files and
    folders of the efs_raw layout; ``secret`` and ``locked`` at mode 000."""
    raws = {}
    for rel in ("a", "locked"):
        efsfast.restore(root / rel, efsfast.synthetic_raw(directory=True, seed=len(rel)),
                        directory=True)
    for i, rel in enumerate(("a/f1", "a/f2", "a/secret", "locked/g1", "locked/g2")):
        raws[rel] = efsfast.synthetic_raw(1000 + i, seed=i)
        efsfast.restore(root / rel, raws[rel])
    os.chmod(root / "a" / "secret", 0)
    os.chmod(root / "locked", 0)
    return raws


@pytest.fixture
def locked_tree(tmp_path_factory, xattr_dir):
    src = xattr_dir / "src"
    src.mkdir()
    raws = _encrypted_tree(src)
    yield src, raws
    os.chmod(src / "locked", 0o755)
    os.chmod(src / "a" / "secret", 0o644)


def test_backup_tree_fails_what_it_cannot_read(locked_tree, xattr_dir):
    src, raws = locked_tree
    out = xattr_dir / "set"
    code, stdout, stderr = run_without_dac_override("backup-tree", src, out, "--json")
    assert code == 1, stderr
    rec = json.loads(stdout)
    failed = {f["path"]: f for f in rec["failures"]}
    assert set(failed) == {str(src / "locked"), str(src / "a" / "secret")}
    assert rec["counts"]["failed"] == 2 and rec["counts"]["done"] == 3            # a, a/f1, a/f2
    for f in failed.values():
        assert f["kind"] == "permission" and f["errno"] == 13
    assert "cannot" in failed[str(src / "locked")]["error"]
    # on disk: the readable objects, whole; nothing for the others
    assert listing(out / "a") == ["f1.efsraw", "f2.efsraw"]
    for rel in ("a/f1", "a/f2"):
        assert (out / (rel + ".efsraw")).read_bytes() == raws[rel]
    assert not (out / "locked").exists() and not (out / "locked.efsraw").exists()
    # the manifest records both as failed, so a restore of the set says so too
    manifest = (out / "efsfast-manifest.jsonl").read_text()
    assert manifest.count('"failed"') >= 2 and "secret" in manifest and "locked" in manifest
    # and in text: named in the summary
    code, stdout, _ = run_without_dac_override("backup-tree", src, xattr_dir / "set2")
    assert code == 1 and "2 failed" in stdout
    assert str(src / "locked") in stdout and str(src / "a" / "secret") in stdout


def test_restore_tree_fails_what_it_cannot_read(xattr_dir):
    src = xattr_dir / "plain-set"
    (src / "sub").mkdir(parents=True)
    raws = {n: efsfast.synthetic_raw(500 + i, seed=i) for i, n in enumerate(("x", "y", "z"))}
    (src / "x.efsraw").write_bytes(raws["x"])
    (src / "y.efsraw").write_bytes(raws["y"])
    (src / "sub" / "z.efsraw").write_bytes(raws["z"])
    os.chmod(src / "sub", 0)
    os.chmod(src / "y.efsraw", 0)
    try:
        dest = xattr_dir / "restored"
        code, stdout, stderr = run_without_dac_override("restore-tree", src, dest, "--json")
    finally:
        os.chmod(src / "sub", 0o755)
        os.chmod(src / "y.efsraw", 0o644)
    assert code == 1, stderr
    rec = json.loads(stdout)
    assert (rec["counts"]["done"], rec["counts"]["failed"]) == (1, 2)
    failed = {f["path"]: f for f in rec["failures"]}
    assert set(failed) == {str(src / "sub"), str(dest / "y")}
    assert failed[str(dest / "y")]["source"] == str(src / "y.efsraw")
    assert all(f["errno"] == 13 for f in failed.values())
    assert listing(dest) == ["x"] and efsfast.backup(dest / "x") == raws["x"]


def test_verify_set_names_what_it_cannot_read(locked_tree, xattr_dir):
    """An object that cannot be read and a folder that cannot be listed are
    problems of their own (never "missing", never the end of the check);
    the other objects are checked."""
    src, raws = locked_tree
    os.chmod(src / "locked", 0o755)
    os.chmod(src / "a" / "secret", 0o644)
    out = xattr_dir / "set"
    code, stdout, stderr = run_without_dac_override("backup-tree", src, out, "--quiet")
    assert code == 0, stdout + stderr
    os.chmod(out / "a" / "secret.efsraw", 0)
    os.chmod(out / "locked", 0)
    try:
        code, stdout, stderr = run_without_dac_override("verify-set", out, "--json")
    finally:
        os.chmod(out / "a" / "secret.efsraw", 0o644)
        os.chmod(out / "locked", 0o755)
    assert code == 1, stderr
    rec = json.loads(stdout)
    problems = {(p["path"], p["error"]) for p in rec["failures"]}
    assert problems == {("a/secret.efsraw", "cannot read it: Permission denied"),
                        ("locked/g1.efsraw", "cannot read it: Permission denied"),
                        ("locked/g2.efsraw", "cannot read it: Permission denied"),
                        ("locked", "cannot list the folder: Permission denied")}
    assert rec["counts"]["verified"] == 4           # a, a/f1, a/f2, locked (its own stream)
