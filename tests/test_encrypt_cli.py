"""``efsfast encrypt`` and ``efsfast synth`` from the command line: encrypt
→ decrypt gives the same bytes for PEM, DER and PFX certificates, each
private key alone opens the result, refusals exit 2 naming the file with
nothing left behind; synth takes sizes with suffixes, streams any size and
says which option is wrong."""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("cryptography", reason="encryption needs the 'cryptography' package")

from cryptography.hazmat.primitives.serialization import Encoding  # noqa: E402

import efsfast  # noqa: E402
from efsfast import cli, raw  # noqa: E402

from _keys import certificate, pem, pfx, rsa_key  # noqa: E402
from conftest import listing, small_tmpfs  # noqa: E402

PW = "s3cret pw"
BODY = os.urandom(2 * 65536 + 777)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """alice's certificate as PEM, DER and a password-protected PFX; the
    recovery agent's as DER; each private key as an unencrypted PEM."""
    d = tmp_path_factory.mktemp("keys")
    alice, dra = rsa_key(2048, "alice"), rsa_key(2048, "dra")
    ca, cd = certificate(alice, "alice"), certificate(dra, "Recovery Agent")
    (d / "alice.crt").write_bytes(ca.public_bytes(Encoding.PEM))
    (d / "alice.cer").write_bytes(ca.public_bytes(Encoding.DER))
    (d / "alice.pfx").write_bytes(pfx(alice, ca, PW.encode()))
    (d / "dra.cer").write_bytes(cd.public_bytes(Encoding.DER))
    (d / "alice.key").write_bytes(pem(alice))
    (d / "dra.key").write_bytes(pem(dra))
    (d / "pw.txt").write_text(PW + "\n")
    return d


def run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def plain(tmp_path):
    p = tmp_path / "report.bin"
    p.write_bytes(BODY)
    return p


def decrypted(capsys, src, key, tmp_path):
    dest = tmp_path / f"plain-{os.urandom(4).hex()}"
    rc, out, err = run(capsys, "decrypt", src, dest, "--key", key)
    assert rc == 0, err
    return dest.read_bytes()


@pytest.mark.parametrize("cert,extra", [("alice.crt", []), ("alice.cer", []),
                                        ("alice.pfx", ["--password-file", "pw.txt"])])
def test_encrypt_then_decrypt_is_identical(capsys, keys, plain, tmp_path, cert, extra):
    dest = tmp_path / "report.efsraw"
    extra = [keys / e if e.endswith(".txt") else e for e in extra]
    rc, out, err = run(capsys, "encrypt", plain, dest, "--cert", keys / cert, *extra)
    assert rc == 0, err
    assert f"{dest}" in out and "alice" in out and f"{len(BODY)} bytes" in out
    rc, out, err = run(capsys, "verify", "--key", keys / "alice.key", dest)
    assert rc == 0 and "decryptable by DDF 0 (alice" in out
    assert decrypted(capsys, dest, keys / "alice.key", tmp_path) == BODY


def test_user_and_recovery_agent_each_alone(capsys, keys, plain, tmp_path):
    dest = tmp_path / "r.efsraw"
    rc, out, err = run(capsys, "encrypt", plain, dest, "--cert", keys / "alice.crt",
                       "--recovery-cert", keys / "dra.cer", "--json")
    assert rc == 0, err
    rec = json.loads(out)
    assert rec["command"] == "encrypt" and rec["ok"] is True and rec["failures"] == []
    assert rec["source"] == str(plain) and rec["dest"] == str(dest)
    assert rec["bytes"] == dest.stat().st_size
    made = rec["object"]
    assert made["path"] == str(dest) and made["plain_bytes"] == len(BODY)
    assert made["recipients"] == ["alice"] and made["recovery_agents"] == ["Recovery Agent"]
    assert made["algorithm"] == "aes256"
    rc, out, err = run(capsys, "inspect", dest)
    assert rc == 0 and "DDF" in out and "DRF" in out and "Recovery Agent" in out
    for key in ("alice.key", "dra.key"):
        assert decrypted(capsys, dest, keys / key, tmp_path) == BODY


def test_two_users_and_3des(capsys, keys, plain, tmp_path):
    dest = tmp_path / "two.efsraw"
    rc, out, err = run(capsys, "encrypt", plain, dest, "--cert", keys / "alice.cer",
                       "--cert", keys / "dra.cer", "--algorithm", "3des")
    assert rc == 0, err
    assert [e.display_name for e in efsfast.inspect(dest).metadata.ddf] == \
        ["alice", "Recovery Agent"]
    for key in ("alice.key", "dra.key"):
        assert decrypted(capsys, dest, keys / key, tmp_path) == BODY


def test_to_standard_output_then_restore_input(keys, plain, tmp_path):
    """DEST - : the raw stream on stdout, the summary on stderr; the stream is
    one `verify` and `decrypt -` take."""
    p = subprocess.run([sys.executable, "-m", "efsfast", "encrypt", str(plain), "-",
                        "--cert", str(keys / "alice.crt")], capture_output=True)
    assert p.returncode == 0, p.stderr
    assert b"alice" in p.stderr
    efsfast.verify(p.stdout)
    d = subprocess.run([sys.executable, "-m", "efsfast", "decrypt", "-", str(tmp_path / "out"),
                        "--key", str(keys / "alice.key")], input=p.stdout, capture_output=True)
    assert d.returncode == 0, d.stderr
    assert (tmp_path / "out").read_bytes() == BODY


@pytest.mark.parametrize("case", ["not a certificate", "wrong password", "missing cert",
                                  "missing plain", "plain from stdin", "dest exists",
                                  "no cert"])
def test_refusals_exit_2_naming_the_file(capsys, keys, plain, tmp_path, case):
    dest = tmp_path / "out.efsraw"
    args = [plain, dest, "--cert", keys / "alice.crt"]
    named = None
    if case == "not a certificate":
        args[3] = named = keys / "pw.txt"
        why = "is not a certificate"
    elif case == "wrong password":
        bad = tmp_path / "bad.txt"
        bad.write_text("not the password\n")
        args = [plain, dest, "--cert", keys / "alice.pfx", "--password-file", bad]
        named, why = keys / "alice.pfx", "wrong password"
    elif case == "missing cert":
        args[3] = named = keys / "nowhere.crt"
        why = "cannot read the certificate file"
    elif case == "missing plain":
        args[0] = named = tmp_path / "nowhere.txt"
        why = "No such file"
    elif case == "plain from stdin":
        args[0] = "-"
        why = "PLAIN must be a file"
    elif case == "dest exists":
        dest.write_bytes(b"keep me")
        named, why = dest, "exists (add --overwrite to replace it)"
    else:
        args = args[:2]
        why = "--cert"
    before = listing(tmp_path)
    # (argparse's usage error too: main returns 2, it does not exit)
    rc, out, err = run(capsys, "encrypt", *args)
    assert rc == 2, (out, err)
    assert why in err and (named is None or str(named) in err), err
    assert listing(tmp_path) == before
    if case == "dest exists":
        assert dest.read_bytes() == b"keep me"
        assert run(capsys, "encrypt", *args, "--overwrite")[0] == 0
        assert decrypted(capsys, dest, keys / "alice.key", tmp_path) == BODY
    elif case != "no cert":
        rc, out, err = run(capsys, "encrypt", *args, "--json")
        assert rc == 2
        rec = json.loads(out)       # (the cause: in the record's failure, however it is laid out)
        assert rec["command"] == "encrypt" and rec["ok"] is False and why in json.dumps(rec)


def test_pfx_password_from_the_environment(capsys, keys, plain, tmp_path, monkeypatch):
    dest = tmp_path / "e.efsraw"
    monkeypatch.delenv("EFS_PW", raising=False)
    rc, out, err = run(capsys, "encrypt", plain, dest, "--cert", keys / "alice.pfx",
                       "--password-env", "EFS_PW")
    assert rc == 2 and "EFS_PW" in err and "not set" in err and not dest.exists()
    monkeypatch.setenv("EFS_PW", PW)
    rc, out, err = run(capsys, "encrypt", plain, dest, "--cert", keys / "alice.pfx",
                       "--password-env", "EFS_PW")
    assert rc == 0, err
    assert decrypted(capsys, dest, keys / "alice.key", tmp_path) == BODY


def test_restore_takes_it_and_gives_it_back(capsys, keys, plain, xattr_dir):
    """restore puts the stream on the efs_raw layout (tmpfs with user
    xattrs); backup reads back the same bytes, and decrypt opens the object."""
    stream, obj, back = xattr_dir / "s.efsraw", xattr_dir / "report.bin", xattr_dir / "b.efsraw"
    assert run(capsys, "encrypt", plain, stream, "--cert", keys / "alice.crt",
               "--recovery-cert", keys / "dra.cer")[0] == 0
    rc, out, err = run(capsys, "restore", stream, obj)
    assert rc == 0, err
    rc, out, err = run(capsys, "backup", obj, back)
    assert rc == 0, err
    assert back.read_bytes() == stream.read_bytes()
    assert decrypted(capsys, obj, keys / "dra.key", xattr_dir) == BODY


# ---- synth

@pytest.mark.parametrize("size,expect", [("16K", 16384), ("1KB", 1000), ("3", 3),
                                         ("2KiB", 2048)])
def test_synth_sizes(capsys, tmp_path, size, expect):
    out = tmp_path / "s.efsraw"
    rc, o, err = run(capsys, "synth", out, "--size", size, "--stream", f"ads={size}")
    assert rc == 0, err
    info = efsfast.inspect(out)
    assert [(s.name, s.size) for s in info.streams] == [(raw.UNNAMED_STREAM, expect),
                                                        (":ads:$DATA", expect)]


@pytest.mark.parametrize("args,option,why", [
    (["--size", "-5"], "--size", "cannot be negative"),
    (["--size", "abc"], "--size", "expected a size"),
    (["--size", "1.5G"], "--size", "expected a size"),
    (["--stream", "x=abc"], "--stream", "expected a size"),
    (["--stream", "x"], "--stream", "expected NAME=SIZE"),
    (["--stream", "a:b=5"], "--stream", "a stream name"),
    (["--users", "0"], "--users", "at least 1"),
    (["--recovery-agents", "-1"], "--recovery-agents", "at least 0")])
def test_synth_usage_errors_name_the_option(tmp_path, args, option, why):
    p = subprocess.run([sys.executable, "-m", "efsfast", "synth", str(tmp_path / "s"), *args],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert f"argument {option}" in p.stderr and why in p.stderr, p.stderr
    assert "invalid" not in p.stderr          # (argparse's "invalid _stream_arg value")
    assert listing(tmp_path) == []


def test_synth_streams_any_size_and_keeps_an_existing_output(capsys, tmp_path):
    """256 MiB (once an OverflowError) to stdout, validated as it arrives; an
    existing OUTPUT kept unless --overwrite."""
    p = subprocess.Popen([sys.executable, "-m", "efsfast", "synth", "-", "--size", "256M",
                          "--seed", "1"], stdout=subprocess.PIPE)
    parser = efsfast._codec.RawParser()
    n = 0
    for chunk in iter(lambda: p.stdout.read(1 << 20), b""):
        parser.feed(chunk)
        n += len(chunk)
    parser.finish()
    assert p.wait() == 0 and n > 256 << 20
    out = tmp_path / "s.efsraw"
    out.write_bytes(b"keep")
    rc, o, err = run(capsys, "synth", out)
    assert rc == 2 and str(out) in err and "--overwrite" in err and out.read_bytes() == b"keep"
    assert run(capsys, "synth", out, "--overwrite", "--seed", "3")[0] == 0
    assert out.read_bytes() == raw.synthetic_raw(4096, seed=3)
    assert run(capsys, "synth", out, "--force", "--seed", "3", "--size", "1K")[0] == 0
    assert out.read_bytes() == raw.synthetic_raw(1024, seed=3)


# ---- help: every option says what it does

def _options(parser):
    import argparse
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        yield action


@pytest.mark.parametrize("command", ["synth", "demo", "inspect", "encrypt"])
def test_every_option_has_help(command):
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    missing = [a.option_strings or a.dest for a in _options(sub.choices[command])
               if not a.help]
    assert missing == []




def test_synth_disk_full_leaves_nothing(capsys, tmp_path):
    """A real full file system: exit 1, the error names OUTPUT, and neither
    it nor a temporary is left."""
    with small_tmpfs(tmp_path, "1m") as mnt:
        rc, out, err = run(capsys, "synth", mnt / "big.efsraw", "--size", "4M")
        assert rc == 1 and f"{mnt / 'big.efsraw'}:" in err and "No space left" in err, err
        assert os.listdir(mnt) == []
