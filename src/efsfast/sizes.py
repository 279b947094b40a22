"""Sizes as people write them on a command line: ``4096``, ``16K``, ``512M``,
``1G``, ``1GiB``, ``2GB``.

One rule, GNU coreutils' (``dd``, ``truncate``, ``head -c``): a bare suffix
and its ``iB`` form are powers of 1024 (``K`` = ``KiB`` = 1024, ``M`` =
``MiB``, ``G``, ``T``, ``P``, ``E``), the ``B`` form is the power of 1000
(``KB`` = 1000, ``MB`` = 1000000, ...).  Letters in any case; no sign, no
fraction, no spaces: a size that is not a whole number of bytes is refused,
never rounded.

:func:`parse_size` is the library's; :func:`size_type` wraps it as an
argparse type, so that every option taking a size says the same thing;
:func:`count_type` is its twin for counts (workers, repeats, users).
"""
from __future__ import annotations

import re

TYPE_CHECKING = False           # as in efsfast/__init__.py: no typing import at start-up
if TYPE_CHECKING:
    from typing import Callable, Optional

_PREFIXES = "KMGTPE"
_SIZE = re.compile(r"(\d+)(?:([KMGTPE])(i?B)?)?", re.IGNORECASE)

SIZE_HELP = ("bytes, or with a suffix: K, M, G, T (KiB, MiB, ... the same: powers of 1024) "
             "or KB, MB, GB, TB (powers of 1000)")


def parse_size(text: str, *, minimum: int = 0, maximum: Optional[int] = None) -> int:
    """The number of bytes ``text`` names (see the module's rule); ValueError
    with the reason when it names none, or one outside [minimum, maximum]."""
    m = _SIZE.fullmatch(text.strip())
    if m is None:
        if text.strip().startswith("-"):
            raise ValueError(f"a size cannot be negative, got {text!r}")
        raise ValueError(f"expected a size such as 4096, 16K, 512M, 1G or 1GiB, got {text!r}")
    digits, prefix, unit = m.groups()
    value = int(digits)
    if prefix:
        base = 1000 if unit is not None and unit.lower() == "b" else 1024
        value *= base ** (_PREFIXES.index(prefix.upper()) + 1)
    if value < minimum:
        raise ValueError(f"must be at least {minimum} bytes, got {text!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"must be at most {maximum} bytes, got {text!r}")
    return value


def size_type(minimum: int = 0, maximum: Optional[int] = None) -> Callable[[str], int]:
    """An argparse ``type=`` for a size: a bad one is a usage error (exit 2)
    that names the option and says why."""
    import argparse         # (the library side does not need it)

    def parse(text: str) -> int:
        try:
            return parse_size(text, minimum=minimum, maximum=maximum)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = "size"
    return parse


def count_type(minimum: int = 0, maximum: Optional[int] = None) -> Callable[[str], int]:
    """An argparse ``type=`` for a count: a whole number from ``minimum``
    (to ``maximum``); anything else is a usage error (exit 2) that names the
    option, worded the same for every option."""
    import argparse
    wanted = (f"a whole number from {minimum} to {maximum}" if maximum is not None
              else f"a whole number of at least {minimum}")

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected {wanted}, not {text}")
        return value
    parse.__name__ = "whole number"
    return parse
