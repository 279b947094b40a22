"""``efsfast.verify``: a raw stream checked against the format's rules, or
with ``keys`` proved decryptable.  It sits above :mod:`efsfast.raw` (the
rules) and :mod:`efsfast.crypto` (the keys), which imports raw: raw itself
knows nothing of keys, so neither imports the other in a circle."""
from __future__ import annotations

from typing import Any, overload

from .raw import RawInfo, Source, inspect


@overload
def verify(source: Source, *, mode: str = "strict", keys: None = None, read_data: bool = False,
           password: Any = None) -> RawInfo: ...
@overload
def verify(source: Source, *, mode: str = "strict", keys: Any, read_data: bool = False,
           password: Any = None) -> Any: ...


def verify(source: Source, *, mode: str = "strict", keys: Any = None, read_data: bool = False,
           password: Any = None) -> Any:
    """Check a raw stream against rules R1-R20; returns what :func:`inspect` does.

    With ``keys`` (key objects or key file paths) it proves instead that a
    key opens the file and returns the :class:`efsfast.crypto.Opened` entry
    (``read_data`` also decrypts every byte); see efsfast.crypto.verify.
    """
    if keys is not None:
        from .crypto.verify import prove
        return prove(source, keys, read_data=read_data, mode=mode, password=password)
    return inspect(source, mode=mode)
