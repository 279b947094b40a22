"""A set in an object store copied into a local folder, for the commands
that read a set by file name (decrypt-tree: its workers, forked processes
among them, open each object by path).  What is copied is what the
manifest lists, and the manifest itself, so the folder is the same set;
the command then checks every object against its manifest line as it
reads it, as for any folder set.  Ciphertext only: no key is involved."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Sequence, Tuple

from ..store import Store, StoreError, open_store
from .manifest import MANIFEST_NAME, PARTIAL_NAME, Manifest
from .s3sink import refused
from .storeread import locate_places, read_store_set


def _copy_down(store: Store, m: Manifest, folder: str) -> None:
    """The manifest (under the name it has in the store) and every object
    of ``m`` this set holds, into ``folder``; an object that cannot be
    fetched is left out (the command names it as missing)."""
    os.makedirs(folder, exist_ok=True)
    name = MANIFEST_NAME if m.complete else PARTIAL_NAME
    with open(os.path.join(folder, name), "wb") as f:
        f.write(memoryview(store.read(name)))
    for e in m.entries:
        if not e.has_stream or e.ref:
            continue
        path = os.path.join(folder, *e.stored_name.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            with open(path, "wb") as f:
                for chunk in store.read_chunks(e.stored_name):
                    f.write(memoryview(chunk))
        except StoreError:
            try:
                os.unlink(path)
            except OSError:
                pass


def open_store_set(url: str, *, partial: bool, command: str, done: str,
                   **store_options: Any) -> Tuple[Store, Manifest]:
    """The store and the manifest of the set at ``url``; refused (exit 2)
    where the store cannot be used or the set is incomplete and not
    ``partial`` (nothing is copied yet)."""
    try:
        store = open_store(url, **store_options)
    except StoreError as exc:
        raise refused(exc) from None
    try:
        return store, read_store_set(store, partial=partial, command=command, done=done)
    except BaseException:
        store.close()
        raise


def stage_set(store: Store, m: Manifest, folder: str, sets: Sequence[str] = (),
              **store_options: Any) -> Tuple[str, List[str], Dict[str, str]]:
    """Copy the set (and, for an incremental set, the sets in stores it
    refers to) below ``folder``: (the set's folder, the folders to name
    with --with, and each folder copied here with the URL of the set it
    holds, so that the command names an object by its URL, never by the
    temporary copy's path)."""
    own = os.path.join(folder, "set")
    _copy_down(store, m, own)
    staged: List[str] = []
    urls = {own: store.url}
    if m.header.refs:
        places: Dict[str, Any] = locate_places(m, sets, store, **store_options)
        for n, (sid, place) in enumerate(places.items()):
            if isinstance(place, Store):
                other = read_store_set(place, command="decrypt-tree", done="decrypted")
                where = os.path.join(folder, f"ref{n}")
                _copy_down(place, other, where)
                urls[where] = place.url
                place.close()
                staged.append(where)
            else:
                staged.append(place)
    return own, staged, urls
