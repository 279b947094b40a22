"""Module attributes imported on first use (PEP 562), for package
``__init__`` files whose names come from modules that are slow to import."""
from __future__ import annotations

import importlib

TYPE_CHECKING = False           # as in __init__.py: typing is not imported at start-up
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterable, List, Tuple


def attach(package: str, namespace: Dict[str, Any], lazy: Dict[str, Tuple[str, ...]],
           submodules: Iterable[str] = ()) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: each name in ``lazy``
    (module -> names, modules relative) is imported when first looked up,
    then kept in ``namespace`` (the next lookup is a plain attribute)."""
    where = {name: module for module, names in lazy.items() for name in names}
    subs = tuple(submodules)

    def __getattr__(name: str) -> Any:
        if name in subs:
            return importlib.import_module(f".{name}", package)
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> List[str]:
        return sorted(set(namespace) | set(where) | set(subs))
    return __getattr__, __dir__
