"""What the command line shows while it works, and how it stops: the
progress bar of a tree job, and Ctrl-C as a cancellation."""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time

TYPE_CHECKING = False           # as in efsfast/__init__.py: no typing import at start-up
if TYPE_CHECKING:
    from types import FrameType
    from typing import Any, Iterator, List, Optional

    from tqdm import tqdm

    from .. import CancelToken


class Progress:
    """A tqdm bar (files, MB, MB/s, ETA) on a terminal; silent otherwise.
    A "scanning" line shows while the tree is listed; the bar replaces it
    with the first finished item, once the total is known.  Close it before
    printing anything else on the terminal (the summary): the bar's last
    state stays, on a line of its own, and is not drawn again."""

    # counts and MB first: a narrow terminal cuts the end of the line, so
    # what is cut is the bar and the timing, never the figures.  (tqdm puts
    # ", " before a postfix itself.)
    FORMAT = ("{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} files{postfix} "
              "|{bar}| {elapsed}<{remaining}, {rate_fmt}")
    # a stream's total is not known until it ends: no percentage, no ETA
    FORMAT_NO_TOTAL = "{desc}: {n_fmt} files{postfix} | {elapsed}, {rate_fmt}"

    def __init__(self, label: str, total_files: int, enabled: bool):
        self.label = label
        self.enabled = enabled and sys.stderr.isatty()
        self.bar: Optional[tqdm[Any]] = None
        self.files = 0
        self.bytes = 0
        self.total = 0
        self.started = 0.0
        self.scan_line = False
        self.closed = False
        self.lock = threading.Lock()     # items finish on worker threads

    def scanning(self, folder: str) -> None:
        if self.enabled:
            sys.stderr.write(f"{self.label}: scanning {folder} ...")
            sys.stderr.flush()
            self.scan_line = True

    def __call__(self, files: int, nbytes: int, total: int) -> None:
        if not self.enabled:
            return
        with self.lock:
            if not self.closed:         # (the summary may be on the screen already)
                self._update(files, nbytes, total)

    def _clear_scan_line(self) -> None:
        if self.scan_line:
            sys.stderr.write("\r\x1b[K")
            self.scan_line = False

    def figures(self, now: float) -> str:
        """What follows the file count: the bytes done and their rate."""
        elapsed = now - self.started
        rate = f", {self.bytes / 1e6 / elapsed:.1f} MB/s" if elapsed > 0 else ""
        return f"{self.bytes / 1e6:.1f} MB{rate}"

    def _update(self, files: int, nbytes: int, total: int) -> None:
        # Items finish on several threads, each reporting the counts as it
        # saw them: a report can arrive after a later one.  The counts only
        # grow, so the largest seen are the ones done.
        self.bytes = max(self.bytes, nbytes)
        files = max(files, self.files)
        if self.bar is None:
            import shutil
            from tqdm import tqdm
            self._clear_scan_line()
            self.started = time.monotonic()
            # a terminal that reports no size (some ptys) gets 80 columns
            sized = shutil.get_terminal_size((0, 0)).columns > 0
            # drawn at once, with these counts and their figures
            self.bar = tqdm(total=total or None, initial=files, unit="file", desc=self.label,
                            file=sys.stderr, dynamic_ncols=sized, ncols=None if sized else 80,
                            leave=True, bar_format=self.FORMAT if total else self.FORMAT_NO_TOTAL,
                            postfix=self.figures(self.started))
            self.total, self.files = total, files
            return
        if total != self.total and total:       # (plain files found: fewer to do)
            self.bar.total = total
            self.bar.bar_format = self.FORMAT
            self.total = total
        # the figures first: the update may draw the line, and draws them too
        self.bar.set_postfix_str(self.figures(time.monotonic()), refresh=False)
        self.bar.update(files - self.files)
        self.files = files

    def close(self) -> None:
        """Draw the last counts and end the bar's line (the summary comes
        after it); idempotent, and later reports draw nothing."""
        with self.lock:
            self.closed = True
            self._clear_scan_line()
            if self.bar is not None:
                self.bar.set_postfix_str(self.figures(time.monotonic()), refresh=False)
                self.bar.close()
                self.bar = None
            sys.stderr.flush()


@contextlib.contextmanager
def ctrl_c_cancels(keep: bool = False) -> Iterator[CancelToken]:
    """Ctrl-C cancels the token instead of raising KeyboardInterrupt at some
    bytecode: the job stops within one system buffer, removes what was
    partial, and returns an exact account of what was done.  A third Ctrl-C
    gives up waiting.  ``keep`` (the efsfast program itself) leaves the
    handler in place afterwards: a Ctrl-C after the summary has nothing to
    stop and must not turn a finished job's exit status into a signal's.
    A program started with SIGINT ignored (``nohup``, a script's ``cmd &``)
    keeps ignoring it, as is the Unix custom and what Python does."""
    from .. import CancelToken
    token = CancelToken()
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is signal.SIG_IGN):
        yield token
        return
    presses: List[int] = []

    def on_sigint(_signum: int, _frame: Optional[FrameType]) -> None:
        presses.append(1)
        token.cancel()
        if len(presses) >= 3:
            raise KeyboardInterrupt
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield token
    finally:
        if not keep:
            signal.signal(signal.SIGINT, previous)


def ignore_ctrl_c_from_now_on() -> None:
    """The program has done its work and reported it: a Ctrl-C during the
    interpreter's shutdown (which puts back the default action) must not
    turn the exit status into a signal's."""
    sys.stdout.flush()
    if threading.current_thread() is not threading.main_thread():
        return
    # SIG_IGN, process-wide: a thread that does not block SIGINT could
    # otherwise take it once finalization has put the default action back
    # (CPython resets a Python-level handler to SIG_DFL at exit, but leaves
    # SIG_IGN alone); seen as exit -2 after a complete summary
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
