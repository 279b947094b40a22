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
