# Included by _core.pyx: the raw calls themselves, OpenEncryptedFileRaw /
# WriteEncryptedFileRaw / ReadEncryptedFileRaw / CloseEncryptedFileRaw (spec 7.2).

cdef class RawContext:
    """An open raw-EFS context: the PyCapsule of pywin32, with a safe close
    (its fields are declared in _core.pxd)."""

    def __dealloc__(self):
        if self.ctx != NULL and self.backend is not None:
            self.backend.c_backend.close(self.ctx)
            self.ctx = NULL

    @property
    def closed(self):
        return self.ctx == NULL

    def close(self):
        """CloseEncryptedFileRaw; calling it twice is harmless."""
        if self.busy:
            raise RuntimeError("the context is in use by a running read or write")
        if self.ctx != NULL:
            self.backend.c_backend.close(self.ctx)
            self.ctx = NULL

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    cdef void *enter(self) except NULL:
        if self.ctx == NULL:
            raise EfsError(6, "the raw context is closed")   # ERROR_INVALID_HANDLE
        if self.busy:
            raise RuntimeError("the raw context is already in use (re-entrant call from a callback?)")
        self.busy = 1
        return self.ctx

    cdef raise_for(self, efs_dword rc, object stored=None):
        """Raise the stored exception first, then what the C status means."""
        if stored is not None:
            raise stored
        if rc == 0:
            return
        fmt, err, op = self.backend.details(self.ctx)
        if fmt is not None:
            fmt.filename = os.fspath(self.path)
            raise fmt
        if rc == EFS_ERROR_CANCELLED:
            PyErr_CheckSignals()          # Ctrl-C: raises KeyboardInterrupt
            raise CancelledError(rc, "cancelled", os.fspath(self.path))
        msg = None
        if err:
            msg = f"{op}: {os.strerror(err)}" if op else os.strerror(err)
        elif op:
            msg = op
        raise EfsError(rc, msg, os.fspath(self.path), err or None)


def open_raw(path, unsigned long flags, Backend backend=None):
    """OpenEncryptedFileRaw: returns a RawContext."""
    cdef RawContext rc_obj = RawContext.__new__(RawContext)
    cdef void *ctx = NULL
    cdef efs_dword rc
    if backend is None:
        backend = default_backend()
    rc = backend.c_open(path, flags, &ctx)
    if rc:
        raise EfsError(rc, None, os.fspath(path))
    rc_obj.ctx = ctx
    rc_obj.backend = backend
    rc_obj.path = path
    rc_obj.flags = flags
    return rc_obj


def write_raw(RawContext raw, source, CancelToken cancel=None, callback_context=None,
              bint pywin32=False, expect=None):
    """WriteEncryptedFileRaw from ``source``; returns (bytes, calls).
    ``expect``: ``(size, sha256)`` the stream must have (a backup set's
    manifest line), checked as it passes; a stream that differs raises
    :class:`ObjectMismatchError` and nothing is published."""
    cdef void *ctx = raw.enter()
    cdef import_ctx c
    cdef Py_buffer view
    cdef efs_dword rc = 0
    cdef PySource ps
    cdef int fd = -1
    cdef bint own_fd = False
    cdef SourceKind kind
    cdef object_check chk
    cdef object_check *pchk = NULL
    cdef const efs_backend *be = raw.backend.c_backend
    try:
        kind = SOURCE_PYWIN32 if pywin32 else classify_source(source)
        if expect is not None:
            check_expect(&chk, expect)
            pchk = &chk
        init_import(&c, cancel_ptr(cancel))
        if kind == SOURCE_BUFFER:
            # held (exported) for the whole call: closing an mmap or resizing
            # a bytearray meanwhile raises BufferError instead of crashing
            try:
                acquire(source, &view, PyBUF_ANY_CONTIGUOUS)
            except BufferError:
                # a non-contiguous exporter: one contiguous copy
                source = memoryview(source).tobytes()
                acquire(source, &view, PyBUF_ANY_CONTIGUOUS)
            try:
                # any contiguous buffer is a run of view.len bytes, whatever its item type
                c.data = <const uint8_t *>view.buf
                c.length = view.len
                with nogil:
                    if pchk != NULL:
                        rc = checked_write(be, ctx, import_from_buffer, &c, &c, pchk)
                    else:
                        rc = be.write(import_from_buffer, &c, ctx)
            finally:
                release(&view)
            raise_checked(raw, rc, pchk, None, None)
            return c.bytes, c.calls
        if kind == SOURCE_PATH or kind == SOURCE_FD:
            if kind == SOURCE_PATH:
                fd = os.open(source, os.O_RDONLY | getattr(os, "O_BINARY", 0))
                own_fd = True
                c.fd_offset = 0
            else:
                fd = source
            c.fd = fd
            try:
                with nogil:
                    if pchk != NULL:
                        rc = checked_write(be, ctx, import_from_fd, &c, &c, pchk)
                    else:
                        rc = be.write(import_from_fd, &c, ctx)
            finally:
                if own_fd:
                    os.close(fd)
            if rc == EFS_ERROR_READ_FAULT and c.read_errno:
                raise OSError(c.read_errno, os.strerror(c.read_errno),
                              source if kind == SOURCE_PATH else None)
            raise_checked(raw, rc, pchk, None, source if kind == SOURCE_PATH else None)
            return c.bytes, c.calls
        ps = PySource.__new__(PySource)
        ps.kind = kind
        ps.source = iter(source) if kind == SOURCE_ITERABLE else source
        ps.context = callback_context
        ps.c = c
        ps.c.owner = <PyObject *>ps
        with nogil:
            if pchk != NULL:
                rc = checked_write(be, ctx, import_from_python, &ps.c, &ps.c, pchk)
            else:
                rc = be.write(import_from_python, &ps.c, ctx)
        raise_checked(raw, rc, pchk, ps.error, None)
        return ps.c.bytes, ps.c.calls
    finally:
        raw.busy = 0


cdef raise_checked(RawContext raw, efs_dword rc, object_check *chk, object stored, object path):
    """What a write's outcome raises: as RawContext.raise_for, and where the
    stream was checked, a mismatch first (naming ``path``)."""
    if chk == NULL:
        raw.raise_for(rc, stored)
        return
    other = None
    try:
        raw.raise_for(rc, stored)
    except BaseException as exc:
        other = exc
    error = check_error(chk, rc, path, other)
    if error is not None:
        raise error


def read_raw(RawContext raw, sink=None, CancelToken cancel=None, callback_context=None,
             bint pywin32=False):
    """ReadEncryptedFileRaw into ``sink``: None -> returns (bytes, data);
    an fd, a writable buffer, a bytearray (extended), an object with write(),
    or a pywin32 ExportCallback.  Returns (bytes, calls, data or None)."""
    cdef void *ctx = raw.enter()
    cdef export_ctx c
    cdef Py_buffer view
    cdef efs_dword rc = 0
    cdef PySink pk
    cdef bint fixed = False
    try:
        c.data = NULL
        c.length = c.capacity = 0
        c.grow = 1
        c.big = 0
        c.fd = -1
        c.write_errno = 0
        c.cancel = cancel_ptr(cancel)
        c.sigint_base = efs_sigint_count()
        c.calls = c.bytes = 0
        c.owner = NULL
        if isinstance(sink, ExportBuffer):
            return _read_raw_owned(raw, <ExportBuffer>sink, &c, ctx)
        if pywin32 or (sink is not None and not isinstance(sink, (int, bytearray))
                       and not _is_writable_buffer(sink)):
            pk = PySink.__new__(PySink)
            pk.kind = (SINK_PYWIN32 if pywin32 or (callable(sink) and not hasattr(sink, "write"))
                       else SINK_WRITE)
            if pk.kind == SINK_WRITE and not hasattr(sink, "write"):
                raise TypeError(f"cannot back up into {type(sink).__name__}: expected None, a "
                                "file descriptor, a writable buffer, a bytearray, an object "
                                "with write() or an ExportCallback")
            pk.sink = sink
            pk.context = callback_context
            pk.c = c
            pk.c.owner = <PyObject *>pk
            with nogil:
                rc = raw.backend.c_backend.read(export_to_python, &pk.c, ctx)
            raw.raise_for(rc, pk.error)
            return pk.c.bytes, pk.c.calls, None
        if isinstance(sink, int):
            c.fd = sink
            with nogil:
                rc = raw.backend.c_backend.read(export_to_fd, &c, ctx)
            if c.write_errno:
                raise OSError(c.write_errno, os.strerror(c.write_errno))
            raw.raise_for(rc)
            return c.bytes, c.calls, None
        if sink is not None and not isinstance(sink, bytearray):
            acquire(sink, &view, PyBUF_WRITABLE | PyBUF_ANY_CONTIGUOUS)
            fixed = True
            c.data = <uint8_t *>view.buf
            c.capacity = view.len
            c.grow = 0
        try:
            with nogil:
                rc = raw.backend.c_backend.read(export_to_memory, &c, ctx)
            raw.raise_for(rc)
            if fixed:
                return c.bytes, c.calls, None
            data = PyBytes_FromStringAndSize(<char *>c.data, c.length) if c.length else b""
            if isinstance(sink, bytearray):
                sink += data
                return c.bytes, c.calls, None
            return c.bytes, c.calls, data
        finally:
            if fixed:
                release(&view)
            elif c.data != NULL:
                free(c.data)
    finally:
        raw.busy = 0


cdef tuple _read_raw_owned(RawContext raw, ExportBuffer buf, export_ctx *c, void *ctx):
    """read_raw into an ExportBuffer: appended to its own memory, which
    stays the buffer's whatever happens (freed with it)."""
    cdef efs_dword rc
    buf.lend(c)
    try:
        with nogil:
            rc = raw.backend.c_backend.read(export_to_memory, c, ctx)
    finally:
        buf.take_back(c)
    raw.raise_for(rc)
    return c.bytes, c.calls, None


cdef bint _is_writable_buffer(object obj):
    cdef Py_buffer view
    try:
        PyObject_GetBuffer(obj, &view, PyBUF_WRITABLE | PyBUF_ANY_CONTIGUOUS)
    except (TypeError, BufferError):
        return False
    PyBuffer_Release(&view)
    return True

