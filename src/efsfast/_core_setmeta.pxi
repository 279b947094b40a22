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


cdef int _posix_values(object meta, bint acl, int *mode, int64_t *atime_ns,
                       int64_t *mtime_ns) except -1:
    """What backupset/metadata.apply sets on a POSIX file system for POSIX
    metadata (``meta`` as a manifest line gives it): 1 with the values
    (mode -1: times only, where ``acl`` is off), 0 for anything else (other
    sources, values apply would refuse or C cannot hold: apply is left to
    set them or say why)."""
    if type(meta) is not dict or (<dict>meta).get("source") != "posix":
        return 0
    atime, mtime = (<dict>meta).get("atime_ns"), (<dict>meta).get("mtime_ns")
    if type(atime) is not int or type(mtime) is not int:
        return 0
    if not (-0x7fffffffffffffff - 1 <= atime <= 0x7fffffffffffffff
            and -0x7fffffffffffffff - 1 <= mtime <= 0x7fffffffffffffff):
        return 0
    mode[0] = -1
    if acl:
        m = (<dict>meta).get("mode")
        if type(m) is not int or not 0 <= m <= 0o7777:
            return 0
        mode[0] = m
    atime_ns[0] = atime
    mtime_ns[0] = mtime
    return 1


cdef class PosixMetaBatch:
    """Sets POSIX metadata as backupset/metadata.apply does for POSIX
    metadata, on ``paths`` from their manifest lines' ``metas``: run
    ``work()`` from as many threads as wanted, then ``failures()`` lists
    what could not be set.  ``left`` lists (by index) the paths whose
    metadata it does not take (see _posix_values), for apply itself."""
    cdef setmeta_batch b
    cdef size_t *index            # the path each job is for
    cdef list keep
    cdef readonly size_t count
    cdef readonly list left

    def __cinit__(self):
        self.b.jobs = NULL
        self.index = NULL

    def __init__(self, list paths, list metas, bint acl):
        cdef size_t n = len(paths), i, k = 0
        cdef setmeta_job *j
        cdef int mode
        cdef int64_t atime_ns, mtime_ns
        if len(metas) != n:
            raise ValueError("one metadata dict per path")
        self._alloc(n)
        for i in range(n):
            if not _posix_values(metas[i], acl, &mode, &atime_ns, &mtime_ns):
                self.left.append(i)
                continue
            bpath = _fs_bytes(paths[i])
            self.keep.append(bpath)
            j = &self.b.jobs[k]
            j.path = <const char *>(<bytes>bpath)
            j.mode = mode
            j.atime_ns = atime_ns
            j.mtime_ns = mtime_ns
            self.index[k] = i
            k += 1
        self.count = k
        self.b.count = k

    cdef int _alloc(self, size_t n) except -1:
        """Room for ``n`` jobs, none counted yet."""
        self.keep = []
        self.left = []
        self.b.jobs = <setmeta_job *>calloc(max(n, 1), sizeof(setmeta_job))
        self.index = <size_t *>malloc(max(n, 1) * sizeof(size_t))
        if self.b.jobs == NULL or self.index == NULL:
            raise MemoryError()
        self.count = self.b.count = self.b.next_index = 0
        self.b.stop = 0
        return 0

    def __dealloc__(self):
        free(self.b.jobs)
        free(self.index)

    def work(self):
        """Run as one of the workers (from a Python thread)."""
        with nogil:
            setmeta_worker(&self.b)

    def stop(self):
        """No job is started after this (the ones running finish)."""
        self.b.stop = 1

    def failures(self):
        """(index of its path, errno, call) of every job that failed, in order."""
        cdef size_t i
        out = []
        for i in range(self.count):
            if self.b.jobs[i].err:
                out.append((self.index[i], self.b.jobs[i].err, self.b.jobs[i].op.decode()
                            if self.b.jobs[i].op != NULL else None))
        return out

    @property
    def started(self):
        """How many jobs were handed to a worker (all of them once every
        ``work()`` returned without ``stop``)."""
        return min(self.b.next_index, self.count)
