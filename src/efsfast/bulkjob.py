"""What every bulk job shares (restore_many, backup_many, the tree and set
jobs, decrypt-tree): its result types, and the running of its items on
worker threads with progress reported safely, Ctrl-C and ``cancel`` seen
within one system buffer, and the result closed with an exact account of
what was done."""
from __future__ import annotations

import builtins
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import _core
from ._errors import CancelledError, EfsError
from .threadrun import run_threads

# (files done, bytes done, files in all), called as items finish
Progress = Callable[[int, int, int], None]


@dataclass(frozen=True)
class RestoreResult:
    path: str
    bytes: int
    calls: int


@dataclass(frozen=True)
class BackupResult:
    path: str
    bytes: int
    calls: int
    data: Optional[builtins.bytes] = None     # the field ``bytes`` shadows the type here


def watch_ctrl_c() -> None:
    if threading.current_thread() is threading.main_thread():
        try:
            _core.watch_sigint()
        except (OSError, ValueError):
            pass   # Ctrl-C then stops the job once it returns; cancel tokens still work


@dataclass(frozen=True)
class ItemError:
    index: int
    dest: str
    error: BaseException

    def __str__(self) -> str:
        return f"item {self.index} ({self.dest}): {self.error}"


class BulkRestoreError(EfsError):
    """Some items of a restore_many failed; ``failures`` lists them."""

    def __init__(self, failures: List[ItemError]):
        self.failures = failures
        first = failures[0]
        winerror = getattr(first.error, "winerror", None) or 31
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        super().__init__(winerror, f"{first}{more}")

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), (self.failures,))


@dataclass
class BulkResult:
    """Per job, in job order: a RestoreResult, or None where it failed (see
    ``failures``) or was not started (cancelled)."""
    results: List[Optional[RestoreResult]]
    failures: List[ItemError] = field(default_factory=list)
    bytes: int = 0
    files: int = 0
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return not self.failures and not self.cancelled

    def raise_for_errors(self) -> "BulkResult":
        if self.failures:
            raise BulkRestoreError(self.failures)
        return self


def run_many(jobs: List[Any], one: Callable[[Any, Any, Dict[str, Any], _core.CancelToken], Any], *,
              workers: Optional[int], progress: Optional[Progress],
              cancel: Optional[_core.CancelToken], fail_fast: bool) -> BulkResult:
    """Run ``one(first, second, options, token)`` per job on a thread pool:
    every item gets its own result or error slot, progress is reported as
    items finish, and Ctrl-C or ``cancel`` stops the running items within one
    system buffer and skips the rest."""
    watch_ctrl_c()
    token = cancel if cancel is not None else _core.CancelToken()
    workers = workers or min(len(jobs), os.cpu_count() or 1) or 1
    result = BulkResult(results=[None] * len(jobs))
    lock = threading.Lock()
    progress = SafeProgress(progress, token)

    def run(index: int) -> None:
        if token.cancelled:
            return
        job = jobs[index]
        try:
            r = one(job[0], job[1], dict(job[2]) if len(job) > 2 else {}, token)
        except BaseException as exc:    # each item gets its own error slot
            if isinstance(exc, CancelledError):
                # stopped by Ctrl-C (seen by the C side before the main thread
                # has cancelled the token) or by cancel: not done, not failed
                token.cancel()
                return
            with lock:
                result.failures.append(ItemError(index, os.fspath(job[0]), exc))
            if fail_fast or isinstance(exc, KeyboardInterrupt):
                token.cancel()
            return
        with lock:
            result.results[index] = r
            result.files += 1
            result.bytes += r.bytes
            done_files, done_bytes = result.files, result.bytes
        progress(done_files, done_bytes, len(jobs))

    # workers pull the next index themselves: no future per item, and the
    # calling thread sleeps in join() instead of waking for every item
    next_index = iter(range(len(jobs)))

    def worker() -> None:
        while not token.cancelled:
            with lock:
                index = next(next_index, None)
            if index is None:
                return
            run(index)

    interrupted = run_on_threads(worker, min(workers, len(jobs)), token)
    result.failures.sort(key=lambda e: e.index)
    interrupted = interrupted or any(isinstance(e.error, KeyboardInterrupt) for e in result.failures)
    return close_result(result, token, interrupted, len(jobs), progress)


def run_on_threads(target: Callable[[], None], count: int, token: _core.CancelToken,
                 tick: Optional[Callable[[], None]] = None) -> bool:
    """Run ``target`` on ``count`` threads and wait, calling ``tick`` now and
    then; Ctrl-C cancels the token and waits for the workers to stop (within
    one system buffer).  Returns whether the wait was interrupted."""
    return run_threads(target, count, stop=token.cancel, tick=tick)


class SafeProgress:
    """The caller's progress callback, made safe: if it raises, the job stops
    as if cancelled, and the exception is raised at the end with ``result``
    holding what was done (never lost, never half done)."""

    def __init__(self, callback: Optional[Progress], token: _core.CancelToken):
        self.callback = callback
        self.token = token
        self.error: Optional[BaseException] = None

    def __call__(self, files: int, nbytes: int, total: int) -> None:
        if self.callback is None or self.error is not None:
            return
        try:
            self.callback(files, nbytes, total)
        except BaseException as exc:
            self.error = exc
            self.token.cancel()


def close_result(result: BulkResult, token: _core.CancelToken, interrupted: bool, total: int,
           progress: Optional[SafeProgress] = None) -> BulkResult:
    result.cancelled = token.cancelled
    if progress is not None and progress.error is not None:
        setattr(progress.error, "result", result)    # what was done, for the caller
        raise progress.error
    if interrupted:
        exc = KeyboardInterrupt(f"interrupted after {result.files} of {total} items")
        setattr(exc, "result", result)
        raise exc
    return result
