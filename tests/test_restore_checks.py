"""restore-tree of a folder set checks every object against its manifest
line (size and SHA-256) as the bytes pass, and decides before anything is
published: a damaged object is a failed item naming it and both hashes, and
nothing of it is left at DEST, while the rest is restored.  On tmpfs
(O_TMPFILE) and on a real ntfs-3g volume (named temporaries), for the set's
own objects and for those of the sets an incremental set refers to."""
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys

import pytest

import efsfast
from efsfast import ObjectMismatchError
from efsfast.backupset import MANIFEST_NAME, FolderSink, backup_set, read_manifest, restore_set

from ntfs_volume import Volume, why_not

SIZES = {"Docs/a.bin": 0, "Docs/b.bin": 5000, "Docs/big.bin": 300_000, "plain/c.bin": 70_000,
         "plain/d.bin": 4096}
FOLDERS = ("Docs", "Other")


def make_tree(root):
    """Two encrypted folders, files in one of them and in a plain folder
    (one with a named stream)."""
    (root / "plain").mkdir(parents=True)
    for n, d in enumerate(FOLDERS):
        efsfast.restore(root / d, efsfast.synthetic_raw(0, directory=True, seed=n + 1),
                        directory=True)
    for n, (rel, size) in enumerate(SIZES.items()):
        streams = {"alt": 300} if rel == "plain/c.bin" else None
        efsfast.restore(root / rel, efsfast.synthetic_raw(size, named_streams=streams,
                                                          seed=20 + n))


@pytest.fixture(params=["tmpfs", "ntfs-3g"])
def place(request, xattr_dir, tmp_path):
    """Where the set and DEST live: tmpfs, or a fresh ntfs-3g efs_raw volume
    (the source tree is on tmpfs either way)."""
    if request.param == "tmpfs":
        yield xattr_dir
        return
    reason = why_not()
    if reason:
        pytest.skip(reason)
    v = Volume(tmp_path)
    v.mount()
    try:
        yield v.mnt
    finally:
        v.unmount()


@pytest.fixture
def made(xattr_dir, place):
    """(source tree, folder set of it) with the set on ``place``."""
    src = xattr_dir / "src"
    make_tree(src)
    out = place / "set"
    r = backup_set(src, FolderSink(str(out)), workers=2)
    assert r.bulk.ok
    return src, out


def efs(*args, **kw):
    # (wide: the failure table wraps its text to the terminal)
    kw.setdefault("stdout", subprocess.PIPE)
    return subprocess.run([sys.executable, "-m", "efsfast", *args], stderr=subprocess.PIPE,
                          text=True, env=dict(os.environ, COLUMNS="1000"), **kw)


def flip(path, at):
    b = bytearray(path.read_bytes())
    b[at if at >= 0 else len(b) + at] ^= 0x5A
    path.write_bytes(bytes(b))


DAMAGE = {
    # a byte of ciphertext: the stream stays valid, only the hash can tell
    "flipped byte": lambda s: flip(s / "Docs/big.bin.efsraw", -100),
    # a byte of the header: the restore stops at a format error; the rest of
    # the object is still hashed, so the report gives both hashes
    "flipped header byte": lambda s: flip(s / "Docs/big.bin.efsraw", 8),
    "truncated": lambda s: os.truncate(s / "Docs/big.bin.efsraw",
                                       os.path.getsize(s / "Docs/big.bin.efsraw") // 2),
    "one object copied over another": lambda s: shutil.copyfile(s / "plain/c.bin.efsraw",
                                                                s / "Docs/big.bin.efsraw"),
    "longer than listed": lambda s: open(s / "Docs/big.bin.efsraw", "ab").write(b"\0" * 5000),
}


def stream(path, directory=False):
    return efsfast.backup(path, directory=directory)


def check_report(rec, set_dir, rel, dest, jobs=True):
    """A failure record: the object, its raw stream, and both hashes
    (``jobs``: the result lists its jobs, so the record has a "source")."""
    m = {e.path: e for e in read_manifest(set_dir / MANIFEST_NAME).entries}
    stored = set_dir / (rel + ".efsraw")
    got = stored.read_bytes()
    assert rec["path"] == str(dest / rel)
    assert rec["source"] == (str(stored) if jobs else None)
    assert rec["kind"] == "mismatch"
    assert rec["expected_sha256"] == m[rel].sha256 and rec["expected_size"] == m[rel].raw_size
    assert rec["sha256"] == hashlib.sha256(got).hexdigest() and rec["size"] == len(got)
    assert m[rel].sha256 in rec["error"] and rec["sha256"] in rec["error"]
    assert str(stored) in rec["error"]


def assert_rest_restored(src, dest, missing=()):
    """Every object but ``missing`` restored with its raw stream intact;
    no temporary anywhere below DEST."""
    for rel in SIZES:
        if rel in missing:
            assert not os.path.lexists(dest / rel)
        else:
            assert stream(dest / rel) == stream(src / rel), rel
    for d in FOLDERS:
        if d not in missing:
            assert stream(dest / d, True) == stream(src / d, True)
    for dirpath, dirs, files in os.walk(dest):
        assert not [n for n in dirs + files if n.startswith(".efsfast-")], dirpath


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_object_fails_named_with_both_hashes_and_leaves_nothing(made, place, damage):
    src, set_dir = made
    DAMAGE[damage](set_dir)
    dest = place / "dest"
    r = efs("restore-tree", str(set_dir), str(dest), "--json")
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert out["counts"]["failed"] == 1 and out["counts"]["done"] == len(SIZES) + len(FOLDERS) - 1
    assert out["counts"]["verified"] == out["counts"]["done"]
    check_report(out["failures"][0], set_dir, "Docs/big.bin", dest)
    assert sorted(os.listdir(dest / "Docs")) == ["a.bin", "b.bin"]
    assert_rest_restored(src, dest, missing={"Docs/big.bin"})
    # and as a person reads it
    r = efs("restore-tree", str(set_dir), str(place / "dest2"))
    assert r.returncode == 1
    text = " ".join(r.stdout.split())           # (the cause is wrapped to the terminal)
    assert "1 item failed: does not match the manifest: expected SHA-256" in text
    # the object, and the backup file at fault beside it
    assert f"{place / 'dest2' / 'Docs' / 'big.bin'} ({set_dir / 'Docs' / 'big.bin.efsraw'})" in text
    assert "verified: 6" in r.stdout


def test_an_undamaged_set_restores_verified(made, place):
    src, set_dir = made
    r = efs("restore-tree", str(set_dir), str(place / "dest"), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["counts"]["verified"] == out["counts"]["done"] == len(SIZES) + len(FOLDERS)
    assert_rest_restored(src, place / "dest")


def test_a_damaged_encrypted_folder_blocks_its_contents(made, place):
    """An encrypted folder whose stream is another folder's fails with both
    hashes; nothing is restored into it (it would be a plain folder)."""
    src, set_dir = made
    shutil.copyfile(set_dir / "Other.efsraw", set_dir / "Docs.efsraw")
    dest = place / "dest"
    r = efs("restore-tree", str(set_dir), str(dest), "--json")
    assert r.returncode == 1
    out = json.loads(r.stdout)
    by_path = {f["path"]: f for f in out["failures"]}
    check_report(by_path[str(dest / "Docs")], set_dir, "Docs", dest)
    assert all("parent folder failed" in by_path[str(dest / rel)]["error"]
               for rel in SIZES if rel.startswith("Docs/"))
    assert not os.path.lexists(dest / "Docs")
    assert_rest_restored(src, dest, missing={"Docs", *(r for r in SIZES if r.startswith("Docs"))})


def test_overwrite_keeps_what_was_there_when_the_object_is_damaged(made, place):
    """--overwrite over an earlier restore: a damaged file leaves the old
    file whole; a damaged folder stream is not applied to the folder in
    place (its $EFS stays)."""
    src, set_dir = made
    dest = place / "dest"
    assert efs("restore-tree", str(set_dir), str(dest)).returncode == 0
    before = {rel: stream(dest / rel) for rel in SIZES}
    folder_before = stream(dest / "Other", True)
    flip(set_dir / "Docs/big.bin.efsraw", -100)
    shutil.copyfile(set_dir / "Docs.efsraw", set_dir / "Other.efsraw")
    r = efs("restore-tree", str(set_dir), str(dest), "--overwrite", "--json")
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert sorted(f["path"] for f in out["failures"]) == [str(dest / "Docs/big.bin"),
                                                          str(dest / "Other")]
    for f in out["failures"]:
        check_report(f, set_dir, os.path.relpath(f["path"], dest), dest)
    assert stream(dest / "Other", True) == folder_before != stream(src / "Docs", True)
    assert {rel: stream(dest / rel) for rel in SIZES} == before
    assert not [n for n in os.listdir(dest / "Docs") if n.startswith(".efsfast-")]


def test_damage_in_the_base_set_of_an_incremental_is_caught(xattr_dir, place):
    """An incremental set's unchanged objects are read from its base set:
    damage there fails the object by name, with both hashes."""
    src = xattr_dir / "src"
    make_tree(src)
    base, new = place / "base", place / "new"
    assert backup_set(src, FolderSink(str(base))).bulk.ok
    efsfast.restore(src / "plain/d.bin", efsfast.synthetic_raw(777, seed=99), overwrite=True)
    r = backup_set(src, FolderSink(str(new)), since=str(base))
    assert r.bulk.ok and r.unchanged == len(SIZES) + len(FOLDERS) - 1
    flip(base / "Docs/big.bin.efsraw", -100)
    shutil.copyfile(base / "Docs/a.bin.efsraw", base / "Docs/b.bin.efsraw")
    dest = place / "dest"
    r = efs("restore-tree", str(new), str(dest), "--json")
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert sorted(f["path"] for f in out["failures"]) == [str(dest / "Docs/b.bin"),
                                                          str(dest / "Docs/big.bin")]
    for f in out["failures"]:
        check_report(f, base, os.path.relpath(f["path"], dest), dest)
    assert out["counts"]["verified"] == out["counts"]["done"] == len(SIZES) + len(FOLDERS) - 2
    assert sorted(os.listdir(dest / "Docs")) == ["a.bin"]
    assert stream(dest / "plain/d.bin") == stream(src / "plain/d.bin")


def test_restore_set_api_reports_the_mismatch(made, place):
    src, set_dir = made
    shutil.copyfile(set_dir / "plain/d.bin.efsraw", set_dir / "plain/c.bin.efsraw")
    r = restore_set(set_dir, place / "dest")
    assert r.verified == r.bulk.files == len(SIZES) + len(FOLDERS) - 1
    [f] = r.failures
    assert f.dest == str(place / "dest/plain/c.bin")
    assert isinstance(f.error, ObjectMismatchError) and isinstance(f.error, efsfast.EfsError)
    m = {e.path: e for e in read_manifest(set_dir / MANIFEST_NAME).entries}
    assert f.error.expected_sha256 == m["plain/c.bin"].sha256
    assert f.error.sha256 == m["plain/d.bin"].sha256
    assert (f.error.size, f.error.expected_size) == (m["plain/d.bin"].raw_size,
                                                     m["plain/c.bin"].raw_size)
    assert f.error.filename == str(set_dir / "plain/c.bin.efsraw")


# ---- the check itself, below restore-tree: restore() and restore_many()

RAW = efsfast.synthetic_raw(200_000, seed=5)
GOOD = (len(RAW), hashlib.sha256(RAW).hexdigest())
OTHER = efsfast.synthetic_raw(200_000, seed=6)


@pytest.mark.parametrize("kind", ["bytes", "path", "readinto", "chunks"])
def test_restore_checks_every_kind_of_source(xattr_dir, kind):
    """restore(..., expect=) checks buffers and paths in C and the Python
    fallback sources too; a mismatch publishes nothing."""
    def source(data):
        if kind == "bytes":
            return data
        if kind == "path":
            p = xattr_dir / f"s{hashlib.sha256(data).hexdigest()[:8]}"
            p.write_bytes(data)
            return str(p)
        if kind == "readinto":
            return io.BytesIO(data)
        return iter([data[i:i + 7000] for i in range(0, len(data), 7000)])
    ok = efsfast.restore(xattr_dir / "ok.bin", source(RAW), expect=GOOD)
    assert ok.bytes == len(RAW) and stream(xattr_dir / "ok.bin") == RAW
    with pytest.raises(ObjectMismatchError) as e:
        efsfast.restore(xattr_dir / "bad.bin", source(OTHER), expect=GOOD)
    assert e.value.expected_sha256 == GOOD[1]
    assert e.value.sha256 == hashlib.sha256(OTHER).hexdigest()
    assert (e.value.filename is not None) == (kind == "path")
    assert sorted(os.listdir(xattr_dir)) == sorted(
        ["ok.bin"] + [n for n in os.listdir(xattr_dir) if n.startswith("s")])


def test_restore_many_checks_only_the_items_that_ask(xattr_dir):
    """Items with and without an expectation in one batch; a too-short
    source, a longer one and a wrong one each fail alone."""
    jobs = [(xattr_dir / "plain.bin", OTHER),
            (xattr_dir / "good.bin", RAW, {"expect": GOOD}),
            (xattr_dir / "short.bin", RAW[:-512], {"expect": GOOD}),
            (xattr_dir / "long.bin", RAW + b"\0" * 100, {"expect": GOOD}),
            (xattr_dir / "wrong.bin", OTHER, {"expect": GOOD}),
            (xattr_dir / "bytes-digest.bin", RAW,
             {"expect": (len(RAW), hashlib.sha256(RAW).digest())})]
    r = efsfast.restore_many(jobs, workers=2)
    assert r.files == 3
    assert {os.path.basename(f.dest) for f in r.failures} == {"short.bin", "long.bin", "wrong.bin"}
    for f in r.failures:
        assert isinstance(f.error, ObjectMismatchError)
        data = next(j[1] for j in jobs if str(j[0]) == f.dest)
        assert (f.error.size, f.error.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert sorted(os.listdir(xattr_dir)) == ["bytes-digest.bin", "good.bin", "plain.bin"]


def test_a_malformed_expectation_is_refused():
    with pytest.raises(ValueError, match="32 bytes"):
        efsfast.restore_many([("/nonexistent/x", RAW, {"expect": (len(RAW), "abcd")})])
    with pytest.raises(ValueError, match="non-hexadecimal"):      # (bytes.fromhex's words)
        efsfast.restore_many([("/nonexistent/x", RAW, {"expect": (len(RAW), "g" * 64)})])


def test_an_expected_digest_is_read_as_bytes_fromhex_reads_it(xattr_dir):
    """64 hex digits are read in C; upper case, and hex with spaces
    between bytes (which bytes.fromhex also takes), mean the same digest."""
    hexed = GOOD[1]
    spaced = " ".join(hexed[i:i + 2] for i in range(0, 64, 2))
    wrong = hexed[:-1] + ("0" if hexed[-1] != "0" else "1")
    jobs = [(xattr_dir / "lower", RAW, {"expect": (len(RAW), hexed)}),
            (xattr_dir / "upper", RAW, {"expect": (len(RAW), hexed.upper())}),
            (xattr_dir / "spaced", RAW, {"expect": (len(RAW), spaced)}),
            (xattr_dir / "wrong", RAW, {"expect": (len(RAW), wrong)})]
    r = efsfast.restore_many(jobs)
    assert r.files == 3 and [f.index for f in r.failures] == [3]
    assert r.failures[0].error.expected_sha256 == wrong


def test_a_stream_restore_checks_the_objects_of_the_base_set(xattr_dir):
    """restore-tree - of an incremental stream reads its unchanged objects
    from the base folder set: those are checked too."""
    src = xattr_dir / "src"
    make_tree(src)
    base = xattr_dir / "base"
    assert backup_set(src, FolderSink(str(base))).bulk.ok
    efsfast.restore(src / "plain/d.bin", efsfast.synthetic_raw(777, seed=99), overwrite=True)
    with open(xattr_dir / "new.tar", "wb") as f:
        assert efs("backup-tree", str(src), "-", "--since", str(base),
                   stdout=f).returncode == 0
    flip(base / "Docs/big.bin.efsraw", -100)
    dest = xattr_dir / "dest"
    with open(xattr_dir / "new.tar", "rb") as f:
        r = efs("restore-tree", "-", str(dest), "--json", stdin=f)
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    [fail] = out["failures"]
    check_report(fail, base, "Docs/big.bin", dest, jobs=False)   # (the text names it)
    assert out["counts"]["verified"] == out["counts"]["done"] == len(SIZES) + len(FOLDERS) - 1
    assert_rest_restored(src, dest, missing={"Docs/big.bin"})


def test_restore_many_checks_on_its_python_path_too(xattr_dir):
    """Jobs the C path cannot take (a file object source) go item by item
    through restore(): the expectation goes with them (as on Windows, where
    path sources take that path)."""
    r = efsfast.restore_many([(xattr_dir / "good.bin", io.BytesIO(RAW), {"expect": GOOD}),
                              (xattr_dir / "bad.bin", io.BytesIO(OTHER), {"expect": GOOD})])
    assert r.files == 1
    [f] = r.failures
    assert f.dest == str(xattr_dir / "bad.bin") and isinstance(f.error, ObjectMismatchError)
    assert f.error.sha256 == hashlib.sha256(OTHER).hexdigest()
    assert sorted(os.listdir(xattr_dir)) == ["good.bin"]


def test_a_partial_restore_of_an_incomplete_set_checks_what_it_lists(made, place):
    """restore-tree --partial of a set whose backup did not finish (its
    manifest kept under the partial name, no end line): the objects it lists
    are checked like any set's."""
    from efsfast.backupset.manifest import PARTIAL_NAME
    src, set_dir = made
    lines = (set_dir / MANIFEST_NAME).read_bytes().splitlines(keepends=True)
    (set_dir / PARTIAL_NAME).write_bytes(b"".join(lines[:-1]))     # no end line
    (set_dir / MANIFEST_NAME).unlink()
    flip(set_dir / "Docs/big.bin.efsraw", -100)
    dest = place / "dest"
    r = efs("restore-tree", str(set_dir), str(dest), "--partial", "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert [f["path"] for f in out["failures"]] == [str(dest / "Docs/big.bin")]
    assert out["failures"][0]["kind"] == "mismatch"
    assert out["counts"]["verified"] == out["counts"]["done"] == len(SIZES) + len(FOLDERS) - 1
    assert_rest_restored(src, dest, missing={"Docs/big.bin"})
