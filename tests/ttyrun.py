"""Run the command line on a pseudo-terminal (progress bars, Ctrl-C).

The child is started with subprocess on an ``os.openpty()`` pair rather
than with ``pty.fork()``: the pytest process runs library threads, and a
bare fork of a threaded process is unsafe (CPython 3.12+ warns about it);
subprocess forks and execs in one step, which is safe."""
import os
import select
import signal
import subprocess
import sys

import pytest

try:
    import fcntl
    import struct
    import termios
except ImportError:        # Windows: no termios
    termios = None


# the child starts with SIGINT as a terminal's shell leaves it to a program:
# Python's own handler.  It inherits the disposition of the tests' runner,
# and a runner started in the background (`.ci/run &`) has SIGINT ignored:
# a Ctrl-C sent once "restoring" shows, before efsfast put in its handler,
# was then dropped by the kernel, and the restore ran to its end (exit 0)
_CHILD = ("import runpy, signal; signal.signal(signal.SIGINT, signal.{}); "
          "runpy.run_module('efsfast', run_name='__main__', alter_sys=True)")


def run_in_pty(args, sigint_on=None, timeout=120, columns=100, sigint_ignored=False):
    """Run the CLI on a pseudo-terminal; return (exit code, screen text).
    SIGINT goes to it once ``sigint_on`` (bytes) appears on the screen, while
    it runs (an AssertionError if it ended first).  ``sigint_ignored``: the
    child starts with SIGINT ignored, as ``nohup`` or a script's background
    job leaves it."""
    if termios is None or not hasattr(os, "openpty"):
        pytest.skip("needs a POSIX pseudo-terminal (os.openpty and termios; not on Windows)")
    master, slave = os.openpty()
    try:                                          # a columns x 30 terminal
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, columns, 0, 0))
        # its own session, as pty.fork gave it: a terminal's signals reach it only as sent here
        start = _CHILD.format("SIG_IGN" if sigint_ignored else "default_int_handler")
        child = subprocess.Popen([sys.executable, "-c", start, *args], stdin=slave,
                                 stdout=slave, stderr=slave, start_new_session=True)
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)                           # EOF/EIO on the master once the child is gone
    chunks, sent = [], False
    try:
        while True:
            r, _, _ = select.select([master], [], [], timeout)
            if not r:
                child.kill()
                child.wait()
                raise AssertionError("the CLI hung: " + b"".join(chunks).decode(errors="replace"))
            try:
                data = os.read(master, 4096)
            except OSError:                       # EIO: the slave end is closed (Linux)
                break
            if not data:
                break
            chunks.append(data)
            if not sent and sigint_on is not None and sigint_on in b"".join(chunks):
                assert child.poll() is None, "the CLI ended before the signal could be sent"
                child.send_signal(signal.SIGINT)
                sent = True
        code = child.wait()
    finally:
        os.close(master)
    return code, b"".join(chunks).decode(errors="replace")
