"""No import circles among efsfast's modules (.ci/import_cycles.py, which CI
runs from .ci/typecheck), and the layering it was written to keep: the
library never imports the command line, and the raw stream module never
imports the decryption package."""
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKER = ROOT / ".ci" / "import_cycles.py"
PACKAGE = ROOT / "src" / "efsfast"

pytestmark = pytest.mark.skipif(
    not CHECKER.exists() or not PACKAGE.is_dir(),
    reason="needs the source checkout (.ci/import_cycles.py and src/efsfast), which an sdist "
           "does not carry")


def _checker():
    spec = importlib.util.spec_from_file_location("import_cycles", CHECKER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(*args):
    return subprocess.run([sys.executable, str(CHECKER), *map(str, args)],
                          capture_output=True, text=True)


def test_efsfast_has_no_import_circles():
    r = _run()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no circles" in r.stdout


def _package(tmp_path, files):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path / "pkg"


def test_a_circle_through_a_function_level_relative_import_is_found(tmp_path):
    pkg = _package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from .sub import b\n",
        "pkg/sub/__init__.py": "",
        # two levels up, inside a function: still an edge
        "pkg/sub/b.py": "def f():\n    from ..c import g\n    return g\n",
        "pkg/c.py": "import pkg.a\ndef g():\n    pass\n",
        "pkg/d.py": "from . import c\n",        # leads into the circle, is not in it
    })
    r = _run(pkg)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.splitlines() == ["import circle: pkg.a -> pkg.sub.b -> pkg.c -> pkg.a"]


def test_a_package_and_its_submodule_importing_each_other_is_a_circle(tmp_path):
    # pkg/__init__ imports m for its names; m takes a name from pkg: the name
    # exists only if __init__ defined it before importing m
    pkg = _package(tmp_path, {"pkg/__init__.py": "from .m import f\nVERSION = '1'\n",
                              "pkg/m.py": "from . import VERSION\ndef f():\n    pass\n",
                              "pkg/leaf.py": "from . import m\n"})
    r = _run(pkg)
    assert r.returncode == 1
    assert r.stdout.splitlines() == ["import circle: pkg -> pkg.m -> pkg"]


def test_imports_without_a_circle_pass(tmp_path):
    pkg = _package(tmp_path, {"pkg/__init__.py": "",
                              "pkg/a.py": "import os\nfrom . import b\nfrom .b import x\n",
                              "pkg/b.py": "def x():\n    from . import c\n",
                              "pkg/c.py": "import json\n"})
    r = _run(pkg)
    assert r.returncode == 0, r.stdout


def _closure(graph, start):
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(graph[m])
    return seen


def test_the_library_never_imports_the_command_line():
    graph = _checker().graph(PACKAGE)
    cli = {m for m in graph if m == "efsfast.cli" or m.startswith("efsfast.cli.")}
    assert cli, "the command line package was not found"
    library = set(graph) - cli - {"efsfast.__main__"}
    assert {m: graph[m] & cli for m in library if graph[m] & cli} == {}


def test_raw_streams_import_nothing_of_decryption():
    graph = _checker().graph(PACKAGE)
    assert not {m for m in _closure(graph, "efsfast.raw") if m.startswith("efsfast.crypto")}
