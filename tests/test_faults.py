"""Fault injection in the POSIX system side: every failing system call gives
a clean error, leaves no temporary file and the destination as it was."""
import errno
import os

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


FULL_CASES = {
    # (tmpfs size, objects, raw size): the objects fill the disk / so do the
    # objects, and then the manifest's next page no longer fits
    "objects": ("256k", 8, 60_000),
    "manifest": ("64k", 40, 1_500),
}


@pytest.mark.parametrize("path", ["c", "object-by-object"])
@pytest.mark.parametrize("case", sorted(FULL_CASES))
def test_backup_set_onto_a_full_disk(tmp_path, xattr_dir, capsys, case, path):
    """backup-tree onto a disk that fills (a real small tmpfs): the objects
    that did not fit are named, each with ERROR_DISK_FULL, the summary and
    the --json record count exactly what is whole in the set, which is left
    incomplete (its partial manifest lists exactly those objects, ending in
    whole lines) and exits 1.  Once there is room, --skip-existing finishes
    it.  (--skip-existing into a new folder takes the object-by-object path,
    a plain backup the C one, backupset/bulk.py.)"""
    import json
    import subprocess
    from efsfast import cli
    from efsfast.backupset import read_manifest, verify_set
    from efsfast.backupset.manifest import MANIFEST_NAME, PARTIAL_NAME
    size, n, raw_size = FULL_CASES[case]
    src = xattr_dir / "src"
    src.mkdir()
    raws = {f"f{i:02d}": efsfast.synthetic_raw(raw_size, seed=90 + i) for i in range(n)}
    for name, raw in raws.items():
        efsfast.restore(src / name, raw)
    flags = ["--skip-existing"] if path != "c" else []
    with small_tmpfs(tmp_path, size) as mnt:
        out = mnt / "set"
        code = cli.main(["backup-tree", str(src), str(out), "--json", *flags])
        rec = json.loads(capsys.readouterr().out)
        assert code == 1 and rec["complete"] is False, rec
        assert rec["incomplete_reason"].startswith("its manifest could not be written" if case ==
                                            "manifest" else "the destination is full")
        names = listing(out)
        assert MANIFEST_NAME not in names and not [x for x in names if x.endswith(".tmp")]
        stored = {x[:-len(".efsraw")] for x in names if x.endswith(".efsraw")}
        for name in stored:                                 # each whole
            assert (out / (name + ".efsraw")).read_bytes() == raws[name]
        assert (out / PARTIAL_NAME).read_bytes().endswith(b"\n")     # whole lines only
        m = read_manifest(out / PARTIAL_NAME, partial=True)
        assert not m.complete
        assert {e.path for e in m.entries if e.has_stream} == stored
        assert rec["counts"]["done"] == len(stored) and rec["counts"]["done"] + rec["counts"]["failed"] == n, rec
        assert rec["counts"]["failed"] and rec["counts"]["not_done"] == 0
        for f in rec["failures"]:
            assert f["path"] and f["dest"] and f["errno"] == errno.ENOSPC, f
            assert f["winerror"] == 112 and os.path.basename(f["path"]) in raws
        code = cli.main(["backup-tree", str(src), str(out)])
        text, err = capsys.readouterr()
        assert code == 2 and "incomplete backup set" in err      # not over it by mistake
        subprocess.run(["mount", "-o", "remount,size=4m", str(mnt)], check=True)
        assert cli.main(["backup-tree", str(src), str(out), "--skip-existing", "--quiet"]) == 0
        assert verify_set(out).ok
        assert {e.path: (out / e.stored_name).read_bytes()
                for e in read_manifest(out / MANIFEST_NAME).entries} == raws
