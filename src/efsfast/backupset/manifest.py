"""The backup-set manifest: one JSON object per line (docs/BACKUP-SETS.md).

Line 1 describes the set, then one line per object, then an end line that
carries the object count and the SHA-256 of every byte before it, so that
``head -n -1 MANIFEST | sha256sum`` checks the manifest without efsfast.
Lines are written as objects finish; the hash runs along.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import IO, Iterable, List, Optional

MANIFEST_NAME = "efsfast-manifest.jsonl"
SUFFIX = ".efsraw"
FORMAT = "efsfast-set"
VERSION = 1


class LineType(str, Enum):
    SET = "set"
    OBJECT = "object"
    END = "end"


class Kind(str, Enum):
    FILE = "file"
    DIRECTORY = "directory"              # an encrypted folder: it has a raw stream
    PLAIN_DIRECTORY = "plain-directory"  # an unencrypted folder above objects: metadata only


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
    meta: dict = field(default_factory=dict)
    ref: Optional[str] = None
    failed: Optional[str] = None

    def to_json(self) -> dict:
        d = {"type": LineType.OBJECT.value, "path": self.path, "kind": self.kind.value}
        for k in ("raw_size", "sha256", "source_size", "efs_sha256", "ref", "failed"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        if self.meta:
            d["meta"] = self.meta
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Entry":
        return cls(path=d["path"], kind=Kind(d["kind"]), raw_size=d.get("raw_size"),
                   sha256=d.get("sha256"), source_size=d.get("source_size"),
                   efs_sha256=d.get("efs_sha256"), meta=d.get("meta") or {},
                   ref=d.get("ref"), failed=d.get("failed"))

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
    since: Optional[dict] = None            # {"set_id", "path", "manifest_sha256"}
    refs: List[dict] = field(default_factory=list)   # every set an entry's ref names

    def to_json(self) -> dict:
        return {"type": LineType.SET.value, "format": FORMAT, "version": VERSION,
                "set_id": self.set_id, "created": self.created, "source": self.source,
                "efsfast_version": self.efsfast_version,
                "metadata_source": self.metadata_source, "since": self.since,
                "refs": self.refs}

    @classmethod
    def new(cls, source: str, metadata_source: str, since: Optional[dict] = None,
            refs: Optional[List[dict]] = None) -> "Header":
        from .. import __version__
        now = datetime.datetime.now(datetime.timezone.utc)
        return cls(set_id=str(uuid.uuid4()), created=now.isoformat(timespec="seconds"),
                   source=source, efsfast_version=__version__,
                   metadata_source=metadata_source, since=since, refs=refs or [])


@dataclass
class Manifest:
    header: Header
    entries: List[Entry]
    sha256: str                 # over every line before the end line

    def by_path(self) -> dict:
        return {e.path: e for e in self.entries}


def _line(obj: dict) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
            + "\n").encode("utf-8")


class ManifestWriter:
    """Writes the lines to a binary file object as they come; ``close``
    adds the end line with the count and the hash."""

    def __init__(self, out: IO[bytes], header: Header):
        self.out = out
        self.hash = hashlib.sha256()
        self.count = 0
        self.header = header
        self._put(header.to_json())

    def _put(self, obj: dict) -> None:
        b = _line(obj)
        self.hash.update(b)
        self.out.write(b)

    def add(self, entry: Entry) -> None:
        self._put(entry.to_json())
        self.count += 1

    def finish(self) -> str:
        digest = self.hash.hexdigest()
        self.out.write(_line({"type": LineType.END.value, "objects": self.count,
                              "manifest_sha256": digest}))
        return digest


def read_manifest(source, name: str = MANIFEST_NAME) -> Manifest:
    """Parse and check a manifest: a path or a binary file object.  Raises
    :class:`ManifestError` naming the line for anything out of place,
    including a hash that does not match (an edited manifest)."""
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        with open(source, "rb") as f:
            return _read(f, name)
    return _read(source, name)


def _read(f: Iterable[bytes], name: str) -> Manifest:
    h = hashlib.sha256()
    header: Optional[Header] = None
    entries: List[Entry] = []
    end = None
    for number, raw in enumerate(f, 1):
        if end is not None:
            raise ManifestError(name, "text after the end line", number)
        try:
            d = json.loads(raw.decode("utf-8"))
            kind = LineType(d["type"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ManifestError(name, f"not a manifest line ({exc})", number) from None
        if kind is LineType.END:
            end = (number, d)
            continue
        h.update(raw)
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
                entries.append(Entry.from_json(d))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ManifestError):
                raise
            raise ManifestError(name, f"malformed {kind.value} line ({exc!r})", number) from None
    if header is None:
        raise ManifestError(name, "empty: no set line")
    if end is None:
        raise ManifestError(name, "no end line: the manifest is truncated (an interrupted "
                                  "backup?)")
    number, d = end
    if d.get("manifest_sha256") != h.hexdigest():
        raise ManifestError(name, "the manifest's SHA-256 does not match its end line: "
                                  "it was changed after it was written", number)
    if d.get("objects") != len(entries):
        raise ManifestError(name, f"the end line counts {d.get('objects')} objects, the "
                                  f"manifest lists {len(entries)}", number)
    return Manifest(header, entries, h.hexdigest())
