"""A file whose name is not UTF-8 (POSIX allows any bytes but / and NUL):
a backup set records names in UTF-8, so such an object fails as itself,
named, while the rest of the set is backed up; the command's output and
the manifest show its name's other bytes as \\xNN."""
import json
import os
import subprocess
import sys

import pytest

import efsfast
from efsfast import cli
from efsfast.backupset import read_manifest, verify_set
from efsfast.backupset.manifest import MANIFEST_NAME, recordable, shown
from efsfast.cli.output import printable

pytestmark = pytest.mark.skipif(sys.platform == "win32",
                                reason="POSIX names of any bytes (Windows names are UTF-16)")

# Latin-1: not UTF-8 (as os.fsdecode gives it on POSIX; Windows refuses to decode it)
BAD = os.fsdecode(b"caf\xe9.txt") if sys.platform != "win32" else ""


@pytest.fixture
def tree_with_a_bad_name(xattr_dir):
    src = xattr_dir / "src"
    src.mkdir()
    efsfast.restore(src / "good.bin", efsfast.synthetic_raw(100, seed=1))
    efsfast.restore(os.path.join(src, BAD), efsfast.synthetic_raw(100, seed=2))
    efsfast.restore(src / "Vault", efsfast.synthetic_raw(0, directory=True, seed=3),
                    directory=True)
    efsfast.restore(os.path.join(src, "Vault", BAD), efsfast.synthetic_raw(10, seed=4))
    return src


def test_the_helpers():
    assert recordable("plain") and recordable("naïve") and not recordable(BAD)
    assert shown(BAD) == "caf\\xe9.txt" and shown("naïve") == "naïve"
    assert printable(f"x {BAD}", "utf-8") == "x caf\\xe9.txt"
    assert printable("naïve", "ascii") == "na\\u00efve"


@pytest.mark.parametrize("dest", ["folder", "stream"])
def test_a_name_that_is_not_utf8_fails_alone(tree_with_a_bad_name, xattr_dir, dest):
    src = tree_with_a_bad_name
    out = xattr_dir / "set"
    # a process of its own: its standard streams as a user's (pytest's capture
    # would replace what it cannot encode)
    r = subprocess.run([sys.executable, "-m", "efsfast", "backup-tree", str(src),
                        str(out) if dest == "folder" else "-", "--quiet"], capture_output=True,
                       env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    code = r.returncode
    text = (r.stdout if dest == "folder" else r.stderr).decode()
    assert code == 1, text
    assert "not valid UTF-8" in text and "caf\\xe9.txt" in text, text
    if dest == "folder":
        m = read_manifest(os.path.join(out, MANIFEST_NAME))
        by_path = m.by_path()
        assert by_path["good.bin"].sha256 and by_path["Vault"].sha256
        for path in ("caf\\xe9.txt", "Vault/caf\\xe9.txt"):
            assert "not valid UTF-8" in by_path[path].failed
        report = verify_set(out)
        assert not report.ok
        assert {p.path for p in report.problems} == {"caf\\xe9.txt", "Vault/caf\\xe9.txt"}
    else:           # the stream restores what it holds, and says what failed
        restored = xattr_dir / "restored"
        r = subprocess.run([sys.executable, "-m", "efsfast", "restore-tree", "-", str(restored),
                            "--quiet"], input=r.stdout, capture_output=True)
        assert (restored / "good.bin").exists() and (restored / "Vault").is_dir(), r


def test_json_output_names_it_exactly(tree_with_a_bad_name, xattr_dir, capsys):
    src = tree_with_a_bad_name
    assert cli.main(["backup-tree", str(src), str(xattr_dir / "set"), "--json"]) == 1
    rec = json.loads(capsys.readouterr().out)
    failed = {os.fsencode(f["path"]) for f in rec["failures"]}
    assert failed == {os.fsencode(os.path.join(src, BAD)),
                      os.fsencode(os.path.join(src, "Vault", BAD))}, rec["failures"]
