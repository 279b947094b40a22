"""An object of a backup set checked against its manifest line while it is
decrypted: its size and SHA-256 are taken from the very bytes the
decryption reads (one read, no second pass over the file), and compared
before the plaintext is published."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Protocol, Union

from .._errors import EfsError

ERROR_INVALID_DATA = 13


class Cancel(Protocol):
    """What the decryption of a raw stream asks of a cancel token: a
    CancelToken, or the stop event of a forked worker (forked.py)."""
    @property
    def cancelled(self) -> bool: ...


class ObjectMismatchError(EfsError):
    """A set object whose bytes are not the ones its manifest lists
    (damaged, cut, or replaced by another object)."""
    error_kind = "mismatch"     # efsfast.messages.ErrorKind.MISMATCH (the --json "kind")


@dataclass(frozen=True)
class Expected:
    """What the manifest says of one raw stream."""
    raw_size: int
    sha256: str


class Tally:
    """The size and SHA-256 of what passed, and the check against
    :class:`Expected`.  ``hashlib`` releases the GIL on large updates, so
    workers hash in parallel."""

    def __init__(self, expected: Expected) -> None:
        import hashlib          # (only a set's objects are hashed: ~3 ms less start-up)
        self.expected = expected
        self.digest = hashlib.sha256()
        self.count = 0

    def update(self, chunk: Union[bytes, bytearray, memoryview]) -> None:
        self.digest.update(chunk)
        self.count += len(chunk)

    def drain(self, rest: Iterator[Union[bytes, memoryview]],
              cancel: Optional[Cancel] = None) -> bool:
        """Hash what the decryption did not read (it stopped at damage), so
        that the mismatch can be named; only done on that failure path.
        False where ``cancel`` stopped it first (a large object)."""
        for chunk in rest:
            if cancel is not None and cancel.cancelled:
                return False
            self.update(chunk)
        return True

    def check(self, filename: Optional[str], cause: Optional[BaseException] = None) -> None:
        """Raise :class:`ObjectMismatchError` naming both sizes or hashes
        when what passed is not what the manifest lists (``cause``: the
        error the decryption stopped at, said along)."""
        got, want = self.digest.hexdigest(), self.expected
        if self.count == want.raw_size and got == want.sha256:
            return
        what = (f"{self.count} bytes, the manifest says {want.raw_size}; "
                if self.count != want.raw_size else "")
        why = f" (decrypting it failed: {cause})" if cause is not None else ""
        raise ObjectMismatchError(
            ERROR_INVALID_DATA, f"not the object the manifest lists: {what}SHA-256 {got}, the "
            f"manifest's {want.sha256}{why}", filename) from cause
