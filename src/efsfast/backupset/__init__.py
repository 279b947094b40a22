"""Backup sets: a folder or tar stream of ``.efsraw`` raw streams plus a
manifest (per object its path, kind, raw size, SHA-256 and NTFS metadata;
docs/BACKUP-SETS.md), written by backup-tree, used by restore-tree and
checked by verify-set."""
from .manifest import (MANIFEST_NAME, Entry, Header, Kind, Manifest, ManifestError,
                       read_manifest)
from .restore import (MissingSetsError, TruncatedStreamError, has_manifest, restore_set,
                      restore_stream)
from .sinks import FolderSink, StreamBroken, TarSink
from .verify import Problem, VerifyReport, verify_set
from .writer import SetResult, backup_set

__all__ = [
    "MANIFEST_NAME", "Entry", "Header", "Kind", "Manifest", "ManifestError", "read_manifest",
    "MissingSetsError", "TruncatedStreamError", "has_manifest", "restore_set",
    "restore_stream", "FolderSink", "StreamBroken", "TarSink", "Problem", "VerifyReport",
    "verify_set", "SetResult", "backup_set",
]
