"""The one small contract every place a backup set lives implements.

Kept as small as restic's backend contract (save, load a range, stat,
list, remove): a store moves bytes under keys relative to the set, and
everything above it (planning, hashing, manifests, checks, incrementals)
is written once.  Keys are the folder set's relative paths, ``/``
separated ("Users/alice/report.docx.efsraw", "efsfast-manifest.jsonl").

The promises a store makes:

- ``write(key, data)`` never replaces an object that is there unless told
  (``replace=True``); where the server can refuse a create atomically
  (``atomic_create``), two writers racing for a key cannot both win; where
  it cannot, the store checks first and says so (``atomic_create`` False).
- ``publish(key, data)`` is how a manifest is put last: always create-only,
  whole or not at all, and read back so that a writer that lost a race to a
  store without atomic creates finds out.
- A write that fails leaves no object at ``key`` (S3 PUTs are atomic and a
  failed multipart upload is aborted; a folder writes a temporary and
  renames it).
- ``sync()`` returns once everything written so far is on stable storage.
- Errors are :class:`StoreError`, naming the object by its URL and saying
  what went wrong in words, never with credentials in them.
"""
from __future__ import annotations

import enum
import errno as _errno
import re
import threading
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, Optional, Union

from .._errors import EfsError

# a bytes-like object (buffer protocol): bytes, bytearray, memoryview,
# mmap, obstore.Bytes; typing's Buffer arrives only in Python 3.12
BytesLike = Union[bytes, bytearray, memoryview]
WriteData = Union[BytesLike, Iterable[BytesLike]]

MIB = 1 << 20
DEFAULT_JOBS = 16                   # requests in flight at once
DEFAULT_MEMORY_LIMIT = 256 * MIB    # bytes a store holds in flight at once
DEFAULT_PART_SIZE = 8 * MIB         # multipart uploads and ranged reads


class Failure(enum.Enum):
    """What kind of failure a StoreError is (stable names for --json)."""
    NOT_FOUND = "not-found"             # no object at that key
    EXISTS = "exists"                   # a create-only write found one there
    NO_BUCKET = "no-bucket"             # the bucket (container) does not exist
    BAD_CREDENTIALS = "bad-credentials"  # the keys were refused (unknown key, bad signature)
    ACCESS_DENIED = "access-denied"     # known keys, not allowed this operation
    UNAVAILABLE = "unavailable"         # no answer, or 5xx, after the retries
    CONFIG = "config"                   # the URL or the configuration is wrong
    MISSING_LIBRARY = "missing-library"  # the optional client library is not installed
    OTHER = "other"


# Failure -> (Win32 code, errno): so ``except FileExistsError`` and friends
# work on StoreError as on the folder side's EfsError
_CODES = {
    Failure.NOT_FOUND: (2, _errno.ENOENT),
    Failure.EXISTS: (80, _errno.EEXIST),
    Failure.NO_BUCKET: (3, _errno.ENOENT),
    Failure.BAD_CREDENTIALS: (5, _errno.EACCES),
    Failure.ACCESS_DENIED: (5, _errno.EACCES),
    Failure.UNAVAILABLE: (31, _errno.EIO),
    Failure.CONFIG: (87, _errno.EINVAL),
    Failure.MISSING_LIBRARY: (120, _errno.ENOSYS),
    Failure.OTHER: (31, _errno.EIO),
}


class StoreError(EfsError):
    """A store operation failed.  ``failure`` says what kind of failure,
    ``filename`` names the object (its URL); the message never carries
    credentials."""
    failure: Failure = Failure.OTHER

    def __new__(cls, failure: Failure, message: str, filename: object = None) -> "StoreError":
        # EfsError.__new__ picks FileNotFoundError etc. from the errno: keep
        # that, with StoreError in the mix
        win, err = _CODES[failure]
        base = type(EfsError(win, "", None, err))
        if base is EfsError or cls is not StoreError:   # no errno subclass (EIO, EINVAL, ...)
            plain: StoreError = OSError.__new__(cls)
            return plain
        sub = _SUBCLASSES.get(base)
        if sub is None:
            name = "Store" + base.__name__.replace("Efs", "", 1)    # StoreFileExistsError
            sub = type(name, (StoreError, base), {"__module__": __name__})
            _SUBCLASSES[base] = sub
            globals()[name] = sub       # picklable by name
        made: StoreError = OSError.__new__(sub)
        return made

    def __init__(self, failure: Failure, message: str, filename: object = None) -> None:
        win, err = _CODES[failure]
        super().__init__(win, message, filename, err)
        self.failure = failure

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (StoreError, (self.failure, self.strerror, self.filename))


_SUBCLASSES: Dict[type, type] = {}


@dataclass(frozen=True)
class ObjectInfo:
    """One object in a store: its key relative to the set and its size;
    ``version`` is the server's version tag (S3: the ETag) where it has one."""
    key: str
    size: int
    version: Optional[str] = None


_BAD_SEGMENT = re.compile(r"^(|\.|\.\.)$")


def check_key(key: str) -> str:
    """A set-relative key: ``/``-separated, no empty, ``.`` or ``..``
    segments, no backslashes (a folder set's relative path, as keys must
    be to be the same layout in a bucket and on disk)."""
    if "\\" in key or "\0" in key or any(_BAD_SEGMENT.match(s) for s in key.split("/")):
        raise StoreError(Failure.CONFIG, f"not a relative object key: {key!r}")
    return key


class MemoryBudget:
    """At most ``limit`` bytes in flight: take(n) waits until n bytes are
    free (a request larger than the limit waits for all of it, so one
    oversized object still goes through, alone)."""

    def __init__(self, limit: int = DEFAULT_MEMORY_LIMIT):
        if limit <= 0:
            raise ValueError("the memory limit must be positive")
        self.limit = limit
        self.used = 0
        self.peak = 0
        self._cond = threading.Condition()

    def take(self, n: int) -> int:
        n = min(max(n, 0), self.limit)
        with self._cond:
            while self.used + n > self.limit:
                self._cond.wait()
            self.used += n
            self.peak = max(self.peak, self.used)
        return n

    def give(self, n: int) -> None:
        with self._cond:
            self.used -= n
            self._cond.notify_all()


class Store:
    """Where a set lives.  Subclasses implement the methods below; keys are
    relative to the set (``check_key``)."""

    #: True when create-only writes are refused atomically by the server
    #: (two racing writers cannot both win); False: checked, then written
    atomic_create: bool = False

    @property
    def url(self) -> str:
        """Where the set is, as a user would name it (no credentials)."""
        raise NotImplementedError

    def object_url(self, key: str) -> str:
        return self.url.rstrip("/") + "/" + key

    def check(self, *, write: bool) -> None:
        """Up front, before anything is read or written: the place exists
        and these credentials may list it (``write``: and write to it, as
        far as the store can tell without writing).  Raises StoreError."""
        raise NotImplementedError

    def list(self) -> Iterator[ObjectInfo]:
        """Every object under the set, in no particular order."""
        raise NotImplementedError

    def stat(self, key: str) -> Optional[ObjectInfo]:
        """The object at ``key``, or None where there is none."""
        raise NotImplementedError

    def read(self, key: str, start: int = 0, end: Optional[int] = None) -> BytesLike:
        """The object's bytes ``[start, end)`` (whole by default) as one
        bytes-like object (the client library's own buffer where it hands
        one out: no copy)."""
        raise NotImplementedError

    def read_chunks(self, key: str, *, size: Optional[int] = None) -> Iterator[BytesLike]:
        """The object as a stream of buffers of about ``size`` bytes each
        (ranged reads in parallel where the store does them), in order."""
        raise NotImplementedError

    def write(self, key: str, data: WriteData, *, size: Optional[int] = None,
              replace: bool = False) -> ObjectInfo:
        """Put an object: ``data`` is one bytes-like object or an iterable of
        them (``size``, where known, picks a single PUT or a multipart
        upload up front).  Refused (Failure.EXISTS) where an object is there,
        unless ``replace``.  All or nothing: a failed write leaves no object."""
        raise NotImplementedError

    def publish(self, key: str, data: BytesLike) -> ObjectInfo:
        """Put a manifest: create-only (never over another set's), in one
        piece, then read back and compared, so a writer that lost a race on a
        store without atomic creates finds out (Failure.EXISTS)."""
        raise NotImplementedError

    def remove(self, key: str) -> None:
        """Remove the object at ``key``; a missing one is not an error."""
        raise NotImplementedError

    def sync(self) -> None:
        """Return once everything written so far is on stable storage."""

    def close(self) -> None:
        """Release connections and threads; the store is not used after."""

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
