"""MkDocs hooks: the site is made of the repository's Markdown where it lies.

- The README is the home page, and benchmarks/ (its README, the generated
  results/*.md, the plots and the JSON they come from) is the benchmarks
  section: added here rather than moved, so each text has one source and
  keeps working where it is read on a forge.
- Links are written repository-relative (``docs/LINUX.md`` in the README,
  ``../benchmarks/results/results.md`` in a guide), which is what a forge
  follows; each is mapped onto the site's own paths here.  A link to a file
  the site does not hold stays as written, and MkDocs reports it (strict:
  the build fails).
- Numbers quoted from benchmark results are checked against the files
  (quoted.py); a mismatch is a warning, so the strict build fails.
- List items are read as a forge reads them (CommonMark: a block indented
  to the item's text belongs to the item), not as Python-Markdown does (it
  wants 4 spaces), so a table or code block inside a numbered item stays in
  the item on the site too.
"""
from __future__ import annotations

import importlib.util
import logging
import posixpath
import re
from pathlib import Path
from typing import Any, Dict

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parents[2]
DOCS = "docs"
log = logging.getLogger("mkdocs.plugins.efsfast")

_spec = importlib.util.spec_from_file_location("efsfast_docs_quoted",
                                               Path(__file__).with_name("quoted.py"))
assert _spec is not None and _spec.loader is not None
quoted = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(quoted)

# Repository files outside docs/ that the site shows: repository path -> site path.
EXTRA = {"README.md": "index.md", "benchmarks/README.md": "benchmarks/index.md"}
EXTRA_GLOBS = ("benchmarks/results/**/*.md", "benchmarks/results/**/*.png",
               "benchmarks/results/**/*.json")

# Markdown links and images: [text](target "title") / ![alt](target)
LINK = re.compile(r'(?P<head>!?\[[^\]]*\]\()(?P<target>[^)\s#]*)'
                  r'(?P<rest>(?:#[^)\s]*)?(?:\s+"[^"]*")?\))')

# a list item's marker at the start of a line: "1. ", "- "
ITEM = re.compile(r"^(?:\d+[.)]|[-*+]) +(?=\S)")
FENCE = re.compile(r"^(```|~~~)")

_site_of: Dict[str, str] = {}      # repository path -> site path, for every page and asset
_repo_of: Dict[str, str] = {}      # site path -> repository path


def on_files(files: Files, config: MkDocsConfig) -> Files:
    extra = dict(EXTRA)
    for pattern in EXTRA_GLOBS:
        for path in sorted(ROOT.glob(pattern)):
            rel = path.relative_to(ROOT).as_posix()
            extra[rel] = rel
    for repo_path, site_path in extra.items():
        files.append(File.generated(config, site_path, abs_src_path=str(ROOT / repo_path)))
    _repo_of.clear()
    _repo_of.update({file.src_uri: f"{DOCS}/{file.src_uri}" for file in files})
    _repo_of.update({site: repo for repo, site in extra.items()})
    _site_of.clear()
    _site_of.update({repo: site for site, repo in _repo_of.items()})
    return files


def _map_link(match: "re.Match[str]", page_repo: str, page_site: str) -> str:
    target = match["target"]
    if not target or "://" in target or target.startswith(("/", "mailto:")):
        return match[0]
    repo_target = posixpath.normpath(posixpath.join(posixpath.dirname(page_repo), target))
    site_target = _site_of.get(repo_target)
    if site_target is None:
        return match[0]
    new = posixpath.relpath(site_target, posixpath.dirname(page_site) or ".")
    return f"{match['head']}{new}{match['rest']}"


def commonmark_lists(markdown: str) -> str:
    """Re-indent the blocks of top-level list items from the marker's width
    (CommonMark) to the 4 columns Python-Markdown needs."""
    out, width, fenced = [], 0, False
    for line in markdown.split("\n"):
        if width == 0 and FENCE.match(line):
            fenced = not fenced
        item = None if fenced else ITEM.match(line)
        if item:
            width = len(item[0])
        elif width and line.strip() and not line.startswith(" " * width):
            width = 0                        # back at the margin: the item ended
        elif 0 < width < 4 and line.strip():
            line = " " * (4 - width) + line
        out.append(line)
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files,
                     **_: Any) -> str:
    page_site = page.file.src_uri
    page_repo = _repo_of.get(page_site, f"{DOCS}/{page_site}")
    for problem in quoted.check(markdown, page_repo, ROOT):
        log.warning(problem)
    markdown = commonmark_lists(markdown)
    return LINK.sub(lambda m: _map_link(m, page_repo, page_site), markdown)


# Every public name is in the reference: those of each module's __all__ must
# have rendered (under the module's name, or where the object is defined).
API_MODULES = ("efsfast", "efsfast.backends", "efsfast.backupset", "efsfast.crypto")
ANCHOR = re.compile(r'\bid="([^"]+)"')


def on_post_build(config: MkDocsConfig, **_: Any) -> None:
    import importlib
    import inspect

    ids = set()
    for page in (Path(config.site_dir) / "reference").rglob("*.html"):
        ids.update(ANCHOR.findall(page.read_text(encoding="utf-8")))
    for modname in API_MODULES:
        module = importlib.import_module(modname)
        for name in module.__all__:
            if name.startswith("__"):
                continue                     # __version__: the page's text names it
            obj = getattr(module, name)
            if inspect.ismodule(obj):
                found = obj.__name__ in API_MODULES
            else:
                defined = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
                found = f"{modname}.{name}" in ids or defined in ids
            if not found:
                log.warning(f"API reference: {modname}.{name} is in {modname}.__all__ "
                            "but not on any reference page")
