"""ext4 keeps all of a file's xattrs in one block (4 KiB here): a $EFS or
named stream that does not fit used to be reported as "No space left on
device" with the disk nearly empty.  The message now says which limit was
hit and which file systems lift it (issue 10, smaller findings)."""
import json

import pytest

import efsfast
from efsfast import cli
from efsfast.volume import filesystem_type

from conftest import listing, small_ext4


@pytest.fixture
def ext4_dir(tmp_path):
    if filesystem_type(tmp_path) != "ext4":
        pytest.skip(f"{tmp_path} is not on ext4 here (the limit is ext4's)")
    return tmp_path


def test_efs_too_big_for_ext4_names_the_limit(ext4_dir, capsys):
    raw = efsfast.synthetic_raw(100, users=10, seed=1)           # a 6 KB $EFS
    (ext4_dir / "in.efsraw").write_bytes(raw)
    out = ext4_dir / "out"
    out.mkdir()
    assert cli.main(["restore", str(ext4_dir / "in.efsraw"), str(out / "f"), "--json"]) == 1
    rec = json.loads(capsys.readouterr().out)
    assert rec["failures"][0]["winerror"] == 277 and rec["failures"][0]["errno"] == 28
    assert "the $EFS (6028 bytes) does not fit in the room this file system gives" in (
        rec["failures"][0]["error"])
    assert "ext4: one 4096-byte block" in rec["failures"][0]["error"] and "tmpfs" in rec["failures"][0]["error"]
    assert listing(out) == []
    assert cli.main(["restore", str(ext4_dir / "in.efsraw"), str(out / "f")]) == 1
    err = capsys.readouterr().err
    assert str(out / "f") in err and "does not fit" in err


def test_named_stream_too_big_for_ext4_names_it(ext4_dir):
    raw = efsfast.synthetic_raw(100, named_streams={"Zone.Identifier": 5000}, seed=2)
    with pytest.raises(OSError) as e:
        efsfast.restore(ext4_dir / "f", raw)
    assert "user.Zone.Identifier" in str(e.value) and "does not fit" in str(e.value)
    assert listing(ext4_dir) == []


def test_efs_beyond_the_linux_xattr_cap_says_so(xattr_dir):
    raw = efsfast.synthetic_raw(100, users=120, seed=3)          # a 71 KB $EFS
    with pytest.raises(OSError) as e:
        efsfast.restore(xattr_dir / "f", raw)
    assert e.value.winerror == 277 and "larger than Linux allows one xattr (64 KiB)" in str(
        e.value)
    assert listing(xattr_dir) == []


def test_a_full_ext4_volume_is_full_and_the_limit_still_the_limit(tmp_path):
    """On a small ext4 image: a $EFS too big for the xattr block is named as
    that limit while the disk has room; once the disk is full, a restore
    whose xattrs no longer fit fails as ERROR_DISK_FULL, never blamed on
    the limit."""
    with small_ext4(tmp_path, 4 << 20) as mnt:
        with pytest.raises(OSError) as e:
            efsfast.restore(mnt / "big", efsfast.synthetic_raw(100, users=10, seed=1))
        assert e.value.winerror == 277 and "does not fit in the room" in str(e.value)
        with open(mnt / "filler", "wb") as f:        # (root may use the reserved blocks)
            try:
                while True:
                    f.write(b"\0" * (64 << 10))
                    f.flush()
            except OSError:
                pass
        failures = []
        for i in range(50):
            try:
                efsfast.restore(mnt / f"f{i:02d}", efsfast.synthetic_raw(
                    100, users=3, named_streams={"alt": 2000}, seed=i))
            except OSError as exc:
                failures.append(exc)
        assert failures
        for exc in failures:
            assert (exc.errno, exc.winerror) == (28, 112), exc
            assert "does not fit" not in str(exc), exc
        assert not [n for n in listing(mnt) if n.endswith(".tmp")]
