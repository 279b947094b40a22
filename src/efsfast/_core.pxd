# cython: language_level=3
# What efsfast._core shares with the modules that test and measure it
# (_testhooks, _benchhooks): the raw context, the system sides, the cancel
# flag and the import trampoline they drive.  Nothing here is for users.
from cpython.ref cimport PyObject
from libc.stdint cimport int64_t, uint8_t, uint64_t

from efsfast._cdefs cimport *


cdef class CancelToken:
    cdef int flag


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


cdef void init_import(import_ctx *c, int *cancel) noexcept nogil
cdef efs_dword import_from_buffer(uint8_t *pbData, void *ctx, efs_ulong *ulLength) noexcept nogil
cdef tuple buffer_counts()


cdef class Backend:
    cdef const efs_backend *c_backend
    cdef efs_dword c_open(self, object path, efs_ulong flags, void **ctx) except? 0xFFFFFFFF
    cdef efs_dword c_open_raw(self, const char *path, efs_ulong flags, void **ctx) except? 0xFFFFFFFF
    cdef object details(self, void *ctx)


cdef class PosixBackend(Backend):
    cdef efs_posix_options opts


cdef class Win32Backend(Backend):
    pass


cdef class RawContext:
    cdef void *ctx
    cdef readonly Backend backend
    cdef readonly object path
    cdef readonly unsigned long flags
    cdef int busy
    cdef void *enter(self) except NULL
    cdef raise_for(self, efs_dword rc, object stored=*)
