# cython: language_level=3
"""Test hooks for efsfast._core, kept out of the module users import: the
buffer-accounting counters, and a C import callback that breaks the
contract (spec 7.5) so the tests can see each system side refuse it."""
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free
from libc.string cimport memcpy

from efsfast._cdefs cimport *
from efsfast._core cimport RawContext, import_ctx, init_import, import_from_buffer, buffer_counts


def _buffer_counts():
    """(acquired, released) buffers of sources and sinks, and the system
    buffer views still exported (tests: they must balance)."""
    return buffer_counts()


cdef enum Misbehaviour:
    CLAIM_MORE = 1           # *ulLength set beyond the capacity offered
    WRITE_PAST = 2           # a byte written past the capacity
    FAIL = 3                 # a failure code returned


cdef struct misbehave_ctx:
    import_ctx inner
    Misbehaviour how
    uint64_t at_call


cdef efs_dword import_misbehaving(uint8_t *pbData, void *ctx, efs_ulong *ulLength) noexcept nogil:
    cdef misbehave_ctx *m = <misbehave_ctx *>ctx
    cdef efs_ulong cap = ulLength[0]
    if m.inner.calls + 1 == m.at_call:
        m.inner.calls += 1
        if m.how == CLAIM_MORE:
            ulLength[0] = cap + 1
            return 0
        if m.how == WRITE_PAST:
            memcpy(pbData, m.inner.data, cap + 1 if cap + 1 <= m.inner.length else cap)
            pbData[cap] = 0x5A
            return 0
        return EFS_ERROR_GEN_FAILURE     # as a failing callback would
    return import_from_buffer(pbData, &m.inner, ulLength)


def _write_misbehaving(RawContext raw, data, int how, uint64_t at_call):
    """Restore ``data`` through a C callback that breaks the import contract
    at call ``at_call`` (1 over-long *ulLength, 2 write past the capacity,
    3 return a failure code)."""
    cdef void *ctx = raw.enter()
    cdef misbehave_ctx m
    cdef const uint8_t[::1] view = memoryview(data).cast("B")
    cdef efs_dword rc
    try:
        if how not in (CLAIM_MORE, WRITE_PAST, FAIL):
            raise ValueError(f"how must be 1, 2 or 3, not {how}")
        init_import(&m.inner, NULL)
        m.inner.data = &view[0]
        m.inner.length = view.shape[0]
        m.how = <Misbehaviour>how
        m.at_call = at_call
        with nogil:
            rc = raw.backend.c_backend.write(import_misbehaving, &m, ctx)
        raw.raise_for(rc)
    finally:
        raw.busy = 0


cdef class _Sha256:
    """efsfast's own SHA-256 (efs_sha256.c) with a chosen implementation
    (0 the fastest, 1 portable, 2 x86-64 SHA-NI), incremental like hashlib:
    the tests hold both implementations to hashlib's digests."""
    cdef efs_sha256 h

    def __init__(self, int impl=EFS_SHA256_AUTO):
        if efs_sha256_init_impl(&self.h, impl) != 0:
            raise ValueError(f"SHA-256 implementation {impl} cannot run on this CPU")

    @property
    def impl(self):
        return self.h.impl

    def update(self, data):
        cdef const uint8_t[::1] v = memoryview(data).cast("B")
        if v.shape[0]:
            efs_sha256_update(&self.h, &v[0], v.shape[0])

    def digest(self):
        cdef efs_sha256 end = self.h          # final() ends a copy: more may follow
        cdef uint8_t out[32]
        efs_sha256_final(&end, out)
        return bytes(out[:32])


def _sha256_available(int impl):
    return bool(efs_sha256_available(impl))


def _manifest_object_line(bytes path, bint directory, uint64_t raw_size, uint64_t source_size,
                          bytes sha256, bytes efs_sha256, bint posix_meta, uint32_t mode,
                          int64_t atime_ns, int64_t mtime_ns, int64_t ctime_ns):
    """The manifest line a backup worker makes (efs_manifest.c), or None
    where it leaves the line to Python (a name that is not UTF-8)."""
    cdef efs_line_facts f
    cdef size_t n = 0
    cdef char *line
    if len(sha256) != 32 or len(efs_sha256) != 32:
        raise ValueError("a SHA-256 is 32 bytes")
    f.path = <const uint8_t *><const char *>path
    f.path_len = len(path)
    f.directory = directory
    f.raw_size = raw_size
    f.source_size = source_size
    f.sha256 = <const uint8_t *><const char *>sha256
    f.efs_sha256 = <const uint8_t *><const char *>efs_sha256
    f.posix_meta = posix_meta
    f.mode = mode
    f.atime_ns = atime_ns
    f.mtime_ns = mtime_ns
    f.ctime_ns = ctime_ns
    line = efs_manifest_object_line(&f, &n)
    if line == NULL:
        return None
    try:
        return line[:n]
    finally:
        free(line)
