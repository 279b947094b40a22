"""backup-tree and restore-tree: backup sets with manifests, tar streams on
``-``, s3:// sets, and manifest-less folders of .efsraw files."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys

from .._errors import RefusedError
from .options import (STDIO, add_jobs_option, add_no_sync, add_with_option, backend_from,
                      is_s3, store_options)
from .output import (ExitCode, fail, failure, quieten_stdout, refuse, report_tree,
                     require_folder, tree_summary)
from .progress import Progress, ctrl_c_cancels

TYPE_CHECKING = False           # as in efsfast/__init__.py: no typing import at start-up
if TYPE_CHECKING:
    from typing import Any, Dict

    from ..store import Store
    from ..tree import TreeResult


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
    add_with_option(restore)
    restore.add_argument("--partial", action="store_true",
                         help="restore what an incomplete set (one whose backup did not "
                              "finish) lists, each object checked like any set's")
    add_no_sync(restore)
    for s in (backup, restore):
        add_jobs_option(s)


def register(sub: Any, tree_common: argparse.ArgumentParser) -> None:
    """Add restore-tree and backup-tree (``tree_common``: their shared options)."""
    rs = sub.add_parser("restore-tree", parents=[tree_common],
                        help="restore a backup set (folder, or - for a tar stream on stdin) "
                             "into a tree")
    rs.add_argument("src", metavar="SET", help="set folder, or - to read a tar stream")
    rs.add_argument("dest", metavar="DEST_DIR")
    rs.set_defaults(func=cmd_restore_tree)
    bs = sub.add_parser("backup-tree", parents=[tree_common],
                        help="back up every encrypted file and folder of a tree as a backup "
                             "set (.efsraw files and a manifest)")
    bs.add_argument("src", metavar="SRC_DIR")
    bs.add_argument("dest", metavar="SET", help="set folder, or - for a tar stream on stdout")
    bs.set_defaults(func=cmd_backup_tree)
    add_set_options(bs, rs)


def cmd_restore_tree(args: argparse.Namespace) -> int:
    return _tree(args, True)


def cmd_backup_tree(args: argparse.Namespace) -> int:
    return _tree(args, False)


def _tree(args: argparse.Namespace, restore: bool) -> int:
    label = "restore" if restore else "backup"
    refused = require_folder(args, args.src)     # a mistyped SRC_DIR is a usage error
    if refused is not None:
        return refused
    bar = Progress(label, 0, not args.json and not args.quiet)
    args.backend = backend_from(args)
    with ctrl_c_cancels(args.program) as token:
        args.cancel = token
        if args.src != "-":
            bar.scanning(args.src)
        try:
            return restore_tree(args, bar) if restore else backup_tree(args, bar)
        except RefusedError as exc:          # refused before any work: nothing was done
            bar.close()
            return fail(args, exc, ExitCode.REFUSED)
        except BrokenPipeError as exc:       # the reader of the tar stream went away
            bar.close()
            quieten_stdout()
            return fail(args, exc, ExitCode.FAILED, STDIO)
        except OSError as exc:               # the destination cannot be written, ...
            bar.close()
            return fail(args, exc, ExitCode.FAILED)
        finally:
            bar.close()


def _open_sink_store(url: str, args: argparse.Namespace) -> Store:
    from ..backupset.s3sink import refused
    from ..store import StoreError, open_store
    try:
        return open_store(url, **store_options(args))
    except StoreError as exc:           # no client library, a malformed URL, ...
        raise refused(exc) from None


def tree_extra(r: Any, backup: bool, folder: bool = True) -> Dict[str, Any]:
    """The record's fields past done/failed/not_done (output.tree_summary)."""
    return tree_summary(r, backup, folder)


def _interrupted(args: argparse.Namespace, kind: str, exc: KeyboardInterrupt,
                 progress: Progress) -> int:
    """Ctrl-C: the account of what was done (the tree jobs attach it)."""
    from ..api import BulkResult
    from ..tree import TreeResult
    r = getattr(exc, "tree", None)
    if r is None:
        r = TreeResult(getattr(exc, "result", None) or BulkResult(results=[]))
    if kind == "restore-tree":      # what it counts as done is on stable storage too
        _sync(args, r)
    progress.close()
    return report_tree(args, kind, r, tree_extra(r, kind == "backup-tree", args.dest != STDIO),
                       interrupted=True)


def _sync(args: argparse.Namespace, r: TreeResult) -> None:
    from ..tree import sync_restored
    from ..volume import default_workers
    if not args.no_sync and os.path.isdir(args.dest):
        # as many as wrote: the restore's own default where none was asked for
        sync_restored(r, args.dest, workers=args.workers or default_workers(args.dest))


def _truncated(args: argparse.Namespace, exc: Any, progress: Progress) -> int:
    """A stream that ended early: the error, then the account of the objects
    it did restore (whole, and left in place); exit 1."""
    progress.close()
    r = exc.tree
    if r is None:
        return fail(args, exc, ExitCode.FAILED, STDIO)
    print(f"efsfast: {exc.strerror}", file=sys.stderr)
    extra = tree_extra(r, False)
    extra["truncated"] = exc.strerror
    extra["notes"] = extra.get("notes", []) + [
        "the stream ended early: restored only the objects before that"]
    _sync(args, r)              # what it restored whole is on stable storage too
    return report_tree(args, "restore-tree", r, extra, failed=failure(exc, STDIO))


def backup_tree(args: argparse.Namespace, progress: Progress) -> int:
    """backup-tree SRC DEST|-: a folder set, or a tar stream on stdout."""
    from ..backupset.sinks import FolderSink, TarSink
    from ..backupset.writer import backup_set
    to_stdout = args.dest == STDIO
    args.data_on_stdout = to_stdout     # the record then goes to stderr
    if to_stdout and args.skip_existing:
        progress.close()            # (its "scanning" line)
        return refuse(args, "--skip-existing needs a folder set, not -", "--skip-existing")
    if to_stdout and sys.stdout.isatty():
        progress.close()
        return refuse(args, "refusing to write a tar stream to a terminal (pipe it, or name "
                            "a folder)", path=STDIO)
    sink: Any
    if is_s3(args.dest):
        from ..backupset.s3sink import StoreSink
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
            return _interrupted(args, "backup-tree", exc, progress)
        finally:
            if is_s3(args.dest):
                sink.objects.close()
        progress.close()
        # a set left incomplete is not done, even with no failed item
        failed = None if r.complete else {
            "path": args.dest, "error": f"the set is incomplete ({r.reason})",
            "kind": "error", "errno": None, "winerror": None}   # (messages.ErrorKind.ERROR)
        return report_tree(args, "backup-tree", r, tree_extra(r, True, not to_stdout),
                           failed=failed)


def restore_tree(args: argparse.Namespace, progress: Progress) -> int:
    """restore-tree SRC|- DEST: a set with a manifest (planned from it), a
    tar stream on stdin, or a manifest-less folder of .efsraw files."""
    from ..backupset.setfiles import has_manifest
    opts = dict(overwrite=args.overwrite, skip_existing=args.skip_existing,
                progress=progress, backend=args.backend, cancel=getattr(args, "cancel", None))
    set_opts = dict(metadata=not args.no_metadata, acl=not args.no_acl, sets=args.sets)
    r: Any
    try:
        if args.src == STDIO:
            if sys.stdin.isatty():
                return refuse(args, "restore-tree - reads a tar stream from standard input, "
                                    "which is a terminal", path=STDIO)
            from ..backupset.restore import TruncatedStreamError
            from ..backupset.streamrestore import restore_stream
            try:
                r = restore_stream(sys.stdin.buffer, args.dest, **opts, **set_opts)
            except TruncatedStreamError as exc:
                return _truncated(args, exc, progress)
        elif is_s3(args.src):
            from ..backupset.storeread import restore_store_set
            r = restore_store_set(args.src, args.dest, workers=args.workers, **opts,
                                  **set_opts, partial=args.partial, **store_options(args))
        elif has_manifest(args.src):     # complete, or incomplete (refused)
            from ..backupset.restore import restore_set
            r = restore_set(args.src, args.dest, workers=args.workers, **opts,
                                 **set_opts, partial=args.partial)
        else:
            from .. import tree
            r = tree.restore_tree(args.src, args.dest, workers=args.workers, **opts)
    except KeyboardInterrupt as exc:
        return _interrupted(args, "restore-tree", exc, progress)
    _sync(args, r)
    progress.close()
    return report_tree(args, "restore-tree", r, tree_extra(r, False))
