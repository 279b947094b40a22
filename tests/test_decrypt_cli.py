"""verify --key, decrypt and decrypt-tree from the command line, on plain
folders and on a real ntfs-3g efs_raw mount."""
import json
import os
import sys

import pytest

pytest.importorskip("cryptography", reason="decryption needs the 'cryptography' package")

import efsfast  # noqa: E402
from efsfast import cli  # noqa: E402
from efsfast.crypto import encrypt  # noqa: E402
from efsfast.crypto import fek as fekmod  # noqa: E402
from efsfast.crypto.verify import read_metadata  # noqa: E402

from _keys import certificate, pem, pfx, rsa_key  # noqa: E402
from ntfs_volume import mounted_volume, needs_ntfs3g  # noqa: E402

PW = "s3cret pw"


@pytest.fixture(scope="module")
def keyset(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    user, dra, eve = rsa_key(2048, "alice"), rsa_key(2048, "dra"), rsa_key(2048, "eve")
    cu, cd, ce = certificate(user, "alice"), certificate(dra, "Recovery Agent"), certificate(eve, "eve")
    (d / "alice.pfx").write_bytes(pfx(user, cu, PW.encode()))
    (d / "dra.pem").write_bytes(pem(dra))
    (d / "eve.pfx").write_bytes(pfx(eve, ce))
    (d / "pw.txt").write_text(PW + "\n")
    return {"dir": d, "user": (user, cu), "dra": (dra, cd), "eve": (eve, ce)}


@pytest.fixture
def backup_set(tmp_path, keyset):
    """A backup-tree-shaped folder: two files for alice (with a DRF), one
    only eve can open, an encrypted folder."""
    cu, cd, ce = keyset["user"][1], keyset["dra"][1], keyset["eve"][1]
    root = tmp_path / "set"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.txt.efsraw").write_bytes(encrypt(b"A" * 5000, [cu], [cd]))
    (root / "docs" / "b.bin.efsraw").write_bytes(
        encrypt({"": os.urandom(70000), "meta": b"m"}, [cu], [cd], algorithm="3des"))
    (root / "docs.efsraw").write_bytes(encrypt(None, [cu], [cd]))
    (root / "other.efsraw").write_bytes(encrypt(b"eve's", [ce]))
    (root / "notes.txt").write_text("not a backup")
    return root


def run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_verify_key_names_every_stream_no_key_opens(capsys, keyset, backup_set):
    k = keyset["dir"]
    rc, out, err = run(capsys, "verify", "--key", k / "dra.pem", backup_set)
    assert rc == 1
    assert "other.efsraw: NOT DECRYPTABLE" in out and "wrong key or corrupt EncFEK" in out
    assert out.count(": decryptable by DRF 0 (Recovery Agent") == 3
    assert "3 decryptable, 1 not" in out
    rc, out, _ = run(capsys, "verify", "--key", k / "dra.pem", "--key", k / "eve.pfx",
                     "--read-data", "--json", backup_set)
    assert rc == 0
    res = json.loads(out)
    assert res["counts"]["invalid"] == 0 and res["ok"]
    by = {os.path.basename(r["path"]): r for r in res["results"]}
    assert by["other.efsraw"]["opened_by"]["entry"] == "DDF"
    assert by["b.bin.efsraw"]["opened_by"]["algorithm"] == "CALG_3DES"
    assert by["b.bin.efsraw"]["plaintext_bytes"] == 70001
    # no FEK in any output
    fk = fekmod.unwrap(read_metadata(backup_set / "docs" / "a.txt.efsraw"),
                       efsfast.load_keys(k / "dra.pem"))
    assert bytes(fk.take()).hex() not in out


def test_passwords_from_file_env_never_argv(capsys, keyset, backup_set, monkeypatch):
    k = keyset["dir"]
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    rc, _, err = run(capsys, "verify", "--key", k / "alice.pfx", backup_set / "docs")
    assert rc == 2 and "protected by a password" in err
    rc, out, _ = run(capsys, "verify", "--key", k / "alice.pfx", "--password-file", k / "pw.txt",
                     backup_set / "docs")
    assert rc == 0 and "DDF 0 (alice" in out
    monkeypatch.setenv("EFS_PW", PW)
    rc, _, _ = run(capsys, "verify", "--key", k / "alice.pfx", "--password-env", "EFS_PW",
                   backup_set / "docs" / "a.txt.efsraw")
    assert rc == 0
    monkeypatch.setenv("EFS_PW", "wrong")
    rc, _, err = run(capsys, "verify", "--key", k / "alice.pfx", "--password-env", "EFS_PW",
                     backup_set / "docs")
    assert rc == 2 and "wrong password" in err and "wrong" not in err.replace("wrong password", "")


def test_password_only_for_the_encrypted_key(capsys, keyset, backup_set, monkeypatch):
    """The README's user + recovery agent recipe: alice.pfx has a password,
    dra.pem has none; a terminal is asked once, for alice.pfx only."""
    import getpass
    k = keyset["dir"]
    rc, out, err = run(capsys, "verify", "--key", k / "alice.pfx", "--key", k / "dra.pem",
                       "--password-file", k / "pw.txt", backup_set / "docs")
    assert rc == 0, err
    asked = []
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(getpass, "getpass", lambda prompt: asked.append(prompt) or PW)
    rc, out, err = run(capsys, "decrypt", "--key", k / "dra.pem",
                       backup_set / "docs" / "a.txt.efsraw", backup_set.parent / "a.txt")
    assert rc == 0 and asked == [], err
    rc, out, err = run(capsys, "verify", "--key", k / "dra.pem", "--key", k / "alice.pfx",
                       backup_set / "docs")
    assert rc == 0 and asked == [f"Password for {k / 'alice.pfx'}: "], err
    rc, _, err = run(capsys, "verify", "--key", k / "alice.pfx", "--password-file",
                     k / "no-such-pw.txt", backup_set / "docs")
    assert rc == 2 and f"{k / 'no-such-pw.txt'}: cannot read the password file" in err
    rc, _, err = run(capsys, "verify", "--key", k / "pw.txt", backup_set / "docs")
    assert rc == 2 and err.strip() == (f"efsfast: {k / 'pw.txt'}: is not a PFX, PEM or DER "
                                       "private key")


def test_decrypt_and_decrypt_tree(capsys, keyset, backup_set, tmp_path):
    k = keyset["dir"]
    rc, out, _ = run(capsys, "decrypt", "--key", k / "dra.pem", backup_set / "docs" / "a.txt.efsraw",
                     tmp_path / "a.txt")
    assert rc == 0 and (tmp_path / "a.txt").read_bytes() == b"A" * 5000
    rc, _, err = run(capsys, "decrypt", "--key", k / "dra.pem",
                     backup_set / "docs" / "a.txt.efsraw", tmp_path / "a.txt")
    assert rc == 2 and "exists" in err     # refused: nothing written
    rc, out, _ = run(capsys, "decrypt-tree", "--key", k / "dra.pem", "--json", backup_set,
                     tmp_path / "plain")
    res = json.loads(out)
    assert rc == 1 and res["counts"]["done"] == 2 and res["counts"]["failed"] == 1
    assert "no key opens it" in res["failures"][0]["error"]
    plain = tmp_path / "plain"
    assert (plain / "docs" / "a.txt").read_bytes() == b"A" * 5000
    assert (plain / "docs" / "b.bin:meta").read_bytes() == b"m"
    assert (plain / "docs").is_dir() and not (plain / "other").exists()
    assert sorted(os.listdir(plain)) == ["docs"]


def test_missing_cryptography_says_how_to_get_it(capsys, keyset, backup_set, monkeypatch):
    monkeypatch.setitem(sys.modules, "cryptography", None)
    rc, _, err = run(capsys, "verify", "--key", keyset["dir"] / "dra.pem", backup_set)
    assert rc == 2 and "pip install 'efsfast[decrypt]'" in err


@needs_ntfs3g
def test_on_an_ntfs3g_efs_raw_mount(capsys, keyset, tmp_path):
    k = keyset["dir"]
    cu, cd = keyset["user"][1], keyset["dra"][1]
    v = mounted_volume(tmp_path)
    try:
        body = os.urandom(300_000)
        (v.mnt / "dir").mkdir()
        efsfast.restore(v.mnt / "dir" / "f.bin", encrypt({"": body, "ads": b"named"}, [cu], [cd]))
        efsfast.restore(v.mnt / "g.txt", encrypt(b"small", [cu], [cd], algorithm="3des"))
        rc, out, _ = run(capsys, "verify", "--key", k / "dra.pem", v.mnt)
        assert rc == 0 and "2 decryptable, 0 not" in out
        rc, out, _ = run(capsys, "verify", "--key", k / "dra.pem", "--read-data", v.mnt)
        assert rc == 0 and "300005 bytes decrypted" in out   # both streams
        rc, _, _ = run(capsys, "decrypt", "--key", k / "dra.pem", v.mnt / "dir" / "f.bin",
                       tmp_path / "f.bin")
        assert rc == 0 and (tmp_path / "f.bin").read_bytes() == body
        assert (tmp_path / "f.bin:ads").read_bytes() == b"named"
        rc, _, _ = run(capsys, "decrypt-tree", "--key", k / "dra.pem", v.mnt, tmp_path / "tree")
        assert rc == 0
        assert (tmp_path / "tree" / "dir" / "f.bin").read_bytes() == body
        assert (tmp_path / "tree" / "g.txt").read_bytes() == b"small"
    finally:
        v.unmount()
