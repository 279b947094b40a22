"""Sizes as options take them (sizes.parse_size), and raw streams written
segment by segment (raw.write_raw, raw.write_synthetic_raw): the same bytes
as the in-memory builder, any size in constant memory, and the first error
of a write or a fill raised as it was."""
import io
import random
import tracemalloc

import pytest

import efsfast
from efsfast import _codec, raw
from efsfast.sizes import parse_size


@pytest.mark.parametrize("text,value", [
    ("0", 0), ("4096", 4096), ("16K", 16384), ("16k", 16384), ("16KiB", 16384),
    ("16kib", 16384), ("16KB", 16000), ("512M", 512 << 20), ("1G", 1 << 30),
    ("1GiB", 1 << 30), ("1GB", 10 ** 9), ("2T", 2 << 40), ("1E", 1 << 60), (" 7 ", 7)])
def test_sizes(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text,why", [
    ("-5", "cannot be negative"), ("abc", "expected a size"), ("1.5G", "expected a size"),
    ("", "expected a size"), ("1 G", "expected a size"), ("1X", "expected a size"),
    ("1iB", "expected a size"), ("0x10", "expected a size")])
def test_not_sizes(text, why):
    with pytest.raises(ValueError, match=why):
        parse_size(text)


def test_size_bounds():
    assert parse_size("1K", minimum=1024, maximum=1024) == 1024
    with pytest.raises(ValueError, match="at least 1 bytes"):
        parse_size("0", minimum=1)
    with pytest.raises(ValueError, match="at most 1024 bytes"):
        parse_size("1025", maximum=1024)


def old_synthetic_raw(size, named_streams=None, directory=False, users=1, recovery_agents=0,
                      seed=None):
    """synthetic_raw as it was, in memory, before it was streamed."""
    rng = random.Random(seed)
    meta = raw.synthetic_metadata(users, recovery_agents, seed=rng.randrange(1 << 32))
    streams = []
    if not directory:
        streams.append(raw.DataStream(raw.UNNAMED_STREAM, size,
                                      rng.randbytes((size + 511) & ~511)))
    for name, n in (named_streams or {}).items():
        streams.append(raw.DataStream(f":{name}:$DATA", n, rng.randbytes((n + 511) & ~511)))
    return raw.build_raw(meta, streams)


@pytest.mark.parametrize("size", [0, 1, 511, 512, 65536, 65537, 300_000])
def test_streamed_synthetic_is_the_same_bytes(size):
    named = {"a": 70_000, "b": 0}
    expect = old_synthetic_raw(size, named, users=2, recovery_agents=1, seed=7)
    out = io.BytesIO()
    n = raw.write_synthetic_raw(out, size, named_streams=named, users=2, recovery_agents=1,
                                seed=7)
    assert out.getvalue() == expect and n == len(expect)
    assert raw.synthetic_raw(size, named_streams=named, users=2, recovery_agents=1,
                             seed=7) == expect
    assert raw.synthetic_raw(directory=True, seed=3) == old_synthetic_raw(0, directory=True,
                                                                         seed=3)


class Parsing:
    """A sink that validates what it is given and keeps only a count."""

    def __init__(self):
        self.parser, self.n, self.largest = _codec.RawParser(), 0, 0

    def write(self, data):
        self.parser.feed(data)
        self.n += len(data)
        self.largest = max(self.largest, len(data))
        return len(data)


def test_any_size_in_constant_memory():
    """256 MiB (once an OverflowError in randbytes) is written and valid, one
    segment at a time; 32 MiB is written with under 1 MiB allocated at a time."""
    sink = Parsing()
    n = raw.write_synthetic_raw(sink, 256 << 20, seed=1)
    sink.parser.finish()
    assert n == sink.n and sink.n > 256 << 20 and sink.largest <= 65536 + 512
    tracemalloc.start()
    try:
        raw.write_synthetic_raw(lambda b: None, 32 << 20, seed=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_write_raw_matches_build_raw_and_takes_short_writes():
    meta = raw.synthetic_metadata(seed=5)
    streams = [raw.DataStream(raw.UNNAMED_STREAM, 70_000, random.randbytes(70_144)),
               raw.DataStream(":x:$DATA", 3, b"abc", encrypted=False)]
    expect = raw.build_raw(meta, streams)
    got = bytearray()

    def short_write(data):          # takes at most 1000 bytes a call, as a raw file may
        got.extend(data[:1000])
        return min(len(data), 1000)
    assert raw.write_raw(short_write, meta, streams) == len(expect)
    assert bytes(got) == expect
    filled = [raw.FilledStream(raw.UNNAMED_STREAM, 70_000,
                               lambda off, n: streams[0].ciphertext[off:off + n]),
              raw.FilledStream(":x:$DATA", 3, lambda off, n: b"abc", encrypted=False)]
    out = io.BytesIO()
    raw.write_raw(out, meta, filled)
    assert out.getvalue() == expect


def test_first_error_of_write_or_fill_is_raised():
    meta = raw.synthetic_metadata(seed=5)

    class Full(Exception):
        pass
    calls = []

    def write(data):
        calls.append(len(data))
        if len(calls) == 3:
            raise Full("disk full")
    with pytest.raises(Full, match="disk full"):
        raw.write_synthetic_raw(write, 1 << 20, seed=1)
    assert len(calls) == 3              # nothing written after the error

    def wrong_length(off, n):
        return b"x" * (n - 1)
    with pytest.raises(ValueError, match=r"'::\$DATA': 511 bytes of ciphertext given at "
                                         r"offset 0, 512 expected"):
        raw.write_raw(io.BytesIO(), meta, [raw.FilledStream(raw.UNNAMED_STREAM, 5,
                                                            wrong_length)])

    def interrupted(off, n):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        raw.write_raw(io.BytesIO(), meta, [raw.FilledStream(raw.UNNAMED_STREAM, 5,
                                                            interrupted)])
    with pytest.raises(efsfast.EfsError, match="cannot lay out"):
        raw.write_raw(io.BytesIO(), meta, [raw.FilledStream("bad name", 5, wrong_length)])
    with pytest.raises(ValueError, match="negative size"):
        raw.write_raw(io.BytesIO(), meta, [raw.FilledStream(raw.UNNAMED_STREAM, -1,
                                                            wrong_length)])


def test_bench_options_all_have_help_and_checked_numbers():
    from efsfast.bench import run as bench_run
    p = bench_run.build_parser()
    assert [a.option_strings for a in p._actions if not a.help] == []
    for bad in ("0", "x"):
        with pytest.raises(SystemExit) as info:
            p.parse_args(["--repeat", bad])
        assert info.value.code == 2
