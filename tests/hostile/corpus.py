"""The hostile corpus: every truncation, every header field at boundary and
absurd values, duplicated and reordered streams, oversized metadata and huge
declared lengths with tiny inputs.  ``cases()`` yields (name, bytes);
``python -m tests.hostile.corpus DIR`` writes them out (e.g. as fuzz seeds)."""
from __future__ import annotations

import pathlib
import struct
import sys
from typing import Iterator, List, Tuple

import efsfast

SAMPLE = pathlib.Path(__file__).resolve().parents[3] / "shared/spec/samples/petitpotam-v2-test-py.efsraw.bin"


def bases() -> List[Tuple[str, bytes]]:
    out = []
    if SAMPLE.is_file():
        out.append(("sample", SAMPLE.read_bytes()))
    out.append(("ads-drf", efsfast.synthetic_raw(600, named_streams={"z": 20}, recovery_agents=1,
                                                 seed=71)))
    out.append(("two-segments", efsfast.synthetic_raw(66_000, seed=72)))
    out.append(("directory", efsfast.synthetic_raw(directory=True, seed=73)))
    return out


def header_regions(data: bytes) -> List[Tuple[int, int]]:
    """(start, end) of every header in a canonical stream: everything but
    the ciphertext payloads, found with the parser's own events."""
    p = efsfast._codec.RawParser(events=True)
    p.feed(data)
    p.finish()
    regions, pos = [], 0
    for kind, *rest in p.events:
        if kind == "segment":
            seg = rest[0]
            start = seg["offset"] + seg["segment_length"] - seg["data_length"]
            regions.append((pos, start))
            pos = start + seg["data_length"]
    regions.append((pos, len(data)))   # the tail: last stream header(s), metadata
    return [(a, b) for a, b in regions if b > a]


def values(orig: int, bits: int, length: int, pos: int) -> set:
    """Boundary and absurd values: 0, 1, max, off by one, just past the end,
    the input's length, doubled; fewer for the narrow fields."""
    top = (1 << bits) - 1
    if bits == 8:
        vals = (0, 1, top, orig ^ 0x80)
    elif bits == 16:
        vals = (0, 1, top, orig + 1, orig - 1)
    else:
        vals = (0, 1, top, top >> 1, orig + 1, orig - 1, length - pos, length - pos + 1,
                length, orig * 2, orig + 512)
    return {v & top for v in vals} - {orig}


def field_mutations(name: str, data: bytes) -> Iterator[Tuple[str, bytes]]:
    for start, end in header_regions(data):
        for pos in range(start, end):
            for width, fmt in ((4, "<I"), (2, "<H"), (1, "<B")):
                if pos % width or pos + width > len(data):
                    continue
                orig = struct.unpack_from(fmt, data, pos)[0]
                for v in sorted(values(orig, 8 * width, len(data), pos)):
                    b = bytearray(data)
                    struct.pack_into(fmt, b, pos, v)
                    yield f"{name}/u{8 * width}@{pos}={v:#x}", bytes(b)


def structural(name: str, data: bytes) -> Iterator[Tuple[str, bytes]]:
    info = efsfast.inspect(data)
    meta_end = info.streams[0].offset if info.streams else len(data)
    streams = [(s.offset, (info.streams[i + 1].offset if i + 1 < len(info.streams) else len(data)))
               for i, s in enumerate(info.streams)]
    yield f"{name}/duplicate-metadata", data + data[20:meta_end]
    yield f"{name}/metadata-twice-up-front", data[:meta_end] + data[20:]
    for i, (a, b) in enumerate(streams):
        yield f"{name}/duplicate-stream{i}", data + data[a:b]
        yield f"{name}/stream{i}-before-metadata", data[:20] + data[a:b] + data[20:a] + data[b:]
    if len(streams) >= 2:
        (a1, b1), (a2, b2) = streams[0], streams[1]
        yield f"{name}/streams-reordered", data[:a1] + data[a2:b2] + data[a1:b1] + data[b2:]
    yield f"{name}/trailing-byte", data + b"\0"
    yield f"{name}/trailing-header", data + data[20:50]
    yield f"{name}/no-metadata", data[:20] + data[meta_end:]


def truncations(name: str, data: bytes) -> Iterator[Tuple[str, bytes]]:
    step = 1 if len(data) < 5000 else 7
    for cut in range(0, len(data), step):
        yield f"{name}/cut@{cut}", data[:cut]


def oversized() -> Iterator[Tuple[str, bytes]]:
    base = efsfast.synthetic_raw(12, seed=74)
    hdr = base[:50]
    for n in (262144 - 16, 262144, 262144 + 1, 300_000):
        meta = struct.pack("<I", n) + b"\0" * (n - 4)
        seg = struct.pack("<I", 16 + n) + base[54:66] + meta
        yield f"metadata-{n}", hdr + seg
    # huge declared lengths with tiny inputs
    yield "huge-segment", hdr + struct.pack("<I", 0xFFFFFFF0) + base[54:66] + b"\0" * 8
    yield "huge-name", base[:20] + struct.pack("<I", 0xFFFFFFFF) + base[24:44] + \
        struct.pack("<I", 0xFFFFFFF0) + b"\x10\x19"
    big_enc = bytearray(efsfast.synthetic_raw(12, seed=75))
    off = len(big_enc) - 512 - 496 - 16       # the data segment
    struct.pack_into("<I", big_enc, off, 0x7FFFFFFF)
    yield "huge-data-segment", bytes(big_enc)
    yield "empty", b""
    yield "magic-only", base[:12]


def cases() -> Iterator[Tuple[str, bytes]]:
    for name, data in bases():
        yield from truncations(name, data)
        yield from field_mutations(name, data)
        yield from structural(name, data)
    yield from oversized()


if __name__ == "__main__":
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for i, (name, data) in enumerate(cases()):
        (out / f"{i:06d}").write_bytes(data)
        n += 1
    print(f"{n} cases written to {out}")
