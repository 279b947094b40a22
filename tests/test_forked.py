"""decrypt-tree's pool of forked workers (crypto/forked.py) on its own:
every job comes back as a result or a named failure, in job order, also
when a worker dies or the parent fails; no worker is left behind."""
from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass

import pytest

from efsfast import CancelToken
from efsfast.crypto import forked

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers: Linux only"),
    # (the fork is forced inside pytest, whose process may run a library's threads)
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]


@dataclass
class Done:
    path: str
    bytes: int
    pid: int


def jobs(n):
    return [(f"dest{i}", f"src{i}", {"i": i}) for i in range(n)]


def echo(dest, source, opts, token):
    return Done(dest, opts["i"], os.getpid())


def children():
    """This process's children (zombies included)."""
    try:
        with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as f:
            return set(f.read().split())
    except OSError:
        return set()


@pytest.fixture
def children_left():
    """Children of this process started since the test began and still
    there (the suite's earlier tests may have left servers of their own)."""
    before = children()
    return lambda: sorted(children() - before)


def test_every_job_once_in_order_on_several_workers(children_left):
    def one(dest, source, opts, token):
        import time
        time.sleep(0.001)       # (instant jobs could all be taken by the first worker)
        return echo(dest, source, opts, token)
    r = forked.run_forked(jobs(500), one, workers=2)
    assert [d.path for d in r.results] == [f"dest{i}" for i in range(500)]
    assert r.files == 500 and r.bytes == sum(range(500)) and not r.failures and not r.cancelled
    assert len({d.pid for d in r.results}) == 2 and os.getpid() not in {d.pid for d in r.results}
    assert children_left() == []


def test_an_item_error_is_that_item_only():
    def one(dest, source, opts, token):
        if opts["i"] % 7 == 3:
            raise OSError(5, "Input/output error", source)
        return echo(dest, source, opts, token)
    r = forked.run_forked(jobs(100), one, workers=2)
    bad = [i for i in range(100) if i % 7 == 3]
    assert [e.index for e in r.failures] == bad and r.files == 100 - len(bad)
    assert r.failures[0].dest == "dest3" and r.failures[0].error.filename == "src3"
    assert all(r.results[i] is None for i in bad)


def test_a_killed_worker_fails_its_jobs_rather_than_hanging(children_left):
    def one(dest, source, opts, token):
        if opts["i"] == 41:
            os.kill(os.getpid(), signal.SIGKILL)
        return echo(dest, source, opts, token)
    n = 200
    r = forked.run_forked(jobs(n), one, workers=2)
    lost = [e.index for e in r.failures]
    chunk = next(c for c in forked._chunks(n, 2) if 41 in c)
    # the dead worker's chunk is failed (the other worker took every later chunk)
    assert lost == list(chunk) and r.files == n - len(chunk)
    assert "ended unexpectedly" in str(r.failures[0].error)
    assert children_left() == []


def test_a_failure_of_the_parent_stops_and_reaps_the_workers(children_left):
    def progress(files, nbytes, total):
        if files == 10:
            raise RuntimeError("the parent's own failure")
    with pytest.raises(RuntimeError, match="the parent's own failure"):
        forked.run_forked(jobs(300), echo, workers=2, progress=progress)
    assert children_left() == []


def test_cancelled_returns_what_was_done(children_left):
    token = CancelToken()

    def progress(files, nbytes, total):
        if files == 5:
            token.cancel()

    def slow(dest, source, opts, token_):
        import time
        time.sleep(0.002)
        return echo(dest, source, opts, token_)
    r = forked.run_forked(jobs(400), slow, workers=2, progress=progress, cancel=token)
    assert r.cancelled and 5 <= r.files < 400 and not r.failures
    assert sum(x is not None for x in r.results) == r.files
    assert children_left() == []


def square(x):
    return x * x


def test_map_forked_gives_every_result_in_order(children_left):
    seen = []
    out = forked.map_forked(square, list(range(300)), workers=2,
                            progress=lambda done, total: seen.append((done, total)))
    assert out == [x * x for x in range(300)]
    assert seen == [(i, 300) for i in range(1, 301)]
    assert children_left() == []


def test_map_forked_raises_the_first_error_once_the_workers_ended(children_left):
    def one(x):
        if x in (57, 90):
            raise ValueError(f"bad item {x}")
        return x
    with pytest.raises(ValueError, match="bad item 57"):
        forked.map_forked(one, list(range(200)), workers=2)
    assert children_left() == []


def test_map_forked_with_a_killed_worker_raises_rather_than_hangs(children_left):
    def one(x):
        if x == 33:
            os.kill(os.getpid(), signal.SIGKILL)
        return x
    with pytest.raises(OSError, match="ended unexpectedly"):
        forked.map_forked(one, list(range(100)), workers=2)
    assert children_left() == []


def test_a_pipe_of_one_page_still_takes_every_chunk(monkeypatch):
    """Every chunk number is written before the fork: a user over
    pipe-user-pages-soft gets pipes of one page, and the chunks must then
    be fewer (larger), never a write that blocks with no reader."""
    import fcntl
    real = forked._pipe_capacity

    def one_page(fd):
        # (Linux's F_LINUX_SPECIFIC_BASE + 7: Python's fcntl names it from 3.10 on)
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)
        return real(fd)
    monkeypatch.setattr(forked, "_pipe_capacity", one_page)
    n = 20_000
    r = forked.run_forked(jobs(n), echo, workers=2)
    assert r.files == n and [d.path for d in r.results] == [f"dest{i}" for i in range(n)]
    assert len(forked._chunks(n, 2, 4096 // forked.CHUNK.size)) <= 1024


@pytest.mark.parametrize("workers", [3, 5, 8])
def test_workers_started_by_workers_all_work_and_all_end(children_left, workers):
    """The parent forks the first worker, which starts the others: every
    one of them takes jobs, and every one has ended when run_forked returns."""
    def one(dest, source, opts, token):
        import time
        time.sleep(0.002)       # (instant jobs could all be taken by the first workers)
        return echo(dest, source, opts, token)
    r = forked.run_forked(jobs(400), one, workers=workers)
    assert [d.path for d in r.results] == [f"dest{i}" for i in range(400)]
    assert r.files == 400 and r.bytes == sum(range(400)) and not r.failures
    pids = {d.pid for d in r.results}
    assert len(pids) == workers and os.getpid() not in pids
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert children_left() == []


@pytest.mark.parametrize("victim", ["first", "started by a worker"])
def test_a_killed_worker_of_several_fails_its_jobs_only(children_left, tmp_path, victim):
    """Whichever worker dies (the first, which started the others, or one
    that a worker started), its chunk becomes failed items, the others do
    the rest, and no process is left behind."""
    parent = os.getpid()
    mark = str(tmp_path / "killed")

    def one(dest, source, opts, token):
        import time
        time.sleep(0.001)
        first = os.getppid() == parent
        if opts["i"] >= 40 and first == (victim == "first"):
            try:                # (the first such job only: one worker dies)
                os.close(os.open(mark, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return echo(dest, source, opts, token)
    n = 400
    r = forked.run_forked(jobs(n), one, workers=4)
    lost = [e.index for e in r.failures]
    assert os.path.exists(mark) and lost in [list(c) for c in forked._chunks(n, 4)]
    assert r.files == n - len(lost)
    assert all("ended unexpectedly" in str(e.error) for e in r.failures)
    assert children_left() == []


def alive(pid):
    """Whether ``pid`` still runs (a zombie has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_failing_parent_waits_for_workers_whose_starter_was_killed(children_left, tmp_path):
    """The first worker (which started the others) is killed, then the
    parent fails (its progress callback raises) while the workers it no
    longer has as children are in the middle of a job: run_forked raises
    only once every one of them has ended, none writing anything after."""
    import time
    parent = os.getpid()
    pids, wrote = tmp_path / "pids", tmp_path / "wrote"
    pids.mkdir()
    wrote.mkdir()
    mark = tmp_path / "killed"

    def one(dest, source, opts, token):
        (pids / str(os.getpid())).touch()
        if os.getppid() == parent and opts["i"] >= 40:
            mark.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.3 if mark.exists() else 0.002)     # (ignores the token: a long job)
        (wrote / dest).touch()
        return echo(dest, source, opts, token)

    def progress(files, size, total):
        if mark.exists():
            raise RuntimeError("the caller failed")
    with pytest.raises(RuntimeError, match="the caller failed"):
        forked.run_forked(jobs(400), one, workers=4, progress=progress)
    written = sorted(os.listdir(wrote))
    time.sleep(0.5)
    assert sorted(os.listdir(wrote)) == written
    # (a worker's pipe ends as it exits: the system may take a moment more)
    deadline = time.monotonic() + 5
    seen = [int(p.name) for p in pids.iterdir()]
    while any(alive(p) for p in seen) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(seen) == 4 and [p for p in seen if alive(p)] == []
    assert children_left() == []
