"""efsfast: back up and restore Windows EFS-encrypted files as ciphertext.

The raw stream codec (:func:`verify`, :func:`inspect`, :func:`build_raw`)
works everywhere; restores and backups go through advapi32 on Windows and
efsfast's own POSIX system side (the ntfs-3g ``efs_raw`` layout) elsewhere.
"""
from ._errors import CancelledError, EfsError, ObjectMismatchError, RawFormatError

__version__ = "0.1.0"

# The rest of the API is imported where it is first used (PEP 562): `import
# efsfast` and the command line's start-up load only what they need (the key
# handling, the restore engine and the codec each take tens of milliseconds
# to import, a tenth of a short job).  Type checkers read the imports below
# (mypy takes any name TYPE_CHECKING as true; typing is not imported for it).
TYPE_CHECKING = False
_LAZY = {
    "._core": ("CancelToken", "ExportBuffer"),
    ".api": ("BackupResult", "BulkRestoreError", "BulkResult", "ItemError", "RestoreResult",
             "backup", "backup_many", "restore", "restore_many"),
    ".check": ("verify",),
    ".crypto": ("NotDecryptableError", "decrypt", "encrypt", "encrypt_file", "load_keys"),
    ".raw": ("DataStream", "FilledStream", "KeyEntry", "Metadata", "RawInfo", "StreamInfo",
             "User", "build_raw", "decode_metadata", "inspect", "metadata_from_users",
             "sid_from_str", "sid_to_str", "synthetic_metadata", "synthetic_raw", "write_raw",
             "write_synthetic_raw"),
}
_SUBMODULES = ("backends",)

if TYPE_CHECKING:
    from . import backends
    from ._core import CancelToken, ExportBuffer
    from .api import (BackupResult, BulkRestoreError, BulkResult, ItemError, RestoreResult,
                      backup, backup_many, restore, restore_many)
    from .crypto import NotDecryptableError, load_keys
    from .crypto.decrypt import decrypt
    from .crypto.encrypt import encrypt, encrypt_file
    from .raw import (DataStream, FilledStream, KeyEntry, Metadata, RawInfo, StreamInfo, User,
                      build_raw, decode_metadata, inspect, metadata_from_users,
                      sid_from_str, sid_to_str, synthetic_metadata, synthetic_raw,
                      write_raw, write_synthetic_raw)
    from .check import verify
else:
    from ._lazy import attach
    __getattr__, __dir__ = attach(__name__, globals(), _LAZY, _SUBMODULES)
    del attach

__all__ = [
    "EfsError", "RawFormatError", "ObjectMismatchError", "CancelledError", "CancelToken",
    "ExportBuffer",
    "backends",
    "restore", "backup", "restore_many", "backup_many", "RestoreResult", "BackupResult", "BulkResult",
    "BulkRestoreError", "ItemError", "DataStream", "KeyEntry", "Metadata", "RawInfo",
    "StreamInfo", "User", "build_raw", "decode_metadata", "inspect",
    "metadata_from_users", "sid_from_str", "sid_to_str", "synthetic_metadata",
    "synthetic_raw", "write_raw", "write_synthetic_raw", "FilledStream", "verify", "decrypt",
    "encrypt", "encrypt_file", "load_keys", "NotDecryptableError",
    "__version__",
]
