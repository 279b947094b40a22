"""What a folder backup finds where it is to write its set, and whether it
may go on (docs/BACKUP-SETS.md, "The guarantee").  It may write into a new
or empty folder; into a set of the same source when asked to replace it
(``--overwrite``) or, an incomplete one, to resume it (``--skip-existing``).
Anything else is refused before any work, naming the cause, so that a
backup's exit 0 always leaves a set that ``verify-set`` accepts: no object
of an older set, no unrelated file, no second writer.

A running backup holds an exclusive ``flock`` on its partial manifest (the
kernel drops it when the process dies, also by kill -9), which tells the
set a backup is writing now from one an earlier backup left incomplete."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import List, Optional, Set

from .._errors import RefusedError
from .manifest import (MANIFEST_NAME, PARTIAL_NAME, SUFFIX, Manifest, ManifestError,
                       find_manifest, read_manifest)

ERROR_SHARING_VIOLATION = 32     # (EBUSY) another backup writes the set
ERROR_FILE_EXISTS = 80
ERROR_DIR_NOT_EMPTY = 145

# efsfast's own temporaries: an object's (_winfs.temp_beside, the C side's
# px_make_temp) and the temporary manifest name of earlier versions
_TEMPORARY = re.compile(r"\.efsfast-[0-9a-f]{16}\.tmp|\." + re.escape(MANIFEST_NAME)
                        + r"\.[0-9a-f]{8}\.tmp")
_NAMED = 3                  # files a refusal names before "and N more"


def is_temporary(name: str) -> bool:
    return _TEMPORARY.fullmatch(name) is not None


@dataclass
class Destination:
    """A survey of the folder a backup is to write into."""
    path: str
    manifest: Optional[Manifest] = None     # the set there (complete or not); None: no readable one
    incomplete: bool = False                # a partial manifest and no manifest
    unreadable: Optional[str] = None        # why the manifest there cannot be read
    stored: Set[str] = field(default_factory=set)      # raw streams there, relative, "/"
    leftovers: List[str] = field(default_factory=list)  # efsfast's temporaries (full paths)
    other: List[str] = field(default_factory=list)      # any other file (relative)

    @property
    def partial(self) -> str:
        return os.path.join(self.path, PARTIAL_NAME)

    @property
    def final(self) -> str:
        return os.path.join(self.path, MANIFEST_NAME)


def survey(dest: str) -> Destination:
    d = Destination(dest)
    if not os.path.isdir(dest):
        return d                # not there yet (or not a folder: making it says so)
    for dirpath, _dirs, files in os.walk(dest):
        for name in files:
            full = os.path.join(dirpath, name)
            if dirpath == dest and name in (MANIFEST_NAME, PARTIAL_NAME):
                continue
            rel = os.path.relpath(full, dest).replace(os.sep, "/")
            if is_temporary(name):
                d.leftovers.append(full)
            elif name.endswith(SUFFIX) and not os.path.islink(full):
                d.stored.add(rel)
            else:
                d.other.append(rel)
    where, complete = find_manifest(dest)
    d.incomplete = where is not None and not complete
    if where is None:
        return d
    try:
        d.manifest = read_manifest(where, partial=d.incomplete)
    except ManifestError as exc:
        # a partial manifest cut before its header was whole lists nothing
        if not d.incomplete or b"\n" in _head(where):
            d.unreadable = str(exc)
    except OSError as exc:
        d.unreadable = str(exc)
    return d


def _head(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(1 << 16)


def _refuse(winerror: int, message: str, filename: str) -> RefusedError:
    return RefusedError(winerror, message + "; nothing was written", filename)


def _some(names: List[str]) -> str:
    names = sorted(names)
    more = f" and {len(names) - _NAMED} more" if len(names) > _NAMED else ""
    return ", ".join(names[:_NAMED]) + more


def check(d: Destination, source: str, *, overwrite: bool, resume: bool) -> None:
    """Raise :class:`RefusedError` where a backup of ``source`` must not
    write into ``d``; return where it may."""
    if d.unreadable is not None:
        raise _refuse(ERROR_FILE_EXISTS, f"the folder holds a set whose manifest cannot be "
                      f"read ({d.unreadable})", d.path)
    if in_use(d.partial):
        raise busy(d.partial)
    m = d.manifest
    if m is None and not d.incomplete:
        if d.stored or d.other:
            raise _refuse(ERROR_DIR_NOT_EMPTY, "the folder is not empty and holds no backup "
                          f"set ({_some(sorted(d.stored) + d.other)}): choose an empty or new "
                          "folder", d.path)
        return
    if m is not None and m.header.source != source:
        raise _refuse(ERROR_FILE_EXISTS, f"the folder holds a backup set of another source "
                      f"({m.header.source}): choose another folder", d.path)
    if d.incomplete:
        if not (resume or overwrite):
            listed = sum(1 for e in m.entries if e.has_stream) if m else 0
            why = f": {m.reason}" if m and m.reason else ""
            raise _refuse(ERROR_FILE_EXISTS, f"an incomplete backup set is there (its backup "
                          f"did not finish{why}; it lists {listed} objects): resume it with "
                          "--skip-existing, or start over with --overwrite", d.partial)
        if d.other:
            raise _refuse(ERROR_DIR_NOT_EMPTY, "the folder holds files that are not part of "
                          f"a backup set ({_some(d.other)})", d.path)
        return
    assert m is not None
    if not overwrite:
        raise _refuse(ERROR_FILE_EXISTS, "a backup set is already there (add --overwrite to "
                      "replace it)", d.final)
    in_manifest = {e.stored_name for e in m.entries if e.has_stream and not e.ref}
    unlisted = sorted(d.stored - in_manifest) + d.other
    if unlisted:
        raise _refuse(ERROR_DIR_NOT_EMPTY, "the set there holds files its manifest does not "
                      f"list ({_some(unlisted)}), so it cannot be replaced safely", d.path)


# ---- who writes the set: an exclusive flock on the partial manifest ----

def lock(fd: int) -> bool:
    """Take the partial manifest's lock without waiting: False where another
    process holds it.  Where locks do not exist (Windows, where an open file
    cannot be removed anyway) or the file system has none, creating the
    file with O_EXCL is the only guard."""
    try:
        import fcntl
    except ImportError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True


def in_use(partial: str) -> bool:
    """Whether a running backup writes the partial manifest ``partial``."""
    try:
        fd = os.open(partial, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        return not lock(fd)
    finally:
        os.close(fd)


def retire(partial: str) -> None:
    """Remove the partial manifest an earlier backup left, unless a backup
    is writing it now (refused): the name is unlinked while its lock is
    held, and only if it still names the file that was locked."""
    try:
        fd = os.open(partial, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return
    held = True
    try:
        if not lock(fd):
            raise busy(partial)
        try:
            if not os.path.samestat(os.fstat(fd), os.stat(partial)):
                return          # another run took its place meanwhile: O_EXCL will say
        except FileNotFoundError:
            return
        if os.name == "nt":     # an open file cannot be removed there
            os.close(fd)
            held = False
        try:
            os.unlink(partial)
        except PermissionError:
            raise busy(partial) from None   # (Windows: a running backup has it open)
    finally:
        if held:
            os.close(fd)


def busy(partial: str) -> RefusedError:
    """The refusal where another backup is writing the set."""
    return _refuse(ERROR_SHARING_VIOLATION, "another backup is writing a set into this "
                   "folder now", partial)
