"""What a backup-set job reports: a tree job's result plus the set's own
facts (kept apart from writer.py so that a restore imports no writing code)."""
from __future__ import annotations

from dataclasses import dataclass

from .. import tree


@dataclass
class SetResult(tree.TreeResult):
    unchanged: int = 0              # incremental: recorded as references
    set_id: str = ""
    manifest_sha256: str = ""
    complete: bool = True           # False: the set is incomplete (see reason)
    reason: str = ""                # why a backup left its set incomplete
    # restores: objects whose size and SHA-256 matched their manifest line
    # as they were read (each restored object of a set is checked)
    verified: int = 0
