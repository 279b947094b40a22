# Included by _core.pyx: which raw streams of a tree restore are folders'
# (no unnamed data stream), found on worker threads without the GIL
# (efs_probe.c), so that the calling thread only hands out the paths.

PROBE_NO_UNNAMED = EFS_PROBE_NO_UNNAMED
PROBE_UNNAMED = EFS_PROBE_UNNAMED
PROBE_UNKNOWN = EFS_PROBE_UNKNOWN
PROBE_IO_ERROR = EFS_PROBE_IO_ERROR


cdef struct probe_batch:
    const char **paths            # kept alive by StreamProbe.keep (its paths' strs, or bytes)
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
    ``work()`` from as many threads as wanted, then ``result(i)`` gives a
    path's PROBE_* answer and errno, ``positions(answer)`` the paths with
    one answer (all of them once every ``work()`` returned).
    ``item``: the paths are ``paths[i][item]`` (jobs), not ``paths[i]``."""
    cdef probe_batch b
    cdef list keep
    cdef readonly size_t count

    def __cinit__(self):
        self.b.paths = NULL
        self.b.answers = NULL
        self.b.errnos = NULL

    def __init__(self, list paths, Py_ssize_t item=-1):
        cdef size_t n = len(paths), i, length
        cdef bint utf8 = _fs_is_utf8()
        # (the str of each path is kept alive by ``paths``, whose items the
        # caller must not change until the probes are done; bytes by keep)
        self.keep = [paths]
        self.count = n
        self.b.paths = <const char **>malloc(max(n, 1) * sizeof(char *))
        self.b.answers = <uint8_t *>calloc(max(n, 1), 1)
        self.b.errnos = <int *>calloc(max(n, 1), sizeof(int))
        if self.b.paths == NULL or self.b.answers == NULL or self.b.errnos == NULL:
            raise MemoryError()
        for i in range(n):
            p = paths[i] if item < 0 else paths[i][item]
            self.b.paths[i] = _fs_chars(p, utf8, self.keep, &length)
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

    def positions(self, uint8_t answer):
        """The positions of the paths whose answer is ``answer``, in order."""
        cdef size_t i
        cdef list out = []
        cdef const uint8_t *a = self.b.answers
        for i in range(self.count):
            if a[i] == answer:
                out.append(i)
        return out
