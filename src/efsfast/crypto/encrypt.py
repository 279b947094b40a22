"""Encrypt plaintext into a raw EFS stream for one or more certificates
(spec section 10, in reverse): a fresh random FEK, wrapped for every
recipient (DDF) and recovery agent (DRF) with only their public keys, and
each data stream in 512-byte CBC sectors with the offset-derived IVs.

Recipients are certificates (``x509.Certificate`` objects, or the paths of
PEM, DER or PFX files: :func:`efsfast.crypto.load_certificate`), loaded
keys, or bare public keys.
The raw stream is written one 64 KiB segment at a time
(:func:`efsfast.raw.write_raw`): :func:`encrypt_file` encrypts a file of
any size in constant memory.

What it makes is what :func:`efsfast.decrypt` reads; that Windows accepts
such streams (through WriteEncryptedFileRaw) has NOT been verified here.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import (TYPE_CHECKING, Any, BinaryIO, Callable, List, Mapping, Optional, Sequence,
                    Tuple, Union, cast)

from .. import _decrypt
from ..newfile import new_file
from ._deps import require_cryptography
from .fek import NAMES, SECTOR_ALG, Algorithm, KEY_LENGTH, fek_blob, wrap
from .keys import Key, Password, PathLike
from ..rawnames import DEFAULT_PROVIDER, UNNAMED_STREAM

if TYPE_CHECKING:   # cryptography is optional: imported where it is used
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
    # (raw.py is loaded when encrypting: `efsfast decrypt` imports this module, never raw)
    from .. import raw
    from cryptography.hazmat.primitives.ciphers import BlockCipherAlgorithm
    from cryptography.x509 import Certificate

SECTOR = 512
StreamsArg = Union[None, bytes, bytearray, memoryview, Mapping[str, bytes]]
KeyBytes = Union[bytes, bytearray]     # a FEK (a bytearray, to be wiped after use)
# what a recipient is made from (see recipient)
RecipientSource = Union["Certificate", Key, "RSAPublicKey", "RSAPrivateKey"]


def block_cipher(alg: Algorithm, key: KeyBytes) -> BlockCipherAlgorithm:
    """The ``cryptography`` algorithm object for a FEK."""
    from cryptography.hazmat.primitives.ciphers import algorithms
    if alg == Algorithm.CALG_AES_256:
        return algorithms.AES(bytes(key))
    try:       # cryptography >= 43 keeps 3DES among the "decrepit" ciphers
        from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    except ImportError:
        TripleDES = algorithms.TripleDES  # type: ignore[misc]  # (cryptography 42)
    return TripleDES(bytes(key))


@dataclass(frozen=True)
class Recipient:
    """Who can open the file: a public key, the thumbprint $EFS lists for it
    (SHA-1 of the DER certificate) and the names shown in the entry."""
    public_key: RSAPublicKey
    thumbprint: bytes
    display_name: Optional[str] = None
    sid: Optional[str] = None
    container: Optional[str] = None
    provider: Optional[str] = DEFAULT_PROVIDER


def recipient(cert_or_key: Union[Recipient, RecipientSource, PathLike], *,
              display_name: Optional[str] = None, sid: Optional[str] = None,
              container: Optional[str] = None, password: Password = None) -> Recipient:
    """A :class:`Recipient` from an ``x509.Certificate`` (thumbprint and
    display name from it), the path of a certificate file (PEM, DER, or a
    PFX opened with ``password``: :func:`efsfast.crypto.load_certificate`), an
    :class:`efsfast.crypto.Key`, or a bare RSA public key (thumbprint:
    SHA-1 of its DER SubjectPublicKeyInfo)."""
    require_cryptography()
    from cryptography import x509
    if isinstance(cert_or_key, Recipient):
        return cert_or_key
    if isinstance(cert_or_key, (str, os.PathLike)):
        from .certs import load_certificate
        cert_or_key = load_certificate(cert_or_key, password)
    import hashlib      # (here, not at the top: decrypt imports this module and never hashes)
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    cert = getattr(cert_or_key, "certificate", None) if not isinstance(
        cert_or_key, x509.Certificate) else cert_or_key
    if cert is not None:
        if display_name is None:
            cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
            display_name = str(cn[0].value) if cn else cert.subject.rfc4514_string()
        # an RSA certificate: EFS wraps FEKs with RSA (wrap fails on any other)
        return Recipient(cast("RSAPublicKey", cert.public_key()),
                         hashlib.sha1(cert.public_bytes(Encoding.DER)).digest(),
                         display_name, sid, container)
    pub: Any = getattr(cert_or_key, "private_key", cert_or_key)   # duck-typed: a key object
    pub = pub.public_key() if hasattr(pub, "private_numbers") else pub
    der = pub.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return Recipient(pub, hashlib.sha1(der).digest(), display_name, sid, container)


def encrypt_sectors(alg: Algorithm, key: KeyBytes, plaintext: Union[bytes, bytearray, memoryview],
                    offset: int = 0) -> bytes:
    """CBC-encrypt ``plaintext`` (zero-padded to whole sectors) sector by
    sector, the first sector at stream ``offset``."""
    from cryptography.hazmat.primitives.ciphers import Cipher, modes
    data = bytes(plaintext)
    if len(data) % SECTOR:
        data += bytes(SECTOR - len(data) % SECTOR)
    cipher_alg = block_cipher(alg, key)
    out = bytearray(len(data))
    for s in range(0, len(data), SECTOR):
        iv = _decrypt.sector_iv(SECTOR_ALG[alg], offset + s)
        enc = Cipher(cipher_alg, modes.CBC(iv)).encryptor()
        out[s:s + SECTOR] = enc.update(data[s:s + SECTOR]) + enc.finalize()
    return bytes(out)


# a recipient or recovery agent as the API takes it: a certificate file's
# path, a certificate, a key, a public key, or a Recipient
RecipientArg = Union[Recipient, RecipientSource, PathLike]
Recipients = Union[RecipientArg, Sequence[RecipientArg]]
Plain = Callable[[int, int], Union[bytes, memoryview]]      # (offset, length) -> plaintext


def _stream_items(streams: StreamsArg) -> List[Tuple[str, Union[bytes, bytearray, memoryview]]]:
    if streams is None:
        return []
    if not isinstance(streams, Mapping):
        return [(UNNAMED_STREAM, streams)]
    items: List[Tuple[str, Union[bytes, bytearray, memoryview]]] = []
    for name, data in streams.items():
        if name in ("", UNNAMED_STREAM):
            items.insert(0, (UNNAMED_STREAM, data))
        else:
            items.append((name if name.startswith(":") else f":{name}:$DATA", data))
    return items


def encrypt(streams: StreamsArg, recipients: Recipients, recovery_agents: Recipients = (), *,
            password: Password = None, algorithm: str = "aes256", cluster_shift: int = 12,
            efs_version: int = 2) -> bytes:
    """A raw EFS stream holding ``streams`` encrypted for ``recipients``
    (DDF entries) and ``recovery_agents`` (DRF entries).

    ``streams``: the unnamed stream's bytes; or a mapping name -> bytes
    (``""`` is the unnamed stream, other names become named streams); or
    None for an encrypted directory.  Recipients and recovery agents: one or
    a list of certificate files (PEM, DER or PFX paths), ``x509``
    certificates, keys or public keys (see :func:`recipient`), or
    :class:`Recipient` objects.  ``password``: for protected PFX files (a
    str/bytes, or a callable ``password(path)`` asked only for those).
    ``algorithm``: "aes256" or "3des".  A fresh random FEK each call.

    efsfast decrypts what this makes; Windows' acceptance of it has not been
    verified.
    """
    out = io.BytesIO()
    with _Encryption(recipients, recovery_agents, password, algorithm, efs_version) as job:
        job.write(out, [(name, len(memoryview(data).cast("B")), _memory_plain(data))
                        for name, data in _stream_items(streams)], cluster_shift)
    return out.getvalue()


@dataclass(frozen=True)
class EncryptResult:
    """What :func:`encrypt_file` wrote: the raw stream's path (None for a
    file object), its size, the plaintext bytes encrypted, and for whom."""
    path: Optional[str]
    bytes: int
    plain_bytes: int
    recipients: Tuple[str, ...]
    recovery_agents: Tuple[str, ...]
    algorithm: str


def encrypt_file(plain: PathLike, dest: Union[PathLike, BinaryIO], recipients: Recipients,
                 recovery_agents: Recipients = (), *,
                 password: Password = None, overwrite: bool = False, sync: bool = True,
                 algorithm: str = "aes256", cluster_shift: int = 12,
                 efs_version: int = 2) -> EncryptResult:
    """Encrypt the file ``plain`` into the raw stream ``dest`` (a path, or a
    binary file such as ``sys.stdout.buffer``), read and written 64 KiB at a
    time.  A path gets the stream only once it is complete (fsynced with
    ``sync``): on any failure nothing is left there, and an existing file is
    replaced only with ``overwrite=True``.  The other arguments are
    :func:`encrypt`'s.  A plaintext file that changes size while it is read
    is an error (its raw stream would not be a snapshot of it)."""
    plain = os.fspath(plain)
    if not isinstance(dest, (str, os.PathLike)):
        return _encrypt_to(plain, dest, None, recipients, recovery_agents, password,
                           algorithm, cluster_shift, efs_version)
    target = os.fspath(dest)
    if not overwrite:
        from ..newfile import refuse_existing
        refuse_existing(target)         # before a certificate is read or a password asked
    with open(plain, "rb"):             # a missing plaintext: said before any password is asked
        pass
    with new_file(target, overwrite=overwrite, sync=sync) as out:
        return _encrypt_to(plain, out, target, recipients, recovery_agents, password,
                           algorithm, cluster_shift, efs_version)


def _encrypt_to(plain: str, out: BinaryIO, path: Optional[str], recipients: Recipients,
                recovery_agents: Recipients, password: Password, algorithm: str,
                cluster_shift: int, efs_version: int) -> EncryptResult:
    with _Encryption(recipients, recovery_agents, password, algorithm, efs_version) as job, \
            open(plain, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        fill = _FilePlain(f, plain, size)
        written = job.write(out, [(UNNAMED_STREAM, size, fill)], cluster_shift)
        fill.check_end()
    return EncryptResult(path, written, size, tuple(u.display_name or "" for u in job.users),
                         tuple(u.display_name or "" for u in job.agents), algorithm.lower())


class _Encryption:
    """One raw stream's FEK and $EFS: the FEK is random, wrapped for every
    recipient and agent, and overwritten when the ``with`` block ends."""

    def __init__(self, recipients: Recipients, recovery_agents: Recipients,
                 password: Password, algorithm: str, efs_version: int) -> None:
        require_cryptography()
        try:
            self.alg = NAMES[algorithm.lower()]
        except KeyError:
            raise ValueError(f"algorithm must be one of {sorted(NAMES)}, "
                             f"not {algorithm!r}") from None
        users = [recipient(r, password=password) for r in _as_list(recipients)]
        agents = [recipient(r, password=password) for r in _as_list(recovery_agents)]
        if not users:
            raise ValueError("at least one recipient (a DDF entry) is needed")
        self.fek = bytearray(os.urandom(KEY_LENGTH[self.alg]))
        try:
            blob = fek_blob(self.alg, self.fek)
            self.users = [_user(r, blob) for r in users]
            self.agents = [_user(r, blob) for r in agents]
            from .. import raw
            self.meta = raw.metadata_from_users(self.users, self.agents, version=efs_version)
        except BaseException:
            self.__exit__()
            raise

    def __enter__(self) -> "_Encryption":
        return self

    def __exit__(self, *exc: object) -> None:
        self.fek[:] = bytes(len(self.fek))

    def write(self, out: raw.Sink, streams: Sequence[Tuple[str, int, Plain]],
              cluster_shift: int) -> int:
        """``streams``: (name, logical size, plain(offset, length) -> the
        plaintext there, short only at the end)."""
        def sealed(plain: Plain) -> raw.Fill:
            def fill(offset: int, length: int) -> bytes:
                return encrypt_sectors(self.alg, self.fek, plain(offset, length), offset)
            return fill
        from .. import raw
        return raw.write_raw(out, self.meta,
                             [raw.FilledStream(n, size, sealed(p)) for n, size, p in streams],
                             cluster_shift=cluster_shift)


def _as_list(items: Optional[Recipients]) -> List[RecipientArg]:
    if items is None:
        return []
    if isinstance(items, (str, os.PathLike, Recipient)) or not isinstance(items, Sequence):
        return [items]
    return list(items)


def _memory_plain(data: Union[bytes, bytearray, memoryview]) -> Plain:
    view = memoryview(data).cast("B")

    def plain(offset: int, length: int) -> memoryview:
        return view[offset:offset + length]
    return plain


class _FilePlain:
    """The plaintext of an open file, read front to back as the writer asks."""

    def __init__(self, f: BinaryIO, path: str, size: int) -> None:
        self.f, self.path, self.size = f, path, size

    def __call__(self, offset: int, length: int) -> bytes:
        want = max(0, min(length, self.size - offset))
        data = self.f.read(want)
        while len(data) < want:
            more = self.f.read(want - len(data))
            if not more:
                raise OSError(f"{self.path}: the file became shorter while it was read "
                              f"({offset + len(data)} bytes, {self.size} when it was opened)")
            data += more
        return data

    def check_end(self) -> None:
        if self.f.read(1):
            raise OSError(f"{self.path}: the file grew while it was read (it had "
                          f"{self.size} bytes when it was opened)")


def _user(r: Recipient, blob: bytes) -> raw.User:
    from .. import raw
    return raw.User(sid=r.sid, display_name=r.display_name, thumbprint=r.thumbprint,
                    container=r.container, provider=r.provider if r.container else None,
                    encrypted_fek=wrap(r.public_key, blob))
