"""efsfast: back up and restore Windows EFS-encrypted files as ciphertext.

The raw stream codec (:func:`verify`, :func:`inspect`, :func:`build_raw`)
works everywhere; restores and backups go through advapi32 on Windows and
efsfast's own POSIX system side (the ntfs-3g ``efs_raw`` layout) elsewhere.
"""
from ._errors import CancelledError, EfsError, RawFormatError
from ._core import CancelToken
from .api import (BackupResult, BulkRestoreError, BulkResult, ItemError, RestoreResult,
                  backup, backup_many, restore, restore_many)
from . import backends
from .crypto import NotDecryptableError, decrypt, encrypt, load_keys
from .raw import (DataStream, KeyEntry, Metadata, RawInfo, StreamInfo, User,
                  build_raw, decode_metadata, inspect, metadata_from_users,
                  sid_from_str, sid_to_str, synthetic_metadata, synthetic_raw, verify)

__version__ = "0.1.0"

__all__ = [
    "EfsError", "RawFormatError", "CancelledError", "CancelToken", "backends",
    "restore", "backup", "restore_many", "backup_many", "RestoreResult", "BackupResult", "BulkResult",
    "BulkRestoreError", "ItemError", "DataStream", "KeyEntry", "Metadata", "RawInfo",
    "StreamInfo", "User", "build_raw", "decode_metadata", "inspect",
    "metadata_from_users", "sid_from_str", "sid_to_str", "synthetic_metadata",
    "synthetic_raw", "verify", "decrypt", "encrypt", "load_keys", "NotDecryptableError",
    "__version__",
]
