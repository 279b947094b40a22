# Included by _core.pyx: a set restore's POSIX metadata (permission bits,
# times) set on worker threads without the GIL (efs_setmeta.c), so that the
# calling thread only hands out the paths and values.

cdef struct setmeta_job:
    const char *path              # bytes kept alive by PosixMetaBatch.keep
    int mode                      # < 0: no chmod
    int64_t atime_ns
    int64_t mtime_ns
    int err                       # errno of the call that failed, 0: set (or not reached)
    const char *op                # that call's name (a static string)


cdef struct setmeta_batch:
    setmeta_job *jobs
    size_t count
    size_t next_index
    int stop


cdef void setmeta_worker(setmeta_batch *b) noexcept nogil:
    cdef size_t i
    cdef setmeta_job *j
    while not b.stop:
        i = efs_atomic_next(&b.next_index)
        if i >= b.count:
            return
        j = &b.jobs[i]
        j.err = efs_set_posix_meta(j.path, j.mode, j.atime_ns, j.mtime_ns, &j.op)


cdef class PosixMetaBatch:
    """Sets POSIX metadata on a list of ``(path, mode, atime_ns, mtime_ns)``
    (mode -1: times only), as backupset/metadata.apply does for POSIX
    metadata: run ``work()`` from as many threads as wanted, then
    ``failures()`` lists what could not be set.  Values that do not fit the
    C types raise OverflowError here, before any work."""
    cdef setmeta_batch b
    cdef list keep
    cdef readonly size_t count

    def __cinit__(self):
        self.b.jobs = NULL

    def __init__(self, list jobs):
        cdef size_t n = len(jobs), i
        cdef setmeta_job *j
        self.keep = []
        self.count = n
        self.b.jobs = <setmeta_job *>calloc(max(n, 1), sizeof(setmeta_job))
        if self.b.jobs == NULL:
            raise MemoryError()
        for i in range(n):
            path, mode, atime_ns, mtime_ns = jobs[i]
            bpath = _fs_bytes(path)
            self.keep.append(bpath)
            j = &self.b.jobs[i]
            j.path = <const char *>(<bytes>bpath)
            j.mode = mode
            j.atime_ns = atime_ns
            j.mtime_ns = mtime_ns
        self.b.count = n
        self.b.next_index = 0
        self.b.stop = 0

    def __dealloc__(self):
        free(self.b.jobs)

    def work(self):
        """Run as one of the workers (from a Python thread)."""
        with nogil:
            setmeta_worker(&self.b)

    def stop(self):
        """No job is started after this (the ones running finish)."""
        self.b.stop = 1

    def failures(self):
        """(index, errno, call) of every job that failed, in job order."""
        cdef size_t i
        out = []
        for i in range(self.count):
            if self.b.jobs[i].err:
                out.append((i, self.b.jobs[i].err, self.b.jobs[i].op.decode()
                            if self.b.jobs[i].op != NULL else None))
        return out

    @property
    def started(self):
        """How many jobs were handed to a worker (all of them once every
        ``work()`` returned without ``stop``)."""
        return min(self.b.next_index, self.count)
