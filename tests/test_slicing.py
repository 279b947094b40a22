"""The streaming parser gives the same events and verdict however the input
is sliced (the import callback may hand it anything from 1 byte up)."""
import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import efsfast
from efsfast import RawFormatError, _codec

from conftest import SAMPLE

SYNTHETIC = [
    efsfast.synthetic_raw(12, seed=1),
    efsfast.synthetic_raw(140_000, named_streams={"alt": 3000}, recovery_agents=1, seed=2),
    efsfast.synthetic_raw(0, directory=True, seed=3),
]
# The Windows sample joins the corpus where ../shared is present.
CORPUS = SYNTHETIC + ([SAMPLE.read_bytes()] if SAMPLE.is_file() else [])


def run(data, cuts, mode="strict"):
    """Feed ``data`` cut at ``cuts``; return (events, verdict)."""
    p = _codec.RawParser(mode, events=True)
    bounds = [0] + sorted(set(c for c in cuts if 0 < c < len(data))) + [len(data)]
    try:
        for a, b in zip(bounds, bounds[1:]):
            p.feed(data[a:b])
        p.finish()
    except RawFormatError as exc:
        return p.events, (exc.rule, exc.offset, exc.code)
    return p.events, None


def inputs():
    base = st.sampled_from(CORPUS)

    def mutate(draw_data):
        data, muts = draw_data
        b = bytearray(data)
        for pos, val in muts:
            b[pos % len(b)] = val
        return bytes(b)
    mutations = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=3)
    return st.tuples(base, mutations).map(mutate)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=inputs(), cuts=st.lists(st.integers(0, 200_000), max_size=40))
def test_slicing_does_not_change_events_or_verdict(data, cuts):
    whole = run(data, [])
    assert run(data, cuts) == whole


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), which=st.integers(0, len(CORPUS) - 1))
def test_one_byte_at_a_time(seed, which):
    data = CORPUS[which]
    rng = random.Random(seed)
    b = bytearray(data)
    if seed % 2:
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    data = bytes(b)
    assert run(data, range(len(data))) == run(data, [])


def test_data_payload_is_passed_through_exactly():
    data = SYNTHETIC[1]
    ev, verdict = run(data, range(0, len(data), 997))
    assert verdict is None
    payload = b"".join(e[1] for e in ev if e[0] == "data")
    info = efsfast.inspect(data)
    assert len(payload) == sum(s.ciphertext_size for s in info.streams)


def test_fuzz_pass_never_crashes():
    """A mutation fuzzing pass over the sample and synthetic streams: every
    input ends in success or RawFormatError, never in anything else."""
    rng = random.Random(20261124)
    corpus = CORPUS
    cases = 0
    for _ in range(4000):
        b = bytearray(rng.choice(corpus))
        for _ in range(rng.randrange(1, 6)):
            op = rng.randrange(4)
            i = rng.randrange(len(b))
            if op == 0:
                b[i] = rng.randrange(256)
            elif op == 1:
                b[i:i + 4] = rng.randrange(1 << 32).to_bytes(4, "little")
            elif op == 2:
                del b[i:i + rng.randrange(1, 64)]
            else:
                b[i:i] = rng.randbytes(rng.randrange(1, 64))
        try:
            efsfast.verify(bytes(b), mode=rng.choice(["strict", "compatible"]))
        except RawFormatError as exc:
            assert exc.rule.startswith("R") and 0 <= exc.offset <= len(b)
        cases += 1
    assert cases == 4000
