"""decrypt-tree's results on their way from a forked worker to the parent
(crypto/forked.py), in a compact form the parent turns back into the very
DecryptResults the worker made.

The parent's thread is the job's serial part, and unpickling a
DecryptResult the way pickle does any dataclass (its Opened, Entry, streams
list, each class's state dict rebuilt key by key, every string anew) cost
it ~2 us per file even alone, several times that beside busy workers.  Most
of what a file's result holds is the same for every file that one key
opened: the entry's kind, index, display name, thumbprint and flags, the
key's label and the algorithm (its *shape*); the path is the job's own
destination, which the parent has; a plain file's only stream is its
unnamed one, as long as the file.  What differs per file is its size and
its encrypted FEK (every file has a FEK of its own, so no two Entries are
equal).  So a chunk whose every result is such a plain file's travels as
its shapes (each once) and one (size, encrypted FEK, shape) row per file,
and the parent fills each object's fields from those as pickle would (the
instance's ``__dict__``, no ``__init__``).  Any other result (a named
stream, a folder, a path of its own, a subclass) makes its chunk travel as
a plain pickle instead."""
from __future__ import annotations

from dataclasses import fields
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..rawnames import UNNAMED_STREAM
from .decrypt import DecryptResult
from .fek import Algorithm, Entry, Opened

# what every file opened by one key shares: the Entry's fields but the
# encrypted FEK (kind, index, display name, thumbprint, flags), the key's
# label, the algorithm's value (an Enum is rebuilt by a call: once per shape)
Shape = Tuple[str, int, Optional[str], Optional[str], int, str, int]
# (shapes, then per file: bytes written, encrypted FEK, index of its shape),
# in flat lists: no tuple per file to make and unmake
Rows = Tuple[List[Shape], List[int], List[bytes], bytes]
# the fields Unpacker sets, in order: a class that gained one is sent whole
# (pickle's way) rather than rebuilt without it
FIELDS = {Entry: ["kind", "index", "display_name", "thumbprint", "flags", "encrypted_fek"],
          Opened: ["entry", "key", "algorithm"],
          DecryptResult: ["path", "bytes", "streams", "opened", "directory"]}
_FITS = all([f.name for f in fields(cls)] == names for cls, names in FIELDS.items())


def pack(results: Sequence[Any], dests: Sequence[Any]) -> Optional[Rows]:
    """The rows of ``results`` (each the result of the job writing the
    same place of ``dests``), or None where some result is not a plain
    file's DecryptResult that the rows give back equal."""
    if not _FITS:
        return None
    shapes: Dict[Shape, int] = {}
    sizes: List[int] = []
    feks: List[bytes] = []
    at = bytearray()
    try:
        for r, dest in zip(results, dests):
            if (type(r) is not DecryptResult or r.directory is not False
                    or type(r.path) is not str or r.path != dest or type(r.bytes) is not int
                    or type(r.streams) is not list or r.streams != [(UNNAMED_STREAM, r.bytes)]
                    or type(r.streams[0]) is not tuple):
                return None
            o = r.opened
            e = o.entry
            if (type(o) is not Opened or type(e) is not Entry or type(o.algorithm) is not Algorithm
                    or type(e.encrypted_fek) is not bytes):
                return None
            shape = (e.kind, e.index, e.display_name, e.thumbprint, e.flags, o.key,
                     int(o.algorithm))
            at.append(shapes.setdefault(shape, len(shapes)))
            sizes.append(r.bytes)
            feks.append(e.encrypted_fek)
    except (TypeError, ValueError):     # (a field that does not hash; over 256 shapes)
        return None
    if len(sizes) != len(dests):
        return None
    return list(shapes), sizes, feks, bytes(at)


class Unpacker:
    """The parent's side: each shape's fields made once per run."""

    def __init__(self) -> None:
        self._made: Dict[Shape, Tuple[Dict[str, Any], str, Algorithm]] = {}

    def _fields(self, shape: Shape) -> Tuple[Dict[str, Any], str, Algorithm]:
        made = self._made.get(shape)
        if made is None:
            kind, index, display_name, thumbprint, flags, key, algorithm = shape
            made = self._made[shape] = ({"kind": kind, "index": index,
                                         "display_name": display_name,
                                         "thumbprint": thumbprint, "flags": flags},
                                        key, Algorithm(algorithm))
        return made

    def __call__(self, data: Rows, dests: Sequence[str]) -> List[DecryptResult]:
        """The DecryptResults of :func:`pack`'s ``data`` for ``dests``."""
        shapes, sizes, feks, at = data
        fields = [self._fields(s) for s in shapes]
        new = object.__new__
        out: List[DecryptResult] = []
        # (the fields in their classes' order, as __init__ or pickle sets them)
        for dest, size, fek, shape in zip(dests, sizes, feks, at):
            common, key, algorithm = fields[shape]
            entry = new(Entry)
            d = entry.__dict__
            d.update(common)
            d["encrypted_fek"] = fek
            opened = new(Opened)
            d = opened.__dict__
            d["entry"], d["key"], d["algorithm"] = entry, key, algorithm
            r = new(DecryptResult)
            d = r.__dict__
            d["path"], d["bytes"], d["streams"] = dest, size, [(UNNAMED_STREAM, size)]
            d["opened"], d["directory"] = opened, False
            out.append(r)
        return out
