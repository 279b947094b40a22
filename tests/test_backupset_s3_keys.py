"""verify-set --key on a set in an S3 bucket (a real SeaweedFS): the
decryptability proof of ``verify --key`` on every object, fetched object
by object, as for a folder set."""
import os

import pytest

pytest.importorskip("cryptography", reason="decryption needs the 'cryptography' package")

import efsfast  # noqa: E402
from efsfast import cli  # noqa: E402
from efsfast.backupset import verify_store_set  # noqa: E402
from efsfast.crypto import encrypt, prover  # noqa: E402
from efsfast.store import open_store  # noqa: E402

from _keys import certificate, pem, rsa_key  # noqa: E402
from conftest import needs_posix  # noqa: E402

pytestmark = needs_posix
MIB = 1 << 20
# a store whose batches hold 5 MiB: a larger object is read as ranged GETs
SMALL_STORE = dict(memory_limit=10 * MIB, part_size=5 * MIB, jobs=4)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    alice, eve = rsa_key(2048, "alice"), rsa_key(2048, "eve")
    (d / "alice.pem").write_bytes(pem(alice))
    (d / "eve.pem").write_bytes(pem(eve))
    return d, certificate(alice, "alice"), certificate(eve, "eve")


def make_set(xattr_dir, url, ca, ce, *, eve=False):
    """A set of alice's files (a folder, small files, one file larger than
    a batch of SMALL_STORE), with one file of eve's where ``eve``."""
    src = xattr_dir / "src"
    src.mkdir()
    efsfast.restore(src / "Docs", encrypt(None, [ca]), directory=True)
    efsfast.restore(src / "Docs" / "a.txt", encrypt(b"A" * 5000, [ca]))
    efsfast.restore(src / "Docs" / "b.bin", encrypt({"": b"B" * 70000, "alt": b"m"}, [ca]))
    efsfast.restore(src / "big.bin", encrypt(os.urandom(6 * MIB), [ce if eve else ca]))
    if eve:
        efsfast.restore(src / "eve.txt", encrypt(b"only eve", [ce]))
    assert cli.main(["backup-tree", str(src), url, "--quiet"]) == 0


def problems(report):
    return {p.path: p.message for p in report.problems}


def test_every_object_proved_decryptable(xattr_dir, s3_url, keys):
    d, ca, ce = keys
    make_set(xattr_dir, s3_url, ca, ce)
    r = verify_store_set(s3_url, prove=prover([str(d / "alice.pem")]), **SMALL_STORE)
    assert r.ok, r.problems
    assert r.objects == 4 and r.complete
    # the same set with the wrong key: every object named, as for a folder set
    r = verify_store_set(s3_url, prove=prover([str(d / "eve.pem")]), **SMALL_STORE)
    assert not r.ok and r.objects == 0
    got = problems(r)
    assert set(got) == {"Docs.efsraw", "Docs/a.txt.efsraw", "Docs/b.bin.efsraw",
                        "big.bin.efsraw"}
    assert all(m.startswith("not decryptable with the given key(s): ") for m in got.values())


def test_objects_of_another_certificate_named(xattr_dir, s3_url, keys):
    d, ca, ce = keys
    make_set(xattr_dir, s3_url, ca, ce, eve=True)
    alice = prover([str(d / "alice.pem")])
    r = verify_store_set(s3_url, prove=alice, **SMALL_STORE)
    got = problems(r)
    # eve's small object (fetched whole) and eve's large one (ranged GETs)
    assert set(got) == {"eve.txt.efsraw", "big.bin.efsraw"}
    assert all("not decryptable with the given key(s)" in m for m in got.values())
    assert "DDF 0 (eve, thumbprint" in got["eve.txt.efsraw"]   # the entry alice cannot open
    assert r.objects == 3
    both = prover([str(d / "alice.pem"), str(d / "eve.pem")])
    assert verify_store_set(s3_url, prove=both, **SMALL_STORE).ok
    # without keys nothing is wrong with the set
    assert verify_store_set(s3_url, **SMALL_STORE).ok


def test_object_replaced_in_the_bucket_is_named(xattr_dir, s3_url, keys):
    d, ca, ce = keys
    make_set(xattr_dir, s3_url, ca, ce)
    with open_store(s3_url) as st:      # replaced by one encrypted for eve, by another tool
        st.write("Docs/a.txt.efsraw", encrypt(b"A" * 5000, [ce]), replace=True)
    r = verify_store_set(s3_url, prove=prover([str(d / "alice.pem")]), **SMALL_STORE)
    assert list(problems(r)) == ["Docs/a.txt.efsraw"]
    assert problems(r)["Docs/a.txt.efsraw"] == "SHA-256 differs from the manifest's"
    assert r.objects == 3


def test_verify_set_key_command_line(xattr_dir, s3_url, keys, capsys):
    """verify-set s3://… --key: the folder set's report and exit codes."""
    import json
    d, ca, ce = keys
    make_set(xattr_dir, s3_url, ca, ce, eve=True)
    capsys.readouterr()
    alice, eve = str(d / "alice.pem"), str(d / "eve.pem")
    assert cli.main(["verify-set", s3_url, "--key", alice, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert sorted(p["path"] for p in report["failures"]) == ["big.bin.efsraw", "eve.txt.efsraw"]
    assert all("not decryptable" in p["error"] for p in report["failures"])
    assert report["counts"]["verified"] == 3 and report["ok"] is False
    assert cli.main(["verify-set", s3_url, "--key", alice, "--key", eve, "--jobs", "2"]) == 0
    assert "each decryptable with the given key(s)" in capsys.readouterr().out
    # an unusable key file: refused before anything is fetched
    (d / "junk.pem").write_bytes(b"not a key")
    assert cli.main(["verify-set", s3_url, "--key", str(d / "junk.pem")]) == 2
    assert "junk.pem" in capsys.readouterr().err
