"""run_forked's results in job order, each chunk's kept as the worker sent
it (one pickle) until someone asks for one of its items.

While the workers run, the parent's thread is the serial part of the job:
unpickling every item's result there (a DecryptResult with its Opened and
Entry: four objects) cost it ~10 us per item on 2 loaded cores, more than
all its other work.  A chunk every item of which succeeded is therefore
only stored (its sizes travel beside it, for the counts and the progress),
and unpickled when the list is read: after the job, by the caller that
wants the results.  Reading any item, iterating, comparing or changing
the list gives exactly the items the workers returned."""
from __future__ import annotations

import bisect
import pickle
from collections.abc import MutableSequence
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple, Union, overload


class ChunkedResults(MutableSequence[Any]):
    """A list of ``n`` results (None until set), some of them still in
    the pickled chunks :meth:`add_chunk` stored."""

    __hash__ = None     # type: ignore[assignment]     # (mutable, as a list)

    def __init__(self, n: int) -> None:
        self._items: List[Any] = [None] * n
        self._pending: Dict[int, Tuple[range, bytes]] = {}     # chunk's start -> chunk, pickle
        self._starts: Optional[List[int]] = []          # sorted starts (None: to sort again)

    def add_chunk(self, chunk: range, body: bytes) -> None:
        """The items of ``chunk``: ``body`` is the pickle of a list of
        (index, result, None), one per index of ``chunk``."""
        self._pending[chunk.start] = (chunk, body)
        self._starts = None

    def _decode(self, start: int) -> None:
        chunk, body = self._pending.pop(start)
        self._starts = None
        for index, result, _ in pickle.loads(body):
            self._items[index] = result

    def _decode_at(self, index: int) -> None:
        if not self._pending:
            return
        if self._starts is None:
            self._starts = sorted(self._pending)
        at = bisect.bisect_right(self._starts, index) - 1
        if at >= 0:
            chunk, _ = self._pending[self._starts[at]]
            if index in chunk:
                self._decode(chunk.start)

    def _decode_all(self) -> List[Any]:
        for start in sorted(self._pending):
            self._decode(start)
        return self._items

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> List[Any]: ...

    def __getitem__(self, index: Union[int, slice]) -> Any:
        if isinstance(index, slice):
            return self._decode_all()[index]
        index = range(len(self._items))[index]      # (negative, and out of range: IndexError)
        self._decode_at(index)
        return self._items[index]

    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(index, slice):
            self._decode_all()[index] = value
            return
        index = range(len(self._items))[index]
        self._decode_at(index)
        self._items[index] = value

    def __delitem__(self, index: Union[int, slice]) -> None:
        del self._decode_all()[index]           # (indices move: every chunk decoded first)

    def insert(self, index: int, value: Any) -> None:
        self._decode_all().insert(index, value)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._decode_all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (ChunkedResults, list)):
            return self._decode_all() == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return repr(self._decode_all())

    def __reduce__(self) -> Tuple[Any, Tuple[Iterable[Any]]]:
        return list, (list(self._decode_all()),)     # (a copy travels as a plain list)
