"""The docs tell the truth: recipes they give work on real backup sets,
numbers they quote match the results files they come from, test parameters
they state match the tests, and no user-facing text cites an internal issue
number.  (The site itself is built, strictly, by .ci/docs.)"""
import ast
import importlib.util
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from test_backupset import make_tree

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
MARKDOWN = [ROOT / "README.md", *DOCS, *sorted((ROOT / "benchmarks").rglob("*.md"))]


def _quoted():
    spec = importlib.util.spec_from_file_location("efsfast_docs_quoted",
                                                  ROOT / "docs" / "_site" / "quoted.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- the manifest recipe of docs/BACKUP-SETS.md, run as written

def _manifest_recipe():
    """The shell block of BACKUP-SETS.md that feeds sha256sum -c: (the line
    hashing the manifest, the command checking every raw stream)."""
    text = (ROOT / "docs" / "BACKUP-SETS.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^ *```sh\n(.*?)^ *```", text, re.MULTILINE | re.DOTALL)
    block = next(b for b in blocks if "sha256sum -c" in b)
    lines = [line.strip() for line in block.splitlines()]
    assert lines[0] == "cd SET"
    head = lines[1].split("#")[0].strip()
    check = " ".join(lines[2:])
    return head, check


def _run(command, cwd):
    return subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=cwd,
                          capture_output=True, text=True)


def _need_tools():
    for tool in ("jq", "sha256sum", "head"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (the recipe needs GNU coreutils and jq; "
                        ".ci/run installs them)")


def _backup_tree(*args):
    r = subprocess.run([sys.executable, "-m", "efsfast", "backup-tree", *map(str, args)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_manifest_recipe_checks_a_set_backup_tree_made(xattr_dir):
    _need_tools()
    head, check = _manifest_recipe()
    src, full, incr = xattr_dir / "src", xattr_dir / "mon", xattr_dir / "tue"
    make_tree(src)
    _backup_tree(src, full)
    (src / "Docs" / "f1.bin").unlink()          # one object changes, the rest is unchanged
    from efsfast import restore, synthetic_raw
    restore(src / "Docs" / "f1.bin", synthetic_raw(5000, seed=99))
    _backup_tree(src, incr, "--since", full)

    for set_dir in (full, incr):
        lines = (set_dir / "efsfast-manifest.jsonl").read_text(encoding="utf-8").splitlines()
        end = json.loads(lines[-1])
        r = _run(head, set_dir)
        assert r.returncode == 0 and r.stdout.split()[0] == end["manifest_sha256"], r
        r = _run(check, set_dir)
        assert r.returncode == 0 and r.stdout == "", r
        # what it checks: every raw stream this set holds, as `sha256sum -c` reads it
        objects = [json.loads(line) for line in lines[1:-1]]
        held = sorted(f"{o['sha256']}  {o['path']}.efsraw" for o in objects
                      if o["kind"] != "plain-directory" and "ref" not in o)
        listed = _run(check.replace("sha256sum -c --quiet", "cat"), set_dir).stdout
        assert sorted(listed.splitlines()) == held
        assert len(held) == len(list(set_dir.rglob("*.efsraw")))
    # the incremental set (the last one checked) holds what changed and refers to the rest
    assert "  Docs/f1.bin.efsraw" in listed
    assert any("ref" in o for o in objects) and "  plain/f0.bin.efsraw" not in listed

    # it fails, naming the file, when a raw stream is damaged or missing
    damaged = full / "Docs" / "f3.bin.efsraw"
    data = bytearray(damaged.read_bytes())
    data[-1] ^= 1
    damaged.write_bytes(bytes(data))
    (full / "plain" / "f4.bin.efsraw").unlink()
    r = _run(check, full)
    assert r.returncode != 0
    assert "Docs/f3.bin.efsraw: FAILED" in r.stdout
    assert "plain/f4.bin.efsraw" in r.stdout + r.stderr


# ---- the encrypt recipe of docs/DECRYPTION.md, run as written

def test_encrypt_recipe_runs_as_written(tmp_path):
    """The "Try it without Windows" block: openssl makes the key pairs,
    efsfast encrypts, inspects, verifies with the agent's key and decrypts
    with the user's; its last line, cmp, proves the round trip."""
    pytest.importorskip("cryptography", reason="the recipe needs the decrypt extra")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (the recipe makes its key pairs with it)")
    text = (ROOT / "docs" / "DECRYPTION.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```sh\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    block = next(b for b in blocks if "efsfast encrypt " in b)
    script = "\n".join(line for line in block.splitlines()
                       if not line.startswith("pip install"))      # installed here already
    assert script.rstrip().splitlines()[-1].startswith("cmp report.txt report-again.txt")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep
               + os.environ.get("PATH", ""))
    r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "DRF" in r.stdout and "Recovery Agent" in r.stdout
    assert "decryptable by DRF 0" in r.stdout
    assert (tmp_path / "report-again.txt").read_text() == "the quarterly numbers\n"


# ---- numbers quoted from benchmark results

def test_quoted_numbers_match_their_results_files():
    quoted = _quoted()
    problems, count = [], 0
    for path in MARKDOWN:
        text = path.read_text(encoding="utf-8")
        count += len(list(quoted.quotes(text)))
        problems += quoted.check(text, path.relative_to(ROOT).as_posix(), ROOT)
    assert problems == []
    assert count > 0          # the docs do quote some: the check is not vacuous


def test_the_quote_check_finds_a_wrong_number(tmp_path):
    quoted = _quoted()
    (tmp_path / "r.json").write_text(json.dumps({"a/b": {"n": [1.25, 12345.6]}, "k": 8.009}))
    good = ('[1.2×](r.json "/a~1b/n/0") and [12,346](r.json "/a~1b/n/1") and '
            '[8](r.json "/k"), not `[9](r.json "/k")` in code')
    assert quoted.check(good, "doc.md", tmp_path) == []
    wrong = quoted.check('[8.1](r.json "/k") [3](r.json "/missing")', "doc.md", tmp_path)
    assert len(wrong) == 2
    assert "the file says 8.009, which is not 8.1" in wrong[0]
    assert "cannot read the value" in wrong[1]


# ---- test parameters the reliability record states

def _constants(test_file):
    """Module-level NAME = literal assignments of a test file, by name."""
    out = {}
    for node in ast.parse((ROOT / "tests" / test_file).read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = value
                elif isinstance(target, ast.Tuple) and isinstance(value, tuple):
                    out.update({t.id: v for t, v in zip(target.elts, value)})
    return out


def test_reliability_record_states_the_tests_parameters():
    text = (ROOT / "docs" / "RELIABILITY.md").read_text(encoding="utf-8")
    stress = _constants("test_stress.py")
    m = re.search(r"(\d+) threads × (\d+) restores and backups × (\d+) rounds", text)
    assert m and tuple(map(int, m.groups())) == (
        stress["THREADS"], stress["PER_THREAD"], stress["ROUNDS"])
    points = _constants("test_interrupts.py")["POINTS"]
    m = re.search(r"SIGINT at (\d+) points each", text)
    assert m and int(m[1]) == points
    assert f"({points} interrupt points per command;" in text


# ---- no internal issue numbers where users read

ISSUE = re.compile(r"\bissues? ?#?\d+", re.IGNORECASE)
SOURCE_SUFFIXES = {".py", ".pyx", ".pxi", ".pyi", ".pxd", ".c", ".h"}


def _skip_reasons(path):
    """The string arguments of pytest.skip / skipif / xfail / importorskip calls."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in {"skip", "skipif", "xfail", "importorskip"}:
                for arg in [*node.args, *(k.value for k in node.keywords)]:
                    for sub in ast.walk(arg):
                        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                            yield node.lineno, sub.value


def test_no_internal_issue_numbers_in_user_facing_text():
    found = []
    sources = [p for p in (ROOT / "src" / "efsfast").rglob("*") if p.suffix in SOURCE_SUFFIXES]
    for path in [*MARKDOWN, *sources, *(ROOT / "benchmarks").glob("*.py")]:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if ISSUE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for n, reason in _skip_reasons(path):
            if ISSUE.search(reason):
                found.append(f"{path.relative_to(ROOT)}:{n}: skip reason {reason!r}")
    assert found == []


# ---- the README's two set-up commands

def test_readme_keeps_its_two_set_up_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "\npip install . && efsfast demo\n" in readme
    assert "\npip install '.[test]' && python -m pytest\n" in readme
    test_command = (ROOT / ".ci" / "test-command").read_text(encoding="utf-8")
    assert "\npip install '.[test]' && python -m pytest\n" in test_command
    # and the virtual environment before them (Debian 12 and Ubuntu refuse a system pip install)
    assert readme.index("python3 -m venv") < readme.index("pip install . && efsfast demo")
