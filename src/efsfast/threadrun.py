"""Running one batch's ``work`` on several threads and waiting for them.

Every bulk job in efsfast hands a C batch (or a small Python worker) to a
few threads that take items until none are left, while the calling thread
waits.  The wait is where Ctrl-C arrives, so it is made here once: joins
are timed so that the signal is seen, a progress ``tick`` runs between
them, and on Ctrl-C the batch is told to ``stop`` (no further item is
started) and every started thread is waited for, so nothing is left
writing after the job has returned."""
from __future__ import annotations

import threading
from typing import Callable, Optional

#: how long the calling thread waits between two looks at Ctrl-C and ticks
TICK_SECONDS = 0.1


def run_threads(target: Callable[[], None], count: int, *, name: str = "efsfast-worker",
                stop: Optional[Callable[[], None]] = None,
                tick: Optional[Callable[[], None]] = None) -> bool:
    """Run ``target`` on ``count`` threads (at least one) and wait for all
    of them, calling ``tick`` after each timed wait.  On Ctrl-C: ``stop``,
    then wait for the started threads to end; returns True (interrupted),
    and leaves raising to the caller, which may first account for what was
    done.  Returns False when every thread ended by itself."""
    threads = [threading.Thread(target=target, name=f"{name}-{i}", daemon=True)
               for i in range(max(count, 1))]
    try:
        for t in threads:               # inside the try: a Ctrl-C between two starts
            t.start()                   # must not leave started threads unwaited
        for t in threads:
            while t.is_alive():
                t.join(TICK_SECONDS)
                if tick is not None:
                    tick()
    except KeyboardInterrupt:
        if stop is not None:
            stop()
        for t in threads:
            if t.ident is not None:     # started (a thread sets its ident first thing)
                t.join()
        return True
    return False
