"""Plaintext written on a thread of its own while the next blocks are
decrypted: reading and decrypting run on the caller's thread, writing on
this one, so a large file costs about the longer of the two instead of
their sum.

The decryptor (``_decrypt.Decryptor(..., writer=)``) fills one block of
``_decrypt.OUTPUT_BLOCK`` bytes at a time: :meth:`BlockWriter.take` gives it
a free block (waiting, with the GIL released, until the thread has written
one), :meth:`BlockWriter.put` queues a full one.  A file descriptor is
closed through :meth:`BlockWriter.close_fd`, after its queued blocks.  The
first write error is kept and raised to the decrypting thread (by ``take``
or ``finish``); blocks queued after it are dropped, closes still run.
"""
from __future__ import annotations

import os
import queue
import threading
from typing import Optional, Tuple, Union

from .. import _decrypt

# three blocks: one being filled, one being written, one queued between them
BLOCKS = 3
Job = Optional[Tuple[int, Optional[bytearray], int, Optional[str]]]


class BlockWriter:
    def __init__(self, blocks: int = BLOCKS) -> None:
        self._free: "queue.SimpleQueue[bytearray]" = queue.SimpleQueue()
        for _ in range(blocks):
            self._free.put(bytearray(_decrypt.OUTPUT_BLOCK))
        self._jobs: "queue.SimpleQueue[Job]" = queue.SimpleQueue()
        self._error: Optional[BaseException] = None
        self._dropping = False
        self._thread = threading.Thread(target=self._run, name="efsfast-plaintext-writer",
                                        daemon=True)
        self._thread.start()

    # ---- the decrypting thread

    def take(self) -> bytearray:
        """A free block (waits while every block is queued or being written)."""
        block = self._free.get()
        if self._error is not None:
            self._free.put(block)
            raise self._error
        return block

    def put(self, fd: int, block: bytearray, n: int, path: Optional[str]) -> None:
        self._jobs.put((fd, block, n, path))

    def close_fd(self, fd: int) -> None:
        self._jobs.put((fd, None, 0, None))

    def finish(self) -> None:
        """Wait until everything queued is written and closed; raise the
        first write error."""
        self._stop()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Drop what is queued (the output is being discarded), run the
        closes, wait for the thread: no descriptor is written after this."""
        self._dropping = True
        self._stop()

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()

    # ---- the writing thread

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            fd, block, n, path = job
            try:
                if block is None:
                    os.close(fd)
                elif self._error is None and not self._dropping:
                    _write_all(fd, block, n, path)
            except BaseException as exc:        # kept for the decrypting thread
                if self._error is None:
                    self._error = exc
            finally:
                if block is not None:
                    self._free.put(block)       # always: take() must never wait forever


def _write_all(fd: int, block: Union[bytearray, memoryview], n: int, path: Optional[str]) -> None:
    with memoryview(block) as view:
        done = 0
        while done < n:
            try:
                done += os.write(fd, view[done:n])
            except InterruptedError:
                continue
            except OSError as exc:
                raise OSError(exc.errno, f"cannot write the plaintext: {exc.strerror}",
                              path) from None
