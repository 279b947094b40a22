"""A new output file that appears whole or not at all.

It is written under a temporary name beside its destination and gets its
name only once complete: without replacing a file that exists (``link()``
fails rather than replace; a file that appeared meanwhile is not lost)
unless ``overwrite`` is asked, in which case the old file stays whole until
its replacement is complete (``rename()``).  On any failure, Ctrl-C
included, the temporary is removed and the destination is as it was.
"""
from __future__ import annotations

import contextlib
import os
from typing import BinaryIO, Iterator, Union

from ._errors import EfsError
from ._winfs import ERROR_FILE_EXISTS, extended, temp_beside
# (its users' temporaries are removed with it too)
from ._winfs import remove_quietly as remove_quietly

PathLike = Union[str, "os.PathLike[str]"]
EXISTS = "it exists (pass overwrite=True to replace it)"


def refuse_existing(dest: str, exists: str = EXISTS) -> None:
    """The error for a destination that exists and may not be replaced
    (EfsError with ERROR_FILE_EXISTS, naming ``dest``; ``exists``: its text)."""
    if os.path.lexists(extended(dest)):
        raise EfsError(ERROR_FILE_EXISTS, exists, dest)


def publish_no_replace(tmp: str, dest: str, exists: str = EXISTS) -> None:
    """Give the complete file ``tmp`` the name ``dest`` unless that exists
    (then EfsError ERROR_FILE_EXISTS, its text ``exists``)."""
    src, dst = extended(tmp), extended(dest)
    try:
        os.link(src, dst)
    except FileExistsError:
        raise EfsError(ERROR_FILE_EXISTS, exists, dest) from None
    except (OSError, AttributeError, NotImplementedError):
        refuse_existing(dest, exists)   # no hard links here (FAT, some FUSE): check, rename
        os.rename(src, dst)
        return
    os.unlink(src)


@contextlib.contextmanager
def new_file(dest: PathLike, *, overwrite: bool = False, sync: bool = True,
             mode: int = 0o666) -> Iterator[BinaryIO]:
    """A binary file to write ``dest``'s bytes to; ``dest`` gets them when
    the ``with`` block ends without an exception (after an fsync with
    ``sync``).  An existing ``dest`` is refused before anything is written,
    and again when publishing, unless ``overwrite``.  OSErrors name
    ``dest``, never the temporary name."""
    dest = os.fspath(dest)
    if not overwrite:
        refuse_existing(dest)
    tmp = temp_beside(dest)
    try:
        fd = os.open(extended(tmp), os.O_WRONLY | os.O_CREAT | os.O_EXCL
                     | getattr(os, "O_BINARY", 0), mode)
    except OSError as exc:
        exc.filename = dest
        raise
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                yield f
                f.flush()
                if sync:
                    os.fsync(f.fileno())
            if overwrite:
                os.replace(extended(tmp), extended(dest))
            else:
                publish_no_replace(tmp, dest)
        except EfsError:
            raise
        except OSError as exc:      # a full disk, a read-only folder: the destination's
            if exc.filename is None or exc.filename == extended(tmp):
                exc.filename = dest
            raise
    except BaseException:
        remove_quietly(tmp)
        raise
