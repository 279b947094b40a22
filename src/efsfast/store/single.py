"""One raw stream as one object (``efsfast restore s3://…/x.efsraw DEST``,
``efsfast backup SRC s3://…/x.efsraw``): the URL's last part is the key,
what comes before it the store."""
from __future__ import annotations

import contextlib
from typing import Any, BinaryIO, Iterator, Tuple

from .base import Failure, Store, StoreError
from .s3config import SCHEME, is_s3_url

# what a missing source fails with: the object, or its bucket, is not there
# (the command line refuses such a restore before any work, exit 2)
MISSING = frozenset({Failure.NOT_FOUND, Failure.NO_BUCKET})
WHOLE_LIMIT = 256 << 20         # fetched in one buffer up to this; streamed above
READ_CHUNK = 8 << 20


def split_object_url(url: str) -> Tuple[str, str]:
    """``s3://BUCKET/PREFIX/NAME`` -> (``s3://BUCKET/PREFIX``, ``NAME``)."""
    if not is_s3_url(url) or "/" not in url[len(SCHEME):].strip("/"):
        raise StoreError(Failure.CONFIG, f"not an object URL (s3://BUCKET/KEY): {url!r}")
    where, _, key = url.rstrip("/").rpartition("/")
    return where, key


@contextlib.contextmanager
def object_source(url: str, **options: Any) -> Iterator[Any]:
    """The raw stream at ``url`` as a restore source: the library's buffer
    (bytes-like: the C import path, no copy) or, above WHOLE_LIMIT, a
    stream of ranged reads."""
    from . import open_store
    where, key = split_object_url(url)
    with open_store(where, **options) as store:
        info = store.stat(key)
        if info is None:
            raise StoreError(Failure.NOT_FOUND, "no such object", url)
        yield store.read(key) if info.size <= WHOLE_LIMIT else store.read_chunks(key)


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    while True:
        b = f.read(READ_CHUNK)
        if not b:
            return
        yield b


def upload_file(path: str, url: str, *, replace: bool, **options: Any) -> int:
    """The file ``path`` (a raw stream written there first) as the object
    at ``url``: create-only unless ``replace``; its size."""
    from . import open_store
    where, key = split_object_url(url)
    store: Store
    with open_store(where, **options) as store:
        store.check(write=True)
        with open(path, "rb") as f:
            return store.write(key, _chunks(f), replace=replace).size
