"""What a backup set reads of an object besides its raw stream, through the
export context's own descriptor (_core.object_stat / object_xattr /
load_efs): the same values a path lookup gives, the $EFS read once and sent
by the export, and the errors of what cannot be read."""
import errno
import os

import pytest

import efsfast
from efsfast import _core
from efsfast.volume import EFSINFO_XATTR


@pytest.fixture
def encrypted(xattr_dir):
    p = xattr_dir / "f.bin"
    raw = efsfast.synthetic_raw(5000, named_streams={"alt": 300}, seed=3)
    efsfast.restore(p, raw)
    return p, raw


def test_stat_and_xattrs_match_the_path(encrypted):
    p, _ = encrypted
    os.setxattr(p, "user.small", b"x" * 10)
    os.setxattr(p, "user.large", bytes(range(256)) * 12)     # past the first 1 KiB buffer
    st = os.stat(p)
    with _core.open_raw(p, 0) as raw:
        assert _core.object_stat(raw) == (st.st_size, st.st_mode, st.st_atime_ns,
                                          st.st_mtime_ns, st.st_ctime_ns)
        assert _core.object_xattr(raw, "user.small") == b"x" * 10
        assert _core.object_xattr(raw, "user.large") == bytes(range(256)) * 12
        with pytest.raises(OSError) as e:
            _core.object_xattr(raw, "user.missing")
    assert e.value.errno == errno.ENODATA and e.value.filename == os.fspath(p)


def test_efs_read_once_is_what_the_export_sends(encrypted):
    p, raw_stream = encrypted
    with _core.open_raw(p, 0) as raw:
        efs = _core.load_efs(raw)
        assert efs == os.getxattr(p, EFSINFO_XATTR)
        # changing the xattr now does not change what this context exports:
        # the $EFS hashed for the manifest is the one in the stream
        os.setxattr(p, EFSINFO_XATTR, efs[:-1] + bytes([efs[-1] ^ 1]))
        assert _core.load_efs(raw) == efs
        _, _, data = _core.read_raw(raw)
    assert data == raw_stream


def test_a_plain_file_has_no_efs(xattr_dir):
    p = xattr_dir / "plain.txt"
    p.write_text("not encrypted")
    with _core.open_raw(p, 0) as raw:
        with pytest.raises(efsfast.EfsError) as e:
            _core.load_efs(raw)
    assert e.value.winerror == 6007 and "not encrypted" in str(e.value)


def test_facts_need_an_export_context(xattr_dir):
    with _core.open_raw(xattr_dir / "new", _core.CREATE_FOR_IMPORT) as raw:
        with pytest.raises(efsfast.EfsError):
            _core.object_stat(raw)
        with pytest.raises(OSError) as e:
            _core.object_xattr(raw, "user.x")
        assert e.value.errno == errno.EINVAL
        with pytest.raises(efsfast.EfsError):
            _core.load_efs(raw)
    assert not (xattr_dir / "new").exists()
