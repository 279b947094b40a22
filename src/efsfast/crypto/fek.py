"""The file encryption key (FEK): which $EFS entry a key opens, unwrapping
it (RSA PKCS#1 v1.5, stored little-endian) and checking the FEK blob, and
the inverse for :func:`efsfast.encrypt` (spec section 10, MS-EFSR 2.2.2.1).

A wrong key cannot be told from a right one by the data (CBC without a MAC
"decrypts" to noise), and OpenSSL's implicit rejection makes a failed
PKCS#1 v1.5 unwrap return random bytes rather than fail; so a key is proved
to open a file only by a FEK blob that is well formed: a known algorithm,
its exact key length, a zero reserved field and a size that adds up.
"""
from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, NoReturn, Optional, Sequence, Tuple, Union

from .. import _codec, _decrypt
from .._errors import EfsError, RawFormatError
from .keys import Key

if TYPE_CHECKING:   # cryptography is optional: imported where it is used
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

ERROR_DECRYPTION_FAILED = 6000        # winerror.h: ERROR_ENCRYPTION_FAILED is 6000
ERROR_NOT_SUPPORTED = 50
FEK_HEADER = struct.Struct("<IIII")   # KeyLength, Entropy, Algorithm, Reserved
MAX_FEK_BLOB = 1086                   # Windows rejects longer ones (MS-EFSR <11>)
META_LAYOUT_V1 = 1


class Algorithm(enum.IntEnum):
    """ALG_IDs of the FEK blob (MS-EFSR 2.2.13)."""
    CALG_3DES = 0x6603
    CALG_DESX = 0x6604
    CALG_AES_256 = 0x6610


KEY_LENGTH = {Algorithm.CALG_AES_256: 32, Algorithm.CALG_3DES: 24, Algorithm.CALG_DESX: 16}
# what Windows writes in the Entropy field: 32 for AES-256 on Windows 10 (spec section 10;
# MS-EFSR says "bits"), 168 for 3DES per MS-EFSR
ENTROPY = {Algorithm.CALG_AES_256: 32, Algorithm.CALG_3DES: 168}
SECTOR_ALG = {Algorithm.CALG_AES_256: _decrypt.AES256, Algorithm.CALG_3DES: _decrypt.TRIPLE_DES}
NAMES = {"aes256": Algorithm.CALG_AES_256, "aes-256": Algorithm.CALG_AES_256,
         "3des": Algorithm.CALG_3DES, "des-ede3": Algorithm.CALG_3DES}


class NotDecryptableError(EfsError):
    """No given key opens the file; ``reasons`` says why, entry by entry."""
    error_kind = "not_decryptable"      # efsfast.messages.ErrorKind.NOT_DECRYPTABLE

    def __init__(self, reasons: Sequence[str], filename: Optional[str] = None):
        self.reasons = list(reasons)
        super().__init__(ERROR_DECRYPTION_FAILED, "no key opens it: " + "; ".join(self.reasons),
                         filename)

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), (self.reasons, self.filename))


@dataclass(frozen=True)
class Entry:
    """A DDF (user) or DRF (recovery agent) entry of the $EFS."""
    kind: str                      # "DDF" or "DRF"
    index: int
    display_name: Optional[str]
    thumbprint: Optional[str]
    flags: int
    encrypted_fek: bytes = field(repr=False)

    @property
    def label(self) -> str:
        return (f"{self.kind} {self.index} ({self.display_name or 'no display name'}, "
                f"thumbprint {self.thumbprint or '-'})")


@dataclass(frozen=True)
class Opened:
    """Which entry a key opened, and the FEK's algorithm (the FEK itself is
    kept apart, in :class:`FileKey`, and never printed)."""
    entry: Entry
    key: str                       # the key's label (file, subject, thumbprint)
    algorithm: Algorithm

    def as_dict(self) -> Dict[str, Any]:
        return {"entry": self.entry.kind, "index": self.entry.index,
                "display_name": self.entry.display_name, "thumbprint": self.entry.thumbprint,
                "algorithm": self.algorithm.name, "key": self.key}


class FileKey:
    """An unwrapped FEK.  ``take()`` hands the key bytes over once (the
    decryptor wipes them after making its round keys); repr shows no bytes."""

    def __init__(self, opened: Opened, key: bytearray):
        self.opened = opened
        self._key = key

    def take(self) -> bytearray:
        key, self._key = self._key, bytearray()
        return key

    def wipe(self) -> None:
        self._key[:] = bytes(len(self._key))

    def __repr__(self) -> str:
        return f"<efsfast FileKey {self.opened.algorithm.name} from {self.opened.entry.label}>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("efsfast file keys are not pickled")


def entries(meta: bytes, mode: str = "strict") -> List[Entry]:
    """The key entries of a $EFS value; Version 2 and 3 metadata refused."""
    try:
        layout, version, supported, raw_entries = _codec.meta_decode(meta, mode)
    except RawFormatError as exc:
        if exc.code != "E_META_UNSUPPORTED":
            raise
        layout = _codec.meta_decode(meta, "compatible")[0]     # which unsupported layout
    if layout != META_LAYOUT_V1:
        what = ("Version 2 metadata (EFS_Version 4/5: ECDH or DPAPI-NG protectors)"
                if layout == 2 else "Version 3 metadata (.pfile, RMS)")
        raise NotDecryptableError([f"{what} cannot be opened with an RSA key file"])
    out: List[Entry] = []
    counts = {"DDF": 0, "DRF": 0}
    for e in raw_entries:
        kind = "DRF" if e["is_drf"] else "DDF"
        off, n = e["thumbprint"]
        doff, dn = e["display_name"]
        foff, fn = e["encrypted_fek"]
        out.append(Entry(kind, counts[kind],
                         bytes(meta[doff:doff + dn]).decode("utf-16-le", "replace") if dn else None,
                         bytes(meta[off:off + n]).hex() if n else None,
                         e["flags"], bytes(meta[foff:foff + fn])))
        counts[kind] += 1
    return out


class _BadBlob(Exception):
    pass


def parse_fek_blob(blob: bytes) -> Tuple[Algorithm, bytearray]:
    """(Algorithm, key bytearray) from an unwrapped FEK blob, or _BadBlob."""
    if len(blob) < FEK_HEADER.size or len(blob) > MAX_FEK_BLOB:
        raise _BadBlob("no valid FEK blob")
    length, _entropy, alg_id, reserved = FEK_HEADER.unpack_from(blob)
    try:
        alg = Algorithm(alg_id)
    except ValueError:
        raise _BadBlob("no valid FEK blob") from None
    if reserved != 0 or length != KEY_LENGTH[alg] or FEK_HEADER.size + length > len(blob):
        raise _BadBlob("no valid FEK blob")
    return alg, bytearray(blob[FEK_HEADER.size:FEK_HEADER.size + length])


def _try(key: Key, entry: Entry) -> Tuple[Algorithm, bytearray]:
    """(alg, fek) when ``key`` opens ``entry``, else raises _BadBlob."""
    from cryptography.hazmat.primitives.asymmetric import padding
    enc = entry.encrypted_fek
    if len(enc) != key.modulus_bytes:
        raise _BadBlob(f"its EncFEK is {len(enc)} bytes, not the {key.modulus_bytes} of "
                       f"this RSA-{key.private_key.key_size} key")
    try:
        # CryptoAPI stores the RSA ciphertext little-endian (spec section 10)
        blob = key.private_key.decrypt(enc[::-1], padding.PKCS1v15())
    except ValueError:
        raise _BadBlob("RSA unwrap failed") from None
    return parse_fek_blob(blob)


def unwrap(meta: bytes, keys: Sequence[Key], mode: str = "strict") -> FileKey:
    """Open the FEK of a $EFS value with the first key that can.

    A key with a certificate is tried only on the entries with its
    thumbprint; a bare key on every RSA entry whose EncFEK fits its size.
    Raises :class:`NotDecryptableError` with the reason for every entry.
    """
    reasons: List[str] = []
    by_thumb = {k.thumbprint: k for k in keys if k.thumbprint}
    bare = [k for k in keys if not k.thumbprint]
    tried_any = False
    for entry in entries(meta, mode):
        if entry.flags != 0:
            reasons.append(f"{entry.label}: Flags {entry.flags} (FEK wrapped with AES-256 for a "
                           "smart card) cannot be opened with an RSA key file")
            continue
        candidates = ([by_thumb[entry.thumbprint]] if entry.thumbprint in by_thumb else []) + bare
        for key in candidates:
            tried_any = True
            try:
                alg, fek = _try(key, entry)
            except _BadBlob as why:
                reasons.append(f"{entry.label} with {key.source}: {why} "
                               "(wrong key or corrupt EncFEK)")
                continue
            if alg not in SECTOR_ALG:
                fek[:] = bytes(len(fek))
                raise NotDecryptableError([
                    f"{entry.label} opened with {key.source}, but the file is encrypted with "
                    f"{alg.name} (Windows 2000/XP RTM), which efsfast does not decrypt"])
            return FileKey(Opened(entry, key.label, alg), fek)
    if not tried_any and by_thumb:
        listed = ", ".join(e.label for e in entries(meta, "compatible")) or "none"
        reasons.insert(0, "no entry for the thumbprints of the given keys "
                          f"({', '.join(sorted(by_thumb))}); entries: {listed}")
    raise NotDecryptableError(reasons or ["no RSA entry to try"])


# ---- the other direction, for efsfast.encrypt ----

def fek_blob(alg: Algorithm, key: Union[bytes, bytearray]) -> bytes:
    return FEK_HEADER.pack(len(key), ENTROPY[alg], int(alg), 0) + bytes(key)


def wrap(public_key: RSAPublicKey, blob: bytes) -> bytes:
    """RSA PKCS#1 v1.5 encryption of the FEK blob, stored little-endian."""
    from cryptography.hazmat.primitives.asymmetric import padding
    return public_key.encrypt(blob, padding.PKCS1v15())[::-1]
