"""restore, backup and restore_many: the raw-EFS calls made safe and fast.

A buffer source (bytes, bytearray, memoryview, mmap, numpy, ...) is copied
into each system buffer by a C trampoline with the GIL released; a path or a
file descriptor is read straight into it, also without the GIL.  Other
sources go through a Python fallback.  See DESIGN.md, "The import hot path".
"""
from __future__ import annotations

import os
from typing import (Any, Callable, Dict, Iterable, List, Optional, Tuple, Union,
                    overload)

from . import _core, _winfs
from ._errors import CancelledError, EfsError, RawFormatError, as_efs_error
# the result types are part of this module's API; the runner is shared with the tree,
# set and decryption jobs
from .bulkjob import BackupResult as BackupResult
from .bulkjob import BulkRestoreError as BulkRestoreError
from .bulkjob import BulkResult as BulkResult
from .bulkjob import ItemError as ItemError
from .bulkjob import Progress as Progress
from .bulkjob import RestoreResult as RestoreResult
from .bulkjob import SafeProgress as _Progress
from .bulkjob import close_result as _close
from .bulkjob import run_many as _run_many
from .bulkjob import run_on_threads as _run_threads
from .bulkjob import watch_ctrl_c as _watch_ctrl_c
from .newfile import publish_no_replace, refuse_existing

ERROR_FILE_EXISTS = 80
BACKUP_EXISTS = "the backup file exists (pass overwrite=True to replace it)"
DEST_EXISTS = "the destination exists (pass overwrite=True to replace it)"
PathLike = Union[str, "os.PathLike[str]"]


def _backend(backend: Optional[_core.Backend]) -> _core.Backend:
    return backend if backend is not None else _core.default_backend()


def restore(dest: PathLike, source: Any, *, directory: bool = False, overwrite: bool = False,
            backend: Optional[_core.Backend] = None, cancel: Optional[_core.CancelToken] = None,
            drop_alternate_streams: bool = False, callback_context: Any = None,
            expect: Optional[Tuple[int, Union[str, bytes]]] = None) -> RestoreResult:
    """Restore the raw stream ``source`` as the encrypted file (or, with
    ``directory=True``, directory) ``dest``.

    ``source``: a bytes-like object (C path, no GIL), a path or a file
    descriptor (read into the system buffer without the GIL), an object with
    ``readinto`` or ``read``, an iterable of byte chunks, or a pywin32-style
    ImportCallback ``f(data, callback_context, length) -> (code, written)``.

    An existing ``dest`` is never replaced unless ``overwrite=True``, and then
    the old file stays whole until its replacement is complete.  A stream that
    breaks the format raises :class:`efsfast.RawFormatError` and leaves nothing
    behind; an exception raised by ``source`` propagates as itself.

    ``expect=(size, sha256)`` (a backup set's manifest line; the hash as hex)
    checks the stream as it passes: one that differs raises
    :class:`efsfast.ObjectMismatchError` naming both hashes, and nothing is
    published (the check is decided when the source ends, before the
    destination takes its name).
    """
    _watch_ctrl_c()
    be = _backend(backend)
    dest = os.fspath(dest)
    flags = _core.CREATE_FOR_IMPORT
    if directory:
        flags |= _core.CREATE_FOR_DIR
    if drop_alternate_streams:
        flags |= _core.EFS_DROP_ALTERNATE_STREAMS_FLAG
    if not overwrite:
        refuse_existing(dest, DEST_EXISTS)
        flags |= _core.NO_REPLACE if isinstance(be, _core.PosixBackend) else 0
    else:
        flags |= _core.OVERWRITE_HIDDEN
    # advapi32 creates the destination at open and leaves a failed import
    # behind: restore under a temporary name, move it into place when complete
    # (_winfs); the context is closed before a temporary is removed, since
    # Windows cannot delete an open file
    target = _winfs.import_target(dest, directory, overwrite) \
        if isinstance(be, _core.Win32Backend) else dest
    try:
        with _core.open_raw(target, flags, be) as raw:
            nbytes, calls = _core.write_raw(raw, source, cancel, callback_context,
                                            expect=expect)
    except OSError as exc:
        if target != dest:
            _remove_quietly(target)
        raise source_error(exc, source, dest) from None
    except BaseException:
        if target != dest:
            _remove_quietly(target)
        raise
    if target != dest:
        _winfs.publish(target, dest, overwrite)
    return RestoreResult(dest, nbytes, calls)


_temp_name = _winfs.temp_beside
_remove_quietly = _winfs.remove_quietly


def source_error(exc: OSError, source: Any, dest: str) -> OSError:
    """Point an error met while reading ``source`` the right way: a format
    error names the raw stream (its path, where it has one), never the
    destination, which was left as it was; a source that cannot be opened or
    read is an EfsError of the standard kind (FileNotFoundError, ...)."""
    src = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
    if isinstance(exc, RawFormatError):
        exc.filename = src
        exc.dest = dest
        return exc
    if not isinstance(exc, EfsError):
        return as_efs_error(exc, exc.filename if exc.filename is not None else src)
    return exc


@overload
def backup(path: PathLike, sink: None = None, *, directory: bool = False,
           backend: Optional[_core.Backend] = None, overwrite: bool = False,
           cancel: Optional[_core.CancelToken] = None, callback_context: Any = None,
           digest: Any = None) -> bytes: ...
@overload
def backup(path: PathLike, sink: Any, *, directory: bool = False,
           backend: Optional[_core.Backend] = None, overwrite: bool = False,
           cancel: Optional[_core.CancelToken] = None, callback_context: Any = None,
           digest: Any = None) -> BackupResult: ...


def backup(path: PathLike, sink: Any = None, *, directory: bool = False,
           backend: Optional[_core.Backend] = None, overwrite: bool = False,
           cancel: Optional[_core.CancelToken] = None, callback_context: Any = None,
           digest: Any = None) -> Union[bytes, BackupResult]:
    """Back up the encrypted file (or directory) ``path`` as its raw stream.

    With no ``sink`` the stream is returned as bytes.  A path sink is written
    under a temporary name and renamed when complete (an existing file is
    kept unless ``overwrite=True``); a file descriptor, a writable buffer, a
    bytearray (extended) or an :class:`ExportBuffer` (memory of its own, read
    through the buffer protocol) is written from C without the GIL; an object with
    ``write`` or a pywin32-style ExportCallback goes through the fallback.

    ``digest`` (a hashlib object, with a path sink, an ExportBuffer or none) is fed every byte
    of the stream as it is written: the hash costs no second pass.
    """
    _watch_ctrl_c()
    be = _backend(backend)
    path = os.fspath(path)
    flags = _core.CREATE_FOR_DIR if directory else 0
    if digest is not None and sink is not None and not isinstance(
            sink, (str, os.PathLike, _core.ExportBuffer)):
        raise TypeError("digest goes with a path sink, an ExportBuffer or none")
    if isinstance(sink, (str, os.PathLike)) and not overwrite:
        refuse_existing(os.fspath(sink), BACKUP_EXISTS)
    with _core.open_raw(path, flags, be) as raw:
        out: Union[bytes, BackupResult] = export_opened(
            raw, sink, overwrite=overwrite, cancel=cancel, callback_context=callback_context,
            digest=digest)
        return out


@overload
def export_opened(raw: _core.RawContext, sink: None = None, *, overwrite: bool = False,
                  cancel: Optional[_core.CancelToken] = None, callback_context: Any = None,
                  digest: Any = None, sync: bool = False) -> bytes: ...
@overload
def export_opened(raw: _core.RawContext, sink: Any, *, overwrite: bool = False,
                  cancel: Optional[_core.CancelToken] = None, callback_context: Any = None,
                  digest: Any = None, sync: bool = False) -> BackupResult: ...


def export_opened(raw: _core.RawContext, sink: Any = None, *, overwrite: bool = False,
                  cancel: Optional[_core.CancelToken] = None, callback_context: Any = None,
                  digest: Any = None, sync: bool = False) -> Union[bytes, BackupResult]:
    """:func:`backup` of an object already opened for export (``raw``): a
    backup set reads the object's metadata through the same context first.
    ``sync`` (a path sink): the file is fsynced before it gets its name."""
    path = os.fspath(raw.path)
    if isinstance(sink, (str, os.PathLike)):
        return _backup_to_path(raw, os.fspath(sink), overwrite, cancel, digest, sync)
    nbytes, calls, data = _core.read_raw(raw, sink, cancel, callback_context)
    if digest is not None and isinstance(sink, _core.ExportBuffer):
        digest.update(sink)         # (the whole stream, in memory of its own)
    if sink is None:
        assert data is not None     # read_raw returns the stream when there is no sink
        if digest is not None:
            digest.update(data)     # hashlib releases the GIL for large updates
        return data
    return BackupResult(path, nbytes, calls)


class _DigestingFd:
    """A write() sink for the export fallback: hashes each system buffer,
    then writes all of it to ``fd`` (hashlib and os.write both run without
    the GIL on buffers this size)."""

    def __init__(self, fd: int, digest: Any):
        self.fd = fd
        self.digest = digest

    def write(self, view: memoryview) -> int:
        self.digest.update(view)
        n, total = 0, len(view)
        while n < total:
            n += os.write(self.fd, view[n:] if n else view)
        return total


def _backup_to_path(raw: _core.RawContext, out: str, overwrite: bool,
                    cancel: Optional[_core.CancelToken], digest: Any = None,
                    sync: bool = False) -> BackupResult:
    path = os.fspath(raw.path)
    if not overwrite:
        refuse_existing(out, BACKUP_EXISTS)
    tmp = _temp_name(out)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)
    except OSError as exc:          # name the destination, not the temporary name
        raise as_efs_error(exc, out) from None
    try:                            # (no bytecode between the open and here takes a signal)
        try:
            sink = fd if digest is None else _DigestingFd(fd, digest)
            nbytes, calls, _ = _core.read_raw(raw, sink, cancel)
            if sync:                # durable before it has its name
                os.fsync(fd)
        except EfsError:
            raise
        except OSError as exc:      # writing the backup file (a full disk): name it
            raise as_efs_error(exc, out) from None
        finally:
            os.close(fd)
        try:
            if overwrite:
                os.replace(tmp, out)
            else:
                _publish_no_replace(tmp, out)
        except EfsError:
            raise
        except OSError as exc:
            raise as_efs_error(exc, out) from None
    except BaseException:
        _remove_quietly(tmp)
        raise
    return BackupResult(path, nbytes, calls)


def _publish_no_replace(tmp: str, out: str) -> None:
    """Give ``tmp`` the name ``out`` unless that exists (newfile's rule)."""
    publish_no_replace(tmp, out, BACKUP_EXISTS)


# ---------------------------------------------------------------- bulk restore

Job = Union[Tuple[PathLike, Any], Tuple[PathLike, Any, Dict[str, Any]]]


def restore_many(jobs: Iterable[Job], *, workers: Optional[int] = None, overwrite: bool = False,
                 progress: Optional[Callable[[int, int, int], None]] = None,
                 cancel: Optional[_core.CancelToken] = None, fail_fast: bool = False,
                 backend: Optional[_core.Backend] = None) -> BulkResult:
    """Restore many ``(dest, source)`` (or ``(dest, source, options)``) jobs
    with ``workers`` threads running the C path in parallel.  The options are
    :func:`restore`'s keywords; ``{"expect": (size, sha256)}`` checks an
    item against a manifest line, in the worker, as its bytes pass.

    Every item gets its own result or error (with its index and destination);
    one failure does not stop the others unless ``fail_fast``.  ``progress``
    is called as ``progress(files_done, bytes_done, files_total)`` as items
    finish.  Ctrl-C (or ``cancel``) stops the running items within one system
    buffer, removes what was partial and skips the rest; Ctrl-C then raises
    KeyboardInterrupt, whose ``result`` attribute holds what was done.
    """
    be = _backend(backend)
    jobs = list(jobs)
    fast = _restore_many_c(jobs, be, workers, overwrite, progress, cancel, fail_fast)
    if fast is not None:
        return fast

    def one(dest: PathLike, source: Any, opts: Dict[str, Any],
            token: _core.CancelToken) -> RestoreResult:
        opts.setdefault("overwrite", overwrite)
        return restore(dest, source, backend=opts.pop("backend", be), cancel=token, **opts)
    return _run_many(jobs, one, workers=workers, progress=progress, cancel=cancel,
                     fail_fast=fail_fast)


def restore_set_files(files: _core.SetFiles, *, workers: Optional[int] = None,
                      overwrite: bool = False, progress: Optional[Progress] = None,
                      cancel: Optional[_core.CancelToken] = None,
                      backend: Optional[_core.Backend] = None) -> BulkResult:
    """:func:`restore_many` of a backup set's files as ``files`` holds them
    (jobs ``files.pairs``, each checked against its manifest line), made
    into the C batch from its rows without a Python step per item."""
    be = _backend(backend)
    if not isinstance(be, _core.Win32Backend):
        fast = _restore_many_c(files.pairs, be, workers, overwrite, progress, cancel, False,
                               files)
        if fast is not None:
            return fast
    return restore_many(files.jobs(), workers=workers, overwrite=overwrite, progress=progress,
                        cancel=cancel, backend=be)


_C_OPTIONS = frozenset({"directory", "overwrite", "drop_alternate_streams", "expect"})
# sources restore_many hands to C as they are (paths: the POSIX side opens them)
_BUFFER_TYPES = frozenset((bytes, bytearray, memoryview) + ((str,) if _core.HAVE_POSIX else ()))


def _c_source(source: Any) -> bool:
    if isinstance(source, (str, os.PathLike)):
        return _core.HAVE_POSIX          # opened in C; Windows paths take the Python path
    if isinstance(source, (int, bool)):
        return False
    try:
        memoryview(source).release()
    except TypeError:
        return False
    return True


def _restore_many_c(jobs: List[Any], be: _core.Backend, workers: Optional[int], overwrite: bool,
                    progress: Optional[Progress], cancel: Optional[_core.CancelToken],
                    fail_fast: bool,
                    prepared: Optional[_core.SetFiles] = None) -> Optional[BulkResult]:
    """restore_many with every item's work in C (buffers and paths), or None
    when some job needs the Python path (custom sources, other options);
    ``prepared``: the batch's jobs as a set's files (``jobs`` their pairs)."""
    posix = isinstance(be, _core.PosixBackend)
    plain_flags = _core.CREATE_FOR_IMPORT | (
        _core.OVERWRITE_HIDDEN if overwrite else (_core.NO_REPLACE if posix else 0))
    token = cancel if cancel is not None else _core.CancelToken()
    # the common cases, (dest, buffer or path) and a set's (dest, path,
    # {"expect": line}), taken in C without a Python step per item; advapi32
    # takes every item through a temporary name (see _winfs)
    batch: Optional[_core.BulkRestore]
    if prepared is not None:
        batch = prepared.bulk(be, token, fail_fast, plain_flags)
    else:
        batch = (_core.plain_bulk_restore(jobs, be, token, fail_fast, plain_flags)
                 if not isinstance(be, _core.Win32Backend) else None)
    temps: List[Optional[str]] = [None] * len(jobs)
    if batch is None:
        c_jobs = _c_jobs(jobs, be, overwrite, plain_flags)
        if c_jobs is None:
            return None
        if isinstance(be, _core.Win32Backend):
            for i, (d, _s, f, _e) in enumerate(c_jobs):
                t = _winfs.import_target(os.fspath(d), bool(f & _core.CREATE_FOR_DIR),
                                         bool(f & _core.OVERWRITE_HIDDEN))
                temps[i] = None if t == os.fspath(d) else t
            c_jobs = [(t or d, s, f, e) for (d, s, f, e), t in zip(c_jobs, temps)]
        batch = _core.BulkRestore(c_jobs, be, token, fail_fast)
    _watch_ctrl_c()
    interrupted, report, seen = _run_batch(batch, len(jobs), workers, token, progress)
    if any(temps):
        result = BulkResult(results=[None] * len(jobs))
        pending: Iterable[int] = range(len(jobs))
    else:       # every success taken in C; the rest one by one below
        results, files, nbytes, pending = batch.outcomes(jobs, RestoreResult)
        result = BulkResult(results=results, files=files, bytes=nbytes)
    results = result.results
    for i in pending:
        job = jobs[i]
        error, nbytes, calls = batch.outcome(i, job[0])
        tmp = temps[i]
        if tmp is not None and (error is not None or calls):
            ow = (job[2] if len(job) > 2 else {}).get("overwrite", overwrite)
            error = _publish_item(tmp, os.fspath(job[0]), error, ow)
        if error is None and nbytes == 0 and calls == 0:
            continue                    # never started (cancelled)
        if error is None:
            results[i] = RestoreResult(os.fspath(job[0]), nbytes, calls)
            result.files += 1
            result.bytes += nbytes
        elif not isinstance(error, CancelledError):     # cancelled: not done, not failed
            if isinstance(error, OSError):
                error = source_error(error, job[1], os.fspath(job[0]))
            result.failures.append(ItemError(i, os.fspath(job[0]), error))
    if (result.files, result.bytes) != seen():
        report(result.files, result.bytes, len(jobs))
    return _close(result, token, interrupted, len(jobs), report)


def _c_jobs(jobs: List[Any], be: _core.Backend, overwrite: bool,
            plain_flags: int) -> Optional[List[Tuple[Any, Any, int, Optional[Tuple[int, Any]]]]]:
    """``(dest, source, flags, expectation or None)`` per job for BulkRestore,
    or None when some job needs the Python path (custom sources, other
    options)."""
    c_jobs: List[Tuple[Any, Any, int, Optional[Tuple[int, Any]]]] = []
    posix = isinstance(be, _core.PosixBackend)
    for job in jobs:
        if len(job) == 2 and type(job[1]) in _BUFFER_TYPES:
            c_jobs.append((job[0], job[1], plain_flags, None))
            continue
        opts = job[2] if len(job) > 2 else {}
        if not _c_source(job[1]) or not _C_OPTIONS.issuperset(opts):
            return None
        ow = opts.get("overwrite", overwrite)
        flags = _core.CREATE_FOR_IMPORT
        flags |= _core.CREATE_FOR_DIR if opts.get("directory") else 0
        flags |= _core.EFS_DROP_ALTERNATE_STREAMS_FLAG if opts.get("drop_alternate_streams") else 0
        flags |= _core.OVERWRITE_HIDDEN if ow else (_core.NO_REPLACE if posix else 0)
        c_jobs.append((job[0], job[1], flags, opts.get("expect")))
    return c_jobs


def _run_batch(batch: Any, total: int, workers: Optional[int], token: _core.CancelToken,
               progress: Optional[Progress]) -> Tuple[bool, _Progress, Callable[[], Tuple[int, int]]]:
    """Run a C batch (BulkRestore, BulkExport) on the worker threads,
    reporting its progress as items finish: (whether the wait was
    interrupted, the safe progress callback, the last (files, bytes) it was
    given)."""
    seen = [(0, 0)]
    report = _Progress(progress, token)

    def tick() -> None:
        if batch.progress != seen[0]:
            seen[0] = batch.progress
            report(seen[0][0], seen[0][1], total)
    interrupted = _run_threads(batch.work, min(workers or os.cpu_count() or 1, total), token, tick)
    return interrupted, report, lambda: seen[0]


def _publish_item(tmp: str, dest: str, error: Optional[BaseException],
                  overwrite: bool) -> Optional[BaseException]:
    """Move one finished bulk item into place, or remove its temporary if it
    failed; returns the item's error (the publish's own, if that failed)."""
    if error is not None:
        _remove_quietly(tmp)
        return error
    try:
        _winfs.publish(tmp, dest, overwrite)
    except OSError as exc:
        return exc
    return None


def backup_many(jobs: Iterable[Job], *, workers: Optional[int] = None, overwrite: bool = False,
                progress: Optional[Callable[[int, int, int], None]] = None,
                cancel: Optional[_core.CancelToken] = None, fail_fast: bool = False,
                backend: Optional[_core.Backend] = None) -> BulkResult:
    """Back up many ``(path, sink)`` (or ``(path, sink, options)``) jobs in
    parallel; the mirror image of :func:`restore_many`.  Path sinks on the
    POSIX side run every item's work in C, without the GIL."""
    be = _backend(backend)
    jobs = list(jobs)
    fast = _backup_many_c(jobs, be, workers, overwrite, progress, cancel, fail_fast)
    if fast is not None:
        return fast

    def one(path: PathLike, sink: Any, opts: Dict[str, Any],
            token: _core.CancelToken) -> BackupResult:
        opts.setdefault("overwrite", overwrite)
        r = backup(path, sink, backend=opts.pop("backend", be), cancel=token, **opts)
        return r if isinstance(r, BackupResult) else BackupResult(os.fspath(path), len(r), 0, r)
    return _run_many(jobs, one, workers=workers, progress=progress, cancel=cancel,
                     fail_fast=fail_fast)


_C_BACKUP_OPTIONS = {"directory", "overwrite"}


def _backup_many_c(jobs: List[Any], be: _core.Backend, workers: Optional[int], overwrite: bool,
                   progress: Optional[Progress], cancel: Optional[_core.CancelToken],
                   fail_fast: bool) -> Optional[BulkResult]:
    """backup_many with every item's work in C (the POSIX side's one call
    per object, efs_posix_backup.c: export to a temporary beside the backup
    file, then publish it without replacing unless asked), so the calling
    thread holds the GIL only to hand out the items and collect the
    results; None when some job needs the Python path (other sinks or
    options, another backend)."""
    if not isinstance(be, _core.PosixBackend):
        return None
    _watch_ctrl_c()
    token = cancel if cancel is not None else _core.CancelToken()
    try:        # the common jobs, (object, backup file) pairs, as they are
        batch = _core.BulkExport(jobs, be, token, capture_ntfs=False, overwrite=overwrite,
                                 hash=False, fail_fast=fail_fast, pairs=True)
    except _core.NotPairs:
        general = _jobs_with_options(jobs, be, token, overwrite, fail_fast)
        if general is None:
            return None
        batch = general
    return _run_export(batch, jobs, be, token, workers, overwrite, progress, fail_fast)


def _jobs_with_options(jobs: List[Any], be: _core.PosixBackend, token: _core.CancelToken,
                       overwrite: bool, fail_fast: bool) -> Optional[_core.BulkExport]:
    """backup_many's batch where some job has options (or is not a pair):
    None where one needs the Python path (another sink, other options)."""
    path_types = (str, os.PathLike)
    # (object, backup file, temporary (None: named in C), flags, overwrite)
    c_jobs: List[Tuple[Any, Any, None, int, bool]] = []
    for job in jobs:
        if len(job) == 2 and type(job[0]) is str and type(job[1]) is str:
            c_jobs.append((job[0], job[1], None, 0, overwrite))     # the common case
            continue
        opts = job[2] if len(job) > 2 else {}
        if (not isinstance(job[0], path_types) or not isinstance(job[1], path_types)
                or set(opts) - _C_BACKUP_OPTIONS):
            return None
        flags = _core.CREATE_FOR_DIR if opts.get("directory") else 0
        c_jobs.append((job[0], job[1], None, flags, bool(opts.get("overwrite", overwrite))))
    return _core.BulkExport(c_jobs, be, token, capture_ntfs=False, overwrite=overwrite,
                            hash=False, fail_fast=fail_fast)


def _run_export(batch: _core.BulkExport, jobs: List[Any], be: _core.PosixBackend,
                token: _core.CancelToken, workers: Optional[int], overwrite: bool,
                progress: Optional[Progress], fail_fast: bool) -> BulkResult:
    """Run backup_many's batch and make its result."""
    interrupted, report, seen = _run_batch(batch, len(jobs), workers, token, progress)
    # every item backed up taken in C (BackupResults, as the Python path
    # gives them); the rest one by one below
    done, files, nbytes, pending = batch.outcomes(jobs, BackupResult)
    result = BulkResult(results=done, files=files, bytes=nbytes)
    results: List[Any] = result.results
    for i in pending:
        job = jobs[i]
        outcome, error, nbytes, calls = batch.result(i, job[0], job[1])
        if outcome == "not started":
            continue
        if outcome == "plain":
            # not encrypted: the error backup() gives, from backup() itself
            # (rare: it fails before it writes anything)
            try:    # (encrypted in between: backed up now, its result counts)
                opts = job[2] if len(job) > 2 else {}
                r = backup(job[0], job[1], directory=bool(opts.get("directory")), backend=be,
                           overwrite=bool(opts.get("overwrite", overwrite)), cancel=token)
                nbytes, calls = r.bytes, r.calls
            except BaseException as exc:    # each item gets its own error slot
                error = exc
        if error is None:
            results[i] = BackupResult(os.fspath(job[0]), nbytes, calls)
            result.files += 1
            result.bytes += nbytes
        elif not isinstance(error, CancelledError):     # cancelled: not done, not failed
            result.failures.append(ItemError(i, os.fspath(job[0]), error))
            if fail_fast or isinstance(error, KeyboardInterrupt):
                token.cancel()
    if (result.files, result.bytes) != seen():
        report(result.files, result.bytes, len(jobs))
    interrupted = interrupted or any(isinstance(e.error, KeyboardInterrupt)
                                     for e in result.failures)
    return _close(result, token, interrupted, len(jobs), report)

