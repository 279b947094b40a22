"""pywin32's raw-EFS functions, served by efsfast.

Code written for ``win32file`` runs unchanged (``from efsfast.compat import
win32file``), on Windows through advapi32 and elsewhere through efsfast's
POSIX system side.  Same signatures and callback protocol as pywin32:

* ``OpenEncryptedFileRaw(FileName, Flags)`` -> context
* ``ReadEncryptedFileRaw(ExportCallback, CallbackContext, Context)``; the
  callback is called as ``ExportCallback(Data, CallbackContext, Length)``
  and returns ERROR_SUCCESS (or None), an error code, or raises.
* ``WriteEncryptedFileRaw(ImportCallback, CallbackContext, Context)``; the
  callback is called as ``ImportCallback(Data, CallbackContext, Length)``
  and returns ``(error_code, bytes_written)``; 0 bytes ends the stream.
* ``CloseEncryptedFileRaw(Context)``

Unlike pywin32, returned lengths are bound-checked, the ``Data`` views are
released after each call (a kept view cannot dangle), and closing a context
twice is harmless.
"""
from __future__ import annotations

from typing import Any, Callable

from .. import _core
from .._errors import EfsError

CREATE_FOR_IMPORT = 0x1
CREATE_FOR_DIR = 0x2
OVERWRITE_HIDDEN = 0x4
EFSRPC_SECURE_ONLY = 0x8
EFS_DROP_ALTERNATE_STREAMS = 0x10

#: pywin32 raises ``pywintypes.error``; efsfast raises EfsError (an OSError
#: with ``winerror``), exposed under the name pywin32 code catches.
error = EfsError

__all__ = ["OpenEncryptedFileRaw", "ReadEncryptedFileRaw", "WriteEncryptedFileRaw",
           "CloseEncryptedFileRaw", "CREATE_FOR_IMPORT", "CREATE_FOR_DIR",
           "OVERWRITE_HIDDEN", "EFSRPC_SECURE_ONLY", "EFS_DROP_ALTERNATE_STREAMS", "error"]


def OpenEncryptedFileRaw(FileName: str, Flags: int, backend: Any = None) -> _core.RawContext:
    """Open an encrypted file (or directory) for raw backup or restore."""
    return _core.open_raw(FileName, int(Flags), backend)


def ReadEncryptedFileRaw(ExportCallback: Callable, CallbackContext: Any,
                         Context: _core.RawContext) -> None:
    """Back up: the system pushes the raw stream to ``ExportCallback``."""
    _core.read_raw(Context, ExportCallback, None, CallbackContext, True)


def WriteEncryptedFileRaw(ImportCallback: Callable, CallbackContext: Any,
                          Context: _core.RawContext) -> None:
    """Restore: the system pulls the raw stream from ``ImportCallback``."""
    _core.write_raw(Context, ImportCallback, None, CallbackContext, True)


def CloseEncryptedFileRaw(Context: _core.RawContext) -> None:
    """Release the context; a second call does nothing."""
    Context.close()
