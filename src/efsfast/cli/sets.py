"""verify-set: check a backup set (folder, tar stream or s3:// prefix)
against its manifest, and with --key prove each object decryptable."""
from __future__ import annotations

import argparse
import sys

from .._errors import RefusedError
from .options import STDIO, add_jobs_option, add_with_option, is_s3, store_options, workers
from .output import ExitCode, emit, fail, record, refuse, require_folder, say
from .progress import Progress

TYPE_CHECKING = False           # as in efsfast/__init__.py: no typing import at start-up
if TYPE_CHECKING:
    from typing import Any, List, Optional, Sequence


def cmd_verify_set(args: argparse.Namespace) -> int:
    from ..backupset.streamverify import verify_stream
    from ..backupset.verify import verify_set
    refused = require_folder(args, args.set)
    if refused is not None:
        return refused
    prove: Any = None
    if args.key:
        try:
            prove = _decryptability_proof(args, is_s3(args.set))
        except (ImportError, ValueError) as exc:    # no `cryptography`; an unusable key file
            return fail(args, exc, ExitCode.REFUSED)
        if prove is None:
            return refuse(args, "verify-set --key needs decryption support (efsfast.crypto), "
                                "which this build does not have", "--key")
    if args.set == STDIO and prove is not None:
        return refuse(args, "verify-set --key needs a set folder or an s3:// set, not a "
                            "tar stream", "--key")
    bar = Progress("verify-set", 0, not args.json and not args.quiet)
    try:
        if is_s3(args.set):
            from ..backupset.storeread import verify_store_set
            try:
                r = verify_store_set(args.set, mode=args.mode, sets=args.sets, prove=prove,
                                     workers=args.workers, progress=bar, **store_options(args))
            except RefusedError as exc:     # the store cannot be used: nothing was checked
                return fail(args, exc, ExitCode.REFUSED)
        elif args.set == STDIO:
            r = verify_stream(sys.stdin.buffer, mode=args.mode, sets=args.sets, progress=bar)
        else:
            r = verify_set(args.set, mode=args.mode, sets=args.sets, prove=prove,
                           workers=args.workers, progress=bar)
    finally:
        bar.close()             # (before the summary, and before Ctrl-C's line)
    code = ExitCode.OK if r.ok else ExitCode.FAILED
    if args.json:
        from ..messages import ErrorKind
        problems = [{"path": p.path, "error": p.message, "kind": ErrorKind.PROBLEM.value,
                     "errno": None, "winerror": None} for p in r.problems]
        if not r.ok and not problems:       # (never: a set that is not ok says why)
            problems.append({"path": args.set, "error": "not as written",
                             "kind": ErrorKind.PROBLEM.value, "errno": None, "winerror": None})
        emit(args, record("verify-set", code, problems, source=args.set, set_id=r.set_id,
                          complete=r.complete, bytes=r.bytes,
                          counts={"verified": r.objects, "problems": len(r.problems)}))
    else:
        for p in r.problems:
            say(f"{p.path}: {p.message}")
        say(f"verify-set {r.set_dir}: " + (
            f"OK, {r.objects} objects ({r.bytes / 1e6:.1f} MB) as written"
            + (", each decryptable with the given key(s)" if prove else "")
            if r.ok else f"{len(r.problems)} problem(s); {r.objects} objects verified"))
    return code


def _decryptability_proof(args: argparse.Namespace, in_store: bool) -> Any:
    """The decryptability proof of ``verify --key``: for a folder set a
    batch check (paths -> per path None, decryptable, or why not: forked
    workers open each object by name), for a set in an object store a check
    of one fetched object at a time (its bytes -> None or why not).  None
    where this build has no decryption."""
    try:
        from ..crypto.keys import load_keys
        from ..crypto.verify import check_many, prover, why_not
        from .crypto import password_source
    except ModuleNotFoundError:
        return None
    keys = load_keys(args.key, password=password_source(args))
    if in_store:
        return prover(keys, mode=args.mode)

    def prove(paths: Sequence[str]) -> List[Optional[str]]:
        return [why_not(p) for p in check_many(paths, keys, mode=args.mode)]
    return prove


def _add_key_options(s: argparse.ArgumentParser) -> None:
    try:
        from .crypto import add_key_options     # --key and its password options
    except ImportError:
        s.add_argument("--key", action="append", metavar="KEYFILE",
                       help="also prove every object decrypts with this key (needs decryption support)")
        return
    add_key_options(s)


def register(sub: Any, mode_parent: argparse.ArgumentParser) -> None:
    s = sub.add_parser("verify-set", parents=[mode_parent],
                       help="check a backup set: manifest intact, every object present with "
                            "its SHA-256, every stream valid, nothing unlisted")
    s.add_argument("set", metavar="SET", help="set folder, s3://BUCKET/PREFIX, or - to read "
                                              "a tar stream")
    add_with_option(s)
    _add_key_options(s)
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--workers", type=workers(), default=None,
                   help="objects checked at once (default: one per CPU)")
    add_jobs_option(s)
    s.set_defaults(func=cmd_verify_set)
