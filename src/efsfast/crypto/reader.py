"""Ciphertext read on a thread of its own while the chunk before it is
decrypted: for a large raw stream file, reading (a copy out of the page
cache, ~0.1 s per GiB) would otherwise run on the decrypting thread, one
after the other with the decryption.  With the writer thread
(``writer.py``) a large decrypt runs as three stages: read, decrypt,
write, each on a thread of its own, all three outside the GIL.

:func:`read_ahead` yields the same chunks, in the same order, as reading
them one after the other would; a read error is raised where the chunk it
stopped would have been yielded.  Each chunk is a view of a buffer that
is refilled once the next chunk is asked for: the caller is done with a
chunk before it asks for the next (as with one reused buffer).
"""
from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator, Optional, Tuple

Readinto = Callable[[bytearray], Optional[int]]
# buffers: one being decrypted, one being read, one read and waiting
BUFFERS = 3


def read_ahead(readinto: Readinto, size: int, buffers: int = BUFFERS) -> Iterator[memoryview]:
    """Chunks of up to ``size`` bytes from ``readinto`` until it returns 0,
    read by a thread while the caller works on the chunk before.  When the
    caller stops early (an error, Ctrl-C, closing the iterator), the thread
    is stopped and waited for before this returns: nothing reads the
    source after that."""
    free: "queue.SimpleQueue[bytearray]" = queue.SimpleQueue()
    for _ in range(buffers):
        free.put(bytearray(size))
    # (buffer, bytes read, the read's error): 0 bytes is the end
    full: "queue.SimpleQueue[Tuple[bytearray, int, Optional[BaseException]]]" = \
        queue.SimpleQueue()
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            buf = free.get()
            if stop.is_set():
                return
            try:
                n = readinto(buf) or 0
            except BaseException as exc:        # raised to the caller, in order
                full.put((buf, 0, exc))
                return
            full.put((buf, n, None))
            if n == 0:
                return

    thread = threading.Thread(target=run, name="efsfast-ciphertext-reader", daemon=True)
    thread.start()
    try:
        while True:
            buf, n, error = full.get()
            if error is not None:
                raise error
            if n == 0:
                return
            with memoryview(buf) as view, view[:n] as chunk:
                yield chunk
            free.put(buf)
    finally:
        stop.set()
        free.put(bytearray(0))      # wakes the thread if it waits for a buffer
        thread.join()
