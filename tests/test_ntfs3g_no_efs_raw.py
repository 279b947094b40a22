"""ntfs-3g mounted WITHOUT ``-o efs_raw`` (issue 10, case 1): there encrypted
files cannot be read raw and ``user.ntfs.efsinfo`` is an ordinary named
stream, so a restore would write plain files holding ciphertext and a backup
would see nothing encrypted.  Both must fail, naming the file and the cause,
and leave nothing behind."""
import json
import os

import pytest

import efsfast
from efsfast import cli, tree

from ntfs_volume import Volume, needs_ntfs3g

pytestmark = needs_ntfs3g

CAUSE = "not mounted with -o efs_raw"


def _set(root):
    """A backup set: an encrypted folder with two files, and a file beside it."""
    root.mkdir()
    (root / "Docs.efsraw").write_bytes(efsfast.synthetic_raw(directory=True, seed=1))
    (root / "Docs").mkdir()
    (root / "Docs" / "a.txt.efsraw").write_bytes(efsfast.synthetic_raw(700, seed=2))
    (root / "Docs" / "b.bin.efsraw").write_bytes(
        efsfast.synthetic_raw(70_000, named_streams={"Zone.Identifier": 30}, seed=3))
    (root / "top.txt.efsraw").write_bytes(efsfast.synthetic_raw(5, seed=4))
    return root


@pytest.fixture
def plain_mount(tmp_path):
    """A volume holding a restored tree (made under efs_raw) plus a plain
    file, then mounted without efs_raw."""
    v = Volume(tmp_path)
    v.mount(efs_raw=True)
    try:
        assert cli.main(["restore-tree", str(_set(tmp_path / "set")), str(v.mnt / "Users"),
                         "--quiet"]) == 0
        (v.mnt / "Users" / "Docs" / "plain.txt").write_text("not encrypted")
        v.unmount()
        v.mount(efs_raw=False)
        yield v
    finally:
        v.unmount()


def _json_run(capsys, *argv):
    code = cli.main([*argv, "--json", "--quiet"])
    return code, json.loads(capsys.readouterr().out)


def test_is_encrypted_reads_the_ntfs_attribute(plain_mount):
    users = plain_mount.mnt / "Users"
    assert tree.is_encrypted(users / "Docs") and tree.is_encrypted(users / "Docs" / "a.txt")
    assert tree.is_encrypted(users / "top.txt")
    assert not tree.is_encrypted(users / "Docs" / "plain.txt")
    assert not tree.is_encrypted(users)


def test_backup_tree_fails_every_encrypted_object(plain_mount, tmp_path, capsys):
    users = plain_mount.mnt / "Users"
    out = tmp_path / "out"
    code, rec = _json_run(capsys, "backup-tree", str(users), str(out))
    assert code == 1
    assert rec["counts"]["done"] == 0 and rec["counts"]["failed"] == 4
    assert sorted(f["path"] for f in rec["failures"]) == sorted(
        str(users / p) for p in ("Docs", "Docs/a.txt", "Docs/b.bin", "top.txt"))
    assert all(CAUSE in f["error"] and f["winerror"] == 50 for f in rec["failures"])
    assert rec["skipped"]["not_encrypted"] == [str(users / "Docs" / "plain.txt")]
    assert not out.exists()                     # nothing written, not even folders

    code = cli.main(["backup-tree", str(users), str(out), "--quiet"])
    text = " ".join(capsys.readouterr().out.split())     # the failure table wraps
    assert code == 1 and "0 done, 4 failed" in text and CAUSE in text
    assert "4 items failed: " in text           # one cause, said once for the four
    assert not out.exists()


def test_single_backup_names_the_cause(plain_mount, tmp_path, capsys):
    src = plain_mount.mnt / "Users" / "Docs" / "b.bin"
    with pytest.raises(efsfast.EfsError) as e:
        efsfast.backup(src)
    assert e.value.winerror == 50 and CAUSE in str(e.value) and e.value.filename == str(src)
    assert cli.main(["backup", str(src), str(tmp_path / "b.efsraw")]) == 1
    err = capsys.readouterr().err
    assert str(src) in err and CAUSE in err
    assert not (tmp_path / "b.efsraw").exists()
    assert [n for n in os.listdir(tmp_path) if ".tmp" in n] == []
    # a plain file on the same volume is reported as not encrypted, nothing else
    with pytest.raises(efsfast.EfsError) as e:
        efsfast.backup(plain_mount.mnt / "Users" / "Docs" / "plain.txt")
    assert e.value.winerror == 6007 and "not encrypted" in str(e.value)


def test_restore_tree_creates_nothing(plain_mount, tmp_path, capsys):
    src = _set(tmp_path / "set2")
    dest = plain_mount.mnt / "Again"
    code, rec = _json_run(capsys, "restore-tree", str(src), str(dest))
    assert code == 1 and rec["counts"]["done"] == 0 and rec["counts"]["failed"] == 4
    assert sorted(f["path"] for f in rec["failures"]) == sorted(
        str(dest / p) for p in ("Docs", "Docs/a.txt", "Docs/b.bin", "top.txt"))
    assert all(CAUSE in f["error"] for f in rec["failures"])
    assert plain_mount.names() == ["Users"]     # DEST itself was not created

    code = cli.main(["restore-tree", str(src), str(plain_mount.mnt / "Users"), "--quiet",
                     "--overwrite"])
    text = " ".join(capsys.readouterr().out.split())
    assert code == 1 and "0 done, 4 failed" in text and CAUSE in text
    assert "4 items failed: " in text
    plain_mount.unmount()                       # the old encrypted objects are untouched
    for p in ("/Users/Docs", "/Users/Docs/a.txt", "/Users/top.txt"):
        assert "ENCRYPTED" in plain_mount.info(p), p


def test_single_restore_leaves_nothing(plain_mount):
    raw = efsfast.synthetic_raw(3000, named_streams={"s": 10}, seed=5)
    for directory in (False, True):
        with pytest.raises(efsfast.EfsError) as e:
            efsfast.restore(plain_mount.mnt / "new", efsfast.synthetic_raw(directory=True, seed=6)
                            if directory else raw, directory=directory)
        assert e.value.winerror == 50 and CAUSE in str(e.value)
        assert e.value.filename == str(plain_mount.mnt / "new")
        assert plain_mount.names() == ["Users"]
