"""Manifest lines made without the json module (the bulk of a backup's
lines) are byte for byte the json module's; lines of other shapes are left
to it."""
import itertools
import os
import json
import random

from efsfast.backupset.manifest import Entry, Kind, _line, _object_line

PATHS = ["f", "a/b c/ü €.bin", 'q"uote\\back', "tab\there\nnl\x01\x7f",
         "日本/語", "a" * 300, "\U0001f600/emoji"]


def _posix_meta(rnd):
    return {"source": "posix", "mode": rnd.choice([0, 0o644, 0o7777]),
            "atime_ns": rnd.choice([0, -1, 1_700_000_000_123_456_789, 2 ** 70]),
            "mtime_ns": rnd.choice([5, -1_500_000_001]), "ctime_ns": 1}


def test_fast_lines_are_the_json_modules():
    rnd = random.Random(7)
    made = 0
    for path, kind in itertools.product(PATHS, Kind):
        for _ in range(20):
            e = Entry(path=path, kind=kind, raw_size=rnd.choice([0, 17, 2 ** 40]),
                      sha256=rnd.choice(["ab" * 32, "x"]), source_size=rnd.choice([0, 9]),
                      efs_sha256="cd" * 32,
                      meta=rnd.choice([{}, _posix_meta(rnd)]))
            fast = _object_line(e)
            assert fast == _line(e.to_json()), e
            assert json.loads(fast) == e.to_json()
            made += 1
    assert made == len(PATHS) * len(Kind) * 20


def test_other_shapes_are_left_to_the_json_module():
    base = dict(path="p", kind=Kind.FILE, raw_size=1, sha256="s", source_size=1,
                efs_sha256="e", meta={"source": "posix", "mode": 1, "atime_ns": 1,
                                      "mtime_ns": 1, "ctime_ns": 1})
    assert _object_line(Entry(**base)) is not None
    for change in [{"ref": "set"}, {"failed": "why"}, {"raw_size": None}, {"sha256": None},
                   {"efs_sha256": None}, {"source_size": True}, {"raw_size": 1.0},
                   {"meta": {"source": "ntfs-3g", "times": {}, "attributes": 32}},
                   {"meta": dict(base["meta"], mode=True)},
                   {"meta": dict(base["meta"], extra=1)}]:
        assert _object_line(Entry(**dict(base, **change))) is None, change


def test_lines_read_as_json_loads_reads_them():
    """The scan that reads a line as the writer ends it gives what
    json.loads gives, and leaves anything else (errors too) to it."""
    from efsfast.backupset.manifest import _parse
    for text in ['{"a":1}\n', ' {"a":1}\n', '{"a":1} \n', '{"a":1}', '{"a":1}\r\n', '[1,2]\n',
                 '"s"\n', '{"a":NaN}\n']:
        assert _parse(text) == json.loads(text), text
    for bad in ['', '\n', '{"a":1}{"b":2}\n', '{"a":1},\n', '{"a":\n', 'x\n', '{"a":1}\nx\n']:
        try:
            json.loads(bad)
        except ValueError as exc:
            want = str(exc)
        else:
            raise AssertionError(bad)
        try:
            _parse(bad)
        except ValueError as exc:
            assert str(exc) == want, bad
        else:
            raise AssertionError(f"{bad!r} was read")


def test_a_short_write_of_a_line_is_continued(tmp_path, monkeypatch):
    """The partial manifest's file writes each line whole: a write the OS
    cuts short is continued where it stopped."""
    from efsfast.backupset import sinks
    real = os.write
    calls = []

    def short(fd, data):
        calls.append(len(data))
        return real(fd, bytes(data)[:3])        # at most 3 bytes a call
    fd = os.open(tmp_path / "m", os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0))
    try:
        monkeypatch.setattr(sinks.os, "write", short)
        assert sinks._LineFile(fd).write(b"0123456789\n") == 11
        assert sinks._LineFile(fd).write(b"ab\n") == 3
    finally:
        monkeypatch.undo()
        os.close(fd)
    assert (tmp_path / "m").read_bytes() == b"0123456789\nab\n"
    assert calls == [11, 8, 5, 2, 3]
