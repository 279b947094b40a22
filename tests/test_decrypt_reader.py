"""A large raw stream file is read on a thread of its own while the chunk
before is decrypted (crypto/reader.py): the same chunks in the same order
as reading them one after the other, a read error raised in its place,
and no thread left reading once the caller stops, however it stops."""
import importlib
import os
import threading

import pytest

pytest.importorskip("cryptography", reason="decryption needs the 'cryptography' package")

from efsfast import CancelledError  # noqa: E402
from efsfast.crypto import Key, decrypt, encrypt  # noqa: E402
from efsfast.crypto.reader import read_ahead  # noqa: E402

from _keys import certificate, rsa_key  # noqa: E402
from conftest import listing  # noqa: E402

decrypt_module = importlib.import_module("efsfast.crypto.decrypt")
reader_module = importlib.import_module("efsfast.crypto.reader")   # (decrypt imports it when needed)
MIB = 1 << 20


class Source:
    """A readinto that gives ``data`` in reads of at most ``step`` bytes
    (as a pipe or a network file system may), counting its calls, and
    raises ``error`` once ``fail_at`` bytes were given."""

    def __init__(self, data: bytes, step: int, fail_at=None, error=None):
        self.data, self.step, self.at = data, step, 0
        self.fail_at, self.error = fail_at, error
        self.calls = 0

    def readinto(self, buf) -> int:
        self.calls += 1
        if self.fail_at is not None and self.at >= self.fail_at:
            raise self.error
        n = min(len(buf), self.step, len(self.data) - self.at)
        buf[:n] = self.data[self.at:self.at + n]
        self.at += n
        return n


def readers() -> list:
    return [t for t in threading.enumerate() if t.name == "efsfast-ciphertext-reader"]


@pytest.mark.parametrize("length,size,step", [(0, 64, 64), (1, 64, 64), (64, 64, 64),
                                              (1000, 64, 64), (1000, 64, 10), (999, 7, 100)])
def test_the_same_chunks_as_reading_one_after_the_other(length, size, step):
    data = os.urandom(length)
    src = Source(data, step)
    chunks = [bytes(c) for c in read_ahead(src.readinto, size)]
    expected = [data[i:i + min(size, step)] for i in range(0, length, min(size, step))]
    assert chunks == expected
    assert readers() == []


def test_a_read_error_comes_after_the_chunks_before_it():
    src = Source(os.urandom(10 * 64), 64, fail_at=5 * 64,
                 error=OSError(5, "Input/output error"))
    got = []
    with pytest.raises(OSError) as ei:
        for chunk in read_ahead(src.readinto, 64):
            got.append(bytes(chunk))
    assert ei.value.errno == 5
    assert b"".join(got) == src.data[:5 * 64]
    assert readers() == []


def test_stopping_early_stops_the_thread_before_returning():
    src = Source(os.urandom(100 * 64), 64)
    it = read_ahead(src.readinto, 64, buffers=3)
    next(it)
    it.close()
    assert readers() == []
    calls = src.calls
    assert calls <= 4          # the chunk taken, and at most the three buffers read ahead
    threading.Event().wait(0.05)
    assert src.calls == calls  # nothing reads after close()


@pytest.fixture(scope="module")
def user():
    k = rsa_key(2048, "alice")
    c = certificate(k, "alice")
    return Key("alice.pem", k, c), c


def test_a_large_file_is_read_by_the_reader_thread(tmp_path, user, monkeypatch):
    key, cert = user
    body = os.urandom(9 * MIB)
    src = tmp_path / "s.efsraw"
    src.write_bytes(encrypt(body, [cert]))
    used = []
    real = reader_module.read_ahead
    monkeypatch.setattr(reader_module, "read_ahead",
                        lambda *a: used.append(1) or real(*a))
    before = threading.active_count()
    decrypt(src, tmp_path / "x", [key])
    assert used == [1] and (tmp_path / "x").read_bytes() == body
    assert threading.active_count() == before


class CancelAfter:
    """cancel= that turns true after ``n`` looks (a Ctrl-C mid-way)."""

    def __init__(self, n: int):
        self.n = n

    @property
    def cancelled(self) -> bool:
        self.n -= 1
        return self.n < 0


def test_cancelled_midway_leaves_nothing_and_no_thread(tmp_path, user):
    key, cert = user
    src = tmp_path / "src" / "s.efsraw"
    src.parent.mkdir()
    src.write_bytes(encrypt(os.urandom(12 * MIB), [cert]))
    before = threading.active_count()
    with pytest.raises(CancelledError):
        decrypt_module.decrypt(src, tmp_path / "x", [key], cancel=CancelAfter(4))
    assert listing(tmp_path) == ["src"]
    assert threading.active_count() == before
