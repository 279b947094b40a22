"""efsfast.compat.win32file fails as pywin32 does (win32file.i): errors are
shaped like pywintypes.error, callbacks' exceptions propagate as themselves,
and a non-callable callback, a bad context and unknown flags get pywin32's
answers.  On both system sides: the POSIX side here, advapi32 (through the
test double) under Wine."""
import contextlib
import pickle

import pytest

import efsfast
from efsfast import EfsError, _core
from efsfast.compat import win32file

import win32double
from conftest import listing

RAW = efsfast.synthetic_raw(3000, seed=5)


@pytest.fixture
def folder(request, tmp_path):
    """A folder where restores work on this platform's system side."""
    if _core.HAVE_POSIX:
        yield request.getfixturevalue("xattr_dir")
        return
    why = win32double.why_unavailable()
    if why:
        pytest.skip(why)
    with win32double.patched():
        yield tmp_path


def restore(path, data, flags=win32file.CREATE_FOR_IMPORT):
    pos = [0]

    def cb(buf, context, length):
        chunk = data[pos[0]:pos[0] + length]
        buf[:len(chunk)] = chunk
        pos[0] += len(chunk)
        return 0, len(chunk)
    h = win32file.OpenEncryptedFileRaw(str(path), flags)
    try:
        win32file.WriteEncryptedFileRaw(cb, None, h)
    finally:
        win32file.CloseEncryptedFileRaw(h)


def test_error_shape_of_a_failed_open(folder):
    with pytest.raises(win32file.error) as ei:
        win32file.OpenEncryptedFileRaw(str(folder / "missing"), 0)
    code, funcname, message = ei.value.args            # pywin32 code unpacks them so
    assert code == ei.value.winerror and code in (2, 3)
    assert funcname == ei.value.funcname == "OpenEncryptedFileRaw"
    assert message == ei.value.strerror and message
    assert str(ei.value) == str((code, funcname, message))
    assert isinstance(ei.value, EfsError)              # efsfast code catching that still works
    again = pickle.loads(pickle.dumps(ei.value))
    assert type(again) is win32file.error and again.args == ei.value.args


@pytest.mark.parametrize("direction", ["import", "export"])
def test_a_callback_code_is_the_winerror(folder, direction):
    if direction == "export":
        restore(folder / "f", RAW)
        h = win32file.OpenEncryptedFileRaw(str(folder / "f"), 0)
        call, cb, name = win32file.ReadEncryptedFileRaw, (lambda d, c, n: 5), "ReadEncryptedFileRaw"
    else:
        h = win32file.OpenEncryptedFileRaw(str(folder / "f"), win32file.CREATE_FOR_IMPORT)
        call, cb, name = win32file.WriteEncryptedFileRaw, (lambda d, c, n: (5, 0)), "WriteEncryptedFileRaw"
    try:
        with pytest.raises(win32file.error) as ei:
            call(cb, None, h)
    finally:
        win32file.CloseEncryptedFileRaw(h)
    assert ei.value.args[:2] == (5, name)             # the callback's code, not an errno
    assert ei.value.winerror == 5


@pytest.mark.parametrize("raised", [KeyError("k"), EfsError(87, "from inside")])
def test_a_callback_exception_propagates_as_itself(folder, raised):
    def cb(d, c, n):
        raise raised
    h = win32file.OpenEncryptedFileRaw(str(folder / "f"), win32file.CREATE_FOR_IMPORT)
    try:
        with pytest.raises(type(raised)) as ei:
            win32file.WriteEncryptedFileRaw(cb, None, h)
    finally:
        win32file.CloseEncryptedFileRaw(h)
    assert ei.value is raised


def test_non_callable_callbacks_and_bad_contexts(folder):
    h = win32file.OpenEncryptedFileRaw(str(folder / "f"), win32file.CREATE_FOR_IMPORT)
    try:
        for call in (win32file.ReadEncryptedFileRaw, win32file.WriteEncryptedFileRaw):
            with pytest.raises(TypeError, match="must be callable"):
                call(42, None, h)
            for bad in (None, 42, object()):
                with pytest.raises(ValueError):
                    call(lambda d, c, n: 0, None, bad)
        with pytest.raises(TypeError, match="handle to an encrypted file"):
            win32file.CloseEncryptedFileRaw("not a context")
    finally:
        win32file.CloseEncryptedFileRaw(h)
    with pytest.raises(ValueError, match="already been closed"):
        win32file.CloseEncryptedFileRaw(h)


def test_unknown_flags_are_passed_on_and_ignored(folder):
    restore(folder / "f", RAW, win32file.CREATE_FOR_IMPORT | 0x100 | 0x4000_0000)
    assert efsfast.backup(folder / "f") == RAW
    # efsfast's private "never replace" bit is not the caller's: importing
    # onto an existing file replaces it, as advapi32 does (spec 7.7)
    restore(folder / "f", RAW, win32file.CREATE_FOR_IMPORT | 0x8000_0000)
    assert efsfast.backup(folder / "f") == RAW
    for bad in (1.0, "1", None):
        with pytest.raises(TypeError):
            win32file.OpenEncryptedFileRaw(str(folder / "g"), bad)
    assert listing(folder) == ["f"]
