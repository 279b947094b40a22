"""One voice for every command: the same option is checked the same way
everywhere, exit codes mean the same thing (0 ok, 1 items failed or the
check failed, 2 refused before any work, 130 interrupted), messages name
the user's path (never a temporary), hold no Python class names or reprs,
use the system's own words on POSIX, and ``-`` is standard input/output
wherever a file is named."""
import errno
import json
import os
import shutil
import sys

import pytest

pytest.importorskip("cryptography", reason="decrypt and verify --key need 'cryptography'")

import efsfast  # noqa: E402
from efsfast import cli, messages  # noqa: E402
from efsfast._errors import EfsError, RawFormatError  # noqa: E402

from _keyworld import PLAIN, PW, fresh, key_world, run_program  # noqa: E402
CLASS_NAMES = ("Error:", "Error(", "(ValueError)", "(OSError)", "[Errno", "Exception")


def run(capsys, *argv):
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def no_class_names(text):
    assert not any(n in text for n in CLASS_NAMES), text


@pytest.fixture(scope="module")
def world():
    with key_world("efsfast-voice-") as d:
        (d / "garbage").write_bytes(b"not a raw stream" * 10)
        yield d


# ---- verify DIR and verify --key DIR read a folder alike ----

def test_verify_of_a_folder_checks_what_verify_key_finds_in_it(world, capsys):
    code, out, err = run(capsys, "verify", world / "raws", world / "tree")
    assert code == 0, err
    assert "Is a directory" not in out + err
    code_k, out_k, _ = run(capsys, "verify", "--key", world / "k.pem", world / "raws",
                           world / "tree")
    assert code_k == 0
    found = sorted(line.split(":")[0] for line in out.splitlines() if ": ok" in line)
    found_k = sorted(line.split(":")[0] for line in out_k.splitlines() if "decryptable by" in line)
    assert found == found_k and len(found) == 4


def test_inspect_and_verify_take_an_encrypted_object_as_decrypt_does(world, capsys):
    obj = world / "tree" / "a.txt"          # an encrypted file, efs_raw layout
    assert run(capsys, "inspect", obj)[0] == 0
    code, out, _ = run(capsys, "verify", obj)
    assert code == 0 and "ok" in out
    assert efsfast.inspect(obj).streams[0].size == 5000
    assert run(capsys, "decrypt", obj, fresh(world, "obj.txt"), "--key", world / "k.pem")[0] == 0


# ---- the same exit code for the same fault ----

def test_verify_set_of_a_missing_folder_is_refused_like_the_tree_jobs(world, capsys):
    for argv in (["verify-set", world / "nope"], ["restore-tree", world / "nope", world / "x"],
                 ["backup-tree", world / "nope", world / "x"]):
        code, out, err = run(capsys, *argv)
        assert code == 2, (argv, out, err)
        assert str(world / "nope") in err


@pytest.mark.parametrize("value", ["0", str((1 << 30) + 1), "lots"])
def test_buffer_size_is_checked_alike_everywhere(value, world, capsys):
    messages_seen = set()
    for argv in (["restore", world / "r.efsraw", fresh(world, "bs")],
                 ["backup", world / "tree" / "a.txt", fresh(world, "bs2")],
                 ["backup-tree", world / "tree", fresh(world, "bs3")],
                 ["restore-tree", world / "set", fresh(world, "bs4")]):
        code, _out, err = run(capsys, *argv, "--buffer-size", value)
        assert code == 2, (argv, err)
        assert "--buffer-size" in err and "min_size" not in err
        messages_seen.add(err.strip().splitlines()[-1].split("error: ", 1)[-1])
    assert len(messages_seen) == 1, messages_seen


def test_workers_zero_is_refused_by_every_command_that_takes_it(world, capsys):
    seen = set()
    for argv in (["backup-tree", world / "tree", fresh(world, "w1")],
                 ["restore-tree", world / "set", fresh(world, "w2")],
                 ["decrypt-tree", world / "set", fresh(world, "w3"), "--key", world / "k.pem"],
                 ["verify", "--key", world / "k.pem", world / "raws"],
                 ["demo", fresh(world, "w4")]):
        code, _out, err = run(capsys, *argv, "--workers", "0")
        assert code == 2, (argv, err)
        assert "--workers" in err
        seen.add(err.strip().splitlines()[-1].split("error: ", 1)[-1])
    assert len(seen) == 1, seen
    assert not (world / "out" / "w3").exists()


def test_a_bad_stream_size_names_the_option_not_a_function(world, capsys):
    code, _out, err = run(capsys, "synth", fresh(world, "s"), "--stream", "x=abc")
    assert code == 2 and "_stream_arg" not in err and "NAME=SIZE" in err


@pytest.mark.parametrize("argv", [
    ["decrypt", "{w}/r.efsraw", "{new}", "--key", "{w}/k-pw.pem"],
    ["verify", "--key", "{w}/k-pw.pem", "{w}/r.efsraw"],
    ["verify-set", "{w}/set", "--key", "{w}/k-pw.pem"],
    ["decrypt-tree", "{w}/set", "{new}", "--key", "{w}/k-pw.pem"]],
    ids=["decrypt", "verify", "verify-set", "decrypt-tree"])
def test_an_unset_password_variable_is_a_key_error_exit_2(argv, world, capsys, monkeypatch):
    monkeypatch.delenv("EFSFAST_NO_SUCH_PW", raising=False)
    new = fresh(world, "pw")
    code, _out, err = run(capsys, *[a.format(w=world, new=new) for a in argv],
                          "--password-env", "EFSFAST_NO_SUCH_PW")
    assert code == 2, err
    assert "EFSFAST_NO_SUCH_PW" in err and "is not set" in err
    assert not new.exists()
    monkeypatch.setenv("EFSFAST_NO_SUCH_PW", PW)
    code, _out, err = run(capsys, *[a.format(w=world, new=new) for a in argv],
                          "--password-env", "EFSFAST_NO_SUCH_PW")
    assert code == 0, err


# ---- the wording ----

def test_posix_words_system_errors_as_strerror():
    if sys.platform == "win32":
        pytest.skip("Windows words them as Windows does")
    for winerror, err in ((5, errno.EACCES), (2, errno.ENOENT), (112, errno.ENOSPC)):
        e = EfsError(winerror, None, "/x")
        assert e.strerror == os.strerror(err)
        assert messages.describe(e) == f"/x: {os.strerror(err)}"
    assert "not encrypted" in EfsError(6007, None, "/x").strerror     # efsfast's own meaning


def test_messages_hold_no_class_names_or_reprs():
    cases = [EfsError(5, None, "/p/f"), FileNotFoundError(2, "No such file or directory", "/p"),
             RawFormatError("R9", 40, "E_TRAILING_GARBAGE", "bytes after the last stream",
                            filename="/p/r.efsraw"),
             ValueError("a plain message"), KeyboardInterrupt()]
    for exc in cases:
        text = messages.describe(exc)
        no_class_names(text)
        assert "'" not in text, text        # no repr of a path
        fields = messages.error_fields(exc)
        assert fields["error"] == messages.describe(exc, fields["path"])
        assert fields["kind"] in {k.value for k in messages.ErrorKind}


def test_a_failed_object_in_a_manifest_is_worded_for_a_person(world, capsys):
    """An object whose $EFS is damaged fails its backup; the manifest says
    why as a person reads it (it used to hold 'RawFormatError: ...')."""
    src = fresh(world, "broken-src")
    shutil.copytree(world / "tree", src)
    os.setxattr(src / "a.txt", "user.ntfs.efsinfo", b"\x00" * 40)
    dest = fresh(world, "broken-set")
    code, out, _err = run(capsys, "backup-tree", src, dest)
    assert code == 1
    no_class_names(out)
    manifest = (dest / "efsfast-manifest.jsonl").read_text(encoding="utf-8")
    import json
    failed = [json.loads(line)["failed"] for line in manifest.splitlines()
              if '"failed"' in line]
    assert failed and all(f for f in failed)
    for f in failed:
        no_class_names(f)


def test_standard_input_is_called_standard_input(world):
    with open(world / "garbage", "rb") as f:
        p = run_program("restore", "-", fresh(world, "stdin-dest"), stdin=f)
    err = p.stderr.decode()
    assert p.returncode == 1 and "standard input: not a valid raw stream" in err, err
    assert "the raw stream:" not in err


def test_a_missing_base_set_is_named_against_the_set_given(world, capsys):
    src = fresh(world, "inc-src")
    shutil.copytree(world / "tree", src)
    base, incr = fresh(world, "base"), fresh(world, "incr")
    assert run(capsys, "backup-tree", src, base)[0] == 0
    efsfast.restore(src / "new.bin", efsfast.synthetic_raw(100, seed=3))
    assert run(capsys, "backup-tree", src, incr, "--since", base)[0] == 0
    base.rename(base.with_name("base-moved"))
    code, _out, err = run(capsys, "restore-tree", incr, fresh(world, "inc-dest"))
    assert code == 2, err
    assert str(incr) in err and f"{src}:" not in err and "--with" in err


def test_decrypt_to_dash_writes_standard_output(world, tmp_path):
    p = run_program("decrypt", world / "r.efsraw", "-", "--key", world / "k.pem", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout == PLAIN
    assert not (tmp_path / "-").exists()


def test_decrypt_into_a_missing_folder_names_the_destination(world, capsys):
    dest = world / "no-such-folder" / "r.txt"
    code, _out, err = run(capsys, "decrypt", world / "r.efsraw", dest, "--key", world / "k.pem")
    assert code == 1
    assert str(dest) in err and ".tmp" not in err
    assert os.strerror(errno.ENOENT) in err


def test_a_backup_to_a_bucket_names_the_url_not_its_staging_copy(world, capsys, monkeypatch):
    """backup SRC s3://…: the raw stream is written to a temporary copy
    first; an error writing it names the URL given."""
    import efsfast.api

    def no_room(src, dest, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(dest))
    monkeypatch.setattr(efsfast.api, "backup", no_room)
    url = "s3://bucket/host1/a.txt.efsraw"
    code, out, err = run(capsys, "backup", world / "tree" / "a.txt", url)
    assert code == 1 and f"{url}: {os.strerror(errno.ENOSPC)}" in err, err
    assert ".efsfast-up-" not in err
    code, out, _err = run(capsys, "backup", world / "tree" / "a.txt", url, "--json")
    (f,) = json.loads(out)["failures"]
    assert f["path"] == url and f["kind"] == "no_space"


@pytest.mark.parametrize("command", ["inspect", "verify"])
def test_dash_is_standard_input_for_inspect_and_verify(command, world):
    with open(world / "r.efsraw", "rb") as f:
        p = run_program(command, "-", stdin=f)
    assert p.returncode == 0, p.stderr
    with open(world / "garbage", "rb") as f:
        p = run_program(command, "-", "--json", stdin=f)
    assert p.returncode == 1
    (f,) = json.loads(p.stdout)["failures"]
    assert f["path"] == "-" and f["kind"] == "format"
    assert f["error"].startswith("standard input: not a valid raw stream")


def test_verify_key_of_dash_is_refused_saying_why(world, capsys):
    code, _out, err = run(capsys, "verify", "--key", world / "k.pem", "-")
    assert code == 2 and "standard input" in err
