"""Encrypt plaintext into a raw EFS stream for one or more certificates
(spec section 10, in reverse): a fresh random FEK, wrapped for every
recipient (DDF) and recovery agent (DRF) with only their public keys, and
each data stream in 512-byte CBC sectors with the offset-derived IVs.

What it makes is what :func:`efsfast.decrypt` reads; that Windows accepts
such streams (through WriteEncryptedFileRaw) has NOT been verified here.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, List, Mapping, Optional, Sequence, Tuple, Union, cast

from .. import _decrypt, raw
from ._deps import require_cryptography
from .fek import NAMES, SECTOR_ALG, Algorithm, KEY_LENGTH, fek_blob, wrap
from .keys import Key

if TYPE_CHECKING:   # cryptography is optional: imported where it is used
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
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
    provider: Optional[str] = raw.DEFAULT_PROVIDER


def recipient(cert_or_key: RecipientSource, *, display_name: Optional[str] = None,
              sid: Optional[str] = None, container: Optional[str] = None) -> Recipient:
    """A :class:`Recipient` from an ``x509.Certificate`` (thumbprint and
    display name from it), an :class:`efsfast.crypto.Key`, or a bare RSA
    public key (thumbprint: SHA-1 of its DER SubjectPublicKeyInfo)."""
    require_cryptography()
    from cryptography import x509
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


def _stream_items(streams: StreamsArg) -> List[Tuple[str, Union[bytes, bytearray, memoryview]]]:
    if streams is None:
        return []
    if not isinstance(streams, Mapping):
        return [(raw.UNNAMED_STREAM, streams)]
    items: List[Tuple[str, Union[bytes, bytearray, memoryview]]] = []
    for name, data in streams.items():
        if name in ("", raw.UNNAMED_STREAM):
            items.insert(0, (raw.UNNAMED_STREAM, data))
        else:
            items.append((name if name.startswith(":") else f":{name}:$DATA", data))
    return items


def encrypt(streams: StreamsArg, recipients: Sequence[Union[Recipient, RecipientSource]],
            recovery_agents: Sequence[Union[Recipient, RecipientSource]] = (), *,
            algorithm: str = "aes256", cluster_shift: int = 12, efs_version: int = 2) -> bytes:
    """A raw EFS stream holding ``streams`` encrypted for ``recipients``
    (DDF entries) and ``recovery_agents`` (DRF entries).

    ``streams``: the unnamed stream's bytes; or a mapping name -> bytes
    (``""`` is the unnamed stream, other names become named streams); or
    None for an encrypted directory.  Recipients: certificates, keys or
    public keys (see :func:`recipient`), or :class:`Recipient` objects.
    ``algorithm``: "aes256" or "3des".  A fresh random FEK each call.

    efsfast decrypts what this makes; Windows' acceptance of it has not been
    verified.
    """
    require_cryptography()
    try:
        alg = NAMES[algorithm.lower()]
    except KeyError:
        raise ValueError(f"algorithm must be one of {sorted(NAMES)}, not {algorithm!r}") from None
    if not recipients:
        raise ValueError("at least one recipient (a DDF entry) is needed")
    fek = bytearray(os.urandom(KEY_LENGTH[alg]))
    try:
        blob = fek_blob(alg, fek)
        users = [_user(r, blob) for r in recipients]
        agents = [_user(r, blob) for r in recovery_agents]
        meta = raw.metadata_from_users(users, agents, version=efs_version)
        data_streams = []
        for name, stream_data in _stream_items(streams):
            data = memoryview(stream_data).cast("B")
            data_streams.append(raw.DataStream(name, len(data), encrypt_sectors(alg, fek, data)))
        return raw.build_raw(meta, data_streams, cluster_shift=cluster_shift)
    finally:
        fek[:] = bytes(len(fek))


def _user(r: Union[Recipient, RecipientSource], blob: bytes) -> raw.User:
    if not isinstance(r, Recipient):
        r = recipient(r)
    return raw.User(sid=r.sid, display_name=r.display_name, thumbprint=r.thumbprint,
                    container=r.container, provider=r.provider if r.container else None,
                    encrypted_fek=wrap(r.public_key, blob))
