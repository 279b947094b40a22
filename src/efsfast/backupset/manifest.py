"""The backup-set manifest: one JSON object per line (docs/BACKUP-SETS.md).

Line 1 describes the set, then one line per object, then an end line that
carries the object count and the SHA-256 of every byte before it, so that
``head -n -1 MANIFEST | sha256sum`` checks the manifest without efsfast.
Lines are written as objects finish; the hash runs along.

A folder backup writes its manifest under :data:`PARTIAL_NAME` while it
runs and gives it :data:`MANIFEST_NAME` only when the set is complete; an
aborted backup ends the partial file with an end line that says
``"complete": false`` and why, a killed one leaves it as it was (maybe cut
mid-line).  ``read_manifest(..., partial=True)`` reads such a file.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import json.encoder
import os
import threading
from dataclasses import dataclass, field
from enum import Enum
from typing import IO, Any, Callable, Dict, Iterable, List, Optional, Protocol, Tuple, Union

# (re-exported: where the set's manifest lies is named here as before)
from .setfiles import MANIFEST_NAME as MANIFEST_NAME
from .setfiles import PARTIAL_NAME as PARTIAL_NAME
from .setfiles import find_manifest as find_manifest
from .._core import ObjectTable, cut_run
from ..threadrun import run_threads
# the Win32 code of refusing an incomplete set as a whole one (ERROR_HANDLE_EOF:
# the set ends early, as a file does)
ERROR_INCOMPLETE_SET = 38
# winerror.h ERROR_INVALID_NAME: a name a set cannot record
ERROR_INVALID_NAME = 123
NOT_UTF8 = ("its name is not valid UTF-8, which a backup set's manifest records names in "
            "(rename it)")
SUFFIX = ".efsraw"
FORMAT = "efsfast-set"
VERSION = 1
JsonObject = Dict[str, Any]     # one line of a manifest, or an object within one


def recordable(path: str) -> bool:
    """Whether a manifest can record ``path``: its name is UTF-8 (a POSIX
    name of other bytes comes from os.fsdecode holding lone surrogates,
    and so can a Windows name)."""
    if path.isascii():
        return True
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown(path: str) -> str:
    """``path`` as a manifest line can hold it: as it is where it is
    :func:`recordable`, else its bytes that are not UTF-8 as ``\\xNN``
    (for the line of an object that failed for its name)."""
    if recordable(path):
        return path
    return os.fsencode(path).decode("utf-8", "backslashreplace")


class LineType(str, Enum):
    SET = "set"
    OBJECT = "object"
    END = "end"


class Kind(str, Enum):
    FILE = "file"
    DIRECTORY = "directory"              # an encrypted folder: it has a raw stream
    PLAIN_DIRECTORY = "plain-directory"  # an unencrypted folder above objects: metadata only


# by value, for reading: a dict lookup costs a fraction of an Enum call, once
# per manifest line in the calling thread of a restore
_LINE_TYPES = {t.value: t for t in LineType}
_KINDS = {k.value: k for k in Kind}
_KIND_TEXT = {k: k.value for k in Kind}     # (and back, for writing)


def _kind(value: Any) -> Kind:
    kind = _KINDS.get(value) if isinstance(value, str) else None
    if kind is None:
        raise ValueError(f"{value!r} is not a valid {Kind.__name__}")
    return kind


class ManifestError(ValueError):
    """A manifest that is not one efsfast wrote, or was changed since."""

    def __init__(self, path: str, message: str, line: Optional[int] = None):
        where = f"{path}, line {line}" if line else path
        super().__init__(f"{where}: {message}")
        self.path, self.line = path, line


@dataclass
class Entry:
    """One object of a set.  ``path`` is relative to the source, with "/";
    the raw stream is stored as ``path + SUFFIX``.  ``ref`` names the set
    (by id) that holds the raw stream when this set did not copy it
    (incremental runs); ``failed`` says why an object could not be backed up."""
    path: str
    kind: Kind
    raw_size: Optional[int] = None
    sha256: Optional[str] = None
    source_size: Optional[int] = None
    efs_sha256: Optional[str] = None
    meta: JsonObject = field(default_factory=dict)
    ref: Optional[str] = None
    failed: Optional[str] = None

    def to_json(self) -> JsonObject:
        d: JsonObject = {"type": LineType.OBJECT.value, "path": self.path, "kind": self.kind.value}
        for k in ("raw_size", "sha256", "source_size", "efs_sha256", "ref", "failed"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        if self.meta:
            d["meta"] = self.meta
        return d

    @classmethod
    def from_json(cls, d: JsonObject) -> "Entry":
        get = d.get         # (positional: once per line of a restore's manifest)
        return cls(d["path"], _kind(d["kind"]), get("raw_size"), get("sha256"),
                   get("source_size"), get("efs_sha256"), get("meta") or {}, get("ref"),
                   get("failed"))

    @property
    def stored_name(self) -> str:
        return self.path + SUFFIX

    @property
    def has_stream(self) -> bool:
        """Whether a raw stream belongs to this line (here or in a set it refers to)."""
        return self.kind is not Kind.PLAIN_DIRECTORY and not self.failed


@dataclass
class Header:
    set_id: str
    created: str
    source: str
    efsfast_version: str
    metadata_source: str
    since: Optional[JsonObject] = None            # {"set_id", "path", "manifest_sha256"}
    refs: List[JsonObject] = field(default_factory=list)   # every set an entry's ref names

    def to_json(self) -> JsonObject:
        return {"type": LineType.SET.value, "format": FORMAT, "version": VERSION,
                "set_id": self.set_id, "created": self.created, "source": self.source,
                "efsfast_version": self.efsfast_version,
                "metadata_source": self.metadata_source, "since": self.since,
                "refs": self.refs}

    @classmethod
    def new(cls, source: str, metadata_source: str, since: Optional[JsonObject] = None,
            refs: Optional[List[JsonObject]] = None) -> "Header":
        from .. import __version__
        now = datetime.datetime.now(datetime.timezone.utc)
        import uuid     # here (also in raw.py): part of ~3 ms of CPU at every start-up
        return cls(set_id=str(uuid.uuid4()), created=now.isoformat(timespec="seconds"),
                   source=source, efsfast_version=__version__,
                   metadata_source=metadata_source, since=since, refs=refs or [])


class Manifest:
    """A manifest as read: its ``header``, its objects (``entries``, in
    order), the SHA-256 of its lines before the end line, whether the set is
    ``complete`` and, if not, the ``reason`` its end line gives.

    ``entries`` may be given as the C rows a reader keeps them in (an
    :class:`~efsfast._core.ObjectTable`): the Entry list is then made the
    first time it is asked for, and until then ``table`` holds the rows (a
    set's restore reads them without an Entry per object)."""

    def __init__(self, header: Header, entries: Union[Iterable[Entry], ObjectTable], sha256: str,
                 complete: bool = True, reason: Optional[str] = None) -> None:
        self.header = header
        self._table: Optional[ObjectTable] = None
        self._entries: Optional[List[Entry]] = None
        if isinstance(entries, ObjectTable):
            self._table = entries
        else:
            self._entries = entries if isinstance(entries, list) else list(entries)
        self.sha256 = sha256                # over every line before the end line (read so far)
        self.complete = complete            # False: the manifest of a backup that did not finish
        self.reason = reason                # why it did not, where its end line says

    @property
    def entries(self) -> List[Entry]:
        if self._entries is None:
            assert self._table is not None
            self._entries = self._table.entries(Entry, Kind.FILE, Kind.DIRECTORY)
        return self._entries

    @property
    def table(self) -> Optional[ObjectTable]:
        """The objects as the reader keeps them, while :attr:`entries` has
        not been made (after that the list is what holds, and this is None)."""
        return self._table if self._entries is None else None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Manifest):
            return NotImplemented
        return (self.header, self.entries, self.sha256, self.complete, self.reason) == (
            other.header, other.entries, other.sha256, other.complete, other.reason)

    # (unhashable, as a dataclass with eq is: it is mutable)
    __hash__ = None     # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"Manifest(header={self.header!r}, entries={self.entries!r}, "
                f"sha256={self.sha256!r}, complete={self.complete!r}, reason={self.reason!r})")

    def by_path(self) -> Dict[str, Entry]:
        return {e.path: e for e in self.entries}


# made once: json.dumps with options other than its defaults builds a new
# encoder per call (one per manifest line, in the calling thread)
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode
_DECODER = json.JSONDecoder()
_DECODE = _DECODER.decode
# (the decoder's own scanner: typeshed does not list the attribute)
_SCAN: Callable[[str, int], Tuple[Any, int]] = getattr(_DECODER, "scan_once")


def _parse(text: str) -> Any:
    """One line's value: a line as the writer ends it (a value, then "\n")
    scanned directly (decode's whitespace and extra-data checks cost ~0.4 us
    a line); anything else, errors included, as json.loads takes it."""
    try:
        value, end = _SCAN(text, 0)
        if end == len(text) - 1 and text[end] == "\n":
            return value
    except (StopIteration, ValueError):
        pass
    return _DECODE(text)


def _line(obj: JsonObject) -> bytes:
    return (_ENCODE(obj) + "\n").encode("utf-8")


# the line of a whole object with POSIX metadata (or none), the bulk of a
# backup from a POSIX file system, made without the json module: the same
# bytes as _line(entry.to_json()) (keys sorted, strings escaped by the
# encoder's own function), in ~1.5 us against ~4.3 us per object in the
# calling thread.  Anything else takes _line.
_STR = json.encoder.encode_basestring
_POSIX_META_KEYS = frozenset(("atime_ns", "ctime_ns", "mode", "mtime_ns", "source"))


def _object_line(e: "Entry") -> Optional[bytes]:
    """``_line(e.to_json())``, or None where ``e`` is not of that shape."""
    meta, path, kind = e.meta, e.path, _KIND_TEXT.get(e.kind)
    raw_size, sha256, source_size, efs_sha256 = e.raw_size, e.sha256, e.source_size, e.efs_sha256
    if (e.ref is not None or e.failed is not None or type(raw_size) is not int
            or type(source_size) is not int or type(sha256) is not str
            or type(efs_sha256) is not str or type(path) is not str or type(kind) is not str):
        return None
    if not meta:
        m = ""
    elif meta.keys() == _POSIX_META_KEYS:
        atime, ctime, mode, mtime, source = (meta["atime_ns"], meta["ctime_ns"], meta["mode"],
                                             meta["mtime_ns"], meta["source"])
        if (type(atime) is not int or type(ctime) is not int or type(mode) is not int
                or type(mtime) is not int or type(source) is not str):
            return None
        m = (f'"meta":{{"atime_ns":{atime},"ctime_ns":{ctime},"mode":{mode},'
             f'"mtime_ns":{mtime},"source":{_STR(source)}}},')
    else:
        return None
    return (f'{{"efs_sha256":{_STR(efs_sha256)},"kind":{_STR(kind)},{m}"path":{_STR(path)},'
            f'"raw_size":{raw_size},"sha256":{_STR(sha256)},"source_size":{source_size},'
            f'"type":"object"}}\n').encode("utf-8")


class Writable(Protocol):
    """Where a manifest's lines go: a binary file, or anything with its write."""
    def write(self, b: bytes, /) -> int: ...


class ManifestWriter:
    """Writes the lines to a binary file object as they come, each with one
    ``write`` call; ``finish`` adds the end line with the count and the
    hash, ``abort`` an end line that says the set is not complete.
    ``written`` counts the bytes of whole lines written so far (where a
    write fails halfway, the file can be cut back to it)."""

    def __init__(self, out: Writable, header: Header):
        self.out = out
        self.hash = hashlib.sha256()
        self.count = 0
        self.written = 0
        self.header = header
        self._put(header.to_json())

    def _put(self, obj: JsonObject) -> None:
        self._put_line(_line(obj))

    def _put_line(self, b: bytes) -> None:
        self.out.write(b)
        self.hash.update(b)
        self.written += len(b)

    def add(self, entry: Entry) -> None:
        self._put_line(_object_line(entry) or _line(entry.to_json()))
        self.count += 1

    def add_lines(self, lines: bytes, count: int) -> None:
        """``count`` whole object lines made elsewhere (by the backup's C
        workers, efs_manifest.c: the bytes :meth:`add` would write), with
        one ``write``."""
        self._put_line(lines)
        self.count += count

    def finish(self) -> str:
        digest = self.hash.hexdigest()
        self.out.write(_line({"type": LineType.END.value, "objects": self.count,
                              "manifest_sha256": digest}))
        return digest

    def abort(self, reason: str) -> None:
        """The end line of a set that is not complete: its count and hash
        still let a reader check the lines before it."""
        self.out.write(_line({"type": LineType.END.value, "complete": False, "reason": reason,
                              "objects": self.count,
                              "manifest_sha256": self.hash.hexdigest()}))


def read_manifest(source: Union[str, "os.PathLike[str]", IO[bytes]], name: str = MANIFEST_NAME, *,
                  partial: bool = False) -> Manifest:
    """Parse and check a manifest: a path or a binary file object.  Raises
    :class:`ManifestError` naming the line for anything out of place,
    including a hash that does not match (an edited manifest).

    ``partial``: the manifest of a backup that may not have finished
    (:data:`PARTIAL_NAME`): its header and whole object lines, with no end
    line, an end line saying ``"complete": false`` or a last line cut short
    (a killed backup) taken as such; ``complete`` then says whether it was
    in fact finished."""
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        with open(source, "rb") as f:
            return _read(f.read(), name, partial)
    return _read(source.read(), name, partial)


# a manifest this long is hashed on another thread as its lines are read
# (hashlib lets go of the GIL): ~0.19 us a line less on the calling thread
# of a restore, for a thread started and joined
_HASH_ASIDE = 1 << 20


def _digest_of(data: bytes) -> Callable[[int], str]:
    """``digest(n)``: the SHA-256 (hex) of ``data[:n]``, the lines before
    the end line; for a long manifest already under way on another thread,
    on the guess that the last line is the end line (or one cut short)."""
    def now(n: int) -> str:
        return hashlib.sha256(memoryview(data)[:n]).hexdigest()
    if len(data) < _HASH_ASIDE:
        return now
    guess = data.rfind(b"\n", 0, len(data) - 1) + 1
    done: List[str] = []
    t = threading.Thread(target=lambda: done.append(now(guess)), name="efsfast-manifest-hash",
                         daemon=True)
    t.start()

    def digest(n: int) -> str:
        t.join()
        return done[0] if done and n == guess else now(n)
    return digest


# the object lines of a manifest this long (from where they start) are read
# on threads, in pieces of about this size each at least: ~0.27 us a line
# less on the calling thread of a restore, for threads started and joined
_PIECES_FROM = 1 << 18
_PIECE_BYTES = 1 << 17


def _read_run(rows: ObjectTable, data: bytes, pos: int) -> Tuple[int, int]:
    """``rows.read_run(data, pos)``, on a few threads where the rest of the
    manifest is long (see _core_objpieces.pxi): the same rows either way."""
    left = len(data) - pos
    threads = min(os.cpu_count() or 1, 8, left // _PIECE_BYTES)
    if left < _PIECES_FROM or threads < 2:
        return rows.read_run(data, pos)
    pieces = cut_run(data, pos, threads)
    if run_threads(pieces.work, len(pieces), name="efsfast-manifest"):
        raise KeyboardInterrupt     # (after the pieces: each reads a few MB at most)
    return pieces.add_to(rows)


def _read(data: bytes, name: str, partial: bool = False) -> Manifest:
    digest = _digest_of(data)
    header: Optional[Header] = None
    rows = ObjectTable()
    end = None
    hashed = len(data)      # the lines before the end line (or a last one cut short) are hashed
    pos = number = 0
    while pos < len(data):
        if header is not None and end is None:
            # the object lines as the writer spells them, read in C into rows
            # (json and Entry.from_json cost ~2 us a line in the calling
            # thread of a restore); any other line (or spelling) is json's,
            # as below, its Entry kept in its place among the rows
            pos, taken = _read_run(rows, data, pos)
            number += taken
            if pos >= len(data):
                break
        nl = data.find(b"\n", pos)
        raw = data[pos:] if nl < 0 else data[pos:nl + 1]
        number += 1
        if end is not None:
            raise ManifestError(name, "text after the end line", number)
        if partial and nl < 0:
            hashed = pos
            break               # each line is written whole with its \n: one cut short by a kill
        line_at, pos = pos, pos + len(raw)
        try:
            d = _parse(raw.decode("utf-8"))
            kind = _LINE_TYPES.get(d["type"])
            if kind is None:
                raise ValueError(f"{d['type']!r} is not a valid {LineType.__name__}")
        except (ValueError, KeyError, TypeError) as exc:
            raise ManifestError(name, f"not a manifest line ({exc})", number) from None
        if kind is LineType.END:
            end = (number, d)
            hashed = line_at
            continue
        try:
            if kind is LineType.SET:
                if number != 1 or d.get("format") != FORMAT:
                    raise ManifestError(name, "the set line must come first", number)
                if d.get("version") != VERSION:
                    raise ManifestError(name, f"format version {d.get('version')} is not "
                                        f"{VERSION} (a newer efsfast wrote it?)", number)
                header = Header(**{k: d[k] for k in (
                    "set_id", "created", "source", "efsfast_version", "metadata_source")},
                    since=d.get("since"), refs=d.get("refs") or [])
            elif header is None:
                raise ManifestError(name, "the set line must come first", number)
            else:
                rows.add(Entry.from_json(d))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ManifestError):
                raise
            raise ManifestError(name, f"malformed {kind.value} line ({exc!r})", number) from None
    sha256 = digest(hashed)
    if header is None:
        raise ManifestError(name, "empty: no set line")
    if end is None:
        if partial:             # killed before it could say so
            return Manifest(header, rows, sha256, complete=False)
        raise ManifestError(name, "no end line: the manifest is truncated (an interrupted "
                                  "backup?)")
    number, d = end
    complete = d.get("complete", True) is not False
    if not complete and not partial:
        raise ManifestError(name, "the end line says the set is not complete", number)
    if d.get("manifest_sha256") != sha256:
        raise ManifestError(name, "the manifest's SHA-256 does not match its end line: "
                                  "it was changed after it was written", number)
    if d.get("objects") != len(rows):
        raise ManifestError(name, f"the end line counts {d.get('objects')} objects, the "
                                  f"manifest lists {len(rows)}", number)
    return Manifest(header, rows, sha256, complete=complete,
                    reason=None if complete else str(d.get("reason") or ""))
