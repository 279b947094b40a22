"""The command-line side of decryption: ``verify --key``, ``decrypt`` and
``decrypt-tree``, and the key options verify-set shares.  Nothing here
imports ``cryptography`` until a command runs, so the rest of the CLI works
without it and these commands say how to get it."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Any, Callable, Dict, List, Optional

from .._errors import RefusedError
from ..crypto import MissingDependencyError
from ..messages import ErrorKind
from .options import STDIO, add_no_sync, add_with_option, workers
from .output import (ExitCode, emit, fail, failure, record, refuse, report_tree,
                     require_folder, require_sources, say)
from .progress import Progress, ctrl_c_cancels

Command = Callable[[argparse.Namespace], int]


def add_key_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key", action="append", metavar="KEYFILE", default=None,
                   help="private key: PFX/PKCS#12, PEM or DER (PKCS#1/PKCS#8), with or without "
                        "its certificate; repeat for several (user and recovery agent)")
    add_password_options(p)


def add_password_options(p: argparse.ArgumentParser, what: str = "key") -> None:
    """Where the password of a protected key file (or PFX) comes from:
    asked only for a file that has one (see :func:`password_source`)."""
    p.add_argument("--password-file", metavar="FILE",
                   help=f"read the {what} password from the first line of FILE")
    p.add_argument("--password-env", metavar="VAR",
                   help=f"read the {what} password from the environment variable VAR")


def add_verify_options(p: argparse.ArgumentParser) -> None:
    """The options ``verify`` gains: with --key it proves decryptability."""
    add_key_options(p)
    p.add_argument("--read-data", action="store_true",
                   help="with --key: also decrypt every byte (to nowhere), proving all of it "
                        "is present and readable")
    p.add_argument("--workers", type=workers(), default=None,
                   help="with --key: parallel processes (default: all cores)")


def password_source(args: argparse.Namespace) -> Callable[[str], Optional[str]]:
    """A callable asked for the password of a key file that is encrypted
    (never for one that is not): from --password-file, --password-env, or a
    prompt on the terminal.  Never a command-line argument (it would show in
    ps and shell history)."""
    def ask(path: str) -> Optional[str]:
        if args.password_file:
            try:
                with open(args.password_file, encoding="utf-8") as f:
                    return f.readline().rstrip("\r\n")
            except OSError as exc:      # not the key file's fault: name the right file
                from ..crypto.keys import KeyLoadError
                raise KeyLoadError(f"{args.password_file}: cannot read the password file: "
                                   f"{exc.strerror}") from None
        if args.password_env:
            if args.password_env not in os.environ:     # a key error, as any other (exit 2)
                from ..crypto.keys import KeyLoadError
                raise KeyLoadError(f"{path}: its password is to come from the environment "
                                   f"variable {args.password_env}, which is not set")
            return os.environ[args.password_env]
        if sys.stdin.isatty():
            import getpass          # (here: only a prompt needs it)
            return getpass.getpass(f"Password for {path}: ")
        return None
    return ask


def _load(args: argparse.Namespace, command: str) -> Any:
    """The keys of --key, or None (said why, exit 2) when there are none."""
    from ..crypto.keys import load_keys
    if not args.key:
        refuse(args, f"{command} needs --key KEYFILE", "--key")
        return None
    return load_keys(args.key, password=password_source(args))


def _guarded(command: Command, args: argparse.Namespace) -> int:
    """Run ``command``, turning a missing ``cryptography`` or an unusable key
    file into one clear line and exit 2."""
    from ..crypto.keys import KeyLoadError
    try:
        return command(args)
    except (MissingDependencyError, KeyLoadError) as exc:
        return fail(args, exc, ExitCode.REFUSED)


def _entry_text(opened: Any) -> str:
    e = opened.entry
    return (f"{e.kind} {e.index} ({e.display_name or 'no display name'}, thumbprint "
            f"{e.thumbprint or '-'}), {opened.algorithm.name[5:]}, key {opened.key}")


def cmd_verify_keys(args: argparse.Namespace) -> int:
    return _guarded(_verify_keys, args)


def _verify_keys(args: argparse.Namespace) -> int:
    from ..crypto.verify import Proof, check_many
    from ..treewalk import find_sources
    refused = require_sources(args, *args.files)
    if refused is not None:
        return refused
    if STDIO in args.files:     # the proof runs on worker processes, each opening its file
        return refuse(args, "verify --key reads each source by name: - (standard input) "
                            "cannot be one (decrypt - reads it)", path=STDIO)
    keys = _load(args, "verify")
    if keys is None:
        return ExitCode.REFUSED
    unreadable: List[Any] = []
    sources = find_sources(args.files, unreadable)
    if not sources and not unreadable:
        return refuse(args, "no raw streams or encrypted files found in "
                      + ", ".join(args.files))
    # what could not be listed or examined is a failed item, never left out
    failures = [failure(exc, path) for path, exc in unreadable]
    proofs = [Proof(path, False, error=f["error"]) for (path, _), f in zip(unreadable, failures)]
    proofs += check_many(sources, keys, read_data=args.read_data, mode=args.mode,
                         workers=args.workers)
    bad = [p for p in proofs if not p.ok]
    code = ExitCode.FAILED if bad else ExitCode.OK
    if args.json:
        failures += [{"path": p.path, "error": "; ".join(p.reasons) or p.error or "",
                      "kind": (ErrorKind.NOT_DECRYPTABLE if p.reasons else ErrorKind.ERROR).value,
                      "errno": None, "winerror": None}
                     for p in bad[len(unreadable):]]
        emit(args, record("verify", code, failures, results=[_result(p) for p in proofs],
                          counts={"valid": len(proofs) - len(bad), "invalid": len(bad)}))
    else:
        for p in proofs:
            if p.ok:
                extra = f", {p.plain_bytes} bytes decrypted" if p.plain_bytes is not None else ""
                say(f"{p.path}: decryptable by {_entry_text(p.opened)}{extra}")
        for p in bad:
            why = "; ".join(p.reasons) if p.reasons else p.error
            say(f"{p.path}: NOT DECRYPTABLE: {why}")
        say(f"verify --key: {len(proofs) - len(bad)} decryptable, {len(bad)} not"
            + (" (all data read)" if args.read_data else " ($EFS only)"))
    return code


def _result(proof: Any) -> Dict[str, Any]:
    """A proof as a result of the record (schema record-v1, check_result)."""
    d = proof.as_dict()
    out = {"path": d["path"], "valid": d["decryptable"]}
    for key in ("opened_by", "reasons", "plaintext_bytes"):
        if key in d:
            out[key] = d[key]
    return out


def cmd_decrypt(args: argparse.Namespace) -> int:
    return _guarded(_decrypt, args)


def _decrypt(args: argparse.Namespace) -> int:
    from ..crypto.decrypt import decrypt
    refused = require_sources(args, args.src)
    if refused is not None:
        return refused
    keys = _load(args, "decrypt")
    if keys is None:
        return ExitCode.REFUSED
    src = sys.stdin.buffer if args.src == STDIO else args.src
    dest: Any = args.dest
    if dest == STDIO:           # plaintext on stdout, as backup SRC - gives the raw stream
        args.data_on_stdout = True
        dest = sys.stdout.buffer
    r = decrypt(src, dest, keys, overwrite=args.overwrite,
                directory=True if args.directory else None, mode=args.mode)
    if args.json:
        emit(args, record("decrypt", ExitCode.OK, source=args.src, dest=args.dest,
                          bytes=r.bytes, object={
                              "path": args.dest if args.dest == STDIO else r.path,
                              "directory": r.directory,
                              "streams": [{"name": n, "size": s} for n, s in r.streams],
                              "opened_by": r.opened.as_dict()}))
    elif args.dest != STDIO:
        what = "folder" if r.directory else f"{r.bytes} bytes of plaintext"
        say(f"decrypted {args.src} -> {r.path} ({what}; {_entry_text(r.opened)})")
    return ExitCode.OK


def cmd_decrypt_tree(args: argparse.Namespace) -> int:
    return _guarded(_decrypt_tree, args)


def _decrypt_tree(args: argparse.Namespace) -> int:
    from ..backupset.restore import MissingSetsError
    from ..crypto.tree import check_complete, decrypt_tree
    url = args.src.lower().startswith("s3://")
    refused = require_folder(args, args.src)     # a mistyped SRC_DIR is a usage error
    if refused is not None:
        return refused
    try:                    # refused before a password is asked
        if url:
            from ..backupset.storestage import open_store_set
            store, m = open_store_set(args.src, partial=args.partial, command="decrypt-tree",
                                      done="decrypted")
        else:
            check_complete(args.src, args.partial)
    except RefusedError as exc:
        return fail(args, exc, ExitCode.REFUSED)
    with contextlib.ExitStack() as stack:
        src, sets = args.src, args.sets
        if url:
            stack.callback(store.close)
        keys = _load(args, "decrypt-tree")
        if keys is None:
            return ExitCode.REFUSED
        bar = Progress("decrypt", 0, not args.json and not args.quiet)
        with ctrl_c_cancels() as token:
            try:
                if url:     # its objects, copied into a temporary folder, checked as read
                    import tempfile
                    from ..backupset.storestage import stage_set
                    work = stack.enter_context(tempfile.TemporaryDirectory(
                        prefix=".efsfast-stage-"))
                    src, sets, staged = stage_set(store, m, work, args.sets)
                r = decrypt_tree(src, args.dest, keys, workers=args.workers,
                                 overwrite=args.overwrite, skip_existing=args.skip_existing,
                                 progress=bar, cancel=token, partial=args.partial, sets=sets,
                                 sync=not args.no_sync)
                if url:
                    _name_by_url(r, staged)
            except MissingSetsError as exc:             # nothing was decrypted
                bar.close()
                if url:
                    exc.filename = args.src             # (not the staging folder)
                return fail(args, exc, ExitCode.REFUSED)
            finally:
                bar.close()
    counts = {"directories": r.directories, "skipped_not_encrypted": len(r.skipped),
              "skipped_existing": len(r.existing)}
    extra: Dict[str, Any] = {"counts": counts, "skipped": {
        "not_encrypted": list(r.skipped), "existing": list(r.existing)}}
    notes = []                      # (as restore-tree says them)
    if r.set_id:
        counts["verified"] = r.verified     # objects that matched their manifest lines
        extra["verified"] = True
        extra["set_id"] = r.set_id
        extra["complete"] = r.complete
        if not r.complete:
            notes.append("an incomplete set: decrypted only what it lists")
    elif r.unchecked:
        extra["verified"] = False
        notes.append("not verified: no manifest")
    if notes:
        extra["notes"] = notes
    return report_tree(args, "decrypt-tree", r, extra)


def _name_by_url(r: Any, staged: Dict[str, str]) -> None:
    """The objects of sets in a bucket (the set's own, and those of the
    earlier sets an incremental one refers to), decrypted from staging
    folders, are named in the report by their URL (never the temporary
    copy's path): each job's raw stream and each error's file.  ``staged``:
    each staging folder and the URL of the set it holds."""
    bases = [(os.path.join(folder, ""), u.rstrip("/") + "/") for folder, u in staged.items()]

    def named(p: Any) -> Any:
        if isinstance(p, (str, os.PathLike)):
            for prefix, base in bases:
                if os.fspath(p).startswith(prefix):
                    return base + os.fspath(p)[len(prefix):].replace(os.sep, "/")
        return p
    r.jobs = [(j[0], named(j[1]), *j[2:]) for j in r.jobs]
    for e in r.failures:
        if isinstance(e.error, OSError) and e.error.filename is not None:
            e.error.filename = named(e.error.filename)


def register(sub: Any, common: argparse.ArgumentParser, mode: argparse.ArgumentParser) -> None:
    """Add ``decrypt`` and ``decrypt-tree`` to the CLI's subcommands."""
    keyed = argparse.ArgumentParser(add_help=False)
    add_key_options(keyed)
    s = sub.add_parser("decrypt", parents=[common, mode, keyed],
                       help="decrypt a raw stream (or an encrypted file on an ntfs-3g efs_raw "
                            "mount) with a private key, without Windows")
    s.add_argument("src", metavar="SRC", help="raw stream, encrypted file, or - for stdin")
    s.add_argument("dest", metavar="DEST",
                   help="plaintext file (named streams become DEST:name), or - for standard "
                        "output (the unnamed stream only)")
    s.add_argument("--directory", action="store_true",
                   help="make DEST a folder (the default for streams without data)")
    s.set_defaults(func=cmd_decrypt)
    s = sub.add_parser("decrypt-tree", parents=[common, mode, keyed],
                       help="decrypt a backup set (each object checked against its "
                            "manifest), a folder of .efsraw files or an efs_raw tree into a "
                            "plaintext tree")
    s.add_argument("src", metavar="SRC_DIR", help="a set folder, s3://BUCKET/PREFIX, a folder "
                   "of .efsraw files or an efs_raw tree")
    s.add_argument("dest", metavar="DEST_DIR")
    s.add_argument("--workers", type=workers(), default=None, help="parallel workers")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--skip-existing", action="store_true",
                   help="leave plaintext files that are already there alone (resume)")
    s.add_argument("--partial", action="store_true",
                   help="decrypt what an incomplete backup set (one whose backup did not "
                        "finish) lists, each object checked")
    add_with_option(s)
    add_no_sync(s, "the plaintext")
    s.set_defaults(func=cmd_decrypt_tree)
