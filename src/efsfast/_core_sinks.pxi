# Included by _core.pyx: the export side (backup).  Sinks of every kind and
# the trampolines ReadEncryptedFileRaw calls (spec 7.4).

cdef struct export_ctx:
    uint8_t *data            # memory sinks
    size_t length
    size_t capacity
    int grow                 # realloc allowed (data is ours)
    int big                  # data is an ExportBuffer's: grown by efs_big_grow
    int fd                   # fd sinks
    int write_errno
    int *cancel
    unsigned sigint_base
    uint64_t calls
    uint64_t bytes
    PyObject *owner


cdef efs_dword export_to_memory(uint8_t *pbData, void *ctx, efs_ulong n) noexcept nogil:
    cdef export_ctx *c = <export_ctx *>ctx
    cdef size_t cap
    cdef uint8_t *p
    c.calls += 1
    if cancelled(c.cancel, c.sigint_base):
        return EFS_ERROR_CANCELLED
    if n > c.capacity - c.length:
        if not c.grow:
            return EFS_ERROR_INSUFFICIENT_BUFFER
        cap = c.capacity * 2 if c.capacity else 65536
        while cap - c.length < n:
            cap *= 2
        if c.big:
            p = efs_big_grow(c.data, c.capacity, cap)
        else:
            p = <uint8_t *>realloc(c.data, cap)
        if p == NULL:
            return EFS_ERROR_NOT_ENOUGH_MEMORY
        c.data = p
        c.capacity = cap
    memcpy(c.data + c.length, pbData, n)
    c.length += n
    c.bytes += n
    return 0


cdef uint8_t empty_export[1]


cdef class ExportBuffer:
    """A raw stream exported into memory of its own (``read_raw(raw,
    ExportBuffer(hint))``), read through the buffer protocol (read-only)
    without a copy into ``bytes``; the memory goes back to the system when
    the buffer and every view of it are gone (efs_big_alloc: not kept in
    malloc's arenas).  ``hint``: the expected size, mapped up front (pages
    cost memory only once written); it grows as needed."""
    cdef uint8_t *data
    cdef size_t length
    cdef size_t capacity
    cdef Py_ssize_t exports
    cdef bint filling

    def __cinit__(self, size_t hint=0):
        if hint:
            self.data = efs_big_alloc(hint)
            if self.data == NULL:
                raise MemoryError(f"cannot map {hint} bytes for an exported stream")
            self.capacity = hint

    def __dealloc__(self):
        if self.data != NULL:
            efs_big_free(self.data, self.capacity)

    def __len__(self):
        return self.length

    def __getbuffer__(self, Py_buffer *view, int flags):
        if self.filling:
            raise BufferError("the buffer is being filled by an export")
        PyBuffer_FillInfo(view, self, <void *>(self.data if self.data != NULL else empty_export),
                          <Py_ssize_t>self.length, 1, flags)
        self.exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self.exports -= 1

    cdef lend(self, export_ctx *c):
        """Hand the memory to an export (which appends to it)."""
        if self.exports or self.filling:
            raise BufferError("an ExportBuffer with views of it open cannot be filled")
        self.filling = True
        c.data, c.length, c.capacity = self.data, self.length, self.capacity
        c.grow = c.big = 1

    cdef void take_back(self, export_ctx *c):
        """The export's memory (grown or not) is this buffer's again."""
        self.data, self.length, self.capacity = c.data, c.length, c.capacity
        self.filling = False


cdef efs_dword export_to_fd(uint8_t *pbData, void *ctx, efs_ulong n) noexcept nogil:
    cdef export_ctx *c = <export_ctx *>ctx
    c.calls += 1
    if cancelled(c.cancel, c.sigint_base):
        return EFS_ERROR_CANCELLED
    if efs_fd_write_all(c.fd, pbData, n, &c.write_errno) != 0:
        return efs_win32_from_errno(c.write_errno)
    c.bytes += n
    return 0


cdef efs_dword export_to_python(uint8_t *pbData, void *ctx, efs_ulong n) noexcept nogil:
    with gil:
        return (<PySink>(<export_ctx *>ctx).owner).take(pbData, n)


cdef enum SinkKind:
    SINK_WRITE               # an object with write()
    SINK_PYWIN32             # a pywin32 ExportCallback


cdef class PySink:
    """The fallback: an object with write(), or a pywin32 ExportCallback."""
    cdef export_ctx c
    cdef object sink
    cdef SinkKind kind
    cdef object context
    cdef object error

    cdef efs_dword take(self, uint8_t *buf, efs_ulong n) noexcept:
        cdef SystemBuffer sb
        self.c.calls += 1
        if cancelled(self.c.cancel, self.c.sigint_base):
            return EFS_ERROR_CANCELLED
        try:
            sb, view = open_view(buf, n, True)
            try:
                if self.kind == SINK_WRITE:
                    done = 0
                    while done < n:
                        w = self.sink.write(view[done:] if done else view)
                        if w is None:      # a text-mode style write that returns nothing
                            break
                        w = operator.index(w)
                        if w <= 0 or w > n - done:
                            raise ValueError(f"write() returned {w} for {n - done} bytes")
                        done += w
                    code = 0
                else:
                    code = self.sink(view, self.context, n)
                    code = 0 if code is None else operator.index(code)
            finally:
                close_view(sb, view)
        except BaseException as exc:
            if self.error is None:
                self.error = exc
            return SOURCE_RAISED
        if code == 0:
            self.c.bytes += n
        return <efs_dword>code

