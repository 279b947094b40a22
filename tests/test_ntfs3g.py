"""Integration with the real thing: restore onto an NTFS volume mounted with
``ntfs-3g -o efs_raw`` (FUSE), then check the unmounted image with ntfsprogs.
"""
import os

import pytest

import efsfast

from conftest import load_sample
from ntfs_volume import Volume, needs_ntfs3g

pytestmark = needs_ntfs3g


@pytest.fixture
def volume(tmp_path):
    v = Volume(tmp_path)
    v.mount()
    try:
        yield v
    finally:
        v.unmount()


LOGGED_UTILITY_STREAM = 0x100


def test_restore_onto_ntfs3g_makes_real_efs_files(volume):
    sample = load_sample()
    big = efsfast.synthetic_raw(250_000, named_streams={"Zone.Identifier": 90}, recovery_agents=1,
                                seed=7)
    folder = efsfast.synthetic_raw(directory=True, seed=8)
    empty = efsfast.synthetic_raw(0, seed=9)
    efsfast.restore(volume.mnt / "sample.txt", sample)
    efsfast.restore(volume.mnt / "big.bin", big)
    efsfast.restore(volume.mnt / "folder", folder, directory=True)
    efsfast.restore(volume.mnt / "empty", empty)
    # ntfs-3g efs_raw presents round512(size) + 2 bytes
    assert os.stat(volume.mnt / "sample.txt").st_size == 514
    volume.unmount()

    for name, raw in (("sample.txt", sample), ("big.bin", big), ("folder", folder),
                      ("empty", empty)):
        info = volume.info("/" + name)
        assert "ENCRYPTED" in info, info
        meta = efsfast.inspect(raw)
        start = 20 + 30 + 16                          # the one metadata segment's data
        assert volume.attribute("/" + name, LOGGED_UTILITY_STREAM) == raw[start:start + meta.metadata.length]
    # the $DATA attributes are flagged ATTR_IS_ENCRYPTED (0x4000), the logical size kept
    info = volume.info("/sample.txt")
    assert "Attribute flags:\t 0x4000" in info
    assert "Data size:\t\t 12 (0xc)" in info and "Initialized size:\t 12 (0xc)" in info, info

    volume.mount()
    assert efsfast.backup(volume.mnt / "sample.txt") == sample
    assert efsfast.backup(volume.mnt / "big.bin") == big
    assert efsfast.backup(volume.mnt / "folder", directory=True) == folder
    assert efsfast.backup(volume.mnt / "empty") == empty
    assert sorted(os.listdir(volume.mnt)) == ["big.bin", "empty", "folder", "sample.txt"]


def test_failed_restore_leaves_nothing_on_ntfs3g(volume):
    sample = load_sample()
    with pytest.raises(efsfast.RawFormatError):
        efsfast.restore(volume.mnt / "bad", sample[:1500])
    assert [n for n in os.listdir(volume.mnt) if not n.startswith("$")] == []


def test_tree_round_trip_on_ntfs3g(volume, tmp_path):
    """restore-tree onto the mounted volume and backup-tree back: a folder of
    raw streams becomes real EFS files and folders and comes back identical."""
    from efsfast import cli
    src = tmp_path / "set"
    src.mkdir()
    meta = efsfast.synthetic_metadata(users=2, recovery_agents=1, seed=11)
    (src / "Docs.efsraw").write_bytes(efsfast.build_raw(meta))
    (src / "Docs").mkdir()
    for i, size in enumerate([0, 1, 4095, 70_000, 300_000]):
        raw = efsfast.build_raw(meta, [efsfast.DataStream("::$DATA", size, bytes(
            (j * 7 + i) & 0xFF for j in range((size + 511) & ~511)))])
        (src / "Docs" / f"f{i}.bin.efsraw").write_bytes(raw)
    assert cli.main(["restore-tree", str(src), str(volume.mnt / "Users"), "--quiet"]) == 0
    # again over the restored tree: folders take their $EFS in place (was ENOTEMPTY)
    assert cli.main(["restore-tree", str(src), str(volume.mnt / "Users"), "--quiet",
                     "--overwrite"]) == 0
    out = tmp_path / "again"
    assert cli.main(["backup-tree", str(volume.mnt / "Users"), str(out), "--quiet"]) == 0
    for p in src.rglob("*.efsraw"):
        assert (out / p.relative_to(src)).read_bytes() == p.read_bytes(), p
    volume.unmount()
    assert "ENCRYPTED" in volume.info("/Users/Docs")
    assert "ENCRYPTED" in volume.info("/Users/Docs/f3.bin")


@pytest.mark.parametrize("size", [4000, 4096, 8191, 65536, 131072, 131073])
def test_cluster_aligned_ciphertext_backs_up_in_the_same_session(volume, size):
    """When the ciphertext ends on a cluster boundary, ntfs-3g fails a read
    that starts at the padding trailer (EIO); the POSIX side works around it,
    right after the restore and after a remount alike."""
    raw = efsfast.synthetic_raw(size, seed=size)
    efsfast.restore(volume.mnt / "f", raw)
    assert efsfast.backup(volume.mnt / "f") == raw
    volume.unmount()
    volume.mount()
    assert efsfast.backup(volume.mnt / "f") == raw


def test_named_streams_round_trip_in_ntfs_order(volume):
    """NTFS keeps attributes in its collation order (case-insensitive here:
    a, B, c), lists them so, and Windows exports them so: a raw stream in that
    order comes back byte-identical.  One in another order is restored in
    stream order and backed up in the volume's (issue 10, case 7)."""
    ntfs_order = efsfast.synthetic_raw(100, named_streams={"a": 5, "B": 600, "c": 0}, seed=1)
    efsfast.restore(volume.mnt / "f", ntfs_order)
    assert [n for n in os.listxattr(volume.mnt / "f") if n != "user.ntfs.efsinfo"] == [
        "user.a", "user.B", "user.c"]
    assert efsfast.backup(volume.mnt / "f") == ntfs_order

    other = efsfast.synthetic_raw(100, named_streams={"c": 5, "a": 600, "B": 0}, seed=2)
    efsfast.restore(volume.mnt / "g", other)
    back = efsfast.inspect(efsfast.backup(volume.mnt / "g"))
    assert [s.name for s in back.streams] == ["::$DATA", ":a:$DATA", ":B:$DATA", ":c:$DATA"]
    volume.unmount()
    volume.mount()
    assert efsfast.backup(volume.mnt / "f") == ntfs_order


def test_tree_jobs_default_to_two_workers_on_ntfs3g(volume, tmp_path):
    """ntfs-3g's daemon is single-threaded: tree jobs default to two workers
    there (benchmarks/results), one per CPU elsewhere."""
    from efsfast import volume as vol
    assert vol.filesystem_type(volume.mnt) == "fuse"
    assert vol.filesystem_type(volume.mnt / "not-yet") == "fuse"
    assert vol.default_workers(volume.mnt) == vol.FUSE_WORKERS == 2
    assert vol.filesystem_type(tmp_path) != "fuse"


def test_restore_tree_uses_the_volume_default(volume, tmp_path, monkeypatch):
    from efsfast import raw, tree
    src = tmp_path / "set"
    src.mkdir()
    (src / "a.efsraw").write_bytes(raw.synthetic_raw(100))
    seen = []
    real = tree.restore_many

    def recording(jobs, **kw):
        seen.append(kw["workers"])
        return real(jobs, **kw)
    monkeypatch.setattr(tree, "restore_many", recording)
    r = tree.restore_tree(src, volume.mnt / "out")
    assert not r.failures and seen == [2]
    seen.clear()
    tree.restore_tree(src, volume.mnt / "out1", workers=1)
    assert seen == [1]


def test_folder_restored_over_a_folder_in_place(volume, tmp_path):
    """restore --overwrite of an encrypted folder onto an existing one on
    NTFS: a plain folder becomes encrypted and keeps its files; the same $EFS
    again is accepted; another $EFS is refused (ntfs-3g cannot replace one),
    the folder left as it was (issue 10, case 4)."""
    folder = efsfast.synthetic_raw(directory=True, named_streams={"meta": 40}, seed=21)
    (volume.mnt / "Docs").mkdir()
    (volume.mnt / "Docs" / "notes.txt").write_text("mine")
    efsfast.restore(volume.mnt / "Docs", folder, directory=True, overwrite=True)
    assert efsfast.backup(volume.mnt / "Docs", directory=True) == folder
    efsfast.restore(volume.mnt / "Docs", folder, directory=True, overwrite=True)
    other = efsfast.synthetic_raw(directory=True, seed=22)
    with pytest.raises(efsfast.EfsError) as e:
        efsfast.restore(volume.mnt / "Docs", other, directory=True, overwrite=True)
    assert e.value.winerror == 50 and "cannot replace in place" in str(e.value)
    assert efsfast.backup(volume.mnt / "Docs", directory=True) == folder
    assert (volume.mnt / "Docs" / "notes.txt").read_text() == "mine"
    assert volume.names() == ["Docs"]
    volume.unmount()
    assert "ENCRYPTED" in volume.info("/Docs")


def test_no_replace_holds_after_ntfs3g_refused_rename_noreplace(volume):
    """ntfs-3g refuses renameat2(RENAME_NOREPLACE) and O_TMPFILE; the POSIX
    side remembers that per device and goes straight to link + unlink.  The
    guarantee stays: restores in a row never replace what is there, and
    leave no temporaries."""
    raws = [efsfast.synthetic_raw(3000 + i, seed=i) for i in range(3)]
    for i, r in enumerate(raws):            # the first learns the refusals
        efsfast.restore(volume.mnt / f"f{i}", r)
    with pytest.raises(efsfast.EfsError) as e:
        efsfast.restore(volume.mnt / "f1", raws[0])
    assert e.value.winerror == 80           # ERROR_FILE_EXISTS
    assert [efsfast.backup(volume.mnt / f"f{i}") for i in range(3)] == raws
    assert sorted(os.listdir(volume.mnt)) == ["f0", "f1", "f2"]
    # and the cached folder check still notices a folder that went away
    os.mkdir(volume.mnt / "d")
    efsfast.restore(volume.mnt / "d" / "x", raws[0])
    os.unlink(volume.mnt / "d" / "x")
    os.rmdir(volume.mnt / "d")
    with pytest.raises(efsfast.EfsError) as e:
        efsfast.restore(volume.mnt / "d" / "y", raws[0])
    assert e.value.winerror in (2, 3)       # not found
    assert not os.path.exists(volume.mnt / "d")
