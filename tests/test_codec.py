"""The raw-format codec: the Windows sample, the writer, rules R1-R20."""
import struct

import pytest

import efsfast
from efsfast import RawFormatError, _codec


def put(data, off, fmt, value):
    b = bytearray(data)
    struct.pack_into(fmt, b, off, value)
    return bytes(b)


def events(data, mode="strict"):
    p = _codec.RawParser(mode, events=True)
    p.feed(data)
    p.finish()
    return p.events


# ---- the real Windows sample ----

def test_sample_verifies_strict(sample):
    info = efsfast.verify(sample)
    assert info.raw_size == 1804


def test_sample_inspect(sample):
    info = efsfast.inspect(sample)
    m = info.metadata
    assert m.version == 2 and m.layout == 1 and m.supported
    assert m.drf == []
    assert len(m.ddf) == 1
    e = m.ddf[0]
    assert e.sid == "S-1-5-21-1515790883-1823135007-2951370858-1106"
    assert e.thumbprint == "dfb5131bd74bc8b70a9355355e9b405206916666"
    assert e.container == "40385ca2-8f81-4f7b-9ef0-0997e5805e55"
    assert e.provider == "Microsoft Enhanced Cryptographic Provider v1.0"
    assert e.display_name == "xiaoli(xiaoli@XIAOLI)"
    assert e.encrypted_fek_length == 256
    assert [(s.name, s.size, s.encrypted, s.ciphertext_size) for s in info.streams] == [
        ("::$DATA", 12, True, 512)]


def test_sample_events(sample):
    ev = events(sample)
    assert [e[0] for e in ev] == ["stream", "metadata", "end", "stream", "segment", "data", "end"]
    seg = ev[4][1]
    assert seg["header_length"] == 0x1F0 and seg["bytes_within_stream_size"] == 12
    assert seg["data_unit_shift"] == 9 and seg["cluster_shift"] == 12 and seg["has_extd"]
    assert ev[5][1] == sample[1292:1804]


def test_sample_rebuilds_identically(sample):
    rebuilt = efsfast.build_raw(sample[66:738],
                                [efsfast.DataStream("::$DATA", 12, sample[1292:1804])])
    assert rebuilt == sample


def test_sample_metadata_rebuilds_from_decoded_fields(sample):
    meta = sample[66:738]
    e = efsfast.decode_metadata(meta).ddf[0]
    user = efsfast.User(e.sid, e.display_name, bytes.fromhex(e.thumbprint), e.container,
                        e.provider, encrypted_fek=meta[416:672])
    assert efsfast.metadata_from_users([user], version=2, efs_id=meta[16:32]) == meta


def test_sample_from_path_and_file(sample, tmp_path):
    p = tmp_path / "s.efsraw"
    p.write_bytes(sample)
    assert efsfast.verify(p).raw_size == 1804
    assert efsfast.verify(str(p)).raw_size == 1804
    with open(p, "rb") as f:
        assert efsfast.inspect(f).streams[0].size == 12


def test_error_carries_filename(tmp_path):
    p = tmp_path / "bad.efsraw"
    p.write_bytes(b"\0" * 30)
    with pytest.raises(RawFormatError) as ei:
        efsfast.verify(p)
    assert ei.value.filename == str(p)


# ---- the writer ----

@pytest.mark.parametrize("size", [0, 1, 511, 512, 513, 65536, 65537, 200_000, 300_000])
def test_writer_layout(size):
    raw = efsfast.synthetic_raw(size, named_streams={"alt": 700}, recovery_agents=2, seed=size)
    info = efsfast.inspect(raw)
    assert [(s.name, s.size) for s in info.streams] == [("::$DATA", size), (":alt:$DATA", 700)]
    assert len(info.metadata.ddf) == 1 and len(info.metadata.drf) == 2
    segs = [e[1] for e in events(raw) if e[0] == "segment"]
    main = [s for s in segs if s["offset"] < info.streams[1].offset]
    r = (size + 511) & ~511
    assert sum(s["data_length"] for s in main) == r
    assert all(s["data_length"] == 65536 for s in main[:-1])
    for s in segs:
        assert s["segment_length"] == 512 + s["data_length"] <= 0x10200
        assert s["data_unit_shift"] == s["chunk_shift"] == max(9, (s["data_length"] - 1).bit_length())


def test_writer_directory_and_plain_stream():
    meta = efsfast.synthetic_metadata(seed=1)
    assert efsfast.inspect(efsfast.build_raw(meta)).is_directory_like
    raw = efsfast.build_raw(meta, [efsfast.DataStream("::$DATA", 70000, b"x" * 70000, False)])
    s = efsfast.inspect(raw).streams[0]
    assert (s.size, s.encrypted) == (70000, False)


def test_writer_rejects_bad_input():
    meta = efsfast.synthetic_metadata(seed=1)
    with pytest.raises(ValueError):
        efsfast.build_raw(meta, [efsfast.DataStream("::$DATA", 12, b"x" * 12)])
    with pytest.raises(efsfast.EfsError):
        efsfast.build_raw(meta, [efsfast.DataStream("nocolon", 12, b"x" * 512)])
    with pytest.raises(efsfast.EfsError):
        efsfast.build_raw(meta, [efsfast.DataStream("::$DATA", 1, b"x" * 512)], cluster_shift=30)
    with pytest.raises(ValueError):
        efsfast.metadata_from_users([])


def test_metadata_versions_and_sids():
    for v in (1, 2, 3):
        assert efsfast.decode_metadata(efsfast.synthetic_metadata(seed=v, version=v)).version == v
    sid = "S-1-5-21-1-2-3-500"
    assert efsfast.sid_to_str(efsfast.sid_from_str(sid)) == sid
    with pytest.raises(ValueError):
        efsfast.sid_from_str("X-1-2")


# ---- rules: each case breaks exactly one rule ----

def sparse(sample, **fields):
    """The sample's data segment marked sparse (EXTD flag 1)."""
    d = put(sample, 836, "<I", 1)
    for off, fmt, v in fields.values():
        d = put(d, off, fmt, v)
    return d


def two_blocks(sample):
    """N = 2 (blocks 512 and 0) with the EXTD header moved behind them."""
    d = bytearray(put(sample, 822, "<H", 2))
    d[828:848] = struct.pack("<I", 0) + sample[828:844]
    return bytes(d)


RULE_CASES = {
    "R1-magic": (lambda s: put(s, 4, "<B", 0x51), "R1", 4),
    "R1-short": (lambda s: s[:10], "R1", 0),
    "R2-reserved": (lambda s: put(s, 15, "<B", 1), "R2", 12),
    "R3-name": (lambda s: put(s, 48, "<H", 0x1019), "R3", 48),
    "R3-namelen": (lambda s: put(put(s, 44, "<I", 4), 20, "<I", 32), "R3", 44),
    "R3-empty": (lambda s: s[:20], "R3", 20),
    "R4-hdrlen": (lambda s: put(s, 738, "<I", 0x2B), "R4", 738),
    "R4-truncated": (lambda s: s[:760], "R4", 738),
    "R5-flag": (lambda s: put(s, 750, "<I", 2), "R5", 750),
    "R5-meta-flag": (lambda s: put(s, 32, "<I", 1), "R5", 32),
    "R5-reserved": (lambda s: put(s, 754, "<I", 9), "R5", 754),
    "R6-name": (lambda s: put(s, 778, "<H", ord("X")), "R6", 766),
    "R6-odd": (lambda s: put(put(s, 762, "<I", 13), 738, "<I", 41), "R6", 762),
    "R7-dup-data": (lambda s: s + s[738:], "R7", 1804),
    "R7-dup-meta": (lambda s: s + s[20:738], "R7", 1804),
    "R8-len": (lambda s: put(s, 780, "<I", 8), "R8", 780),
    "R8-reserved": (lambda s: put(s, 792, "<I", 1), "R8", 792),
    "R8-truncated": (lambda s: s[:1800], "R8", 780),
    "R9-garbage": (lambda s: s + b"\x01" * 12, "R9", 1804),
    "R9-short-tail": (lambda s: s + b"GU", "R9", 1804),
    "R10-len": (lambda s: put(s, 66, "<I", 0x2A4), "R10", 66),
    "R10-no-segment": (lambda s: s[:50] + s[738:], "R10", 50),
    "R11-version": (lambda s: put(s, 74, "<I", 7), "R11", 74),
    "R11-v2-unsupported": (lambda s: put(s, 74, "<I", 4), "R11", 74),
    "R12-ddf": (lambda s: put(s, 130, "<I", 0x10), "R12", 130),
    "R12-sid": (lambda s: put(s, 202, "<B", 2), "R12", 202),
    "R12-reserved": (lambda s: put(s, 70, "<I", 1), "R12", 70),
    "R12-pki-type": (lambda s: put(s, 182, "<I", 1), "R12", 182),
    "R13-enc-len": (lambda s: put(s, 804, "<I", 0x10), "R13", 804),
    "R14-compression": (lambda s: put(s, 816, "<H", 1), "R14", 816),
    "R14-chunk": (lambda s: put(s, 819, "<B", 10), "R14", 819),
    "R14-format": (lambda s: put(s, 821, "<B", 2), "R14", 821),
    "R15-extd": (lambda s: put(s, 836, "<I", 2), "R15", 836),
    "R15-padding": (lambda s: put(s, 900, "<B", 1), "R15", 900),
    "R16-blocks": (lambda s: two_blocks(s), "R16", 822),
    "R16-size": (lambda s: put(s, 824, "<I", 1024), "R16", 824),
    "R17-vdl": (lambda s: put(s, 812, "<I", 13), "R17", 812),
    "R17-bwss": (lambda s: put(put(s, 808, "<I", 0), 812, "<I", 0), "R17", 808),
    "R18-offset": (lambda s: put(s, 796, "<Q", 512), "R18", 796),
    "R19-sum": (lambda s: sparse(s, a=(824, "<I", 256)), "R19", 824),
    "R19-align": (lambda s: sparse(s, a=(796, "<Q", 256)), "R19", 796),
    "R20-overflow": (lambda s: sparse(s, a=(796, "<Q", 1 << 63)), "R20", 796),
}


@pytest.mark.parametrize("case", sorted(RULE_CASES))
def test_rule(sample, case):
    mutate, rule, offset = RULE_CASES[case]
    bad = mutate(sample)
    with pytest.raises(RawFormatError) as ei:
        efsfast.verify(bad)
    assert (ei.value.rule, ei.value.offset) == (rule, offset), ei.value
    assert isinstance(ei.value, ValueError) and isinstance(ei.value, efsfast.EfsError)
    assert ei.value.winerror == (50 if case == "R11-v2-unsupported" else 13)


def test_every_rule_has_a_case():
    assert {c[1] for c in RULE_CASES.values()} == {f"R{i}" for i in range(1, 21)}


@pytest.mark.parametrize("case", ["R2-reserved", "R5-meta-flag", "R5-reserved", "R8-reserved",
                                  "R12-reserved", "R15-padding", "R19-sum", "R19-align"])
def test_strict_only_rules_pass_in_compatible_mode(sample, case):
    efsfast.verify(RULE_CASES[case][0](sample), mode="compatible")


def test_compatible_mode_reports_v2_metadata_undecoded(sample):
    info = efsfast.inspect(put(sample, 74, "<I", 4), mode="compatible")
    assert (info.metadata.version, info.metadata.layout, info.metadata.supported) == (4, 2, False)


def test_metadata_too_large():
    meta = b"\0" * (262144 + 16)
    raw = efsfast.synthetic_raw(12, seed=1)
    start = 20 + 30
    body = raw[start:]
    big = raw[:start] + struct.pack("<I", 16 + len(meta)) + body[4:16] + meta
    with pytest.raises(RawFormatError) as ei:
        efsfast.verify(big)
    assert (ei.value.rule, ei.value.offset) == ("R10", 50)


def test_metadata_split_over_segments(sample):
    meta = sample[66:738]
    seg = lambda b: struct.pack("<I", 16 + len(b)) + sample[54:66] + b
    raw = sample[:50] + seg(meta[:100]) + seg(b"") + seg(meta[100:]) + sample[738:]
    assert efsfast.inspect(raw).metadata.ddf[0].display_name == "xiaoli(xiaoli@XIAOLI)"
    # an error inside the second piece is reported at its absolute offset
    bad = bytearray(raw)
    bad[50 + 16 + 100 + 16 + 16 + (136 - 100)] = 2        # SID revision
    with pytest.raises(RawFormatError) as ei:
        efsfast.verify(bytes(bad))
    assert (ei.value.rule, ei.value.offset) == ("R12", 50 + 16 + 100 + 16 + 16 + 36)


def test_name_with_terminator_accepted(sample):
    name = "::$DATA\0".encode("utf-16-le")
    hdr = put(put(sample[738:766], 0, "<I", 28 + len(name)), 24, "<I", len(name))
    raw = sample[:738] + hdr + name + sample[780:]
    assert efsfast.inspect(raw).streams[0].name == "::$DATA"


# ---- truncation ----

def test_every_truncation_rejected_except_stream_boundaries(sample):
    accepted = []
    for cut in range(len(sample)):
        try:
            efsfast.verify(sample[:cut])
        except RawFormatError as exc:
            assert exc.offset <= cut
        else:
            accepted.append(cut)
    assert accepted == [738, 780]
    assert efsfast.inspect(sample[:738]).is_directory_like
    assert efsfast.inspect(sample[:780]).streams[0].size == 0


def test_many_streams_and_late_duplicate():
    """30,000 named streams (the duplicate check is a hash index, not a
    quadratic scan) and a duplicate of the sixth one at the very end."""
    meta = efsfast.synthetic_metadata(seed=1)
    raw = efsfast.build_raw(meta, [efsfast.DataStream(f":s{i}:$DATA", 0, b"")
                                   for i in range(30000)])
    assert len(efsfast.inspect(raw).streams) == 30000
    name = ":s5:$DATA".encode("utf-16-le")
    at = raw.index(name) - 28
    with pytest.raises(RawFormatError) as ei:
        efsfast.verify(raw + raw[at:at + 28 + len(name)])
    assert (ei.value.rule, ei.value.offset) == ("R7", len(raw))
