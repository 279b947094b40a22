"""Backup sets: a folder or tar stream of ``.efsraw`` raw streams plus a
manifest (per object its path, kind, raw size, SHA-256 and NTFS metadata;
docs/BACKUP-SETS.md), written by backup-tree, used by restore-tree and
checked by verify-set.  Any tar of a set's folder is a stream of it
(stream.py)."""

# Names load on first use (PEP 562), as in efsfast/__init__.py: a restore
# does not import the writing and verifying code.  Type checkers read the
# imports below (mypy takes any name TYPE_CHECKING as true).
TYPE_CHECKING = False
_LAZY = {
    ".manifest": ("MANIFEST_NAME", "Entry", "Header", "Kind", "Manifest", "ManifestError",
                  "read_manifest"),
    ".restore": ("MissingSetsError", "TruncatedStreamError", "has_manifest", "restore_set"),
    ".streamrestore": ("restore_stream",),
    ".streamverify": ("verify_stream",),
    ".sinks": ("FolderSink", "StreamBroken"),
    ".tarsink": ("TarSink",),
    ".verify": ("Problem", "VerifyReport", "verify_set"),
    ".result": ("SetResult",),
    ".writer": ("backup_set",),
    ".s3sink": ("StoreSink",),
    ".storeread": ("restore_store_set", "verify_store_set"),
}

if TYPE_CHECKING:
    from .manifest import (MANIFEST_NAME, Entry, Header, Kind, Manifest, ManifestError,
                           read_manifest)
    from .restore import MissingSetsError, TruncatedStreamError, has_manifest, restore_set
    from .streamverify import verify_stream
    from .streamrestore import restore_stream
    from .result import SetResult
    from .sinks import FolderSink, StreamBroken
    from .tarsink import TarSink
    from .verify import Problem, VerifyReport, verify_set
    from .writer import backup_set
    from .s3sink import StoreSink
    from .storeread import restore_store_set, verify_store_set
else:
    from .._lazy import attach
    __getattr__, __dir__ = attach(__name__, globals(), _LAZY)
    del attach

__all__ = [
    "MANIFEST_NAME", "Entry", "Header", "Kind", "Manifest", "ManifestError", "read_manifest",
    "MissingSetsError", "TruncatedStreamError", "has_manifest", "restore_set",
    "restore_stream", "FolderSink", "StreamBroken", "TarSink", "Problem", "VerifyReport",
    "verify_set", "verify_stream", "SetResult", "backup_set",
    "StoreSink", "restore_store_set", "verify_store_set",
]
