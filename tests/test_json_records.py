"""Every command's --json output is one record of the schema the package
ships (src/efsfast/schema/record-v1.json), when it succeeds and when it
fails: usage errors, unusable keys, missing sources, damaged input, and a
reader that closes the pipe."""
import json
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

jsonschema = pytest.importorskip("jsonschema", reason="the schema tests need the jsonschema "
                                                      "package (pip install '.[test]')")
pytest.importorskip("cryptography", reason="decrypt and verify --key need 'cryptography'")

import efsfast  # noqa: E402
from efsfast import cli  # noqa: E402
from efsfast.schema import RECORD_VERSION, record_schema  # noqa: E402

from _keyworld import fresh as _new, key_world, run_program  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
VALIDATOR = jsonschema.Draft202012Validator(record_schema())


def test_the_schema_is_a_valid_2020_12_schema_and_names_its_version():
    schema = record_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema"]["const"] == RECORD_VERSION


def test_the_schema_is_package_data():
    """The wheel and the sdist carry it (an editable install would find it
    in the checkout either way, so the build's own lists are read)."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^"efsfast\.schema" = \["\*\.json"\]', pyproject, re.MULTILINE)
    manifest = (ROOT / "MANIFEST.in").read_text(encoding="utf-8")
    assert "recursive-include src/efsfast/schema *.json" in manifest
    assert (ROOT / "src" / "efsfast" / "schema" / "__init__.py").is_file()


def check(out: str) -> dict:
    """Exactly one JSON object, valid against the schema."""
    record = json.loads(out)            # one value, nothing before or after it
    assert isinstance(record, dict), out
    errors = sorted(VALIDATOR.iter_errors(record), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors) + "\n" + out
    return record


def run(capsys, *argv):
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:           # (argparse: what the program would exit with)
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def world():
    """The key world, and things that are not what they claim."""
    with key_world("efsfast-json-") as d:
        (d / "garbage.efsraw").write_bytes(b"not a raw stream at all" * 10)
        (d / "empty").mkdir()
        shutil.copytree(d / "set", d / "damaged")
        victim = d / "damaged" / "a.txt.efsraw"
        victim.write_bytes(victim.read_bytes()[:-7] + b"XXXXXXX")
        yield d


# (id, argv with {w} for the world folder and {new} for a fresh path, exit code)
SUCCESS = [
    ("inspect", ["inspect", "{w}/r.efsraw"], 0),
    ("inspect-object", ["inspect", "{w}/tree/a.txt"], 0),
    ("verify", ["verify", "{w}/r.efsraw", "{w}/raws"], 0),
    ("verify-key", ["verify", "--key", "{w}/k.pem", "{w}/raws", "{w}/tree"], 0),
    ("synth", ["synth", "{new}"], 0),
    ("restore", ["restore", "{w}/r.efsraw", "{new}"], 0),
    ("backup", ["backup", "{w}/tree/a.txt", "{new}"], 0),
    ("backup-tree", ["backup-tree", "{w}/tree", "{new}"], 0),
    ("backup-tree-empty", ["backup-tree", "{w}/empty", "{new}"], 0),
    ("restore-tree", ["restore-tree", "{w}/set", "{new}"], 0),
    ("restore-tree-raws", ["restore-tree", "{w}/raws", "{new}"], 0),
    ("verify-set", ["verify-set", "{w}/set"], 0),
    ("decrypt", ["decrypt", "{w}/r.efsraw", "{new}", "--key", "{w}/k.pem"], 0),
    ("decrypt-tree", ["decrypt-tree", "{w}/set", "{new}", "--key", "{w}/k.pem"], 0),
    ("demo", ["demo", "{new}", "--files", "3"], 0),
    ("encrypt", ["encrypt", "{w}/plain.txt", "{new}", "--cert", "{w}/alice.cer"], 0),
]
FAILURE = [
    ("no-command", [], 2),
    ("unknown-option", ["inspect", "{w}/r.efsraw", "--no-such-option"], 2),
    ("inspect-missing", ["inspect", "{w}/nope"], 2),
    ("inspect-garbage", ["inspect", "{w}/garbage.efsraw"], 1),
    ("verify-garbage", ["verify", "{w}/r.efsraw", "{w}/garbage.efsraw"], 1),
    ("verify-missing", ["verify", "{w}/nope"], 2),
    ("verify-key-garbage", ["verify", "--key", "{w}/k.pem", "{w}/garbage.efsraw"], 1),
    ("verify-key-bad-key", ["verify", "--key", "{w}/r.efsraw", "{w}/raws"], 2),
    ("synth-bad-stream", ["synth", "{new}", "--stream", "x=abc"], 2),
    ("synth-exists", ["synth", "{w}/r.efsraw"], 2),
    ("restore-garbage", ["restore", "{w}/garbage.efsraw", "{new}"], 1),
    ("restore-exists", ["restore", "{w}/r.efsraw", "{w}/garbage.efsraw"], 2),
    ("decrypt-exists", ["decrypt", "{w}/r.efsraw", "{w}/garbage.efsraw", "--key", "{w}/k.pem"],
     2),
    ("restore-buffer-size", ["restore", "{w}/r.efsraw", "{new}", "--buffer-size", "0"], 2),
    ("restore-buffer-size-big", ["restore", "{w}/r.efsraw", "{new}", "--buffer-size",
                                 str(1 << 31)], 2),
    ("backup-missing", ["backup", "{w}/nope", "{new}"], 2),
    ("backup-tree-missing", ["backup-tree", "{w}/nope", "{new}"], 2),
    ("backup-tree-workers", ["backup-tree", "{w}/tree", "{new}", "--workers", "0"], 2),
    ("restore-tree-missing", ["restore-tree", "{w}/nope", "{new}"], 2),
    ("restore-tree-damaged", ["restore-tree", "{w}/damaged", "{new}"], 1),
    ("verify-set-missing", ["verify-set", "{w}/nope"], 2),
    ("verify-set-damaged", ["verify-set", "{w}/damaged"], 1),
    ("decrypt-no-key", ["decrypt", "{w}/r.efsraw", "{new}"], 2),
    ("decrypt-key-missing", ["decrypt", "{w}/r.efsraw", "{new}", "--key", "{w}/nokey"], 2),
    ("decrypt-password-env", ["decrypt", "{w}/r.efsraw", "{new}", "--key", "{w}/k-pw.pem",
                              "--password-env", "EFSFAST_TEST_NO_SUCH_VARIABLE"], 2),
    ("decrypt-garbage", ["decrypt", "{w}/garbage.efsraw", "{new}", "--key", "{w}/k.pem"], 1),
    ("decrypt-tree-no-key", ["decrypt-tree", "{w}/set", "{new}"], 2),
    ("decrypt-tree-missing", ["decrypt-tree", "{w}/nope", "{new}", "--key", "{w}/k.pem"], 2),
    ("decrypt-tree-workers", ["decrypt-tree", "{w}/set", "{new}", "--key", "{w}/k.pem",
                              "--workers", "0"], 2),
    ("decrypt-tree-damaged", ["decrypt-tree", "{w}/damaged", "{new}", "--key", "{w}/k.pem"], 1),
    ("demo-files", ["demo", "{new}", "--files", "-1"], 2),
    ("encrypt-exists", ["encrypt", "{w}/plain.txt", "{w}/r.efsraw", "--cert",
                        "{w}/alice.cer"], 2),
    ("encrypt-no-cert", ["encrypt", "{w}/plain.txt", "{new}", "--cert", "{w}/nocert"], 2),
    ("encrypt-no-cert-option", ["encrypt", "{w}/plain.txt", "{new}"], 2),
]


def _argv(world, case, argv):
    new = _new(world, case)
    return [a.format(w=world, new=new) for a in argv] + ["--json"]


@pytest.mark.parametrize("case,argv,code", SUCCESS + FAILURE,
                         ids=[c[0] for c in SUCCESS + FAILURE])
def test_every_command_prints_one_valid_record(case, argv, code, world, capsys, monkeypatch):
    monkeypatch.delenv("EFSFAST_TEST_NO_SUCH_VARIABLE", raising=False)
    got, out, err = run(capsys, *_argv(world, case, argv))
    record = check(out)
    assert got == code == record["exit_code"], (got, out, err)
    assert record["ok"] is (code == 0)
    assert record["schema"] == RECORD_VERSION
    if argv:
        assert record["command"] == argv[0]
    if code:
        assert record["failures"] and all(f["error"] for f in record["failures"])
    assert "Traceback" not in err


def test_an_empty_tree_is_ok_true_with_counts(world, capsys):
    code, out, _err = run(capsys, "backup-tree", world / "empty", _new(world, "e2"), "--json")
    record = check(out)
    assert code == 0 and record["ok"] is True
    assert record["counts"]["done"] == 0 and record["counts"]["failed"] == 0
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", k) for k in record["counts"])


def test_tree_counts_are_snake_case_and_match_the_failures(world, capsys):
    dest = _new(world, "skip")
    run(capsys, "restore-tree", world / "set", dest)
    code, out, _err = run(capsys, "restore-tree", world / "set", dest, "--skip-existing",
                          "--json")
    record = check(out)
    assert code == 0 and record["counts"]["skipped_existing"] == 2
    assert len(record["skipped"]["existing"]) == 2
    code, out, _err = run(capsys, "restore-tree", world / "damaged", _new(world, "dmg"), "--json")
    record = check(out)
    assert code == 1 and record["counts"]["failed"] == len(record["failures"]) == 1
    assert record["failures"][0]["kind"] == "mismatch"


@pytest.mark.parametrize("argv", [["backup-tree", "{w}/tree", "-"],
                                  ["backup", "{w}/tree/a.txt", "-"],
                                  ["decrypt", "{w}/r.efsraw", "-", "--key", "{w}/k.pem"]],
                         ids=["backup-tree", "backup", "decrypt"])
def test_data_on_stdout_puts_the_record_on_stderr(argv, world):
    p = run_program(*[a.format(w=world) for a in argv], "--json")
    assert p.returncode == 0, p.stderr
    record = check(p.stderr.decode())
    assert record["ok"] is True and p.stdout


def test_a_closed_pipe_ends_quietly_with_one_record(world):
    """backup-tree SRC - --json | head -c 1000: the tar stream's reader goes
    away; no traceback, one record on stderr."""
    big = world / "bigtree"
    if not big.exists():
        big.mkdir()
        for i in range(4):
            efsfast.restore(big / f"f{i}", efsfast.synthetic_raw(1 << 20, seed=i))
    p = subprocess.run(f"'{sys.executable}' -m efsfast backup-tree '{big}' - --json "
                       f"| head -c 1000 > /dev/null", shell=True, capture_output=True)
    err = p.stderr.decode()
    assert "Traceback" not in err and "Exception ignored" not in err, err
    record = check(err)
    assert record["ok"] is False and record["exit_code"] == 1
    assert any(f["kind"] == "broken_pipe" for f in record["failures"])


def test_a_record_whose_reader_went_away_ends_quietly(world):
    p = subprocess.run(f"'{sys.executable}' -m efsfast inspect '{world}/r.efsraw' --json "
                       f"| head -c 10 > /dev/null; exit ${{PIPESTATUS[0]}}", shell=True,
                       executable="bash", capture_output=True)
    assert b"Traceback" not in p.stderr and b"Exception ignored" not in p.stderr, p.stderr


def test_the_jq_recipe_of_the_json_page_lists_failures(world):
    """docs/JSON-OUTPUT.md: the jq line that lists failed items, run as written."""
    if shutil.which("jq") is None:
        pytest.skip("jq is not installed (.ci/run installs it)")
    text = (ROOT / "docs" / "JSON-OUTPUT.md").read_text(encoding="utf-8")
    line = next(b.strip() for b in re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
                if ".failures[]" in b)
    line = line.replace("efsfast ", f"'{sys.executable}' -m efsfast ", 1)
    line = line.replace("SET DEST_DIR", f"'{world}/damaged' '{_new(world, 'jq')}'")
    p = subprocess.run(["bash", "-c", line], capture_output=True, text=True)
    rows = [r.split("\t") for r in p.stdout.splitlines()]
    assert len(rows) == 1 and rows[0][0].endswith("a.txt") and rows[0][1] == "mismatch", p


def test_even_an_unexpected_error_leaves_one_record(world, capsys, monkeypatch):
    """A bug in a command still gives the --json reader its one record
    (kind "error"); the traceback follows on stderr for the bug report."""
    from efsfast import raw

    def broken(*a, **kw):
        raise RuntimeError("something efsfast did not expect")
    monkeypatch.setattr(raw, "inspect", broken)
    with pytest.raises(RuntimeError):
        cli.main(["inspect", str(world / "r.efsraw"), "--json"])
    record = check(capsys.readouterr().out)
    assert record["exit_code"] == 1 and record["failures"][0]["kind"] == "error"
    assert record["failures"][0]["error"] == "something efsfast did not expect"
