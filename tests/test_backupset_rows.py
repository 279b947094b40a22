"""restore_set from the manifest's C rows (_core.ObjectTable, SetFiles): the
objects' jobs, checks and metadata made without an Entry per object give
what the Entry path gives (results, jobs, failures, the restored tree), for
a whole set, a damaged one, a blocked encrypted folder, a resumed restore
and a set with failed objects; where the rows cannot stand for the paths
(a part that leaves DEST, a name that is not UTF-8, a line json read that
has a stream) the Entry path runs and says what it always said."""
import os
import shutil
import stat
import sys

import pytest

import efsfast
from efsfast.backupset import FolderSink, MANIFEST_NAME, backup_set, read_manifest, restore_set
from efsfast.backupset import restore as restore_mod
from efsfast.backupset.manifest import Entry, Header, Kind, ManifestWriter, SUFFIX

FOLDERS = ("Docs", "Docs/inner")
FILES = {"top.bin": 10, "Docs/a.bin": 0, "Docs/inner/b c.bin": 5000, "plain/ü €.bin": 70_000,
         "plain/q\"uote\\back.bin": 33, "plain/deep/er/x.bin": 4096}
MODES = (0o600, 0o644, 0o400, 0o750)


def make_tree(root):
    (root / "plain" / "deep" / "er").mkdir(parents=True)
    for n, d in enumerate(FOLDERS):
        efsfast.restore(root / d, efsfast.synthetic_raw(0, directory=True, seed=n + 1),
                        directory=True)
    for n, (rel, size) in enumerate(FILES.items()):
        efsfast.restore(root / rel, efsfast.synthetic_raw(size, seed=20 + n))
        os.chmod(root / rel, MODES[n % len(MODES)])
        os.utime(root / rel, ns=(1_600_000_000_000_000_000 + n, 1_500_000_000_123_456_789 - n))
    os.utime(root / "plain" / "deep", ns=(7, 9))


@pytest.fixture
def made(xattr_dir):
    src = xattr_dir / "src"
    make_tree(src)
    out = xattr_dir / "set"
    assert backup_set(src, FolderSink(str(out))).bulk.ok
    return src, out


def spy(monkeypatch):
    """Which path each restore_set took: True from the rows."""
    taken = []
    real = restore_mod.set_files

    def watched(*args):
        got = real(*args)
        taken.append(got is not None)
        return got
    monkeypatch.setattr(restore_mod, "set_files", watched)
    return taken


def state(r, dest):
    """What a restore reports and leaves, for comparing two restores into
    the same DEST."""
    tree = {}
    for dirpath, dirs, files in os.walk(dest):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            raw = efsfast.backup(p, directory=stat.S_ISDIR(st.st_mode)) \
                if stat.S_ISREG(st.st_mode) or name in ("Docs", "inner") else None
            times = (st.st_atime_ns, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None
            tree[os.path.relpath(p, dest)] = (stat.S_IMODE(st.st_mode), times, raw)
    failures = [(f.index, f.dest, type(f.error), str(f.error)) for f in r.failures]
    return (r.bulk.results, r.jobs, failures, r.bulk.files, r.bulk.bytes, r.verified,
            r.directories, r.existing, r.unchanged, r.complete, r.not_done, tree)


def both(monkeypatch, set_dir, dest, prepare=None, **kw):
    """state() of restore_set from the rows, then from Entry objects (the
    rows refused), each into a fresh ``dest`` (``prepare(dest)`` first)."""
    taken = spy(monkeypatch)
    out = []
    for rows in (True, False):
        if not rows:
            monkeypatch.setattr(restore_mod, "set_files", lambda *a: taken.append(False))
        shutil.rmtree(dest, ignore_errors=True)
        if prepare is not None:
            prepare(dest)
        out.append(state(restore_set(set_dir, dest, **kw), dest))
    assert taken == [True, False]
    return out


def test_a_whole_set(made, monkeypatch):
    src, set_dir = made
    rows, entries = both(monkeypatch, set_dir, set_dir.parent / "dest")
    assert rows == entries
    assert rows[3] == rows[5] == len(FILES) + len(FOLDERS) and rows[2] == []
    # the restored objects are the source's, with its modes and times
    for rel in FILES:
        st, got = os.lstat(src / rel), rows[-1][rel]     # (reading it moved its atime)
        assert (got[0], got[1][1]) == (stat.S_IMODE(st.st_mode), st.st_mtime_ns), rel
        assert got[2] == efsfast.backup(src / rel)
    # results as restore_many gives them, in job order (folders first)
    assert [j[0] for j in rows[1]][:2] == [str(set_dir.parent / "dest" / d) for d in FOLDERS]
    assert [r.path for r in rows[0]] == [j[0] for j in rows[1]]


def test_damaged_and_missing_objects(made, monkeypatch):
    _, set_dir = made
    p = set_dir / ("Docs/inner/b c.bin" + SUFFIX)
    b = bytearray(p.read_bytes())
    b[-100] ^= 0x5A
    p.write_bytes(bytes(b))
    os.unlink(set_dir / ("plain/ü €.bin" + SUFFIX))
    rows, entries = both(monkeypatch, set_dir, set_dir.parent / "dest")
    assert rows == entries
    named = sorted(f[1] for f in rows[2])
    dest = set_dir.parent / "dest"
    assert named == sorted([str(dest / "Docs/inner/b c.bin"), str(dest / "plain/ü €.bin")])
    assert "Docs/inner/b c.bin" not in rows[-1] and "plain/ü €.bin" not in rows[-1]


def test_a_failed_encrypted_folder_blocks_what_it_holds(made, monkeypatch):
    _, set_dir = made
    shutil.copyfile(set_dir / ("Docs" + SUFFIX), set_dir / ("Docs/inner" + SUFFIX))
    rows, entries = both(monkeypatch, set_dir, set_dir.parent / "dest")
    assert rows == entries
    errors = {os.path.relpath(f[1], set_dir.parent / "dest"): f[3] for f in rows[2]}
    assert set(errors) == {"Docs/inner", "Docs/inner/b c.bin"}
    assert "parent folder failed" in errors["Docs/inner/b c.bin"]


def test_a_resumed_restore(made, monkeypatch):
    """skip_existing: what is there is left alone, the rest restored."""
    _, set_dir = made

    def half(dest):
        dest.mkdir()
        efsfast.restore(dest / "top.bin", efsfast.synthetic_raw(10, seed=20))
    rows, entries = both(monkeypatch, set_dir, set_dir.parent / "dest", prepare=half,
                         skip_existing=True)
    assert rows == entries and rows[7] == [str(set_dir.parent / "dest" / "top.bin")]


def test_objects_whose_backup_failed(made, monkeypatch):
    """Lines json reads (an object that failed, besides the plain folders)
    keep the rows' path: the failed object is a failed item, the rest is
    restored."""
    _, set_dir = made
    m = read_manifest(set_dir / MANIFEST_NAME)
    with open(set_dir / MANIFEST_NAME, "wb") as f:
        w = ManifestWriter(f, m.header)
        for k, e in enumerate(m.entries):
            w.add(e)
            if k == 2:
                w.add(Entry("plain/gone.bin", Kind.FILE, failed="permission denied"))
        w.finish()
    m = read_manifest(set_dir / MANIFEST_NAME)
    assert m.table is not None and any(e.failed for e in m.table.foreign)
    rows, entries = both(monkeypatch, set_dir, set_dir.parent / "dest")
    assert rows == entries
    assert [(f[1], f[3]) for f in rows[2]] == [(
        str(set_dir.parent / "dest" / "plain/gone.bin"),
        "[Errno 2] not in the set: its backup failed (permission denied)")]


def _manifest(tmp_path, paths):
    """A set folder whose manifest lists files at ``paths`` (in the
    writer's spelling: the C reader's rows)."""
    set_dir = tmp_path / "set"
    set_dir.mkdir(parents=True)
    with open(set_dir / MANIFEST_NAME, "wb") as f:
        w = ManifestWriter(f, Header.new("/src", "posix"))
        for p in paths:
            w.add(Entry(p, Kind.FILE, 1, "ab" * 32, 1, "cd" * 32, {}))
        w.finish()
    return set_dir


@pytest.mark.skipif(sys.platform == "win32", reason="a set's rows make POSIX paths only: on "
                    "Windows every set restore takes the Entry path")
@pytest.mark.parametrize("bad", ["../x", "a/../../x", "./a", "a/.", "a//b", "/a", "a/", "",
                                 ".", "..", "a\x00b"])
def test_paths_the_rows_do_not_take(tmp_path, bad):
    """A path with a part that is empty, "." or "..", or a NUL: no rows'
    jobs (the Entry path names it); ordinary ones, odd characters and all,
    are taken."""
    good = ["a", "a.b/..c", "...", "a b/\\c:d", "ü/€", "x\ny"]
    m = read_manifest(_manifest(tmp_path, good + [bad]) / MANIFEST_NAME)
    assert m.table is not None and not m.table.foreign
    assert m.table.set_files("/d/", "/s/", SUFFIX) is None
    ok = read_manifest(_manifest(tmp_path / "ok", good) / MANIFEST_NAME)
    files = ok.table.set_files("/d/", "/s/", SUFFIX)
    assert files.pairs == [("/d/" + p, "/s/" + p + SUFFIX) for p in good]
    assert files.jobs() == [("/d/" + p, "/s/" + p + SUFFIX, {"expect": (1, "ab" * 32)})
                            for p in good]


@pytest.mark.parametrize("bad", ["../x", "a//b", "a/./b"])
def test_a_path_that_leaves_dest_is_named_as_before(tmp_path, bad):
    set_dir = _manifest(tmp_path, ["a", bad])
    with pytest.raises(efsfast.EfsError, match=f"leaves the destination: {bad!r}"):
        restore_set(set_dir, tmp_path / "dest")
    assert not os.path.exists(tmp_path / "dest")


def test_a_path_with_a_nul_is_a_failed_item(tmp_path):
    """(as before: no file system path holds it, so no backup file either)"""
    set_dir = _manifest(tmp_path, ["a\x00b"])
    r = restore_set(set_dir, tmp_path / "dest")
    assert [f.dest for f in r.failures] == [str(tmp_path / "dest" / "a\x00b")]
    assert os.listdir(tmp_path / "dest") == []


def test_the_rows_jobs_are_the_entry_paths(made):
    """SetFiles' pairs, file jobs and folder jobs: checked_jobs' own."""
    _, set_dir = made
    m = read_manifest(set_dir / MANIFEST_NAME)
    files = restore_mod.set_files(m, str(set_dir), "/out")
    assert files is not None and m.table is not None     # (no Entry made yet)
    dirs, jobs, unusable = restore_mod.checked_jobs(m.entries, {m.header.set_id: str(set_dir)},
                                                    m.header.set_id, "/out")
    assert m.table is None                  # (the Entry list is what holds now)
    assert unusable == [] and files.jobs() == jobs and files.pairs == [j[:2] for j in jobs]
    assert sorted(files.dirs, key=lambda j: j[0].count("/")) == dirs


def test_a_destination_whose_name_is_not_utf8(made, monkeypatch):
    """Its name is kept in str as os.fsdecode gives it (surrogates): the
    rows cannot spell it, so the Entry path restores, as before."""
    src, set_dir = made
    dest = set_dir.parent / os.fsdecode(b"d\xff")
    taken = spy(monkeypatch)
    r = restore_set(set_dir, dest)
    assert taken == [False] and r.bulk.ok and r.verified == len(FILES) + len(FOLDERS)
    assert efsfast.backup(dest / "top.bin") == efsfast.backup(src / "top.bin")


def test_a_file_line_json_reads_takes_the_entry_path(made, monkeypatch):
    """A file's line in another spelling (json's, not the rows'): the Entry
    path restores the whole set."""
    _, set_dir = made
    lines = (set_dir / MANIFEST_NAME).read_bytes().splitlines(keepends=True)
    m = read_manifest(set_dir / MANIFEST_NAME)
    with open(set_dir / MANIFEST_NAME, "wb") as f:
        w = ManifestWriter(f, m.header)
        for e in m.entries:
            if e.path == "top.bin":
                line = (f'{{"type": "object", "path": "top.bin", "kind": "file", '
                        f'"raw_size": {e.raw_size}, "sha256": "{e.sha256}"}}\n').encode()
                w.add_lines(line, 1)
            else:
                w.add(e)
        w.finish()
    assert len(lines) == len((set_dir / MANIFEST_NAME).read_bytes().splitlines())
    taken = spy(monkeypatch)
    r = restore_set(set_dir, set_dir.parent / "dest")
    assert taken == [False] and r.bulk.ok and r.verified == len(FILES) + len(FOLDERS)


def test_the_entries_are_made_when_asked_for(made):
    _, set_dir = made
    m = read_manifest(set_dir / MANIFEST_NAME)
    table = m.table
    assert table is not None and len(table) == len(FILES) + len(FOLDERS) + 3  # (plain folders)
    entries = m.entries
    assert m.table is None and m.entries is entries
    again = read_manifest(set_dir / MANIFEST_NAME)
    assert again == m and again.entries == entries and repr(again) == repr(m)
    assert [e.path for e in table.entries(Entry, Kind.FILE, Kind.DIRECTORY, files=False)] == [
        e.path for e in entries if e.kind is not Kind.FILE]


@pytest.mark.skipif(sys.platform == "win32", reason="a set's rows make POSIX paths only: on "
                    "Windows every set restore takes the Entry path")
def test_a_file_whose_target_holds_another_is_restored_as_a_folder(tmp_path, monkeypatch):
    """A file's line whose path holds another object's (a damaged set): the
    rows' jobs give way to restore_many's, the file restored as a folder
    that blocks what it holds, as on the Entry path."""
    set_dir = _manifest(tmp_path, ["a", "a/b"])
    taken = spy(monkeypatch)
    rows = restore_set(set_dir, tmp_path / "dest")
    monkeypatch.setattr(restore_mod, "set_files", lambda *a: taken.append(False))
    entries = restore_set(set_dir, tmp_path / "dest")
    assert taken == [True, False]
    assert [(f.dest, str(f.error)) for f in rows.failures] == \
        [(f.dest, str(f.error)) for f in entries.failures]
    assert "parent folder failed" in str(rows.failures[1].error) and rows.jobs == entries.jobs
