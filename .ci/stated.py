"""What the project states about installing it, read where it is stated:

  python3 .ci/stated.py range        -> "3.9 3.14": the supported CPython range,
                                        after checking that requires-python, the
                                        classifiers, cibuildwheel's build list and
                                        the README all state the same one
  python3 .ci/stated.py main|test    -> the README's set-up command, verbatim
                                        (its first and second sh block, after
                                        the venv line where there is one)

.ci/pythons runs the commands on the oldest and newest interpreter of the
range.  Any disagreement exits 1 and names the file and what it says.
Needs Python >= 3.11 (tomllib): CI's default interpreter, not the ones tested.
"""
from __future__ import annotations

import pathlib
import re
import sys

try:
    import tomllib
except ModuleNotFoundError:     # Python < 3.11
    sys.exit("stated.py needs Python >= 3.11 (tomllib); run it with CI's default python3")

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
README = ROOT / "README.md"


class Disagreement(Exception):
    pass


def _minor(text: str, where: str) -> int:
    m = re.fullmatch(r"3\.(\d+)", text)
    if m is None:
        raise Disagreement(f"{where}: {text!r} is not a Python 3 version")
    return int(m.group(1))


def supported_range() -> tuple[int, int]:
    """(oldest, newest) minor versions of Python 3, checked for agreement."""
    project = tomllib.loads(PYPROJECT.read_text())
    requires = project["project"]["requires-python"]
    m = re.fullmatch(r">=\s*(3\.\d+)", requires)
    if m is None:
        # an upper cap would break installs of later Pythons for no reason
        raise Disagreement(f"{PYPROJECT}: requires-python is {requires!r}, "
                           "expected only a lower bound (\">=3.N\")")
    oldest = _minor(m.group(1), f"{PYPROJECT} requires-python")
    prefix = "Programming Language :: Python :: "
    listed = sorted(_minor(c[len(prefix):], f"{PYPROJECT} classifiers")
                    for c in project["project"]["classifiers"]
                    if re.fullmatch(re.escape(prefix) + r"3\.\d+", c))
    if not listed:
        raise Disagreement(f"{PYPROJECT}: no 'Python :: 3.N' classifiers")
    newest = listed[-1]
    expected = list(range(oldest, newest + 1))
    if listed != expected:
        def names(minors: list[int]) -> str:
            return ", ".join(f"3.{n}" for n in minors)
        raise Disagreement(f"{PYPROJECT}: the classifiers list {names(listed)} and requires-python "
                           f"says >=3.{oldest}: expected each of {names(expected)}")
    build = project["tool"]["cibuildwheel"]["build"].split()
    wanted = [f"cp3{n}-*" for n in expected]
    if build != wanted:
        raise Disagreement(f"{PYPROJECT}: cibuildwheel builds {' '.join(build)!r}, "
                           f"the classifiers say {' '.join(wanted)!r}")
    phrase = f"CPython 3.{oldest} to 3.{newest}"
    if phrase not in README.read_text():
        raise Disagreement(f"{README}: does not say {phrase!r} (the range pyproject.toml states)")
    return oldest, newest


# the quick start may make the virtual environment first; .ci/pythons makes
# a fresh one itself for each interpreter, so the command is the line after it
VENV_LINE = "python3 -m venv .venv && . .venv/bin/activate"


def readme_command(which: str) -> str:
    """The README's first ('main') or second ('test') sh block: one command
    line, after the venv line where the block has one."""
    blocks = re.findall(r"^```sh\n(.*?)^```", README.read_text(), re.M | re.S)
    index = {"main": 0, "test": 1}[which]
    lines = blocks[index].strip().splitlines() if len(blocks) > index else []
    if not lines or len(lines) > 2 or (len(lines) == 2 and lines[0].strip() != VENV_LINE):
        raise Disagreement(f"{README}: expected its {which} set-up command as sh block "
                           f"{index + 1}: one line, after {VENV_LINE!r} at most")
    return lines[-1].strip()


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("range", "main", "test"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        if argv[0] == "range":
            oldest, newest = supported_range()
            print(f"3.{oldest} 3.{newest}")
        else:
            print(readme_command(argv[0]))
    except Disagreement as e:
        print(f"stated: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
