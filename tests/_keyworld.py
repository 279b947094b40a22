"""A small world of encrypted things for the command-line tests of the
--json records and of the one voice (test-only helper): a key (plain and
password-protected), raw streams, a tree of encrypted objects restored
from them (efs_raw layout on tmpfs) and a backup set of that tree."""
import contextlib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

from _keys import certificate, pem, rsa_key
from conftest import _supports_user_xattrs

PW = "pw for the key"
PLAIN = b"plain text " * 30         # r.efsraw's plaintext


def run_program(*argv, **kw):
    return subprocess.run([sys.executable, "-m", "efsfast", *map(str, argv)],
                          capture_output=True, **kw)


@contextlib.contextmanager
def key_world(prefix):
    from efsfast.crypto import encrypt
    if not hasattr(os, "setxattr") or not _supports_user_xattrs("/dev/shm"):
        pytest.skip("no tmpfs with user xattrs at /dev/shm (the POSIX system side needs them)")
    d = pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir="/dev/shm"))
    try:
        key = rsa_key(2048, "world")
        cert = certificate(key, "alice")
        (d / "k.pem").write_bytes(pem(key))
        from cryptography.hazmat.primitives.serialization import Encoding
        (d / "alice.cer").write_bytes(cert.public_bytes(Encoding.PEM))
        (d / "plain.txt").write_bytes(PLAIN)
        (d / "k-pw.pem").write_bytes(pem(key, password=PW.encode()))
        (d / "raws" / "sub").mkdir(parents=True)
        (d / "raws" / "a.txt.efsraw").write_bytes(encrypt(b"a" * 5000, [cert]))
        (d / "raws" / "sub" / "b.txt.efsraw").write_bytes(encrypt(b"b" * 70000, [cert]))
        (d / "r.efsraw").write_bytes(encrypt(PLAIN, [cert]))
        assert run_program("restore-tree", d / "raws", d / "tree").returncode == 0
        assert run_program("backup-tree", d / "tree", d / "set").returncode == 0
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def fresh(world, name):
    """A path below world/out that does not exist (each case its own)."""
    p = world / "out" / name
    p.parent.mkdir(exist_ok=True)
    if p.is_dir():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()
    return p
