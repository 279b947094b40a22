"""Reading a backup set from a tar stream, for ``restore-tree -``
(streamrestore.py) and ``verify-set -`` (streamverify.py).  Any tar of a
set will do, not only the one ``backup-tree SRC -`` writes: members in any
order (the manifest first, last or between the objects), names with or
without ``./``, ustar, GNU or pax headers, directory members (skipped: a
set's folders are objects of their own, ``REL.efsraw``), no per-member pax
records.  Each object is hashed as it passes and checked against the
manifest whenever the manifest comes; until then a member is held as its
path, size and SHA-256, never its bytes."""
from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass
from enum import Enum
from typing import IO, Any, Dict, Optional

from .. import raw
from .._errors import EfsError
from .manifest import MANIFEST_NAME, SUFFIX, Entry, Kind, Manifest, read_manifest
from .restore import ERROR_INVALID_DATA

# a member's kind (file or folder) is read from its raw stream's headers
# before it is restored; the headers usually end within the first few KiB
# (the $EFS, then "::$DATA" for a file, the end of the member for a folder).
# Beyond this much a member goes through a temporary file (streamrestore.py)
PEEK_LIMIT = 1 << 20
READ_CHUNK = 1 << 20
MANIFEST_IN_STREAM = f"{MANIFEST_NAME} (in the stream)"


class MemberType(str, Enum):
    MANIFEST = "manifest"
    OBJECT = "object"
    IGNORED = "ignored"         # a directory member, the archive's root
    OTHER = "other"             # anything else: named as a problem, never restored


@dataclass(frozen=True)
class Member:
    info: tarfile.TarInfo
    name: str                   # as in a set folder: no "./", no trailing "/"
    type: MemberType
    problem: str = ""

    @property
    def path(self) -> str:
        """An object's path (its name less ``.efsraw``)."""
        return self.name[:-len(SUFFIX)]


def classify(info: tarfile.TarInfo) -> Member:
    """What a tar member is to a set.  Tar tools name members ``./a/b`` or
    ``a/b`` and may add a member for every folder (``./``, ``a/``): both are
    read as the set folder's ``a/b``."""
    name = info.name
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")
    if info.isdir() or name in ("", "."):
        return Member(info, name or ".", MemberType.IGNORED)
    if info.islnk():
        return Member(info, name, MemberType.OTHER, f"a hard link to {info.linkname} in the "
                      "tar: each object must be stored whole (GNU tar: --hard-dereference)")
    if info.issym():
        return Member(info, name, MemberType.OTHER, "a symbolic link, not an object of a "
                      "backup set")
    if not info.isfile():
        return Member(info, name, MemberType.OTHER, "not a regular file, so not an object of "
                      "a backup set")
    if name == MANIFEST_NAME:
        return Member(info, name, MemberType.MANIFEST)
    if name.endswith("/" + MANIFEST_NAME):      # tar -c SET rather than tar -C SET -c .
        top = name[:-len(MANIFEST_NAME) - 1]
        return Member(info, name, MemberType.OTHER, f"a set's manifest in the folder {top} of "
                      "the tar: a set's names start at the top of the tar (re-pack it with "
                      f"tar -C {top} -c ., or extract it and restore the folder {top})")
    if name.endswith(SUFFIX) and not name.rsplit("/", 1)[-1] == SUFFIX:
        return Member(info, name, MemberType.OBJECT)
    return Member(info, name, MemberType.OTHER, f"not an object of a backup set (their "
                  f"names end in {SUFFIX})")


def forget_headers(tar: tarfile.TarFile) -> None:
    """Stream mode keeps every member's header; a set has many."""
    tar.members.clear()  # type: ignore[attr-defined]


def open_stream(fileobj: IO[bytes]) -> tarfile.TarFile:
    """The tar stream on ``fileobj``, read front to back (gzip, bzip2 or xz
    compressed too)."""
    try:
        return tarfile.open(fileobj=fileobj, mode="r|*")
    except tarfile.ReadError as exc:
        raise EfsError(ERROR_INVALID_DATA, f"standard input is not a tar stream ({exc})") \
            from None


def read_stream_manifest(tar: tarfile.TarFile, info: tarfile.TarInfo) -> Manifest:
    f = tar.extractfile(info)
    assert f is not None                # a regular file (classify)
    return read_manifest(f, name=MANIFEST_IN_STREAM)


def listed_streams(m: Manifest) -> Dict[str, Entry]:
    """The objects whose raw stream this set carries, by path."""
    return {e.path: e for e in m.entries if e.has_stream and not e.ref}


def comment_entry(info: tarfile.TarInfo, path: str) -> Optional[Entry]:
    """The manifest line ``backup-tree -`` puts in a member's pax
    ``comment``, when there is one for this path: an early check, before the
    manifest comes, never a replacement for it."""
    text = info.pax_headers.get("comment")
    if text is None:
        return None
    try:
        e = Entry.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError):
        return None
    if e.path != path or e.sha256 is None or e.raw_size is None:
        return None
    return e


def mismatch(e: Optional[Entry], kind: Optional[Kind], size: int, sha256: str,
             against: str = "the manifest") -> Optional[str]:
    """Why an object that arrived (its kind, where known, size and SHA-256)
    is not the one ``e`` describes; None when it is."""
    if e is None:
        return "in the stream but not in the manifest"
    if kind is not None and e.kind is not kind:
        return f"a {kind.value} in the stream, a {e.kind.value} in {against}"
    if size != e.raw_size:
        return f"{size} bytes in the stream, {against} says {e.raw_size}"
    if sha256 != e.sha256:
        return (f"SHA-256 differs from {against}'s: {sha256} in the stream, {e.sha256} in "
                f"{against}")
    return None


class PeekExhausted(Exception):
    """The member's kind is not known within the peek limit."""


class MemberReader:
    """A member's data, read once: first what was peeked to tell its kind,
    then the rest; every byte handed on is hashed and counted."""

    def __init__(self, f: IO[bytes], size: int):
        self.f = f
        self.size = size
        self.head = bytearray()
        self.given = 0                  # bytes of ``head`` handed on
        self.digest = hashlib.sha256()
        self.count = 0

    def kind(self, limit: int = PEEK_LIMIT) -> Optional[Kind]:
        """FILE or DIRECTORY from the stream's headers (a folder's raw stream
        has no unnamed data stream); FILE where the headers do not walk (the
        restore names the rule broken).  Raises :class:`PeekExhausted` where
        the headers run past ``limit`` bytes."""
        def read(pos: int, n: int) -> bytes:
            want = min(pos + n, self.size)
            if want > limit:
                raise PeekExhausted
            while len(self.head) < want:
                chunk = self.f.read(max(want - len(self.head), 64 << 10))
                if not chunk:
                    break
                self.head += chunk
            return bytes(self.head[pos:pos + n])
        has_unnamed = raw.walk_for_unnamed_stream(read, self.size)
        return Kind.DIRECTORY if has_unnamed is False else Kind.FILE

    def readinto(self, b: Any) -> int:
        with memoryview(b) as v, v.cast("B") as out:
            if self.given < len(self.head):
                n = min(len(out), len(self.head) - self.given)
                out[:n] = self.head[self.given:self.given + n]
                self.given += n
            else:
                n = self.f.readinto(out)  # type: ignore[attr-defined]
            if n:
                self.digest.update(out[:n])
                self.count += n
        return n

    def read(self, n: int) -> bytes:
        b = bytearray(n)
        got = self.readinto(b)
        del b[got:]
        return bytes(b)

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()
