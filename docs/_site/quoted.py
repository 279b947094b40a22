"""Numbers the docs quote from benchmark results are checked, not trusted.

A number taken from a results file is written as a link to that file whose
title is a JSON Pointer (RFC 6901) to the value::

    [8](../benchmarks/results/results.json "/ntfs3g/fuse_requests_per_file/tar -c/total")

On a forge the number links to its source; the docs build (hooks.py) and
tests/test_docs.py check that the value there, rounded to the decimals the
text shows, is the number the text shows.  Standard library only: the test
suite imports this without the docs tools.
"""
from __future__ import annotations

import json
import posixpath
import re
from pathlib import Path
from typing import Any, Iterator, List, Tuple

# [text](target "title"): the quoted number's link; targets are repository-relative.
QUOTE_LINK = re.compile(r'\[(?P<text>[^\]]+)\]\((?P<target>[^)\s]+\.json)'
                        r'\s+"(?P<pointer>/[^"]*)"\)')
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
# code is shown, not quoted: fenced blocks and inline code spans are skipped
CODE = re.compile(r"^(?P<fence>```|~~~).*?^(?P=fence)|`[^`\n]*`", re.MULTILINE | re.DOTALL)


def resolve_pointer(document: Any, pointer: str) -> Any:
    """The value at a JSON Pointer (RFC 6901: ``~1`` is ``/``, ``~0`` is ``~``)."""
    value = document
    for raw in pointer.split("/")[1:]:
        key = raw.replace("~1", "/").replace("~0", "~")
        value = value[int(key)] if isinstance(value, list) else value[key]
    return value


def quotes(markdown: str) -> Iterator[Tuple[str, str, str]]:
    """(text, target, pointer) of every quoted number in ``markdown``."""
    for match in QUOTE_LINK.finditer(CODE.sub("", markdown)):
        yield match["text"], match["target"], match["pointer"]


def check(markdown: str, page: str, root: Path) -> List[str]:
    """Problems with the numbers ``page`` (repository-relative) quotes."""
    problems = []
    for text, target, pointer in quotes(markdown):
        where = f"{page}: [{text}] from {target} {pointer}"
        path = posixpath.normpath(posixpath.join(posixpath.dirname(page), target))
        try:
            document = json.loads((root / path).read_text(encoding="utf-8"))
            value = resolve_pointer(document, pointer)
        except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
            problems.append(f"{where}: cannot read the value ({e})")
            continue
        number = NUMBER.search(text)
        if number is None or not isinstance(value, (int, float)):
            problems.append(f"{where}: no number to compare (text {text!r}, value {value!r})")
            continue
        shown = number[0].replace(",", "")
        decimals = len(shown.split(".")[1]) if "." in shown else 0
        if round(float(value), decimals) != float(shown):
            problems.append(f"{where}: the file says {value!r}, which is not {number[0]}")
    return problems
