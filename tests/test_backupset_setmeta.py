"""A set restore's POSIX metadata set in C on worker threads
(_core.PosixMetaBatch, efs_setmeta.c): exact as os.chmod / os.utime set it,
and a file it cannot be set on is a failed item naming it and the cause."""
import errno
import os
import subprocess
import sys

import pytest

import efsfast
from efsfast import _core
from efsfast.backupset import FolderSink, backup_set, read_manifest
from efsfast.backupset import metadata as meta
from efsfast.backupset.manifest import MANIFEST_NAME
from efsfast.backupset.restore import apply_metadata, restore_set

from conftest import _as_root, _mounted

# times before the epoch (floor division of the nanoseconds), at it, and odd nanoseconds
TIMES = [(-1, -1_500_000_001), (0, 0), (1_600_000_000_123_456_789, 1_500_000_000_987_654_321),
         (5, 1)]
MODES = [0o600, 0o644, 0o000, 0o7777, 0o444]


def _source(root, count):
    src = root / "src"
    (src / "sub").mkdir(parents=True)
    want = {}
    for i in range(count):
        rel = f"sub/f{i}.bin" if i % 2 else f"f{i}.bin"
        efsfast.restore(src / rel, efsfast.synthetic_raw(100 + i, seed=i))
        os.chmod(src / rel, MODES[i % len(MODES)])
        os.utime(src / rel, ns=TIMES[i % len(TIMES)])
        want[rel] = (MODES[i % len(MODES)], *TIMES[i % len(TIMES)])
    return src, want


def _spy(monkeypatch):
    """The size of every PosixMetaBatch run (from a set's C rows or from
    metadata dicts)."""
    made = []
    real = meta.run_posix

    def run(batch, workers):
        made.append(batch.count)
        return real(batch, workers)
    monkeypatch.setattr(meta, "run_posix", run)
    return made


@pytest.mark.parametrize("workers", [1, 3])
def test_files_metadata_set_in_c_is_exact(xattr_dir, monkeypatch, workers):
    src, want = _source(xattr_dir, 23)
    backup_set(src, FolderSink(str(xattr_dir / "set")))
    made = _spy(monkeypatch)
    r = restore_set(xattr_dir / "set", xattr_dir / "dest", workers=workers)
    assert not r.bulk.failures and r.bulk.files == 23
    assert made == [23]                 # every file's metadata went through C, once
    for rel, (mode, atime, mtime) in want.items():
        st = os.lstat(xattr_dir / "dest" / rel)
        assert (st.st_mode & 0o7777, st.st_atime_ns, st.st_mtime_ns) == (mode, atime, mtime), rel


def test_acl_off_leaves_the_mode(xattr_dir):
    src, want = _source(xattr_dir, 5)
    backup_set(src, FolderSink(str(xattr_dir / "set")))
    r = restore_set(xattr_dir / "set", xattr_dir / "dest", acl=False)
    assert not r.bulk.failures
    for rel, (mode, atime, mtime) in want.items():
        st = os.lstat(xattr_dir / "dest" / rel)
        assert (st.st_atime_ns, st.st_mtime_ns) == (atime, mtime)
        if mode not in (0o644, 0o600):
            assert st.st_mode & 0o7777 != mode, rel     # as restored, not as captured


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX metadata is set in C only off "
                    "Windows (efs_setmeta.c answers ENOSYS there; apply_metadata calls apply)")
def test_values_c_cannot_hold_go_to_apply(tmp_path):
    """A value out of the C types' range, and any other odd value or
    source, is left to apply (which sets it or says why): only that file's;
    the others' are set in C."""
    paths = []
    for i in range(6):
        paths.append(str(tmp_path / f"f{i}"))
        open(paths[-1], "wb").close()
    good = {"source": "posix", "mode": 0o600, "atime_ns": 5, "mtime_ns": 7}
    metas = [good,
             dict(good, atime_ns=2 ** 70),              # beyond int64
             dict(good, mode="0644"),                   # not a number
             dict(good, mode=0o10000),                  # beyond the permission bits
             {"source": "ntfs-3g"},
             dict(good, mtime_ns=True)]                 # a bool is not a time
    errors, left = meta.apply_posix_many(paths, metas, True, 2)
    assert errors == [] and left == [1, 2, 3, 4, 5]
    st = os.lstat(paths[0])
    assert (st.st_mode & 0o7777, st.st_atime_ns, st.st_mtime_ns) == (0o600, 5, 7)
    for p in paths[1:]:
        assert os.lstat(p).st_mtime_ns != 7
    # without the ACL (mode), an odd mode is no reason to leave a file
    errors, left = meta.apply_posix_many(paths[2:4], metas[2:4], False, 1)
    assert errors == [] and left == []
    assert [os.lstat(p).st_mtime_ns for p in paths[2:4]] == [7, 7]


def test_a_file_whose_metadata_cannot_be_set_is_a_named_failed_item(xattr_dir, tmp_path):
    """The destination turns read-only after the content is restored (a
    read-only bind mount): chmod fails with EROFS for every file, each a
    failed item naming the file, as the Python path names it."""
    _as_root("mount", "a read-only bind mount")
    src, want = _source(xattr_dir, 6)
    backup_set(src, FolderSink(str(xattr_dir / "set")))
    inner = xattr_dir / "inner"
    inner.mkdir()
    with _mounted(tmp_path / "mnt", "a bind mount", ["mount", "--bind", inner,
                                                     tmp_path / "mnt"]) as mnt:
        dest = mnt / "dest"
        state = {"ro": False}

        def progress(files, _bytes, total):
            if files == total and not state["ro"]:      # content done, metadata next
                r = subprocess.run(["mount", "-o", "remount,bind,ro", str(mnt)],
                                   capture_output=True, text=True)
                if r.returncode:
                    pytest.skip(f"cannot make the bind mount read-only: {r.stderr.strip()}")
                state["ro"] = True
        r = restore_set(xattr_dir / "set", dest, progress=progress)
        assert state["ro"]
        named = sorted(f.dest for f in r.bulk.failures)
        # (the plain folder's too, set by apply after the files')
        assert named == sorted(str(dest / rel) for rel in [*want, "sub"])
        for f in r.bulk.failures:
            assert isinstance(f.error, OSError) and f.error.errno == errno.EROFS
            assert f.error.filename == f.dest
        # the Python path gives the same error for the same file
        m = read_manifest(xattr_dir / "set" / MANIFEST_NAME)
        e = m.by_path()["f0.bin"]
        with pytest.raises(OSError) as py:
            meta.apply(str(dest / "f0.bin"), e.meta, target_ntfs3g=False)
        one = next(f for f in r.bulk.failures if f.dest == str(dest / "f0.bin"))
        assert (type(one.error), one.error.errno, one.error.strerror) == (
            type(py.value), py.value.errno, py.value.strerror)
        subprocess.run(["mount", "-o", "remount,bind,rw", str(mnt)], capture_output=True)


def test_a_file_not_restored_is_no_failure_of_its_metadata(xattr_dir):
    """As on the Python path: a file that is not there (not restored) is
    left out quietly; a folder's metadata still follows the files'."""
    src, want = _source(xattr_dir, 4)
    backup_set(src, FolderSink(str(xattr_dir / "set")))
    m = read_manifest(xattr_dir / "set" / MANIFEST_NAME)
    dest = xattr_dir / "dest"
    (dest / "sub").mkdir(parents=True)
    efsfast.restore(dest / "f0.bin", efsfast.synthetic_raw(10, seed=1))
    assert apply_metadata(m.entries, str(dest), acl=True, skip=set()) == []
    st = os.lstat(dest / "f0.bin")
    assert (st.st_mode & 0o7777, st.st_atime_ns, st.st_mtime_ns) == want["f0.bin"]
    assert not os.path.exists(dest / "sub" / "f1.bin")
