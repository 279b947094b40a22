# Included by _core.pyx: which raw streams of a tree restore are folders'
# (no unnamed data stream), found on worker threads without the GIL
# (efs_probe.c), so that the calling thread only hands out the paths.

PROBE_NO_UNNAMED = EFS_PROBE_NO_UNNAMED
PROBE_UNNAMED = EFS_PROBE_UNNAMED
PROBE_UNKNOWN = EFS_PROBE_UNKNOWN
PROBE_IO_ERROR = EFS_PROBE_IO_ERROR


cdef struct probe_batch:
    const char **paths            # bytes kept alive by StreamProbe.keep
    uint8_t *answers              # EFS_PROBE_* per path
    int *errnos                   # per path, for EFS_PROBE_IO_ERROR
    size_t count
    size_t next_index


cdef void probe_worker(probe_batch *b) noexcept nogil:
    cdef size_t i
    cdef int err
    while True:
        i = efs_atomic_next(&b.next_index)
        if i >= b.count:
            return
        err = 0
        b.answers[i] = <uint8_t>efs_probe_unnamed_path(b.paths[i], &err)
        b.errnos[i] = err


cdef class StreamProbe:
    """Probes a list of raw stream files (raw.has_unnamed_stream, in C): run
    ``work()`` from as many threads as wanted, then ``results()`` gives one
    PROBE_* byte per path (all of them once every ``work()`` returned)."""
    cdef probe_batch b
    cdef list keep
    cdef readonly size_t count

    def __cinit__(self):
        self.b.paths = NULL
        self.b.answers = NULL
        self.b.errnos = NULL

    def __init__(self, list paths):
        cdef size_t n = len(paths), i
        self.keep = [_fs_bytes(p) for p in paths]
        self.count = n
        self.b.paths = <const char **>malloc(max(n, 1) * sizeof(char *))
        self.b.answers = <uint8_t *>calloc(max(n, 1), 1)
        self.b.errnos = <int *>calloc(max(n, 1), sizeof(int))
        if self.b.paths == NULL or self.b.answers == NULL or self.b.errnos == NULL:
            raise MemoryError()
        for i in range(n):
            self.b.paths[i] = <const char *>(<bytes>self.keep[i])
        self.b.count = n
        self.b.next_index = 0

    def __dealloc__(self):
        free(self.b.paths)
        free(self.b.answers)
        free(self.b.errnos)

    def work(self):
        """Run as one of the workers (from a Python thread)."""
        with nogil:
            probe_worker(&self.b)

    def result(self, size_t i):
        """(PROBE_* answer, errno) of path i."""
        if i >= self.count:
            raise IndexError(i)
        return self.b.answers[i], self.b.errnos[i]

    def results(self):
        """One PROBE_* byte per path."""
        return PyBytes_FromStringAndSize(<char *>self.b.answers, self.count)
