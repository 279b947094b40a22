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
    """A line's POSIX metadata as json reads it; None where the line has none."""
    if not f.posix_meta:
        return None
    return _posix_meta_dict(f.atime_ns, f.ctime_ns, f.mode, f.mtime_ns)


cdef object _posix_meta_dict(int64_t atime_ns, int64_t ctime_ns, uint32_t mode, int64_t mtime_ns):
    """POSIX metadata as json reads it from a line (its keys in the line's
    order, sorted)."""
    return {"atime_ns": atime_ns, "ctime_ns": ctime_ns, "mode": mode, "mtime_ns": mtime_ns,
            "source": "posix"}


cdef extern from "<string.h>":
    const void *memchr(const void *s, int c, size_t n) nogil
