"""restore_many and backup_many hand each str path to C as its own UTF-8
where that is os.fsencode's spelling, and as os.fsencode's bytes where it
is not (a name that is not UTF-8, held in str with lone surrogates): each
object lands under its own name, the same bytes either way."""
import os

import pytest

import efsfast
from efsfast.api import backup_many, restore_many

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX names: bytes a str holds "
                                "with lone surrogates")
# (a name that is not UTF-8 only where os.fsdecode takes one: POSIX)
NAMES = ["plain.bin", "\u00fc \u20ac.bin"] + (
    [os.fsdecode(b"not-utf8-\xff.bin")] if os.name == "posix" else [])


@pytest.mark.parametrize("name", NAMES)
def test_backup_many(xattr_dir, name):
    src, out = xattr_dir / "src", xattr_dir / "out"
    src.mkdir()
    out.mkdir()
    efsfast.restore(src / name, efsfast.synthetic_raw(3000, seed=4))
    r = backup_many([(str(src / name), str(out / (name + ".efsraw")))])
    assert r.ok and os.listdir(os.fsencode(out)) == [os.fsencode(name + ".efsraw")]
    assert (out / (name + ".efsraw")).read_bytes() == efsfast.backup(src / name)


@pytest.mark.parametrize("source", ["path", "bytes"])
@pytest.mark.parametrize("name", NAMES)
def test_restore_many(xattr_dir, name, source):
    raw = efsfast.synthetic_raw(3000, seed=5)
    stored = xattr_dir / (name + ".efsraw")
    stored.write_bytes(raw)
    dest = xattr_dir / "dest"
    dest.mkdir()
    r = restore_many([(str(dest / name), str(stored) if source == "path" else raw)])
    assert r.ok and os.listdir(os.fsencode(dest)) == [os.fsencode(name)]
    assert efsfast.backup(dest / name) == raw


def test_bulk_results_are_left_out_of_the_cyclic_gc(xattr_dir):
    """The results restore_many and backup_many make in C, one per item, are
    records of a str and ints, in no cycle: the cyclic GC is not made to
    walk them (CPython leaves tuples of atomic values so).  They are still
    what their classes say, frozen, equal to one made by hand, and freed
    with their last reference."""
    import dataclasses
    import gc
    import weakref
    raw = efsfast.synthetic_raw(3000, seed=6)
    dest = xattr_dir / "dest"
    dest.mkdir()
    r = restore_many([(str(dest / f"f{i}"), raw) for i in range(3)])
    b = backup_many([(str(dest / "f0"), str(xattr_dir / "f0.efsraw"))])
    assert r.ok and b.ok
    for result in r.results + b.results:
        assert not gc.is_tracked(result)
        with pytest.raises(dataclasses.FrozenInstanceError):
            result.bytes = 0
    assert r.results[0] == efsfast.RestoreResult(str(dest / "f0"), len(raw), r.results[0].calls)
    ref = weakref.ref(r.results[0]) if hasattr(r.results[0], "__weakref__") else None
    del r
    assert ref is None or ref() is None
