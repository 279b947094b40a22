"""Self-made RSA keys and certificates for the decryption tests (test-only helper)."""
import datetime
import functools

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@functools.lru_cache(maxsize=None)
def rsa_key(bits: int = 2048, tag: str = "user"):
    """One key per (size, tag) per session: RSA-4096 generation is slow."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def certificate(key, name: str = "alice"):
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
            .sign(key, hashes.SHA256()))


def pfx(key, cert, password=None) -> bytes:
    from cryptography.hazmat.primitives.serialization import pkcs12
    enc = (serialization.BestAvailableEncryption(password) if password
           else serialization.NoEncryption())
    return pkcs12.serialize_key_and_certificates(b"efs", key, cert, None, enc)


def private_bytes(key, encoding="pem", fmt="pkcs8", password=None) -> bytes:
    f = (serialization.PrivateFormat.PKCS8 if fmt == "pkcs8"
         else serialization.PrivateFormat.TraditionalOpenSSL)
    enc = (serialization.BestAvailableEncryption(password) if password
           else serialization.NoEncryption())
    e = serialization.Encoding.PEM if encoding == "pem" else serialization.Encoding.DER
    return key.private_bytes(e, f, enc)


def pem(key, fmt="pkcs8", password=None) -> bytes:
    return private_bytes(key, "pem", fmt, password)


def pair(tag: str, name: str):
    """(RSA-2048 key, its self-signed certificate with common name ``name``)."""
    key = rsa_key(2048, tag)
    return key, certificate(key, name)


def encrypted_tree(src, key_file, name: str = "alice") -> dict:
    """A folder and three files encrypted for ``name`` below ``src`` (the
    efs_raw layout), the private key written to ``key_file`` as PEM;
    {relative path: plaintext} of the files."""
    import os

    import efsfast
    from efsfast.crypto import encrypt
    k = rsa_key(2048, name)
    key_file.write_bytes(pem(k))
    plain = {"Docs/a.txt": b"A" * 5000, "Docs/b.bin": os.urandom(70_000), "top.txt": b"top"}
    src.mkdir()
    efsfast.restore(src / "Docs", encrypt(None, [certificate(k, name)]), directory=True)
    for rel, data in plain.items():
        efsfast.restore(src / rel, encrypt(data, [certificate(k, name)]))
    return plain
