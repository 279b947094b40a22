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
sets a flag the workers check between files and between chunks: a file
being decrypted stops and removes its temporaries, as on a thread.

The pool is a few system calls rather than ``multiprocessing.Pool``: the
parent writes every chunk of jobs (its number) into one pipe before it
forks and closes its end, each worker reads the next number (a 4-byte read
of a pipe is taken whole by one reader) until the pipe is empty, and sends
each chunk's outcomes back as one pickle on a pipe of its own.  The parent
waits in ``poll`` on those pipes in its one thread: Pool's three helper
threads, its task queue and its locks cost the parent ~60 ms of CPU per
1,000 small files (measured on 2 shared cores), taken from the workers.
A worker that ends without reporting a job (killed) makes that job a failed
item rather than a hang.

The parent's thread is the job's serial part (Amdahl: what bounds the
speedup on many cores), so it does little per file: it forks one worker,
which starts the others (_worker); a chunk every job of which succeeded
may travel in a compact form of the caller's (run_forked's ``pack`` and
``unpack``: decrypt-tree's is crypto/resultrows.py), cheaper to read back
than pickle's generic one; each chunk is decoded straight from the buffer
it was read into; and the parent naps while results gather, so that one
wake-up reads many chunks (_nap).

The parent returns (or raises) only once every worker has ended, those the
first one started included: each worker holds its result pipe open until it
exits, and the parent reads every pipe to its end, even after a failure of
its own (_stop_and_reap), so no worker is left writing into the destination.
"""
from __future__ import annotations

import enum
import gc
import mmap
import os
import pickle
import select
import signal
import struct
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

from .._errors import CancelledError, EfsError
from ..bulkjob import BulkResult, ItemError

# below this many jobs the workers' start (a fork each) is not repaid
MIN_JOBS = 32
POLL_S = 0.1            # how often the parent looks at its cancel token
# the longest the parent lets results gather in the pipes (see _nap): a
# worker's pipe (64 KiB) holds ~130 small files' results (~500 bytes each),
# ~50 ms of one worker; a full one makes its worker wait, never fail
NAP_S = 0.01
MIN_NAP_S = 0.001       # a shorter nap saves nothing (a wake-up either way)
LINGER_S = 0.02         # how long a joined thread may take to be gone (alone())
CHUNK = struct.Struct("<I")         # a chunk's number, as the work pipe carries it
# a frame of a result pipe: the length of the pickle that follows, its
# chunk's number, its Form
FRAME = struct.Struct("<QII")
READ_SIZE = 1 << 16     # one read of a result pipe: what one holds (64 KiB by default)
# the work pipe holds every chunk number before the fork: its capacity
# (64 KiB by default on Linux, one page for a user over pipe-user-pages-soft)
# bounds how many chunks there may be
PIPE_PAGE = 4096
# Linux's fcntl command for a pipe's capacity (F_LINUX_SPECIFIC_BASE + 8),
# which Python's fcntl names only from 3.10 on
F_GETPIPE_SZ = 1032
MAX_STEP = 8            # jobs per chunk (~3 ms of small files): the workers end together
ERROR_GEN_FAILURE = 31  # winerror.h: "a device attached to the system is not functioning"


class Form(enum.IntEnum):
    """What a frame's pickle holds."""
    OUTCOMES = 0        # [(job index, result, error)] for each job of the chunk
    PACKED = 1          # what run_forked's ``pack`` made of the chunk's results (all succeeded)


Outcome = Tuple[int, Any, Optional[BaseException]]      # (job index, result, error)
# what the parent is handed per chunk: the chunk, its Form (the number: an
# Enum made per chunk costs a call), its pickle (a view of the read buffer:
# to be decoded before the handler returns)
OnDone = Callable[[range, int, memoryview], None]

# what the forked workers inherit (set before the fork, cleared after)
_WORK: Optional[Callable[[int], Outcome]] = None       # the outcome of item i
_JOBS: List[Tuple[Any, ...]] = []                      # run_forked's
_ONE: Optional[Callable[..., Any]] = None
_PACK: Optional[Callable[[List[Any], List[Any]], Any]] = None   # run_forked's pack
_ITEMS: Sequence[Any] = ()                             # map_forked's
_FN: Optional[Callable[[Any], Any]] = None
_STOP: Optional[mmap.mmap] = None      # one shared byte: nonzero = stop


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
    """What decrypt() asks of a cancel token, read from the shared flag."""

    def __init__(self, stop: mmap.mmap) -> None:
        self._stop = stop

    @property
    def cancelled(self) -> bool:
        return self._stop[0] != 0


def _work_chunk(indices: range) -> List[Outcome]:
    assert _WORK is not None        # (set by _run before the fork)
    return [_WORK(i) for i in indices]


def _work(index: int) -> Outcome:
    """run_forked's item: one job, its token the stop flag."""
    assert _STOP is not None and _ONE is not None     # (set by run_forked before the fork)
    if _STOP[0]:
        return index, None, CancelledError(1223, "cancelled")
    job = _JOBS[index]
    try:
        return index, _ONE(job[0], job[1], dict(job[2]) if len(job) > 2 else {},
                           _StopToken(_STOP)), None
    except BaseException as exc:        # each item gets its own error slot
        return index, None, _sendable(exc)


def _sendable(exc: BaseException) -> BaseException:
    """``exc``, or an EfsError of its text where it would not pickle."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        out = EfsError(getattr(exc, "winerror", None) or 1359, str(exc),
                       getattr(exc, "filename", None))
        return out


def _compact(outcomes: List[Outcome]) -> Optional[bytes]:
    """The pickle of what run_forked's ``pack`` makes of the outcomes'
    results where every job succeeded and it makes something, else None."""
    if _PACK is None or any(e is not None for _, _, e in outcomes):
        return None
    try:
        packed = _PACK([r for _, r, _ in outcomes], [_JOBS[i][0] for i, _, _ in outcomes])
        return None if packed is None else pickle.dumps(packed, pickle.HIGHEST_PROTOCOL)
    except Exception:           # (then as any outcomes: their errors, if any, told there)
        return None


def _packed(number: int, outcomes: List[Outcome]) -> bytes:
    """Chunk ``number``'s outcomes as a frame of the result pipe; a result
    that would not pickle becomes that item's error."""
    body = _compact(outcomes)
    if body is not None:
        return FRAME.pack(len(body), number, Form.PACKED) + body
    try:
        body = pickle.dumps(outcomes, pickle.HIGHEST_PROTOCOL)
    except Exception:
        body = pickle.dumps([(i, r, e) if e is not None else
                             (i, None, _sendable(ValueError(f"its result could not be sent: "
                                                            f"{r!r}"))) for i, r, e in outcomes],
                            pickle.HIGHEST_PROTOCOL)
    return FRAME.pack(len(body), number, Form.OUTCOMES) + body


def _write_all(fd: int, data: bytes) -> None:
    with memoryview(data) as view:
        while view:
            view = view[os.write(fd, view):]


def _worker(first: int, outs: Dict[int, int], work: int, chunks: List[range]) -> None:
    """A forked worker's life: worker ``first`` of the result pipes'
    write ends ``outs`` (by worker; those of the workers it is to start,
    all later ones), it starts those, then takes chunk numbers from
    ``work`` until it is empty, each chunk's outcomes to its own pipe,
    and waits for the workers it started.  Never returns.

    Workers start workers (each the upper half of those it holds, as
    long as it holds more than itself): the parent forks once, and the
    last of N workers starts log2(N) forks after the first, where the
    parent's N forks (~0.3 ms each at 26 MiB resident, more for a larger
    parent) made N of them, all on the parent's thread."""
    code = 1
    kids: List[int] = []
    try:
        # Ctrl-C reaches the whole process group: the parent turns it into
        # the stop flag, and a worker must finish or clean up its file, not die
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        while len(outs) > 1:
            held = sorted(outs)
            upper = held[len(held) // 2:]
            try:
                pid = os.fork()
            except OSError:         # (its workers' chunks go to the others)
                pid = -1
            if pid == 0:
                for k in held[:len(held) // 2]:
                    os.close(outs.pop(k))
                _worker(upper[0], outs, work, chunks)
            for k in upper:         # (the started worker's own now)
                os.close(outs.pop(k))
            if pid > 0:
                kids.append(pid)
        out = outs[first]
        while True:
            rec = os.read(work, CHUNK.size)
            if len(rec) < CHUNK.size:   # empty: all taken (whole numbers only: see the doc)
                break
            number = CHUNK.unpack(rec)[0]
            _write_all(out, _packed(number, _work_chunk(chunks[number])))
        code = 0
    finally:
        try:
            for pid in kids:    # (its pipe stays open until then: its end is theirs)
                _reap(pid)
        finally:
            os._exit(code)      # no atexit, no buffers of the parent's flushed twice


def _chunks(n: int, workers: int, max_chunks: int = (64 << 10) // CHUNK.size) -> List[range]:
    # chunks of jobs amortise the hand-off; each job still checks the stop flag
    step = max(1, min(MAX_STEP, n // (workers * 8)), -(-n // max_chunks))
    return [range(i, min(i + step, n)) for i in range(0, n, step)]


def _pipe_capacity(fd: int) -> int:
    try:
        import fcntl
        return int(fcntl.fcntl(fd, getattr(fcntl, "F_GETPIPE_SZ", F_GETPIPE_SZ)))
    except (ImportError, AttributeError, OSError):
        return PIPE_PAGE            # (the least a pipe holds)


def _start(n: int, workers: int) -> Tuple[Dict[int, Tuple[int, bytearray]], List[range]]:
    """Fork the workers for ``n`` items: ({result pipe's read end: (pid
    where the worker is the parent's child, else 0; bytes not yet read)},
    the chunks).  The parent forks the first worker, which starts the
    others (see _worker)."""
    work_r, work_w = os.pipe()
    started: Dict[int, Tuple[int, bytearray]] = {}
    outs: Dict[int, int] = {}       # write ends by worker: the workers', never the parent's
    try:
        # every chunk number fits in the pipe: written whole, never blocking
        chunks = _chunks(n, workers, _pipe_capacity(work_w) // CHUNK.size)
        workers = min(workers, len(chunks))
        _write_all(work_w, b"".join(CHUNK.pack(i) for i in range(len(chunks))))
        os.close(work_w)
        work_w = -1
        for k in range(workers):
            out_r, outs[k] = os.pipe()
            started[out_r] = (0, bytearray())
        first = next(iter(started))     # the first worker's read end
        gc.freeze()     # the workers' collections then never walk (and copy) the parent's heap
        try:
            pid = os.fork()
            if pid == 0:            # the child: never back into the parent's code
                try:
                    for fd in started:
                        os.close(fd)
                    _worker(0, outs, work_r, chunks)
                finally:
                    os._exit(1)
            started[first] = (pid, started[first][1])
        finally:
            gc.unfreeze()
    except BaseException:
        _close_all(outs)            # (else the parent's own copies would keep the pipes open)
        _stop_and_reap(started)
        raise
    finally:
        os.close(work_r)
        if work_w >= 0:
            os.close(work_w)
        _close_all(outs)
    return started, chunks


def _close_all(fds: Dict[int, int]) -> None:
    while fds:
        os.close(fds.popitem()[1])


def _stop_and_reap(started: Dict[int, Tuple[int, bytearray]]) -> None:
    """After a failure of the parent's: stop the workers (each finishes or
    cleans up its file) and wait until every one has ended, what they send
    discarded.  A worker holds its pipe open until it exits, so the end of
    every pipe is the end of every worker, those the first one started
    included (one whose starter was killed is no child of this process:
    only its pipe tells).  A Ctrl-C meanwhile is raised once they have."""
    if _STOP is not None:
        _STOP[0] = 1
    if not started:
        return
    interrupted = False
    pids = [pid for pid, _ in started.values() if pid]
    poller = select.poll()
    for fd in started:
        poller.register(fd, select.POLLIN)
    scratch = bytearray(READ_SIZE)
    while started:
        try:
            for fd, _ in poller.poll():
                if not os.readv(fd, [scratch]):
                    poller.unregister(fd)
                    del started[fd]
                    os.close(fd)
        except KeyboardInterrupt:       # (the workers are stopping: wait for them still)
            interrupted = True
    while pids:
        try:
            _reap(pids[-1])
            pids.pop()
        except KeyboardInterrupt:
            interrupted = True
    if interrupted:
        raise KeyboardInterrupt("interrupted while the workers stopped")


def _frames(data: memoryview, chunks: List[range], on_done: OnDone) -> int:
    """Hand the complete frames at the head of ``data`` to ``on_done``:
    how many of its bytes they took."""
    at = 0
    while len(data) - at >= FRAME.size:
        n, number, form = FRAME.unpack_from(data, at)
        if len(data) - at - FRAME.size < n:
            break
        at += FRAME.size
        on_done(chunks[number], form, data[at:at + n])
        at += n
    return at


def _received(fd: int, buf: bytearray, scratch: memoryview, chunks: List[range],
              on_done: OnDone) -> bool:
    """Hand the frames completed by one read of the result pipe ``fd`` to
    ``on_done`` (``buf``: what it held of a frame not complete yet); False
    at its end.  The read goes into ``scratch``, one buffer for every read
    (memory the parent touched already), and each frame is decoded from
    there (a read into new memory, then copies of it, cost the parent's
    thread a page fault for every 4 KiB of each)."""
    got = os.readv(fd, [scratch])
    if not got:
        return False
    if not buf:                 # (the usual case: the read starts at a frame)
        at = _frames(scratch[:got], chunks, on_done)
        buf += scratch[at:got]
        return True
    buf += scratch[:got]
    with memoryview(buf) as view:       # (released before buf is resized)
        at = _frames(view, chunks, on_done)
    del buf[:at]
    return True


def _run(n: int, work: Callable[[int], Outcome], workers: int, on_done: OnDone,
         cancel: Any) -> Tuple[bool, bool]:
    """``work(i)`` for i in range(n) on forked workers, each chunk's
    outcomes handed to ``on_done`` as they come: (interrupted by Ctrl-C,
    some worker ended abnormally).  Returns (or raises) once every worker
    has ended."""
    global _WORK, _STOP
    interrupted = False
    for stream in (sys.stdout, sys.stderr):   # else a worker could write it out again
        stream.flush()
    stop = mmap.mmap(-1, 1)                   # anonymous and shared: seen across the fork
    _WORK, _STOP = work, stop
    pipes: Dict[int, Tuple[int, bytearray]] = {}
    codes: List[int] = []
    try:
        pipes, chunks = _start(n, workers)
        scratch = memoryview(bytearray(READ_SIZE))
        poller = select.poll()
        for fd in pipes:
            poller.register(fd, select.POLLIN)
        started, done, nap = time.monotonic(), 0, 0.0

        def counted(chunk: range, form: int, body: memoryview) -> None:
            nonlocal done
            done += len(chunk)
            on_done(chunk, form, body)
        while pipes:
            try:
                if nap:             # (results gather meanwhile: one wake-up reads several)
                    time.sleep(nap)
                if cancel is not None and cancel.cancelled:
                    stop[0] = 1
                ready = poller.poll(POLL_S * 1000)
            except KeyboardInterrupt:           # wait for the workers' clean stop
                interrupted = True
                stop[0] = 1
                nap = 0.0
                continue
            for fd, _ in ready:
                pid, buf = pipes[fd]
                if not _received(fd, buf, scratch, chunks, counted):
                    # the worker is done (or gone): those it started hold pipes of their own
                    poller.unregister(fd)
                    del pipes[fd]
                    os.close(fd)
                    if pid:
                        codes.append(_reap(pid))
            nap = _nap(done, n, time.monotonic() - started) if ready and not stop[0] else 0.0
    finally:
        stop[0] = 1     # (after an error here the workers finish their item and stop)
        try:
            _stop_and_reap(pipes)       # (none left after a normal end)
        finally:
            _WORK, _STOP = None, None
            stop.close()
    return interrupted, any(codes)


def _nap(done: int, n: int, elapsed: float) -> float:
    """How long the parent sleeps before it looks at the pipes again, with
    ``done`` of ``n`` jobs reported after ``elapsed`` seconds: each wake-up
    costs its thread ~30-100 us (measured on 2 loaded cores: the poll, the
    read, the caches the workers took), a serial cost that waking for every
    chunk made ~10 us per small file.  A quarter of the time the rest should
    take at the rate so far, at most NAP_S: the last results are read at
    most that late, and not at all later near the end."""
    if done <= 0 or done >= n:
        return 0.0
    left = elapsed * (n - done) / done
    return min(NAP_S, left / 4) if left >= 4 * MIN_NAP_S else 0.0


def run_forked(jobs: List[Tuple[Any, ...]], one: Callable[..., Any], *, workers: int,
               progress: Optional[Callable[[int, int, int], None]] = None,
               cancel: Any = None,
               pack: Optional[Callable[[List[Any], List[Any]], Any]] = None,
               unpack: Optional[Callable[[Any, List[Any]], List[Any]]] = None) -> BulkResult:
    """``one(dest, source, options, token)`` per job on ``workers`` forked
    processes: every item its own result or error, in job order.  A
    cancelled run returns what was done (``cancelled`` set); a
    KeyboardInterrupt here is raised once the workers have stopped, with
    what was done as its ``result``, as the thread pool does.

    ``pack(results, dests)``, run in a worker on the results of a chunk
    of jobs that all succeeded (``dests``: those jobs' first fields), may
    return something smaller to send instead (None: the results are sent
    as they are); ``unpack(that, dests)`` in the parent gives the results
    back, each equal to what ``one`` returned."""
    global _JOBS, _ONE, _PACK
    result = BulkResult(results=[None] * len(jobs))
    results = result.results
    reported = bytearray(len(jobs))     # 1 once a worker has said how a job went

    def on_done(chunk: range, form: int, body: memoryview) -> None:
        if form != Form.PACKED or unpack is None:
            _account(pickle.loads(body), jobs, result, reported, progress)
            return
        done = unpack(pickle.loads(body), [jobs[i][0] for i in chunk])
        if len(done) != len(chunk):     # (pack's and unpack's bug: never a list resized)
            raise ValueError(f"{len(done)} results unpacked for {len(chunk)} jobs")
        results[chunk.start:chunk.stop] = done
        reported[chunk.start:chunk.stop] = b"\x01" * len(chunk)
        if progress is None:
            result.files += len(done)
            result.bytes += sum(r.bytes for r in done)
            return
        for r in done:
            result.files += 1
            result.bytes += r.bytes
            progress(result.files, result.bytes, len(jobs))
    _JOBS, _ONE, _PACK = jobs, one, (pack if unpack is not None else None)
    try:
        interrupted, died = _run(len(jobs), _work, workers, on_done, cancel)
    finally:
        _JOBS, _ONE, _PACK = [], None, None
    # a worker that ended without a word on some of its jobs: never a hang (a
    # worker the first one started is not the parent's child: its jobs tell)
    if died or 0 in reported:
        _lost(jobs, result, reported, interrupted or _cancelled(cancel))
    result.failures.sort(key=lambda e: e.index)
    result.cancelled = interrupted or _cancelled(cancel)
    if interrupted:
        exc = KeyboardInterrupt(f"interrupted after {result.files} of {len(jobs)} items")
        setattr(exc, "result", result)
        raise exc
    return result


_T = TypeVar("_T")


def _call(index: int) -> Outcome:
    """map_forked's item: ``fn(item)``; after an error elsewhere, skipped."""
    assert _STOP is not None and _FN is not None     # (set by map_forked before the fork)
    if _STOP[0]:
        return index, None, CancelledError(1223, "cancelled")
    try:
        return index, _FN(_ITEMS[index]), None
    except BaseException as exc:
        return index, None, _sendable(exc)


def map_forked(fn: Callable[[Any], _T], items: Sequence[Any], *, workers: int,
               progress: Optional[Callable[[int, int], None]] = None) -> List[_T]:
    """``[fn(item) for item in items]`` on ``workers`` forked processes (as
    ``multiprocessing.Pool.imap`` would give it): an error stops the rest
    and the first one (by item) is raised once the workers have ended;
    ``progress(done, total)`` as items end."""
    global _ITEMS, _FN
    out: List[Any] = [None] * len(items)
    seen = bytearray(len(items))
    errors: Dict[int, BaseException] = {}
    done_count = 0

    def on_done(chunk: range, form: int, body: memoryview) -> None:
        nonlocal done_count
        for index, r, exc in pickle.loads(body):
            seen[index] = 1
            if exc is None:
                out[index] = r
                done_count += 1
                if progress is not None:
                    progress(done_count, len(items))
            elif not isinstance(exc, CancelledError):
                errors[index] = exc
                if _STOP is not None:
                    _STOP[0] = 1        # (the other items are not worth doing)
    _ITEMS, _FN = items, fn
    try:
        interrupted, died = _run(len(items), _call, workers, on_done, None)
    finally:
        _ITEMS, _FN = (), None
    if interrupted:
        raise KeyboardInterrupt(f"interrupted after {done_count} of {len(items)} items")
    if errors:
        raise errors[min(errors)]
    if died or not all(seen):
        raise EfsError(ERROR_GEN_FAILURE, "a worker process ended unexpectedly")
    return out


def _cancelled(cancel: Any) -> bool:
    return bool(cancel is not None and cancel.cancelled)


def _reap(pid: int) -> int:
    """The worker's exit status once it has ended (0: it ended well)."""
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except InterruptedError:    # (PEP 475 retries; a signal handler's exception does not)
            continue


def _account(done: List[Outcome], jobs: List[Tuple[Any, ...]], result: BulkResult,
             reported: bytearray, progress: Optional[Callable[[int, int, int], None]]) -> None:
    for index, r, exc in done:
        reported[index] = 1
        if exc is None:
            result.results[index] = r
            result.files += 1
            result.bytes += r.bytes
            if progress is not None:
                progress(result.files, result.bytes, len(jobs))
        elif not isinstance(exc, CancelledError):   # cancelled: not done, not failed
            result.failures.append(ItemError(index, os.fspath(jobs[index][0]), exc))


def _lost(jobs: List[Tuple[Any, ...]], result: BulkResult, reported: bytearray,
          stopping: bool) -> None:
    """The jobs no worker reported, after one of them ended abnormally:
    failed items (what a killed worker was writing is a temporary that
    names itself), unless the run was being stopped anyway."""
    if stopping:
        return
    for index in (i for i, seen in enumerate(reported) if not seen):
        result.failures.append(ItemError(index, os.fspath(jobs[index][0]), EfsError(
            ERROR_GEN_FAILURE, "the worker process decrypting it ended unexpectedly",
            os.fspath(jobs[index][0]))))
