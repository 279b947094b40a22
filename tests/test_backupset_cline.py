"""Manifest lines made by a backup's C workers (efs_manifest.c) are byte for
byte the json encoder's (manifest._line of the entry), names needing escapes
included; a name that is not UTF-8 gets no line there and is left to Python,
which refuses it as before.  The bulk folder-set backup writes them.  The C
reader a restore uses takes exactly those lines, read as json reads them,
and leaves any other spelling to json."""
import hashlib
import itertools
import json
import os
import random

import pytest
from hypothesis import given, settings, strategies as st

import efsfast
from efsfast import _core, _testhooks
from efsfast.backupset import FolderSink, backup_set, read_manifest
from efsfast.backupset import manifest as manifest_mod
from efsfast.backupset.manifest import MANIFEST_NAME, PARTIAL_NAME, Entry, Kind, _line

NAMES = ["f", "a/b c/ü €.bin", 'q"uote\\back', "tab\there\nnl\x01\x7f\x1f\x00\b\f\r",
         "日本/語", "a" * 300, "\U0001f600/emoji", "\u2028\u2029\ufeff", "x/\\u0041"]
INT64 = (-2 ** 63, -1, 0, 1, 1_700_000_000_123_456_789, 2 ** 63 - 1)
UINT64 = (0, 17, 2 ** 40, 2 ** 64 - 1)


def _posix_name(raw):
    """A name's bytes as os.fsdecode gives them on POSIX (undecodable bytes
    as lone surrogates; on Windows fsdecode refuses them)."""
    return raw.decode("utf-8", "surrogateescape")


def c_line(path_bytes, directory, raw_size, source_size, sha, efs_sha, meta):
    m = meta or {}
    return _testhooks._manifest_object_line(
        path_bytes, directory, raw_size, source_size, sha, efs_sha, bool(meta),
        m.get("mode", 0), m.get("atime_ns", 0), m.get("mtime_ns", 0), m.get("ctime_ns", 0))


def python_line(path, directory, raw_size, source_size, sha, efs_sha, meta):
    """What the Python writer writes for the same object (mode recorded as
    metadata.from_facts records it: its permission bits)."""
    e = Entry(path, Kind.DIRECTORY if directory else Kind.FILE, raw_size, sha.hex(),
              source_size, efs_sha.hex(),
              dict(meta, mode=meta["mode"] & 0o7777) if meta else {})
    return _line(e.to_json())


def _meta(rnd):
    return {"source": "posix", "mode": rnd.choice([0, 0o644, 0o100755, 0o7777, 0xFFFFFFFF]),
            "atime_ns": rnd.choice(INT64), "mtime_ns": rnd.choice(INT64),
            "ctime_ns": rnd.choice(INT64)}


def test_c_lines_are_the_json_encoders():
    rnd = random.Random(11)
    made = 0
    for name, directory in itertools.product(NAMES, (False, True)):
        for _ in range(25):
            args = (directory, rnd.choice(UINT64), rnd.choice(UINT64), rnd.randbytes(32),
                    rnd.randbytes(32), rnd.choice([None, _meta(rnd)]))
            made_c = c_line(name.encode(), *args)
            assert made_c == python_line(name, *args), (name, args)
            assert json.loads(made_c)["path"] == name
            made += 1
    assert made == len(NAMES) * 2 * 25


def test_names_that_are_not_utf8_are_left_to_python():
    """os.fsdecode gives such a name's bytes as lone surrogates; the json
    encoder keeps them and the UTF-8 encoding of the line refuses them: C
    makes no line for any name Python's strict decoder refuses."""
    for raw in [b"bad\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"cut\xe2\x82",
                b"\x80", b"\xf5\x80\x80\x80", b"ok/\xe0\x9f\xbf"]:
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
        assert c_line(raw, False, 1, 1, bytes(32), bytes(32), None) is None, raw
        with pytest.raises(UnicodeEncodeError):
            python_line(_posix_name(raw), False, 1, 1, bytes(32), bytes(32), None)


@settings(max_examples=3000, deadline=None)
@given(path=st.one_of(st.binary(max_size=40), st.text(max_size=30).map(
    lambda t: t.encode("utf-8", "surrogatepass"))),
    directory=st.booleans(), raw_size=st.integers(0, 2 ** 64 - 1),
    source_size=st.integers(0, 2 ** 64 - 1), times=st.tuples(*[st.integers(-2 ** 63, 2 ** 63 - 1)] * 3),
    mode=st.integers(0, 2 ** 32 - 1), meta=st.booleans())
def test_c_lines_against_the_json_encoder_on_any_bytes(path, directory, raw_size, source_size,
                                                       times, mode, meta):
    m = ({"source": "posix", "mode": mode, "atime_ns": times[0], "mtime_ns": times[1],
          "ctime_ns": times[2]} if meta else None)
    sha, efs_sha = hashlib.sha256(path).digest(), hashlib.sha256(path + b"efs").digest()
    made = c_line(path, directory, raw_size, source_size, sha, efs_sha, m)
    try:
        want = python_line(_posix_name(path), directory, raw_size, source_size, sha, efs_sha, m)
    except UnicodeEncodeError:
        want = None
    assert made == want


def _tree(root, names):
    """Encrypted files under ``root`` with these relative names (bytes)."""
    for i, rel in enumerate(names):
        p = os.path.join(os.fsencode(root), rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        efsfast.restore(os.fsdecode(p), efsfast.synthetic_raw(100 + i, seed=i))


def test_a_folder_set_backup_writes_the_workers_lines(xattr_dir, monkeypatch):
    """backup-tree into a folder set (the bulk path): every object's line is
    the one the json encoder makes for the entry read back, for names
    needing escapes too; and those lines came from the workers."""
    # (a file name holds no NUL, and at most 255 bytes)
    names = [n.encode() for n in NAMES if "\x00" not in n and len(n) < 255]
    src, dest = xattr_dir / "src", xattr_dir / "set"
    _tree(src, names)
    written = []
    real = manifest_mod.ManifestWriter.add_lines

    def spy(self, lines, count):
        written.append(count)
        return real(self, lines, count)
    monkeypatch.setattr(manifest_mod.ManifestWriter, "add_lines", spy)
    r = backup_set(str(src), FolderSink(str(dest)))
    assert not r.failures and r.complete
    assert sum(written) == len(names)           # every object's line made in C
    m = read_manifest(dest / MANIFEST_NAME)
    assert sorted(e.path.encode() for e in m.entries if e.kind is Kind.FILE) == sorted(names)
    raw_lines = (dest / MANIFEST_NAME).read_bytes().splitlines(keepends=True)[1:-1]
    assert sorted(raw_lines) == sorted(_line(e.to_json()) for e in m.entries)
    out = xattr_dir / "out"
    efsfast.backupset.restore_set(str(dest), str(out))
    for n in names:
        assert (efsfast.backup(os.path.join(os.fsencode(out), n))
                == efsfast.backup(os.path.join(os.fsencode(src), n)))


def test_a_name_that_is_not_utf8_fails_as_itself(xattr_dir):
    """No line is made for it, in C or in Python: the object fails before
    any work, named, its failed line spelling the byte as \\xff, and the
    others are backed up in a complete set (tests/test_backupset_names.py
    has the command line)."""
    src, dest = xattr_dir / "src", xattr_dir / "set"
    _tree(src, [b"a-ok", b"bad\xff"])
    r = backup_set(str(src), FolderSink(str(dest)))
    assert [os.fsencode(e.dest) for e in r.failures] == [os.fsencode(str(src)) + b"/bad\xff"]
    m = read_manifest(dest / MANIFEST_NAME)
    assert m.complete
    by_path = m.by_path()
    assert by_path["a-ok"].sha256 and "not valid UTF-8" in by_path["bad\\xff"].failed


def test_a_batch_of_lines_that_cannot_be_written_fails_its_objects(xattr_dir, monkeypatch):
    """Lines written together fail together: each object is a failed item,
    its file removed, and the set is left incomplete."""
    src, dest = xattr_dir / "src", xattr_dir / "set"
    _tree(src, [f"f{i}".encode() for i in range(20)])

    def full(self, lines, count):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(manifest_mod.ManifestWriter, "add_lines", full)
    r = backup_set(str(src), FolderSink(str(dest)))
    assert not r.complete and len(r.failures) == 20
    # (the batch gave each its result as it handed the lines over: taken back)
    assert r.bulk.files == 0 and r.bulk.results == [None] * 20
    assert "cannot record it in the manifest" in str(r.failures[0].error)
    assert sorted(os.listdir(dest)) == [PARTIAL_NAME]
    m = read_manifest(dest / PARTIAL_NAME, partial=True)
    assert not m.complete and m.entries == []


@pytest.mark.parametrize("names", [
    # the line kept in the item itself (short paths), made on the worker's
    # stack and then allocated (its line is longer than the item holds), and
    # allocated whole (the bound on its length is beyond the stack's buffer)
    [b"s", b"d/" + b"m" * 200, b"m" * 240, b"\x01" * 60, "\u00e9".encode() * 120],
    [b"d" * 200 + b"/" + b"e" * 200, b"q" * 200 + b"/" + b'"' * 240],
], ids=["in-item-and-stack", "allocated"])
def test_lines_of_every_length_are_the_encoders(xattr_dir, names):
    src, dest = xattr_dir / "src", xattr_dir / "set"
    _tree(src, names)
    r = backup_set(str(src), FolderSink(str(dest)))
    assert not r.failures and r.complete
    m = read_manifest(dest / MANIFEST_NAME)
    files = [e for e in m.entries if e.kind is Kind.FILE]
    assert sorted(e.path.encode() for e in files) == sorted(names)
    raw_lines = (dest / MANIFEST_NAME).read_bytes().splitlines(keepends=True)[1:-1]
    assert sorted(raw_lines) == sorted(_line(e.to_json()) for e in m.entries)
    assert max(len(x) for x in raw_lines) > 576     # (some longer than an item holds)


def test_the_lines_are_written_off_the_calling_thread(xattr_dir, monkeypatch):
    """The runs of lines go to the manifest on a thread of their own
    (linepipe.py), all of them before backup_set returns."""
    import threading
    src, dest = xattr_dir / "src", xattr_dir / "set"
    _tree(src, [f"f{i}".encode() for i in range(50)])
    threads, counts = set(), []
    real = manifest_mod.ManifestWriter.add_lines

    def spy(self, lines, count):
        threads.add(threading.current_thread().name)
        counts.append(count)
        return real(self, lines, count)
    monkeypatch.setattr(manifest_mod.ManifestWriter, "add_lines", spy)
    r = backup_set(str(src), FolderSink(str(dest)))
    assert r.complete and not r.failures and sum(counts) == 50
    assert threads == {"efsfast-manifest"}
    assert len(read_manifest(dest / MANIFEST_NAME).entries) == 50


def test_a_run_whose_lines_fail_takes_only_its_own_objects(xattr_dir, monkeypatch):
    """Where one run of lines cannot be written (on the pipe's thread), the
    objects of that run fail, named, their files removed; those of runs
    written before it stay in the (incomplete) set, and every count agrees
    with what the manifest lists."""
    src, dest = xattr_dir / "src", xattr_dir / "set"
    n = 400
    _tree(src, [f"f{i:03d}".encode() for i in range(n)])
    real = manifest_mod.ManifestWriter.add_lines

    def fails_on_f200(self, lines, count):
        if b'"path":"f200"' in lines:
            raise OSError(28, "No space left on device")
        return real(self, lines, count)
    monkeypatch.setattr(manifest_mod.ManifestWriter, "add_lines", fails_on_f200)
    r = backup_set(str(src), FolderSink(str(dest)), workers=2)
    assert not r.complete
    failed = {os.path.basename(e.dest) for e in r.failures}
    assert "f200" in failed
    assert all("cannot record it in the manifest" in str(e.error) for e in r.failures)
    m = read_manifest(dest / PARTIAL_NAME, partial=True)
    listed = {e.path for e in m.entries if e.kind is Kind.FILE and not e.failed}
    # every object is either listed (and its file there) or failed (and gone)
    assert listed | failed == {f"f{i:03d}" for i in range(n)} and not listed & failed
    on_disk = {x[:-len(".efsraw")] for x in os.listdir(dest) if x.endswith(".efsraw")}
    assert on_disk == listed
    assert r.bulk.files == len(listed) == sum(1 for x in r.bulk.results if x is not None)


# ---- reading: the C reader takes the writer's own lines, and only those ----

def _fields_by_json(line):
    """What the Python reader makes of a line: the Entry's fields."""
    e = Entry.from_json(json.loads(line.decode("utf-8")))
    return (e.path, e.kind is Kind.DIRECTORY, e.raw_size, e.sha256, e.source_size,
            e.efs_sha256, e.meta or None)


def _entries(rnd, names):
    for name, directory in itertools.product(names, (False, True)):
        yield Entry(name, Kind.DIRECTORY if directory else Kind.FILE,
                    rnd.choice(UINT64), rnd.randbytes(32).hex(), rnd.choice(UINT64),
                    rnd.randbytes(32).hex(),
                    rnd.choice([{}, dict(_meta(rnd), mode=rnd.choice([0, 0o644, 0o7777]))]))


def test_the_c_reader_reads_the_writers_lines_as_json_does():
    rnd = random.Random(5)
    for e in _entries(rnd, NAMES):
        line = _line(e.to_json())
        assert _core.manifest_object_fields(line) == _fields_by_json(line), line


@pytest.mark.parametrize("change", [
    lambda s: s.replace(b'":', b'": '),                       # spaces
    lambda s: s.replace(b'"raw_size":17', b'"raw_size":017'),    # a leading zero
    lambda s: s.replace(b'"raw_size":17', b'"raw_size":17.0'),   # a float
    lambda s: s.replace(b'"raw_size":17', b'"raw_size":1e1'),
    lambda s: s.replace(b'"atime_ns":0', b'"atime_ns":-0'),
    lambda s: s.replace(b'"raw_size":17', b'"raw_size":18446744073709551616'),  # past 64 bits
    lambda s: s.replace(b'"atime_ns":0', b'"atime_ns":9223372036854775808'),
    lambda s: s.replace(b'"mode":420', b'"mode":4096'),         # beyond the permission bits
    lambda s: s.replace(b'"ab', b'"AB'),                        # upper-case hex
    lambda s: s.replace(b'"p', b'"\\u0070'),                   # an escape json takes
    lambda s: s.replace(b'"p', b'"\\/p'),
    lambda s: s.replace(b'"p', b'"\\u001F'),
    lambda s: s.replace(b'"p', b'"\\u000a'),                   # \n written long
    lambda s: s.replace(b'"p', b'"\x01'),                      # a raw control character
    lambda s: s.replace(b'"p', b'"\xff'),                      # not UTF-8
    lambda s: s.replace(b'"kind":"file"', b'"kind":"plain-directory"'),
    lambda s: s.replace(b'"type":"object"}', b'"type":"object","ref":"x"}'),
    lambda s: s.replace(b',"kind":"file"', b'') .replace(b'"efs_sha256"', b'"kind":"file","efs_sha256"'),
    lambda s: s[:-1],                                           # no "\n"
    lambda s: s[:-1] + b"\r\n",
    lambda s: s + b"x",
])
def test_other_spellings_are_left_to_json(change):
    e = Entry("p", Kind.FILE, 17, "ab" * 32, 9, "cd" * 32,
              {"source": "posix", "mode": 420, "atime_ns": 0, "mtime_ns": 1, "ctime_ns": 2})
    line = _line(e.to_json())
    assert _core.manifest_object_fields(line) is not None
    other = change(line)
    assert other != line
    assert _core.manifest_object_fields(other) is None, other


@settings(max_examples=3000, deadline=None)
@given(seed=st.integers(0, 2 ** 32), name=st.text(max_size=20), cuts=st.lists(
    st.tuples(st.integers(0, 500), st.integers(0, 3), st.binary(max_size=3)), max_size=3))
def test_the_c_reader_on_changed_lines_agrees_with_json(seed, name, cuts):
    """Lines changed anywhere (bytes replaced, dropped, put in): whatever
    the C reader takes, json reads alike."""
    rnd = random.Random(seed)
    e = next(_entries(rnd, [name]))
    try:
        line = bytearray(_line(e.to_json()))
    except UnicodeEncodeError:
        return                  # (a name the writer refuses)
    for at, n, put in cuts:
        at %= len(line) + 1
        line[at:at + n] = put
    got = _core.manifest_object_fields(bytes(line))
    if got is not None:
        assert got == _fields_by_json(bytes(line))


def test_read_manifest_gives_the_same_with_and_without_the_c_reader(xattr_dir, monkeypatch):
    src, dest = xattr_dir / "src", xattr_dir / "set"
    names = [n.encode() for n in NAMES if "\x00" not in n and len(n) < 255]
    _tree(src, names)
    assert backup_set(str(src), FolderSink(str(dest))).complete
    fast = read_manifest(dest / MANIFEST_NAME)
    taken = []

    class Spy(_core.ObjectTable):
        def read_run(self, data, pos):
            pos, n = super().read_run(data, pos)
            taken.append(n)
            return pos, n

    class JsonOnly(_core.ObjectTable):
        def read_run(self, data, pos):
            return pos, 0
    monkeypatch.setattr(manifest_mod, "ObjectTable", Spy)
    assert read_manifest(dest / MANIFEST_NAME) == fast
    assert sum(taken) == len(names)         # every file's line in C
    # json alone (every line left to it) reads the same
    monkeypatch.setattr(manifest_mod, "ObjectTable", JsonOnly)
    slow = read_manifest(dest / MANIFEST_NAME)
    assert slow.table is not None and len(slow.table.foreign) == len(slow.table) > len(names)
    assert slow == fast


@pytest.mark.parametrize("aside", [False, True])
def test_a_long_manifest_is_hashed_whole(monkeypatch, aside):
    """A long manifest (its object lines read in C, between lines json
    reads) gives the SHA-256 of every line before its end line, and a line
    changed far into it is still found out."""
    import io
    from efsfast.backupset.manifest import Header, ManifestError, ManifestWriter
    buf = io.BytesIO()
    w = ManifestWriter(buf, Header.new("/src", "posix"))
    rnd = random.Random(3)
    n = 2 * 1024 + 17
    if aside:       # (hashed on another thread as its lines are read: over 1 MiB)
        monkeypatch.setattr(manifest_mod, "_HASH_ASIDE", 0)
    for i in range(n):
        e = next(_entries(rnd, [f"d/f{i}"]))
        e.path = f"d/f{i}"
        w.add(e)
    digest = w.finish()
    data = buf.getvalue()
    m = manifest_mod._read(data, "m")
    assert len(m.entries) == n and m.sha256 == digest
    assert digest == hashlib.sha256(data[:data.rindex(b"\n", 0, len(data) - 1) + 1]).hexdigest()
    changed = data.replace(b'"path":"d/f2040"', b'"path":"d/f2041"')
    assert changed != data
    with pytest.raises(ManifestError, match="does not match"):
        manifest_mod._read(changed, "m")
    with pytest.raises(ManifestError, match="text after the end line"):
        manifest_mod._read(data + data[-200:], "m")


@pytest.mark.parametrize("aside", [False, True])
def test_lines_json_reads_between_the_c_readers_and_a_cut_last_line(monkeypatch, aside):
    """The C reader takes runs of the writer's lines and stops at any other
    spelling: json reads that line and the C reader goes on after it; the
    same entries come out as when json reads every line.  A partial
    manifest cut inside an object line keeps the lines before it.  The same
    with the hash made on another thread (``aside``: long manifests)."""
    if aside:
        monkeypatch.setattr(manifest_mod, "_HASH_ASIDE", 0)
    import io
    from efsfast.backupset.manifest import Header, ManifestWriter
    buf = io.BytesIO()
    w = ManifestWriter(buf, Header.new("/src", "posix"))
    rnd = random.Random(11)
    for i in range(40):
        e = next(_entries(rnd, [f"d/f{i}"]))
        w.add(e)
    w.finish()
    lines = buf.getvalue().splitlines(keepends=True)
    # every 7th object line respelled (spaces after the colons) as json still reads it
    lines[1:-1] = [ln.replace(b'":', b'": ') if k % 7 == 3 else ln for k, ln in enumerate(lines[1:-1])]
    body = b"".join(lines[:-1])
    end = json.loads(lines[-1])
    end["manifest_sha256"] = hashlib.sha256(body).hexdigest()
    data = body + _line(end)
    m = manifest_mod._read(data, "m")
    by_json = [Entry.from_json(json.loads(ln)) for ln in lines[1:-1]]
    assert m.entries == by_json and m.complete
    # cut short in the middle of the 30th object line, no end line
    cut = b"".join(lines[:30]) + lines[30][:25]
    p = manifest_mod._read(cut, "m", partial=True)
    assert p.entries == by_json[:29] and not p.complete
    assert p.sha256 == hashlib.sha256(b"".join(lines[:30])).hexdigest()
    with pytest.raises(manifest_mod.ManifestError, match="not a manifest line"):
        manifest_mod._read(cut, "m")
