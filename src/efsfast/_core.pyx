# cython: language_level=3
"""The hot path: C import/export trampolines, the Python fallbacks, and the
system sides (backends) they run against.

A restore from a buffer runs entirely in C with the GIL released: the system
side calls ``import_from_buffer`` for each system buffer, which copies
``min(*ulLength, remaining)`` bytes and returns.  Sources that are not
buffers go through ``import_from_python``, which takes the GIL, calls the
source, checks what it returned, and stores any exception on the context; the
exception is raised (before the C status is looked at) once the system call
returns.
"""
from cpython.buffer cimport (PyBuffer_FillInfo, PyBuffer_Release, PyObject_GetBuffer,
                             PyBUF_ANY_CONTIGUOUS, PyBUF_FORMAT, PyBUF_SIMPLE,
                             PyBUF_WRITABLE)
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.exc cimport PyErr_CheckSignals
from cpython.ref cimport PyObject
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy, strdup

from efsfast._cdefs cimport *

import operator
import os
import sys

from efsfast import _winfs
from efsfast._errors import CancelledError, EfsError, RawFormatError

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


def _buffer_counts():
    """(acquired, released) buffers of sources and sinks, and the system
    buffer views still exported (tests: they must balance)."""
    return buffers_acquired, buffers_released, system_views_out


CREATE_FOR_IMPORT = EFS_CREATE_FOR_IMPORT
CREATE_FOR_DIR = EFS_CREATE_FOR_DIR
OVERWRITE_HIDDEN = EFS_OVERWRITE_HIDDEN
EFS_DROP_ALTERNATE_STREAMS_FLAG = EFS_DROP_ALTERNATE_STREAMS
HAVE_POSIX = bool(EFS_HAVE_POSIX)
HAVE_WIN32 = bool(EFS_HAVE_WIN32)

# Returned by a fallback trampoline whose Python source raised: the stored
# exception, not this code, is what the caller sees.
cdef efs_dword SOURCE_RAISED = EFS_ERROR_OPERATION_ABORTED


# ---------------------------------------------------------------- cancel

cdef class CancelToken:
    """A flag the trampolines check on every callback: ``cancel()`` stops a
    running restore or backup within one system buffer."""
    cdef int flag

    def cancel(self):
        self.flag = 1

    @property
    def cancelled(self):
        return bool(self.flag)

    def reset(self):
        self.flag = 0


cdef int *cancel_ptr(CancelToken token):
    return &token.flag if token is not None else NULL


cdef inline bint cancelled(int *flag, unsigned sigint_base) noexcept nogil:
    return (flag != NULL and flag[0]) or efs_sigint_count() != sigint_base


def watch_sigint():
    """Chain efsfast's SIGINT counter in front of Python's handler, so Ctrl-C
    reaches restores that run without the GIL (call from the main thread)."""
    if efs_sigint_install() != 0:
        raise OSError("cannot install the SIGINT handler")


# ------------------------------------------------- the system's buffer as a view

cdef Py_ssize_t system_views_out = 0


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


# ------------------------------------------------------------ import (restore)

cdef struct import_ctx:
    const uint8_t *data      # buffer sources
    size_t length
    size_t position
    int fd                   # fd sources
    int64_t fd_offset        # >= 0: pread at this offset; < 0: read()
    int read_errno
    int *cancel
    unsigned sigint_base     # efs_sigint_count() when the call started
    uint64_t calls
    uint64_t bytes
    PyObject *owner          # the PySource of the fallback path (borrowed)


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
    cdef int kind               # 1 readinto, 2 read, 3 iterator, 4 pywin32 callable
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
        if self.kind == 1 or self.kind == 4:
            sb, view = open_view(buf, cap, False)
            try:
                if self.kind == 1:
                    result = self.source.readinto(view)
                else:
                    result = self.source(view, self.context, cap)
            finally:
                close_view(sb, view)
            if self.kind == 1:
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
        if self.kind == 2:
            data = self.source.read(cap)
            if data is None:
                raise TypeError("read() returned None (a non-blocking source with no data)")
            return self.copy_in(buf, cap, data, False)
        # kind 3: iterable of chunks; chunks larger than the capacity are carried over
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


cdef object classify_source(object source):
    """'buffer', 'path', 'fd' or a PySource kind (1..4)."""
    if isinstance(source, (str, os.PathLike)):
        return "path"
    if isinstance(source, int) and not isinstance(source, bool):
        return "fd"
    try:
        memoryview(source).release()
        return "buffer"
    except TypeError:
        pass
    if hasattr(source, "readinto"):
        return 1
    if hasattr(source, "read"):
        return 2
    if callable(source):
        return 4
    try:
        iter(source)
    except TypeError:
        raise TypeError(f"cannot restore from {type(source).__name__}: expected a bytes-like "
                        "object, a path, a file descriptor, a binary file, an iterable of "
                        "chunks or an ImportCallback") from None
    return 3


# ------------------------------------------------------------ export (backup)

cdef struct export_ctx:
    uint8_t *data            # memory sinks
    size_t length
    size_t capacity
    int grow                 # realloc allowed (data is ours)
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
        p = <uint8_t *>realloc(c.data, cap)
        if p == NULL:
            return EFS_ERROR_NOT_ENOUGH_MEMORY
        c.data = p
        c.capacity = cap
    memcpy(c.data + c.length, pbData, n)
    c.length += n
    c.bytes += n
    return 0


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


cdef class PySink:
    """The fallback: an object with write(), or a pywin32 ExportCallback."""
    cdef export_ctx c
    cdef object sink
    cdef int kind               # 1 write, 2 pywin32 callable
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
                if self.kind == 1:
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


# ------------------------------------------------------------------ backends

cdef class Backend:
    """A system side: the four raw-EFS calls."""
    cdef const efs_backend *c_backend

    @property
    def name(self):
        return self.c_backend.name.decode() if self.c_backend != NULL else "unavailable"

    cdef efs_dword c_open(self, object path, efs_ulong flags, void **ctx) except? 0xFFFFFFFF:
        cdef bytes bpath
        if self.c_backend == NULL:
            raise EfsError(EFS_ERROR_NOT_SUPPORTED, f"the {type(self).__name__} system side "
                           "is not available on this platform")
        bpath = _c_path(path)
        return self.c_open_raw(<const char *>bpath, flags, ctx)

    cdef efs_dword c_open_raw(self, const char *path, efs_ulong flags, void **ctx) except? 0xFFFFFFFF:
        cdef efs_dword rc
        with nogil:
            rc = self.c_backend.open(<const efs_path_char *>path, flags, ctx)
        return rc

    cdef object details(self, void *ctx):
        """(format error or None, errno, operation) of the last failure."""
        return None, 0, None


cdef class PosixBackend(Backend):
    """efsfast's own system side: the ntfs-3g efs_raw layout on any POSIX
    file system.  ``buffer_size`` is the capacity offered per import call
    (and the export block size); with ``seed`` the capacities are random in
    ``min_size..buffer_size``; ``null_sink`` validates without writing."""
    cdef efs_posix_options opts

    def __init__(self, *, buffer_size=65536, seed=None, min_size=1, mode="strict",
                 null_sink=False, cluster_shift=0, _unvalidated_copy=False, _fault=None):
        if not EFS_HAVE_POSIX:
            raise EfsError(EFS_ERROR_NOT_SUPPORTED, "the POSIX system side is not built on Windows")
        self.c_backend = efs_posix_backend()
        efs_posix_default_options(&self.opts)
        if not 1 <= min_size <= buffer_size <= (1 << 30):
            raise ValueError("need 1 <= min_size <= buffer_size <= 1 GiB")
        if cluster_shift and not 9 <= cluster_shift <= 21:
            raise ValueError("cluster_shift must be 0 (from the file system) or 9..21")
        self.opts.buffer_size = buffer_size
        self.opts.min_size = min_size
        self.opts.seed = 0 if seed is None else (seed & 0xFFFFFFFFFFFFFFFF) or 1
        self.opts.mode = EFS_MODE_COMPATIBLE if mode in ("compatible", "compat") else EFS_MODE_STRICT
        if mode not in ("strict", "compatible", "compat"):
            raise ValueError(f"mode must be 'strict' or 'compatible', not {mode!r}")
        self.opts.null_sink = bool(null_sink)
        self.opts.cluster_shift = cluster_shift
        # benchmarks only: what a restore costs without the streaming validation
        self.opts.unvalidated_copy = bool(_unvalidated_copy)
        # tests only: (point, errno) makes one system call of the side fail
        if _fault is not None:
            self.opts.fault_point, self.opts.fault_errno = _fault

    def __repr__(self):
        o = self.opts
        return (f"PosixBackend(buffer_size={o.buffer_size}, seed={o.seed or None}, "
                f"min_size={o.min_size}, null_sink={bool(o.null_sink)})")

    cdef efs_dword c_open_raw(self, const char *path, efs_ulong flags, void **ctx) except? 0xFFFFFFFF:
        cdef efs_dword rc
        cdef efs_posix_options o = self.opts
        o.no_replace = (flags & NO_REPLACE_FLAG) != 0
        flags &= ~NO_REPLACE_FLAG
        with nogil:
            rc = efs_posix_open_ex(path, flags, &o, ctx)
        return rc

    cdef object details(self, void *ctx):
        cdef const efs_error *fe = efs_posix_last_format_error(ctx)
        cdef const char *op = efs_posix_last_operation(ctx)
        return ((<object>_format_error(fe)) if fe != NULL and fe.rule else None,
                efs_posix_last_errno(ctx), op.decode() if op != NULL else None)


cdef object _format_error(const efs_error *e):
    return RawFormatError(f"R{e.rule}", e.offset, e.code.decode(),
                          e.detail.decode() if e.detail != NULL else "", e.winerror)


cdef class Win32Backend(Backend):
    """advapi32's OpenEncryptedFileRawW / ReadEncryptedFileRaw /
    WriteEncryptedFileRaw / CloseEncryptedFileRaw."""

    def __init__(self):
        self.c_backend = efs_win32_backend()
        if self.c_backend == NULL:
            raise EfsError(EFS_ERROR_NOT_SUPPORTED, "the win32 system side exists only on Windows")

    def __repr__(self):
        return "Win32Backend()"

    @staticmethod
    def enable_privileges(bint backup=True, bint restore=True):
        """Enable SeBackupPrivilege / SeRestorePrivilege in the process token."""
        if not EFS_HAVE_WIN32:
            raise EfsError(EFS_ERROR_NOT_SUPPORTED, "enable_privileges: Windows only (the "
                           "privileges are Windows'; the POSIX system side needs none)")
        cdef efs_dword rc = efs_win32_enable_privileges(backup, restore)
        if rc:
            raise EfsError(rc, "could not enable the backup/restore privileges "
                               "(1300: not held by this account)")


# A private flag bit above the documented ones: "never replace the destination".
cdef efs_ulong NO_REPLACE_FLAG = 0x80000000u
NO_REPLACE = NO_REPLACE_FLAG


def default_backend():
    return Win32Backend() if EFS_HAVE_WIN32 else PosixBackend()


# ------------------------------------------------------------------ raw calls

cdef class RawContext:
    """An open raw-EFS context: the PyCapsule of pywin32, with a safe close."""
    cdef void *ctx
    cdef readonly Backend backend
    cdef readonly object path
    cdef readonly unsigned long flags
    cdef int busy

    def __dealloc__(self):
        if self.ctx != NULL and self.backend is not None:
            self.backend.c_backend.close(self.ctx)
            self.ctx = NULL

    @property
    def closed(self):
        return self.ctx == NULL

    @property
    def _address(self):
        """The C context pointer (for ctypes comparisons in the benchmarks)."""
        return <size_t>self.ctx

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
              bint pywin32=False):
    """WriteEncryptedFileRaw from ``source``; returns (bytes, calls)."""
    cdef void *ctx = raw.enter()
    cdef import_ctx c
    cdef Py_buffer view
    cdef efs_dword rc = 0
    cdef PySource ps
    cdef int fd = -1
    cdef bint own_fd = False
    cdef object kind
    try:
        kind = 4 if pywin32 else classify_source(source)
        init_import(&c, cancel_ptr(cancel))
        if kind == "buffer":
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
                    rc = raw.backend.c_backend.write(import_from_buffer, &c, ctx)
            finally:
                release(&view)
            raw.raise_for(rc)
            return c.bytes, c.calls
        if kind == "path" or kind == "fd":
            if kind == "path":
                fd = os.open(source, os.O_RDONLY | getattr(os, "O_BINARY", 0))
                own_fd = True
                c.fd_offset = 0
            else:
                fd = source
            c.fd = fd
            try:
                with nogil:
                    rc = raw.backend.c_backend.write(import_from_fd, &c, ctx)
            finally:
                if own_fd:
                    os.close(fd)
            if rc == EFS_ERROR_READ_FAULT and c.read_errno:
                raise OSError(c.read_errno, os.strerror(c.read_errno),
                              source if kind == "path" else None)
            raw.raise_for(rc)
            return c.bytes, c.calls
        ps = PySource.__new__(PySource)
        ps.kind = kind
        ps.source = iter(source) if kind == 3 else source
        ps.context = callback_context
        ps.c = c
        ps.c.owner = <PyObject *>ps
        with nogil:
            rc = raw.backend.c_backend.write(import_from_python, &ps.c, ctx)
        raw.raise_for(rc, ps.error)
        return ps.c.bytes, ps.c.calls
    finally:
        raw.busy = 0


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
        c.fd = -1
        c.write_errno = 0
        c.cancel = cancel_ptr(cancel)
        c.sigint_base = efs_sigint_count()
        c.calls = c.bytes = 0
        c.owner = NULL
        if pywin32 or (sink is not None and not isinstance(sink, (int, bytearray))
                       and not _is_writable_buffer(sink)):
            pk = PySink.__new__(PySink)
            pk.kind = 2 if pywin32 or (callable(sink) and not hasattr(sink, "write")) else 1
            if pk.kind == 1 and not hasattr(sink, "write"):
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


cdef bint _is_writable_buffer(object obj):
    cdef Py_buffer view
    try:
        PyObject_GetBuffer(obj, &view, PyBUF_WRITABLE | PyBUF_ANY_CONTIGUOUS)
    except (TypeError, BufferError):
        return False
    PyBuffer_Release(&view)
    return True


# ------------------------------------------------ test hooks (misbehaving C callee)

cdef struct misbehave_ctx:
    import_ctx inner
    int how                  # 1 claim more than offered, 2 write past it, 3 fail
    uint64_t at_call


cdef efs_dword import_misbehaving(uint8_t *pbData, void *ctx, efs_ulong *ulLength) noexcept nogil:
    cdef misbehave_ctx *m = <misbehave_ctx *>ctx
    cdef efs_ulong cap = ulLength[0]
    cdef efs_dword rc
    if m.inner.calls + 1 == m.at_call:
        m.inner.calls += 1
        if m.how == 1:
            ulLength[0] = cap + 1
            return 0
        if m.how == 2:
            memcpy(pbData, m.inner.data, cap + 1 if cap + 1 <= m.inner.length else cap)
            pbData[cap] = 0x5A
            return 0
        return 31    # ERROR_GEN_FAILURE, as a failing callback would
    return import_from_buffer(pbData, &m.inner, ulLength)


def _write_misbehaving(RawContext raw, data, int how, uint64_t at_call):
    """Test hook: restore ``data`` through a C callback that breaks the
    import contract at call ``at_call`` (1 over-long *ulLength, 2 write past
    the capacity, 3 return a failure code)."""
    cdef void *ctx = raw.enter()
    cdef misbehave_ctx m
    cdef const uint8_t[::1] view = memoryview(data).cast("B")
    cdef efs_dword rc
    try:
        init_import(&m.inner, NULL)
        m.inner.data = &view[0]
        m.inner.length = view.shape[0]
        m.how = how
        m.at_call = at_call
        with nogil:
            rc = raw.backend.c_backend.write(import_misbehaving, &m, ctx)
        raw.raise_for(rc)
    finally:
        raw.busy = 0


# ------------------------------------------------------------ benchmark helpers

def _backend_functions(Backend backend):
    """Addresses of the backend's read/write/close (benchmarks call them from
    ctypes, as a user without efsfast would)."""
    return {"read": <size_t>backend.c_backend.read, "write": <size_t>backend.c_backend.write,
            "close": <size_t>backend.c_backend.close}


def _bench_memcpy(data, size_t chunk, uint64_t total):
    """The ceiling: copy ``total`` bytes of ``data`` in ``chunk``-sized pieces
    into one buffer (efs_bench_memcpy: the copy goes through a volatile
    function pointer, so the compiler cannot delete it)."""
    cdef const uint8_t[::1] src = memoryview(data).cast("B")
    cdef uint8_t *dst = <uint8_t *>malloc(chunk)
    cdef uint64_t moved
    if dst == NULL:
        raise MemoryError()
    try:
        with nogil:
            moved = efs_bench_memcpy(dst, &src[0], src.shape[0], chunk, total)
    finally:
        free(dst)
    return moved


# ------------------------------------------------------------ bulk restore in C

cdef struct bulk_job:
    const char *dest              # bytes kept alive by BulkRestore.keep
    const char *src_path          # path sources (NULL for buffers)
    const uint8_t *data
    size_t length
    efs_ulong flags
    efs_dword rc
    uint64_t bytes
    uint64_t calls
    efs_error ferr
    int err_no
    char *op                      # a copy: the system side may build it in its context
    int read_errno
    int started


cdef struct bulk_state:
    bulk_job *jobs
    size_t count
    size_t next_index
    const efs_backend *backend
    efs_posix_options opts
    int use_posix_open
    int *cancel
    unsigned sigint_base
    int fail_fast
    uint64_t done_files
    uint64_t done_bytes


cdef void bulk_one(bulk_state *st, bulk_job *j) noexcept nogil:
    cdef void *ctx = NULL
    cdef import_ctx c
    cdef efs_posix_options o
    cdef const efs_error *fe
    cdef const char *op
    cdef int fd = -1
    j.started = 1
    init_import(&c, st.cancel)
    c.sigint_base = st.sigint_base          # the batch's, not this item's start
    c.data = j.data
    c.length = j.length
    if j.src_path != NULL:
        fd = efs_fd_open_read(j.src_path, &j.read_errno)
        if fd < 0:
            j.rc = EFS_ERROR_READ_FAULT
            return
        c.fd = fd
        c.fd_offset = 0
    if st.use_posix_open:
        o = st.opts
        o.no_replace = (j.flags & NO_REPLACE_FLAG) != 0
        j.rc = efs_posix_open_ex(j.dest, j.flags & ~NO_REPLACE_FLAG, &o, &ctx)
    else:
        j.rc = st.backend.open(<const efs_path_char *>j.dest, j.flags & ~NO_REPLACE_FLAG, &ctx)
    if j.rc == 0:
        if fd >= 0:
            j.rc = st.backend.write(import_from_fd, &c, ctx)
        else:
            j.rc = st.backend.write(import_from_buffer, &c, ctx)
        if j.rc and st.use_posix_open:
            fe = efs_posix_last_format_error(ctx)
            if fe != NULL and fe.rule:
                j.ferr = fe[0]
            j.err_no = efs_posix_last_errno(ctx)
            op = efs_posix_last_operation(ctx)
            j.op = strdup(op) if op != NULL else NULL
        st.backend.close(ctx)
    if fd >= 0:
        efs_fd_close(fd)
    j.read_errno = c.read_errno
    j.bytes = c.bytes
    j.calls = c.calls


cdef void bulk_worker(bulk_state *st) noexcept nogil:
    cdef size_t i
    cdef bulk_job *j
    while not cancelled(st.cancel, st.sigint_base):
        i = efs_atomic_next(&st.next_index)
        if i >= st.count:
            return
        j = &st.jobs[i]
        bulk_one(st, j)
        if j.rc == 0:
            efs_atomic_add(&st.done_files, 1)
            efs_atomic_add(&st.done_bytes, j.bytes)
        elif st.fail_fast and st.cancel != NULL and j.rc != EFS_ERROR_CANCELLED:
            st.cancel[0] = 1


cdef class BulkRestore:
    """Restores a batch of (dest, buffer or path) jobs with every item's work
    in C: the workers take the next index atomically and run open / write /
    close without ever taking the GIL (python-zstandard's multi-buffer
    pattern).  Buffers are acquired up front and released in one place."""
    cdef bulk_state st
    cdef bulk_job *jobs
    cdef Py_buffer *views
    cdef size_t nviews
    cdef list keep
    cdef readonly object token
    cdef readonly size_t count

    def __cinit__(self):
        self.jobs = NULL
        self.views = NULL
        self.nviews = 0

    def __init__(self, list jobs, Backend backend, CancelToken token, bint fail_fast):
        cdef size_t n = len(jobs), i
        cdef bulk_job *j
        self.keep = []
        self.token = token
        self.count = n
        self.jobs = <bulk_job *>calloc(max(n, 1), sizeof(bulk_job))   # ops NULL until set
        self.views = <Py_buffer *>malloc(max(n, 1) * sizeof(Py_buffer))
        if self.jobs == NULL or self.views == NULL:
            raise MemoryError()
        for i in range(n):
            dest, source, flags = jobs[i]
            j = &self.jobs[i]
            j.rc = 0
            j.bytes = j.calls = 0
            j.ferr.rule = 0
            j.err_no = j.read_errno = 0
            j.op = NULL
            j.started = 0
            j.flags = flags
            j.src_path = NULL
            j.data = NULL
            j.length = 0
            bdest = _c_path(dest)
            self.keep.append(bdest)
            j.dest = <const char *>(<bytes>bdest)
            if isinstance(source, (str, os.PathLike)):
                bsrc = os.fsencode(source)
                self.keep.append(bsrc)
                j.src_path = <const char *>(<bytes>bsrc)
            else:
                try:
                    acquire(source, &self.views[self.nviews], PyBUF_ANY_CONTIGUOUS)
                except BufferError:
                    source = memoryview(source).tobytes()
                    self.keep.append(source)
                    acquire(source, &self.views[self.nviews], PyBUF_ANY_CONTIGUOUS)
                j.data = <const uint8_t *>self.views[self.nviews].buf
                j.length = self.views[self.nviews].len
                self.nviews += 1
        self.st.jobs = self.jobs
        self.st.count = n
        self.st.next_index = 0
        self.st.backend = backend.c_backend
        self.st.use_posix_open = isinstance(backend, PosixBackend)
        if self.st.use_posix_open:
            self.st.opts = (<PosixBackend>backend).opts
        self.st.cancel = &token.flag
        self.st.sigint_base = efs_sigint_count()
        self.st.fail_fast = fail_fast
        self.st.done_files = self.st.done_bytes = 0

    def __dealloc__(self):
        cdef size_t i
        for i in range(self.nviews):
            release(&self.views[i])
        free(self.views)
        if self.jobs != NULL:
            for i in range(self.count):
                free(self.jobs[i].op)
        free(self.jobs)

    def work(self):
        """Run as one of the workers (from a Python thread): returns when no
        job is left or the batch was cancelled."""
        with nogil:
            bulk_worker(&self.st)

    @property
    def progress(self):
        return self.st.done_files, self.st.done_bytes

    def outcome(self, size_t i, path):
        """(None, bytes, calls) for a success, (exception or None if never
        started, 0, 0) otherwise."""
        cdef bulk_job *j = &self.jobs[i]
        if not j.started:
            return None, 0, 0
        if j.rc == 0:
            return None, j.bytes, j.calls
        if j.rc == EFS_ERROR_CANCELLED:
            PyErr_CheckSignals()
            return CancelledError(j.rc, "cancelled", os.fspath(path)), 0, 0
        if j.ferr.rule:
            e = _format_error(&j.ferr)
            e.filename = os.fspath(path)
            return e, 0, 0
        if j.rc == EFS_ERROR_READ_FAULT and j.read_errno:
            return OSError(j.read_errno, os.strerror(j.read_errno)), 0, 0
        msg = None
        if j.err_no:
            msg = f"{j.op.decode()}: {os.strerror(j.err_no)}" if j.op != NULL else os.strerror(j.err_no)
        elif j.op != NULL:
            msg = j.op.decode()
        return EfsError(j.rc, msg, os.fspath(path), j.err_no or None), 0, 0


cdef object _c_path(object path):
    if EFS_HAVE_WIN32:
        p = os.fspath(path)
        if isinstance(p, bytes):
            p = os.fsdecode(p)
        # OpenEncryptedFileRawW takes a long path only in the \\?\ form
        return (_winfs.extended(p) + "\0").encode("utf-16-le")
    return os.fsencode(path)
