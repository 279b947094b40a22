"""decrypt-tree's jobs in forked worker processes.

Each file costs one RSA decryption of its FEK (~0.3-0.5 ms for RSA-2048),
and ``cryptography`` holds the GIL while it does one: on threads those
decryptions run one at a time whatever the cores, and a tree of small files
is bounded by them.  Forked workers inherit the loaded keys (never pickled,
never sent anywhere) and decrypt whole files, each writing its own
plaintext; what comes back is each job's result or error.

Only on Linux (fork), only from a process running no other thread (a fork
copies locks other threads may hold), and only for raw streams (an efs_raw
mount's objects go through the C export path and the mount's daemon, which
serves one request at a time: threads suit them).  Cancelling (Ctrl-C)
sets an event the workers check between files and between chunks: a file
being decrypted stops and removes its temporaries, as on a thread.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, List, Optional, Tuple

from .._errors import CancelledError, EfsError
from ..api import BulkResult, ItemError

# below this many jobs the pool's start (a fork per worker) is not repaid
MIN_JOBS = 32
POLL_S = 0.1            # how often the parent looks at its cancel token
LINGER_S = 0.02         # how long a joined thread may take to be gone (alone())

_JOBS: List[Tuple[Any, ...]] = []      # what the forked workers inherit
_ONE: Optional[Callable[..., Any]] = None
_STOP: Any = None


def alone(linger_s: float = LINGER_S) -> bool:
    """Whether this process runs one thread: Python's threads and those a
    library started in C (an S3 client's runtime, a C worker pool), which
    threading.active_count() does not see but a fork copies the locks of.
    A Python thread just joined may still be ending in the system (its
    join returns before the thread is gone: seen after every restore_many),
    so where Python runs no other thread the count is looked at again for
    up to ``linger_s``."""
    if threading.active_count() != 1:
        return False
    deadline = time.monotonic() + linger_s
    while True:
        try:
            if len(os.listdir("/proc/self/task")) == 1:
                return True
        except OSError:
            return True             # (no /proc: Python's own count is all there is)
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.001)


def usable(jobs: List[Tuple[Any, ...]], workers: int) -> bool:
    """Whether the jobs should run in forked processes."""
    return (sys.platform.startswith("linux") and workers > 1 and len(jobs) >= MIN_JOBS
            and alone()
            and all(not (len(j) > 2 and j[2].get("object")) for j in jobs))


class _StopToken:
    """What decrypt() asks of a cancel token, read from the shared event."""

    def __init__(self, stop: Any) -> None:
        self._stop = stop

    @property
    def cancelled(self) -> bool:
        return bool(self._stop.is_set())


def _start_worker() -> None:
    # Ctrl-C reaches the whole process group: the parent turns it into the
    # stop event, and a worker must finish or clean up its file, not die
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _work_chunk(indices: range) -> List[Tuple[int, Any, Optional[BaseException]]]:
    return [_work(i) for i in indices]


def _work(index: int) -> Tuple[int, Any, Optional[BaseException]]:
    if _STOP.is_set():
        return index, None, CancelledError(1223, "cancelled")
    job = _JOBS[index]
    try:
        assert _ONE is not None     # (set by run_forked before the fork)
        return index, _ONE(job[0], job[1], dict(job[2]) if len(job) > 2 else {},
                           _StopToken(_STOP)), None
    except BaseException as exc:        # each item gets its own error slot
        return index, None, _sendable(exc)


def _sendable(exc: BaseException) -> BaseException:
    """``exc``, or an EfsError of its text where it would not pickle."""
    import pickle
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        out = EfsError(getattr(exc, "winerror", None) or 1359, str(exc),
                       getattr(exc, "filename", None))
        return out


def run_forked(jobs: List[Tuple[Any, ...]], one: Callable[..., Any], *, workers: int,
               progress: Optional[Callable[[int, int, int], None]] = None,
               cancel: Any = None) -> BulkResult:
    """``one(dest, source, options, token)`` per job on ``workers`` forked
    processes: every item its own result or error, in job order.  A
    cancelled run returns what was done (``cancelled`` set); a
    KeyboardInterrupt here is raised once the workers have stopped, with
    what was done as its ``result``, as the thread pool does."""
    global _JOBS, _ONE, _STOP
    ctx = multiprocessing.get_context("fork")
    result = BulkResult(results=[None] * len(jobs))
    stop = ctx.Event()
    interrupted = False
    for stream in (sys.stdout, sys.stderr):   # else a worker could write it out again
        stream.flush()
    _JOBS, _ONE, _STOP = jobs, one, stop
    workers = min(workers, len(jobs))
    pool = ctx.Pool(workers, initializer=_start_worker)
    try:
        # chunks of jobs amortise the hand-off; each job still checks the stop event
        step = max(1, min(16, len(jobs) // (workers * 8)))
        chunks = [range(i, min(i + step, len(jobs))) for i in range(0, len(jobs), step)]
        outcomes = pool.imap_unordered(_work_chunk, chunks)
        for _ in chunks:
            while True:
                if cancel is not None and cancel.cancelled:
                    stop.set()
                try:
                    done = outcomes.next(timeout=POLL_S)
                    break
                except multiprocessing.TimeoutError:
                    continue
                except KeyboardInterrupt:       # wait for the workers' clean stop
                    interrupted = True
                    stop.set()
            for index, r, exc in done:
                if exc is None:
                    result.results[index] = r
                    result.files += 1
                    result.bytes += r.bytes
                    if progress is not None:
                        progress(result.files, result.bytes, len(jobs))
                elif not isinstance(exc, CancelledError):   # cancelled: not done, not failed
                    result.failures.append(ItemError(index, os.fspath(jobs[index][0]), exc))
    finally:
        stop.set()      # (after an error here the workers finish their file and stop)
        pool.close()
        pool.join()     # never terminate(): a killed worker would leave its temporaries
        _JOBS, _ONE, _STOP = [], None, None
    result.failures.sort(key=lambda e: e.index)
    result.cancelled = interrupted or bool(cancel is not None and cancel.cancelled)
    if interrupted:
        exc = KeyboardInterrupt(f"interrupted after {result.files} of {len(jobs)} items")
        setattr(exc, "result", result)
        raise exc
    return result
