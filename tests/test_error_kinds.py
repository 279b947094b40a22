"""Errors point the right way (issue 10, cases 6 and 8): they are the
standard library's OSError subclasses where one fits, they name the file that
is at fault (the raw stream for a format error, the real destination, never a
temporary name), and a temporary name never makes a legal name fail."""
import errno
import os
import pickle
import sys

import pytest

import efsfast
from efsfast import EfsError, RawFormatError

from conftest import WINE_STUBS, listing, under_wine
from ntfs_volume import mounted_volume, needs_ntfs3g

ERROR_FILE_EXISTS = 80
ERROR_PATH_NOT_FOUND = 3


@pytest.mark.skipif(under_wine(), reason=WINE_STUBS)
def test_errors_are_the_standard_kinds_and_still_efs_errors(tmp_path):
    with pytest.raises(FileNotFoundError) as ei:
        efsfast.backup(tmp_path / "nonexistent")
    assert isinstance(ei.value, EfsError) and ei.value.winerror in (2, ERROR_PATH_NOT_FOUND)
    assert ei.value.errno == errno.ENOENT and ei.value.filename == str(tmp_path / "nonexistent")
    # inspect and restore of a missing source: the same kind as backup's
    for call in (lambda: efsfast.inspect(tmp_path / "nonexistent"),
                 lambda: efsfast.verify(str(tmp_path / "nonexistent")),
                 lambda: efsfast.restore(tmp_path / "out", tmp_path / "nonexistent")):
        with pytest.raises(FileNotFoundError) as ei:
            call()
        assert isinstance(ei.value, EfsError), type(ei.value)
        assert ei.value.filename == str(tmp_path / "nonexistent")
    assert listing(tmp_path) == []


def test_existing_destination_is_a_file_exists_error(xattr_dir):
    raw = efsfast.synthetic_raw(100, seed=1)
    (xattr_dir / "f").write_bytes(b"old")
    with pytest.raises(FileExistsError) as ei:
        efsfast.restore(xattr_dir / "f", raw)
    assert isinstance(ei.value, EfsError) and ei.value.winerror == ERROR_FILE_EXISTS
    assert ei.value.filename == str(xattr_dir / "f") and "overwrite=True" in str(ei.value)
    efsfast.restore(xattr_dir / "g", raw)
    with pytest.raises(FileExistsError) as ei:
        efsfast.backup(xattr_dir / "g", xattr_dir / "f")
    assert ei.value.filename == str(xattr_dir / "f")
    assert (xattr_dir / "f").read_bytes() == b"old" and listing(xattr_dir) == ["f", "g"]


def test_errors_pickle_as_themselves():
    cases = [EfsError(2, None, "/x"), EfsError(80, "exists", "/y"), EfsError(13),
             EfsError(5, "open: Is a directory", "/z", errno.EISDIR),
             RawFormatError("R8", 12, "E_SEG_LEN", "short", filename="/s"),
             efsfast.CancelledError(1223, "cancelled", "/c")]
    kinds = [FileNotFoundError, FileExistsError, EfsError, IsADirectoryError, ValueError,
             efsfast.CancelledError]
    for exc, kind in zip(cases, kinds):
        again = pickle.loads(pickle.dumps(exc))
        assert type(again) is type(exc) and isinstance(again, kind) and isinstance(again, EfsError)
        assert (again.winerror, again.errno, again.filename, str(again)) == \
               (exc.winerror, exc.errno, exc.filename, str(exc))
    # no ": None"; Windows' OSError shows the Win32 code instead of the errno
    assert str(EfsError(13)) == ("[WinError 13] The data is invalid" if sys.platform == "win32"
                                 else "[Errno 22] The data is invalid")


@pytest.mark.skipif(sys.platform == "win32", reason="on Windows the privileges exist")
def test_win32_privileges_say_windows_only():
    with pytest.raises(EfsError, match="Windows only"):
        efsfast.backends.Win32Backend.enable_privileges()


# ---- case 8: a malformed source is the source's error ----

def truncated_over_intact(folder):
    """A raw stream cut short (R8) and an intact old file it would replace."""
    src = folder / "r_trunc.bin"
    src.write_bytes(efsfast.synthetic_raw(5000, seed=2)[:-7])
    dest = folder / "r_trunc.bin.out"
    dest.write_bytes(b"the intact old file")
    return src, dest


def test_format_error_names_the_source_not_the_destination(xattr_dir):
    src, dest = truncated_over_intact(xattr_dir)
    with pytest.raises(RawFormatError) as ei:
        efsfast.restore(dest, src, overwrite=True)
    e = ei.value
    assert e.filename == str(src) and e.dest == str(dest)
    assert e.rule.startswith("R") and e.offset > 0 and str(src) in str(e)
    assert "r_trunc.bin.out" not in str(e)
    assert dest.read_bytes() == b"the intact old file"
    assert listing(xattr_dir) == ["r_trunc.bin", "r_trunc.bin.out"]
    # the same through restore_many (the C batch path)
    r = efsfast.restore_many([(xattr_dir / "new", src)])
    (failure,) = r.failures
    assert isinstance(failure.error, RawFormatError)
    assert failure.error.filename == str(src) and failure.dest == str(xattr_dir / "new")
    assert listing(xattr_dir) == ["r_trunc.bin", "r_trunc.bin.out"]


def test_missing_parent_folder_names_the_destination(xattr_dir):
    efsfast.restore(xattr_dir / "f", efsfast.synthetic_raw(10, seed=3))
    out = xattr_dir / "no-such-folder" / "f.efsraw"
    with pytest.raises(FileNotFoundError) as ei:
        efsfast.backup(xattr_dir / "f", out)
    assert ei.value.filename == str(out) and ".tmp" not in str(ei.value)
    with pytest.raises(FileNotFoundError) as ei:
        efsfast.restore(xattr_dir / "no-such-folder" / "g", efsfast.synthetic_raw(10, seed=3))
    assert ei.value.filename == str(xattr_dir / "no-such-folder" / "g")
    assert listing(xattr_dir) == ["f"]


# ---- case 6: long names ----

def _long_name_round_trip(folder, name):
    """Restore to ``name``, back it up as name.efsraw, restore that again."""
    raw = efsfast.synthetic_raw(3000, named_streams={"alt": 5}, seed=4)
    efsfast.restore(folder / name, raw)
    assert listing(folder) == [name]
    out = folder / (name + ".efsraw")
    efsfast.backup(folder / name, out)
    assert out.read_bytes() == raw
    again = folder / "again"
    again.mkdir()
    efsfast.restore(again / name, out)
    assert efsfast.backup(again / name) == raw
    assert listing(folder) == sorted([name, name + ".efsraw", "again"])
    assert listing(again) == [name]


@pytest.mark.parametrize("fs", ["tmpfs", "ext4"])
def test_a_long_name_is_not_made_to_fail_by_a_temporary_name(fs, xattr_dir, tmp_path):
    folder = xattr_dir if fs == "tmpfs" else tmp_path
    # 248 bytes: NAME.efsraw is 255, the most a name may have on ext4 and tmpfs
    _long_name_round_trip(folder, "n" * 248)
    # 250 bytes of CJK (83 characters, 3 bytes each) restored, then backed up
    # into a folder of its own under a short name
    name = "\u6587" * 83 + "x"
    assert len(name.encode()) == 250
    raw = efsfast.synthetic_raw(100, seed=5)
    (folder / "cjk").mkdir()
    efsfast.restore(folder / "cjk" / name, raw)
    assert efsfast.backup(folder / "cjk" / name) == raw
    r = efsfast.backup_many([(folder / "cjk" / name, folder / "cjk" / "short.efsraw")])
    assert r.ok and (folder / "cjk" / "short.efsraw").read_bytes() == raw
    assert listing(folder / "cjk") == sorted([name, "short.efsraw"])


def test_a_name_too_long_names_the_destination(xattr_dir):
    efsfast.restore(xattr_dir / "f", efsfast.synthetic_raw(10, seed=6))
    out = xattr_dir / ("n" * 256)
    with pytest.raises(OSError) as ei:
        efsfast.backup(xattr_dir / "f", out)
    assert ei.value.errno == errno.ENAMETOOLONG and ei.value.filename == str(out)
    with pytest.raises(OSError) as ei:
        efsfast.restore(out, efsfast.synthetic_raw(10, seed=6))
    assert ei.value.errno == errno.ENAMETOOLONG and ei.value.filename == str(out)
    assert listing(xattr_dir) == ["f"]


@needs_ntfs3g
def test_long_names_on_ntfs3g(tmp_path):
    """NTFS counts names in UTF-16 units (255 at most), not bytes."""
    volume = mounted_volume(tmp_path)
    try:
        folder = volume.mnt / "long"
        folder.mkdir()
        # 248 CJK characters (744 bytes of UTF-8): NAME.efsraw is 255 units
        _long_name_round_trip(folder, "\u6587" * 248)
        # the longest name NTFS has: 255 units
        name = "\u6587" * 250 + "12345"
        efsfast.restore(folder / name, efsfast.synthetic_raw(100, seed=7))
        assert name in os.listdir(folder)
        assert not [n for n in os.listdir(folder) if n.endswith(".tmp")]
    finally:
        volume.unmount()


def test_paths_past_windows_max_path_are_ordinary_on_posix(xattr_dir):
    """Windows needs the \\\\?\\ form from 248 characters on; a POSIX path of
    that length is used as written: published without replacing, refused
    when it exists, its temporaries removed."""
    if os.name == "nt":
        pytest.skip("POSIX paths only (Windows' long-path form is tested under Wine)")
    from efsfast import newfile
    deep = xattr_dir / ("d" * 100) / ("e" * 100) / ("f" * 60)
    deep.mkdir(parents=True)
    assert len(str(deep)) >= 260
    raw = efsfast.synthetic_raw(100, seed=7)
    efsfast.restore(deep / "x", raw)
    efsfast.backup(deep / "x", deep / "x.efsraw")
    assert (deep / "x.efsraw").read_bytes() == raw
    with pytest.raises(FileExistsError) as ei:
        efsfast.backup(deep / "x", deep / "x.efsraw")
    assert ei.value.filename == str(deep / "x.efsraw")
    with newfile.new_file(str(deep / "plain")) as f:
        f.write(b"plain")
    with pytest.raises(FileExistsError):
        with newfile.new_file(str(deep / "plain")) as f:
            f.write(b"again")
    newfile.remove_quietly(str(deep / "plain"))
    assert listing(deep) == ["x", "x.efsraw"]
