"""Prove that backups can be decrypted: for each raw stream (or encrypted
object on an efs_raw mount), some given key unwraps the FEK into a
well-formed blob of a supported algorithm.  Without ``read_data`` only the
$EFS is read (the user.ntfs.efsinfo xattr of an efs_raw object, the head of
a ``.efsraw`` file); with it every byte is decrypted into a null sink.

:func:`check_many` is the hook for other jobs (``verify-set --key`` of a
folder set): it takes sources and keys and returns one :class:`Proof` per
source, in order, running the RSA work on all cores; :func:`prover` is the
one for objects in memory (``verify-set --key`` of a set in an object store).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from .. import _codec, _decrypt, raw
from .._errors import EfsError, RawFormatError
from .fek import NotDecryptableError, Opened, entries, unwrap
from .keys import Key, KeysArg, Password, as_keys

HEAD_CHUNK = 1 << 16
UNSUPPORTED_METADATA = "E_META_UNSUPPORTED"
EFSINFO_XATTR = "user.ntfs.efsinfo"


@dataclass(frozen=True)
class Proof:
    """The outcome for one source: ``ok`` with the entry that opened it, or
    the reasons no key did (``reasons``) or the error that stopped the check."""
    path: str
    ok: bool
    opened: Optional[Opened] = None
    reasons: List[str] = field(default_factory=list)
    error: Optional[str] = None
    plain_bytes: Optional[int] = None          # with read_data

    def as_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {"path": self.path, "decryptable": self.ok}
        if self.opened is not None:
            d["opened_by"] = self.opened.as_dict()
        if self.reasons:
            d["reasons"] = self.reasons
        if self.error is not None:
            d["error"] = self.error
        if self.plain_bytes is not None:
            d["plaintext_bytes"] = self.plain_bytes
        return d


def _head_chunks(source: Any) -> Iterator[Any]:
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            while True:
                chunk = f.read(HEAD_CHUNK)
                if not chunk:
                    return
                yield chunk
    else:
        yield from raw._chunks(source)


def read_metadata(source: Any, mode: str = "strict") -> bytes:
    """The $EFS of ``source`` without reading its data streams."""
    from .decrypt import is_object, naming_errors
    if is_object(source) and hasattr(os, "getxattr"):
        return os.getxattr(os.fspath(source), EFSINFO_XATTR)
    parser = _codec.RawParser(mode)
    with naming_errors(source) as filename:
        if filename is not None and os.path.isdir(filename):
            raise IsADirectoryError(21, "a folder, not a raw stream", filename)
        for chunk in _head_chunks(source):
            parser.feed(chunk)
            if parser.metadata is not None:
                break
        else:
            parser.finish()     # a stream of only the $EFS ends there
    if parser.metadata is None:
        raise EfsError(13, "the raw stream ends before its $EFS", filename)
    return parser.metadata


def prove(source: Any, keys: KeysArg, *, read_data: bool = False, mode: str = "strict",
          password: Password = None) -> Opened:
    """Which entry opens ``source``; raises :class:`NotDecryptableError`
    (``reasons``) when none does, RawFormatError/OSError when it is broken."""
    keys = as_keys(keys, password)
    if read_data:
        from .decrypt import run
        return run(source, keys, lambda name, flag: _decrypt.SINK_NULL, mode=mode).opened_by
    fk = unwrap(read_metadata(source, mode), keys, mode)
    fk.wipe()
    return fk.opened


def check(source: Any, keys: KeysArg, *, read_data: bool = False, mode: str = "strict") -> Proof:
    """:func:`prove` as a :class:`Proof` that carries failures instead of raising."""
    path = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<stream>"
    try:
        if read_data:
            from .decrypt import run
            h = run(source, keys, lambda name, flag: _decrypt.SINK_NULL, mode=mode)
            return Proof(path, True, h.opened,
                         plain_bytes=sum(size for _, size in h.streams))
        return Proof(path, True, prove(source, keys, mode=mode))
    except NotDecryptableError as exc:
        return Proof(path, False, reasons=exc.reasons)
    except RawFormatError as exc:
        if exc.code == UNSUPPORTED_METADATA:      # Version 2/3 $EFS: a reason, not damage
            return Proof(path, False, reasons=_layout_reasons(source, exc))
        return Proof(path, False, error=str(exc))
    except (OSError, ValueError) as exc:
        return Proof(path, False, error=str(exc))


def why_not(proof: Proof) -> Optional[str]:
    """None where ``proof`` holds, else why not, in words: what verify-set
    --key says of an object no given key opens."""
    if proof.ok:
        return None
    return "; ".join(proof.reasons) or proof.error or "no key opens it"


def prover(keys: KeysArg, *, mode: str = "strict",
           password: Password = None) -> Callable[[Any], Optional[str]]:
    """The proof of ``verify --key`` for one source at a time, in the
    calling thread: ``source`` (a bytes-like object, such as a buffer an
    object store handed out, read in place, or a binary file) -> None where
    a key opens it, else why not.  For objects fetched into memory, where
    :func:`check_many`'s forked workers would have to be sent each buffer;
    one RSA unwrap per object (about 0.3 ms for RSA-2048) is small beside
    fetching it."""
    loaded = as_keys(keys, password)
    return lambda source: why_not(check(source, loaded, mode=mode))


def _layout_reasons(source: Any, exc: RawFormatError) -> List[str]:
    """The reason strict parsing refused a Version 2/3 $EFS, worded as for
    compatible mode (the source is read again, as far as its $EFS)."""
    try:
        entries(read_metadata(source, "compatible"))
    except NotDecryptableError as why:
        return why.reasons
    except (OSError, ValueError, TypeError):
        pass
    return [f"{exc.detail}: cannot be opened with an RSA key file"]


_KEYS: Optional[List[Key]] = None      # the keys a forked worker inherits (never pickled)


def _work(item: Tuple[Any, bool, str]) -> Proof:
    source, read_data, mode = item
    assert _KEYS is not None        # (set by check_many before the fork)
    return check(source, _KEYS, read_data=read_data, mode=mode)


def check_many(sources: Sequence[Any], keys: KeysArg, *, read_data: bool = False,
               mode: str = "strict", workers: Optional[int] = None,
               progress: Optional[Callable[[int, int], None]] = None) -> List[Proof]:
    """One :class:`Proof` per source, in order.  RSA in ``cryptography``
    holds the GIL, so on Linux the work runs in ``workers`` forked processes
    (all cores by default) that inherit the loaded keys; elsewhere it runs in
    this process."""
    global _KEYS
    keys = as_keys(keys)
    sources = list(sources)
    workers = workers or os.cpu_count() or 1
    items = [(s, read_data, mode) for s in sources]
    # fork (Linux) hands the loaded keys to the workers without pickling them;
    # elsewhere (Windows, macOS where fork is unsafe), or where this process
    # runs other threads (a fork copies their locks), the work stays here
    # (forked imported only here: decrypt and verify of one source never pay
    # for it)
    from . import forked
    use_fork = (workers > 1 and len(sources) > 1 and sys.platform.startswith("linux")
                and forked.alone())
    if not use_fork:
        out = []
        for i, it in enumerate(items):
            out.append(check(it[0], keys, read_data=read_data, mode=mode))
            if progress is not None:
                progress(i + 1, len(items))
        return out
    _KEYS = keys
    try:
        return forked.map_forked(_work, items, workers=min(workers, len(sources)),
                                 progress=progress)
    finally:
        _KEYS = None
