"""run_forked's results list (crypto/forkresults.py): the chunks kept as the
workers pickled them read back as the very list of results, whichever way
it is read or changed."""
from __future__ import annotations

import pickle

import pytest

from efsfast.crypto.forkresults import ChunkedResults


def made(n=10, step=4, skip=()):
    """A ChunkedResults of ``n`` items "r{i}" in chunks of ``step`` (the
    chunks in ``skip`` left unset, as failed or not done)."""
    out = ChunkedResults(n)
    chunks = [range(i, min(i + step, n)) for i in range(0, n, step)]
    for k in reversed(range(len(chunks))):       # (chunks arrive in any order)
        if k not in skip:
            out.add_chunk(chunks[k], pickle.dumps([(i, f"r{i}", None) for i in chunks[k]]))
    return out


def test_reads_back_every_item_in_order():
    r = made()
    assert len(r) == 10
    assert r[3] == "r3" and r[-1] == "r9" and r[4:6] == ["r4", "r5"]
    assert list(r) == [f"r{i}" for i in range(10)]
    assert r == [f"r{i}" for i in range(10)] and r == made() and r != made(skip=(1,))
    with pytest.raises(IndexError):
        r[10]


def test_unset_items_are_none_and_items_can_be_replaced():
    r = made(skip=(1,))
    assert [x is None for x in r] == [False] * 4 + [True] * 4 + [False] * 2
    r[5] = "set later"
    r[9] = None         # (as sync_restored drops an item that could not be synced)
    assert r[5] == "set later" and r[9] is None and r[8] == "r8"
    fresh = made(skip=(1,))
    fresh[2] = None     # (a chunk not read yet: its other items stay)
    assert list(fresh)[:4] == ["r0", "r1", None, "r3"]


def test_grows_and_shrinks_as_a_list():
    r = made()
    r.append(None)
    del r[0]
    assert list(r) == [f"r{i}" for i in range(1, 10)] + [None]


def test_pickles_as_the_list_it_holds():
    r = made(skip=(0,))
    assert pickle.loads(pickle.dumps(r)) == [None] * 4 + [f"r{i}" for i in range(4, 10)]
