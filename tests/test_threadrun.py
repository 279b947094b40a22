"""threadrun.run_threads: the one wait every bulk job makes on its workers."""
import threading
import time

from efsfast import durable
from efsfast.threadrun import run_threads


def test_every_thread_runs_and_ticks_come_while_waiting():
    ran, ticks = [], []
    lock = threading.Lock()

    def work():
        time.sleep(0.25)
        with lock:
            ran.append(threading.current_thread().name)
    assert run_threads(work, 3, name="t", tick=lambda: ticks.append(1)) is False
    assert sorted(ran) == ["t-0", "t-1", "t-2"]
    assert ticks            # timed joins: the calling thread looked in between


def test_at_least_one_thread():
    ran = []
    assert run_threads(lambda: ran.append(1), 0) is False
    assert ran == [1]


def test_ctrl_c_stops_the_batch_and_waits_for_every_started_thread():
    """Ctrl-C while waiting (here raised by the tick, as a signal would be):
    ``stop`` is called, each worker ends its item, and only then does the
    call return True, with no worker left running."""
    stopping = threading.Event()
    finished = []

    def work():
        while not stopping.is_set():
            time.sleep(0.01)
        time.sleep(0.05)            # the item under way finishes
        finished.append(1)

    def tick():
        raise KeyboardInterrupt
    before = threading.active_count()
    assert run_threads(work, 2, stop=stopping.set, tick=tick) is True
    assert finished == [1, 1]
    assert threading.active_count() == before


def test_a_durable_pass_interrupted_takes_no_further_path(tmp_path, monkeypatch):
    """durable's per-object pass on threads: Ctrl-C during it is raised to
    the caller once the syncs under way end, and no further path is synced."""
    paths = []
    for i in range(200):
        p = tmp_path / f"f{i}"
        p.write_bytes(b"x")
        paths.append(str(p))
    synced = []

    def fsync_path(path):           # 200 x 5 ms on 2 threads: 0.5 s, past the first tick
        synced.append(path)
        time.sleep(0.005)
    monkeypatch.setattr(durable, "fsync_path", fsync_path)
    monkeypatch.setattr(durable, "PASS_THREADS", 2)
    monkeypatch.setattr(durable, "_THREADS_FROM", 1)
    import efsfast.threadrun as threadrun
    real = threadrun.run_threads

    def interrupted_wait(target, count, **kw):
        kw["tick"] = _raise_once()
        return real(target, count, **kw)
    monkeypatch.setattr(threadrun, "run_threads", interrupted_wait)
    try:
        durable._fsync_all(paths, set())
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the interrupted pass returned")
    assert len(synced) < len(paths)
    count = len(synced)
    time.sleep(0.05)
    assert len(synced) == count         # nothing synced after the call returned


def _raise_once():
    done = []

    def tick():
        if not done:
            done.append(1)
            raise KeyboardInterrupt
    return tick
