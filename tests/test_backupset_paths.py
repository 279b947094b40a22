"""An object path from a manifest (or a tar member's name) never leads out
of the destination: on every platform "..", "." and empty parts are
refused; on Windows also "\\" (a separator there) and ":" (a drive or a
named stream), which elsewhere are ordinary name characters."""
import os
import sys

import pytest

from efsfast import EfsError
from efsfast.backupset.restore import target_path

DEST = os.path.abspath("dest")
WINDOWS = sys.platform == "win32"


@pytest.mark.parametrize("rel", ["../x", "a/../../x", "/x", "a//b", "./x", "a/.", "", "a/"])
def test_parts_that_leave_are_refused_everywhere(rel):
    with pytest.raises(EfsError, match="leaves the destination"):
        target_path(DEST, rel)


@pytest.mark.parametrize("rel", ["..\\x", "a\\..\\..\\x", "C:\\Windows\\x", "C:x", "f:stream",
                                 "\\\\server\\share\\x"])
def test_backslashes_and_colons(rel):
    if WINDOWS:
        with pytest.raises(EfsError, match="leaves the destination"):
            target_path(DEST, rel)
    else:       # one name with those characters in it, inside DEST
        got = target_path(DEST, rel)
        assert os.path.dirname(got) == DEST and os.path.basename(got) == rel


def test_ordinary_paths_stay_below():
    got = target_path(DEST, "a b/c.d/e")
    assert got == os.path.join(DEST, "a b", "c.d", "e")
    assert os.path.commonpath([got, DEST]) == DEST


GOOD = ["a b/c.d/e", "x", "..x/y..", ".hidden/.x", "a\x00/b", "a\x00", "\x00", "a./.b", "é/日"]
BAD = ["../x", "a/../../x", "/x", "a//b", "./x", "a/.", "", "a/", "a/\x00/..", ".."]


def test_all_paths_checked_at_once_as_each_alone():
    """restore's one check over every object's path (joined) takes a list
    iff each path alone is taken, and gives the same targets: no bad part
    is made or hidden where two paths meet, NULs in names included."""
    from efsfast.backupset.restore import _target, _targets
    for dest in (DEST, DEST + "/", ""):
        assert _targets(dest, GOOD) == [_target(dest, r) for r in GOOD]
        assert _targets(dest, []) == []
        for bad in BAD:
            for at in range(len(GOOD) + 1):
                assert _targets(dest, GOOD[:at] + [bad] + GOOD[at:]) is None, (bad, at)
        # pairs that would make a bad part if the joint were not NULs
        for a in ["a/", "a", "a/.", "."]:
            for b in ["/b", "b", "./b", "."]:
                rels = [a, b]
                want = None if any(r in BAD or "//" in f"/{r}/" or "/./" in f"/{r}/"
                                   for r in rels) else [_target(dest, r) for r in rels]
                assert _targets(dest, rels) == want, rels


def test_the_first_path_that_leaves_is_named(tmp_path):
    from efsfast.backupset.manifest import Entry, Kind
    from efsfast.backupset.restore import checkable
    entries = [Entry(p, Kind.FILE, 1, "ab" * 32) for p in ["ok", "a/../../x", "../y"]]
    with pytest.raises(EfsError, match=r"leaves the destination: 'a/\.\./\.\./x'"):
        list(checkable(entries, str(tmp_path), []))
