# Included by _core.pyx: the objects of a backup set written as a tar stream,
# exported into memory on worker threads without the GIL (POSIX side,
# efs_posix_streamexport.c); the caller writes the members as they come.
# The batch is BulkExport's (items, their facts, errors, take) with another
# worker: what a stream member needs instead of a file in the set.

cdef extern from "_c/efs_streamexport.h" nogil:
    ctypedef struct efs_mem_stream:
        uint8_t *data
        size_t len
        size_t cap
        int large
    efs_dword efs_posix_backup_item_to_memory(efs_backup_item *it, efs_mem_stream *m,
                                              uint64_t limit, const efs_posix_options *o,
                                              const int *cancel, unsigned sigint_base)
    void efs_mem_stream_free(efs_mem_stream *m)
    void efs_pause_us(unsigned us)


cdef struct stream_batch:
    efs_mem_stream *mem
    uint64_t limit               # a file over this is left to the caller (large)
    uint64_t held                # bytes exported and not yet taken
    uint64_t held_limit          # workers wait above this (the writer is behind)
    uint64_t finished            # items through


cdef void stream_worker(export_batch *b, stream_batch *s) noexcept nogil:
    cdef size_t i
    cdef efs_backup_item *it
    while not cancelled(b.cancel, b.sigint_base):
        if efs_atomic_get(&s.held) > s.held_limit:
            efs_pause_us(200)      # memory is bounded: the writer takes the next ones first
            continue
        i = efs_atomic_next(&b.next_index)
        if i >= b.count:
            return
        it = claimed_item(b, i)
        efs_posix_backup_item_to_memory(it, &s.mem[i], s.limit, &b.opts, b.cancel,
                                        b.sigint_base)
        if it.outcome == EFS_BACKUP_DONE:
            efs_atomic_add(&s.held, s.mem[i].len)
            efs_atomic_add(&b.done_files, 1)
            efs_atomic_add(&b.done_bytes, it.data_len)
        efs_atomic_set(&b.done[i], ITEM_DONE)
        efs_atomic_add(&s.finished, 1)


cdef class HeldStream:
    """One object's raw stream as a StreamExport exported it, read through
    the buffer protocol (read-only, no copy); freed with the object."""
    cdef efs_mem_stream m

    def __dealloc__(self):
        efs_mem_stream_free(&self.m)

    def __len__(self):
        return self.m.len

    def __getbuffer__(self, Py_buffer *view, int flags):
        PyBuffer_FillInfo(view, self, <void *>(self.m.data if self.m.data != NULL
                                              else empty_export),
                          <Py_ssize_t>self.m.len, 1, flags)

    def __releasebuffer__(self, Py_buffer *view):
        pass


cdef class StreamExport(BulkExport):
    """Exports a batch of (object, flags) into memory with every item's work
    in C, for a tar stream: ``take(i)`` as BulkExport's (its facts), then
    ``stream(i)`` hands over the raw stream (a :class:`HeldStream`).  A file
    over ``limit`` bytes is not exported (``large(i)``: the caller streams
    it).  Workers wait while more than ``held_limit`` bytes are exported and
    not yet handed over.  ``finished``: items through so far."""
    cdef stream_batch s

    def __cinit__(self):
        self.s.mem = NULL

    def __init__(self, list jobs, PosixBackend backend, CancelToken token, *,
                 bint capture_ntfs, uint64_t limit, uint64_t held_limit):
        cdef size_t n = len(jobs)
        # (BulkExport's items: the object named as its backup file too, and
        # no temporary: this worker opens neither)
        super().__init__([(j[0], j[0], None, j[1]) for j in jobs], backend, token,
                         capture_ntfs=capture_ntfs, overwrite=False)
        self.s.mem = <efs_mem_stream *>calloc(max(n, 1), sizeof(efs_mem_stream))
        if self.s.mem == NULL:
            raise MemoryError()
        self.s.limit = limit
        self.s.held_limit = held_limit
        self.s.held = self.s.finished = 0

    def __dealloc__(self):
        cdef size_t i
        if self.s.mem != NULL:
            for i in range(self.count):
                efs_mem_stream_free(&self.s.mem[i])
            free(self.s.mem)

    def work(self):
        """Run as one of the workers (from a Python thread)."""
        with nogil:
            stream_worker(&self.b, &self.s)

    @property
    def finished(self):
        return efs_atomic_get(&self.s.finished)

    def large(self, size_t i):
        return i < self.count and self.s.mem[i].large != 0

    def stream(self, size_t i):
        """Item i's raw stream, handed over (once: after it, empty)."""
        cdef HeldStream h = HeldStream()
        if i >= self.count or not efs_atomic_get(&self.b.done[i]):
            raise IndexError(i)
        h.m = self.s.mem[i]
        self.s.mem[i].data = NULL
        self.s.mem[i].len = self.s.mem[i].cap = 0
        efs_atomic_add(&self.s.held, <uint64_t>0 - h.m.len)
        return h
