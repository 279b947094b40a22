"""Option types and option groups that several commands share."""
from __future__ import annotations

import argparse

TYPE_CHECKING = False           # as in efsfast/__init__.py: no typing import at start-up
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Optional

    from ..backends import PosixBackend

STDIO = "-"                     # a tar stream on stdin/stdout instead of a folder
MAX_BUFFER_SIZE = 1 << 30       # = efsfast._core.MAX_BUFFER_SIZE (tests/test_one_voice.py)
MIN_MEMORY_MIB = 8              # the least memory an s3:// transfer is given


def whole_number(minimum: int, maximum: Optional[int] = None) -> Callable[[str], int]:
    """An argparse type: a whole number from ``minimum`` (to ``maximum``),
    exit 2 otherwise: :func:`efsfast.sizes.count_type`, imported when an
    option is parsed (not at start-up)."""
    def parse(text: str) -> int:
        from ..sizes import count_type
        return count_type(minimum, maximum)(text)
    parse.__name__ = "whole number"
    return parse


def workers() -> Callable[[str], int]:
    """--workers of every command that has it: at least 1."""
    return whole_number(1)


def buffer_size() -> Callable[[str], int]:
    """--buffer-size: 1 byte to the largest buffer the POSIX system side
    takes (efsfast._core.MAX_BUFFER_SIZE, 1 GiB; not imported here: the
    parser is built at start-up)."""
    return whole_number(1, MAX_BUFFER_SIZE)


def backend_from(args: argparse.Namespace) -> Optional[PosixBackend]:
    """efsfast's own system side when an option asks for it; on Windows
    advapi32 validates and ``--mode`` only affects verify and inspect."""
    mode = getattr(args, "mode", "strict")
    if getattr(args, "buffer_size", None) is None and mode == "strict":
        return None
    from .. import backends
    if "posix" not in backends.available():
        return None
    return backends.PosixBackend(buffer_size=args.buffer_size or 65536, mode=mode)


def is_s3(name: str) -> bool:
    """An s3:// URL (of an object, or of a set's prefix)."""
    return name.lower().startswith("s3://")


def add_no_sync(p: argparse.ArgumentParser, what: str = "what was written") -> None:
    """--no-sync (restore-tree, decrypt-tree); ``what`` names what the
    command writes (decrypt-tree: "the plaintext")."""
    p.add_argument("--no-sync", action="store_true",
                   help=f"do not wait for {what} to reach stable storage before the "
                        "summary (faster; a power cut may then lose it)")


def add_with_option(p: argparse.ArgumentParser) -> None:
    """--with: the earlier sets of an incremental set (restore-tree,
    decrypt-tree, verify-set: each looks in these, then at the recorded paths)."""
    p.add_argument("--with", dest="sets", metavar="SET", action="append", default=[],
                   help="an earlier set an incremental set refers to (repeatable; by default "
                        "the path each reference recorded)")


def add_jobs_option(s: argparse.ArgumentParser) -> None:
    s.add_argument("--jobs", type=whole_number(1), default=None, metavar="N",
                   help="s3:// sets: requests in flight at once (default 16)")
    s.add_argument("--memory-mib", type=whole_number(MIN_MEMORY_MIB), default=None,
                   metavar="MIB",
                   help="s3:// sets: bytes held for transfers at once (default 256 MiB; at "
                        "least 8)")


def store_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The object store's options from the command line."""
    out = {}
    if getattr(args, "jobs", None) is not None:
        out["jobs"] = args.jobs
    if getattr(args, "memory_mib", None) is not None:
        out["memory_limit"] = args.memory_mib << 20
    return out
