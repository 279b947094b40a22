"""The system sides efsfast can run against.

``PosixBackend``: efsfast's own implementation of the four raw-EFS calls over
the ntfs-3g ``efs_raw`` layout (Linux, macOS, any POSIX file system).
``Win32Backend``: advapi32 itself (Windows).  ``default()`` picks the
platform's own.
"""
from typing import List

from ._core import Backend, PosixBackend, Win32Backend, default_backend as default

__all__ = ["Backend", "PosixBackend", "Win32Backend", "default", "available", "describe"]


def available() -> List[str]:
    """Names of the system sides built into this installation."""
    from . import _core
    return [name for name, ok in (("posix", _core.HAVE_POSIX), ("win32", _core.HAVE_WIN32)) if ok]


def describe(backend: Backend) -> str:
    """How a report names the system side that did the work."""
    if backend.name == "win32":
        return "the win32 system side (advapi32)"
    if backend.name == "posix":
        return "the POSIX system side (ntfs-3g efs_raw layout)"
    return f"the {backend.name} system side"
