# Included by _core.pyx: restore_many's C path, every item's open / write /
# close on worker threads without the GIL.

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
    object_check *check           # the manifest's size and SHA-256, or NULL: not checked


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
        if j.check != NULL:
            j.rc = checked_write(st.backend, ctx, import_from_fd if fd >= 0 else import_from_buffer,
                                 &c, &c, j.check)
        elif fd >= 0:
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


cdef object frozen_result(new, make, path, uint64_t nbytes, uint64_t calls, bint data):
    """``make(path, nbytes, calls)`` (``data=None`` too where ``data``) for a
    frozen dataclass ``make``, its fields set one by one as its __init__
    sets them (through object's own setattr), without the calls; ``new``:
    object.__new__.  The result is left out of the cyclic GC, as CPython
    leaves a tuple or dict of atomic values: a frozen record of a str and
    ints is in no cycle, and the collections that would walk one per item
    of a bulk job, young and then older, were ~0.2 us per item of its
    calling thread."""
    if type(path) is not str:
        path = os.fspath(path)
    r = new(make)
    PyObject_GenericSetAttr(r, "path", path)
    PyObject_GenericSetAttr(r, "bytes", nbytes)
    PyObject_GenericSetAttr(r, "calls", calls)
    if data:
        PyObject_GenericSetAttr(r, "data", None)
    if type(path) is str:
        PyObject_GC_UnTrack(<void *>r)
    return r


cdef class BulkRestore:
    """Restores a batch of (dest, buffer or path) jobs with every item's work
    in C: the workers take the next index atomically and run open / write /
    close without ever taking the GIL (python-zstandard's multi-buffer
    pattern).  Buffers are acquired up front and released in one place."""
    cdef bulk_state st
    cdef bulk_job *jobs
    cdef object_check *checks     # one per job, made only if some job has an expectation
    cdef Py_buffer *views
    cdef size_t nviews
    cdef list keep
    cdef readonly object token
    cdef readonly size_t count
    cdef bint utf8              # (see _fs_chars)

    def __cinit__(self):
        self.jobs = NULL
        self.checks = NULL
        self.views = NULL
        self.nviews = 0

    def __init__(self, list jobs, Backend backend, CancelToken token, bint fail_fast):
        """``jobs``: ``(dest, source, flags)``, or ``(dest, source, flags,
        expect)`` where ``expect`` is None or the ``(size, sha256)`` the
        stream must have (checked as it passes; see _core_check.pxi)."""
        cdef size_t i
        self._alloc(len(jobs), token)
        self.keep.append(tuple(jobs))      # (their str paths: see _fill)
        for i in range(self.count):
            job = jobs[i]
            self._fill(i, job[0], job[1], job[2], job[3] if len(job) > 3 else None)
        self._ready(backend, fail_fast)

    cdef int _alloc(self, size_t n, CancelToken token) except -1:
        self.keep = []
        self.utf8 = _fs_is_utf8()
        self.token = token
        self.count = n
        self.jobs = <bulk_job *>calloc(max(n, 1), sizeof(bulk_job))   # ops NULL until set
        self.views = <Py_buffer *>malloc(max(n, 1) * sizeof(Py_buffer))
        if self.jobs == NULL or self.views == NULL:
            raise MemoryError()
        return 0

    cdef int _ready(self, Backend backend, bint fail_fast) except -1:
        self.st.jobs = self.jobs
        self.st.count = self.count
        self.st.next_index = 0
        self.st.backend = backend.c_backend
        self.st.use_posix_open = isinstance(backend, PosixBackend)
        if self.st.use_posix_open:
            self.st.opts = (<PosixBackend>backend).opts
        self.st.cancel = &(<CancelToken>self.token).flag
        self.st.sigint_base = efs_sigint_count()
        self.st.fail_fast = fail_fast
        self.st.done_files = self.st.done_bytes = 0
        return 0

    cdef int _fill(self, size_t i, object dest, object source, efs_ulong flags,
                   object expect) except -1:
        cdef bulk_job *j = &self.jobs[i]
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
        j.check = NULL
        if expect is not None:
            if self.checks == NULL:
                self.checks = <object_check *>calloc(self.count, sizeof(object_check))
                if self.checks == NULL:
                    raise MemoryError()
            check_expect(&self.checks[i], expect)
            j.check = &self.checks[i]
        cdef size_t n
        # (a str path's own UTF-8 where it can, kept alive by the jobs the
        # caller keeps in ``keep``: no bytes object per path)
        if EFS_HAVE_WIN32:
            bdest = _c_path(dest)
            self.keep.append(bdest)
            j.dest = <const char *>(<bytes>bdest)
        else:
            j.dest = _fs_chars(dest, self.utf8, self.keep, &n)
        if isinstance(source, (str, os.PathLike)):
            j.src_path = _fs_chars(source, self.utf8, self.keep, &n)
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
        return 0

    def __dealloc__(self):
        cdef size_t i
        for i in range(self.nviews):
            release(&self.views[i])
        free(self.views)
        free(self.checks)
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
        if j.rc == 0 and j.check != NULL and j.check.state == CHECK_MATCHED:
            return None, j.bytes, j.calls   # (checked and done: no source name to decode)
        if j.check != NULL:
            error = check_error(j.check, j.rc, os.fsdecode(j.src_path) if j.src_path != NULL
                                else None, self._error(j, path))
        else:
            error = self._error(j, path)
        if error is not None:
            return error, 0, 0
        return None, j.bytes, j.calls

    def outcomes(self, jobs, make):
        """Every job's success at once, as ``make`` (a frozen dataclass
        taking ``(path, bytes, calls)``) spells it, set up field by field as
        its __init__ would: ``(results, files, bytes, others)`` where
        ``results`` holds None for the jobs listed in ``others``, which failed,
        were cancelled or never started (see :meth:`outcome`)."""
        cdef size_t i
        cdef bulk_job *j
        cdef uint64_t nbytes = 0
        cdef Py_ssize_t files = 0
        cdef list results = [None] * self.count
        cdef list others = []
        new = object.__new__
        for i in range(self.count):
            j = &self.jobs[i]
            if not j.started or j.rc != 0 or (j.check != NULL and j.check.state != CHECK_MATCHED):
                others.append(i)
                continue
            results[i] = frozen_result(new, make, jobs[i][0], j.bytes, j.calls, False)
            files += 1
            nbytes += j.bytes
        return results, files, nbytes, others

    cdef object _error(self, bulk_job *j, path):
        """What the system side's status means for job ``j`` (None: done)."""
        if j.rc == 0:
            return None
        if j.rc == EFS_ERROR_CANCELLED:
            PyErr_CheckSignals()
            return CancelledError(j.rc, "cancelled", os.fspath(path))
        if j.ferr.rule:
            e = _format_error(&j.ferr)
            e.filename = os.fspath(path)
            return e
        if j.rc == EFS_ERROR_READ_FAULT and j.read_errno:
            return OSError(j.read_errno, os.strerror(j.read_errno))
        msg = None
        if j.err_no:
            msg = f"{j.op.decode()}: {os.strerror(j.err_no)}" if j.op != NULL else os.strerror(j.err_no)
        elif j.op != NULL:
            msg = j.op.decode()
        return EfsError(j.rc, msg, os.fspath(path), j.err_no or None)


def plain_bulk_restore(list jobs, Backend backend, CancelToken token, bint fail_fast,
                       efs_ulong flags):
    """A BulkRestore of restore_many's ``jobs`` made without a Python step
    per item, where each is ``(dest, source)`` or ``(dest, source, {"expect":
    e})`` with a buffer (or, on the POSIX side, a path) as its source, all
    with the same ``flags``; None where some job is of another kind."""
    cdef size_t i
    cdef BulkRestore b = BulkRestore.__new__(BulkRestore)
    b._alloc(len(jobs), token)
    b.keep.append(tuple(jobs))          # (their str paths: see _fill)
    for i in range(b.count):
        job = jobs[i]
        source = job[1]
        t = type(source)
        if not (t is bytes or t is bytearray or t is memoryview or (t is str and EFS_HAVE_POSIX)):
            return None
        if len(job) == 2:
            expect = None
        else:
            opts = job[2]
            if len(job) != 3 or type(opts) is not dict or len(opts) != 1 or "expect" not in opts:
                return None
            expect = opts["expect"]
        b._fill(i, job[0], source, flags, expect)
    b._ready(backend, fail_fast)
    return b
