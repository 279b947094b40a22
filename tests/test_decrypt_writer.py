"""decrypt() writes plaintext in large blocks, on a thread of their own for
a large source (crypto/writer.py) and from the decrypting thread for a small
one: both give the same files, write in blocks rather than per segment,
and leave nothing behind on a full disk, a damaged stream or Ctrl-C."""
import errno
import os
import shutil
import subprocess
import sys
import importlib
import threading

import pytest

pytest.importorskip("cryptography", reason="decryption needs the 'cryptography' package")

import efsfast  # noqa: E402
from efsfast import _decrypt  # noqa: E402
from efsfast.crypto import Key, decrypt, encrypt  # noqa: E402

decrypt_module = importlib.import_module("efsfast.crypto.decrypt")
writer_module = importlib.import_module("efsfast.crypto.writer")   # (decrypt imports it when needed)

from _keys import certificate, pem, rsa_key  # noqa: E402
from conftest import listing, small_tmpfs  # noqa: E402

MIB = 1 << 20
BLOCK = _decrypt.OUTPUT_BLOCK


@pytest.fixture(scope="module")
def user():
    k = rsa_key(2048, "alice")
    c = certificate(k, "alice")
    return Key("alice.pem", k, c), c


@pytest.fixture(params=["writer thread", "same thread"])
def writer_mode(request, monkeypatch):
    """Every source gets a writer thread (and every raw stream file a reader
    thread, crypto/reader.py), or none does."""
    threshold = 0 if request.param == "writer thread" else 1 << 62
    monkeypatch.setattr(decrypt_module, "WRITER_FROM", threshold)
    monkeypatch.setattr(decrypt_module, "READER_FROM", threshold)
    return request.param


@pytest.mark.parametrize("alg,force_ecb", [("aes256", False), ("aes256", True), ("3des", False)])
def test_same_files_either_way(tmp_path, user, writer_mode, alg, force_ecb):
    """Streams that end inside, at and across output blocks, named streams
    between them, an empty one."""
    key, cert = user
    streams = {"": os.urandom(2 * BLOCK + 12345), "a": os.urandom(BLOCK - 16), "b": b"",
               "c": os.urandom(BLOCK), "d": os.urandom(777)}
    src = tmp_path / "s.efsraw"
    src.write_bytes(encrypt(streams, [cert], algorithm=alg))
    before = threading.active_count()
    if force_ecb:       # the path without AES-NI: OpenSSL's ECB pass into the output block
        from efsfast.crypto.decrypt import _Files, run
        files = _Files(str(tmp_path / "x"), False, writer_module.BlockWriter()
                       if writer_mode == "writer thread" else None)
        run(src, [key], files, force_ecb=True, writer=files.writer)
        files.stop_writer(ok=True)
        files.publish()
    else:
        r = decrypt(src, tmp_path / "x", [key])
        assert r.bytes == sum(map(len, streams.values()))
    assert (tmp_path / "x").read_bytes() == streams[""]
    for name in "abcd":
        assert (tmp_path / f"x:{name}").read_bytes() == streams[name]
    assert threading.active_count() == before          # the writer thread is gone
    assert sorted(listing(tmp_path)) == ["s.efsraw", "x", "x:a", "x:b", "x:c", "x:d"]


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
@pytest.mark.parametrize("size", [8 * MIB, 2 * MIB])     # with and without a writer thread
def test_plaintext_goes_out_in_blocks(tmp_path, user, size):
    """The CLI writes a megabyte at a time, not one call per ~64 KiB EFS
    segment (it made 4,600 write calls for 256 MiB)."""
    key, cert = user
    (tmp_path / "k.pem").write_bytes(pem(key.private_key))
    src = tmp_path / "s.efsraw"
    src.write_bytes(encrypt(os.urandom(size), [cert]))
    trace = tmp_path / "trace"
    p = subprocess.run(["strace", "-f", "-e", "trace=write", "-o", str(trace), sys.executable,
                        "-m", "efsfast", "decrypt", "--key", str(tmp_path / "k.pem"), str(src),
                        str(tmp_path / "out")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    big = [line for line in trace.read_text().splitlines()
           if "write(" in line and not line.split("write(")[1].startswith(("1,", "2,"))]
    assert (tmp_path / "out").stat().st_size == size
    assert len(big) <= size // (BLOCK - 64 * 1024) + 2, big[:5]


def test_a_full_disk_leaves_nothing(tmp_path, user, writer_mode):
    key, cert = user
    src = tmp_path / "s.efsraw"
    src.write_bytes(encrypt(os.urandom(6 * MIB), [cert]))
    with small_tmpfs(tmp_path, "4m") as mnt:
        before = threading.active_count()
        with pytest.raises(OSError) as ei:
            decrypt(src, mnt / "x", [key])
        assert ei.value.errno == errno.ENOSPC
        assert "cannot write the plaintext" in str(ei.value)
        assert listing(mnt) == []
        assert threading.active_count() == before


@pytest.mark.parametrize("as_file", [False, True])
def test_a_damaged_stream_after_many_blocks_leaves_nothing(tmp_path, user, writer_mode, as_file):
    key, cert = user
    data = bytearray(encrypt(os.urandom(5 * BLOCK), [cert]))
    del data[-3000:]
    src = tmp_path / "src" / "s.efsraw"       # (a file: read by the reader thread)
    src.parent.mkdir()
    src.write_bytes(data)
    before = threading.active_count()
    with pytest.raises(efsfast.RawFormatError):
        decrypt(src if as_file else bytes(data), tmp_path / "x", [key])
    assert listing(tmp_path) == ["src"] and listing(src.parent) == ["s.efsraw"]
    assert threading.active_count() == before


def test_standard_input_gets_a_writer(tmp_path, user, monkeypatch):
    """A source of unknown length (a pipe) is decrypted with the writer."""
    key, cert = user
    body = os.urandom(3 * MIB)
    r, w = os.pipe()
    threading.Thread(target=lambda: (os.write(w, encrypt(body, [cert])), os.close(w))).start()
    made = []
    real = writer_module.BlockWriter
    monkeypatch.setattr(writer_module, "BlockWriter", lambda: made.append(1) or real())
    with os.fdopen(r, "rb") as f:
        decrypt(f, tmp_path / "x", [key])
    assert made == [1] and (tmp_path / "x").read_bytes() == body
