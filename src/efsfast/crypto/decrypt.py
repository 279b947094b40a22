"""Decrypt a raw EFS stream (a ``.efsraw`` file, bytes, a binary file, or an
encrypted object on an ntfs-3g ``efs_raw`` mount) to plaintext files.

One pass, streaming: the raw stream is read in 1 MiB chunks (into one
reused buffer; a large file on a thread of its own, ``reader.py``) and fed
to the C decryptor (``_decrypt.pyx``), which writes each data stream's
plaintext to its own temporary file in 1 MiB writes, on a thread of their
own for a large source (``writer.py``), so that reading, decrypting and
writing overlap; only when the whole stream parsed and decrypted are the
temporaries published under their names.  So a failure, a wrong key or
Ctrl-C leaves nothing, and an existing destination is replaced only with
``overwrite=True``.

Named streams: ``DEST:name``.  On Windows that path is the real alternate
data stream; elsewhere it is a file of that name beside DEST (the form
``cp``, ``tar`` and ``rsync`` carry everywhere).  The plaintext files are
created with mode 0600: they held encrypted data.
"""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field
from typing import (TYPE_CHECKING, Any, BinaryIO, Callable, Dict, Iterator, List, Optional,
                    Tuple, Union, cast)

from .. import _decrypt
from .._errors import CancelledError, EfsError, RawFormatError, as_efs_error
from ..api import ERROR_FILE_EXISTS
from ..newfile import publish_no_replace, remove_quietly
from .fek import SECTOR_ALG, Algorithm, Opened, unwrap
from .keys import KeysArg, Key, Password, as_keys
from ..messages import STDOUT_NAME
from ..rawnames import READ_CHUNK, UNNAMED_STREAM

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers import CipherContext

    from .expect import Cancel, Expected
    from .writer import BlockWriter

    from .._core import CancelToken
    from ..api import PathLike

ERROR_INVALID_NAME = 123
ERROR_CANCELLED = 1223
ERROR_NOT_SUPPORTED = 50
NAMED_AS_ADS = sys.platform == "win32"
PLAINTEXT_MODE = 0o600
# where a data stream goes: sink_for(name, flag) -> an fd, SINK_NULL or SINK_MEMORY
SinkFor = Callable[[str, int], int]


@contextlib.contextmanager
def naming_errors(source: object) -> Iterator[Optional[str]]:
    """OSErrors raised inside that name no file get the source's path."""
    filename = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
    try:
        yield filename
    except OSError as exc:
        if filename is not None and exc.filename is None:
            exc.filename = filename
        raise


class _Handler:
    """Python's part of a decryption: unwrap the FEK when the $EFS arrives,
    open and close each data stream's sink."""

    def __init__(self, keys: List[Key], mode: str, sink_for: SinkFor, force_ecb: bool = False):
        self.keys, self.mode, self.sink_for, self.force_ecb = keys, mode, sink_for, force_ecb
        self.opened: Optional[Opened] = None
        self.ecb: Optional[CipherContext] = None
        self.streams: List[Tuple[str, int]] = []          # (name, logical size)
        self.memory: Dict[str, bytes] = {}

    @property
    def opened_by(self) -> Opened:
        """``opened`` of a finished decryption (every raw stream that parses
        starts with its $EFS, which ``on_metadata`` opened)."""
        if self.opened is None:
            raise RuntimeError("the decryption ended without opening a $EFS")
        return self.opened

    def on_metadata(self, meta: bytes) -> Tuple[int, bytearray]:
        fk = unwrap(meta, self.keys, self.mode)
        self.opened = fk.opened
        alg = fk.opened.algorithm
        key = fk.take()
        if alg != Algorithm.CALG_AES_256 or self.force_ecb or not _decrypt.have_aesni():
            from cryptography.hazmat.primitives.ciphers import Cipher, modes
            from .encrypt import block_cipher
            self.ecb = Cipher(block_cipher(alg, key), modes.ECB()).decryptor()
        return SECTOR_ALG[alg], key

    def open_stream(self, name: str, flag: int) -> int:
        return self.sink_for(name, flag)

    @property
    def sink_path(self) -> Optional[str]:
        """The file being written (named in write errors)."""
        return getattr(self.sink_for, "current", None)

    def close_stream(self, name: str, logical: int, data: Optional[bytes]) -> None:
        self.streams.append((name, logical))
        if data is not None:
            self.memory[name] = data
        closer = getattr(self.sink_for, "close", None)
        if closer is not None:
            closer(name)


def is_object(source: object) -> bool:
    """An encrypted file or folder itself (ntfs-3g efs_raw, or Windows),
    rather than a raw stream stored in a file."""
    if not isinstance(source, (str, os.PathLike)):
        return False
    from ..volume import is_encrypted
    return is_encrypted(os.fspath(source))


def run(source: Any, keys: KeysArg, sink_for: SinkFor, *, mode: str = "strict",
        force_ecb: bool = False, cancel: Optional[Cancel] = None, expect: Optional[Expected] = None,
        writer: Optional[BlockWriter] = None,
        encrypted_object: Optional[bool] = None) -> _Handler:
    """Decrypt ``source`` with ``keys``; ``sink_for(name, flag)`` says where
    each data stream goes (an fd, ``_decrypt.SINK_NULL`` or ``SINK_MEMORY``).
    ``expect``: the raw stream's size and SHA-256 (a set's manifest line),
    checked from the bytes read, before this returns.  ``writer``: the
    thread that writes file sinks (their descriptors closed through it).
    ``encrypted_object``: whether ``source`` is an encrypted object rather
    than a raw stream, where the caller knows (a tree walk asked already)."""
    handler = _Handler(as_keys(keys), mode, sink_for, force_ecb)
    dec = _decrypt.Decryptor(handler, mode, force_ecb, writer)
    try:
        with naming_errors(source) as filename:
            if is_object(source) if encrypted_object is None else encrypted_object:
                if expect is not None:
                    raise ValueError("expect= checks a raw stream, not an encrypted object")
                # (an encrypted object is a path: is_object says so, or the caller did)
                assert filename is not None
                from ..api import backup
                from ..raw import FeedWriter
                # (C checks a CancelToken: forked workers, whose token is
                # not one, are given raw streams only)
                backup(filename, FeedWriter(dec), directory=os.path.isdir(filename),
                       cancel=cast("Optional[CancelToken]", cancel))
                dec.finish()
            else:
                _feed_stream(dec, source, filename, cancel, expect)
    finally:
        dec.close()
    return handler


def _reading(source: Any) -> Iterator[Any]:
    """The raw stream in chunks: a bytes-like source whole; a file read
    into one reused buffer (each chunk is consumed before the next read:
    no allocation and no fresh pages per chunk), a large file by a thread
    of its own into a few reused buffers (``reader.py``)."""
    size = READ_CHUNK
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb", buffering=0) as f:
            length = os.fstat(f.fileno()).st_size
            if length >= READER_FROM:
                from .reader import read_ahead      # (a thread: only for a large file)
                yield from read_ahead(f.readinto, size)
                return
            # a small file's buffer is its size (+1: the read that ends it
            # returns less), not a megabyte to allocate and clear per file
            yield from _read_into(f.readinto, min(size, length + 1))
        return
    try:
        memoryview(source)
    except TypeError:
        pass
    else:
        yield source
        return
    readinto = getattr(source, "readinto", None)
    if readinto is None:
        from .. import raw
        yield from raw._chunks(source)
        return
    yield from _read_into(readinto, size)


def _read_into(readinto: Callable[[bytearray], Optional[int]], size: int) -> Iterator[memoryview]:
    buf = bytearray(size)
    with memoryview(buf) as view:
        while n := readinto(buf):
            yield view[:n]


def _feed_stream(dec: _decrypt.Decryptor, source: Any, filename: Optional[str],
                 cancel: Optional[Cancel], expect: Optional[Expected]) -> None:
    chunks = _reading(source)
    tally = None
    if expect is not None:
        from .expect import Tally
        tally = Tally(expect)
    try:
        for chunk in chunks:
            if cancel is not None and cancel.cancelled:
                raise CancelledError(ERROR_CANCELLED, "cancelled", filename)
            if tally is not None:
                tally.update(chunk)
            dec.feed(chunk)
        dec.finish()
    except RawFormatError as exc:   # damage: name the hashes if they differ (a read error
        if tally is None:           # while draining stands for itself)
            raise
        if tally.drain(chunks, cancel):
            tally.check(filename, cause=exc)
        raise
    if tally is not None:
        tally.check(filename)


@dataclass(frozen=True)
class Decrypted:
    """The plaintext streams of a raw stream, in memory: ``streams`` maps the
    stream name (``"::$DATA"`` for the unnamed one) to its bytes."""
    streams: Dict[str, bytes] = field(repr=False)
    opened: Opened

    @property
    def data(self) -> bytes:
        return self.streams.get(UNNAMED_STREAM, b"")


def decrypt_bytes(source: Any, keys: KeysArg, *, mode: str = "strict",
                  force_ecb: bool = False) -> Decrypted:
    """Decrypt into memory (for tests and small files)."""
    h = run(source, keys, lambda name, flag: _decrypt.SINK_MEMORY, mode=mode, force_ecb=force_ecb)
    return Decrypted(dict(h.memory), h.opened_by)


@dataclass(frozen=True)
class DecryptResult:
    path: str
    bytes: int                       # plaintext bytes written, all streams
    streams: List[Tuple[str, int]]   # (name, size) per data stream
    opened: Opened
    directory: bool = False

    @property
    def files(self) -> List[str]:
        """What this wrote: ``path``, and (off Windows) ``path:name`` per named stream."""
        if NAMED_AS_ADS:
            return [self.path]
        return [self.path] + [f"{self.path}:{stream_file_name(n)}" for n, _ in self.streams
                              if n != UNNAMED_STREAM]


def stream_file_name(name: str) -> str:
    """":name:$DATA" -> "name"; names that cannot be a file name are refused."""
    short = name[1:-len(":$DATA")] if name.startswith(":") and name.endswith(":$DATA") else name
    if not short or any(c in short for c in "/\\\0") or short in (".", ".."):
        raise EfsError(ERROR_INVALID_NAME, f"the stream name {name!r} cannot be written as a file")
    return short


class _Files:
    """Temporary files for each data stream of one destination."""

    def __init__(self, dest: str, overwrite: bool, writer: Optional[BlockWriter] = None):
        self.dest, self.overwrite = dest, overwrite
        self.writer = writer        # while set, descriptors are closed after their writes
        self.parent = os.path.dirname(dest) or "."
        self.temps: Dict[str, Tuple[str, str]] = {}     # name -> (tmp path, final path)
        self.fds: Dict[str, int] = {}
        self.main_tmp = self._tmp_name(dest)
        self.current: Optional[str] = None
        if NAMED_AS_ADS:     # named streams become ADSs of the main temporary
            self._open(UNNAMED_STREAM, self.main_tmp, dest, keep_open=False)

    def _tmp_name(self, final: str) -> str:
        # (os.urandom, not uuid4: the uuid module imports platform, a cost
        # every decrypt would pay at start-up)
        return os.path.join(self.parent, f".{os.path.basename(final)}.efsfast-"
                                         f"{os.urandom(4).hex()}.tmp")

    def _open(self, name: str, tmp: str, final: str, keep_open: bool = True) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(tmp, flags, PLAINTEXT_MODE)
        except OSError as exc:      # (a missing folder, no room, ...): the user's name,
            raise as_efs_error(exc, final) from None    # never the temporary's
        self.temps[name] = (tmp, final)
        if keep_open:
            self.fds[name] = fd
        else:
            os.close(fd)
        return fd

    def __call__(self, name: str, flag: int) -> int:
        if name == UNNAMED_STREAM:
            self.current = self.dest
            if NAMED_AS_ADS:
                fd = os.open(self.main_tmp, os.O_WRONLY | getattr(os, "O_BINARY", 0))
                self.fds[name] = fd
                return fd
            final, tmp = self.dest, self.main_tmp
        else:
            short = stream_file_name(name)
            final = f"{self.dest}:{short}"
            tmp = f"{self.main_tmp}:{short}" if NAMED_AS_ADS else self._tmp_name(final)
            if not self.overwrite and not NAMED_AS_ADS and os.path.lexists(final):
                raise EfsError(ERROR_FILE_EXISTS, "the destination exists (pass overwrite=True)",
                               final)
        self.current = final
        return self._open(name, tmp, final)

    def close(self, name: str) -> None:
        fd = self.fds.pop(name, None)
        if fd is None:
            return
        if self.writer is not None:
            self.writer.close_fd(fd)
        else:
            os.close(fd)

    def stop_writer(self, ok: bool) -> None:
        """Everything written and closed (``ok``: raise a write error), or
        the writes dropped; either way no descriptor is written after this."""
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.finish() if ok else writer.abort()

    def discard(self) -> None:
        for name in list(self.fds):
            self.close(name)
        for tmp, _final in self.temps.values():
            if os.path.lexists(tmp):
                remove_quietly(tmp)

    def publish(self) -> None:
        """Named streams first, the main file last; undo on failure."""
        order = [n for n in self.temps if n != UNNAMED_STREAM]
        order += [UNNAMED_STREAM] if UNNAMED_STREAM in self.temps else []
        if NAMED_AS_ADS:
            order = [UNNAMED_STREAM]
        done: List[str] = []
        try:
            for name in order:
                tmp, final = self.temps[name]
                if self.overwrite:
                    os.replace(tmp, final)
                else:
                    publish_no_replace(tmp, final)
                done.append(final)
        except BaseException:
            for final in done:
                remove_quietly(final)
            self.discard()
            raise


class _Stream:
    """The sink of a decryption into a binary file object (standard output):
    the unnamed stream only, written to a duplicate of its descriptor (the
    object itself stays open).  A named stream has no place there: it is
    refused, naming it, rather than dropped."""

    def __init__(self, out: BinaryIO, name: str):
        out.flush()                 # what was buffered goes first
        self.fd = os.dup(out.fileno())
        self.name = name
        self.current: Optional[str] = name
        self.writer: Optional[BlockWriter] = None

    def __call__(self, name: str, flag: int) -> int:
        if name != UNNAMED_STREAM:
            raise EfsError(ERROR_NOT_SUPPORTED, f"it has a named stream "
                                                f"({stream_file_name(name)}), which {self.name} "
                                                "cannot carry: decrypt it to a file")
        return self.fd

    def close(self, name: str = "") -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _decrypt_to_stream(source: Any, out: BinaryIO, keys: KeysArg, *, name: str,
                       **options: Any) -> DecryptResult:
    sink = _Stream(out, name)
    try:
        h = run(source, keys, sink, **options)
    finally:
        sink.close()
    # no data stream at all: a folder (or an empty file), nothing to write
    return DecryptResult(name, sum(size for _, size in h.streams), list(h.streams),
                         h.opened_by, directory=not h.streams)


# a source from this size on gets a thread for its writes, and a raw stream
# file one for its reads (starting one costs about 0.1 ms; the small files
# of a tree run in parallel with each other)
WRITER_FROM = 8 << 20
READER_FROM = WRITER_FROM


def _large(source: Any) -> bool:
    """Whether ``source`` is worth a writer thread (one of unknown length,
    such as standard input, is)."""
    if isinstance(source, (str, os.PathLike)):
        try:
            return os.stat(source).st_size >= WRITER_FROM
        except OSError:
            return False            # (the decryption says why it cannot read it)
    try:
        return memoryview(source).nbytes >= WRITER_FROM
    except TypeError:
        return True


def decrypt(source: Any, dest: Union[PathLike, BinaryIO], keys: KeysArg, *,
            overwrite: bool = False, directory: Optional[bool] = None, mode: str = "strict",
            cancel: Optional[Cancel] = None, password: Password = None,
            expect: Optional[Expected] = None,
            encrypted_object: Optional[bool] = None) -> DecryptResult:
    """Decrypt ``source`` (a raw stream: path, bytes or binary file; or an
    encrypted object on an ntfs-3g efs_raw mount) into the plaintext file
    ``dest`` (named streams as ``dest:name``, see the module doc).

    ``keys``: :class:`Key` objects or key file paths (``password`` for
    those).  A raw stream with no unnamed data stream is an encrypted
    folder and becomes the folder ``dest`` (``directory=False`` makes an
    empty file instead).  Raises :class:`NotDecryptableError` when no key
    opens the file; nothing is left behind on any failure.  ``expect``: the
    raw stream's size and SHA-256 from a set's manifest, checked on the
    bytes as they are decrypted; a mismatch raises
    :class:`~efsfast.crypto.expect.ObjectMismatchError` and publishes nothing.
    ``encrypted_object``: see :func:`run`.  ``dest`` may be a binary
    file object with a ``fileno`` (standard output): the unnamed stream is
    written there; a named stream is refused (it has no place there), a
    folder writes nothing.
    """
    keys = as_keys(keys, password)
    if not isinstance(dest, (str, os.PathLike)):    # a binary file object: standard output
        return _decrypt_to_stream(source, dest, keys, name=STDOUT_NAME, mode=mode,
                                  cancel=cancel, expect=expect,
                                  encrypted_object=encrypted_object)
    dest = os.fspath(dest)
    if not overwrite and os.path.lexists(dest):
        raise EfsError(ERROR_FILE_EXISTS, "the destination exists (pass overwrite=True)", dest)
    writer = None
    if _large(source):
        from .writer import BlockWriter     # (a thread: only for a large source)
        writer = BlockWriter()
    files = _Files(dest, overwrite, writer)
    try:
        h = run(source, keys, files, mode=mode, cancel=cancel, expect=expect,
                writer=files.writer, encrypted_object=encrypted_object)
        files.stop_writer(ok=True)
        has_main = any(n == UNNAMED_STREAM for n, _ in h.streams)
        folder = not has_main and directory is not False
        if folder and NAMED_AS_ADS:
            if any(n != UNNAMED_STREAM for n, _ in h.streams):
                raise EfsError(ERROR_NOT_SUPPORTED, "a folder's named streams are not written "
                                                    "on Windows yet", dest)
            files.discard()             # the placeholder made for ADSs
        if folder and not os.path.isdir(dest):
            os.mkdir(dest)
        elif not has_main and not folder:   # an encrypted empty file
            files._open(UNNAMED_STREAM, files.main_tmp, dest, keep_open=False)
        if not (folder and NAMED_AS_ADS):
            files.publish()
    except BaseException:
        files.stop_writer(ok=False)
        files.discard()
        raise
    total = sum(size for _, size in h.streams)
    return DecryptResult(dest, total, list(h.streams), h.opened_by, directory=folder)
