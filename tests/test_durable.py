"""Durability (docs/RELIABILITY.md, "Durability"): the order of the calls
that put a set or a restored tree on stable storage, seen under ``strace
-f`` on tmpfs, on an ext4 image and on ntfs-3g.

- backup-tree (folder set): every object's data synced (one syncfs, or on
  FUSE an fsync of each object and of its folders) before the manifest is
  published; the manifest fsynced before its rename/link; the set folder
  fsynced after it.
- backup-tree - (tar stream): the stream fsynced when stdout is a file.
- restore-tree (folder set, tar stream, manifest-less folder) and
  decrypt-tree: a sync before the summary is printed; none with --no-sync.
- On ntfs-3g, syncfs() sends the daemon nothing (which is why FUSE gets an
  fsync per file), and the FSYNC requests make the daemon fsync its device.
"""
import errno
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import pytest

import efsfast
from efsfast import cli, durable

from ntfs_volume import Volume, needs_ntfs3g
from test_backupset import make_tree

TRACED = "fsync,fdatasync,syncfs,sync,link,linkat,rename,renameat,renameat2,write,writev"
MANIFEST = "efsfast-manifest.jsonl"
PARTIAL = "efsfast-manifest.partial.jsonl"


def _need_strace():
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (apt-get install strace)")


@dataclass
class Call:
    name: str
    args: str
    start: int                  # line of the call in the log
    end: int = -1               # line where it returned

    @property
    def strings(self) -> List[str]:
        return re.findall(r'"((?:[^"\\]|\\.)*)"', self.args)

    @property
    def target(self) -> str:
        """The name a link/rename gives."""
        return self.strings[-1] if self.strings else ""

    @property
    def fd_path(self) -> str:
        """The path strace -y shows for the call's first descriptor."""
        m = re.match(r"\d+<([^>]*)>", self.args)
        return m.group(1) if m else ""


@dataclass
class Trace:
    calls: List[Call] = field(default_factory=list)
    rc: int = 0
    stdout: bytes = b""
    stderr: bytes = b""

    def named(self, *names: str) -> List[Call]:
        return [c for c in self.calls if c.name in names]

    def publications(self) -> List[Call]:
        return self.named("link", "linkat", "rename", "renameat", "renameat2")

    def syncs(self) -> List[Call]:
        return self.named("fsync", "fdatasync", "syncfs", "sync")

    def fsyncs_of(self, path: str) -> List[Call]:
        return [c for c in self.named("fsync", "fdatasync") if c.fd_path == os.fspath(path)]

    def summary(self, word: str) -> Call:
        """The write of the summary line that starts with ``word``."""
        for c in self.named("write"):
            if c.strings and c.strings[0].startswith(word):
                return c
        raise AssertionError(f"no summary {word!r} written")


_LINE = re.compile(r"^(\d+)\s+(.*)$")


def _parse(log: str) -> List[Call]:
    calls: List[Call] = []
    pending: Dict[tuple, Call] = {}
    for i, line in enumerate(log.splitlines()):
        m = _LINE.match(line)
        if not m:
            continue
        pid, rest = m.groups()
        r = re.match(r"<\.\.\. (\w+) resumed>", rest)
        if r:
            c = pending.pop((pid, r.group(1)), None)
            if c is not None:
                c.args += rest[r.end():]
                c.end = i
            continue
        r = re.match(r"(\w+)\((.*)$", rest)
        if not r:
            continue
        c = Call(r.group(1), r.group(2), i)
        if rest.endswith("<unfinished ...>"):
            pending[(pid, c.name)] = c
        else:
            c.end = i
        calls.append(c)
    return calls


def _traced(args, tmp_path, *, stdin=None, stdout=subprocess.PIPE, input=None) -> Trace:
    """Run the command line under strace -f -y (paths of descriptors shown)."""
    _need_strace()
    log = tmp_path / f"strace-{len(list(tmp_path.glob('strace-*')))}.log"
    r = subprocess.run(["strace", "-f", "-y", "-qq", "-s", "300", "-e", f"trace={TRACED}",
                        "-o", str(log), sys.executable, "-m", "efsfast", *map(str, args)],
                       stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, input=input)
    if r.returncode != 0 and b"ptrace" in r.stderr:
        pytest.skip(f"strace cannot trace here: {r.stderr.decode(errors='replace')[:200]}")
    return Trace(_parse(log.read_text(errors="replace")), r.returncode, r.stdout or b"",
                 r.stderr)


# ---- where: tmpfs, an ext4 image, ntfs-3g

def _mount_ext4(tmp_path):
    why = ("" if os.geteuid() == 0 and shutil.which("mkfs.ext4") and shutil.which("mount")
           else "an ext4 image needs root, mkfs.ext4 and mount")
    if why:
        pytest.skip(why)
    image, mnt = tmp_path / "ext4.img", tmp_path / "ext4"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(64 << 20)
    # ea_inode: room for a $EFS and named streams larger than one block
    subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "ea_inode", str(image)], check=True,
                   capture_output=True)
    r = subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount an ext4 image here: {r.stderr.strip()}")
    return mnt


class Place:
    """A folder on the file system a test writes to, and how to put it back."""

    def __init__(self, kind, tmp_path, xattr_dir):
        self.kind, self.volume, self.mnt = kind, None, None
        if kind == "tmpfs":
            self.root = xattr_dir / "out"
        elif kind == "ext4":
            self.mnt = _mount_ext4(tmp_path)
            self.root = self.mnt / "out"
        else:
            self.volume = Volume(tmp_path, size=64 << 20)
            self.volume.mount()
            self.root = self.volume.mnt / "out"
        self.root.mkdir()

    def close(self):
        if self.volume is not None:
            self.volume.unmount()
        elif self.mnt is not None:
            subprocess.run(["umount", str(self.mnt)], capture_output=True)


PLACES = ["tmpfs", "ext4", pytest.param("ntfs-3g", marks=needs_ntfs3g)]


@pytest.fixture(params=PLACES)
def place(request, tmp_path, xattr_dir):
    p = Place(request.param, tmp_path, xattr_dir)
    try:
        yield p
    finally:
        p.close()


def test_each_place_gets_the_way_it_needs(place):
    want = durable.SyncWay.DEVICE if place.kind == "ntfs-3g" else durable.SyncWay.FILESYSTEM
    assert durable.way_for(str(place.root)) is want
    # (a folder not made yet: asked of the nearest one that is there)
    assert durable.way_for(str(place.root / "not" / "yet")) is want


@needs_ntfs3g
def test_a_symlink_to_an_ntfs3g_folder_gets_the_device_flush(tmp_path, xattr_dir):
    """The way follows a symlink, as the fsync of the folder does."""
    vol = Volume(tmp_path, size=32 << 20)
    vol.mount()
    try:
        (vol.mnt / "dest").mkdir()
        link = xattr_dir / "link"
        link.symlink_to(vol.mnt / "dest")
        assert durable.way_for(str(link)) is durable.SyncWay.DEVICE
        assert durable.way_for(str(xattr_dir)) is durable.SyncWay.FILESYSTEM
    finally:
        vol.unmount()


@needs_ntfs3g
def test_another_fuse_file_system_gets_an_fsync_of_each_object(tmp_path, monkeypatch):
    """Only ntfs-3g is known to flush its whole device on any FSYNC: a FUSE
    mount that does not answer its attribute xattr gets the pass."""
    vol = Volume(tmp_path, size=32 << 20)
    vol.mount()
    try:
        real = os.getxattr

        def getxattr(path, name, *a, **kw):
            if name == "system.ntfs_attrib":
                raise OSError(errno.ENODATA, "No data available", path)
            return real(path, name, *a, **kw)
        monkeypatch.setattr(durable.os, "getxattr", getxattr)
        assert durable.way_for(str(vol.mnt)) is durable.SyncWay.EACH
    finally:
        vol.unmount()


# ---- backup-tree

def _objects(root) -> List[str]:
    out = []
    for dirpath, _dirs, files in os.walk(root):
        out += [os.path.join(dirpath, f) for f in files if f.endswith(".efsraw")]
    return sorted(out)


def test_backup_syncs_objects_then_manifest_then_its_folder(place, xattr_dir, tmp_path):
    src, out = xattr_dir / "src", place.root / "set"
    make_tree(src)
    t = _traced(["backup-tree", src, out, "--quiet"], tmp_path)
    assert t.rc == 0, t.stderr
    objects = _objects(out)
    assert len(objects) == 6
    pubs = t.publications()
    put = {c.target: c for c in pubs if c.target.endswith(".efsraw")}
    assert sorted(put) == objects                          # each object given its name once
    manifest = [c for c in pubs if c.target == str(out / MANIFEST)]
    assert len(manifest) == 1, [c.target for c in pubs]
    publish = manifest[0]
    assert all(c.end < publish.start for c in put.values())
    # the manifest: fsynced (under its temporary name) before it is published
    written = [c for c in t.named("fsync") if "manifest" in os.path.basename(c.fd_path)]
    assert written and written[0].end < publish.start, [c.fd_path for c in t.syncs()]
    # its folder fsynced after
    assert any(c.start > publish.end for c in t.fsyncs_of(out)), [c.fd_path for c in t.syncs()]
    syncfs = t.named("syncfs")
    if place.kind == "ntfs-3g":
        # ntfs-3g: an fsync of the set's folder (which flushes the daemon's
        # whole device) after the last object has its name, before the
        # manifest's own fsync; no fsync of each object
        assert not syncfs
        last = max(c.end for c in put.values())
        assert any(last < f.start and f.end < written[0].start for f in t.fsyncs_of(out)), \
            [c.fd_path for c in t.syncs()]
        assert not any(t.fsyncs_of(path) for path in put)
    else:
        # one syncfs of the set's file system after the last object, before
        # the manifest's own fsync
        assert len(syncfs) == 1 and syncfs[0].fd_path == str(out)
        assert max(c.end for c in put.values()) < syncfs[0].start
        assert syncfs[0].end < written[0].start
    assert cli.main(["verify-set", str(out)]) == 0


def test_resumed_backup_syncs_the_objects_it_kept(place, xattr_dir, tmp_path):
    """Objects a killed run left are part of the set the resumed run
    publishes: synced too, before the manifest is published."""
    src, out = xattr_dir / "src", place.root / "set"
    make_tree(src)
    assert cli.main(["backup-tree", str(src), str(out), "--quiet"]) == 0
    # as a run killed before its end line leaves it
    lines = (out / MANIFEST).read_bytes().splitlines(keepends=True)
    (out / PARTIAL).write_bytes(b"".join(lines[:-1]))
    (out / MANIFEST).unlink()
    t = _traced(["backup-tree", src, out, "--quiet", "--skip-existing"], tmp_path)
    assert t.rc == 0, t.stderr
    assert b"skipped (already there): 6" in t.stdout
    publish = next(c for c in t.publications() if c.target == str(out / MANIFEST))
    if place.kind == "ntfs-3g":     # the device flush (an fsync of the set folder)
        assert any(c.end < publish.start for c in t.fsyncs_of(out))
    else:
        syncfs = t.named("syncfs")
        assert len(syncfs) == 1 and syncfs[0].end < publish.start
    assert cli.main(["verify-set", str(out)]) == 0


def test_tar_stream_to_a_file_is_fsynced_after_its_last_byte(xattr_dir, tmp_path):
    src = xattr_dir / "src"
    make_tree(src)
    stream = tmp_path / "set.tar"
    with open(stream, "wb") as f:
        t = _traced(["backup-tree", src, "-", "--quiet"], tmp_path, stdout=f)
    assert t.rc == 0, t.stderr
    # (a member goes out in one writev of its header, data and padding)
    to_file = [c for c in t.named("write", "writev") if c.fd_path == str(stream)]
    synced = t.fsyncs_of(stream)
    assert to_file and len(synced) == 1 and synced[0].start > max(c.end for c in to_file)
    with open(stream, "rb") as f:
        assert subprocess.run([sys.executable, "-m", "efsfast", "verify-set", "-"],
                              stdin=f, capture_output=True).returncode == 0


def test_tar_stream_to_a_pipe_is_not_fsynced(xattr_dir, tmp_path):
    src = xattr_dir / "src"
    make_tree(src)
    t = _traced(["backup-tree", src, "-", "--quiet"], tmp_path)
    assert t.rc == 0 and len(t.stdout) > 0
    assert not [c for c in t.syncs() if c.args.startswith("1<")]


# ---- restore-tree and decrypt-tree

def _make_set(xattr_dir, how):
    """A set to restore: a folder set, a tar stream (a file to feed
    stdin), or a manifest-less folder of .efsraw files."""
    src, out = xattr_dir / "src", xattr_dir / "set"
    make_tree(src)
    assert cli.main(["backup-tree", str(src), str(out), "--quiet"]) == 0
    if how == "tar stream":
        stream = xattr_dir / "set.tar"
        with open(stream, "wb") as f:
            subprocess.run([sys.executable, "-m", "efsfast", "backup-tree", str(src), "-",
                            "--quiet"], stdout=f, check=True)
        return stream
    if how == "manifest-less folder":
        (out / MANIFEST).unlink()
    return out


def _restore(set_path, dest, tmp_path, *extra):
    if str(set_path).endswith(".tar"):
        with open(set_path, "rb") as f:
            return _traced(["restore-tree", "-", dest, *extra], tmp_path, stdin=f)
    return _traced(["restore-tree", set_path, dest, *extra], tmp_path)


@pytest.mark.parametrize("how", ["folder set", "tar stream", "manifest-less folder"])
def test_restore_syncs_before_its_summary(how, xattr_dir, tmp_path):
    set_path = _make_set(xattr_dir, how)
    dest = xattr_dir / "dest"
    t = _restore(set_path, dest, tmp_path)
    assert t.rc == 0, t.stderr
    summary = t.summary("restore-tree:")
    placed = [c for c in t.publications() if c.target.startswith(str(dest))]
    assert len(placed) >= 5
    syncfs = t.named("syncfs")
    assert len(syncfs) == 1 and syncfs[0].fd_path == str(dest)
    assert max(c.end for c in placed) < syncfs[0].start and syncfs[0].end < summary.start
    assert any(c.fd_path == str(xattr_dir) and c.end < summary.start for c in t.named("fsync"))


@pytest.mark.parametrize("how", ["folder set", "tar stream", "manifest-less folder"])
def test_restore_with_no_sync_syncs_nothing(how, xattr_dir, tmp_path):
    set_path = _make_set(xattr_dir, how)
    t = _restore(set_path, xattr_dir / "dest", tmp_path, "--no-sync")
    assert t.rc == 0, t.stderr
    assert t.syncs() == []


def test_restore_syncs_on_each_place(place, xattr_dir, tmp_path):
    set_path = _make_set(xattr_dir, "folder set")
    dest = place.root / "dest"
    t = _restore(set_path, dest, tmp_path)
    assert t.rc == 0, t.stderr
    summary = t.summary("restore-tree:")
    placed = {c.target: c for c in t.publications() if c.target.startswith(str(dest))}
    assert len(placed) == 6
    if place.kind == "ntfs-3g":
        # one fsync of DEST (the daemon flushes its whole device) after the
        # last object has its name, before the summary; none of each object
        assert not t.named("syncfs")
        last = max(c.end for c in placed.values())
        assert any(last < f.start and f.end < summary.start for f in t.fsyncs_of(dest)), \
            [c.fd_path for c in t.syncs()]
        assert not any(t.fsyncs_of(path) for path in placed)
    else:
        syncfs = t.named("syncfs")
        assert len(syncfs) == 1 and syncfs[0].end < summary.start
        assert max(c.end for c in placed.values()) < syncfs[0].start


def test_decrypt_tree_syncs_before_its_summary(tmp_path, xattr_dir):
    pytest.importorskip("cryptography", reason="decryption needs the 'cryptography' package")
    from efsfast.crypto import encrypt
    from _keys import certificate, pem, rsa_key
    key = rsa_key(2048, "alice")
    (tmp_path / "alice.pem").write_bytes(pem(key))
    cert = certificate(key, "alice")
    src = tmp_path / "set"
    (src / "docs").mkdir(parents=True)
    (src / "docs" / "a.txt.efsraw").write_bytes(encrypt(b"A" * 5000, [cert]))
    (src / "b.bin.efsraw").write_bytes(encrypt({"": b"B" * 700, "alt": b"m"}, [cert]))
    dest = xattr_dir / "plain"
    t = _traced(["decrypt-tree", "--key", tmp_path / "alice.pem", "--quiet", src, dest],
                tmp_path)
    assert t.rc == 0, t.stderr
    summary = t.summary("decrypt-tree:")
    syncfs = t.named("syncfs")
    assert len(syncfs) == 1 and syncfs[0].fd_path == str(dest) and syncfs[0].end < summary.start
    assert (dest / "docs" / "a.txt").read_bytes() == b"A" * 5000
    t = _traced(["decrypt-tree", "--key", tmp_path / "alice.pem", "--quiet", "--no-sync", src,
                 xattr_dir / "plain2"], tmp_path)
    assert t.rc == 0 and t.syncs() == [], t.stderr


def test_folder_set_synced_file_by_file_covers_every_object(xattr_dir, monkeypatch):
    """Where the set is synced file by file (EACH), every backup file the C
    workers wrote is synced, those recorded in runs of lines (bulk.py) as
    well, each before the manifest gets its name."""
    src, out = xattr_dir / "src", xattr_dir / "set"
    make_tree(src)
    synced: List[str] = []
    monkeypatch.setattr(durable, "way_for", lambda path: durable.SyncWay.EACH)
    monkeypatch.setattr(durable, "fsync_path", lambda p: synced.append(os.fspath(p)))
    assert cli.main(["backup-tree", str(src), str(out), "--quiet"]) == 0
    stored = sorted(os.path.join(d, n) for d, _, names in os.walk(out) for n in names
                    if n.endswith(".efsraw"))
    assert len(stored) >= 5 and set(stored) <= set(synced), (stored, synced)
    assert str(out) in synced


def test_decrypt_tree_on_fuse_fsyncs_named_stream_files_too(tmp_path, monkeypatch):
    """The fsync pass (FUSE) covers what decrypt wrote besides DEST: the
    DEST:name file of each named stream."""
    pytest.importorskip("cryptography", reason="decryption needs the 'cryptography' package")
    from efsfast.crypto import encrypt
    from efsfast.crypto.tree import decrypt_tree
    from _keys import certificate, pem, rsa_key
    key = rsa_key(2048, "alice")
    (tmp_path / "alice.pem").write_bytes(pem(key))
    src = tmp_path / "set"
    src.mkdir()
    (src / "b.bin.efsraw").write_bytes(encrypt({"": b"B" * 700, "alt": b"m"},
                                               [certificate(key, "alice")]))
    synced: List[str] = []
    monkeypatch.setattr(durable, "way_for", lambda path: durable.SyncWay.EACH)
    monkeypatch.setattr(durable, "fsync_path", lambda p: synced.append(os.fspath(p)))
    r = decrypt_tree(src, tmp_path / "plain", tmp_path / "alice.pem")
    assert r.bulk.files == 1 and not r.failures
    assert str(tmp_path / "plain" / "b.bin") in synced
    assert str(tmp_path / "plain" / "b.bin:alt") in synced
    assert str(tmp_path / "plain") in synced


# ---- a sync that fails

def test_a_file_that_cannot_be_synced_is_a_failed_item(xattr_dir, monkeypatch, capsys):
    """An fsync that fails (EIO: the data never reached the disk) turns the
    object into a failed item, and the restore exits 1.  (EIO cannot be
    had on demand from a real file system here: the fsync is made to fail.)"""
    set_path = _make_set(xattr_dir, "folder set")
    capsys.readouterr()
    dest = xattr_dir / "dest"
    victim = dest / "Docs" / "f1.bin"
    real = durable.fsync_path

    def fsync_path(path):
        if os.fspath(path) == str(victim):
            raise OSError(errno.EIO, "Input/output error")
        real(path)
    monkeypatch.setattr(durable, "way_for", lambda path: durable.SyncWay.EACH)
    monkeypatch.setattr(durable, "fsync_path", fsync_path)
    rc = cli.main(["restore-tree", str(set_path), str(dest), "--quiet", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert rc == 1 and res["counts"]["failed"] == 1 and res["counts"]["done"] == 5
    f = res["failures"][0]
    assert f["path"] == str(victim) and "could not be synced to stable storage" in f["error"]


def test_a_file_system_that_cannot_be_synced_fails_the_restore(xattr_dir, monkeypatch,
                                                               capsys):
    set_path = _make_set(xattr_dir, "folder set")
    capsys.readouterr()
    dest = xattr_dir / "dest"

    def syncfs(folder):
        raise OSError(errno.EIO, "Input/output error", folder)
    monkeypatch.setattr(durable, "syncfs", syncfs)
    rc = cli.main(["restore-tree", str(set_path), str(dest), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 1 and "could not be synced to stable storage" in out and str(dest) in out


@pytest.mark.parametrize("errno_", [errno.EIO, errno.ENOSPC])
def test_a_device_that_cannot_be_flushed_fails_the_restore(xattr_dir, monkeypatch, capsys,
                                                           errno_):
    """The DEVICE way (ntfs-3g): a flush that fails names DEST, exit 1."""
    set_path = _make_set(xattr_dir, "folder set")
    capsys.readouterr()
    dest = xattr_dir / "dest"

    def fsync_device(folder):
        raise OSError(errno_, os.strerror(errno_), folder)
    monkeypatch.setattr(durable, "way_for", lambda path: durable.SyncWay.DEVICE)
    monkeypatch.setattr(durable, "fsync_device", fsync_device)
    rc = cli.main(["restore-tree", str(set_path), str(dest), "--quiet", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert rc == 1 and res["counts"]["failed"] == 1, res
    f = res["failures"][0]
    assert f["path"] == str(dest) and "could not be synced to stable storage" in f["error"]


def test_the_device_way_with_nothing_written_and_no_folder_syncs_nothing(tmp_path):
    """As the per-object pass: a job that made nothing, not even its folder,
    has nothing to sync; a job that wrote objects into a folder now gone
    has them not on stable storage, named."""
    gone = str(tmp_path / "not-made")
    assert durable.sync_written(gone, [], durable.SyncWay.DEVICE) == []
    assert durable.sync_written(gone, [], durable.SyncWay.EACH) == []
    failed = durable.sync_written(gone, [os.path.join(gone, "f")], durable.SyncWay.DEVICE)
    assert failed and failed[0][0] == gone and isinstance(failed[0][1], FileNotFoundError)


@pytest.mark.parametrize("command", ["restore-tree", "backup-tree"])
def test_the_device_way_needs_fewer_workers_than_fuse_background_requests(
        command, xattr_dir, monkeypatch, capsys):
    """With as many workers as the mount's background requests, a RELEASE
    may wait where the one flush can pass it: each object is synced then;
    with fewer, the one flush."""
    set_path = _make_set(xattr_dir, "folder set")
    capsys.readouterr()
    calls = []
    real_each = durable.fsync_each

    def fsync_device(folder):
        calls.append("device")
        durable.fsync_path(folder)

    def fsync_each(*a, **kw):
        calls.append("each")
        return real_each(*a, **kw)
    monkeypatch.setattr(durable, "way_for", lambda path: durable.SyncWay.DEVICE)
    monkeypatch.setattr(durable, "fsync_device", fsync_device)
    monkeypatch.setattr(durable, "fsync_each", fsync_each)
    got = []
    for n, workers in enumerate((2, durable.FUSE_MAX_BACKGROUND - 1, durable.FUSE_MAX_BACKGROUND)):
        dest = xattr_dir / f"out{n}"
        src = set_path if command == "restore-tree" else xattr_dir / "src"
        calls.clear()
        assert cli.main([command, str(src), str(dest), "--workers", str(workers),
                         "--quiet"]) == 0
        got.append(sorted(set(calls)))
    assert got == [["device"], ["device"], ["each"]], got


def test_the_device_way_counts_the_default_workers_when_none_are_asked_for(
        xattr_dir, monkeypatch, capsys):
    """Without --workers a restore runs the destination's default count:
    where that reaches the mount's background requests, each object is
    synced, as with the same count asked for."""
    from efsfast import volume
    set_path = _make_set(xattr_dir, "folder set")
    capsys.readouterr()
    calls = []
    real_each = durable.fsync_each

    def fsync_each(*a, **kw):
        calls.append("each")
        return real_each(*a, **kw)
    monkeypatch.setattr(durable, "way_for", lambda path: durable.SyncWay.DEVICE)
    monkeypatch.setattr(durable, "fsync_device", lambda folder: calls.append("device"))
    monkeypatch.setattr(durable, "fsync_each", fsync_each)
    got = []
    for n, default in enumerate((2, durable.FUSE_MAX_BACKGROUND)):
        monkeypatch.setattr(volume, "default_workers", lambda path, d=default: d)
        calls.clear()
        assert cli.main(["restore-tree", str(set_path), str(xattr_dir / f"out{n}"),
                         "--quiet"]) == 0
        got.append(sorted(set(calls)))
    assert got == [["device"], ["each"]], got


def test_a_device_fsync_refused_for_a_folder_falls_back_to_each_object(xattr_dir, monkeypatch,
                                                                        capsys):
    """A FUSE file system in front of ntfs-3g that refuses a folder's fsync
    (ENOSYS): every object is fsynced instead, nothing fails."""
    set_path = _make_set(xattr_dir, "folder set")
    capsys.readouterr()
    dest = xattr_dir / "dest"
    synced = []
    real = durable.fsync_path

    def fsync_device(folder):
        raise OSError(errno.ENOSYS, "Function not implemented", folder)

    def fsync_path(path):
        synced.append(os.fspath(path))
        real(path)
    monkeypatch.setattr(durable, "way_for", lambda path: durable.SyncWay.DEVICE)
    monkeypatch.setattr(durable, "fsync_device", fsync_device)
    monkeypatch.setattr(durable, "fsync_path", fsync_path)
    assert cli.main(["restore-tree", str(set_path), str(dest), "--quiet"]) == 0
    files = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs]
    assert files and set(files) <= set(synced), (files, synced)


def test_a_backup_whose_objects_cannot_be_synced_publishes_no_manifest(xattr_dir,
                                                                       monkeypatch):
    src, out = xattr_dir / "src", xattr_dir / "set"
    make_tree(src)

    def syncfs(folder):
        raise OSError(errno.EIO, "Input/output error", folder)
    monkeypatch.setattr(durable, "syncfs", syncfs)
    rc = cli.main(["backup-tree", str(src), str(out), "--quiet"])
    assert rc == 1 and not (out / MANIFEST).exists()


# ---- ntfs-3g: what reaches the daemon

def _daemon_trace(volume, fn):
    """Run ``fn`` while strace watches the ntfs-3g daemon: the FUSE requests
    it reads (opcode = bytes 4-7) and its own fsync calls, in order."""
    from efsfast.bench.ntfs3g import FUSE_OPCODES, daemon_pid
    _need_strace()
    pid = daemon_pid(str(volume.image))
    assert pid is not None, "the ntfs-3g daemon was not found"
    log = volume.image.with_suffix(".daemon.log")
    tracer = subprocess.Popen(["strace", "-f", "-p", str(pid), "-e", "trace=read,fsync,fdatasync",
                               "-xx", "-s", "8", "-o", str(log)], stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)             # attached to every daemon thread
        fn()
        time.sleep(0.3)             # the last requests are read
    finally:
        tracer.terminate()
        tracer.wait()
    events = []
    for line in log.read_text().splitlines():
        m = re.search(r'read\(\d+, "((?:\\x[0-9a-f]{2}){8})', line)
        if m:
            b = bytes(int(x, 16) for x in m.group(1).split("\\x")[1:])
            op = int.from_bytes(b[4:8], "little")
            events.append(FUSE_OPCODES.get(op, {30: "FSYNCDIR"}.get(op, str(op))))
        elif re.search(r"\b(fsync|fdatasync)\(\d+\)\s+= 0", line):
            events.append("device fsync")
    return events


@needs_ntfs3g
def test_on_ntfs3g_syncfs_sends_the_daemon_nothing_and_fsync_does(tmp_path):
    """Why FUSE gets an fsync per file: syncfs() (and sync()) never reach
    the ntfs-3g daemon, while FSYNC and FSYNCDIR make it fsync its whole
    device."""
    vol = Volume(tmp_path, size=32 << 20)
    vol.mount()
    try:
        f = vol.mnt / "f"
        f.write_bytes(b"x" * 10000)

        def with_syncfs():
            durable.syncfs(str(vol.mnt))
            os.sync()
        events = _daemon_trace(vol, with_syncfs)
        assert "device fsync" not in events and not {"FSYNC", "FSYNCDIR"} & set(events), events
        events = _daemon_trace(vol, lambda: durable.fsync_path(str(f)))
        assert "FSYNC" in events
        assert events.index("device fsync") > events.index("FSYNC"), events
        (vol.mnt / "g").write_bytes(b"y")
        events = _daemon_trace(vol, lambda: durable.fsync_path(str(vol.mnt)))
        assert "FSYNCDIR" in events and "device fsync" in events, events
    finally:
        vol.unmount()


@needs_ntfs3g
@pytest.mark.parametrize("command", ["backup-tree", "restore-tree"])
def test_on_ntfs3g_the_daemon_fsyncs_its_device_after_the_last_change(command, tmp_path,
                                                                      xattr_dir):
    """At the daemon: after the last request that changed the volume, an
    fsync of its device, brought by one FSYNCDIR (the DEVICE way), not by
    an OPEN, FSYNC and RELEASE per object."""
    src = xattr_dir / "src"
    make_tree(src)
    vol = Volume(tmp_path, size=64 << 20)
    vol.mount()
    try:
        if command == "backup-tree":
            argv = ["backup-tree", str(src), str(vol.mnt / "set"), "--quiet"]
        else:
            assert cli.main(["backup-tree", str(src), str(xattr_dir / "set"), "--quiet"]) == 0
            argv = ["restore-tree", str(xattr_dir / "set"), str(vol.mnt / "dest"), "--quiet"]
        events = _daemon_trace(vol, lambda: subprocess.run(
            [sys.executable, "-m", "efsfast", *argv], check=True, capture_output=True))
        changes = {"WRITE", "CREATE", "MKNOD", "MKDIR", "LINK", "RENAME", "RENAME2", "UNLINK",
                   "SETXATTR", "SETATTR", "REMOVEXATTR", "RMDIR"}
        last_change = max(i for i, e in enumerate(events) if e in changes)
        tail = events[last_change:]
        assert "device fsync" in tail, tail
        assert "FSYNCDIR" in tail[:tail.index("device fsync")], tail
        # six objects written: no fsync of each (the backup's own: its
        # manifest's, its folder's when the manifest is made and published)
        assert events.count("FSYNC") + events.count("FSYNCDIR") <= 5, events
        if command == "restore-tree":
            assert "OPEN" not in events, events     # (its files are made by CREATE)
    finally:
        vol.unmount()


def test_a_truncated_stream_syncs_what_it_restored_before_its_account(xattr_dir, tmp_path):
    stream = _make_set(xattr_dir, "tar stream")
    cut = tmp_path / "cut.tar"
    cut.write_bytes(stream.read_bytes()[:len(stream.read_bytes()) * 2 // 3])
    dest = xattr_dir / "dest"
    t = _restore(cut, dest, tmp_path)
    assert t.rc == 1, t.stderr
    summary = t.summary("restore-tree:")
    syncfs = t.named("syncfs")
    assert len(syncfs) == 1 and syncfs[0].fd_path == str(dest) and syncfs[0].end < summary.start


def test_a_resumed_restore_removes_the_temporaries_a_killed_one_left(xattr_dir, capsys):
    """kill -9 between an encrypted folder's temporary name and its own (or
    during a file's, where there is no O_TMPFILE) leaves the temporary:
    restore-tree --skip-existing removes it."""
    set_path = _make_set(xattr_dir, "folder set")
    dest = xattr_dir / "dest"
    assert cli.main(["restore-tree", str(set_path), str(dest), "--quiet"]) == 0
    (dest / ".efsfast-0123456789abcdef.tmp").mkdir()
    (dest / "Docs" / ".efsfast-fedcba9876543210.tmp").write_bytes(b"half")
    (dest / ".efsfast-not-ours.tmp").write_bytes(b"a user's")
    assert cli.main(["restore-tree", str(set_path), str(dest), "--quiet", "--skip-existing"]) == 0
    assert not (dest / ".efsfast-0123456789abcdef.tmp").exists()
    assert not (dest / "Docs" / ".efsfast-fedcba9876543210.tmp").exists()
    assert (dest / ".efsfast-not-ours.tmp").read_bytes() == b"a user's"


def test_the_measured_per_object_ways_still_work(xattr_dir, tmp_path):
    """The two ways durable.py was measured against (benchmarks/durability.py):
    an fsync per object in the C export workers, and one per restored file in
    C before it is published.  Each object gets its fsync; the results are
    the same sets and trees."""
    src = xattr_dir / "src"
    make_tree(src)
    script = (
        "import sys\n"
        "from efsfast import _core, durable\n"
        "from efsfast.backupset import FolderSink, backup_set\n"
        "from efsfast.backupset.restore import restore_set\n"
        "src, out, dest = sys.argv[1:]\n"
        "sink = FolderSink(out, sync=durable.SyncWay.NONE)\n"
        "sink.sync_in_workers = True\n"
        "backup_set(src, sink).bulk.raise_for_errors()\n"
        "restore_set(out, dest, backend=_core.PosixBackend(_sync_each=True))"
        ".bulk.raise_for_errors()\n")
    out, dest = xattr_dir / "set", xattr_dir / "dest"
    _need_strace()
    log = tmp_path / "strace.log"
    r = subprocess.run(["strace", "-f", "-y", "-qq", "-e", "trace=fsync", "-o", str(log),
                        sys.executable, "-c", script, str(src), str(out), str(dest)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    synced = [c.fd_path for c in _parse(log.read_text())]
    backups = [p for p in synced if p.startswith(str(out)) and ".efsfast-" in p]
    restored = [p for p in synced if p.startswith(str(dest))]
    # six backup files; five restored files (the encrypted folder is made,
    # not written through a descriptor)
    assert len(backups) == 6 and len(restored) == 5, synced
    assert cli.main(["verify-set", str(out)]) == 0
    assert sorted(os.listdir(dest)) == ["Docs", "plain"]


def test_fsync_pass_on_threads_names_the_same_failures_in_order(tmp_path, monkeypatch):
    """The fsync pass on several threads (durable.PASS_THREADS, measured by
    benchmarks/durability.py) reports exactly what the one-thread pass does:
    every object that could not be synced, in the order given."""
    from efsfast import durable
    paths = []
    for i in range(200):
        p = tmp_path / f"f{i:03d}"
        if i % 7:
            p.write_bytes(b"x")
        paths.append(str(p))
    one = durable.fsync_each(paths, str(tmp_path))
    monkeypatch.setattr(durable, "PASS_THREADS", 4)
    many = durable.fsync_each(paths, str(tmp_path))
    assert [p for p, _ in many] == [p for p, _ in one] == paths[::7]
    assert all(isinstance(e, FileNotFoundError) for _, e in many)
