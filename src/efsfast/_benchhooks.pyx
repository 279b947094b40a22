# cython: language_level=3
"""Benchmark helpers for efsfast._core, kept out of the module users import:
what a ctypes caller without efsfast would call, and the memcpy ceiling."""
from libc.stdint cimport uint8_t, uint64_t
from libc.stdlib cimport free, malloc

from efsfast._cdefs cimport *
from efsfast._core cimport Backend, RawContext


def _backend_functions(Backend backend):
    """Addresses of the backend's read/write/close (benchmarks call them from
    ctypes, as a user without efsfast would)."""
    return {"read": <size_t>backend.c_backend.read, "write": <size_t>backend.c_backend.write,
            "close": <size_t>backend.c_backend.close}


def _context_address(RawContext raw):
    """The C context pointer (for ctypes calls in the benchmarks)."""
    return <size_t>raw.ctx


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



def _sha256(data, int impl=EFS_SHA256_AUTO):
    """SHA-256 of ``data`` by efsfast's own C code (efs_sha256.c) with the
    GIL released, as the restore and backup workers run it; ``impl``: 0 the
    fastest, 1 portable, 2 SHA-NI (ValueError where it cannot run)."""
    cdef const uint8_t[::1] v = memoryview(data).cast("B")
    cdef efs_sha256 h
    cdef uint8_t out[32]
    if efs_sha256_init_impl(&h, impl) != 0:
        raise ValueError(f"SHA-256 implementation {impl} cannot run on this CPU")
    with nogil:
        if v.shape[0]:
            efs_sha256_update(&h, &v[0], v.shape[0])
        efs_sha256_final(&h, out)
    return bytes(out[:32])
