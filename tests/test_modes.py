"""What efsfast backs up, efsfast restores with the same options (issue 10,
case 9): a backup validates the stored $EFS in the mode a restore uses, and
fails the item naming the rule and the option that would accept it;
restore, restore-tree, backup, backup-tree and verify take ``--mode``."""
import json
import os

import pytest

import efsfast
from efsfast import cli
from efsfast.backends import PosixBackend

from conftest import listing

RESERVED1 = 4           # $EFS offset of Reserved1: non-zero breaks R12 in strict mode only
META_AT = 66            # where the $EFS starts in an exported raw stream


def _lenient_raw(seed: int) -> bytes:
    meta = bytearray(efsfast.synthetic_metadata(seed=seed))
    meta[RESERVED1] = 1
    return efsfast.build_raw(bytes(meta), [efsfast.DataStream("::$DATA", 10, bytes(512))])


@pytest.fixture
def lenient(xattr_dir):
    """A file whose stored $EFS strict mode rejects and compatible accepts."""
    raw = _lenient_raw(1)
    with pytest.raises(efsfast.RawFormatError):
        efsfast.verify(raw)
    efsfast.restore(xattr_dir / "f.txt", raw, backend=PosixBackend(mode="compatible"))
    return xattr_dir / "f.txt", raw


def test_backup_refuses_what_a_strict_restore_would(lenient, tmp_path, capsys):
    src, raw = lenient
    with pytest.raises(efsfast.RawFormatError) as e:
        efsfast.backup(src)
    assert e.value.rule == "R12" and e.value.offset == META_AT + RESERVED1
    assert e.value.filename == str(src) and "--mode compatible" in str(e.value)

    out = tmp_path / "f.efsraw"
    assert cli.main(["backup", str(src), str(out)]) == 1
    err = capsys.readouterr().err
    assert str(src) in err and "R12" in err and "--mode compatible" in err
    assert listing(tmp_path) == []                   # no backup file, no temporary

    assert cli.main(["backup", str(src), str(out), "--mode", "compatible", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bytes"] == len(raw)
    assert out.read_bytes() == raw
    assert cli.main(["verify", str(out)]) == 1
    assert "R12" in capsys.readouterr().out
    assert cli.main(["verify", "--mode", "compatible", str(out)]) == 0
    capsys.readouterr()


def test_restore_takes_the_mode(lenient, tmp_path, capsys):
    _src, raw = lenient
    stream = tmp_path / "f.efsraw"
    stream.write_bytes(raw)
    dest = tmp_path / "back"
    dest.mkdir()
    assert cli.main(["restore", str(stream), str(dest / "f.txt")]) == 1
    err = capsys.readouterr().err
    assert str(stream) in err and "R12" in err
    assert listing(dest) == []
    assert cli.main(["restore", "--mode", "compatible", str(stream), str(dest / "f.txt"),
                     "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bytes"] == len(raw)
    assert efsfast.backup(dest / "f.txt", backend=PosixBackend(mode="compatible")) == raw


def test_tree_jobs_fail_the_item_and_take_the_mode(xattr_dir, tmp_path, capsys):
    tree = xattr_dir / "tree"
    tree.mkdir()
    efsfast.restore(tree / "odd.txt", _lenient_raw(2), backend=PosixBackend(mode="compatible"))
    efsfast.restore(tree / "fine.txt", efsfast.synthetic_raw(100, seed=3))
    out = tmp_path / "set"
    assert cli.main(["backup-tree", str(tree), str(out), "--json", "--quiet"]) == 1
    rec = json.loads(capsys.readouterr().out)
    assert rec["counts"]["done"] == 1 and rec["counts"]["failed"] == 1
    [f] = rec["failures"]
    assert f["path"] == str(tree / "odd.txt") and f["rule"] == "R12"
    assert "--mode compatible" in f["error"]
    assert not (out / "odd.txt.efsraw").exists() and (out / "fine.txt.efsraw").exists()
    assert [n for n in os.listdir(out) if n.endswith(".tmp")] == []

    again = tmp_path / "set2"
    assert cli.main(["backup-tree", str(tree), str(again), "--mode", "compatible",
                     "--quiet"]) == 0
    capsys.readouterr()
    back = xattr_dir / "back"
    assert cli.main(["restore-tree", str(again), str(back), "--json", "--quiet"]) == 1
    rec = json.loads(capsys.readouterr().out)
    assert rec["counts"]["done"] == 1 and [f["rule"] for f in rec["failures"]] == ["R12"]
    assert sorted(os.listdir(back)) == ["fine.txt"]
    assert cli.main(["restore-tree", str(again), str(xattr_dir / "back2"), "--mode",
                     "compatible", "--quiet"]) == 0
    capsys.readouterr()
    assert sorted(os.listdir(xattr_dir / "back2")) == ["fine.txt", "odd.txt"]
