"""Where a folder set keeps its manifest, and which one speaks for it:
apart from manifest.py (json, hashlib, datetime) so that restore-tree can
tell a set from a manifest-less folder of .efsraw files without loading
the set reader (start-up time: about 10 ms of a 1,000-file restore's
0.5 s on ntfs-3g)."""
from __future__ import annotations

import os

TYPE_CHECKING = False           # as in efsfast/__init__.py: no typing import at start-up
if TYPE_CHECKING:
    from typing import Optional, Tuple

MANIFEST_NAME = "efsfast-manifest.jsonl"
PARTIAL_NAME = "efsfast-manifest.partial.jsonl"     # the manifest of a backup not (yet) complete


def find_manifest(folder: str) -> Tuple[Optional[str], bool]:
    """(the manifest that speaks for the set in ``folder``, whether the set
    is complete); (None, False) where there is none.  A partial manifest
    beside the manifest is the one that counts (a backup began replacing
    the set), unless it is the manifest itself under its old name too (a
    backup stopped between the two steps of publishing it)."""
    final, partial = os.path.join(folder, MANIFEST_NAME), os.path.join(folder, PARTIAL_NAME)
    if not os.path.lexists(partial):
        return (final, True) if os.path.isfile(final) else (None, False)
    try:
        if os.path.samefile(final, partial):
            return final, True
    except OSError:
        pass
    return partial, False


def has_manifest(set_dir: str) -> bool:
    """Whether ``set_dir`` has a manifest: a set, complete or incomplete."""
    return find_manifest(set_dir)[0] is not None
