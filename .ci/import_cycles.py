#!/usr/bin/env python3
"""Find import circles among the modules of a package (default: src/efsfast).

Every ``import`` and ``from ... import`` statement counts, wherever it is:
at module level, inside functions, under ``if TYPE_CHECKING:`` or ``try:``
(a circle that only shows at run time is still a circle).  Relative imports
are resolved against the importing module; ``from pkg import name`` counts
as importing ``pkg.name`` when that is a module, ``pkg`` (its ``__init__``)
otherwise.  Exit 1 and print a circle through each group of modules that
import one another when there is one."""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set


def modules_of(root: Path) -> Dict[str, Path]:
    """Module name -> source file, for every .py under the package ``root``
    (the package's name is the folder's), and the compiled modules (.pyx:
    modules too, which import no Python module of the package)."""
    out: Dict[str, Path] = {}
    base = root.parent
    for path in sorted([*root.rglob("*.py"), *root.rglob("*.pyx")]):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(module: str, is_package: bool, level: int, target: Optional[str]) -> str:
    """The absolute name of ``from <level dots><target> import``."""
    if level == 0:
        return target or ""
    parts = module.split(".")
    if not is_package:
        parts = parts[:-1]              # a module's relative imports start at its package
    if level > 1:
        parts = parts[:len(parts) - (level - 1)]
    return ".".join(parts + ([target] if target else []))


def imports_of(module: str, path: Path, known: Set[str]) -> Iterator[str]:
    """The modules of ``known`` that ``module`` imports anywhere in its source."""
    if path.suffix != ".py":
        return
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        names: List[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            for a in node.names:
                sub = f"{base}.{a.name}"
                names.append(sub if sub in known else base)
        for name in names:
            # `import a.b.c` names a.b.c: the deepest known module is the edge
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                yield name


def graph(root: Path) -> Dict[str, Set[str]]:
    mods = modules_of(root)
    known = set(mods)
    return {m: set(imports_of(m, p, known)) for m, p in mods.items()}


def cycles(g: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components with more than one module (Tarjan),
    each as one circle through them found by a search inside the component."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    comps: List[List[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        # iterative: a deep package must not hit the recursion limit
        work = [(v, iter(sorted(g[v])))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(g[w]))))
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1:
                        comps.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return [_circle(g, set(c)) for c in comps]


def _circle(g: Dict[str, Set[str]], comp: Set[str]) -> List[str]:
    """One circle through the first module of a strongly connected component
    (breadth-first back to it, so the shortest)."""
    start = min(comp)
    prev: Dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(g[v] & comp):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return list(reversed(path)) + [start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError("a strongly connected component without a circle")


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parent.parent / "src" / "efsfast"
    p.add_argument("package", nargs="?", type=Path, default=default,
                   help="the package folder (default: src/efsfast)")
    args = p.parse_args(argv)
    found = cycles(graph(args.package))
    for c in found:
        print("import circle: " + " -> ".join(c))
    if found:
        return 1
    print(f"import_cycles: no circles among the modules of {args.package.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
