"""Where a backup set lives: one small contract (base.Store), and the
stores that implement it.  The S3 store and its client library (the
optional extra ``efsfast[s3]``) load only when an ``s3://`` URL is opened:
``import efsfast`` imports none of this."""
from __future__ import annotations

from typing import Any

from .base import (DEFAULT_JOBS, DEFAULT_MEMORY_LIMIT, DEFAULT_PART_SIZE, Failure, MemoryBudget,
                   ObjectInfo, Store, StoreError, check_key)
from .s3config import is_s3_url, parse_url

__all__ = ["DEFAULT_JOBS", "DEFAULT_MEMORY_LIMIT", "DEFAULT_PART_SIZE", "Failure",
           "MemoryBudget", "ObjectInfo", "Store", "StoreError", "check_key", "is_s3_url",
           "open_store", "parse_url"]


def open_store(url: str, **options: Any) -> Store:
    """The store a set URL names (``s3://BUCKET/PREFIX``); ``options`` go to
    its constructor (jobs, memory_limit, part_size, retries, ...)."""
    if is_s3_url(url):
        from .s3 import S3Store
        return S3Store.from_url(url, **options)
    raise StoreError(Failure.CONFIG, f"not a set URL this build knows: {url!r} "
                     "(s3://BUCKET/PREFIX)")
