# Included by _core.pyx: the import side (restore).  Sources of every kind
# and the trampolines WriteEncryptedFileRaw calls (spec 7.5).

# import_ctx, the trampolines' context, is declared in _core.pxd


cdef enum SourceKind:
    SOURCE_BUFFER            # any bytes-like object: copied in C, no GIL
    SOURCE_PATH              # opened and read straight into the system buffer
    SOURCE_FD                # read straight into the system buffer
    SOURCE_READINTO          # the Python fallback, by what the object offers:
    SOURCE_READ
    SOURCE_ITERABLE          #   chunks, the rest of a long one carried over
    SOURCE_PYWIN32           #   a pywin32 ImportCallback


cdef void init_import(import_ctx *c, int *cancel) noexcept nogil:
    c.data = NULL
    c.length = c.position = 0
    c.fd = -1
    c.fd_offset = -1
    c.read_errno = 0
    c.cancel = cancel
    c.sigint_base = efs_sigint_count()
    c.calls = c.bytes = 0
    c.owner = NULL


cdef efs_dword import_from_buffer(uint8_t *pbData, void *ctx, efs_ulong *ulLength) noexcept nogil:
    cdef import_ctx *c = <import_ctx *>ctx
    cdef size_t n = c.length - c.position
    c.calls += 1
    if cancelled(c.cancel, c.sigint_base):
        return EFS_ERROR_CANCELLED
    if n > ulLength[0]:
        n = ulLength[0]
    memcpy(pbData, c.data + c.position, n)
    c.position += n
    c.bytes += n
    ulLength[0] = <efs_ulong>n
    return 0


cdef efs_dword import_from_fd(uint8_t *pbData, void *ctx, efs_ulong *ulLength) noexcept nogil:
    cdef import_ctx *c = <import_ctx *>ctx
    cdef long n
    c.calls += 1
    if cancelled(c.cancel, c.sigint_base):
        return EFS_ERROR_CANCELLED
    n = efs_fd_read(c.fd, pbData, ulLength[0], c.fd_offset, &c.read_errno)
    if n < 0:
        return EFS_ERROR_READ_FAULT
    if c.fd_offset >= 0:
        c.fd_offset += n
    c.bytes += <uint64_t>n
    ulLength[0] = <efs_ulong>n
    return 0


cdef efs_dword import_from_python(uint8_t *pbData, void *ctx, efs_ulong *ulLength) noexcept nogil:
    with gil:
        return (<PySource>(<import_ctx *>ctx).owner).fill(pbData, ulLength)


cdef class PySource:
    """The fallback: readinto / read / iterable of chunks / pywin32 callable."""
    cdef import_ctx c
    cdef object source
    cdef SourceKind kind        # one of the fallback kinds
    cdef object pending         # iterator: the unsent rest of a chunk
    cdef object context         # pywin32: CallbackContext
    cdef object error
    cdef public object win32_code

    cdef efs_dword fill(self, uint8_t *buf, efs_ulong *length) noexcept:
        cdef efs_ulong cap = length[0]
        self.c.calls += 1
        length[0] = 0
        if cancelled(self.c.cancel, self.c.sigint_base):
            return EFS_ERROR_CANCELLED
        try:
            n = self.produce(buf, cap)
        except BaseException as exc:
            self.store(exc)
            return SOURCE_RAISED
        if n < 0:                  # pywin32 callable returned a failure code
            return self.win32_code
        length[0] = <efs_ulong>n
        self.c.bytes += n
        return 0

    cdef store(self, exc):
        # keep the first error; a later one becomes its context
        if self.error is None:
            self.error = exc
        elif exc is not self.error and exc.__context__ is None:
            exc.__context__ = self.error

    cdef Py_ssize_t checked_count(self, object n, efs_ulong cap) except -2:
        if n is None or isinstance(n, bool):
            raise TypeError(f"the source returned {n!r}; expected a byte count (int)")
        n = operator.index(n)
        if n < 0 or n > cap:
            raise ValueError(f"the source returned {n}, outside 0..{cap} (the capacity offered)")
        return n

    cdef Py_ssize_t produce(self, uint8_t *buf, efs_ulong cap) except -2:
        cdef SystemBuffer sb
        cdef Py_buffer src
        cdef Py_ssize_t n
        if self.kind == SOURCE_READINTO or self.kind == SOURCE_PYWIN32:
            sb, view = open_view(buf, cap, False)
            try:
                if self.kind == SOURCE_READINTO:
                    result = self.source.readinto(view)
                else:
                    result = self.source(view, self.context, cap)
            finally:
                close_view(sb, view)
            if self.kind == SOURCE_READINTO:
                return self.checked_count(result, cap)
            if not isinstance(result, tuple) or len(result) != 2:
                raise TypeError("an ImportCallback returns a tuple (error code, bytes written), "
                                f"not {type(result).__name__}")
            code = operator.index(result[0])
            n = self.checked_count(result[1], cap)
            if code:
                self.win32_code = code
                return -1
            return n
        if self.kind == SOURCE_READ:
            data = self.source.read(cap)
            if data is None:
                raise TypeError("read() returned None (a non-blocking source with no data)")
            return self.copy_in(buf, cap, data, False)
        # SOURCE_ITERABLE: chunks larger than the capacity are carried over
        while self.pending is None or len(self.pending) == 0:
            try:
                chunk = next(self.source)
            except StopIteration:
                return 0
            self.pending = memoryview(chunk).cast("B")
        return self.copy_in(buf, cap, self.pending, True)

    cdef Py_ssize_t copy_in(self, uint8_t *buf, efs_ulong cap, object data, bint carry) except -2:
        cdef Py_buffer src
        cdef Py_ssize_t n
        acquire(data, &src, PyBUF_SIMPLE)
        try:
            n = src.len
            if n > cap:
                if not carry:
                    raise ValueError(f"read({cap}) returned {n} bytes, more than asked for")
                n = cap
            memcpy(buf, src.buf, n)
        finally:
            release(&src)
        if carry:
            self.pending = self.pending[n:]
        return n


cdef SourceKind classify_source(object source) except *:
    if isinstance(source, (str, os.PathLike)):
        return SOURCE_PATH
    if isinstance(source, int) and not isinstance(source, bool):
        return SOURCE_FD
    try:
        memoryview(source).release()
        return SOURCE_BUFFER
    except TypeError:
        pass
    if hasattr(source, "readinto"):
        return SOURCE_READINTO
    if hasattr(source, "read"):
        return SOURCE_READ
    if callable(source):
        return SOURCE_PYWIN32
    try:
        iter(source)
    except TypeError:
        raise TypeError(f"cannot restore from {type(source).__name__}: expected a bytes-like "
                        "object, a path, a file descriptor, a binary file, an iterable of "
                        "chunks or an ImportCallback") from None
    return SOURCE_ITERABLE

