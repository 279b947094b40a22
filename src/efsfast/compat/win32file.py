"""pywin32's raw-EFS functions, served by efsfast.

Code written for ``win32file`` runs unchanged (``from efsfast.compat import
win32file``), on Windows through advapi32 and elsewhere through efsfast's
POSIX system side.  Same signatures, callback protocol and errors as pywin32
(win32file.i):

* ``OpenEncryptedFileRaw(FileName, Flags)`` -> context
* ``ReadEncryptedFileRaw(ExportCallback, CallbackContext, Context)``; the
  callback is called as ``ExportCallback(Data, CallbackContext, Length)``
  and returns ERROR_SUCCESS (or None), an error code, or raises.
* ``WriteEncryptedFileRaw(ImportCallback, CallbackContext, Context)``; the
  callback is called as ``ImportCallback(Data, CallbackContext, Length)``
  and returns ``(error_code, bytes_written)``; 0 bytes ends the stream.
* ``CloseEncryptedFileRaw(Context)``

A failed call raises :class:`error`, shaped like ``pywintypes.error``:
``args == (winerror, funcname, strerror)``.  An exception raised by a
callback propagates as itself; a callback that is not callable is a
TypeError, a context that OpenEncryptedFileRaw did not return a ValueError
(TypeError for CloseEncryptedFileRaw), closing a context twice a ValueError;
flags are any int, taken as a 32-bit ULONG, and bits the system does not know
are passed on for it to ignore (spec 7.1).

Unlike pywin32, returned lengths are bound-checked, the ``Data`` views are
released after each call (a kept view cannot dangle), and a call on a closed
context is an error (6, ERROR_INVALID_HANDLE) rather than a crash.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

Callback = Callable[..., Any]

from .. import _core
from .._errors import EfsError, win32_message

CREATE_FOR_IMPORT = 0x1
CREATE_FOR_DIR = 0x2
OVERWRITE_HIDDEN = 0x4
EFSRPC_SECURE_ONLY = 0x8
EFS_DROP_ALTERNATE_STREAMS = 0x10
ULONG_MASK = 0xFFFFFFFF

__all__ = ["OpenEncryptedFileRaw", "ReadEncryptedFileRaw", "WriteEncryptedFileRaw",
           "CloseEncryptedFileRaw", "CREATE_FOR_IMPORT", "CREATE_FOR_DIR",
           "OVERWRITE_HIDDEN", "EFSRPC_SECURE_ONLY", "EFS_DROP_ALTERNATE_STREAMS", "error"]


class error(EfsError):
    """``pywintypes.error``'s shape: ``args == (winerror, funcname, strerror)``
    and the attributes ``winerror``, ``funcname`` and ``strerror``; also an
    :class:`efsfast.EfsError`, so efsfast code that catches that still works."""

    def __init__(self, winerror: int, funcname: Optional[str] = None,
                 strerror: Optional[str] = None, filename: object = None) -> None:
        super().__init__(winerror, strerror or win32_message(winerror), filename)
        self.funcname = funcname
        self.args = (winerror, funcname, self.strerror)

    def __str__(self) -> str:
        return str(self.args)

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), (self.winerror, self.funcname, self.strerror, self.filename))


class _Callback:
    """The user's callback, noting what it raised: that propagates as itself,
    while a failure of the system call becomes an :class:`error`."""

    def __init__(self, function: Callback) -> None:
        if not callable(function):
            # pywin32's text, for both functions (win32file.i)
            raise TypeError("ExportCallback must be callable")
        self.function = function
        self.raised: Optional[BaseException] = None

    def __call__(self, *args: Any) -> Any:
        try:
            return self.function(*args)
        except BaseException as exc:
            self.raised = exc
            raise


def _as_error(exc: EfsError, funcname: str) -> error:
    converted = error(exc.winerror, funcname, exc.strerror, exc.filename)
    converted.__cause__ = exc.__cause__
    return converted


def _context(Context: Any) -> _core.RawContext:
    if not isinstance(Context, _core.RawContext):
        raise ValueError("Context must be the object OpenEncryptedFileRaw returned, "
                         f"not {type(Context).__name__}")
    return Context


def OpenEncryptedFileRaw(FileName: str, Flags: int, backend: Any = None) -> _core.RawContext:
    """Open an encrypted file (or directory) for raw backup or restore."""
    if isinstance(Flags, float) or not hasattr(Flags, "__index__"):
        raise TypeError(f"Flags must be an integer, not {type(Flags).__name__}")
    # a ULONG, as pywin32 converts it; efsfast's private bit is not the caller's
    flags = Flags.__index__() & ULONG_MASK & ~_core.NO_REPLACE
    try:
        return _core.open_raw(FileName, flags, backend)
    except EfsError as exc:
        raise _as_error(exc, "OpenEncryptedFileRaw") from None


def _transfer(call: Callback, funcname: str, function: Callback, CallbackContext: Any,
              Context: Any) -> None:
    """Run ``call`` (_core.read_raw or write_raw) pywin32's way: the context
    is checked first, then the callback; the system's failure becomes an
    :class:`error` named ``funcname``, the callback's own exception stays."""
    raw = _context(Context)
    callback = _Callback(function)
    try:
        call(raw, callback, None, CallbackContext, True)
    except EfsError as exc:
        if exc is callback.raised:
            raise
        raise _as_error(exc, funcname) from None


def ReadEncryptedFileRaw(ExportCallback: Callback, CallbackContext: Any,
                         Context: _core.RawContext) -> None:
    """Back up: the system pushes the raw stream to ``ExportCallback``."""
    _transfer(_core.read_raw, "ReadEncryptedFileRaw", ExportCallback, CallbackContext, Context)


def WriteEncryptedFileRaw(ImportCallback: Callback, CallbackContext: Any,
                          Context: _core.RawContext) -> None:
    """Restore: the system pulls the raw stream from ``ImportCallback``."""
    _transfer(_core.write_raw, "WriteEncryptedFileRaw", ImportCallback, CallbackContext, Context)


def CloseEncryptedFileRaw(Context: _core.RawContext) -> None:
    """Release the context (CloseEncryptedFileRaw); a second call is a
    ValueError, as in pywin32."""
    if not isinstance(Context, _core.RawContext):
        raise TypeError("param must be handle to an encrypted file "
                        f"(got type {type(Context).__name__})")
    if Context.closed:
        raise ValueError("This handle has already been closed")
    Context.close()
