"""``efsfast encrypt``: a raw EFS stream made from a plain file for
certificates, so that decrypt, verify --key, inspect and restore can be
tried without Windows (docs/DECRYPTION.md).  The password options and their
source are decryption's (cli/crypto.py)."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Any, BinaryIO, Dict, Iterator, Optional

from .. import EfsError
from .crypto import add_password_options, password_source
from .options import STDIO
from .output import ExitCode, emit, fail, record, refuse

ALGORITHMS = ("aes256", "3des")


@contextlib.contextmanager
def _reports_to(to_stdout: bool) -> Iterator[None]:
    """What the command says goes to stderr while stdout carries the stream."""
    if to_stdout:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    else:
        yield


def cmd_encrypt(args: argparse.Namespace) -> int:
    from ..crypto import MissingDependencyError
    from ..crypto.keys import KeyLoadError
    to_stdout = args.dest == STDIO
    args.data_on_stdout = to_stdout     # (for the record writers: the record goes to stderr)
    # the stream's stdout, taken before the reports are sent to stderr
    stream = sys.stdout.buffer if to_stdout else None
    with _reports_to(to_stdout):
        refused = _refusal(args, stream)
        if refused is not None:
            return refused
        try:
            return _encrypt(args, stream)
        except (MissingDependencyError, KeyLoadError) as exc:
            return fail(args, exc, ExitCode.REFUSED)
        except (EfsError, OSError, ValueError) as exc:     # (here: stdout carries the stream)
            return fail(args, exc, ExitCode.FAILED)


def _refusal(args: argparse.Namespace, stream: Optional[BinaryIO]) -> Optional[int]:
    """Exit 2 before a certificate is read or a password asked: DEST exists,
    PLAIN cannot be read, or the stream would go to a terminal."""
    from ..newfile import refuse_existing
    try:
        if stream is not None:
            if stream.isatty():
                return refuse(args, "will not write a raw stream to a terminal (redirect "
                                    "standard output, or give DEST)", path=STDIO)
        elif not args.overwrite:
            refuse_existing(args.dest)
        if args.plain == STDIO:     # the size comes before the data, and a spool would be
            return refuse(args,         # a plaintext copy on disk
                          "PLAIN must be a file: the raw stream states the plaintext's size "
                          "before its data, so standard input is not taken", path=STDIO)
        if os.path.isdir(args.plain):
            raise IsADirectoryError(21, "a folder, not a file (encrypt takes one file)",
                                    args.plain)
        with open(args.plain, "rb"):
            pass
    except OSError as exc:
        return fail(args, exc, ExitCode.REFUSED)
    return None


def _encrypt(args: argparse.Namespace, stream: Optional[BinaryIO]) -> int:
    from ..crypto.encrypt import encrypt_file
    r = encrypt_file(args.plain, stream if stream is not None else args.dest, args.cert,
                     args.recovery_cert, password=password_source(args),
                     overwrite=args.overwrite, algorithm=args.algorithm)
    if stream is not None:
        stream.flush()
    # the fields of the other commands' records (source, dest, bytes: the raw
    # stream's, object: what was made)
    made: Dict[str, Any] = {
        "path": r.path if r.path is not None else STDIO, "plain_bytes": r.plain_bytes,
        "recipients": list(r.recipients), "recovery_agents": list(r.recovery_agents),
        "algorithm": r.algorithm}
    if args.json:
        emit(args, record("encrypt", ExitCode.OK, source=args.plain, dest=args.dest,
                          bytes=r.bytes, object=made))
    else:
        agents = (f"; recovery agent{'s' if len(r.recovery_agents) > 1 else ''} "
                  + ", ".join(r.recovery_agents)) if r.recovery_agents else ""
        print(f"encrypted {args.plain} -> {args.dest} ({r.plain_bytes} bytes of "
              f"plaintext, {r.bytes} bytes of raw stream, {r.algorithm.upper()}; for "
              + ", ".join(r.recipients) + agents + ")")
    return ExitCode.OK


def register(sub: Any) -> None:
    s = sub.add_parser("encrypt", help="make a raw EFS stream from a plain file for one or "
                       "more certificates, to try decrypt, verify --key, inspect and restore "
                       "without Windows")
    s.add_argument("plain", metavar="PLAIN", help="the plain file to encrypt")
    s.add_argument("dest", metavar="DEST",
                   help="the raw stream to write (a .efsraw file), or - for standard output")
    s.add_argument("--cert", action="append", required=True, metavar="CERTFILE",
                   help="a user who can decrypt it (a DDF entry): a certificate file, DER or "
                        "PEM (.cer/.crt as Windows exports it), or a PFX; repeat for several "
                        "users (at least one)")
    s.add_argument("--recovery-cert", action="append", default=[], metavar="CERTFILE",
                   help="a data recovery agent who can decrypt it (a DRF entry), a "
                        "certificate file as for --cert; repeatable")
    add_password_options(s, "PFX")
    s.add_argument("--algorithm", choices=ALGORITHMS, default=ALGORITHMS[0],
                   help="the file key's algorithm (default aes256)")
    s.add_argument("--overwrite", action="store_true",
                   help="replace an existing DEST (the old one stays whole until its "
                        "replacement is complete)")
    s.add_argument("--json", action="store_true",
                   help="one machine-readable record (on standard error when DEST is -)")
    s.set_defaults(func=cmd_encrypt)
