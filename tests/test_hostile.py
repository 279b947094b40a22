"""The hostile corpus (tests/hostile/corpus.py) through verify and through
restore: a malformed case gives RawFormatError with the same rule and offset
both ways, never a crash, no file left, and an existing destination untouched."""
import collections
import os

import pytest

import efsfast
from efsfast import EfsError, RawFormatError

from hostile.corpus import cases

PRECIOUS = b"the only copy of something important"
# Valid streams that the efs_raw layout cannot hold (a valid data length below
# the size, sparse or unencrypted streams) are refused, not mangled.
NOT_SUPPORTED = 50


def test_hostile_corpus(xattr_dir):
    dest = xattr_dir / "target"
    dest.write_bytes(PRECIOUS)
    counts = collections.Counter()
    rules = collections.Counter()
    for name, data in cases():
        try:
            efsfast.verify(data)
            expected = None
        except RawFormatError as exc:
            expected = (exc.rule, exc.offset)
        try:
            efsfast.restore(dest, data, overwrite=True)
        except RawFormatError as exc:
            assert expected == (exc.rule, exc.offset), name
            counts["rejected"] += 1
            rules[exc.rule] += 1
        except EfsError as exc:
            assert expected is None and exc.winerror == NOT_SUPPORTED, (name, exc)
            counts["valid but not storable"] += 1
        else:
            assert expected is None, name
            counts["valid"] += 1
            # what was restored backs up to a valid stream with the same streams
            # (in canonical order; a file always has an unnamed stream: an empty
            # one where none came)
            again = efsfast.backup(dest)
            want = [(s.name, s.size) for s in efsfast.inspect(data).streams]
            if "::$DATA" not in [n for n, _ in want]:
                want.insert(0, ("::$DATA", 0))
            got = [(s.name, s.size) for s in efsfast.inspect(again).streams]
            assert sorted(got) == sorted(want), name
            dest.write_bytes(PRECIOUS)
            continue
        assert dest.read_bytes() == PRECIOUS, name
        assert os.listdir(xattr_dir) == ["target"], name
    total = sum(counts.values())
    print(f"\nhostile corpus: {total} cases: {dict(counts)}; rules: {dict(sorted(rules.items()))}")
    assert total > 50_000
    assert counts["rejected"] > 30_000
