"""The command-line side of backup sets: backup-tree and restore-tree with
manifests, tar streams on ``-``, and verify-set.  cli.py parses; these run."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Callable

from .. import tree
from ..api import BulkResult
from . import restore as _restore

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
STDIO = "-"


def add_set_options(backup: argparse.ArgumentParser, restore: argparse.ArgumentParser) -> None:
    backup.add_argument("--no-metadata", action="store_true",
                        help="leave times, attributes and security descriptors out of the "
                             "manifest")
    backup.add_argument("--since", metavar="PREVIOUS_SET", default=None,
                        help="incremental: copy only objects whose change time, size or $EFS "
                             "differ from PREVIOUS_SET's manifest")
    restore.add_argument("--no-metadata", action="store_true",
                         help="restore content only: no times, attributes or security "
                              "descriptors")
    restore.add_argument("--no-acl", action="store_true",
                         help="restore times and attributes but not security descriptors")
    restore.add_argument("--with", dest="sets", metavar="SET", action="append", default=[],
                         help="an earlier set an incremental set refers to (repeatable; "
                              "by default the path each reference recorded)")
    restore.add_argument("--partial", action="store_true",
                         help="restore what an incomplete set (one whose backup did not "
                              "finish) lists, each object checked like any set's")
    add_no_sync(restore)
    for s in (backup, restore):
        add_jobs_option(s)


def add_no_sync(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-sync", action="store_true",
                   help="do not wait for what was written to reach stable storage before the "
                        "summary (faster; a power cut may then lose it)")


def add_jobs_option(s: argparse.ArgumentParser) -> None:
    s.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="s3:// sets: requests in flight at once (default 16)")
    s.add_argument("--memory-mib", type=int, default=None, metavar="MIB",
                   help="s3:// sets: bytes held for transfers at once (default 256 MiB; at "
                        "least 8)")


def store_options(args) -> dict:
    """The object store's options from the command line."""
    out = {}
    if getattr(args, "jobs", None) is not None:
        out["jobs"] = max(1, args.jobs)
    if getattr(args, "memory_mib", None) is not None:
        out["memory_limit"] = max(8, args.memory_mib) << 20
    return out


def _open_sink_store(url: str, args):
    from ..store import StoreError, open_store
    from .s3sink import refused
    try:
        return open_store(url, **store_options(args))
    except StoreError as exc:           # no client library, a malformed URL, ...
        raise refused(exc) from None


def _extra(r, backup: bool, folder: bool = True) -> dict:
    """The summary's fields past the counts; ``notes`` are lines the text
    summary prints as they are."""
    extra = {"directories": r.directories, "skipped (already there)": r.existing}
    if backup:
        extra["skipped (not encrypted)"] = r.skipped
    if getattr(r, "set_id", ""):
        extra["unchanged (in earlier sets)"] = r.unchanged
        if not backup:      # restored objects whose size and SHA-256 matched the manifest
            extra["verified"] = r.verified
        extra["set"] = r.set_id
    notes = []
    complete = getattr(r, "complete", None)
    if backup and complete is not None:
        extra["complete"] = complete
        if not complete:
            extra["incomplete"] = r.reason
            notes.append(f"the set is incomplete ({r.reason})" + (
                ": resume it with backup-tree --skip-existing" if folder else ""))
    elif complete is False:         # restore-tree --partial
        extra["complete"] = False
        notes.append("an incomplete set: restored only what it lists")
    elif complete is None and not backup:
        extra["verified"] = False   # a folder of raw streams with no manifest
        notes.append("not verified: no manifest")
    if notes:
        extra["notes"] = notes
    return extra


def _interrupted(report, args, kind: str, exc: KeyboardInterrupt) -> int:
    """Ctrl-C: the account of what was done (the tree jobs attach it)."""
    r = getattr(exc, "tree", None)
    if r is None:
        r = tree.TreeResult(getattr(exc, "result", None) or BulkResult(results=[]))
    if kind == "restore-tree":      # what it counts as done is on stable storage too
        _sync(args, r)
    return report(args, kind, r, _extra(r, kind == "backup-tree", args.dest != STDIO),
                  interrupted=True)


def _sync(args, r) -> None:
    if not args.no_sync and os.path.isdir(args.dest):
        tree.sync_restored(r, args.dest)


def _truncated(report, args, exc) -> int:
    """A stream that ended early: the error, then the account of the objects
    it did restore (whole, and left in place); exit 1."""
    print(f"efsfast: {exc.strerror}", file=sys.stderr)
    r = exc.tree
    if r is None:
        return EXIT_FAILED
    extra = _extra(r, False) | {"truncated": exc.strerror, "notes": [
        "the stream ended early: restored only the objects before that"]}
    _sync(args, r)              # what it restored whole is on stable storage too
    report(args, "restore-tree", r, extra)
    return EXIT_FAILED


def backup_tree(args, progress, report: Callable) -> int:
    """backup-tree SRC DEST|-: a folder set, or a tar stream on stdout."""
    from .sinks import FolderSink, TarSink
    from .writer import backup_set
    to_stdout = args.dest == STDIO
    if to_stdout and args.skip_existing:
        print("efsfast: --skip-existing needs a folder set, not -", file=sys.stderr)
        return EXIT_USAGE
    if to_stdout and sys.stdout.isatty():
        print("efsfast: refusing to write a tar stream to a terminal (pipe it, or name a "
              "folder)", file=sys.stderr)
        return EXIT_USAGE
    from ..store import is_s3_url
    if is_s3_url(args.dest):
        from .s3sink import StoreSink
        sink = StoreSink(_open_sink_store(args.dest, args), overwrite=args.overwrite)
    else:
        sink = TarSink(sys.stdout.buffer) if to_stdout else FolderSink(
            args.dest, overwrite=args.overwrite)
    # the summary goes to stderr when stdout carries the set
    with contextlib.redirect_stdout(sys.stderr) if to_stdout else contextlib.nullcontext():
        try:
            r = backup_set(args.src, sink, workers=args.workers,
                           skip_existing=args.skip_existing, metadata=not args.no_metadata,
                           since=args.since, progress=progress, backend=args.backend,
                           cancel=getattr(args, "cancel", None))
        except KeyboardInterrupt as exc:
            return _interrupted(report, args, "backup-tree", exc)
        finally:
            if is_s3_url(args.dest):
                sink.objects.close()
        code = report(args, "backup-tree", r, _extra(r, True, not to_stdout))
        return EXIT_FAILED if code == EXIT_OK and not r.complete else code


def restore_tree(args, progress, report: Callable) -> int:
    """restore-tree SRC|- DEST: a set with a manifest (planned from it), a
    tar stream on stdin, or a manifest-less folder of .efsraw files."""
    opts = dict(overwrite=args.overwrite, skip_existing=args.skip_existing,
                progress=progress, backend=args.backend, cancel=getattr(args, "cancel", None))
    set_opts = dict(metadata=not args.no_metadata, acl=not args.no_acl, sets=args.sets)
    try:
        if args.src == STDIO:
            if sys.stdin.isatty():
                print("efsfast: restore-tree - reads a tar stream from standard input, "
                      "which is a terminal", file=sys.stderr)
                return EXIT_USAGE
            from .streamrestore import restore_stream
            try:
                r = restore_stream(sys.stdin.buffer, args.dest, **opts, **set_opts)
            except _restore.TruncatedStreamError as exc:
                return _truncated(report, args, exc)
        elif _is_url(args.src):
            from .storeread import restore_store_set
            r = restore_store_set(args.src, args.dest, workers=args.workers, **opts,
                                  **set_opts, partial=args.partial, **store_options(args))
        elif _restore.has_manifest(args.src):     # complete, or incomplete (refused)
            r = _restore.restore_set(args.src, args.dest, workers=args.workers, **opts,
                                     **set_opts, partial=args.partial)
        else:
            r = tree.restore_tree(args.src, args.dest, workers=args.workers, **opts)
    except KeyboardInterrupt as exc:
        return _interrupted(report, args, "restore-tree", exc)
    _sync(args, r)
    return report(args, "restore-tree", r, _extra(r, False))


def verify_set_cmd(args) -> int:
    from .streamverify import verify_stream
    from .verify import verify_set
    prove = None
    if args.key:
        try:
            prove = _decryptability_proof(args)
        except (ImportError, ValueError) as exc:    # no `cryptography`; an unusable key file
            print(f"efsfast: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if prove is None:
            print("efsfast: verify-set --key needs decryption support (efsfast.crypto), which "
                  "this build does not have", file=sys.stderr)
            return EXIT_USAGE
    if _is_url(args.set):
        if prove is not None:
            print("efsfast: verify-set --key needs a folder set (the proof reads each object "
                  "by name)", file=sys.stderr)
            return EXIT_USAGE
        from .._errors import RefusedError
        from .storeread import verify_store_set
        try:
            r = verify_store_set(args.set, mode=args.mode, sets=args.sets,
                                 **store_options(args))
        except RefusedError as exc:     # the store cannot be used: nothing was checked
            print(f"efsfast: {exc.strerror}: {exc.filename}", file=sys.stderr)
            return EXIT_USAGE
    elif args.set == STDIO:
        if prove is not None:
            print("efsfast: verify-set --key needs a folder set (the proof reads each object "
                  "by name)", file=sys.stderr)
            return EXIT_USAGE
        r = verify_stream(sys.stdin.buffer, mode=args.mode, sets=args.sets)
    else:
        r = verify_set(args.set, mode=args.mode, sets=args.sets, prove=prove)
    if args.json:
        print(json.dumps({"set": r.set_dir, "set_id": r.set_id, "ok": r.ok,
                          "complete": r.complete,
                          "objects_verified": r.objects, "bytes": r.bytes,
                          "problems": [{"path": p.path, "problem": p.message}
                                       for p in r.problems]}, indent=2))
    else:
        for p in r.problems:
            print(f"{p.path}: {p.message}")
        print(f"verify-set {r.set_dir}: " + (
            f"OK, {r.objects} objects ({r.bytes / 1e6:.1f} MB) as written"
            + (", each decryptable with the given key(s)" if prove else "")
            if r.ok else f"{len(r.problems)} problem(s); {r.objects} objects verified"))
    return EXIT_OK if r.ok else EXIT_FAILED


def _decryptability_proof(args):
    """The decryptability proof of ``verify --key`` as a batch
    check: paths -> per path None (decryptable) or why not.  None where this
    build has no decryption."""
    try:
        from ..crypto.cli import password_source
        from ..crypto.keys import load_keys
        from ..crypto.verify import check_many
    except ModuleNotFoundError:
        return None
    keys = load_keys(args.key, password=password_source(args))

    def prove(paths):
        return [None if p.ok else ("; ".join(p.reasons) or p.error or "no key opens it")
                for p in check_many(paths, keys, mode=args.mode)]
    return prove


def _add_key_options(s: argparse.ArgumentParser) -> None:
    try:
        from ..crypto.cli import add_key_options     # --key and its password options
    except ImportError:
        s.add_argument("--key", action="append", metavar="KEYFILE",
                       help="also prove every object decrypts with this key (needs decryption support)")
        return
    add_key_options(s)


def add_verify_set(sub, mode_parent) -> None:
    s = sub.add_parser("verify-set", parents=[mode_parent],
                       help="check a backup set: manifest intact, every object present with "
                            "its SHA-256, every stream valid, nothing unlisted")
    s.add_argument("set", metavar="SET", help="set folder, or - to read a tar stream")
    s.add_argument("--with", dest="sets", metavar="SET", action="append", default=[],
                   help="an earlier set an incremental set refers to (repeatable)")
    _add_key_options(s)
    s.add_argument("--json", action="store_true", help="machine-readable output")
    add_jobs_option(s)
    s.set_defaults(func=verify_set_cmd)


def _is_url(name: str) -> bool:
    from ..store import is_s3_url
    return is_s3_url(name)
