"""Key loading (PFX, PEM, DER; PKCS#1 and PKCS#8; with and without
passwords), entry selection by thumbprint or by trial, and the refusals:
wrong key, no matching entry, corrupt EncFEK, DESX, Flags 1, Version 2."""
import struct

import pytest

pytest.importorskip("cryptography", reason="decryption needs the 'cryptography' package")

from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

import efsfast  # noqa: E402
from efsfast import raw  # noqa: E402
from efsfast.crypto import (Key, KeyLoadError, NotDecryptableError, decrypt_bytes,  # noqa: E402
                            encrypt, load_keys, recipient)
from efsfast.crypto import fek as fekmod  # noqa: E402
from efsfast.crypto import verify as verifymod  # noqa: E402

from _keys import certificate, pem, pfx, private_bytes, rsa_key  # noqa: E402

PW = b"correct horse"


@pytest.fixture(scope="module")
def alice():
    k = rsa_key(2048, "alice")
    return k, certificate(k, "alice")


@pytest.fixture(scope="module")
def dra():
    k = rsa_key(2048, "dra")
    return k, certificate(k, "Recovery Agent")


def test_pfx_with_and_without_password(tmp_path, alice):
    k, c = alice
    (tmp_path / "plain.pfx").write_bytes(pfx(k, c))
    (tmp_path / "locked.pfx").write_bytes(pfx(k, c, PW))
    plain = load_keys(tmp_path / "plain.pfx")[0]
    locked = load_keys(tmp_path / "locked.pfx", password=PW.decode())[0]
    assert plain.thumbprint == locked.thumbprint == recipient(c).thumbprint.hex()
    asked = []
    load_keys(tmp_path / "locked.pfx", password=lambda p: asked.append(p) or PW)
    assert asked == [str(tmp_path / "locked.pfx")]
    with pytest.raises(KeyLoadError, match="password"):
        load_keys(tmp_path / "locked.pfx")
    with pytest.raises(KeyLoadError, match="wrong password") as ei:
        load_keys(tmp_path / "locked.pfx", password="nope")
    assert "nope" not in str(ei.value)


# DER PKCS#1 has no encrypted form (only PEM carries the legacy OpenSSL encryption)
@pytest.mark.parametrize("encoding,fmt,password", [
    ("pem", "pkcs8", None), ("pem", "pkcs8", PW), ("pem", "pkcs1", None), ("pem", "pkcs1", PW),
    ("der", "pkcs8", None), ("der", "pkcs8", PW), ("der", "pkcs1", None)])
def test_pem_and_der_keys(tmp_path, alice, fmt, encoding, password):
    k, c = alice
    data = private_bytes(k, encoding, fmt, password)
    path = tmp_path / f"key.{encoding}"
    path.write_bytes(data)
    key = load_keys(path, password=password)[0]
    assert key.thumbprint is None          # a bare key: tried against each entry
    assert key.private_key.private_numbers() == k.private_numbers()
    stream = encrypt(b"hello", [c])
    assert decrypt_bytes(stream, [key]).data == b"hello"


def _never_asked(path):
    raise AssertionError(f"asked for a password for {path}, which is not encrypted")


@pytest.mark.parametrize("kind", ["pem-pkcs8", "pem-pkcs1", "der-pkcs8", "der-pkcs1", "pfx",
                                  "pfx-empty-password"])
def test_a_key_without_password_ignores_one_given(tmp_path, alice, kind):
    """An unencrypted key loads whether a password is given or would be
    asked for: the password is for keys that are encrypted."""
    k, c = alice
    if kind.startswith("pfx"):
        data = pfx(k, c, b"" if kind.endswith("empty-password") else None)
    else:
        encoding, fmt = kind.split("-")
        data = private_bytes(k, encoding, fmt)
    path = tmp_path / f"key.{kind[:3]}"
    path.write_bytes(data)
    for password in (None, "some password", PW, _never_asked):
        key = load_keys(path, password=password)[0]
        assert key.private_key.private_numbers() == k.private_numbers()


def test_one_encrypted_key_and_one_not(tmp_path, alice, dra):
    """The user + recovery agent recipe: one password, asked once, for the
    one key that has it."""
    (tmp_path / "user.pfx").write_bytes(pfx(*alice, PW))
    (tmp_path / "dra.pem").write_bytes(pem(dra[0]))
    asked = []
    keys = load_keys([tmp_path / "user.pfx", tmp_path / "dra.pem"],
                     password=lambda p: asked.append(p) or PW.decode())
    assert asked == [str(tmp_path / "user.pfx")] and len(keys) == 2
    keys = load_keys([tmp_path / "dra.pem", tmp_path / "user.pfx"], password=PW)
    assert [k.source for k in keys] == [str(tmp_path / "dra.pem"), str(tmp_path / "user.pfx")]


@pytest.mark.parametrize("kind", ["pem-pkcs8", "pem-pkcs1", "der-pkcs8", "pfx"])
def test_encrypted_keys_need_the_right_password(tmp_path, alice, kind):
    k, c = alice
    data = pfx(k, c, PW) if kind == "pfx" else private_bytes(k, *kind.split("-"), PW)
    path = tmp_path / f"key.{kind[:3]}"
    path.write_bytes(data)
    assert load_keys(path, password=PW)[0].private_key.private_numbers() == k.private_numbers()
    with pytest.raises(KeyLoadError, match="protected by a password and none was given"):
        load_keys(path)
    with pytest.raises(KeyLoadError, match="protected by a password and none was given"):
        load_keys(path, password=lambda p: None)
    with pytest.raises(KeyLoadError, match="wrong password") as ei:
        load_keys(path, password="nope")
    assert "nope" not in str(ei.value)


@pytest.mark.parametrize("name,data", [
    ("junk.pfx", b"\x30\x03junk"), ("notes.txt", b"hello world\n" * 20),
    ("random.der", bytes(range(256)) * 4), ("empty.p12", b""),
    ("cut.pem", b"-----BEGIN PRIVATE KEY-----\nMIIE"),
    ("bad.pem", b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")])
def test_a_file_that_is_no_key_says_so(tmp_path, name, data):
    """Never blamed on a password, and never asks for one."""
    (tmp_path / name).write_bytes(data)
    for password in (None, "pw", _never_asked):
        with pytest.raises(KeyLoadError, match="is not a PFX, PEM or DER private key") as ei:
            load_keys(tmp_path / name, password=password)
        assert str(ei.value).startswith(str(tmp_path / name))
        assert "password" not in str(ei.value)


@pytest.mark.parametrize("part", ["d", "p", "q", "dmp1", "dmq1", "iqmp"])
def test_a_damaged_key_is_refused(tmp_path, alice, part):
    """One byte changed inside one part of a PKCS#1 key: the file still
    parses, the key does not fit together (keys are checked by efsfast
    itself, not by OpenSSL's slow RSA_check_key)."""
    k, _ = alice
    der = bytearray(private_bytes(k, "der", "pkcs1"))
    value = getattr(k.private_numbers(), part)
    body = value.to_bytes((value.bit_length() + 7) // 8, "big")
    der[bytes(der).index(body) + len(body) // 2] ^= 0x10
    (tmp_path / "key.der").write_bytes(bytes(der))
    with pytest.raises(KeyLoadError, match="key.der: a damaged RSA private key"):
        load_keys(tmp_path / "key.der")


def test_a_key_whose_prime_is_not_prime_is_refused(tmp_path, alice):
    """Every relation holds (n = p*q, e*d = 1 mod p-1 and q-1, the CRT
    parts) but p is the product of two primes: RSA with it does not undo
    its own public operation, and the key is refused."""
    import math
    from cryptography.hazmat.primitives.asymmetric import rsa
    small = rsa_key(1024, "composite").private_numbers()
    p, q, e = small.p * small.q, alice[0].private_numbers().p, 65537
    d = pow(e, -1, math.lcm(p - 1, q - 1))
    numbers = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p),
                                    rsa.RSAPublicNumbers(e, p * q))
    bad = numbers.private_key(unsafe_skip_rsa_key_validation=True)
    (tmp_path / "key.pem").write_bytes(pem(bad))
    with pytest.raises(KeyLoadError, match="a damaged RSA private key"):
        load_keys(tmp_path / "key.pem")


def test_certificate_beside_the_key_selects_by_thumbprint(tmp_path, alice):
    from cryptography.hazmat.primitives.serialization import Encoding
    k, c = alice
    (tmp_path / "key.pem").write_bytes(pem(k))
    (tmp_path / "cert.cer").write_bytes(c.public_bytes(Encoding.DER))
    (tmp_path / "both.pem").write_bytes(pem(k) + c.public_bytes(Encoding.PEM))
    a = load_keys([tmp_path / "key.pem", tmp_path / "cert.cer"])
    b = load_keys(tmp_path / "both.pem")
    assert len(a) == len(b) == 1
    assert a[0].thumbprint == b[0].thumbprint == recipient(c).thumbprint.hex()


def test_not_a_key_and_not_rsa(tmp_path):
    (tmp_path / "junk.pfx").write_bytes(b"\x30\x03junk")
    with pytest.raises(KeyLoadError, match="junk.pfx"):
        load_keys(tmp_path / "junk.pfx")
    from cryptography.hazmat.primitives import serialization
    eck = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "ec.pem").write_bytes(eck.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with pytest.raises(KeyLoadError, match="not an RSA key"):
        load_keys(tmp_path / "ec.pem")
    with pytest.raises(KeyLoadError, match="cannot read"):
        load_keys(tmp_path / "missing.pem")


def test_reprs_and_messages_hold_no_key_material(alice):
    k, c = alice
    key = Key("alice.pfx", k, c)
    d = format(k.private_numbers().d, "x")
    for text in (repr(key), str(key), key.label):
        assert d[:16] not in text and "PRIVATE" not in text
    with pytest.raises(TypeError):
        import pickle
        pickle.dumps(key)
    stream = encrypt(b"x" * 1000, [c])
    opened = efsfast.verify(stream, keys=[key])
    fk = fekmod.unwrap(raw.inspect(stream).metadata and _meta(stream), [key])
    secret = bytes(fk._key).hex()
    assert secret not in repr(fk) and secret not in repr(opened)
    assert secret not in repr(decrypt_bytes(stream, [key]))


def _meta(stream: bytes) -> bytes:
    return verifymod.read_metadata(stream)


@pytest.mark.parametrize("bits", [1024, 2048, 4096])
def test_rsa_sizes(bits):
    k = rsa_key(bits, "sizes")          # 4096 generated once per session
    c = certificate(k, f"rsa{bits}")
    stream = encrypt(b"size test" * 100, [c])
    entry = raw.inspect(stream).metadata.ddf[0]
    assert entry.encrypted_fek_length == bits // 8
    assert decrypt_bytes(stream, [Key("k", k, c)]).data == b"size test" * 100
    assert decrypt_bytes(stream, [Key("bare", k)]).data == b"size test" * 100


def test_ddf_and_drf_entries(alice, dra):
    (ka, ca), (kd, cd) = alice, dra
    other = rsa_key(2048, "bob")
    stream = encrypt(b"payroll", [certificate(other, "bob"), ca], [cd])
    m = raw.inspect(stream).metadata
    assert [e.display_name for e in m.ddf] == ["bob", "alice"] and m.drf[0].display_name == "Recovery Agent"
    by_cert = decrypt_bytes(stream, [Key("dra.pfx", kd, cd)])
    assert (by_cert.opened.entry.kind, by_cert.opened.entry.index) == ("DRF", 0)
    assert by_cert.data == b"payroll"
    bare = decrypt_bytes(stream, [Key("dra.pem", kd)])      # tried against each entry
    assert bare.opened.entry.kind == "DRF"
    user = decrypt_bytes(stream, [Key("wrong.pem", rsa_key(2048, "eve")), Key("alice", ka, ca)])
    assert (user.opened.entry.kind, user.opened.entry.index) == ("DDF", 1)
    assert user.opened.entry.display_name == "alice"


def test_wrong_key_and_no_matching_entry(alice):
    k, c = alice
    stream = encrypt(b"secret", [c])
    eve = rsa_key(2048, "eve")
    with pytest.raises(NotDecryptableError, match="no entry for the thumbprints") as ei:
        decrypt_bytes(stream, [Key("eve.pfx", eve, certificate(eve, "eve"))])
    assert recipient(c).thumbprint.hex() in str(ei.value)      # lists the entries there are
    with pytest.raises(NotDecryptableError, match="wrong key or corrupt EncFEK"):
        decrypt_bytes(stream, [Key("eve.pem", eve)])
    small = rsa_key(1024, "small")
    with pytest.raises(NotDecryptableError, match="not the 128"):
        decrypt_bytes(stream, [Key("small.pem", small)])


def test_corrupt_encfek(alice):
    k, c = alice
    stream = bytearray(encrypt(b"secret", [c]))
    meta = _meta(bytes(stream))
    off, n = fekmod._codec.meta_decode(meta)[3][0]["encrypted_fek"]
    at = bytes(stream).index(meta) + off + n // 2
    stream[at] ^= 0x55
    with pytest.raises(NotDecryptableError, match="corrupt EncFEK"):
        decrypt_bytes(bytes(stream), [Key("alice", k, c)])
    proof = verifymod.check(bytes(stream), [Key("alice", k, c)])
    assert not proof.ok and "corrupt EncFEK" in proof.reasons[0]


def _stream_with_blob(cert, blob: bytes, flags: int = 0) -> bytes:
    u = raw.User(sid=None, display_name="legacy", thumbprint=recipient(cert).thumbprint,
                 container=None, provider=None, encrypted_fek=fekmod.wrap(cert.public_key(), blob))
    meta = raw.metadata_from_users([u], flags=flags)
    return raw.build_raw(meta, [raw.DataStream(raw.UNNAMED_STREAM, 5, bytes(512))])


def test_desx_is_refused(alice):
    k, c = alice
    blob = struct.pack("<IIII", 16, 128, fekmod.Algorithm.CALG_DESX, 0) + bytes(range(16))
    with pytest.raises(NotDecryptableError, match="CALG_DESX"):
        decrypt_bytes(_stream_with_blob(c, blob), [Key("alice", k, c)])


def test_bad_fek_blobs_are_not_keys(alice):
    k, c = alice
    good = fekmod.fek_blob(fekmod.Algorithm.CALG_AES_256, bytes(32))
    bad = [good[:20],                                               # too short for its KeyLength
           struct.pack("<IIII", 24, 32, 0x6610, 0) + bytes(24),      # wrong length for AES-256
           struct.pack("<IIII", 32, 32, 0x6610, 1) + bytes(32),      # Reserved not zero
           struct.pack("<IIII", 32, 32, 0x6611, 0) + bytes(32)]      # unknown ALG_ID
    for blob in bad:
        with pytest.raises(NotDecryptableError, match="no valid FEK blob"):
            decrypt_bytes(_stream_with_blob(c, blob), [Key("alice", k, c)])


def test_smart_card_entry_is_refused(alice):
    k, c = alice
    blob = fekmod.fek_blob(fekmod.Algorithm.CALG_AES_256, bytes(32))
    with pytest.raises(NotDecryptableError, match="Flags 1 .*smart card"):
        decrypt_bytes(_stream_with_blob(c, blob, flags=1), [Key("alice", k, c)])


def _v2_stream() -> bytes:
    meta = bytearray(128)
    struct.pack_into("<IIII", meta, 0, len(meta), 0, 4, 0)       # EFS_Version 4: Version 2 layout
    return raw.build_raw(bytes(meta), [])


def test_version2_metadata_is_refused(alice):
    k, c = alice
    stream = _v2_stream()
    proof = verifymod.check(stream, [Key("alice", k, c)])
    assert not proof.ok and "Version 2 metadata" in " ".join(proof.reasons)
    with pytest.raises(NotDecryptableError, match="Version 2 metadata"):
        decrypt_bytes(stream, [Key("alice", k, c)], mode="compatible")
    with pytest.raises(efsfast.RawFormatError, match="Version 2"):
        decrypt_bytes(stream, [Key("alice", k, c)])


def test_pfx_as_windows_exports_it(tmp_path, alice):
    """certmgr's "TripleDES-SHA1" export: PBES1 SHA1/3-key 3DES, SHA-1 MAC."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12
    k, c = alice
    enc = (serialization.PrivateFormat.PKCS12.encryption_builder()
           .kdf_rounds(2000).key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
           .hmac_hash(hashes.SHA1()).build(PW))
    (tmp_path / "win.pfx").write_bytes(pkcs12.serialize_key_and_certificates(
        b"{guid}", k, c, None, enc))
    key = load_keys(tmp_path / "win.pfx", password=PW)[0]
    assert decrypt_bytes(encrypt(b"from windows", [c]), [key]).data == b"from windows"
