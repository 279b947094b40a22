"""Decryption of raw EFS streams (spec section 10): sectors against the IV
formula computed here by hand, round trips through efsfast.encrypt on both
sector paths (AES-NI and ECB + unchain) for both algorithms, and decrypt()
to files with restore's safety rules (no partial DEST, no silent replace,
nothing left on failure or Ctrl-C)."""
import os
import stat
import struct

import pytest

pytest.importorskip("cryptography", reason="decryption needs the 'cryptography' package")

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: E402
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

import efsfast  # noqa: E402
from efsfast import _codec, _decrypt, raw  # noqa: E402
from efsfast.crypto import Key, NotDecryptableError, decrypt, decrypt_bytes, encrypt  # noqa: E402
from efsfast.crypto import fek as fekmod  # noqa: E402
from efsfast.crypto.encrypt import block_cipher, recipient  # noqa: E402

from _keys import certificate, rsa_key  # noqa: E402

SECTOR = 512
AESNI_PATHS = [False, True] if _decrypt.have_aesni() else [True]
PATH_IDS = {False: "aesni", True: "ecb+unchain"}


@pytest.fixture(scope="module")
def user():
    k = rsa_key(2048, "alice")
    c = certificate(k, "alice")
    return Key("alice.pfx", k, c), c


def _ciphertext(stream: bytes, name: str = raw.UNNAMED_STREAM) -> bytes:
    """A data stream's ciphertext, taken from the parser's events."""
    p = _codec.RawParser("strict", events=True)
    p.feed(stream)
    p.finish()
    out, current = b"", None
    for ev in p.events:
        if ev[0] == "stream":
            current = ev[2]
        elif ev[0] == "data" and current == name:
            out += ev[1]
    return out


def test_aes_sector_against_the_iv_formula_by_hand(user):
    """Encrypt one sector per the spec with a hand-computed IV and a
    hand-packed FEK blob, and check efsfast decrypts exactly that."""
    key, cert = user
    fek = bytes(range(32))
    blob = struct.pack("<IIII", 32, 32, 0x6610, 0) + fek             # spec 10: the FEK blob
    enc_fek = fekmod.wrap(cert.public_key(), blob)
    plain = bytes((i * 7) & 0xFF for i in range(3 * SECTOR))
    cipher = b""
    for o in range(0, len(plain), SECTOR):
        iv = struct.pack("<QQ", (0x5816657be9161312 + o) % 2**64, (0x1989adbe44918961 + o) % 2**64)
        e = Cipher(algorithms.AES(fek), modes.CBC(iv)).encryptor()
        cipher += e.update(plain[o:o + SECTOR]) + e.finalize()
    u = raw.User(sid=None, display_name="alice", thumbprint=recipient(cert).thumbprint,
                 container=None, provider=None, encrypted_fek=enc_fek)
    stream = raw.build_raw(raw.metadata_from_users([u]),
                           [raw.DataStream(raw.UNNAMED_STREAM, len(plain) - 100, cipher)])
    for force_ecb in AESNI_PATHS:
        assert decrypt_bytes(stream, [key], force_ecb=force_ecb).data == plain[:-100]


def test_3des_sector_against_the_iv_formula_by_hand(user):
    key, cert = user
    stream = encrypt(bytes(range(256)) * 4, [cert], algorithm="3des")
    fk = fekmod.unwrap(_metadata(stream), [key])
    des_key = bytes(fk.take())
    second = _ciphertext(stream)[SECTOR:2 * SECTOR]
    iv = struct.pack("<Q", (0x169119629891ad13 + SECTOR) % 2**64)
    d = Cipher(block_cipher(fekmod.Algorithm.CALG_3DES, des_key), modes.CBC(iv)).decryptor()
    assert d.update(second) + d.finalize() == (bytes(range(256)) * 4)[SECTOR:]


def test_sector_iv_wraps_modulo_2_64():
    o = 2**64 - 0x5816657be9161312 + 0x200
    assert _decrypt.sector_iv(_decrypt.AES256, o)[:8] == struct.pack("<Q", 0x200)
    assert _decrypt.sector_iv(_decrypt.TRIPLE_DES, 0) == struct.pack("<Q", 0x169119629891ad13)


def test_unchain_matches_cbc():
    k = os.urandom(32)
    data = os.urandom(4 * SECTOR)
    ecb = Cipher(algorithms.AES(k), modes.ECB()).decryptor().update(data)
    want = b""
    for o in range(0, len(data), SECTOR):
        d = Cipher(algorithms.AES(k), modes.CBC(_decrypt.sector_iv(_decrypt.AES256, 4096 + o)))
        want += d.decryptor().update(data[o:o + SECTOR])
    assert _decrypt.unchain(_decrypt.AES256, ecb, data, 4096) == want


def _metadata(stream: bytes) -> bytes:
    from efsfast.crypto.verify import read_metadata
    return read_metadata(stream)


class Dribble:
    """A binary file that returns short, uneven reads: sectors and headers
    arrive split across feeds."""

    def __init__(self, data: bytes, sizes):
        self.data, self.pos, self.sizes, self.i = data, 0, sizes, 0

    def read(self, n=-1):
        k = self.sizes[self.i % len(self.sizes)]
        self.i += 1
        chunk = self.data[self.pos:self.pos + k]
        self.pos += len(chunk)
        return chunk


BOUNDARY_SIZES = st.one_of(
    st.integers(0, 3 * SECTOR),
    st.sampled_from([65535, 65536, 65537, 4095, 4096, 4097, 131072 + 511, 196608]),
    st.integers(0, 300_000))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=BOUNDARY_SIZES, named=st.dictionaries(st.text("abcxyz", min_size=1, max_size=5),
                                                   st.integers(0, 5000), max_size=2),
       alg=st.sampled_from(["aes256", "3des"]), force_ecb=st.sampled_from(AESNI_PATHS),
       sizes=st.lists(st.integers(1, 70000), min_size=1, max_size=5),
       seed=st.binary(min_size=8, max_size=8))
def test_round_trip(user, size, named, alg, force_ecb, sizes, seed):
    key, cert = user
    rnd = __import__("random").Random(seed)
    streams = {"": rnd.randbytes(size)} | {n: rnd.randbytes(k) for n, k in named.items()}
    stream = encrypt(streams, [cert], algorithm=alg)
    out = decrypt_bytes(Dribble(stream, sizes), [key], force_ecb=force_ecb)
    assert out.data == streams[""]
    for n, data in named.items():
        assert out.streams[f":{n}:$DATA"] == streams[n]
    assert out.opened.algorithm.name == ("CALG_AES_256" if alg == "aes256" else "CALG_3DES")


def test_vdl_tail_reads_as_zeros(user):
    """Bytes between BytesWithinVDL and the size read as zeros (spec 10)."""
    key, cert = user
    stream = bytearray(encrypt(b"\xAA" * 1000, [cert]))
    p = _codec.RawParser("strict", events=True)
    p.feed(bytes(stream))
    seg = [ev[1] for ev in p.events if ev[0] == "segment" and ev[1]["encrypted"]][0]
    struct.pack_into("<I", stream, seg["offset"] + 16 + 16, 600)       # BytesWithinVDL
    assert decrypt_bytes(bytes(stream), [key]).data == b"\xAA" * 600 + bytes(400)


# ---- decrypt() to files

def test_decrypt_to_files(tmp_path, user):
    key, cert = user
    body = os.urandom(100_000)
    src = tmp_path / "report.docx.efsraw"
    src.write_bytes(encrypt({"": body, "Zone.Identifier": b"[ZoneTransfer]"}, [cert]))
    dest = tmp_path / "out" / "report.docx"
    dest.parent.mkdir()
    r = decrypt(src, dest, [key])
    assert dest.read_bytes() == body
    assert (dest.parent / "report.docx:Zone.Identifier").read_bytes() == b"[ZoneTransfer]"
    assert stat.S_IMODE(dest.stat().st_mode) & 0o077 == 0
    assert r.bytes == len(body) + 14 and r.opened.entry.kind == "DDF"
    assert sorted(os.listdir(dest.parent)) == ["report.docx", "report.docx:Zone.Identifier"]
    with pytest.raises(efsfast.EfsError, match="exists"):
        decrypt(src, dest, [key])
    dest.write_bytes(b"old")
    decrypt(src, dest, [key], overwrite=True)
    assert dest.read_bytes() == body


def test_wrong_key_leaves_nothing(tmp_path, user):
    _, cert = user
    src = encrypt(os.urandom(70_000), [cert])
    with pytest.raises(NotDecryptableError):
        decrypt(src, tmp_path / "x", [Key("eve", rsa_key(2048, "eve"))])
    assert os.listdir(tmp_path) == []


def test_truncated_stream_leaves_nothing(tmp_path, user):
    key, cert = user
    src = encrypt({"": os.urandom(200_000), "ads": b"x" * 3000}, [cert])
    with pytest.raises(efsfast.RawFormatError):
        decrypt(src[:-1000], tmp_path / "x", [key])
    assert os.listdir(tmp_path) == []


def test_ctrl_c_leaves_nothing(tmp_path, user):
    key, cert = user
    data = encrypt(os.urandom(3 << 20), [cert])

    class Interrupting(Dribble):
        def read(self, n=-1):
            if self.pos > len(self.data) // 2:
                raise KeyboardInterrupt
            return super().read(n)
    with pytest.raises(KeyboardInterrupt):
        decrypt(Interrupting(data, [1 << 20]), tmp_path / "x", [key])
    assert os.listdir(tmp_path) == []


def test_directory_stream_becomes_a_folder(tmp_path, user):
    key, cert = user
    src = encrypt(None, [cert])
    r = decrypt(src, tmp_path / "folder", [key])
    assert r.directory and (tmp_path / "folder").is_dir()
    decrypt(src, tmp_path / "empty", [key], directory=False)
    assert (tmp_path / "empty").read_bytes() == b""


def test_hostile_stream_name_is_refused(tmp_path, user):
    key, cert = user
    src = encrypt({"": b"a", "../../etc": b"b"}, [cert])
    with pytest.raises(efsfast.EfsError, match="cannot be written as a file"):
        decrypt(src, tmp_path / "x", [key])
    assert os.listdir(tmp_path) == []


def test_efs_raw_object_as_source(xattr_dir, user):
    """An encrypted file in the efs_raw layout (what the POSIX side restores:
    ciphertext + trailer, user.ntfs.efsinfo) decrypts in place."""
    key, cert = user
    body = os.urandom(150_000)
    obj = xattr_dir / "secret.txt"
    efsfast.restore(obj, encrypt({"": body, "ads": b"named"}, [cert]))
    out = xattr_dir / "plain.txt"
    decrypt(obj, out, [key])
    assert out.read_bytes() == body and (xattr_dir / "plain.txt:ads").read_bytes() == b"named"
    assert efsfast.verify(obj, keys=[key]).entry.display_name == "alice"


@pytest.mark.skipif(not _decrypt.have_aesni(), reason="this CPU or build has no AES-NI path")
def test_sector_loop_runs_without_the_gil(user):
    """Between the data stream's start and its end (one C call decrypting
    48 MiB) another thread keeps running Python.  With the switch interval
    at 1 s no thread is made to give the GIL up within that call, so were
    the GIL held in the sector loop the other thread could not run a single
    iteration (tried with a GIL-holding memcmp in its place: 0 iterations)."""
    import sys
    import threading
    from efsfast.crypto.decrypt import run
    key, cert = user
    blob = fekmod.fek_blob(fekmod.Algorithm.CALG_AES_256, os.urandom(32))
    u = raw.User(sid=None, display_name="alice", thumbprint=recipient(cert).thumbprint,
                 container=None, provider=None, encrypted_fek=fekmod.wrap(cert.public_key(), blob))
    size = 48 << 20
    stream = raw.build_raw(raw.metadata_from_users([u]),
                           [raw.DataStream(raw.UNNAMED_STREAM, size, os.urandom(size))])
    in_data, done = threading.Event(), threading.Event()

    class Sinks:
        def __call__(self, name, flag):
            in_data.set()                 # from here on the C call only decrypts
            return _decrypt.SINK_NULL

        def close(self, name):
            done.set()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    try:
        t = threading.Thread(target=run, args=(stream, [key], Sinks()))
        t.start()
        in_data.wait()
        n = 0
        # a million iterations while the decryption has not finished prove
        # the point; going on until it finishes only makes its thread wait up
        # to the 1 s interval for every return to Python (minutes, seen in CI)
        while not done.is_set() and n < 1_000_000:
            n += 1
    finally:
        sys.setswitchinterval(interval)
    t.join()
    print(f"\nthe other thread ran {n} loop iterations inside the decryption")
    assert n > 1000, n


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 255)), min_size=1,
                      max_size=4),
       cut=st.one_of(st.none(), st.integers(0, 10**9)),
       mode=st.sampled_from(["strict", "compatible"]))
def test_damaged_streams_fail_cleanly(user, tmp_path_factory, flips, cut, mode):
    """Flipped bytes or a cut anywhere: either a result (flipped ciphertext
    decrypts to noise: there is no MAC, spec section 10) or an efsfast error
    / NotDecryptableError, never another exception, and then no file left."""
    key, cert = user
    good = _damage_base(cert)
    data = bytearray(good)
    for at, x in flips:
        data[at % len(data)] ^= x
    if cut is not None:
        data = data[:cut % len(data)]
    out = tmp_path_factory.mktemp("damaged")
    try:
        decrypt(bytes(data), out / "x", [key], mode=mode)
    except (efsfast.EfsError, ValueError):
        assert os.listdir(out) == []
    else:
        assert (out / "x").exists()


_DAMAGE = {}


def _damage_base(cert) -> bytes:
    if "s" not in _DAMAGE:
        _DAMAGE["s"] = encrypt({"": os.urandom(70_000), "ads": os.urandom(900)}, [cert],
                               [certificate(rsa_key(2048, "dra"), "dra")])
    return _DAMAGE["s"]


def test_decrypt_tree_cancelled_leaves_whole_files_only(tmp_path, user):
    from efsfast import CancelToken
    from efsfast.crypto.tree import decrypt_tree
    key, cert = user
    src = tmp_path / "set"
    src.mkdir()
    for i in range(12):
        (src / f"f{i:02d}.efsraw").write_bytes(encrypt(os.urandom(300_000 + i), [cert]))
    token = CancelToken()

    def progress(files, nbytes, total):
        if files >= 2:
            token.cancel()
    r = decrypt_tree(src, tmp_path / "out", [key], workers=1, progress=progress, cancel=token)
    assert r.bulk.cancelled and 2 <= r.bulk.files < 12
    names = sorted(os.listdir(tmp_path / "out"))
    assert all(not n.endswith(".tmp") for n in names) and len(names) == r.bulk.files
    for n in names:
        assert len((tmp_path / "out" / n).read_bytes()) == 300_000 + int(n[1:3])
