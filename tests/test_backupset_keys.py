"""verify-set --key: the decryptability proof of issue 13 over every
object of a backup set (a set made by backup-tree from a real tree)."""
import json

import pytest

pytest.importorskip("cryptography", reason="decryption needs the 'cryptography' package")

import efsfast  # noqa: E402
from efsfast import cli  # noqa: E402
from efsfast.crypto import encrypt  # noqa: E402

from _keys import certificate, pem, rsa_key  # noqa: E402


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    alice, eve = rsa_key(2048, "alice"), rsa_key(2048, "eve")
    ca, ce = certificate(alice, "alice"), certificate(eve, "eve")
    (d / "alice.pem").write_bytes(pem(alice))
    (d / "eve.pem").write_bytes(pem(eve))
    return d, ca, ce


def test_verify_set_key_proves_every_object(xattr_dir, keys, capsys):
    d, ca, ce = keys
    src, out = xattr_dir / "src", xattr_dir / "set"
    src.mkdir()
    efsfast.restore(src / "Docs", encrypt(None, [ca]), directory=True)
    efsfast.restore(src / "Docs" / "a.txt", encrypt(b"A" * 5000, [ca]))
    efsfast.restore(src / "Docs" / "b.bin", encrypt({"": b"B" * 70000, "alt": b"m"}, [ca]))
    efsfast.restore(src / "eve.txt", encrypt(b"only eve", [ce]))
    assert cli.main(["backup-tree", str(src), str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["verify-set", str(out), "--key", str(d / "alice.pem"), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [p["path"] for p in report["failures"]] == ["eve.txt.efsraw"]
    assert "not decryptable" in report["failures"][0]["error"]
    assert report["counts"]["verified"] == 3
    assert cli.main(["verify-set", str(out), "--key", str(d / "alice.pem"),
                     "--key", str(d / "eve.pem")]) == 0
    assert "each decryptable with the given key(s)" in capsys.readouterr().out
    # the proof needs names: not with a stream
    assert cli.main(["verify-set", "-", "--key", str(d / "alice.pem")]) == 2
