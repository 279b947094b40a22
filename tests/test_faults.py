"""Fault injection in the POSIX system side: every failing system call gives
a clean error, leaves no temporary file and the destination as it was."""
import errno

import pytest

import efsfast
from efsfast import EfsError
from efsfast.backends import PosixBackend

from conftest import listing, small_tmpfs

# efs_backend.h EFS_FAULT_*
CREATE, WRITE, CLOSE, XATTR_STREAM, XATTR_EFSINFO, PUBLISH, READ = range(1, 8)
POINTS = {"create": CREATE, "write": WRITE, "close": CLOSE, "xattr-stream": XATTR_STREAM,
          "xattr-efsinfo": XATTR_EFSINFO, "publish": PUBLISH}
ERRNOS = {"ENOSPC": (errno.ENOSPC, 112), "EIO": (errno.EIO, 29), "EDQUOT": (errno.EDQUOT, 112),
          "EACCES": (errno.EACCES, 5)}
RAW = efsfast.synthetic_raw(200_000, named_streams={"Zone.Identifier": 90}, seed=81)
DIR_RAW = efsfast.synthetic_raw(directory=True, named_streams={"x": 5}, seed=82)
PRECIOUS = b"old contents"


@pytest.mark.parametrize("err", sorted(ERRNOS))
@pytest.mark.parametrize("point", sorted(POINTS))
@pytest.mark.parametrize("mode", ["new", "overwrite"])
def test_restore_fault(xattr_dir, point, err, mode):
    code, winerror = ERRNOS[err]
    dest = xattr_dir / "f"
    if mode == "overwrite":
        dest.write_bytes(PRECIOUS)
    be = PosixBackend(buffer_size=4096, _fault=(POINTS[point], code))
    with pytest.raises(EfsError) as ei:
        efsfast.restore(dest, RAW, backend=be, overwrite=mode == "overwrite")
    assert ei.value.winerror == winerror and ei.value.errno == code, ei.value
    assert listing(xattr_dir) == (["f"] if mode == "overwrite" else [])
    if mode == "overwrite":
        assert dest.read_bytes() == PRECIOUS
    # the same restore without the fault works
    efsfast.restore(dest, RAW, overwrite=True)
    assert efsfast.backup(dest) == RAW


@pytest.mark.parametrize("point", ["create", "xattr-stream", "xattr-efsinfo", "publish"])
def test_directory_restore_fault(xattr_dir, point):
    be = PosixBackend(_fault=(POINTS[point], errno.EIO))
    with pytest.raises(EfsError):
        efsfast.restore(xattr_dir / "d", DIR_RAW, directory=True, backend=be)
    assert listing(xattr_dir) == []


def test_export_read_fault(xattr_dir, tmp_path):
    efsfast.restore(xattr_dir / "f", RAW)
    be = PosixBackend(_fault=(READ, errno.EIO))
    with pytest.raises(EfsError) as ei:
        efsfast.backup(xattr_dir / "f", tmp_path / "out.efsraw", backend=be)
    assert ei.value.errno == errno.EIO
    assert listing(tmp_path) == []              # no partial backup file either


def test_export_sink_fails(xattr_dir):
    efsfast.restore(xattr_dir / "f", RAW)
    calls = []

    def sink(data, ctx, n):
        calls.append(n)
        return 112 if len(calls) == 2 else 0    # ERROR_DISK_FULL on the second block
    with pytest.raises(EfsError) as ei:
        efsfast.backup(xattr_dir / "f", sink, backend=PosixBackend(buffer_size=1000))
    assert ei.value.winerror == 112 and len(calls) == 2


@pytest.fixture
def tiny_fs(tmp_path):
    """A real 256 KiB tmpfs: disk full for real."""
    with small_tmpfs(tmp_path, "256k") as mnt:
        yield mnt


def test_disk_full_for_real(tiny_fs, xattr_dir):
    big = efsfast.synthetic_raw(1 << 20, seed=83)
    (tiny_fs / "keep").write_bytes(PRECIOUS)
    with pytest.raises(EfsError) as ei:
        efsfast.restore(tiny_fs / "keep", big, overwrite=True)
    assert ei.value.errno == errno.ENOSPC and ei.value.winerror == 112
    assert listing(tiny_fs) == ["keep"] and (tiny_fs / "keep").read_bytes() == PRECIOUS
    with pytest.raises(EfsError):
        efsfast.restore(tiny_fs / "new", big)
    assert listing(tiny_fs) == ["keep"]
    # a backup onto the full disk leaves no partial file
    efsfast.restore(xattr_dir / "f", big)
    with pytest.raises(OSError):
        efsfast.backup(xattr_dir / "f", tiny_fs / "out.efsraw")
    assert listing(tiny_fs) == ["keep"]


def test_backup_set_onto_a_full_disk_fails_each_object_whole(tiny_fs, xattr_dir):
    """A full folder set (the C path, backupset/bulk.py) onto a disk that
    fills: what is stored is whole, the objects that did not fit fail with
    ERROR_DISK_FULL, and nothing partial or temporary is left (also not the
    temporary manifest when the manifest itself no longer fits)."""
    from efsfast.backupset import FolderSink, backup_set
    src = xattr_dir / "src"
    src.mkdir()
    raws = {f"f{i}": efsfast.synthetic_raw(60_000, seed=90 + i) for i in range(8)}
    for name, raw in raws.items():
        efsfast.restore(src / name, raw)
    out = tiny_fs / "set"
    try:
        r = backup_set(src, FolderSink(str(out)), workers=2)
    except OSError as exc:          # the manifest itself did not fit
        assert exc.errno == errno.ENOSPC
        assert "efsfast-manifest.jsonl" not in listing(out)
    else:
        full = [f for f in r.bulk.failures if f.error.winerror == 112]
        assert full and r.bulk.files + len(r.bulk.failures) == len(raws)
    names = listing(out)
    assert not [n for n in names if n.endswith(".tmp")]
    for n in names:
        if n.endswith(".efsraw"):
            assert (out / n).read_bytes() == raws[n[:-len(".efsraw")]]
