"""Writing a bulk backup's manifest lines on a thread of their own.

The calling thread of a folder set's bulk backup (bulk.py) takes the
finished objects' lines from the C workers in runs; writing a run and
feeding it to the manifest's SHA-256 cost it ~0.35 us per object (the hash
~0.18, the write ~0.14 on tmpfs), a serial part that kept the job from
scaling.  Here those writes go, in the order they were sent, to one thread
that does only that (``os.write`` and ``hashlib`` let go of the GIL), so
the two serial parts overlap instead of adding up.

Nothing is lost on the way: a write that fails is handed back with the
ticket it was sent with, and the sender undoes what that ticket stood for
(bulk.py: its objects fail, their files removed), as it did when the write
was its own call."""
from __future__ import annotations

import queue
import threading
from typing import Callable, Generic, List, Optional, Tuple, TypeVar

T = TypeVar("T")

#: what one sent write becomes when it fails: (its ticket, the exception)
Failed = Tuple[T, BaseException]


class LinePipe(Generic[T]):
    """``send(ticket, write)`` queues ``write()`` for the pipe's thread,
    which runs the writes one at a time in the order sent; ``failed()``
    hands back the (ticket, exception) of each write that raised so far,
    ``close()`` waits for every write sent and hands back the rest.  The
    thread starts at the first send (none for a batch that sends nothing)."""

    def __init__(self, name: str = "efsfast-manifest") -> None:
        self._name = name
        self._todo: "queue.SimpleQueue[Optional[Tuple[T, Callable[[], None]]]]" = \
            queue.SimpleQueue()
        self._failed: "queue.SimpleQueue[Failed[T]]" = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None
        self._closed = False

    def send(self, ticket: T, write: Callable[[], None]) -> None:
        if self._closed:
            raise RuntimeError("LinePipe.send after close")
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        self._todo.put((ticket, write))

    def failed(self) -> List[Failed[T]]:
        """The writes found failed since the last call, in the order sent."""
        out: List[Failed[T]] = []
        while True:
            try:
                out.append(self._failed.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> List[Failed[T]]:
        """Wait until every write sent is done; :meth:`failed` of the rest.
        The pipe takes no more writes after this."""
        self._closed = True
        thread, self._thread = self._thread, None
        if thread is not None:
            self._todo.put(None)
            interrupted = False
            while thread.is_alive():    # (the writes sent are few: a Ctrl-C waits
                try:                    # for them, so none lands after the caller's
                    thread.join()       # abort has cut the manifest)
                except KeyboardInterrupt:
                    interrupted = True
            if interrupted:
                raise KeyboardInterrupt
        return self.failed()

    def _run(self) -> None:
        while True:
            item = self._todo.get()
            if item is None:
                return
            ticket, write = item
            try:
                write()
            except BaseException as exc:    # (handed to the sender, never lost here)
                self._failed.put((ticket, exc))
