"""Any tar tool can carry a backup set: a stream written by ``backup-tree -``
and then re-packed by GNU tar or bsdtar (libarchive), reordered, stripped of
its pax records, or a folder set copied with ``cp -r`` and tarred, restores
byte for byte with ``restore-tree -`` and passes ``verify-set -``; damage is
named and nothing of a bad object is left (POSIX system side on tmpfs with
user xattrs)."""
import gc
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tracemalloc

import pytest

import efsfast
from efsfast.backupset.manifest import ManifestWriter
from efsfast.backupset import (MANIFEST_NAME, FolderSink, TarSink, TruncatedStreamError,
                               backup_set, read_manifest, restore_stream, verify_stream)

from ntfs_volume import needs_ntfs3g
from test_backupset import efs, raw_streams
from test_backupset_ntfs3g import make_ntfs_tree, ntfs_values, volumes  # noqa: F401 (a fixture)

needs_gnu_tar = pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar is not installed")


# over the 100 bytes of a tar header's name field: ustar's prefix field, GNU's
# long-name member and pax's path record each carry it
LONG = "Docs/Inner/Plain/" + "c" * 80 + ".bin"


def nested_tree(root):
    """Encrypted folders two deep (the outer one with a named stream), a
    plain folder inside an encrypted one, an empty encrypted folder, files
    with and without named streams, one with a long name, one plain file
    (not backed up)."""
    root.mkdir(parents=True)

    def folder(rel, seed, **kw):
        efsfast.restore(root / rel, efsfast.synthetic_raw(0, directory=True, seed=seed, **kw),
                        directory=True)

    def file(rel, size, seed, **kw):
        efsfast.restore(root / rel, efsfast.synthetic_raw(size, seed=seed, **kw))
    folder("Docs", 1, named_streams={"tag": 100})
    file("Docs/a.bin", 5000, 2)
    folder("Docs/Inner", 3)
    file("Docs/Inner/b.bin", 70_000, 4, named_streams={"alt": 700})
    (root / "Docs/Inner/Plain").mkdir()
    file(LONG, 1, 5)
    folder("Empty", 6)
    file("top.bin", 0, 7)
    (root / "plain").mkdir()
    file("plain/d.bin", 300_000, 8)
    (root / "plain" / "notes.txt").write_text("not encrypted")
    for n, (dirpath, dirs, files) in enumerate(sorted(os.walk(root), reverse=True)):
        for name in dirs + files:       # distinct times, children before their folders
            os.utime(os.path.join(dirpath, name),
                     ns=(1_600_000_000_000_000_000 + n, 1_500_000_000_000_000_000 + n))


OBJECTS = ["Docs", "Docs/Inner", LONG, "Docs/Inner/b.bin", "Docs/a.bin", "Empty",
           "plain/d.bin", "top.bin"]


def mtimes(root):
    """{relative path: mtime} of everything below root but plain files."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            if os.path.isdir(p) or efsfast.tree.is_encrypted(p):
                out[os.path.relpath(p, root)] = os.stat(p).st_mtime_ns
    return out


def everything(root):
    """Every path below root, temporaries included."""
    return sorted(os.path.relpath(os.path.join(d, n), root)
                  for d, dirs, files in os.walk(root) for n in dirs + files)


@pytest.fixture
def src(xattr_dir):
    nested_tree(xattr_dir / "src")
    return xattr_dir / "src"


def stream_of(src):
    buf = io.BytesIO()
    assert backup_set(src, TarSink(buf), workers=1).bulk.ok
    return buf.getvalue()


def members(data):
    """[(TarInfo, bytes)] of the regular files of a tar, in order."""
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return [(m, t.extractfile(m).read()) for m in t if m.isfile()]


def write_tar(items, fmt=tarfile.USTAR_FORMAT, prefix=""):
    """A tar of (name, bytes) in the order given, no pax records (as a tool
    that knows nothing of efsfast writes it)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, data in items:
            ti = tarfile.TarInfo(prefix + name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 1_700_000_000
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def depth_first(name):
    """Deeper names first, a folder's object after what it holds."""
    return (-name.count("/"), name)


def ordered(data, order, **kw):
    items = [(m.name, b) for m, b in members(data)]
    manifest = [i for i in items if i[0] == MANIFEST_NAME]
    objects = [i for i in items if i[0] != MANIFEST_NAME]
    if "folders after" in order:
        objects.sort(key=lambda i: depth_first(i[0]))
    if order.startswith("manifest first"):
        items = manifest + objects
    elif order.startswith("manifest between"):
        items = objects[:3] + manifest + objects[3:]
    else:
        items = objects + manifest
    return write_tar(items, **kw)


def extracted(data, where):
    where.mkdir()
    subprocess.run(["tar", "-x", "-C", str(where)], input=data, check=True)
    return where


def restore_cli(data, dest, *extra):
    p = efs("restore-tree", "-", str(dest), "--json", *extra, input=data)
    return p.returncode, json.loads(p.stdout or b"{}"), p.stderr.decode()


def verify_cli(data):
    p = efs("verify-set", "-", "--json", input=data)
    return p.returncode, json.loads(p.stdout)


def problems(report):
    return {p["path"]: p["error"] for p in report["failures"]}


def failures(summary):
    return {os.path.relpath(f["path"], summary["_dest"]): f["error"]
            for f in summary.get("failures", [])}


def assert_restored(src, dest, objects=OBJECTS):
    want = {k: v for k, v in raw_streams(src).items() if k in objects}
    assert raw_streams(dest) == want
    assert not [n for n in everything(dest) if n.endswith(".tmp")]


# ---- re-packed by tar tools

REPACK = {
    "gnu tar, ./": ["tar", "-c", "-C", "{d}", "."],
    "gnu tar": ["tar", "-c", "-C", "{d}", "{names}"],
    "gnu tar --format=ustar, ./": ["tar", "-c", "--format=ustar", "-C", "{d}", "."],
    "gnu tar --format=ustar": ["tar", "-c", "--format=ustar", "-C", "{d}", "{names}"],
    "gnu tar --format=pax, ./": ["tar", "-c", "--format=pax", "-C", "{d}", "."],
    "gnu tar --format=pax": ["tar", "-c", "--format=pax", "-C", "{d}", "{names}"],
    "gnu tar -z": ["tar", "-cz", "-C", "{d}", "."],
    "bsdtar, ./": ["bsdtar", "-c", "-f", "-", "-C", "{d}", "."],
    "bsdtar --format ustar": ["bsdtar", "-cf", "-", "--format", "ustar", "-C", "{d}",
                              "{names}"],
}


def repack(tool, folder):
    argv = []
    for a in REPACK[tool]:
        if a == "{names}":
            argv += sorted(os.listdir(folder), reverse=True)     # the manifest not last
        else:
            argv.append(a.replace("{d}", str(folder)))
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed")
    return subprocess.run(argv, capture_output=True, check=True).stdout


@needs_gnu_tar
@pytest.mark.parametrize("tool", list(REPACK))
def test_a_stream_repacked_by_a_tar_tool_restores_and_verifies(xattr_dir, src, tool):
    """tar -x of a stream, then another tool's tar -c: no pax comment, a
    directory member per folder, ./ or not, the manifest wherever readdir
    put it."""
    data = repack(tool, extracted(stream_of(src), xattr_dir / "x"))
    infos = list(tarfile.open(fileobj=io.BytesIO(data)))
    assert infos[-1].name.lstrip("./") != MANIFEST_NAME         # not as efsfast wrote it
    assert not [m for m in infos if "comment" in m.pax_headers]
    code, summary, err = restore_cli(data, xattr_dir / "dest")
    assert code == 0, (summary, err)
    assert summary["counts"]["done"] == len(OBJECTS) and summary["counts"]["failed"] == 0
    assert_restored(src, xattr_dir / "dest")
    assert mtimes(xattr_dir / "dest") == mtimes(src)
    code, report = verify_cli(data)
    assert code == 0 and report["counts"]["verified"] == len(OBJECTS), report


ORDERS = ["manifest first", "manifest between", "manifest last",
          "manifest first, folders after their contents",
          "manifest last, folders after their contents"]


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT],
                         ids=["ustar", "gnu", "pax"])
@pytest.mark.parametrize("order", ORDERS)
def test_members_in_any_order_restore_and_verify(xattr_dir, src, order, fmt):
    data = ordered(stream_of(src), order, fmt=fmt, prefix="./" if fmt == tarfile.GNU_FORMAT
                   else "")
    r = restore_stream(io.BytesIO(data), xattr_dir / "dest")
    assert r.bulk.ok and r.bulk.files == len(OBJECTS), r.bulk.failures
    assert_restored(src, xattr_dir / "dest")
    assert mtimes(xattr_dir / "dest") == mtimes(src)
    report = verify_stream(io.BytesIO(data))
    assert report.ok and report.objects == len(OBJECTS), report.problems


@needs_gnu_tar
def test_a_folder_set_copied_with_cp_then_tarred(xattr_dir, src):
    backup_set(src, FolderSink(str(xattr_dir / "set")))
    subprocess.run(["cp", "-r", str(xattr_dir / "set"), str(xattr_dir / "copy")], check=True)
    data = subprocess.run(["tar", "-c", "-C", str(xattr_dir / "copy"), "."],
                          capture_output=True, check=True).stdout
    code, summary, err = restore_cli(data, xattr_dir / "dest")
    assert code == 0, (summary, err)
    assert_restored(src, xattr_dir / "dest")
    assert verify_cli(data)[0] == 0


# ---- damage

def damaged(data, damage, order):
    items = [(m.name, b) for m, b in members(data)]
    by_name = dict(items)
    if damage == "flipped byte in a file":
        b = bytearray(by_name["plain/d.bin.efsraw"])
        b[len(b) // 2] ^= 1
        by_name["plain/d.bin.efsraw"] = bytes(b)
    elif damage == "flipped byte in a folder":
        b = bytearray(by_name["Docs/Inner.efsraw"])
        b[len(b) - 3] ^= 1
        by_name["Docs/Inner.efsraw"] = bytes(b)
    elif damage == "unlisted member":
        by_name["New/extra.bin.efsraw"] = by_name["top.bin.efsraw"]
    elif damage == "missing member":
        del by_name["Docs/a.bin.efsraw"]
    elif damage == "missing folder":
        del by_name["Docs/Inner.efsraw"]
    elif damage == "edited manifest":
        text = by_name[MANIFEST_NAME].decode()
        at = text.index('"raw_size":') + 11
        by_name[MANIFEST_NAME] = (text[:at] + ("9" if text[at] != "9" else "8")
                                  + text[at + 1:]).encode()
    objects = sorted((i for i in by_name.items() if i[0] != MANIFEST_NAME),
                     key=lambda i: depth_first(i[0]))
    manifest = [(MANIFEST_NAME, by_name[MANIFEST_NAME])]
    return write_tar(manifest + objects if order == "manifest first" else objects + manifest)


# damage -> (failed items: {path: words its message has}, objects that stay)
DAMAGE = {
    "flipped byte in a file": ({"plain/d.bin": "SHA-256 differs"},
                               [o for o in OBJECTS if o != "plain/d.bin"]),
    "flipped byte in a folder": ({"Docs/Inner": "SHA-256 differs",
                                  "Docs/Inner/b.bin": "parent folder failed",
                                  LONG: "parent folder failed"},
                                 ["Docs", "Docs/a.bin", "Empty", "plain/d.bin", "top.bin"]),
    "unlisted member": ({"New/extra.bin": "not in the manifest"}, OBJECTS),
    "missing member": ({"Docs/a.bin": "missing from the stream"},
                       [o for o in OBJECTS if o != "Docs/a.bin"]),
    "missing folder": ({"Docs/Inner": "missing from the stream",
                        "Docs/Inner/b.bin": "parent folder failed",
                        LONG: "parent folder failed"},
                       ["Docs", "Docs/a.bin", "Empty", "plain/d.bin", "top.bin"]),
}


@pytest.mark.parametrize("order", ["manifest first", "manifest last"])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damage_is_named_and_nothing_of_a_bad_object_stays(xattr_dir, src, damage, order):
    """The stream as a tool that knows nothing of efsfast re-packs it (no
    pax comment, files before their folders); checked before an object is
    published where the manifest came first, removed again where it came
    last."""
    data = damaged(stream_of(src), damage, order)
    dest = xattr_dir / "dest"
    code, summary, err = restore_cli(data, dest)
    summary["_dest"] = str(dest)
    failed, stays = DAMAGE[damage]
    assert code == 1, (summary, err)
    got = failures(summary)
    assert set(got) == set(failed), got
    for path, words in failed.items():
        assert words in got[path], (path, got[path])
    if damage.startswith("flipped byte"):
        victim = next(iter(failed))
        want = next(e.sha256 for e in read_manifest(io.BytesIO(members(data)[
            0 if order == "manifest first" else -1][1])).entries if e.path == victim)
        assert want in got[victim]                              # both hashes named
    assert summary["counts"]["done"] == len(stays)
    assert_restored(src, dest, stays)
    gone = [o for o in OBJECTS if o not in stays] + ["New"]     # no folder made for it stays
    assert not [p for p in everything(dest) for g in gone if p == g or p.startswith(g + "/")]
    code, report = verify_cli(data)
    assert code == 1
    named = problems(report)
    for path in failed:
        if "parent folder" not in failed[path]:
            assert path + ".efsraw" in named, named
    inside = sum("parent folder" in words for words in failed.values())
    if inside:          # the summary counts them under the folder's own cause
        p = efs("restore-tree", "-", str(xattr_dir / "dest2"), input=data)
        text = " ".join(p.stdout.decode().split())
        assert f"{len(failed)} items failed: " in text, text
        assert (f"({inside} of them not restored only because an encrypted folder they are "
                "in failed)") in text, text
        assert "parent folder failed" not in text


@pytest.mark.parametrize("order", ["manifest first", "manifest last"])
def test_an_edited_manifest_restores_nothing(xattr_dir, src, order):
    data = damaged(stream_of(src), "edited manifest", order)
    dest = xattr_dir / "dest"
    p = efs("restore-tree", "-", str(dest), input=data)
    err = p.stderr.decode()
    assert p.returncode == 1 and "changed after it was written" in err, err
    if order == "manifest last":
        assert f"the {len(OBJECTS)} objects restored before it were removed" in err, err
    assert everything(dest) == []
    code, report = verify_cli(data)
    assert code == 1 and "changed after it was written" in problems(report)[MANIFEST_NAME]


def test_other_members_are_named_not_restored(xattr_dir, src):
    """A hard link, a symbolic link, a file that is no object, a second
    member for an object, a second manifest: each a named problem; the set's
    objects restore."""
    items = members(stream_of(src))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for m, b in items:
            t.addfile(m, io.BytesIO(b))
        link = tarfile.TarInfo("./again.bin.efsraw")
        link.type, link.linkname = tarfile.LNKTYPE, "top.bin.efsraw"
        t.addfile(link)
        sym = tarfile.TarInfo("sym.efsraw")
        sym.type, sym.linkname = tarfile.SYMTYPE, "top.bin.efsraw"
        t.addfile(sym)
        for name, data in [("README.txt", b"hello"), ("top.bin.efsraw", items[0][1]),
                           (MANIFEST_NAME, items[-1][1])]:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    data = buf.getvalue()
    dest = xattr_dir / "dest"
    code, summary, err = restore_cli(data, dest)
    summary["_dest"] = str(dest)
    assert code == 1, err
    got = failures(summary)
    assert set(got) == {"again.bin.efsraw", "sym.efsraw", "README.txt", "top.bin",
                        MANIFEST_NAME}, got
    assert "hard link to top.bin.efsraw" in got["again.bin.efsraw"]
    assert "second member" in got["top.bin"] and "second manifest" in got[MANIFEST_NAME]
    assert_restored(src, dest)
    assert not os.path.lexists(dest / "README.txt") and not os.path.lexists(dest / "again.bin")
    code, report = verify_cli(data)
    assert code == 1 and report["counts"]["verified"] == len(OBJECTS)
    assert set(problems(report)) == {"again.bin.efsraw", "sym.efsraw", "README.txt",
                                     "top.bin.efsraw", MANIFEST_NAME}


# ---- bounded memory, kinds past the peek, truncation

def late_unnamed(size, seed):
    """A file's raw stream with a named stream before its unnamed one (the
    spec leaves their order open; an export here writes the unnamed one
    first): its kind shows only past the named one."""
    meta = efsfast.raw.synthetic_metadata(seed=seed)
    return efsfast.raw.build_raw(meta, [(":first:$DATA", 60_000, os.urandom(60_416)),
                                        ("::$DATA", size, os.urandom((size + 511) & ~511))])


def with_object(items, path, raw):
    """The (name, bytes) of a stream with ``path``'s raw stream replaced and
    a manifest that lists it (written as backup-tree writes one)."""
    m = read_manifest(io.BytesIO(dict(items)[MANIFEST_NAME]))
    out = io.BytesIO()
    w = ManifestWriter(out, m.header)
    for e in m.entries:
        if e.path == path:
            e.raw_size, e.sha256 = len(raw), hashlib.sha256(raw).hexdigest()
        w.add(e)
    w.finish()
    return [(n, raw if n == path + ".efsraw" else out.getvalue() if n == MANIFEST_NAME else b)
            for n, b in items]


@needs_gnu_tar
def test_a_large_member_is_never_held_in_memory(xattr_dir):
    """32 MiB objects, the manifest first (checked as the bytes pass) and
    last (checked when it comes), one going through a temporary file (its
    kind past the peek): Python's allocations stay a few MiB."""
    src = xattr_dir / "src"
    src.mkdir()
    efsfast.restore(src / "big.bin", efsfast.synthetic_raw(32 << 20, seed=1))
    late = late_unnamed(32 << 20, seed=3)
    efsfast.restore(src / "late.bin", late)
    x = xattr_dir / "x"
    x.mkdir()
    for name, b in with_object([(m.name, b) for m, b in members(stream_of(src))], "late.bin",
                               late):
        (x / name).write_bytes(b)
    del late
    for order in ["first", "last"]:
        names = sorted(os.listdir(x), key=lambda n: (n == MANIFEST_NAME) == (order == "last"))
        with open(xattr_dir / "re.tar", "wb") as f:
            subprocess.run(["tar", "-c", "-C", str(x), *names], stdout=f, check=True)
        gc.collect()
        for run in ("restore", "verify"):
            with open(xattr_dir / "re.tar", "rb") as f:
                tracemalloc.start()
                try:
                    if run == "restore":
                        r = restore_stream(f, xattr_dir / f"dest-{order}", peek_limit=4096)
                    else:
                        r = verify_stream(f)
                    peak = tracemalloc.get_traced_memory()[1]
                finally:
                    tracemalloc.stop()
            assert r.bulk.ok if run == "restore" else r.ok
            assert peak < 6 << 20, (order, run, peak)
        assert raw_streams(xattr_dir / f"dest-{order}") == raw_streams(src)


def test_a_kind_past_the_peek_is_told_from_a_temporary_file(xattr_dir, monkeypatch):
    """Raw streams whose headers do not tell file or folder within the peek
    limit (a folder's large named stream; a file whose named stream comes
    before its unnamed one): restored through a temporary file, left
    nowhere."""
    src = xattr_dir / "src"
    src.mkdir()
    efsfast.restore(src / "Folder", efsfast.synthetic_raw(0, directory=True, seed=2,
                                                          named_streams={"n": 60_000}),
                    directory=True)
    late = late_unnamed(5000, seed=3)
    efsfast.restore(src / "Folder" / "late.bin", late)
    efsfast.restore(src / "plain.bin", efsfast.synthetic_raw(5000, seed=4))
    items = with_object([(m.name, b) for m, b in members(stream_of(src))], "Folder/late.bin",
                        late)
    data = write_tar(sorted(items, key=lambda i: (i[0] == MANIFEST_NAME, depth_first(i[0]))))
    dest = xattr_dir / "dest"
    spooled = []
    real = efsfast.backupset.streamrestore.temp_beside
    monkeypatch.setattr(efsfast.backupset.streamrestore, "temp_beside",
                        lambda t: spooled.append(os.path.relpath(t, dest)) or real(t))
    r = restore_stream(io.BytesIO(data), dest, peek_limit=4096)
    assert r.bulk.ok and r.bulk.files == 3, r.bulk.failures
    assert sorted(spooled) == ["Folder", "Folder/late.bin"]      # not plain.bin: told early
    assert raw_streams(dest) == raw_streams(src)
    assert not [n for n in everything(dest) if n.endswith(".tmp")]


def test_a_truncated_repacked_stream_counts_what_it_restored(xattr_dir, src):
    data = ordered(stream_of(src), "manifest last, folders after their contents")
    starts = [m.offset for m in tarfile.open(fileobj=io.BytesIO(data))]
    cut = data[:starts[5]]                      # five objects whole, no manifest
    dest = xattr_dir / "dest"
    with pytest.raises(TruncatedStreamError, match="before its manifest") as caught:
        restore_stream(io.BytesIO(cut), dest)
    assert "5 objects were restored whole, 5 of them unchecked" in str(caught.value)
    r = caught.value.tree
    assert r.bulk.files == 5 and not r.bulk.failures
    assert not [n for n in everything(dest) if n.endswith(".tmp")]
    p = efs("restore-tree", "-", str(xattr_dir / "d2"), input=cut)
    assert p.returncode == 1 and b"5 of them unchecked" in p.stderr, p.stderr


def test_an_incremental_stream_puts_an_unchanged_folder_onto_its_changed_files(xattr_dir, src):
    """Docs is unchanged (in the full set), a file inside it changed (in the
    stream): the folder is made plain for the file, then its stream from the
    full set is applied in place."""
    full = xattr_dir / "full"
    backup_set(src, FolderSink(str(full)))
    with open(src / "Docs" / "a.bin", "r+b") as f:      # its data changes in place
        f.write(b"changed")
    buf = io.BytesIO()
    r = backup_set(src, TarSink(buf), since=str(full))
    assert r.bulk.ok and r.unchanged == len(OBJECTS) - 1
    data = ordered(buf.getvalue(), "manifest last")
    m = read_manifest(io.BytesIO(members(data)[-1][1]))
    assert next(e for e in m.entries if e.path == "Docs").ref
    dest = xattr_dir / "dest"
    r = restore_stream(io.BytesIO(data), dest, sets=[str(full)])
    assert r.bulk.ok, r.bulk.failures
    assert raw_streams(dest) == raw_streams(src)


def test_manifest_first_checks_before_publishing(xattr_dir, src, monkeypatch):
    """Where the manifest came first no bad object is ever published: the
    import's source fails at its end, before the temporary is renamed."""
    data = damaged(stream_of(src), "flipped byte in a file", "manifest first")
    published = []
    real = efsfast.backupset.streamrestore.restore

    def watch(target, source, **kw):
        r = real(target, source, **kw)
        published.append(os.path.relpath(target, xattr_dir / "dest"))
        return r
    monkeypatch.setattr(efsfast.backupset.streamrestore, "restore", watch)
    r = restore_stream(io.BytesIO(data), xattr_dir / "dest")
    assert [f.dest for f in r.bulk.failures] == [str(xattr_dir / "dest" / "plain" / "d.bin")]
    assert "plain/d.bin" not in published and len(published) == len(OBJECTS) - 1


# ---- real NTFS

@needs_ntfs3g
@pytest.mark.parametrize("order", ["manifest first", "manifest last"])
def test_a_reordered_stream_onto_an_ntfs_volume(volumes, order):
    """Folders after their contents, no pax records, onto ntfs-3g: the files
    go into plain folders, then each folder's $EFS is imported in place;
    every time, attribute, descriptor and raw stream as on the source."""
    a, b = volumes("a"), volumes("b")
    rels = make_ntfs_tree(a.mnt)
    want = ntfs_values(a.mnt, rels)
    data = ordered(stream_of(a.mnt), order + ", folders after their contents")
    names = [m.name for m in tarfile.open(fileobj=io.BytesIO(data))]
    assert names.index("Users.efsraw") > names.index("Users/Deep/f2.doc.efsraw")
    code, summary, err = restore_cli(data, b.mnt)
    assert code == 0, (summary, err)
    assert ntfs_values(b.mnt, rels) == want
    b.unmount()
    assert "ENCRYPTED" in b.info("/Users/Deep")


@needs_gnu_tar
def test_a_set_tarred_inside_its_folder_is_named_as_such(xattr_dir, src):
    """tar -c SET (names SET/...) instead of tar -C SET -c .: refused by
    name, with the way on."""
    backup_set(src, FolderSink(str(xattr_dir / "set")))
    data = subprocess.run(["tar", "-c", "-C", str(xattr_dir), "set"], capture_output=True,
                          check=True).stdout
    code, report = verify_cli(data)
    assert code == 1
    assert "re-pack it with tar -C set -c ." in problems(report)[f"set/{MANIFEST_NAME}"]
    p = efs("restore-tree", "-", str(xattr_dir / "dest"), input=data)
    assert p.returncode == 1 and b"ended before its manifest" in p.stderr, p.stderr
    assert b"re-pack it with tar -C set -c ." in p.stderr


def test_ctrl_c_with_folders_waiting_for_the_manifest_leaves_no_temporaries(xattr_dir, src):
    """Stopped while folders' streams wait for the manifest: their temporary
    files go, the account comes with the interrupt."""
    data = ordered(stream_of(src), "manifest last")      # folders first, as written
    token = efsfast.CancelToken()
    dest = xattr_dir / "dest"
    with pytest.raises(KeyboardInterrupt) as caught:
        restore_stream(io.BytesIO(data), dest, cancel=token,
                       progress=lambda f, b, t: f >= 2 and token.cancel())
    assert caught.value.tree.bulk.files == 2
    assert not [n for n in everything(dest) if n.endswith(".tmp")]
    assert len([n for n in everything(dest) if efsfast.tree.is_encrypted(dest / n)]) == 2
