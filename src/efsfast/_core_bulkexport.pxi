# Included by _core.pyx: the objects of a backup set exported on worker
# threads without the GIL (POSIX side, efs_posix_backup.c), each recording
# what the manifest needs; the caller takes the finished ones as they come.

cdef struct export_job:
    # what the calling thread sets per item: the worker copies it into the
    # item it claims (efs_backup_item is ~1.3 KiB: the calling thread
    # writing 10,000 of them took a page fault every ~3 items, ~1.5 us each
    # here, ~0.3 us per item of the serial part; the workers now take them)
    const char *src
    const char *dest
    const char *tmp
    const uint8_t *rel
    size_t rel_len
    uint64_t tmp_nonce
    efs_ulong flags
    int line_meta
    int overwrite


# export_batch.done[i]: 0 while item i is not through, then ITEM_DONE (its
# worker's release), ITEM_TAKEN once a run took it (BulkExport.take_run)
cdef enum:
    ITEM_DONE = 1
    ITEM_TAKEN = 2
    ITEM_JOINED = 3     # (its line joined and freed: join_lines refuses it again)


cdef struct export_batch:
    export_job *jobs
    efs_backup_item *items        # malloc'd: an item is set by the worker that claims it
    uint64_t *done                # per item, set (release) when its worker is through
    size_t count
    size_t next_index
    efs_posix_options opts
    int *cancel
    unsigned sigint_base
    int fail_fast
    int capture_ntfs
    int sync
    int no_hash
    uint64_t done_files
    uint64_t done_bytes


cdef inline efs_backup_item *claimed_item(export_batch *b, size_t i) noexcept nogil:
    """Item i set up from its job by the worker that claimed it (its
    outputs zero)."""
    cdef efs_backup_item *it = &b.items[i]
    cdef const export_job *j = &b.jobs[i]
    memset(it, 0, sizeof(efs_backup_item))
    it.src, it.dest, it.tmp = j.src, j.dest, j.tmp
    it.rel, it.rel_len, it.line_meta = j.rel, j.rel_len, j.line_meta
    it.tmp_nonce, it.flags, it.overwrite = j.tmp_nonce, j.flags, j.overwrite
    it.capture_ntfs, it.sync, it.no_hash = b.capture_ntfs, b.sync, b.no_hash
    return it


cdef void export_worker(export_batch *b) noexcept nogil:
    cdef size_t i
    cdef efs_backup_item *it
    while not cancelled(b.cancel, b.sigint_base):
        i = efs_atomic_next(&b.next_index)
        if i >= b.count:
            return
        it = claimed_item(b, i)
        efs_posix_backup_item(it, &b.opts, b.cancel, b.sigint_base)
        if it.outcome == EFS_BACKUP_DONE:
            efs_atomic_add(&b.done_files, 1)
            efs_atomic_add(&b.done_bytes, it.data_len)
        elif (it.outcome == EFS_BACKUP_FAILED and b.fail_fast and b.cancel != NULL
              and it.rc != EFS_ERROR_CANCELLED):
            b.cancel[0] = 1
        efs_atomic_set(&b.done[i], ITEM_DONE)


cdef Py_ssize_t _folder_cut(const char *path, size_t n) noexcept:
    """The length of ``path``'s folder where it is the part before the last
    "/" (a name below a folder not itself "/" and without a doubled "/"),
    else 0 (os.path.dirname answers)."""
    cdef size_t k = n
    while k > 0 and path[k - 1] != b'/':
        k -= 1
    if k < 2 or path[k - 2] == b'/':
        return 0
    return <Py_ssize_t>(k - 1)


class NotPairs(ValueError):
    """BulkExport(pairs=True): a job is not an (object, backup file) pair of
    str or path-like paths (the caller takes its general path instead)."""


# the metadata a worker's manifest line records, by MetaSource value
_LINE_META = {"posix": EFS_LINE_META_POSIX, "none": EFS_LINE_META_NONE}


cdef class BulkExport:
    """Exports a batch of (object, backup file, temporary, flags[,
    overwrite]) into files of a backup set with every item's work in C;
    ``take(i)`` hands over what item i found once its worker is through
    (``ready(i)``).  ``sync`` (benchmarks): each backup file is fsynced
    before it gets its name, the alternative measured against durable.py's
    one sync of the set.  backup_many: ``hash=False`` (no SHA-256), a
    temporary of None (named in C, beside the backup file), ``result(i)``
    (only what a BackupResult needs).  ``lines`` ("posix" or "none": the
    metadata recorded) has each worker make the manifest line of every
    object below ``rel_prefix`` (the source folder and a "/") that it backs
    up, from what it found; ``take_run`` and ``join_lines`` hand them over in runs.
    ``plan``: the jobs as a backup's plan gives them, (object, backup file[,
    options]), a folder where options are given, each temporary named in C
    (no job list made again per object); ``folders`` then lists the folders
    the backup files go into, in job order, a run of files in one folder
    once.  ``pairs``: every job an (object, backup file) pair of str or
    path-like paths, as backup_many's common jobs are, taken as they are
    (no job list made again, no folders listed); :class:`NotPairs` where
    one is not, before any work."""
    cdef export_batch b
    cdef list keep
    cdef readonly size_t count
    cdef readonly list folders

    def __cinit__(self):
        self.b.jobs = NULL
        self.b.items = NULL
        self.b.done = NULL
        self.b.count = 0

    def __init__(self, list jobs, PosixBackend backend, CancelToken token, *,
                 bint capture_ntfs, bint overwrite, bint sync=False, bint hash=True,
                 bint fail_fast=False, str lines=None, str rel_prefix=None,
                 bint plan=False, bint pairs=False):
        cdef size_t n = len(jobs), i, len_src, len_dest, len_prefix = 0
        cdef Py_ssize_t cut, last_cut = -1
        cdef const char *last_dest = NULL
        cdef export_job *it
        cdef bytes prefix = None
        cdef int line_meta = EFS_LINE_META_NONE
        if lines is not None:
            if lines not in _LINE_META:
                raise ValueError(f"lines: {lines!r} is not one of {sorted(_LINE_META)}")
            if not hash or rel_prefix is None:
                raise ValueError("lines: a manifest line needs the hashes and rel_prefix")
            line_meta = _LINE_META[lines]
            prefix = os.fsencode(rel_prefix)
            len_prefix = len(prefix)
        cdef uint64_t nonce = int.from_bytes(os.urandom(8), "little")
        # (the jobs' str paths are their C paths where os.fsencode would give
        # their UTF-8 bytes: no bytes object per path; kept by keeping the jobs)
        cdef bint utf8 = _fs_is_utf8()
        self.keep = [tuple(jobs)]
        self.folders = []
        self.count = n
        if n > (<size_t>-1) // sizeof(efs_backup_item):
            raise MemoryError()
        self.b.jobs = <export_job *>calloc(max(n, 1), sizeof(export_job))
        # (not zeroed here: each item's pages are first touched by its worker)
        self.b.items = <efs_backup_item *>malloc(max(n, 1) * sizeof(efs_backup_item))
        self.b.done = <uint64_t *>calloc(max(n, 1), sizeof(uint64_t))
        if self.b.jobs == NULL or self.b.items == NULL or self.b.done == NULL:
            raise MemoryError()
        self.b.count = n
        # (neither plan nor pairs: each job spells its own temporary, flags and overwrite)
        cdef bint own_form = not (plan or pairs)
        for i in range(n):
            job = jobs[i]
            if pairs:
                try:
                    if len(job) != 2:
                        raise NotPairs(f"job {i} is not a pair")
                    src, dest = job
                except TypeError:
                    raise NotPairs(f"job {i} is not a pair") from None
                if ((type(src) is not str and not isinstance(src, os.PathLike))
                        or (type(dest) is not str and not isinstance(dest, os.PathLike))):
                    raise NotPairs(f"job {i} is not a pair of paths")
                if type(job) is not tuple:      # (a list could change: its paths kept here)
                    self.keep.append((src, dest))
                tmp, flags = None, 0
            elif plan:
                src, dest = job[0], job[1]
                tmp, flags = None, CREATE_FOR_DIR if len(job) > 2 else 0
            else:
                src, dest, tmp, flags = job[0], job[1], job[2], job[3]
            it = &self.b.jobs[i]
            it.src = _fs_chars(src, utf8, self.keep, &len_src)
            it.dest = _fs_chars(dest, utf8, self.keep, &len_dest)
            if plan:
                cut = _folder_cut(it.dest, len_dest)
                if cut == 0:
                    self.folders.append(os.path.dirname(dest))
                    last_cut = -1
                elif cut != last_cut or memcmp(it.dest, last_dest, cut) != 0:
                    self.folders.append(os.fsdecode(PyBytes_FromStringAndSize(it.dest, cut)))
                    last_dest, last_cut = it.dest, cut
            # (an object elsewhere, or a name that ends there: its line is
            # left to the caller)
            # (memcmp: a bytes.startswith call per object cost more)
            if (prefix is not None and len_src > len_prefix
                    and memcmp(it.src, <const char *>(<bytes>prefix), len_prefix) == 0):
                it.rel = <const uint8_t *>it.src + len_prefix
                it.rel_len = len_src - len_prefix
                it.line_meta = line_meta
            if tmp is None:
                it.tmp = NULL             # named by the worker (efs_posix_backup.c)
                it.tmp_nonce = nonce + i
            else:
                btmp = os.fsencode(tmp)
                self.keep.append(btmp)
                it.tmp = <const char *>(<bytes>btmp)
            it.flags = flags
            it.overwrite = job[4] if own_form and len(job) > 4 else overwrite
        self.b.capture_ntfs = capture_ntfs
        self.b.sync = sync
        self.b.no_hash = not hash
        self.b.next_index = 0
        self.b.opts = backend.opts
        self.b.cancel = &token.flag
        self.b.sigint_base = efs_sigint_count()
        self.b.fail_fast = fail_fast
        self.b.done_files = self.b.done_bytes = 0

    def __dealloc__(self):
        cdef size_t i
        if self.b.items != NULL and self.b.done != NULL:
            for i in range(self.b.count):
                if efs_atomic_get(&self.b.done[i]):     # (set up by a worker)
                    efs_posix_backup_item_free(&self.b.items[i])
        free(self.b.jobs)
        free(self.b.items)
        free(self.b.done)

    def work(self):
        """Run as one of the workers (from a Python thread)."""
        with nogil:
            export_worker(&self.b)

    @property
    def progress(self):
        return self.b.done_files, self.b.done_bytes

    def ready(self, size_t i):
        return i < self.b.count and efs_atomic_get(&self.b.done[i]) != 0

    def take(self, size_t i, src, dest):
        """What item i found, its buffers handed over: (outcome, error or
        None, stat, attrib, times, descriptor or None, descriptor errno,
        SHA-256 of the $EFS, SHA-256 of the stream (hex, None unless done),
        stream size); outcome 'done', 'plain', 'failed' or 'not started'."""
        cdef efs_backup_item *it = &self.b.items[i]
        cdef str outcome
        if i >= self.b.count or not efs_atomic_get(&self.b.done[i]):
            return "not started", None, None, None, None, None, 0, None, None, 0
        error = None
        if it.outcome == EFS_BACKUP_DONE:
            outcome = "done"
        elif it.outcome == EFS_BACKUP_PLAIN:
            outcome = "plain"
        else:
            outcome = "failed"
            error = self._error(it, src, dest)
        st = (it.st.size, it.st.mode, it.st.atime_ns, it.st.mtime_ns, it.st.ctime_ns)
        attrib = PyBytes_FromStringAndSize(<char *>it.attrib, 4)
        times = PyBytes_FromStringAndSize(<char *>it.times, 32)
        acl = PyBytes_FromStringAndSize(<char *>it.acl, it.acl_len) if it.acl != NULL else None
        efs_sha = sha = None
        if outcome == "done":
            efs_sha = PyBytes_FromStringAndSize(<char *>it.efs_sha256, 32).hex()
            sha = PyBytes_FromStringAndSize(<char *>it.sha256, 32).hex()
        result = (outcome, error, st, attrib, times, acl, it.acl_errno, efs_sha, sha, it.data_len)
        efs_posix_backup_item_free(it)
        return result

    def take_run(self, size_t i, size_t stop, list results, dict made, make):
        """The run of finished items from i on (below ``stop``) whose
        manifest lines the workers made, each one's result put in
        ``results``: ``make(is a folder, stream size)``, made once per
        distinct pair and shared through ``made`` (no object per item: this
        runs in the calling thread).  Their lines stay in the items for
        :meth:`join_lines`, which frees them.  Returns (the first item not
        in the run, their stream bytes)."""
        cdef size_t j = i, k
        cdef unsigned long long nbytes = 0
        cdef efs_backup_item *it
        cdef bint folder, last_folder = False
        cdef size_t last_len = 0
        done = None
        if stop > self.b.count:
            stop = self.b.count
        if stop > <size_t>len(results):
            raise IndexError("take_run: results is shorter than the batch")
        # (an item a run took is marked TAKEN: its line stays in it until
        # join_lines, so a later run must stop there, not take it again)
        while j < stop and efs_atomic_get(&self.b.done[j]) == ITEM_DONE:
            it = &self.b.items[j]
            if it.outcome != EFS_BACKUP_DONE or it.line == NULL:
                break
            j += 1
        for k in range(i, j):
            it = &self.b.items[k]
            efs_atomic_set(&self.b.done[k], ITEM_TAKEN)
            nbytes += it.data_len
            folder = (self.b.jobs[k].flags & EFS_CREATE_FOR_DIR) != 0
            # (the last one's again, the common case, without a look-up)
            if done is None or folder != last_folder or it.data_len != last_len:
                # (a folder's key is below every file's: -1 - size)
                key = -1 - <long long>it.data_len if folder else <long long>it.data_len
                done = made.get(key)
                if done is None:
                    done = made[key] = make(folder, it.data_len)
                last_folder, last_len = folder, it.data_len
            results[k] = done
        return j, nbytes

    def join_lines(self, size_t i, size_t j):
        """The manifest lines of the items i..j-1, a run :meth:`take_run`
        gave, joined, each item's buffers freed; once per run, from any one
        thread (bulk.py: the one that writes the manifest, so that reading
        lines made on other cores is not the calling thread's; the copy
        lets go of the GIL)."""
        cdef size_t k, total = 0
        cdef efs_backup_item *it
        cdef char *dst
        if j > self.b.count or i > j:
            raise IndexError("join_lines: not a run of the batch")
        for k in range(i, j):
            it = &self.b.items[k]
            if efs_atomic_get(&self.b.done[k]) != ITEM_TAKEN or it.line == NULL:
                raise ValueError(f"join_lines: item {k} is not in a run take_run gave "
                                 "(or its line was joined already)")
            total += it.line_len
        blob = PyBytes_FromStringAndSize(NULL, total)
        dst = PyBytes_AS_STRING(blob)
        with nogil:
            for k in range(i, j):
                it = &self.b.items[k]
                memcpy(dst, it.line, it.line_len)
                dst += it.line_len
                efs_posix_backup_item_free(it)
                efs_atomic_set(&self.b.done[k], ITEM_JOINED)
        return blob

    def outcomes(self, jobs, make):
        """Every backed-up item's result at once, ``make(src, stream size,
        calls)`` with ``data=None`` (a frozen dataclass, set up field by
        field as its __init__ would), its buffers freed: ``(results, files,
        bytes, others)`` where ``results`` holds None for the items listed
        in ``others`` (not started, plain or failed: see :meth:`result`,
        which still answers for them)."""
        cdef size_t i
        cdef efs_backup_item *it
        cdef uint64_t nbytes = 0
        cdef Py_ssize_t files = 0
        cdef list results = [None] * self.b.count
        cdef list others = []
        new = object.__new__
        for i in range(self.b.count):
            it = &self.b.items[i]
            if not efs_atomic_get(&self.b.done[i]) or it.outcome != EFS_BACKUP_DONE:
                others.append(i)
                continue
            results[i] = frozen_result(new, make, jobs[i][0], it.data_len, it.calls, True)
            files += 1
            nbytes += it.data_len
            efs_posix_backup_item_free(it)
        return results, files, nbytes, others

    def result(self, size_t i, src, dest):
        """(outcome, error or None, stream size, callback calls) of item i,
        its buffers freed; outcome as in take()."""
        cdef efs_backup_item *it = &self.b.items[i]
        if i >= self.b.count or not efs_atomic_get(&self.b.done[i]):
            return "not started", None, 0, 0
        if it.outcome == EFS_BACKUP_DONE:
            result = ("done", None, it.data_len, it.calls)
        elif it.outcome == EFS_BACKUP_PLAIN:
            result = ("plain", None, 0, 0)
        else:
            result = ("failed", self._error(it, src, dest), 0, 0)
        efs_posix_backup_item_free(it)
        return result

    cdef object _error(self, efs_backup_item *it, src, dest):
        path = os.fspath(dest if it.name_dest else src)
        if it.rc == EFS_ERROR_CANCELLED:
            PyErr_CheckSignals()
            return CancelledError(it.rc, "cancelled", path)
        if it.ferr.rule:
            e = _format_error(&it.ferr)
            e.filename = path
            return e
        op = it.op.decode(errors="replace") if it.op != NULL else None
        msg = None
        if it.err_no:
            msg = f"{op}: {os.strerror(it.err_no)}" if op else os.strerror(it.err_no)
        elif op:
            msg = op
        return EfsError(it.rc, msg, path, it.err_no or None)
