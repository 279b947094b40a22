"""efsfast's own SHA-256 (src/efsfast/_c/efs_sha256.c, the hash backup sets
record and restores check) against hashlib: every size around the block and
padding boundaries, arbitrary splits into update() calls, both
implementations forced (the portable one everywhere, SHA-NI where the CPU
has it)."""
import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from efsfast import _benchhooks, _testhooks

AUTO, PORTABLE, SHANI = 0, 1, 2
IMPLS = [pytest.param(PORTABLE, id="portable"),
         pytest.param(SHANI, id="sha-ni", marks=pytest.mark.skipif(
             not _testhooks._sha256_available(SHANI),
             reason="this CPU has no SHA extensions (SHA-NI); the portable code is tested"))]


def ours(data: bytes, impl: int, cuts=()) -> bytes:
    h = _testhooks._Sha256(impl)
    pos = 0
    for c in sorted(cuts):
        h.update(data[pos:c])
        pos = c
    h.update(data[pos:])
    return h.digest()


def test_fips_180_examples():
    """The examples of FIPS 180-4's companion document (one block, two
    blocks, a million 'a')."""
    for impl in (PORTABLE, AUTO):
        assert ours(b"abc", impl).hex() == \
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        assert ours(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", impl).hex() == \
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        assert ours(b"a" * 1_000_000, impl).hex() == \
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"


@pytest.mark.parametrize("impl", IMPLS)
def test_every_size_around_the_block_boundaries(impl):
    """0..300 bytes (every padding case: 55/56/63/64 mod 64 and past four
    blocks), then sizes around larger powers of two, at once and split."""
    rng = random.Random(1)
    data = bytes(rng.getrandbits(8) for _ in range(70_000))
    for n in list(range(301)) + [1023, 1024, 1025, 4095, 4096, 65535, 65536, 65537, 70_000]:
        want = hashlib.sha256(data[:n]).digest()
        assert ours(data[:n], impl) == want, n
        cuts = sorted(rng.randrange(n + 1) for _ in range(rng.randrange(5)))
        assert ours(data[:n], impl, cuts) == want, (n, cuts)


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=5000), cuts=st.lists(st.integers(0, 5000), max_size=8))
def test_any_data_split_any_way(impl, data, cuts):
    cuts = [c for c in cuts if c <= len(data)]
    assert ours(data, impl, cuts) == hashlib.sha256(data).digest()


def test_digest_can_be_taken_midway_and_the_hash_goes_on():
    h = _testhooks._Sha256()
    h.update(b"x" * 100)
    assert h.digest() == hashlib.sha256(b"x" * 100).digest()
    h.update(b"y" * 100)
    assert h.digest() == hashlib.sha256(b"x" * 100 + b"y" * 100).digest()


def test_auto_picks_sha_ni_where_the_cpu_has_it():
    h = _testhooks._Sha256(AUTO)
    assert h.impl == (SHANI if _testhooks._sha256_available(SHANI) else PORTABLE)


def test_an_implementation_this_cpu_lacks_is_refused_not_faked():
    if _testhooks._sha256_available(SHANI):
        with pytest.raises(ValueError):
            _testhooks._Sha256(99)
    else:
        with pytest.raises(ValueError, match="cannot run on this CPU"):
            _testhooks._Sha256(SHANI)


def test_bench_hook_hashes_without_the_gil_the_same():
    data = bytes(range(256)) * 4099
    assert _benchhooks._sha256(data) == hashlib.sha256(data).digest()
    assert _benchhooks._sha256(data, PORTABLE) == hashlib.sha256(data).digest()
