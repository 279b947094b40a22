# cython: language_level=3
"""Streaming decryption of a raw EFS stream (spec section 10).

The C parser walks the raw stream; its data events go straight into the
sector decryptor (efs_sector.c) and out to a sink (a file descriptor, memory
or nothing) without the GIL and without Python per sector.  Python is called
only at stream boundaries: for the $EFS (to unwrap the FEK with the user's
RSA key, in efsfast.crypto) and to open and close each data stream's sink.

A file sink gets its plaintext in large writes: sectors are decrypted
straight into an output block (1 MiB) that is written when full or at the
stream's end.  Given a ``writer`` (efsfast.crypto.writer.BlockWriter), full
blocks are handed to its thread instead, once per block with the GIL, and
decryption goes on into the next block while the last one is written.
"""
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE
from cpython.memoryview cimport PyMemoryView_FromMemory
from libc.errno cimport EINTR, errno
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memset

from efsfast._cdefs cimport *

from efsfast._errors import EfsError, RawFormatError
from efsfast._codec import stream_name_str

cdef extern from "_c/efs_abi.h" nogil:
    efs_dword EFS_ERROR_WRITE_FAULT

cdef extern from "_c/efs_sector.h" nogil:
    ctypedef struct efs_aes256_dec:
        pass
    int EFS_SECTOR_AES256
    int EFS_SECTOR_3DES
    size_t efs_sector_block_size(int alg)
    void efs_sector_iv(int alg, uint64_t offset, uint8_t *iv)
    void efs_sector_unchain(int alg, uint8_t *plain, const uint8_t *cipher, size_t n,
                            uint64_t offset)
    int efs_sector_have_aesni()
    int efs_aes256_dec_init(efs_aes256_dec *k, const uint8_t *key)
    void efs_aes256_sectors_decrypt(const efs_aes256_dec *k, uint8_t *out, const uint8_t *inp,
                                    size_t n, uint64_t offset)
    void efs_wipe(void *p, size_t n)

cdef extern from "Python.h":
    int PyBUF_READ
    int PyBUF_WRITE

cdef extern from *:
    """
    #ifdef _WIN32
    #include <io.h>
    static long long efsd_write(int fd, const void *p, size_t n)
    { return _write(fd, p, (unsigned)(n > 0x40000000u ? 0x40000000u : n)); }
    #else
    #include <unistd.h>
    static long long efsd_write(int fd, const void *p, size_t n)
    { return (long long)write(fd, p, n); }
    #endif
    """
    long long efsd_write(int fd, const void *p, size_t n) nogil

AES256 = EFS_SECTOR_AES256
TRIPLE_DES = EFS_SECTOR_3DES

# where a data stream's plaintext goes (the value open_stream returns)
SINK_NULL = -1
SINK_MEMORY = -2

cdef enum:
    SECTOR = 512
    SCRATCH = 1 << 20     # plaintext staged per step; bounds memory whatever the size
    ECB_SLACK = 16        # OpenSSL's update_into wants room for one block more
    OUT_BLOCK = SCRATCH + ECB_SLACK     # a file sink's output block (see BlockWriter)

# the size of the blocks a writer hands out
OUTPUT_BLOCK = OUT_BLOCK

cdef enum sink_kind:
    K_NULL, K_FD, K_MEMORY


def have_aesni():
    """Whether this build and CPU decrypt AES-256 with AES-NI (else the ECB
    pass runs in OpenSSL through ``cryptography``, with the GIL)."""
    return bool(efs_sector_have_aesni())


def sector_iv(int alg, uint64_t offset):
    """The IV of the sector at ``offset`` (spec section 10)."""
    cdef uint8_t iv[16]
    cdef size_t n = efs_sector_block_size(alg)
    if n == 0:
        raise ValueError("unknown algorithm")
    efs_sector_iv(alg, offset, iv)
    return bytes(iv[:n])


def unchain(int alg, ecb_plain, ciphertext, uint64_t offset):
    """The CBC step after an ECB pass over whole sectors: returns the
    plaintext (for tests and the no-AES-NI path)."""
    cdef const uint8_t[::1] c = memoryview(ciphertext).cast("B")
    out = bytearray(ecb_plain)
    cdef uint8_t[::1] p = out
    if len(out) != c.shape[0] or c.shape[0] % SECTOR or efs_sector_block_size(alg) == 0:
        raise ValueError("need whole sectors of equal length and a known algorithm")
    if c.shape[0]:
        efs_sector_unchain(alg, &p[0], &c[0], <size_t>c.shape[0], offset)
    return bytes(out)


cdef struct dec_state:
    void *owner
    int alg                  # 0 until the FEK is known
    int aesni
    efs_aes256_dec aes
    int encrypted            # the current stream's Flag is 0
    int in_data_stream
    sink_kind sink
    int fd
    uint8_t *mem
    size_t mem_len
    size_t mem_cap
    uint64_t seg_start       # StartingFileOffset of the current segment
    uint64_t seg_pos         # payload bytes of the segment consumed
    uint64_t seg_valid       # BytesWithinStreamSize
    uint64_t seg_vdl         # BytesWithinVDL
    uint8_t carry[SECTOR]    # a sector split across two feeds
    size_t carry_len
    uint8_t *scratch
    size_t scratch_used      # high-water mark: what the wipe covers (a small file
                             # touches kilobytes of the megabyte)
    uint8_t *out             # a file sink's output block: scratch, or the writer's block
    size_t out_len
    int use_writer
    uint64_t plain_bytes
    const char *fail         # a reason set without the GIL
    int write_errno


cdef class Decryptor:
    """Feed a raw stream in any slices; each data stream's plaintext goes to
    the sink ``handler.open_stream(name, flag)`` names (an fd, SINK_NULL or
    SINK_MEMORY).  ``handler.on_metadata($EFS)`` returns ``(alg, key)``
    (``key`` a bytearray, wiped here once the round keys are made) and may
    set ``handler.ecb`` to a ``cryptography`` ECB decryptor for the path
    without AES-NI; ``handler.close_stream(name, logical, data)`` gets the
    memory sink's bytes (or None)."""
    cdef dec_state st
    cdef efs_parser *c_parser
    cdef object handler
    cdef object stored_exc
    cdef object stream_name
    cdef object ecb
    cdef bint force_ecb
    cdef object writer
    cdef object out_obj          # the writer's block being filled (its buffer held)
    cdef Py_buffer out_view

    def __cinit__(self, handler, str mode="strict", bint force_ecb=False, writer=None):
        cdef efs_handlers h
        memset(&self.st, 0, sizeof(self.st))
        self.st.owner = <void *>self
        self.st.fd = -1
        self.handler = handler
        self.force_ecb = force_ecb
        self.writer = writer
        self.st.use_writer = writer is not None
        h.stream_begin = on_stream_begin
        h.metadata = on_metadata
        h.segment = on_segment
        h.data = on_data
        h.stream_end = on_stream_end
        self.st.scratch = <uint8_t *>malloc(OUT_BLOCK)
        if self.st.scratch == NULL:
            raise MemoryError()
        self.c_parser = efs_parser_new(EFS_MODE_STRICT if mode == "strict"
                                       else EFS_MODE_COMPATIBLE, &h, <void *>&self.st)
        if self.c_parser == NULL:
            raise MemoryError()

    def __dealloc__(self):
        self._release()

    cdef void _release(self) noexcept:
        efs_wipe(&self.st.aes, sizeof(self.st.aes))
        efs_wipe(self.st.carry, SECTOR)
        if self.out_obj is not None:       # (its plaintext: the writer's to wipe or not)
            PyBuffer_Release(&self.out_view)
            self.out_obj = None
        self.st.out = NULL
        self.st.out_len = 0
        if self.st.scratch != NULL:
            efs_wipe(self.st.scratch, self.st.scratch_used)
            free(self.st.scratch)
            self.st.scratch = NULL
        if self.st.mem != NULL:
            efs_wipe(self.st.mem, self.st.mem_cap)
            free(self.st.mem)
            self.st.mem = NULL
        if self.c_parser != NULL:
            efs_parser_free(self.c_parser)
            self.c_parser = NULL
        self.ecb = None

    def close(self):
        """Wipe the round keys and every buffer that held plaintext."""
        self._release()

    def __repr__(self):
        return f"<efsfast Decryptor at {self.position} bytes>"

    @property
    def position(self):
        return efs_parser_position(self.c_parser) if self.c_parser != NULL else 0

    @property
    def plain_bytes(self):
        return self.st.plain_bytes

    @property
    def aesni(self):
        return bool(self.st.aesni)

    cdef int check(self, efs_dword rc) except -1:
        cdef const efs_error *c_err
        if self.stored_exc is not None:
            exc, self.stored_exc = self.stored_exc, None
            raise exc
        if rc and self.st.write_errno:
            import os
            err, self.st.write_errno = self.st.write_errno, 0
            raise OSError(err, f"cannot write the plaintext: {os.strerror(err)}",
                          getattr(self.handler, "sink_path", None))
        if rc and self.st.fail != NULL:
            reason = self.st.fail.decode()
            self.st.fail = NULL
            raise EfsError(rc, reason)
        if rc:
            c_err = efs_parser_error(self.c_parser)
            detail = c_err.detail.decode() if c_err.detail != NULL else "error"
            if c_err.rule == 0:
                raise EfsError(c_err.winerror, detail)
            raise RawFormatError(f"R{c_err.rule}", c_err.offset, c_err.code.decode(), detail,
                                 c_err.winerror)
        return 0

    def feed(self, data):
        cdef Py_buffer view
        cdef efs_dword rc
        if self.c_parser == NULL:
            raise ValueError("the decryptor is closed")
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            with nogil:
                rc = efs_parser_feed(self.c_parser, <const uint8_t *>view.buf, <size_t>view.len)
        finally:
            PyBuffer_Release(&view)
        self.check(rc)

    def finish(self):
        if self.c_parser == NULL:
            raise ValueError("the decryptor is closed")
        self.check(efs_parser_finish(self.c_parser))

    # ---- slow path, with the GIL (once per stream, or per buffer without AES-NI)

    cdef efs_dword store(self, object exc) noexcept:
        if self.stored_exc is None:
            self.stored_exc = exc
        return EFS_ERROR_NOT_ENOUGH_MEMORY if isinstance(exc, MemoryError) else EFS_ERROR_INVALID_DATA

    cdef int set_key(self, bytes meta) except -1:
        alg, key = self.handler.on_metadata(meta)
        cdef uint8_t[::1] k = key
        try:
            if alg == EFS_SECTOR_AES256 and not self.force_ecb and efs_sector_have_aesni():
                if k.shape[0] != 32:
                    raise ValueError("an AES-256 key is 32 bytes")
                if efs_aes256_dec_init(&self.st.aes, &k[0]) != 0:
                    raise RuntimeError("AES-NI set-up failed")
                self.st.aesni = 1
            else:
                self.ecb = self.handler.ecb
                if self.ecb is None:
                    raise RuntimeError("no ECB decryptor for the path without AES-NI")
            self.st.alg = alg
        finally:
            if k.shape[0]:
                efs_wipe(&k[0], <size_t>k.shape[0])
        return 0

    cdef int ecb_pass(self, const uint8_t *inp, uint8_t *out, size_t n) except -1:
        # plain memoryviews over the C buffers: the cheapest objects OpenSSL's
        # update_into accepts (it needs room for one more block: ECB_SLACK)
        src = PyMemoryView_FromMemory(<char *>inp, <Py_ssize_t>n, PyBUF_READ)
        dst = PyMemoryView_FromMemory(<char *>out, <Py_ssize_t>(n + ECB_SLACK), PyBUF_WRITE)
        done = self.ecb.update_into(src, dst)
        if done != n:
            raise RuntimeError("the ECB pass returned a different length")
        return 0

    cdef int begin(self, const efs_stream_info *s) except -1:
        self.stream_name = stream_name_str(s.name[:s.name_length], False)
        if s.flag == 0 and self.st.alg == 0:
            raise EfsError(EFS_ERROR_INVALID_DATA, "an encrypted stream before any FEK")
        sink = self.handler.open_stream(self.stream_name, s.flag)
        self.st.encrypted = s.flag == 0
        self.st.in_data_stream = 1
        self.st.carry_len = 0
        self.st.mem_len = 0
        if sink == SINK_NULL:
            self.st.sink = K_NULL
        elif sink == SINK_MEMORY:
            self.st.sink = K_MEMORY
        else:
            self.st.sink = K_FD
            self.st.fd = sink
            if self.st.out == NULL:
                self.take_block()
        return 0

    cdef int take_block(self) except -1:
        """The block the next plaintext goes into: the scratch buffer, or a
        free block of the writer (waiting, without the GIL, for one)."""
        if self.writer is None:
            self.st.out = self.st.scratch
            return 0
        block = self.writer.take()
        PyObject_GetBuffer(block, &self.out_view, PyBUF_WRITABLE)
        if self.out_view.len < OUT_BLOCK:
            PyBuffer_Release(&self.out_view)
            raise ValueError("the writer's blocks are smaller than OUTPUT_BLOCK")
        self.out_obj = block
        self.st.out = <uint8_t *>self.out_view.buf
        return 0

    cdef int hand_off(self) except -1:
        """Give the full block to the writer's thread, take the next one."""
        block, n = self.out_obj, self.st.out_len
        PyBuffer_Release(&self.out_view)
        self.out_obj = None
        self.st.out = NULL
        self.st.out_len = 0
        self.writer.put(self.st.fd, block, n, getattr(self.handler, "sink_path", None))
        self.take_block()
        return 0

    cdef int end(self, uint64_t logical) except -1:
        data = None
        if self.st.sink == K_MEMORY:
            data = self.st.mem[:self.st.mem_len] if self.st.mem_len else b""
            efs_wipe(self.st.mem, self.st.mem_len)
        self.st.in_data_stream = 0
        self.handler.close_stream(self.stream_name, logical, data)
        return 0


cdef efs_dword flush(dec_state *st) noexcept nogil:
    """Write out (or hand to the writer) a file sink's output block."""
    cdef long long w
    cdef const uint8_t *p = st.out
    cdef size_t n = st.out_len
    if n == 0:
        return 0
    if st.use_writer:
        with gil:
            try:
                (<Decryptor>st.owner).hand_off()
            except BaseException as exc:
                return (<Decryptor>st.owner).store(exc)
        return 0
    st.out_len = 0
    while n:
        w = efsd_write(st.fd, p, n)
        if w < 0:
            if errno == EINTR:
                continue
            st.write_errno = errno
            return EFS_ERROR_WRITE_FAULT
        p += w
        n -= <size_t>w
    return 0


cdef uint8_t *room(dec_state *st, size_t n, efs_dword *rc) noexcept nogil:
    """Where ``n`` bytes of plaintext (+ ECB_SLACK) go: the file sink's
    output block, flushed first when it lacks the room; the scratch
    buffer for the other sinks.  NULL (``rc`` set) when a flush failed."""
    cdef uint8_t *p
    cdef size_t used
    if st.sink != K_FD:
        p = st.scratch
    else:
        if OUT_BLOCK - st.out_len < n + ECB_SLACK:
            rc[0] = flush(st)
            if rc[0]:
                return NULL
        p = st.out + st.out_len
    if st.scratch <= p < st.scratch + OUT_BLOCK:
        used = <size_t>(p - st.scratch) + n + ECB_SLACK
        if used > st.scratch_used:
            st.scratch_used = used if used < OUT_BLOCK else OUT_BLOCK
    return p


cdef efs_dword emit(dec_state *st, const uint8_t *p, size_t n) noexcept nogil:
    """Plaintext that is not in place already: copied into the output
    block (a file sink), or kept (memory)."""
    cdef size_t cap, take
    cdef uint8_t *grown
    cdef uint8_t *dst
    cdef efs_dword rc = 0
    st.plain_bytes += n
    if st.sink == K_FD:
        while n:
            take = n if n < SCRATCH else SCRATCH
            dst = room(st, take, &rc)
            if dst == NULL:
                return rc
            memcpy(dst, p, take)
            st.out_len += take
            p += take
            n -= take
    elif st.sink == K_MEMORY and n:
        if st.mem_cap - st.mem_len < n:
            cap = st.mem_cap * 2 if st.mem_cap else 65536
            while cap - st.mem_len < n:
                cap *= 2
            grown = <uint8_t *>malloc(cap)
            if grown == NULL:
                return EFS_ERROR_NOT_ENOUGH_MEMORY
            if st.mem != NULL:
                memcpy(grown, st.mem, st.mem_len)
                efs_wipe(st.mem, st.mem_cap)
                free(st.mem)
            st.mem = grown
            st.mem_cap = cap
        memcpy(st.mem + st.mem_len, p, n)
        st.mem_len += n
    return 0


cdef efs_dword run_sectors(dec_state *st, const uint8_t *inp, size_t n) noexcept nogil:
    """Decrypt ``n`` bytes of whole sectors of the current segment (straight
    into a file sink's output block) and keep the part inside the stream's
    size; bytes past the VDL read as zeros."""
    cdef uint64_t o = st.seg_start + st.seg_pos
    cdef uint64_t keep = 0, z0
    cdef efs_dword rc = 0
    cdef uint8_t *dst = room(st, n, &rc)
    if dst == NULL:
        return rc
    if st.aesni:
        efs_aes256_sectors_decrypt(&st.aes, dst, inp, n, o)
    else:
        with gil:
            try:
                (<Decryptor>st.owner).ecb_pass(inp, dst, n)
            except BaseException as exc:
                return (<Decryptor>st.owner).store(exc)
        efs_sector_unchain(st.alg, dst, inp, n, o)
    if st.seg_pos < st.seg_valid:
        keep = st.seg_valid - st.seg_pos
        if keep > n:
            keep = n
    if st.seg_vdl < st.seg_pos + keep:
        z0 = st.seg_vdl - st.seg_pos if st.seg_vdl > st.seg_pos else 0
        memset(dst + z0, 0, <size_t>(keep - z0))
    st.seg_pos += n
    if st.sink == K_FD:              # in place already
        st.out_len += <size_t>keep
        st.plain_bytes += keep
        return 0
    return emit(st, dst, <size_t>keep)


cdef efs_dword on_data(void *ctx, const uint8_t *data, size_t n) noexcept nogil:
    cdef dec_state *st = <dec_state *>ctx
    cdef size_t take, whole
    cdef efs_dword rc
    if not st.in_data_stream:
        return 0
    if not st.encrypted:
        return emit(st, data, n)
    while n:
        if st.carry_len or n < SECTOR:
            take = SECTOR - st.carry_len
            if take > n:
                take = n
            memcpy(st.carry + st.carry_len, data, take)
            st.carry_len += take
            data += take
            n -= take
            if st.carry_len == SECTOR:
                st.carry_len = 0
                rc = run_sectors(st, st.carry, SECTOR)
                if rc:
                    return rc
            continue
        whole = n - n % SECTOR
        if whole > SCRATCH:
            whole = SCRATCH
        rc = run_sectors(st, data, whole)
        if rc:
            return rc
        data += whole
        n -= whole
    return 0


cdef efs_dword on_segment(void *ctx, const efs_segment *s) noexcept nogil:
    cdef dec_state *st = <dec_state *>ctx
    if not st.in_data_stream or not s.encrypted:
        return 0
    if (s.has_extd and (s.extd_flags & 1)) or s.block_count != 1:
        st.fail = b"sparse streams (EXTD flag 1) cannot be decrypted yet"
        return EFS_ERROR_NOT_SUPPORTED
    if st.carry_len:
        st.fail = b"a segment's ciphertext is not a whole number of 512-byte sectors"
        return EFS_ERROR_INVALID_DATA
    st.seg_start = s.starting_file_offset
    st.seg_pos = 0
    st.seg_valid = s.bytes_within_stream_size
    st.seg_vdl = s.bytes_within_vdl
    return 0


cdef efs_dword on_stream_begin(void *ctx, const efs_stream_info *s) noexcept nogil:
    cdef dec_state *st = <dec_state *>ctx
    if s.is_metadata:
        return 0
    with gil:
        try:
            (<Decryptor>st.owner).begin(s)
        except BaseException as exc:
            return (<Decryptor>st.owner).store(exc)
    return 0


cdef efs_dword on_metadata(void *ctx, const uint8_t *data, size_t n) noexcept nogil:
    cdef dec_state *st = <dec_state *>ctx
    with gil:
        try:
            (<Decryptor>st.owner).set_key(data[:n])
        except BaseException as exc:
            return (<Decryptor>st.owner).store(exc)
    return 0


cdef efs_dword on_stream_end(void *ctx, uint64_t logical, uint64_t payload) noexcept nogil:
    cdef dec_state *st = <dec_state *>ctx
    cdef efs_dword rc
    if not st.in_data_stream:
        return 0
    if st.carry_len:
        st.fail = b"a stream's ciphertext is not a whole number of 512-byte sectors"
        return EFS_ERROR_INVALID_DATA
    if st.sink == K_FD:
        rc = flush(st)               # before the sink is closed
        if rc:
            return rc
    with gil:
        try:
            (<Decryptor>st.owner).end(logical)
        except BaseException as exc:
            return (<Decryptor>st.owner).store(exc)
    return 0
