"""The tar stream's own headers (backupset/tarheader.py) read the same in
Python's tarfile, GNU tar and bsdtar: long and non-ASCII names (pax path
records), sizes at block boundaries, record lengths across a digit; and the
stream ``backup-tree -`` writes with them (every object exported in C,
tarbulk.py) restores and verifies, keeps its folders before their
contents, fails objects one by one, stops on Ctrl-C (SIGINT: test_backupset.py),
reports progress, streams objects over the memory limit, and is left
truncated where the stream breaks (POSIX system side on tmpfs with user
xattrs)."""
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest

import efsfast
from efsfast.backupset import (MANIFEST_NAME, TarSink, TruncatedStreamError, backup_set,
                               read_manifest, restore_stream, verify_stream)
from efsfast.backupset import tarbulk, tarsink
from efsfast.backupset.tarheader import (BLOCK, MAX_SIZE, RECORD, HeaderMaker, end_of_archive,
                                         padding, pax_record)

from test_backupset import efs, raw_streams

needs_tools = pytest.mark.skipif(shutil.which("tar") is None or shutil.which("bsdtar") is None,
                                 reason="GNU tar and bsdtar (libarchive-tools) are needed")

MTIME = 1_700_000_123
# names for each case of the name field: short, exactly 100 bytes, one over,
# non-ASCII (short and long), deep
NAMES = ["a.efsraw", "n" * 93 + ".efsraw", "o" * 94 + ".efsraw", "Ünïcødé/naïve.efsraw",
         "深い/" + "é" * 70 + "/" + "ß" * 30 + ".efsraw",
         "/".join(f"level{i:02d}" for i in range(20)) + "/x.efsraw"]
SIZES = [0, 1, 511, 512, 513, 1025]


def archive(items):
    """A whole stream of (name, data, comment) written with HeaderMaker."""
    h = HeaderMaker(MTIME)
    out = bytearray()
    for name, data, comment in items:
        out += h.member(name, len(data), comment) + data + padding(len(data))
    return bytes(out + end_of_archive(len(out)))


def cases():
    return [(name, bytes([65 + i % 26]) * size, (json.dumps({"n": i, "path": name},
                                                           ensure_ascii=False).encode()
                                                if i % 2 else None))
            for i, (name, size) in enumerate((n, s) for n in NAMES for s in SIZES)]


def test_python_tarfile_reads_every_header_as_written():
    items = cases()
    data = archive(items)
    assert len(data) % RECORD == 0
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        got = [(m, t.extractfile(m).read()) for m in t]
    assert [m.name for m, _ in got] == [name for name, _, _ in items]
    for (m, body), (name, data_, comment) in zip(got, items):
        assert (m.size, body, m.mtime, m.mode, m.uid, m.gid, m.isreg()) == \
            (len(data_), data_, MTIME, 0o644, 0, 0, True)
        assert m.pax_headers.get("comment") == (comment.decode() if comment else None)
        # the path record where the 100-byte ASCII name field cannot hold it
        needs_path = len(name.encode()) > 100 or not name.isascii()
        assert ("path" in m.pax_headers) == needs_path


def test_pax_records_with_lengths_across_a_digit_read_back():
    # records of 8 to 12 and 98 to 102 bytes: the length's own digits change
    for n in list(range(0, 8)) + list(range(84, 96)) + list(range(990, 1000)):
        value = b"v" * n
        rec = pax_record(b"comment", value)
        assert int(rec.split(b" ", 1)[0]) == len(rec)
        data = archive([("f.efsraw", b"x", value)])
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            assert t.next().pax_headers["comment"] == value.decode()


def test_a_size_beyond_the_octal_field_goes_in_a_pax_record():
    size = MAX_SIZE + 1             # 8 GiB: the header alone, read as a stream
    head = HeaderMaker(MTIME).member("big.efsraw", size, b"{}")
    with tarfile.open(fileobj=io.BytesIO(head + bytes(BLOCK)), mode="r|") as t:
        m = t.next()
        assert (m.name, m.size) == ("big.efsraw", size)


@needs_tools
@pytest.mark.parametrize("tool", ["tar", "bsdtar"])
def test_gnu_tar_and_bsdtar_list_and_extract_what_tarfile_reads(tmp_path, tool):
    items = cases()
    data = archive(items)
    listing = subprocess.run([tool, "-tvf", "-"], input=data, capture_output=True, check=True)
    lines = listing.stdout.decode().splitlines()
    assert len(lines) == len(items), listing.stderr
    for line, (name, body, _) in zip(lines, items):
        fields = line.split()
        assert fields[0] == "-rw-r--r--" and line.endswith(" " + name), line
        assert str(len(body)) in fields[2:5], line       # (the size column, either tool)
    out = tmp_path / tool
    out.mkdir()
    subprocess.run([tool, "-xf", "-", "-C", str(out)], input=data, check=True)
    last = {name: body for name, body, _ in items}      # (a name again replaces the file)
    for name, body in last.items():
        p = out / name
        assert p.read_bytes() == body
        assert int(p.stat().st_mtime) == MTIME


# ---- the stream backup-tree writes ----

def odd_tree(root):
    """Encrypted files with data of 0, 511, 512 and 513 bytes, long and
    non-ASCII names, an encrypted folder holding files, a plain file."""
    root.mkdir(parents=True)

    def file(rel, size, seed):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        efsfast.restore(root / rel, efsfast.synthetic_raw(size, seed=seed))
    efsfast.restore(root / "Vault", efsfast.synthetic_raw(0, directory=True, seed=1),
                    directory=True)
    for n, size in enumerate((0, 511, 512, 513)):
        file(f"Vault/s{size}.bin", size, 10 + n)
    file("Ünïcødé/naïve " + "é" * 60 + ".bin", 700, 20)
    file("long/" + "x" * 120 + ".bin", 1, 21)
    file("深い/ファイル.bin", 512, 22)
    (root / "plain.txt").write_text("not encrypted")
    return sorted(raw_streams(root))


@pytest.fixture
def odd(xattr_dir):
    return xattr_dir / "src", odd_tree(xattr_dir / "src")


def object_names(data):
    return [m.name for m in tarfile.open(fileobj=io.BytesIO(data)) if m.name != MANIFEST_NAME]


@needs_tools
@pytest.mark.parametrize("workers", ["1", "2"])
def test_backup_tree_stream_restores_verifies_and_extracts_everywhere(odd, xattr_dir, workers):
    src, objects = odd
    data = efs("backup-tree", str(src), "-", "--workers", workers, "--quiet", check=True).stdout
    names = object_names(data)
    assert sorted(names) == sorted(o + ".efsraw" for o in objects)
    # the folder's member before what it holds
    assert names.index("Vault.efsraw") < min(names.index(f"Vault/s{s}.bin.efsraw")
                                            for s in (0, 511, 512, 513))
    # each member's comment is its manifest line, as the manifest lists it
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        got = {m.name: (m, t.extractfile(m).read()) for m in t}
    lines = got[MANIFEST_NAME][1].splitlines()
    by_path = {json.loads(x).get("path"): x for x in lines}
    for name in names:
        m, body = got[name]
        assert m.pax_headers["comment"].encode() == by_path[name[:-len(".efsraw")]]
        assert len(body) == json.loads(m.pax_headers["comment"])["raw_size"]
    p = efs("restore-tree", "-", str(xattr_dir / "r"), input=data)
    assert p.returncode == 0, p.stderr
    assert raw_streams(xattr_dir / "r") == raw_streams(src)
    assert efs("verify-set", "-", input=data).returncode == 0
    for tool in ("tar", "bsdtar"):      # extracted by either tool: a folder set that verifies
        out = xattr_dir / f"x-{tool}"
        out.mkdir()
        subprocess.run([tool, "-xf", "-", "-C", str(out)], input=data, check=True)
        v = efs("verify-set", str(out))
        assert v.returncode == 0, v.stderr
        listing = subprocess.run([tool, "-tvf", "-"], input=data, capture_output=True,
                                 check=True).stdout.decode()
        assert all(n in listing for n in names)


def test_objects_are_exported_in_c_and_written_by_the_calling_thread(odd, monkeypatch):
    src, objects = odd
    calls = []
    real = tarbulk.stream_bulk
    monkeypatch.setattr(tarbulk, "stream_bulk", lambda *a, **k: calls.append(1) or real(*a, **k))
    from efsfast.backupset import writer
    monkeypatch.setattr(writer, "stream_bulk", tarbulk.stream_bulk)
    seen = []
    buf = io.BytesIO()
    r = backup_set(src, TarSink(buf), workers=2, progress=lambda f, b, t: seen.append((f, b, t)))
    assert calls and r.bulk.ok and r.bulk.files == len(objects)
    assert seen[-1][0] == len(objects) == seen[-1][2] and seen[-1][1] == r.bulk.bytes
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))


def test_objects_over_the_memory_limit_are_streamed_by_the_writer(odd, xattr_dir):
    src, objects = odd
    buf = io.BytesIO()
    r = backup_set(src, TarSink(buf, memory_limit=600), workers=2)
    assert r.bulk.ok and r.bulk.files == len(objects)
    data = buf.getvalue()
    buf.seek(0)
    assert restore_stream(buf, xattr_dir / "r").bulk.ok
    assert raw_streams(xattr_dir / "r") == raw_streams(src)
    assert verify_stream(io.BytesIO(data)).ok


def test_workers_wait_while_the_writer_holds_the_memory_limit(odd, xattr_dir, monkeypatch):
    """A limit under every object's size: one held at a time, all written."""
    src, objects = odd
    buf = io.BytesIO()
    sink = TarSink(buf)
    sink.memory_limit = 1 << 30         # no object streamed twice ...
    real = efsfast._core.StreamExport

    def tight(jobs, backend, token, **kw):
        kw["held_limit"] = 1            # ... but workers wait after each one
        return real(jobs, backend, token, **kw)
    monkeypatch.setattr(efsfast._core, "StreamExport", tight)
    assert backup_set(src, sink, workers=2).bulk.ok
    buf.seek(0)
    assert restore_stream(buf, xattr_dir / "r").bulk.ok
    assert raw_streams(xattr_dir / "r") == raw_streams(src)


def test_an_object_that_fails_is_listed_failed_and_the_rest_are_written(odd, xattr_dir):
    src, objects = odd
    bad = src / "Vault" / "s511.bin"
    os.setxattr(bad, "user.ntfs.efsinfo", b"\x01\x02")     # a $EFS that does not parse
    buf = io.BytesIO()
    r = backup_set(src, TarSink(buf), workers=2)
    assert [os.path.relpath(f.dest, src) for f in r.bulk.failures] == ["Vault/s511.bin"]
    names = object_names(buf.getvalue())
    assert "Vault/s511.bin.efsraw" not in names and len(names) == len(objects) - 1
    buf.seek(0)
    m = read_manifest(tarfile.open(fileobj=buf).extractfile(MANIFEST_NAME))
    assert m.by_path()["Vault/s511.bin"].failed


def test_ctrl_c_leaves_a_stream_restores_refuse(odd, xattr_dir):
    src, objects = odd
    buf = io.BytesIO()
    token = efsfast.CancelToken()
    with pytest.raises(KeyboardInterrupt) as info:
        backup_set(src, TarSink(buf), workers=2, cancel=token,
                   progress=lambda f, b, t: f >= 2 and token.cancel())
    tree = getattr(info.value, "tree")
    assert not tree.complete and tree.bulk.files >= 2
    assert tree.directories == 1        # Vault, written first: counted in the account
    data = buf.getvalue()
    assert MANIFEST_NAME.encode() not in data and not data.endswith(bytes(2 * BLOCK))
    with pytest.raises(TruncatedStreamError, match="before its manifest"):
        restore_stream(io.BytesIO(data), xattr_dir / "r")


class FailingAfter(io.BytesIO):
    """A stream whose writes fail (ENOSPC) once ``limit`` bytes are in."""

    def __init__(self, limit):
        super().__init__()
        self.limit = limit

    def write(self, b):
        if self.tell() + len(memoryview(b)) > self.limit:
            raise OSError(28, "No space left on device")
        return super().write(b)


@pytest.mark.parametrize("memory_limit", [tarsink.STREAM_MEMORY_LIMIT, 600])
def test_a_write_that_fails_mid_stream_leaves_a_truncated_stream(odd, xattr_dir, memory_limit):
    src, objects = odd
    out = FailingAfter(4000)
    with pytest.raises(OSError, match="No space"):
        backup_set(src, TarSink(out, memory_limit=memory_limit), workers=2)
    data = out.getvalue()
    assert 0 < len(data) <= 4000 and MANIFEST_NAME.encode() not in data
    with pytest.raises(TruncatedStreamError):
        restore_stream(io.BytesIO(data), xattr_dir / "r")
    assert efs("verify-set", "-", input=data).returncode != 0


def test_a_closed_pipe_stops_the_backup_with_a_truncated_stream(xattr_dir):
    from test_backupset import big_tree
    src = xattr_dir / "src"
    big_tree(src)                       # more than a pipe holds
    p = subprocess.Popen([sys.executable, "-m", "efsfast", "backup-tree", str(src), "-",
                          "--workers", "2"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = p.stdout.read(6000)     # (past the first member's headers)
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait() != 0 and head, err
    with pytest.raises(TruncatedStreamError):
        restore_stream(io.BytesIO(head), xattr_dir / "r")



def test_short_writes_to_the_descriptor_are_continued(odd, xattr_dir, monkeypatch):
    """writev may write less than asked (a signal, a pipe): the rest follows."""
    src, objects = odd
    real = os.writev

    def short(fd, parts):
        data = b"".join(bytes(memoryview(p)) for p in parts)
        return real(fd, [data[:700]])
    monkeypatch.setattr(tarsink.os, "writev", short)
    path = xattr_dir / "set.tar"
    with open(path, "wb") as f:
        assert backup_set(src, TarSink(f), workers=2).bulk.ok
    monkeypatch.undo()
    with open(path, "rb") as f:
        assert restore_stream(f, xattr_dir / "r").bulk.ok
    assert raw_streams(xattr_dir / "r") == raw_streams(src)


@pytest.mark.parametrize("memory_limit", [tarsink.STREAM_MEMORY_LIMIT, 600])
def test_the_object_by_object_path_writes_the_same_stream(odd, xattr_dir, monkeypatch,
                                                          memory_limit):
    """Where the batch in C does not run (incremental sets, Windows), each
    worker exports its object and writes its line and member together."""
    from efsfast.backupset import writer

    class NotThisSink:
        pass
    monkeypatch.setattr(writer, "TarSink", NotThisSink)     # the C batch is not taken
    monkeypatch.setattr(writer, "stream_bulk", None)
    src, objects = odd
    buf = io.BytesIO()
    r = backup_set(src, TarSink(buf, memory_limit=memory_limit), workers=2)
    assert r.bulk.ok and r.bulk.files == len(objects)
    data = buf.getvalue()
    names = object_names(data)
    assert sorted(names) == sorted(o + ".efsraw" for o in objects)
    assert names.index("Vault.efsraw") < names.index("Vault/s0.bin.efsraw")
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        got = {m.name: m for m in t}
    lines = tarfile.open(fileobj=io.BytesIO(data)).extractfile(MANIFEST_NAME).read()
    for name in names:
        assert got[name].pax_headers["comment"].encode() + b"\n" in lines
    assert restore_stream(io.BytesIO(data), xattr_dir / "r").bulk.ok
    assert raw_streams(xattr_dir / "r") == raw_streams(src)
    assert verify_stream(io.BytesIO(data)).ok
