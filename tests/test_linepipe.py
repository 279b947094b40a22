"""LinePipe (backupset/linepipe.py): the writes run on one thread, in the
order sent; a write that raises is handed back with its ticket, and close()
waits for all of them."""
import threading
import time

import pytest

from efsfast.backupset.linepipe import LinePipe


def test_writes_run_in_order_on_one_other_thread():
    pipe = LinePipe()
    seen, where = [], set()

    def write(k):
        def go():
            if k % 7 == 0:
                time.sleep(0.001)       # (a slow one does not let a later one pass)
            seen.append(k)
            where.add(threading.current_thread().name)
        return go
    for k in range(200):
        pipe.send(k, write(k))
    assert pipe.close() == []
    assert seen == list(range(200))
    assert where == {"efsfast-manifest"}


def test_failed_writes_come_back_with_their_tickets():
    pipe = LinePipe()
    gate = threading.Event()

    def ok():
        gate.wait(5)

    def bad(k):
        def go():
            raise OSError(28, f"full {k}")
        return go
    pipe.send("a", ok)
    pipe.send("b", bad("b"))
    pipe.send("c", ok)
    pipe.send("d", bad("d"))
    assert pipe.failed() == []          # (the first write still waits)
    gate.set()
    back = pipe.close()
    assert [t for t, _ in back] == ["b", "d"]
    assert [str(e) for _, e in back] == ["[Errno 28] full b", "[Errno 28] full d"]
    assert pipe.failed() == []          # handed back once


def test_failed_hands_back_what_is_known_so_far():
    pipe = LinePipe()
    done = threading.Event()

    def bad():
        try:
            raise ValueError("x")
        finally:
            done.set()
    pipe.send(1, bad)
    done.wait(5)
    deadline = time.monotonic() + 5
    got = []
    while not got and time.monotonic() < deadline:
        got = pipe.failed()
    assert [t for t, _ in got] == [1] and isinstance(got[0][1], ValueError)
    assert pipe.close() == []


def test_no_thread_without_a_write_and_no_send_after_close():
    before = threading.active_count()
    pipe = LinePipe()
    assert threading.active_count() == before
    assert pipe.close() == []
    with pytest.raises(RuntimeError):
        pipe.send(1, lambda: None)


def test_close_waits_for_the_writes_through_a_ctrl_c(monkeypatch):
    """A KeyboardInterrupt while close() waits does not leave a write
    running behind the caller: close() waits on, then raises it."""
    pipe = LinePipe()
    gate, done = threading.Event(), []

    def slow():
        gate.wait(5)
        done.append(1)
    pipe.send(1, slow)
    thread = pipe._thread
    real_join, calls = thread.join, []

    def join(timeout=None):
        calls.append(1)
        if len(calls) == 1:
            gate.set()
            raise KeyboardInterrupt
        return real_join(timeout)
    monkeypatch.setattr(thread, "join", join)
    with pytest.raises(KeyboardInterrupt):
        pipe.close()
    assert done == [1] and not thread.is_alive()
