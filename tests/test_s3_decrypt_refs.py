"""decrypt-tree of an incremental set in a bucket whose base set is in a
bucket too: the base set's objects are copied into a temporary folder to
be decrypted, yet every message and --json failure names each object by
its URL (s3://…/NAME.efsraw), as restore-tree does, never by the
temporary copy's path."""
import json

import pytest

from efsfast import cli
from efsfast.backupset import MANIFEST_NAME
from efsfast.store import open_store

from conftest import needs_posix

pytestmark = needs_posix
STAGE = ".efsfast-stage-"


@pytest.fixture
def two_sets(xattr_dir, s3_url, tmp_path):
    """A base set and an incremental set of the same encrypted tree, each
    under its own prefix; (base URL, incremental URL, key file, plaintexts)."""
    pytest.importorskip("cryptography", reason="decryption needs the 'cryptography' package")
    from _keys import encrypted_tree
    src = xattr_dir / "src"
    plain = encrypted_tree(src, tmp_path / "alice.pem")
    base, incr = s3_url, s3_url + "-incr"
    assert cli.main(["backup-tree", str(src), base, "--quiet"]) == 0
    assert cli.main(["backup-tree", str(src), incr, "--since", base, "--quiet"]) == 0
    with open_store(incr) as st:        # the incremental holds no object of its own
        assert {o.key for o in st.list()} == {MANIFEST_NAME}
    return base, incr, tmp_path / "alice.pem", plain


def _decrypt(key, url, dest, *extra):
    return cli.main(["decrypt-tree", "--key", str(key), "--quiet", url, str(dest), *extra])


def test_incremental_decrypts_through_its_base(two_sets, tmp_path):
    base, incr, key, plain = two_sets
    assert _decrypt(key, incr, tmp_path / "plain") == 0
    for rel, data in plain.items():
        assert (tmp_path / "plain" / rel).read_bytes() == data
    # and with the base named by --with
    assert _decrypt(key, incr, tmp_path / "plain-with", "--with", base) == 0
    assert (tmp_path / "plain-with" / "Docs" / "b.bin").read_bytes() == plain["Docs/b.bin"]


def _damage(url, name):
    with open_store(url) as st:
        data = bytearray(st.read(name))
        data[-1] ^= 1
        st.write(name, bytes(data), replace=True)


@pytest.mark.parametrize("how", ["recorded", "with"])
def test_damaged_base_object_named_by_its_url(two_sets, tmp_path, capsys, how):
    base, incr, key, plain = two_sets
    _damage(base, "Docs/b.bin.efsraw")
    want = base.rstrip("/") + "/Docs/b.bin.efsraw"
    extra = ["--with", base] if how == "with" else []
    capsys.readouterr()
    assert _decrypt(key, incr, tmp_path / "plain", *extra) == 1
    out, err = capsys.readouterr()
    assert "SHA-256" in out + err and want in out + err, out + err
    assert STAGE not in out + err, out + err
    assert not (tmp_path / "plain" / "Docs" / "b.bin").exists()
    assert (tmp_path / "plain" / "top.txt").read_bytes() == b"top"
    assert _decrypt(key, incr, tmp_path / "plainj", "--json", *extra) == 1
    out, err = capsys.readouterr()
    assert STAGE not in out + err, out + err
    (f,) = json.loads(out)["failures"]
    assert f["kind"] == "mismatch" and f["source"] == want, f


def test_base_object_gone_named_by_its_url(two_sets, tmp_path, capsys):
    base, incr, key, plain = two_sets
    with open_store(base) as st:
        st.remove("top.txt.efsraw")
    want = base.rstrip("/") + "/top.txt.efsraw"
    capsys.readouterr()
    assert _decrypt(key, incr, tmp_path / "plain") == 1
    out, err = capsys.readouterr()
    assert want in out + err and STAGE not in out + err, out + err
    assert not (tmp_path / "plain" / "top.txt").exists()
    assert _decrypt(key, incr, tmp_path / "plainj", "--json") == 1
    out, err = capsys.readouterr()
    assert STAGE not in out + err, out + err
    (f,) = json.loads(out)["failures"]
    assert want in (f["path"], f.get("source")), f


def test_base_objects_no_key_opens_named_by_their_urls(two_sets, tmp_path, capsys):
    from _keys import pem, rsa_key
    base, incr, key, plain = two_sets
    (tmp_path / "bob.pem").write_bytes(pem(rsa_key(2048, "bob")))
    capsys.readouterr()
    assert _decrypt(tmp_path / "bob.pem", incr, tmp_path / "plain") == 1
    out, err = capsys.readouterr()
    assert STAGE not in out + err, out + err
    assert _decrypt(tmp_path / "bob.pem", incr, tmp_path / "plainj", "--json") == 1
    out, err = capsys.readouterr()
    assert STAGE not in out + err, out + err
    failures = json.loads(out)["failures"]
    assert failures and all(f["kind"] == "not_decryptable" for f in failures), failures
    assert sorted(f["source"] for f in failures) == sorted(
        f"{base.rstrip('/')}/{rel}.efsraw" for rel in plain), failures
