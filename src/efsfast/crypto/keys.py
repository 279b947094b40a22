"""Private keys the way users have them: a PFX/PKCS#12 exported from Windows
(certmgr, "export with private key"), or PEM/DER files (PKCS#1 or PKCS#8,
encrypted or not), optionally with certificates beside them.

All parsing and RSA is done by ``cryptography``; nothing here handles ASN.1
or RSA by hand.  A :class:`Key` never shows its key material: its repr and
every message name the file, the certificate's subject and its thumbprint.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import (TYPE_CHECKING, Any, Callable, Iterable, List, NoReturn, Optional, Sequence,
                    Tuple, TypeVar, Union)

from ._deps import require_cryptography

if TYPE_CHECKING:   # cryptography is optional: imported where it is used
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
    from cryptography.x509 import Certificate

Password = Union[None, str, bytes, Callable[[str], Union[str, bytes, None]]]
PathLike = Union[str, "os.PathLike[str]"]


class KeyLoadError(ValueError):
    """A key file could not be used; the message names the file and why."""
    error_kind = "key"          # efsfast.messages.ErrorKind.KEY (the --json "kind")


@dataclass(eq=False)
class Key:
    """An RSA private key, with the certificate that goes with it when one
    was found (then ``thumbprint`` selects its $EFS entry, spec section 10).
    """
    source: str
    private_key: RSAPrivateKey = field(repr=False)
    certificate: Optional[Certificate] = field(default=None, repr=False)

    @functools.cached_property
    def thumbprint(self) -> Optional[str]:
        """SHA-1 of the DER certificate, as $EFS stores it (hex)."""
        if self.certificate is None:
            return None
        import hashlib      # (here: a PEM key without certificate never needs it)
        from cryptography.hazmat.primitives.serialization import Encoding
        return hashlib.sha1(self.certificate.public_bytes(Encoding.DER)).hexdigest()

    @property
    def subject(self) -> Optional[str]:
        return None if self.certificate is None else self.certificate.subject.rfc4514_string()

    @property
    def modulus_bytes(self) -> int:
        return (self.private_key.key_size + 7) // 8

    @property
    def label(self) -> str:
        who = f" ({self.subject}, thumbprint {self.thumbprint})" if self.certificate else " (no certificate)"
        return f"{self.source}{who}"

    def __repr__(self) -> str:
        return f"<efsfast Key {self.label}, RSA-{self.private_key.key_size}>"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("efsfast keys are not pickled (private key material)")


def _as_bytes(pw: Union[str, bytes, None]) -> Optional[bytes]:
    if pw is None or isinstance(pw, bytes):
        return pw
    return pw.encode("utf-8")


def _as_rsa(key: object) -> Optional[RSAPrivateKey]:
    """``key`` when it is an RSA private key, else None."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    return key if isinstance(key, rsa.RSAPrivateKey) else None


def _public_numbers(obj: object) -> object:
    # duck-typed: a private key or a certificate, and any of their public key
    # types (those without public_numbers, e.g. Ed25519, give None)
    pub: Any = obj.public_key() if hasattr(obj, "public_key") else obj
    try:
        return pub.public_numbers()
    except AttributeError:
        return None


_T = TypeVar("_T")
_LoadFn = Callable[[Optional[bytes]], _T]     # a loader of cryptography's, given a password


class _Loaded:
    def __init__(self) -> None:
        # (source, private key, certificate or None)
        self.keys: List[Tuple[str, PrivateKeyTypes, Optional[Certificate]]] = []
        self.certificates: List[Certificate] = []


class NotAKeyFileError(KeyLoadError):
    """The file holds no PFX, PEM or DER structure at all (never a password
    question)."""


def not_a_key(path: str, why: str = "") -> NotAKeyFileError:
    return NotAKeyFileError(f"{path}: is not a PFX, PEM or DER private key"
                            + (f" ({why})" if why else ""))


def _load_pem(path: str, data: bytes, password: Password, out: _Loaded) -> None:
    import re

    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    found = False
    for m in re.finditer(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", data, re.S):
        found = True
        kind, block = m.group(1).decode(), m.group(0)
        try:
            if kind in ("CERTIFICATE", "X509 CERTIFICATE"):
                from cryptography import x509      # (~20 ms to import: only for certificates)
                out.certificates.append(x509.load_pem_x509_certificate(block))
            elif "PRIVATE KEY" in kind:
                key = _unlock(path, password, lambda pw: load_pem_private_key(
                    block, pw, unsafe_skip_rsa_key_validation=True))     # see check_rsa_key
                out.keys.append((path, key, None))
        except KeyLoadError:    # a wrong or missing password: said as such
            raise
        except ValueError:
            raise not_a_key(path, f"its {kind} block does not parse") from None
    if not found:
        raise not_a_key(path, "a PEM header without a complete block")


def _load_der(path: str, data: bytes, password: Password, out: _Loaded) -> None:
    """A DER private key or certificate; ValueError when it is neither."""
    from cryptography.hazmat.primitives.serialization import load_der_private_key
    try:
        key = _unlock(path, password, lambda pw: load_der_private_key(
            data, pw, unsafe_skip_rsa_key_validation=True))             # see check_rsa_key
    except KeyLoadError:
        raise
    except ValueError:
        from cryptography import x509
        out.certificates.append(x509.load_der_x509_certificate(data))
        return
    out.keys.append((path, key, None))


def _looks_like_pfx(data: bytes) -> bool:
    """The outer shape of a PFX (RFC 7292 section 4): a DER SEQUENCE whose
    first element is INTEGER 3.  Enough to tell a password-protected PFX
    (worth a password) from a file that is no PFX at all (not worth one);
    ``cryptography`` parses the rest."""
    if len(data) < 5 or data[0] != 0x30:
        return False
    n = data[1]
    if n < 0x80:
        at = 2                                  # short form length
    elif 0x81 <= n <= 0x84:
        at = 2 + (n & 0x7F)                     # long form: n & 0x7F length bytes
    else:
        return False
    return data[at:at + 3] == b"\x02\x01\x03"


def read_pfx(path: str, data: bytes, password: Password
             ) -> Tuple[Optional[PrivateKeyTypes], Optional[Certificate], List[Certificate]]:
    """A PFX/PKCS#12's private key (or None), the certificate that goes with
    it (or None) and its other certificates; ValueError when ``data`` is no
    PFX, KeyLoadError for a missing or wrong password."""
    from cryptography.hazmat.primitives.serialization.pkcs12 import load_key_and_certificates

    def load(pw: Optional[bytes]) -> Tuple[Optional[PrivateKeyTypes], Optional[Certificate],
                                          List[Certificate]]:
        return load_key_and_certificates(data, pw)
    # an export "without password" may be protected by the empty one
    for pw in (None, b""):
        try:
            key, cert, extra = load(pw)
            break
        except ValueError:
            continue
    else:
        if not _looks_like_pfx(data):
            raise ValueError("not a PFX")
        key, cert, extra = _with_password(path, password, load)
    return key, cert, list(extra or ())


def _load_pfx(path: str, data: bytes, password: Password, out: _Loaded) -> None:
    """A PFX/PKCS#12; ValueError when it is not one."""
    key, cert, extra = read_pfx(path, data, password)
    if key is not None:
        out.keys.append((path, key, cert))
    elif cert is not None:
        out.certificates.append(cert)
    out.certificates.extend(extra)


def _unlock(path: str, password: Password, load: _LoadFn[_T]) -> _T:
    """A PEM/DER private key: loaded without a password when it has none
    (whatever password was given, and without asking for one);
    ``cryptography`` says when it is encrypted (TypeError), and only then is
    ``password`` used."""
    try:
        return load(None)
    except TypeError:           # "Password was not given but private key is encrypted"
        return _with_password(path, password, load)


def _with_password(path: str, password: Password, load: _LoadFn[_T]) -> _T:
    """Run ``load(password)`` for a key known to be protected; ask
    ``password`` (a callable) now.  Messages never carry the password."""
    pw = password(path) if callable(password) else password
    if pw is None:
        raise KeyLoadError(f"{path}: the key is protected by a password and none was given "
                           "(--password-file FILE, --password-env VAR, or a terminal to ask on)")
    try:
        return load(_as_bytes(pw))
    except (ValueError, TypeError):
        raise KeyLoadError(f"{path}: wrong password for this key") from None


def _load_file(path: str, password: Password, out: _Loaded) -> None:
    with open(path, "rb") as f:
        data = f.read()
    if b"-----BEGIN " in data[:1 << 16]:
        return _load_pem(path, data, password, out)
    loaders = (_load_pfx, _load_der) if path.lower().endswith((".pfx", ".p12")) \
        else (_load_der, _load_pfx)
    for loader in loaders:
        try:
            return loader(path, data, password, out)
        except KeyLoadError:
            raise
        except ValueError:
            continue
    raise not_a_key(path)


# Keys above this size are refused before any arithmetic on them (EFS uses
# 1024-4096 bits; a hostile file could name a huge modulus).
MAX_RSA_BITS = 16384


def check_rsa_key(source: str, key: RSAPrivateKey) -> None:
    """Reject an RSA private key whose parts do not fit together.

    PEM and DER keys are loaded with ``unsafe_skip_rsa_key_validation``:
    OpenSSL's RSA_check_key, which ``cryptography`` runs otherwise, spends
    ~30 ms per 2048-bit key, nearly all of it on probabilistic primality
    tests of p and q.  Instead every relation between the parts is checked
    exactly (microseconds): n = p*q, e*d = 1 mod p-1 and mod q-1, the CRT
    exponents and coefficient, p and q odd and distinct; then one private
    operation must undo one public operation (about 1 ms), which is the
    property decrypting a FEK relies on.  A damaged or mismatched key fails
    here.  What is not tested is that p and q are prime: a composite that
    still passes (a Carmichael number) decrypts exactly as its public key
    encrypted, so it cannot give wrong plaintext; it only makes the key
    weaker, which the key's owner chose when Windows wrapped FEKs with it.
    The arithmetic comes first, so that no RSA operation ever runs with a
    key whose parts do not fit (``cryptography`` warns that OpenSSL makes
    no promises for such a key).  PFX keys come validated by
    ``cryptography`` (PKCS#12 loading has no switch: ~30 ms stays) and are
    checked here too, at the same small cost.
    """
    from cryptography.hazmat.primitives.asymmetric import padding
    if key.key_size > MAX_RSA_BITS:
        raise KeyLoadError(f"{source}: an RSA key of {key.key_size} bits (more than "
                           f"{MAX_RSA_BITS}: not an EFS key)")
    pn = key.private_numbers()
    n, e = pn.public_numbers.n, pn.public_numbers.e
    p, q, d = pn.p, pn.q, pn.d
    sound = (p > 2 and q > 2 and p != q and p % 2 == 1 and q % 2 == 1 and p * q == n
             and e % 2 == 1 and 3 <= e < n and 0 < d < n
             and (e * d) % (p - 1) == 1 and (e * d) % (q - 1) == 1
             and pn.dmp1 == d % (p - 1) and pn.dmq1 == d % (q - 1)
             and 0 < pn.iqmp < p and (pn.iqmp * q) % p == 1)
    if sound:
        probe = os.urandom(32)      # (what secrets.token_bytes is, without its imports)
        try:
            sound = key.decrypt(key.public_key().encrypt(probe, padding.PKCS1v15()),
                                padding.PKCS1v15()) == probe
        except ValueError:
            sound = False
    if not sound:
        raise KeyLoadError(f"{source}: a damaged RSA private key (its parts do not fit "
                           "together)")


def load_keys(paths: Union[PathLike, Iterable[PathLike]], password: Password = None) -> List[Key]:
    """Load every RSA private key in ``paths`` (PFX/PKCS#12, PEM, DER; PKCS#1
    or PKCS#8, encrypted or not).  Certificates in the same files, or in
    files of their own, are matched to their keys by public key, so such a
    key selects its $EFS entry by thumbprint; a key without one is tried
    against every entry.

    ``password``: str/bytes for every protected file, or a callable
    ``password(path)`` asked only for files that need one.
    """
    require_cryptography()
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out = _Loaded()
    for p in paths:
        p = os.fspath(p)
        try:
            _load_file(p, password, out)
        except OSError as exc:
            raise KeyLoadError(f"{p}: cannot read the key file: {exc.strerror}") from None
    keys = []
    for source, key, cert in out.keys:
        rsa_key = _as_rsa(key)
        if rsa_key is None:
            raise KeyLoadError(f"{source}: not an RSA key (EFS wraps file keys with RSA)")
        check_rsa_key(source, rsa_key)
        if cert is None:
            numbers = _public_numbers(rsa_key)
            cert = next((c for c in out.certificates if _public_numbers(c) == numbers), None)
        keys.append(Key(source, rsa_key, cert))
    if not keys:
        raise KeyLoadError(", ".join(os.fspath(p) for p in paths) + ": no private key found")
    return keys


# keys as the API takes them: Key objects or key file paths, one or several
KeysArg = Union[Key, PathLike, Sequence[Union[Key, PathLike]]]


def as_keys(keys: KeysArg, password: Password = None) -> List[Key]:
    """Keys given to the API: Key objects, or paths to load."""
    if isinstance(keys, (Key, str, os.PathLike)):
        keys = [keys]
    result: List[Key] = []
    paths: List[PathLike] = []
    for k in keys:
        if isinstance(k, Key):
            result.append(k)
        else:
            paths.append(k)
    if paths:
        result += load_keys(paths, password)
    if not result:
        raise KeyLoadError("no keys given")
    return result
