"""Backup sets on real NTFS: a tree on an ntfs-3g ``efs_raw`` volume with
set times, attributes and security descriptors, backed up (folder set and
tar stream), restored onto a fresh volume, every ``system.ntfs_*`` value
and every raw stream compared."""
import os
import struct
import subprocess
import sys

import pytest

import efsfast
from efsfast import cli
from efsfast.backupset import MANIFEST_NAME, read_manifest, verify_set
from efsfast.tree import is_encrypted

from ntfs_volume import Volume, needs_ntfs3g

pytestmark = needs_ntfs3g

TIMES, ATTRIB, ACL = "system.ntfs_times", "system.ntfs_attrib", "system.ntfs_acl"
READONLY, HIDDEN, SYSTEM, ARCHIVE = 0x1, 0x2, 0x4, 0x20


@pytest.fixture
def volumes(tmp_path):
    made = []

    def make(name):
        (tmp_path / name).mkdir()
        v = Volume(tmp_path / name)
        v.mount()
        made.append(v)
        return v
    try:
        yield make
    finally:
        for v in made:
            v.unmount()


def descriptor_with_mask(sd: bytes, mask: int) -> bytes:
    """The descriptor ``sd`` with its first DACL entry's access mask set to
    ``mask`` (a different, valid descriptor for ntfs-3g to store)."""
    b = bytearray(sd)
    dacl = struct.unpack_from("<I", b, 16)[0]
    assert dacl, "the volume's default descriptor has a DACL"
    struct.pack_into("<I", b, dacl + 8 + 4, mask)
    return bytes(b)


def make_ntfs_tree(root):
    """Encrypted folders and files (one with a named stream) with their own
    times, attributes and descriptors; returns the relative paths."""
    efsfast.restore(root / "Users", efsfast.synthetic_raw(0, directory=True, seed=1),
                    directory=True)
    efsfast.restore(root / "Users" / "Deep", efsfast.synthetic_raw(0, directory=True, seed=2),
                    directory=True)
    (root / "Plain").mkdir()           # an unencrypted folder above an object
    rels = ["Users", "Users/Deep", "Plain"]
    for i, size in enumerate([0, 5, 4096, 70_000, 10]):
        rel = "Plain/p.doc" if i == 4 else f"Users/f{i}.doc" if i % 2 else f"Users/Deep/f{i}.doc"
        efsfast.restore(root / rel, efsfast.synthetic_raw(
            size, named_streams={"Zone.Identifier": 90} if i == 2 else None, seed=10 + i))
        rels.append(rel)
    base_sd = os.getxattr(root / "Users", ACL)
    attribs = [ARCHIVE | HIDDEN, SYSTEM, HIDDEN, READONLY | ARCHIVE, HIDDEN | SYSTEM, ARCHIVE,
               READONLY, ARCHIVE | SYSTEM]
    for n, rel in enumerate(rels):
        p = root / rel
        os.setxattr(p, ACL, descriptor_with_mask(base_sd, 0x1200A9 + n))
        os.setxattr(p, ATTRIB, struct.pack("<I", attribs[n]))
    # times last, folders after their contents (as a restore must)
    for n, rel in sorted(enumerate(rels), key=lambda x: -x[1].count("/")):
        t = 130_000_000_000_000_000 + n * 1_000_000_007
        os.setxattr(root / rel, TIMES, struct.pack("<3Q", t, t + 11, t + 22))
    return rels


def ntfs_values(root, rels):
    """Every system.ntfs_* value that a restore can set.  ntfs-3g sets the
    MFT change time (the fourth FILETIME) itself: it is left out."""
    out = {}
    for rel in rels:
        p = root / rel
        stream = efsfast.backup(p, directory=os.path.isdir(p)) if is_encrypted(p) else None
        out[rel] = (os.getxattr(p, TIMES)[:24], os.getxattr(p, ATTRIB), os.getxattr(p, ACL),
                    stream)
    return out


def test_folder_set_round_trip_between_ntfs_volumes(volumes, tmp_path):
    a, b = volumes("a"), volumes("b")
    rels = make_ntfs_tree(a.mnt)
    want = ntfs_values(a.mnt, rels)
    assert len({v[2] for v in want.values()}) == len(rels)       # all descriptors differ
    out = tmp_path / "set"
    assert cli.main(["backup-tree", str(a.mnt), str(out), "--quiet"]) == 0
    m = read_manifest(out / MANIFEST_NAME)
    assert m.header.metadata_source == "ntfs-3g"
    assert {e.meta["source"] for e in m.entries} == {"ntfs-3g"}
    assert verify_set(out).ok
    assert ntfs_values(a.mnt, rels) == want                      # the backup changed nothing
    assert cli.main(["restore-tree", str(out), str(b.mnt), "--quiet"]) == 0
    assert ntfs_values(b.mnt, rels) == want
    b.unmount()
    assert "ENCRYPTED" in b.info("/Users/Deep/f2.doc")


def test_restore_options_leave_out_metadata(volumes, tmp_path):
    a, b, c = volumes("a"), volumes("b"), volumes("c")
    rels = make_ntfs_tree(a.mnt)
    want = ntfs_values(a.mnt, rels)
    out = tmp_path / "set"
    assert cli.main(["backup-tree", str(a.mnt), str(out), "--quiet"]) == 0
    assert cli.main(["restore-tree", str(out), str(b.mnt), "--quiet", "--no-acl"]) == 0
    got = ntfs_values(b.mnt, rels)
    for rel in rels:
        assert got[rel][0:2] == want[rel][0:2] and got[rel][3] == want[rel][3], rel
        assert got[rel][2] != want[rel][2], rel                  # the volume's default
    assert cli.main(["restore-tree", str(out), str(c.mnt), "--quiet", "--no-metadata"]) == 0
    got = ntfs_values(c.mnt, rels)
    assert all(got[r][3] == want[r][3] and got[r][0] != want[r][0] for r in rels)


def test_tar_stream_round_trip_between_ntfs_volumes(volumes):
    a, b = volumes("a"), volumes("b")
    rels = make_ntfs_tree(a.mnt)
    want = ntfs_values(a.mnt, rels)
    efs = [sys.executable, "-m", "efsfast"]
    backup = subprocess.Popen(efs + ["backup-tree", str(a.mnt), "-"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    restore = subprocess.run(efs + ["restore-tree", "-", str(b.mnt)], stdin=backup.stdout,
                             capture_output=True, text=True)
    backup.stdout.close()
    assert backup.wait() == 0, backup.stderr.read()
    assert restore.returncode == 0, restore.stderr
    assert ntfs_values(b.mnt, rels) == want


def test_incremental_on_ntfs_uses_the_change_time(volumes, tmp_path):
    a = volumes("a")
    rels = make_ntfs_tree(a.mnt)
    assert cli.main(["backup-tree", str(a.mnt), str(tmp_path / "full"), "--quiet"]) == 0
    # new content for one file; new attributes only for another (ntfs-3g does
    # not move the change time for that: the data stays a reference, the
    # manifest line carries the new attributes)
    efsfast.restore(a.mnt / "Users/Deep/f2.doc", efsfast.synthetic_raw(3000, seed=77),
                    overwrite=True)
    os.setxattr(a.mnt / "Users/f1.doc", ATTRIB, struct.pack("<I", ARCHIVE))
    # a first read of new content moves its last access time (ntfs-3g's
    # relatime); read it once before the values are taken
    efsfast.backup(a.mnt / "Users/Deep/f2.doc")
    want = ntfs_values(a.mnt, rels)
    assert cli.main(["backup-tree", str(a.mnt), str(tmp_path / "inc"), "--quiet",
                     "--since", str(tmp_path / "full")]) == 0
    m = read_manifest(tmp_path / "inc" / MANIFEST_NAME)
    copied = sorted(e.path for e in m.entries if not e.ref)
    assert "Users/Deep/f2.doc" in copied and "Users/f1.doc" not in copied, copied
    assert not {"Users/f3.doc", "Users/Deep/f0.doc"} & set(copied), copied
    assert m.by_path()["Users/f1.doc"].meta["attributes"] & ~0x4000 == ARCHIVE   # ENCRYPTED stays
    assert len(m.entries) == len(rels)
    assert verify_set(tmp_path / "inc").ok
    b = volumes("b")
    assert cli.main(["restore-tree", str(tmp_path / "inc"), str(b.mnt), "--quiet"]) == 0
    assert ntfs_values(b.mnt, rels) == want


def test_plain_files_on_ntfs_are_skipped_by_their_attributes(volumes, tmp_path):
    """On ntfs-3g each worker reads the object's NTFS attributes through the
    descriptor it opened: a plain file, also one inside an encrypted folder,
    is skipped and never listed; every encrypted object is in the set."""
    a = volumes("a")
    rels = make_ntfs_tree(a.mnt)
    (a.mnt / "Plain" / "readme.txt").write_text("plain")
    (a.mnt / "Users" / "notes.txt").write_text("plain too")
    out = tmp_path / "set"
    from efsfast.backupset import FolderSink, backup_set
    r = backup_set(a.mnt, FolderSink(str(out)), workers=2)
    assert r.bulk.ok and r.bulk.files == len(rels) - 1         # all but the Plain folder
    assert sorted(os.path.relpath(p, a.mnt) for p in r.skipped) == [
        "Plain/readme.txt", "Users/notes.txt"]
    m = read_manifest(out / MANIFEST_NAME)
    assert {e.path for e in m.entries} == set(rels)            # Plain: a plain folder line
    assert [e.kind.value for e in m.entries if e.path == "Plain"] == ["plain-directory"]
    assert verify_set(out).ok


def test_a_full_ntfs_volume_is_reported_as_full(tmp_path, xattr_dir):
    """restore-tree onto a small ntfs-3g volume that fills: the objects that
    do not fit fail as ERROR_DISK_FULL, never as "does not fit in the room
    this file system gives a file's xattrs" (ntfs-3g can fail a large $EFS
    or named stream with ENOSPC while a few clusters are still free); what
    was restored is whole, nothing temporary is left.  Then a backup-tree
    onto the full volume leaves an incomplete set and says so."""
    import json
    (tmp_path / "v").mkdir()
    v = Volume(tmp_path / "v", size=4 << 20)
    v.mount()
    try:
        src = xattr_dir / "set"
        src.mkdir()
        raws = {f"f{i:03d}": efsfast.synthetic_raw(100, users=20, seed=i,
                                                   named_streams={"alt": 20_000})
                for i in range(200)}
        for name, raw in raws.items():
            (src / (name + ".efsraw")).write_bytes(raw)
        r = subprocess.run([sys.executable, "-m", "efsfast", "restore-tree", str(src),
                            str(v.mnt / "d"), "--json"], capture_output=True, text=True)
        rec = json.loads(r.stdout)
        assert r.returncode == 1 and rec["counts"]["failed"] and rec["counts"]["done"], rec["counts"]["done"]
        for f in rec["failures"]:
            assert "does not fit" not in f["error"], f
            assert (f["errno"], f["winerror"]) == (28, 112), f
        restored = v.names("d")
        assert len(restored) == rec["counts"]["done"] and not [n for n in restored if ".tmp" in n]
        for name in restored:
            assert efsfast.backup(v.mnt / "d" / name) == raws[name], name
        tree = xattr_dir / "tree"              # encrypted files, for a backup
        tree.mkdir()
        for i in range(20):
            efsfast.restore(tree / f"g{i:02d}", efsfast.synthetic_raw(200_000, seed=i))
        out = v.mnt / "backup"
        r = subprocess.run([sys.executable, "-m", "efsfast", "backup-tree", str(tree),
                            str(out), "--json"], capture_output=True, text=True)
        rec = json.loads(r.stdout)
        assert r.returncode == 1 and rec["complete"] is False, rec
        assert rec["counts"]["failed"] and all(f["path"] and f["winerror"] == 112
                                     for f in rec["failures"]), rec["failures"]
    finally:
        v.unmount()
