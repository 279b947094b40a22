# Included by _core.pyx: a restore that checks what it reads against a
# backup set's manifest (size and SHA-256), as the bytes pass.
#
# A checked source wraps the trampoline that fills each system buffer: the
# bytes are hashed in that buffer, on the thread that restores, without the
# GIL (efs_sha256.c).  The verdict comes when the source ends: the system
# side asks for more until the source says "no more", and only then
# publishes (efs_posix_import.c, and advapi32's WriteEncryptedFileRaw), so a
# mismatch returned there leaves nothing at the destination.  Sources without
# an expectation are not wrapped and pay nothing.

cdef enum CheckState:
    CHECK_PENDING = 0       # not decided (the source did not end)
    CHECK_MATCHED = 1
    CHECK_MISMATCHED = 2    # size or hash differ: the verdict is in `got`
    CHECK_UNKNOWN = 3       # stopped early and the rest could not be read


cdef struct object_check:
    uint64_t expect_size
    uint8_t expect[32]
    uint64_t got_size
    uint8_t got[32]
    int state               # CheckState
    int finished            # `got` holds the digest of the whole source
    int stopped_here        # the check itself stopped the restore (else: what did?)


cdef struct checked_source:
    efs_import_func inner
    void *inner_ctx
    object_check *check
    efs_sha256 hash


cdef void check_start(checked_source *s, object_check *chk, efs_import_func inner,
                      void *inner_ctx) noexcept nogil:
    s.inner = inner
    s.inner_ctx = inner_ctx
    s.check = chk
    chk.got_size = 0
    chk.state = CHECK_PENDING
    chk.finished = 0
    chk.stopped_here = 0
    efs_sha256_init(&s.hash)


cdef void check_finish(checked_source *s) noexcept nogil:
    cdef object_check *chk = s.check
    efs_sha256_final(&s.hash, chk.got)
    chk.finished = 1
    if chk.got_size == chk.expect_size and memcmp(chk.got, chk.expect, 32) == 0:
        chk.state = CHECK_MATCHED
    else:
        chk.state = CHECK_MISMATCHED


cdef efs_dword import_checked(uint8_t *pbData, void *ctx, efs_ulong *ulLength) noexcept nogil:
    cdef checked_source *s = <checked_source *>ctx
    cdef object_check *chk = s.check
    cdef efs_dword rc = s.inner(pbData, s.inner_ctx, ulLength)
    cdef efs_ulong n
    if rc:
        return rc
    n = ulLength[0]
    if n == 0:                      # the end: the verdict, before anything is published
        check_finish(s)
        if chk.state == CHECK_MATCHED:
            return 0
        chk.stopped_here = 1
        return EFS_ERROR_INVALID_DATA
    efs_sha256_update(&s.hash, pbData, n)
    chk.got_size += n
    if chk.got_size > chk.expect_size:
        # longer than the manifest says: stop writing here (check_drain
        # hashes the rest for the report)
        chk.state = CHECK_MISMATCHED
        chk.stopped_here = 1
        return EFS_ERROR_INVALID_DATA
    return 0


cdef efs_dword checked_write(const efs_backend *be, void *ctx, efs_import_func inner,
                             void *inner_ctx, import_ctx *c, object_check *chk) noexcept nogil:
    """WriteEncryptedFileRaw through a checked source (``c``: the inner
    source's context, read further where the restore stops early)."""
    cdef checked_source s
    cdef efs_dword rc
    check_start(&s, chk, inner, inner_ctx)
    rc = be.write(import_checked, &s, ctx)
    if rc != 0 and rc != EFS_ERROR_CANCELLED and chk.state != CHECK_MATCHED:
        check_drain(&s, c)
    return rc


cdef void check_drain(checked_source *s, import_ctx *c) noexcept nogil:
    """After a restore that stopped before its source ended (a format error,
    a source longer than listed): hash what is left of a buffer or file
    source, so the report can give the whole object's size and SHA-256.
    Failure paths only; other sources are not read further (the verdict
    stays pending), a read error or a cancel leaves it unknown."""
    cdef object_check *chk = s.check
    cdef uint8_t *buf
    cdef long n
    cdef int err = 0
    if chk.finished:
        return
    if c.data != NULL or c.length:
        efs_sha256_update(&s.hash, c.data + c.position, c.length - c.position)
        chk.got_size += c.length - c.position
        c.position = c.length
    elif c.fd >= 0:
        buf = <uint8_t *>malloc(65536)
        if buf == NULL:
            chk.state = CHECK_UNKNOWN
            return
        while True:
            if cancelled(c.cancel, c.sigint_base):     # (a large object, then Ctrl-C)
                n = -1
                break
            n = efs_fd_read(c.fd, buf, 65536, c.fd_offset, &err)
            if n <= 0:
                break
            efs_sha256_update(&s.hash, buf, <size_t>n)
            chk.got_size += <uint64_t>n
            if c.fd_offset >= 0:
                c.fd_offset += n
        free(buf)
        if n < 0:
            chk.state = CHECK_UNKNOWN
            return
    else:
        return                      # a Python source: not read further
    check_finish(s)


cdef int check_expect(object_check *chk, object expect) except -1:
    """Fill in the expectation ``(size, sha256)`` (hex text or 32 bytes)."""
    size, digest = expect
    if type(digest) is str and _unhex32(digest, chk.expect):
        pass                    # (a manifest line's: no bytes object per item)
    else:
        digest = bytes.fromhex(digest) if isinstance(digest, str) else bytes(digest)
        if len(digest) != 32:
            raise ValueError(f"an expected SHA-256 is 32 bytes (64 hex digits), not {len(digest)}")
        memcpy(chk.expect, <const char *>digest, 32)
    if size < 0:
        raise ValueError(f"an expected size is at least 0, not {size}")
    chk.expect_size = size
    chk.state = CHECK_PENDING
    chk.finished = 0
    chk.got_size = 0
    return 0


cdef inline int _hexval(char c) noexcept:
    if c'0' <= c <= c'9':
        return c - c'0'
    if c'a' <= c <= c'f':
        return c - c'a' + 10
    if c'A' <= c <= c'F':
        return c - c'A' + 10
    return -1


cdef int _unhex32(str text, uint8_t *out) except -1:
    """1 with ``out`` set where ``text`` is 64 hex digits and nothing else;
    0 otherwise (bytes.fromhex then reads it, or says why not)."""
    cdef Py_ssize_t n
    cdef const char *p
    cdef int i, hi, lo
    if len(text) != 64:
        return 0
    p = PyUnicode_AsUTF8AndSize(text, &n)
    if n != 64:
        return 0
    for i in range(32):
        hi, lo = _hexval(p[2 * i]), _hexval(p[2 * i + 1])
        if hi < 0 or lo < 0:
            return 0
        out[i] = <uint8_t>((hi << 4) | lo)
    return 1


cdef object check_error(object_check *chk, efs_dword rc, object source, object other):
    """The error of a checked restore that returned ``rc``: an
    ObjectMismatchError naming the raw stream and both hashes where the
    object differs from its manifest line (``other``, the error the restore
    stopped with otherwise, becomes its detail), ``other`` where the check
    has nothing to add, None where all is well."""
    path = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
    if rc == 0 and chk.state != CHECK_MATCHED:
        # (the system sides read every source to its end before they succeed)
        return EfsError(EFS_ERROR_INVALID_DATA, "the restore ended before its source did: "
                        "the object could not be checked against the manifest", path)
    if rc == EFS_ERROR_CANCELLED or chk.state == CHECK_MATCHED or chk.state == CHECK_PENDING:
        return other
    if chk.state == CHECK_UNKNOWN and not chk.stopped_here:
        return other                # stopped for another reason; the rest was unreadable
    if chk.stopped_here:
        other = None
    got = None
    if chk.state == CHECK_MISMATCHED and chk.finished:
        got = PyBytes_FromStringAndSize(<char *>chk.got, 32).hex()
    detail = None
    if other is not None:
        why = other.strerror if isinstance(other, OSError) else other
        detail = f"the restore stopped at: {why}"
    return ObjectMismatchError(path, chk.expect_size,
                               PyBytes_FromStringAndSize(<char *>chk.expect, 32).hex(),
                               chk.got_size, got, detail)

