"""Start-up cost: `import efsfast` and the command line load only what the
work at hand needs (a tree job on ntfs-3g takes a second or two, so a tenth
of a second of imports shows).  Each check runs in a fresh interpreter and
looks at sys.modules."""
import argparse
import json
import subprocess
import sys
import textwrap

import pytest

import efsfast
from efsfast import cli


def _modules_after(code: str) -> set:
    """The modules a fresh interpreter has loaded after running ``code``."""
    probe = textwrap.dedent(code) + textwrap.dedent("""
        import json as _json, sys as _sys
        _sys.__stdout__.write("\\nMODULES " + _json.dumps(sorted(_sys.modules)) + "\\n")
    """)
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("MODULES ")][-1]
    return set(json.loads(line[len("MODULES "):]))


def _cli(*argv: str) -> str:
    return f"""
        import contextlib, io
        from efsfast.cli import main
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            try:
                main({list(argv)!r})
            except SystemExit:
                pass
    """


def _ours(mods: set) -> set:
    return {m for m in mods if m == "efsfast" or m.startswith("efsfast.")}


def test_import_efsfast_loads_no_engine_and_no_keys():
    mods = _modules_after("import efsfast")
    assert "cryptography" not in mods
    assert _ours(mods) == {"efsfast", "efsfast._errors", "efsfast._lazy"}
    assert "typing" not in mods         # annotations only: TYPE_CHECKING = False


def test_version_loads_only_the_command_line():
    ours = _ours(_modules_after(_cli("--version")))
    library = {m for m in ours if m != "efsfast.cli" and not m.startswith("efsfast.cli.")}
    assert library == {"efsfast", "efsfast._errors", "efsfast._lazy"}
    assert "efsfast.cli.app" in ours
    # the families whose options come from slow modules are not even parsed
    assert not ours & {"efsfast.cli.trees", "efsfast.cli.sets", "efsfast.cli.crypto"}


@pytest.mark.parametrize("argv", [("restore-tree", "--help"), ("backup-tree", "--help"),
                                  ("restore", "--help"), ("inspect", "--help")])
def test_commands_without_keys_load_no_key_handling(argv):
    mods = _modules_after(_cli(*argv))
    assert "cryptography" not in mods
    assert not any(m.startswith("efsfast.crypto") for m in mods), sorted(_ours(mods))


def test_restore_loads_no_backup_set_code(tmp_path):
    mods = _modules_after(_cli("restore", str(tmp_path / "missing.efsraw"), str(tmp_path / "x")))
    assert not any(m.startswith(("efsfast.backupset", "efsfast.crypto")) for m in mods)


def test_a_folder_backup_loads_no_tar_code(tmp_path):
    """backup-tree into a folder set writes no tar stream: tarfile (~1 ms of
    CPU at each start-up) stays unloaded."""
    (tmp_path / "empty").mkdir()
    mods = _modules_after(_cli("backup-tree", str(tmp_path / "empty"), str(tmp_path / "set")))
    assert "efsfast.backupset.sinks" in mods
    assert "tarfile" not in mods


def test_a_tree_restore_loads_no_uuid_and_no_ini_parser(tmp_path):
    """restore-tree of a folder makes no set id and reads no AWS settings:
    uuid and configparser (~3 ms of CPU together at each start-up, which no
    overlap with the ntfs-3g daemon hides) stay unloaded."""
    (tmp_path / "empty").mkdir()
    mods = _modules_after(_cli("restore-tree", "--no-sync", str(tmp_path / "empty"),
                               str(tmp_path / "out")))
    assert "efsfast.tree" in mods
    assert not {"uuid", "configparser"} & mods
    # a folder with no manifest is told from a set without the set reader,
    # and the tree path does not parse raw streams in Python (~10 ms and
    # ~7 ms of imports, loaded machine)
    assert not {"efsfast.backupset.restore", "efsfast.backupset.manifest", "efsfast.raw",
                "hashlib", "datetime"} & mods, sorted(_ours(mods))


def test_decrypt_with_a_pem_key_loads_only_what_decrypting_needs(tmp_path):
    """`efsfast decrypt --key KEY.pem` of one stream forks no workers, makes
    no UUID, hashes nothing and prompts for nothing: multiprocessing (with
    socket and pickle), proving (crypto.verify), certificates, uuid (with
    platform), hashlib, secrets, tempfile and getpass stay unloaded.
    They cost ~10 ms of a start-up that decrypting 256 MiB on a disk
    (~0.1 s) shows.  (What is checked about a key is unchanged:
    test_decrypt_keys refuses damaged keys.)"""
    pytest.importorskip("cryptography", reason="decryption needs the 'cryptography' package")
    from _keys import pem, rsa_key

    from efsfast.crypto import encrypt
    key = rsa_key(2048, "startup")
    (tmp_path / "k.pem").write_bytes(pem(key))
    (tmp_path / "s.efsraw").write_bytes(encrypt(b"plaintext", key))
    dest = tmp_path / "out"
    mods = _modules_after(_cli("decrypt", "--key", str(tmp_path / "k.pem"),
                               str(tmp_path / "s.efsraw"), str(dest)))
    assert dest.read_bytes() == b"plaintext"
    assert "efsfast.crypto.decrypt" in mods and "cryptography" in mods
    unneeded = {"multiprocessing", "efsfast.crypto.forked", "uuid", "platform", "hashlib",
                "_hashlib", "secrets", "tempfile", "getpass", "efsfast.crypto.verify",
                "efsfast.crypto.certs", "efsfast.treewalk",
                "cryptography.x509",    # (certificates only)
                # raw.py's dataclasses (~5 ms), and what only a large stream, a set's
                # checks or encrypting need
                "efsfast.raw", "efsfast.crypto.reader", "efsfast.crypto.writer", "queue",
                "efsfast.crypto.expect"}
    assert not unneeded & mods, sorted(unneeded & mods)


def test_the_api_is_whole_when_used():
    for name in efsfast.__all__:
        assert getattr(efsfast, name) is not None, name
    assert set(efsfast.__all__) <= set(dir(efsfast))
    from efsfast.api import restore
    from efsfast.crypto.decrypt import decrypt
    assert efsfast.restore is restore and efsfast.decrypt is decrypt
    assert efsfast.backends.PosixBackend is not None
    with pytest.raises(AttributeError, match="no attribute 'restor'"):
        efsfast.restor  # noqa: B018


def _help(parser, command=None) -> str:
    if command is None:
        return parser.format_help()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command].format_help()


def test_a_command_parsed_alone_is_the_command_parsed_with_all():
    """What each command accepts (and its help) does not depend on whether
    the others were defined; help, usage errors and unknown names get them
    all."""
    full = cli.build_parser()
    sub = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    for command in sub.choices:
        assert _help(cli.build_parser((command,)), command) == _help(full, command), command
    assert _help(cli.build_parser(("no-such-command",))) == _help(full)
    for argv in (["--help"], ["-h", "restore"], [], ["no-such-command"]):
        assert cli.commands_named(argv) is None or \
            _help(cli.build_parser(cli.commands_named(argv))) == _help(full), argv
    assert cli.commands_named(["--version"]) == ()
    assert cli.commands_named(["restore-tree", "--quiet", "a", "b"]) == ("restore-tree",)
