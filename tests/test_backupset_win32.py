"""Backup-set metadata through the Win32 API (backupset/metadata_win32.py):
runs on Windows, and under Wine in .ci/windows.  Wine keeps no creation or
change time of its own on a Linux file system, so those two are checked on
real Windows only (seen with Wine 8 and CPython 3.13's embeddable build: the
rest passes there)."""
import ctypes
import os
import sys

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "win32",
                                reason="the Win32 API metadata side runs on Windows "
                                       "(and under Wine in .ci/windows)")

READONLY, HIDDEN, ARCHIVE = 0x1, 0x2, 0x20


def under_wine() -> bool:
    return hasattr(ctypes.WinDLL("ntdll"), "wine_get_version")


@pytest.mark.parametrize("folder", [False, True], ids=["file", "folder"])
def test_times_attributes_and_descriptor_round_trip(tmp_path, folder):
    from efsfast.backupset import metadata, metadata_win32
    p = tmp_path / "obj"
    p.mkdir() if folder else p.write_bytes(b"x")
    before = metadata.capture(str(p), metadata.MetaSource.WIN32)
    assert before["source"] == "win32" and "security_descriptor" in before
    # Wine derives a file's descriptor from its POSIX mode, which READONLY
    # changes: there the descriptor is compared without it
    readonly = READONLY if not folder and not under_wine() else 0
    archive = ARCHIVE if not folder else 0          # Wine keeps no ARCHIVE on folders
    want = dict(before, attributes=HIDDEN | archive | readonly,
                times={"creation": 130_000_000_000_000_000, "last_write": 130_000_000_000_000_011,
                       "last_access": 130_000_000_000_000_022,
                       "change": 130_000_000_000_000_033})
    metadata.apply(str(p), want)
    got = metadata.capture(str(p), metadata.MetaSource.WIN32)
    checked = ("last_write", "last_access") if under_wine() else metadata.TIME_FIELDS
    assert {k: got["times"][k] for k in checked} == {k: want["times"][k] for k in checked}
    assert got["attributes"] & metadata.SETTABLE == want["attributes"]
    assert got["security_descriptor"] == before["security_descriptor"]
    metadata_win32.apply(str(p), got["times"], 0x80, None)      # clear read-only for cleanup
