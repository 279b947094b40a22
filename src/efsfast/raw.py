"""The EFS raw backup stream from Python: verify, inspect, build.

Everything that knows the byte layout is in the C codec (``_c/``); this
module turns its results into Python objects and adds the synthetic-data
helpers that let tests and users make realistic raw streams without Windows.
"""
from __future__ import annotations

import io
import os
import random
from dataclasses import dataclass, field
from typing import (Any, BinaryIO, Callable, Dict, Iterable, List, Optional, Protocol, Sequence,
                    Tuple, Union)

from . import _codec
from ._errors import EfsError, as_efs_error
# (defined where light modules take them without loading this one; exported here too)
from .rawnames import DEFAULT_PROVIDER as DEFAULT_PROVIDER
from .rawnames import READ_CHUNK as READ_CHUNK
from .rawnames import UNNAMED_STREAM as UNNAMED_STREAM


class Readable(Protocol):
    """A binary file or anything with its ``read``."""
    def read(self, size: int, /) -> bytes: ...      # (only ever given a size)


Source = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", BinaryIO, Readable]


# ---- SIDs ----

def sid_to_str(raw: bytes) -> str:
    """Binary RPC_SID -> "S-1-5-21-..."."""
    rev, count = raw[0], raw[1]
    authority = int.from_bytes(raw[2:8], "big")
    subs = [int.from_bytes(raw[8 + 4 * i:12 + 4 * i], "little") for i in range(count)]
    return "-".join(["S", str(rev), str(authority)] + [str(s) for s in subs])


def sid_from_str(text: str) -> bytes:
    """"S-1-5-21-..." -> binary RPC_SID."""
    parts = text.split("-")
    if len(parts) < 3 or parts[0].upper() != "S":
        raise ValueError(f"not a SID: {text!r}")
    rev, authority, subs = int(parts[1]), int(parts[2]), [int(p) for p in parts[3:]]
    if rev != 1 or len(subs) > 15 or authority >= 1 << 48 or any(s >= 1 << 32 for s in subs):
        raise ValueError(f"not a valid SID: {text!r}")
    return (bytes([rev, len(subs)]) + authority.to_bytes(6, "big")
            + b"".join(s.to_bytes(4, "little") for s in subs))


# ---- results ----

@dataclass(frozen=True)
class KeyEntry:
    """One DDF (user) or DRF (recovery agent) entry of the $EFS metadata."""
    sid: Optional[str]
    thumbprint: Optional[str]
    container: Optional[str]
    provider: Optional[str]
    display_name: Optional[str]
    encrypted_fek_length: int
    flags: int = 0
    pki_type: int = 3


@dataclass(frozen=True)
class Metadata:
    """The decoded $EFS value."""
    version: int
    layout: int
    supported: bool
    length: int
    ddf: List[KeyEntry] = field(default_factory=list)
    drf: List[KeyEntry] = field(default_factory=list)
    efs_id: Optional[str] = None


@dataclass(frozen=True)
class StreamInfo:
    """A data stream of the raw stream (the metadata stream is not listed)."""
    name: str
    size: int
    encrypted: bool
    ciphertext_size: int
    offset: int


@dataclass(frozen=True)
class RawInfo:
    raw_size: int
    streams: List[StreamInfo]
    metadata: Metadata

    @property
    def is_directory_like(self) -> bool:
        """Only the metadata stream: how Windows exports an encrypted directory."""
        return not self.streams


@dataclass(frozen=True)
class DataStream:
    """Input of :func:`build_raw`: ``ciphertext`` is round512(size) bytes for
    an encrypted stream (Windows pads to the 512-byte EFS block)."""
    name: str
    size: int
    ciphertext: bytes
    encrypted: bool = True


# ---- parsing ----

def _chunks(source: Source) -> Iterable[object]:
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            yield from _chunks(f)
        return
    try:
        memoryview(source)       # type: ignore[arg-type]  # (BinaryIO: the TypeError is the test)
    except TypeError:
        pass
    else:
        yield source
        return
    read = getattr(source, "read", None)
    if read is None:
        raise TypeError(f"expected a bytes-like object, a path or a binary file, "
                        f"not {type(source).__name__}")
    while True:
        chunk = read(READ_CHUNK)
        if not chunk:
            return
        yield chunk


class Feedable(Protocol):
    """What takes a raw stream piece by piece: a parser, a decryptor."""
    def feed(self, data: Any, /) -> Any: ...


class FeedWriter:
    """A backup's sink (anything with ``write``) that hands the raw stream
    to ``target.feed`` as it comes: how inspect, verify and decrypt read an
    encrypted object on an efs_raw mount."""

    def __init__(self, target: Feedable) -> None:
        self.target = target

    def write(self, data: Any) -> int:
        self.target.feed(data)
        return len(data)


def _is_encrypted_object(filename: Optional[str]) -> bool:
    """An encrypted file or folder itself (an ntfs-3g efs_raw mount, or
    Windows) rather than a file holding a raw stream: inspect and verify
    read its raw stream as backup() does, as decrypt does."""
    if filename is None:
        return False
    from .volume import is_encrypted
    try:
        return is_encrypted(filename)
    except OSError:
        return False        # (reading it says why it cannot)


def _parse(source: Source, mode: str) -> _codec.RawParser:
    parser = _codec.RawParser(mode)
    filename = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
    try:
        if filename is not None and _is_encrypted_object(filename):
            from .api import backup
            backup(filename, FeedWriter(parser), directory=os.path.isdir(filename))
        else:
            if filename is not None and os.path.isdir(filename):
                raise IsADirectoryError(21, "a folder, not a raw stream or an encrypted "
                                            "file", filename)
            for chunk in _chunks(source):
                parser.feed(chunk)
        parser.finish()
    except EfsError as exc:
        if filename is not None and exc.filename is None:
            exc.filename = filename
        raise
    except OSError as exc:          # cannot open or read it: the same errors as backup()'s
        raise as_efs_error(exc, filename) from None
    return parser


def _utf16(meta: bytes, span: Sequence[int]) -> Optional[str]:
    off, length = span
    if off == 0 and length == 0:
        return None
    return meta[off:off + length].decode("utf-16-le", "replace")


def decode_metadata(meta: bytes, mode: str = "strict") -> Metadata:
    """Validate and decode a $EFS value (rules R10-R12)."""
    layout, version, supported, entries = _codec.meta_decode(meta, mode)
    ddf: List[KeyEntry] = []
    drf: List[KeyEntry] = []
    for e in entries:
        sid_off, sid_len = e["sid"]
        th_off, th_len = e["thumbprint"]
        key = KeyEntry(
            sid=sid_to_str(meta[sid_off:sid_off + sid_len]) if sid_len else None,
            thumbprint=meta[th_off:th_off + th_len].hex() if th_len else None,
            container=_utf16(meta, e["container"]),
            provider=_utf16(meta, e["provider"]),
            display_name=_utf16(meta, e["display_name"]),
            encrypted_fek_length=e["encrypted_fek"][1],
            flags=e["flags"], pki_type=e["pki_type"])
        (drf if e["is_drf"] else ddf).append(key)
    import uuid     # here, as below: with configparser ~3 ms of CPU at every start-up
    efs_id = str(uuid.UUID(bytes_le=bytes(meta[16:32]))) if layout == 1 else None
    return Metadata(version=version, layout=layout, supported=supported,
                    length=len(meta), ddf=ddf, drf=drf, efs_id=efs_id)


def inspect(source: Source, *, mode: str = "strict") -> RawInfo:
    """Validate a raw stream and describe it.

    ``source``: a bytes-like object, a path, or a binary file object.
    Raises :class:`efsfast.RawFormatError` naming the rule and offset.
    """
    parser = _parse(source, mode)
    streams = [StreamInfo(name=name, size=logical, encrypted=flag == 0,
                          ciphertext_size=payload, offset=offset)
               for name, flag, is_meta, offset, logical, payload in parser.streams
               if not is_meta]
    assert parser.metadata is not None      # a finished parse has met the $EFS stream (R4)
    return RawInfo(raw_size=parser.position, streams=streams,
                   metadata=decode_metadata(parser.metadata, mode))


# Header walk (spec sections 1-3): just enough of the layout to tell a file's
# stream from a directory's without reading the data segments.
_RAW_HEADER_LEN = 20
_STREAM_SIGNATURE = "NTFS".encode("utf-16-le")
_SEGMENT_SIGNATURE = "GURE".encode("utf-16-le")
_UNNAMED_NAME = UNNAMED_STREAM.encode("utf-16-le")
# by length: Windows writes no terminator, a reader accepts one (spec 2.1)
_UNNAMED_NAMES = {len(_UNNAMED_NAME): _UNNAMED_NAME, len(_UNNAMED_NAME) + 2: _UNNAMED_NAME + b"\0\0"}
# the raw header, the $EFS stream with its segment, and the next stream's
# header fit in one page unless the $EFS names many users: a small file's
# ciphertext is then not read by the walk (the restore reads it, once)
_PROBE_WINDOW = 4 << 10


def has_unnamed_stream(path: Union[str, "os.PathLike[str]"]) -> Optional[bool]:
    """Whether the raw stream in ``path`` carries an unnamed data stream (a
    file's does; a directory's does not), found by walking the stream and
    segment headers with seeks: the ciphertext is not read, so a tree
    restore reads every source byte once.  ``None`` when the headers do not
    walk (the restore that follows reports the rule and offset)."""
    window, base = b"", 0
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        def read(pos: int, n: int) -> bytes:
            nonlocal window, base
            if not (base <= pos and pos + n <= base + len(window)):
                if hasattr(os, "pread"):
                    window = os.pread(fd, max(n, _PROBE_WINDOW), pos)
                else:                               # Windows has no pread
                    os.lseek(fd, pos, os.SEEK_SET)
                    window = os.read(fd, max(n, _PROBE_WINDOW))
                base = pos
            return window[pos - base:pos - base + n]
        return walk_for_unnamed_stream(read, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def walk_for_unnamed_stream(read: Callable[[int, int], bytes], end: int) -> Optional[bool]:
    """:func:`has_unnamed_stream` over any source of ``end`` bytes:
    ``read(pos, n)`` returns the ``n`` bytes at ``pos`` (fewer past the end).
    Only headers are asked for, in increasing order of ``pos``, so a reader
    of a stream that cannot seek (a tar member) can hand them on as they pass."""
    pos, streams, efs_segments = _RAW_HEADER_LEN, 0, 0
    while True:
        if pos == end:
            # ended after whole streams, a $EFS with its segment at least:
            # no unnamed stream
            return False if efs_segments else None
        head = read(pos, 12)
        if pos > end or len(head) < 12:
            return None
        length = int.from_bytes(head[:4], "little")
        if head[4:12] == _STREAM_SIGNATURE:
            streams += 1
            name_len = int.from_bytes(read(pos + 24, 4), "little")
            if (name_len in _UNNAMED_NAMES
                    and read(pos + 28, name_len) == _UNNAMED_NAMES[name_len]):
                return True
        elif head[4:12] != _SEGMENT_SIGNATURE:
            return None
        elif streams == 1:
            efs_segments += 1
        if length < 12:
            return None
        pos += length


def verify(source: Source, *, mode: str = "strict") -> RawInfo:
    """Check a raw stream against rules R1-R20; returns what :func:`inspect` does.

    ``efsfast.verify`` is this with ``keys`` added (efsfast.check): the
    proof that a key opens the file lives above both this module and the
    decryption package, which builds on this one.
    """
    return inspect(source, mode=mode)


# ---- building ----

def build_raw(metadata: bytes, streams: Sequence[Union[DataStream, Tuple[Any, ...]]] = (),
              *, cluster_shift: int = 12) -> bytes:
    """Lay out a raw stream exactly as Windows does: the $EFS value, then
    each data stream in 64 KiB segments behind 512-byte headers."""
    items = []
    for s in streams:
        if not isinstance(s, DataStream):
            s = DataStream(*s)
        items.append((s.name, s.size, s.ciphertext, s.encrypted))
    return _codec.build_raw(metadata, items, cluster_shift)


@dataclass(frozen=True)
class User:
    """A made-up certificate holder for synthetic metadata (None leaves a
    name out of the entry, as :func:`efsfast.encrypt` does)."""
    sid: Optional[str]
    display_name: Optional[str]
    thumbprint: bytes
    container: Optional[str]
    provider: Optional[str] = DEFAULT_PROVIDER
    encrypted_fek: bytes = b""

    @classmethod
    def random(cls, rng: random.Random, name: Optional[str] = None,
               host: str = "EFSFAST", rid: Optional[int] = None,
               domain: Sequence[int] = (1515790883, 1823135007, 2951370858)) -> "User":
        name = name or "user%04d" % rng.randrange(10000)
        rid = rid if rid is not None else rng.randrange(1000, 100000)
        import uuid
        return cls(sid="S-1-5-21-%d-%d-%d-%d" % (*domain, rid),
                   display_name=f"{name}({name}@{host})",
                   thumbprint=rng.randbytes(20),
                   container=str(uuid.UUID(bytes=rng.randbytes(16))),
                   encrypted_fek=rng.randbytes(256))


def metadata_from_users(users: Sequence[User], recovery_agents: Sequence[User] = (),
                        *, version: int = 2, efs_id: Optional[bytes] = None,
                        flags: int = 0) -> bytes:
    """Build a Version 1-layout $EFS value with one DDF entry per user and
    one DRF entry per recovery agent."""
    def key(u: User, is_drf: bool) -> Tuple[Any, ...]:
        def w(s: Optional[str]) -> Optional[bytes]:
            return None if s is None else s.encode("utf-16-le")
        return (is_drf, flags, sid_from_str(u.sid) if u.sid else None, u.thumbprint,
                w(u.container), w(u.provider), w(u.display_name), u.encrypted_fek)
    keys = [key(u, False) for u in users] + [key(u, True) for u in recovery_agents]
    return _codec.meta_build(version, efs_id if efs_id is not None else os.urandom(16), keys)


def synthetic_metadata(users: int = 1, recovery_agents: int = 0, *,
                       seed: Optional[int] = None, version: int = 2) -> bytes:
    """Realistic but made-up $EFS metadata: RSA-2048-sized FEKs, SIDs,
    thumbprints, key containers and display names."""
    rng = random.Random(seed)
    us = [User.random(rng) for _ in range(users)]
    ras = [User.random(rng, name="recovery%d" % i, rid=500) for i in range(recovery_agents)]
    return metadata_from_users(us, ras, version=version, efs_id=rng.randbytes(16))


def synthetic_raw(size: int = 12, *, named_streams: Optional[Dict[str, int]] = None,
                  directory: bool = False, users: int = 1, recovery_agents: int = 0,
                  seed: Optional[int] = None) -> bytes:
    """A complete, valid raw stream with random ciphertext: an encrypted file
    of ``size`` bytes (plus ``named_streams``: name -> size), or with
    ``directory=True`` the metadata-only stream of an encrypted directory.
    In memory: :func:`write_synthetic_raw` writes the same bytes to a file,
    whatever their size."""
    out = io.BytesIO()
    write_synthetic_raw(out, size, named_streams=named_streams, directory=directory,
                        users=users, recovery_agents=recovery_agents, seed=seed)
    return out.getvalue()


def write_synthetic_raw(out: Sink, size: int = 12, *,
                        named_streams: Optional[Dict[str, int]] = None,
                        directory: bool = False, users: int = 1, recovery_agents: int = 0,
                        seed: Optional[int] = None) -> int:
    """:func:`synthetic_raw` written to ``out`` (a binary file, or a
    ``write`` callable) one segment at a time: any size, in constant memory.
    The same ``seed`` gives the same bytes as :func:`synthetic_raw`.
    Returns the number of bytes written."""
    rng = random.Random(seed)
    meta = synthetic_metadata(users, recovery_agents, seed=rng.randrange(1 << 32))
    streams = []
    if not directory:
        streams.append(FilledStream(UNNAMED_STREAM, size, _RandomFill(rng)))
    for name, n in (named_streams or {}).items():
        streams.append(FilledStream(f":{name}:$DATA", n, _RandomFill(rng)))
    return write_raw(out, meta, streams)


class _RandomFill:
    """Random ciphertext, drawn in order: the writer asks for each stream's
    bytes front to back, and the streams one after another, so the draws
    are those of one ``rng.randbytes`` per stream (the Mersenne Twister's
    bytes come in 4-byte words, and every chunk but a stream's last is a
    multiple of 512)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.next = 0

    def __call__(self, offset: int, length: int) -> bytes:
        if offset != self.next:     # (the writer's order is what makes a seed repeatable)
            raise ValueError(f"random ciphertext asked for at {offset}, not {self.next}")
        self.next = offset + length
        return self.rng.randbytes(length)


# ---- streamed building ----

Fill = Callable[[int, int], Any]
Sink = Union[BinaryIO, Callable[[bytes], Optional[int]]]


@dataclass(frozen=True)
class FilledStream:
    """Input of :func:`write_raw`: a data stream whose ciphertext is asked
    for as it is written, ``fill(offset, length)`` returning that many bytes
    (at most 64 KiB at a time, front to back): round512(size) bytes in all
    for an encrypted stream, ``size`` for a plain one."""
    name: str
    size: int
    fill: Fill
    encrypted: bool = True


def write_raw(out: Sink, metadata: bytes,
              streams: Sequence[Union[FilledStream, DataStream]] = (), *,
              cluster_shift: int = 12) -> int:
    """:func:`build_raw`, written to ``out`` (a binary file, or a ``write``
    callable) one segment at a time instead of built in memory.  Returns the
    number of bytes written.  An exception of ``out`` or of a ``fill`` is
    raised as it was, after which ``out`` holds an incomplete stream: the
    caller removes it."""
    write = out if callable(out) else out.write
    items = []
    for s in streams:
        if isinstance(s, DataStream):
            data = memoryview(s.ciphertext).cast("B")
            items.append((s.name, s.size, _slicer(data), s.encrypted))
        else:
            items.append((s.name, s.size, s.fill, s.encrypted))
    return _codec.write_raw(metadata, items, write, cluster_shift)


def _slicer(data: memoryview) -> Fill:
    def fill(offset: int, length: int) -> memoryview:
        return data[offset:offset + length]
    return fill
