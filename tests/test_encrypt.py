"""Encryption for certificates given as files (PEM, DER, PFX), streamed
from a plaintext file (encrypt_file): round trips through decrypt with
each private key alone, and the refusals, each naming the file at fault,
with nothing left at the destination."""
import io
import os

import pytest

pytest.importorskip("cryptography", reason="encryption needs the 'cryptography' package")

from cryptography.hazmat.primitives.serialization import Encoding  # noqa: E402

import efsfast  # noqa: E402
from efsfast import raw  # noqa: E402
from efsfast.crypto import (KeyLoadError, NotACertificateError, decrypt_bytes,  # noqa: E402
                            encrypt, encrypt_file, load_certificate, load_keys)

from _keys import pair, pem, pfx  # noqa: E402
from conftest import listing, small_tmpfs  # noqa: E402

PW = b"correct horse"
# more than one 64 KiB segment, not a whole number of 512-byte sectors
BODY = os.urandom(3 * 65536 + 1234)


@pytest.fixture(scope="module")
def alice():
    return pair("alice", "alice")


@pytest.fixture(scope="module")
def dra():
    return pair("dra", "Recovery Agent")


def cert_file(folder, who, form: str):
    """The certificate of ``who`` as a file of the form Windows exports it."""
    k, c = who
    name = c.subject.rfc4514_string().split("=")[1].replace(" ", "_")
    if form == "pem":
        path = folder / f"{name}.crt"
        path.write_bytes(c.public_bytes(Encoding.PEM))
    elif form == "der":
        path = folder / f"{name}.cer"
        path.write_bytes(c.public_bytes(Encoding.DER))
    elif form == "pfx":
        path = folder / f"{name}.pfx"
        path.write_bytes(pfx(k, c, PW))
    else:
        raise AssertionError(form)
    return path


def key_file(folder, who):
    path = folder / f"{who[1].subject.rfc4514_string()[3:].replace(' ', '_')}.key"
    path.write_bytes(pem(who[0]))
    return path


@pytest.mark.parametrize("form", ["pem", "der", "pfx"])
def test_file_round_trip_for_each_certificate_form(tmp_path, alice, form):
    plain = tmp_path / "report.bin"
    plain.write_bytes(BODY)
    cert = cert_file(tmp_path, alice, form)
    dest = tmp_path / "report.efsraw"
    r = encrypt_file(plain, dest, cert, password=PW)
    assert r.path == str(dest) and r.bytes == dest.stat().st_size and r.plain_bytes == len(BODY)
    assert r.recipients == ("alice",) and r.recovery_agents == ()
    efsfast.verify(dest)
    got = decrypt_bytes(dest.read_bytes(), load_keys(key_file(tmp_path, alice)))
    assert got.streams[raw.UNNAMED_STREAM] == BODY
    assert got.opened.entry.kind == "DDF" and got.opened.entry.display_name == "alice"
    # the thumbprint $EFS lists is the certificate's: a key with its
    # certificate selects the entry by it
    assert got.opened.entry.thumbprint == load_keys(cert_file(tmp_path, alice, "pfx"),
                                                    PW)[0].thumbprint
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".efsfast-")]


def test_user_and_recovery_agent_each_decrypt_alone(tmp_path, alice, dra):
    plain = tmp_path / "p"
    plain.write_bytes(BODY)
    dest = tmp_path / "p.efsraw"
    r = encrypt_file(plain, dest, [cert_file(tmp_path, alice, "der")],
                     [cert_file(tmp_path, dra, "pem")])
    assert r.recipients == ("alice",) and r.recovery_agents == ("Recovery Agent",)
    info = efsfast.inspect(dest)
    assert [e.display_name for e in info.metadata.ddf] == ["alice"]
    assert [e.display_name for e in info.metadata.drf] == ["Recovery Agent"]
    for who, kind in ((alice, "DDF"), (dra, "DRF")):
        got = decrypt_bytes(dest.read_bytes(), load_keys(key_file(tmp_path, who)))
        assert got.streams[raw.UNNAMED_STREAM] == BODY
        assert got.opened.entry.kind == kind


def test_two_users_each_decrypt_alone(tmp_path, alice, dra):
    stream = encrypt(BODY, [cert_file(tmp_path, alice, "pem"), cert_file(tmp_path, dra, "pfx")],
                     password=lambda path: PW)
    assert [e.display_name for e in efsfast.inspect(stream).metadata.ddf] == \
        ["alice", "Recovery Agent"]
    for who, index in ((alice, 0), (dra, 1)):
        got = decrypt_bytes(stream, load_keys(key_file(tmp_path, who)))
        assert got.streams[raw.UNNAMED_STREAM] == BODY and got.opened.entry.index == index


def test_objects_and_paths_mix(tmp_path, alice, dra):
    """The API's objects (x509 certificates, loaded keys) still work, beside paths."""
    stream = encrypt({"": b"body", "Zone.Identifier": b"[ZoneTransfer]"},
                     [alice[1]], [str(cert_file(tmp_path, dra, "der"))], algorithm="3des")
    got = decrypt_bytes(stream, load_keys(key_file(tmp_path, dra)))
    assert got.streams[raw.UNNAMED_STREAM] == b"body"
    assert got.streams[":Zone.Identifier:$DATA"] == b"[ZoneTransfer]"


def test_to_a_binary_file_and_empty_plaintext(tmp_path, alice):
    plain = tmp_path / "empty"
    plain.write_bytes(b"")
    out = io.BytesIO()
    r = encrypt_file(plain, out, alice[1])
    assert r.path is None and r.bytes == len(out.getvalue()) and r.plain_bytes == 0
    got = decrypt_bytes(out.getvalue(), load_keys(key_file(tmp_path, alice)))
    assert got.streams[raw.UNNAMED_STREAM] == b""
    assert [s.name for s in efsfast.inspect(out.getvalue()).streams] == [raw.UNNAMED_STREAM]


# ---- refusals: each names its file; nothing is left at the destination

def refused(tmp_path, exc_type, match, plain_name="p", **kw):
    plain = tmp_path / plain_name
    if not plain.exists() and plain_name == "p":
        plain.write_bytes(BODY)
    dest = tmp_path / "out.efsraw"
    before = listing(tmp_path)
    with pytest.raises(exc_type, match=match) as info:
        encrypt_file(plain, dest, **kw)
    assert listing(tmp_path) == before
    return info.value


def test_not_a_certificate(tmp_path, alice):
    junk = tmp_path / "notes.txt"
    junk.write_bytes(b"just some text, no certificate\n" * 10)
    exc = refused(tmp_path, NotACertificateError, "is not a certificate", recipients=junk)
    assert str(junk) in str(exc)
    key_only = key_file(tmp_path, alice)      # a PEM private key without its certificate
    exc = refused(tmp_path, NotACertificateError, "PEM file without a certificate",
                  recipients=key_only)
    assert str(key_only) in str(exc)


def test_several_certificates_in_one_file(tmp_path, alice, dra):
    both = tmp_path / "chain.pem"
    both.write_bytes(alice[1].public_bytes(Encoding.PEM) + dra[1].public_bytes(Encoding.PEM))
    refused(tmp_path, NotACertificateError, "holds 2 certificates", recipients=both)


def test_pfx_password_wrong_or_missing(tmp_path, alice):
    locked = cert_file(tmp_path, alice, "pfx")
    exc = refused(tmp_path, KeyLoadError, "wrong password", recipients=locked, password=b"nope")
    assert str(locked) in str(exc) and "nope" not in str(exc)
    refused(tmp_path, KeyLoadError, "protected by a password and none was given",
            recipients=locked)


def test_missing_certificate_and_plaintext(tmp_path, alice):
    exc = refused(tmp_path, KeyLoadError, "cannot read the certificate file",
                  recipients=tmp_path / "nowhere.crt")
    assert str(tmp_path / "nowhere.crt") in str(exc)
    exc = refused(tmp_path, FileNotFoundError, None, plain_name="missing", recipients=alice[1])
    assert exc.filename == str(tmp_path / "missing")


def test_existing_destination_kept_unless_overwrite(tmp_path, alice):
    plain = tmp_path / "p"
    plain.write_bytes(BODY)
    dest = tmp_path / "out.efsraw"
    dest.write_bytes(b"keep me")
    with pytest.raises(efsfast.EfsError, match="exists") as info:
        # refused before the certificate is read: it does not exist either
        encrypt_file(plain, dest, tmp_path / "nowhere.crt")
    assert info.value.filename == str(dest) and dest.read_bytes() == b"keep me"
    encrypt_file(plain, dest, alice[1], overwrite=True)
    assert decrypt_bytes(dest.read_bytes(), load_keys(key_file(tmp_path, alice))
                         ).streams[raw.UNNAMED_STREAM] == BODY


def test_disk_full_leaves_nothing(tmp_path, alice):
    """A real full file system (tmpfs): the error names the destination, and
    neither it nor a temporary is left."""
    plain = tmp_path / "big"
    with open(plain, "wb") as f:
        f.write(os.urandom(1 << 20) * 3)
    with small_tmpfs(tmp_path, "1m") as mnt:
        with pytest.raises(OSError) as info:
            encrypt_file(plain, mnt / "big.efsraw", alice[1])
        assert info.value.filename == str(mnt / "big.efsraw")
        assert os.listdir(mnt) == []


def test_load_certificate_forms(tmp_path, alice):
    for form in ("pem", "der", "pfx"):
        c = load_certificate(cert_file(tmp_path, alice, form), PW)
        assert c == alice[1]


def test_a_certificate_without_an_rsa_key(tmp_path):
    from cryptography.hazmat.primitives.asymmetric import ec
    from _keys import certificate
    cert = tmp_path / "ec.crt"
    cert.write_bytes(certificate(ec.generate_private_key(ec.SECP256R1()), "ec").public_bytes(
        Encoding.PEM))
    exc = refused(tmp_path, NotACertificateError, "key is not RSA", recipients=cert)
    assert str(cert) in str(exc)
