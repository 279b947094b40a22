"""Griffe extension for the API reference: efsfast's docstrings use the
Sphinx roles ``:func:`name``` and ``:class:`name``` (Python's own help() and
IDEs show them as written); mkdocstrings renders Markdown, where they would
stay literal text.  Each role becomes a cross-reference to the object it
names, resolved in the docstring's own scope as Python would resolve the
name there, and plain code where it names something the reference does not
show (a private helper, a built-in exception)."""
from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?P<role>func|meth|class|exc|data|attr|mod|obj):"
                  r"`(?P<tilde>~?)(?P<name>[\w.]+)`")
CALLABLE_ROLES = {"func", "meth"}


def _replace(obj: griffe.Object, match: re.Match[str]) -> str:
    name = match["name"]
    shown = name.rsplit(".", 1)[-1] if match["tilde"] else name
    if match["role"] in CALLABLE_ROLES:
        shown += "()"
    code = f"<code>{html.escape(shown)}</code>"
    try:
        target = obj.resolve(name)
    except griffe.NameResolutionError:
        if "." not in name:
            return code
        target = name          # a dotted name is taken as the full path
    # `optional`: a target the reference does not render stays plain code
    # (autorefs drops the link without a warning); what it does render links.
    return f'<autoref identifier="{html.escape(target)}" optional>{code}</autoref>'


def _rewrite(obj: griffe.Object) -> None:
    if obj.docstring is not None and ":" in obj.docstring.value:
        obj.docstring.value = ROLE.sub(lambda m: _replace(obj, m), obj.docstring.value)
    for member in obj.members.values():
        if isinstance(member, griffe.Object):      # an Alias is rewritten where it points
            _rewrite(member)


class SphinxRoles(griffe.Extension):
    # Once the package is whole: a docstring may name what is defined below it.
    def on_package(self, *, pkg: griffe.Module, loader: Any, **kwargs: Any) -> None:
        _rewrite(pkg)
