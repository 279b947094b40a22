"""A long manifest's object lines read on several threads (_core.cut_run,
RunPieces): the table ends exactly as ObjectTable.read_run leaves it, rows,
paths, the offset it stops at and the lines taken, wherever a line in
another spelling or a last line cut short falls against the pieces; and
read_manifest gives the same manifest either way."""
import io
import random
import threading

import pytest
from hypothesis import given, settings, strategies as st

from efsfast import _core
from efsfast.backupset import manifest as manifest_mod
from efsfast.backupset.manifest import Entry, Header, Kind, ManifestWriter, _line, read_manifest


def _object_line(rnd, i):
    meta = rnd.choice([{}, {"source": "posix", "mode": rnd.choice([0, 0o644]),
                            "atime_ns": rnd.randrange(1 << 62), "mtime_ns": 5, "ctime_ns": 6}])
    name = rnd.choice(["d/f", "\u00fc \u20ac/x", "q\"uote\\", "a" * rnd.randrange(1, 300)])
    return _line(Entry(f"{name}{i}", rnd.choice([Kind.FILE, Kind.DIRECTORY]),
                       rnd.randrange(1 << 63), rnd.randbytes(32).hex(), rnd.randrange(1 << 40),
                       rnd.randbytes(32).hex(), meta).to_json())


def _rows(table):
    return table.entries(lambda *fields: fields, "file", "directory")


def _in_pieces(data, pos, pieces, threads=2):
    table = _core.ObjectTable()
    run = _core.cut_run(data, pos, pieces)
    workers = [threading.Thread(target=run.work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return table, run.add_to(table)


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2 ** 32), lines=st.integers(0, 60), pieces=st.integers(1, 9),
       other=st.one_of(st.none(), st.integers(0, 60)), cut=st.booleans(),
       start=st.integers(0, 3))
def test_pieces_read_what_read_run_reads(seed, lines, pieces, other, cut, start):
    rnd = random.Random(seed)
    out = [_object_line(rnd, i) for i in range(lines)]
    if other is not None:   # a line json must read: the run stops there
        out.insert(min(other, len(out)), b'{"type": "object"}\n')
    data = b"".join(out)
    if cut and data:        # a last line cut short (a killed backup)
        data = data[:-rnd.randrange(1, 20)]
    pos = sum(map(len, out[:start])) if start <= len(out) else 0
    pos = min(pos, len(data))
    serial = _core.ObjectTable()
    want = serial.read_run(data, pos)
    table, got = _in_pieces(data, pos, pieces)
    assert got == want
    assert len(table) == len(serial) == want[1]
    assert _rows(table) == _rows(serial)


def test_pieces_add_to_a_table_after_its_rows_and_once():
    rnd = random.Random(1)
    head = b"".join(_object_line(rnd, i) for i in range(5))
    tail = b"".join(_object_line(rnd, i) for i in range(5, 40))
    serial = _core.ObjectTable()
    assert serial.read_run(head + tail, 0) == (len(head + tail), 40)
    table = _core.ObjectTable()
    assert table.read_run(head, 0) == (len(head), 5)
    run = _core.cut_run(head + tail, len(head), 4)
    with pytest.raises(ValueError, match="work"):
        run.add_to(table)
    run.work()
    assert run.add_to(table) == (len(head + tail), 35)
    assert _rows(table) == _rows(serial)
    with pytest.raises(ValueError, match="already"):
        run.add_to(table)
    with pytest.raises(ValueError):
        _core.cut_run(head, len(head) + 1, 2)


@pytest.mark.parametrize("partial", [False, True])
def test_read_manifest_is_the_same_read_in_pieces(monkeypatch, partial):
    """A manifest with lines json reads among the writer's, read in pieces
    (on threads) and line by line: the same manifest, hash and counts."""
    buf = io.BytesIO()
    w = ManifestWriter(buf, Header.new("/src", "posix"))
    rnd = random.Random(9)
    for i in range(3000):
        e = Entry(f"d/f{i}", Kind.FILE, i, rnd.randbytes(32).hex(), i,
                  rnd.randbytes(32).hex(), {})
        if i % 700 == 3:
            e.failed = "it could not be read"   # (a line the C reader leaves to json)
        w.add(e)
    w.finish()
    data = buf.getvalue()
    if partial:             # killed: no end line, the last line cut short
        data = data[:data.rfind(b"\n", 0, len(data) - 1) - 30]
    runs = []
    real = _core.cut_run
    monkeypatch.setattr(manifest_mod, "cut_run", lambda *a: runs.append(a[2]) or real(*a))
    monkeypatch.setattr(manifest_mod, "_PIECES_FROM", 1 << 12)
    monkeypatch.setattr(manifest_mod, "_PIECE_BYTES", 1 << 12)
    monkeypatch.setattr(manifest_mod.os, "cpu_count", lambda: 4)
    in_pieces = read_manifest(io.BytesIO(data), partial=partial)
    assert len(runs) >= 4 and set(runs) == {4}
    monkeypatch.setattr(manifest_mod, "_PIECES_FROM", 1 << 60)
    by_lines = read_manifest(io.BytesIO(data), partial=partial)
    assert in_pieces == by_lines and in_pieces.complete is not partial
    assert len(in_pieces.entries) == (len(by_lines.entries))
    assert [e.path for e in in_pieces.entries][:3] == ["d/f0", "d/f1", "d/f2"]
