# Included by _core.pyx: source and sink buffers, and the system's buffer as
# a view (spec 7.4/7.5: valid only during the callback).

# ---- buffer accounting (uvloop's habit): every acquisition has its release;
# the tests assert the two counters balance after successes and failures alike.
cdef Py_ssize_t buffers_acquired = 0
cdef Py_ssize_t buffers_released = 0


cdef int acquire(object obj, Py_buffer *view, int flags) except -1:
    global buffers_acquired
    PyObject_GetBuffer(obj, view, flags)
    buffers_acquired += 1
    return 0


cdef void release(Py_buffer *view) noexcept:
    global buffers_released
    PyBuffer_Release(view)
    buffers_released += 1




cdef Py_ssize_t system_views_out = 0


cdef tuple buffer_counts():
    """(acquired, released, system views still exported): _testhooks reads them."""
    return buffers_acquired, buffers_released, system_views_out


# ---- the system's buffer as a view


cdef class SystemBuffer:
    """Exposes the system buffer (pbData) to Python for one callback only.

    Every export is counted; after the callback the view handed out is
    released and ``invalidate`` refuses new exports, so a memoryview the
    source kept becomes unusable.  A view the source *still exports* after
    the call (a slice kept alive, a numpy array over it) is a BufferError.
    """
    cdef uint8_t *ptr
    cdef Py_ssize_t size
    cdef int readonly
    cdef Py_ssize_t exports

    def __getbuffer__(self, Py_buffer *view, int flags):
        if self.ptr == NULL:
            raise BufferError("the system buffer is only valid during the callback")
        global system_views_out
        PyBuffer_FillInfo(view, self, self.ptr, self.size, self.readonly, flags)
        self.exports += 1
        system_views_out += 1

    def __releasebuffer__(self, Py_buffer *view):
        global system_views_out
        self.exports -= 1
        system_views_out -= 1


cdef object open_view(uint8_t *ptr, Py_ssize_t size, bint readonly):
    cdef SystemBuffer b = SystemBuffer.__new__(SystemBuffer)
    b.ptr = ptr
    b.size = size
    b.readonly = readonly
    return b, memoryview(b)


cdef int close_view(SystemBuffer b, object view) except -1:
    try:
        view.release()
    except BufferError:
        b.ptr = NULL
        raise BufferError("the source kept an export of the system buffer view past the "
                          "callback (the buffer is only valid during the call)") from None
    b.ptr = NULL
    if b.exports:
        raise BufferError("the source kept a slice of the system buffer view past the "
                          "callback (the buffer is only valid during the call)")
    return 0

