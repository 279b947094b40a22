"""Certificates to encrypt for, the way users have them: a ``.cer``/``.crt``
exported from Windows (DER, or PEM "Base-64 encoded X.509"), or a PFX
(PKCS#12) that holds one, with or without its private key.

Only the public side is read: a PEM file's private key blocks are never
parsed (so never asked a password for), and a PFX is opened with its
password only because PKCS#12 protects the certificates too.  All parsing
is ``cryptography``'s.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, List

from ._deps import require_cryptography
from .keys import KeyLoadError, Password, PathLike, read_pfx

if TYPE_CHECKING:   # cryptography is optional: imported where it is used
    from cryptography.x509 import Certificate

# PEM is text: its header is near the start (a "Bag Attributes" preamble of
# OpenSSL's may come first)
PEM_PROBE = 1 << 16


class NotACertificateError(KeyLoadError):
    """The file holds no certificate that efsfast can encrypt for."""


def load_certificate(path: PathLike, password: Password = None) -> Certificate:
    """The one certificate in ``path`` (PEM, DER or PFX), with an RSA public
    key: EFS wraps the file key with RSA.  A PFX with a private key gives
    that key's certificate; any other file must hold exactly one
    certificate.  ``password``: for a protected PFX (str/bytes, or a
    callable ``password(path)``).  Errors name the file and the cause."""
    require_cryptography()
    from cryptography.hazmat.primitives.asymmetric import rsa
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise KeyLoadError(f"{path}: cannot read the certificate file: "
                           f"{exc.strerror}") from None
    certs = _certificates(path, data, password)
    if len(certs) != 1:
        raise NotACertificateError(
            f"{path}: holds {len(certs)} certificates (give one file per certificate, "
            "or a PFX with its private key)")
    cert = certs[0]
    if not isinstance(cert.public_key(), rsa.RSAPublicKey):
        raise NotACertificateError(f"{path}: the certificate's key is not RSA (EFS wraps "
                                   "file keys with RSA)")
    return cert


def _certificates(path: str, data: bytes, password: Password) -> List[Certificate]:
    from cryptography import x509
    if b"-----BEGIN " in data[:PEM_PROBE]:
        try:
            return list(x509.load_pem_x509_certificates(data))
        except ValueError:
            raise NotACertificateError(f"{path}: a PEM file without a certificate that "
                                       "parses (no BEGIN CERTIFICATE block, or a damaged "
                                       "one)") from None
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        pass
    try:
        key, cert, extra = read_pfx(path, data, password)
    except KeyLoadError:        # a PFX, with a missing or wrong password
        raise
    except ValueError:
        raise NotACertificateError(f"{path}: is not a certificate (PEM or DER) or a PFX"
                                   ) from None
    if key is not None:
        if cert is None:
            raise NotACertificateError(f"{path}: a PFX with a private key but without its "
                                       "certificate")
        return [cert]
    return ([cert] if cert is not None else []) + extra
