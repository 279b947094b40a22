# Included by _core.pyx: a backup set's manifest lines read in C, those in
# the writer's own spelling (efs_manifest.c), for the calling thread of a
# restore; every other line is left to Python's json.

cdef str _hex32(const uint8_t *b):
    """32 bytes as bytes.hex() writes them (without the bytes object)."""
    cdef char text[64]
    cdef int i
    for i in range(32):
        text[2 * i] = b"0123456789abcdef"[b[i] >> 4]
        text[2 * i + 1] = b"0123456789abcdef"[b[i] & 15]
    return PyUnicode_DecodeASCII(text, 64, NULL)


def manifest_object_fields(bytes line):
    """The fields of an object line exactly as a backup writes it (whole,
    "\\n" included): (path, directory, raw_size, sha256 hex, source_size,
    efs_sha256 hex, POSIX metadata dict or None); None for any other line
    (another shape or spelling: json reads it, or refuses it)."""
    cdef efs_line_facts f
    cdef uint8_t sha[32]
    cdef uint8_t efs_sha[32]
    cdef size_t n = len(line)
    cdef uint8_t small[256]
    cdef uint8_t *buf = small
    if n > sizeof(small):
        buf = <uint8_t *>malloc(n)
        if buf == NULL:
            raise MemoryError()
    try:
        if not efs_manifest_read_object_line(<const char *>line, n, &f, buf, sha, efs_sha):
            return None
        path = PyUnicode_DecodeUTF8(<const char *>f.path, f.path_len, NULL)
    finally:
        if buf != small:
            free(buf)
    return (path, bool(f.directory), f.raw_size, _hex32(sha), f.source_size, _hex32(efs_sha),
            _posix_meta(&f))


cdef object _posix_meta(const efs_line_facts *f):
    """A line's POSIX metadata as json reads it (its keys in the line's
    order, sorted); None where the line has none."""
    if not f.posix_meta:
        return None
    return {"atime_ns": f.atime_ns, "ctime_ns": f.ctime_ns, "mode": f.mode,
            "mtime_ns": f.mtime_ns, "source": "posix"}


cdef extern from "<string.h>":
    const void *memchr(const void *s, int c, size_t n) nogil


def manifest_object_entries(bytes data, Py_ssize_t pos, make, file_kind, dir_kind, list out):
    """Every object line from offset ``pos`` of a manifest's bytes on, as
    :func:`manifest_object_fields` reads them, each appended to ``out`` as
    ``make(path, kind, raw_size, sha256, source_size, efs_sha256, meta)``
    (``kind``: ``file_kind`` or ``dir_kind``; ``meta`` the POSIX metadata
    dict, or a new empty one), up to the first line that is not one (or has
    no "\\n": a last line cut short): ``(its offset, lines taken)``."""
    cdef const char *base = PyBytes_AS_STRING(data)
    cdef Py_ssize_t size = len(data), start = pos, taken = 0
    cdef const char *nl
    cdef size_t n, cap = 256
    cdef efs_line_facts f
    cdef uint8_t sha[32]
    cdef uint8_t efs_sha[32]
    cdef uint8_t *buf = <uint8_t *>malloc(cap)
    cdef uint8_t *grown
    if buf == NULL:
        raise MemoryError()
    try:
        while start < size:
            nl = <const char *>memchr(base + start, b'\n', <size_t>(size - start))
            if nl == NULL:
                break
            n = <size_t>(nl - (base + start)) + 1
            if n > cap:
                grown = <uint8_t *>realloc(buf, n)
                if grown == NULL:
                    raise MemoryError()
                buf, cap = grown, n
            if not efs_manifest_read_object_line(base + start, n, &f, buf, sha, efs_sha):
                break
            path = PyUnicode_DecodeUTF8(<const char *>f.path, f.path_len, NULL)
            meta = _posix_meta(&f)
            out.append(make(path, dir_kind if f.directory else file_kind, f.raw_size,
                            _hex32(sha), f.source_size, _hex32(efs_sha),
                            {} if meta is None else meta))
            start += <Py_ssize_t>n
            taken += 1
    finally:
        free(buf)
    return start, taken
