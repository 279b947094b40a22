# Included by _core.pyx: a backup set's object lines kept as C rows
# (ObjectTable), those in the writer's own spelling read by efs_manifest.c,
# and a set's files made into restore jobs from those rows (SetFiles), so
# that the calling thread of a set restore makes no Python object per line
# beyond what the restore returns: each object's (target, source) pair and,
# once it is restored, its result.

cdef enum RowKind:
    ROW_FILE = 0
    ROW_DIRECTORY = 1
    ROW_FOREIGN = 2         # a line json read: its Entry is in ObjectTable.foreign


cdef struct obj_row:
    size_t path_off         # the path's UTF-8 bytes in ObjectTable.paths, escapes undone
    size_t path_len
    uint64_t raw_size
    uint64_t source_size
    uint8_t sha256[32]
    uint8_t efs_sha256[32]
    int64_t atime_ns
    int64_t mtime_ns
    int64_t ctime_ns
    uint32_t mode
    int posix_meta
    RowKind kind
    Py_ssize_t foreign      # ROW_FOREIGN: the Entry's index in ObjectTable.foreign


cdef inline void _fill_row(obj_row *r, const efs_line_facts *f, size_t path_off) noexcept nogil:
    """Row ``r`` from a line's facts (its sha256 fields are filled by the
    read), its path at ``path_off`` of the paths it was read into."""
    r.path_off = path_off
    r.path_len = f.path_len
    r.raw_size = f.raw_size
    r.source_size = f.source_size
    r.posix_meta = f.posix_meta
    r.mode = f.mode
    r.atime_ns = f.atime_ns
    r.mtime_ns = f.mtime_ns
    r.ctime_ns = f.ctime_ns
    r.kind = ROW_DIRECTORY if f.directory else ROW_FILE
    r.foreign = -1


cdef class ObjectTable:
    """A manifest's object lines in order: each in the writer's own spelling
    as a row of C values (``read_run``), any other as the Entry json made of
    it (``add``; listed in ``foreign``).  ``entries`` makes the Entry list
    the rows stand for; ``set_files`` the restore jobs of a set's files."""
    cdef obj_row *rows
    cdef size_t count
    cdef size_t cap
    cdef uint8_t *paths
    cdef size_t paths_len
    cdef size_t paths_cap
    cdef readonly list foreign

    def __cinit__(self):
        self.rows = NULL
        self.paths = NULL
        self.count = self.cap = self.paths_len = self.paths_cap = 0
        self.foreign = []

    def __dealloc__(self):
        free(self.rows)
        free(self.paths)

    def __len__(self):
        return self.count

    cdef obj_row *_next_row(self) except NULL:
        """The row after the last (counted once the caller fills it)."""
        cdef size_t cap
        cdef obj_row *grown
        if self.count == self.cap:
            cap = max(2 * self.cap, 1024)
            grown = <obj_row *>realloc(self.rows, cap * sizeof(obj_row))
            if grown == NULL:
                raise MemoryError()
            self.rows, self.cap = grown, cap
        return &self.rows[self.count]

    cdef int _reserve_paths(self, size_t n) except -1:
        cdef size_t cap
        cdef uint8_t *grown
        if self.paths_len + n > self.paths_cap:
            cap = max(2 * self.paths_cap, self.paths_len + n, <size_t>65536)
            grown = <uint8_t *>realloc(self.paths, cap)
            if grown == NULL:
                raise MemoryError()
            self.paths, self.paths_cap = grown, cap
        return 0

    def read_run(self, bytes data, Py_ssize_t pos):
        """Every object line from offset ``pos`` of a manifest's bytes on, as
        the writer spells it (see manifest_object_fields), added as a row, up
        to the first line that is not one (or has no "\\n": a last line cut
        short): ``(its offset, lines taken)``."""
        cdef const char *base = PyBytes_AS_STRING(data)
        cdef Py_ssize_t size = len(data), start = pos, taken = 0
        cdef const char *nl
        cdef size_t n
        cdef efs_line_facts f
        cdef obj_row *r
        while start < size:
            nl = <const char *>memchr(base + start, b'\n', <size_t>(size - start))
            if nl == NULL:
                break
            n = <size_t>(nl - (base + start)) + 1
            self._reserve_paths(n)
            r = self._next_row()
            if not efs_manifest_read_object_line(base + start, n, &f, self.paths + self.paths_len,
                                                 r.sha256, r.efs_sha256):
                break
            _fill_row(r, &f, self.paths_len)
            self.paths_len += f.path_len
            self.count += 1
            start += <Py_ssize_t>n
            taken += 1
        return start, taken

    def add(self, entry):
        """A line json read, as its Entry, in its place after the rows so far."""
        cdef obj_row *r = self._next_row()
        r.kind = ROW_FOREIGN
        r.foreign = len(self.foreign)
        self.foreign.append(entry)
        self.count += 1

    cdef object _entry(self, const obj_row *r, make, file_kind, dir_kind):
        if r.kind == ROW_FOREIGN:
            return self.foreign[r.foreign]
        meta = _posix_meta_dict(r.atime_ns, r.ctime_ns, r.mode, r.mtime_ns) if r.posix_meta else {}
        return make(PyUnicode_DecodeUTF8(<const char *>self.paths + r.path_off, r.path_len, NULL),
                    dir_kind if r.kind == ROW_DIRECTORY else file_kind, r.raw_size,
                    _hex32(r.sha256), r.source_size, _hex32(r.efs_sha256), meta)

    def entries(self, make, file_kind, dir_kind, bint files=True):
        """Every line's Entry in order, a row's made as ``make(path, kind,
        raw_size, sha256, source_size, efs_sha256, meta)`` (``kind``:
        ``file_kind`` or ``dir_kind``; ``meta`` the POSIX metadata dict as
        json reads it, or a new empty one); with ``files`` off, without the
        rows of files (the lines json read are all there)."""
        cdef size_t i
        cdef list out = []
        for i in range(self.count):
            if files or self.rows[i].kind != ROW_FILE:
                out.append(self._entry(&self.rows[i], make, file_kind, dir_kind))
        return out

    def set_files(self, str dest_base, str src_base, str suffix):
        """The rows' objects as a set restore's jobs (:class:`SetFiles`):
        targets ``dest_base + path``, sources ``src_base + path + suffix``.
        None where their C paths would not be os.fsencode's bytes of those
        strings (no POSIX side, a file system encoding other than UTF-8, a
        base that is not UTF-8), or where some path is one the caller's own
        check refuses and names (an empty, "." or ".." part, a NUL)."""
        cdef size_t i
        cdef obj_row *r
        if not EFS_HAVE_POSIX or EFS_HAVE_WIN32:
            return None
        if not _fs_is_utf8():
            return None
        try:
            d, s, x = dest_base.encode("utf-8"), src_base.encode("utf-8"), suffix.encode("utf-8")
        except UnicodeEncodeError:
            return None
        for i in range(self.count):
            r = &self.rows[i]
            if r.kind != ROW_FOREIGN and not _plain_relative(self.paths + r.path_off, r.path_len):
                return None
        return SetFiles._make(self, d, s, x)


cdef bint _plain_relative(const uint8_t *p, size_t n) noexcept:
    """Whether the "/"-separated path p (n bytes) has only named parts: none
    empty, ".", or "..", and no NUL (restore's _target check, in C)."""
    cdef size_t i = 0, start
    if n == 0:
        return False
    while True:
        start = i
        while i < n and p[i] != b'/':
            if p[i] == 0:
                return False
            i += 1
        if i == start or (i - start == 1 and p[start] == b'.') or (
                i - start == 2 and p[start] == b'.' and p[start + 1] == b'.'):
            return False
        if i == n:
            return True
        i += 1          # past the "/": a part must follow


cdef class SetFiles:
    """A backup set's objects as restore jobs, made from its ObjectTable's
    rows in one pass: ``pairs``, the ``(target, source)`` of each file in
    manifest order (restore_many's jobs, each checked against its line's
    size and SHA-256), and ``dirs``, each encrypted folder's job as
    restore_many takes it (``(target, source, {"directory": True, "expect":
    (size, sha256)})``).  The files' C paths (os.fsencode's bytes: see
    ObjectTable.set_files) are kept in one buffer for :meth:`bulk` and
    :meth:`meta_batch`."""
    cdef ObjectTable table
    cdef size_t *rows               # the table row of each file
    cdef char *arena                # each file's target and source, NUL-ended
    cdef const char **c_paths       # file i's target at 2 i, its source at 2 i + 1
    cdef readonly size_t count
    cdef readonly list pairs
    cdef readonly list dirs

    def __cinit__(self):
        self.rows = NULL
        self.arena = NULL
        self.c_paths = NULL

    def __dealloc__(self):
        free(self.rows)
        free(self.arena)
        free(<void *>self.c_paths)

    @staticmethod
    cdef SetFiles _make(ObjectTable table, bytes dest, bytes src, bytes suffix):
        cdef SetFiles f = SetFiles.__new__(SetFiles)
        cdef size_t i, k = 0, total = 0, files = 0
        cdef size_t nd = len(dest), ns = len(src), nx = len(suffix)
        cdef obj_row *r
        cdef char *p
        f.table = table
        f.pairs = []
        f.dirs = []
        for i in range(table.count):
            if table.rows[i].kind == ROW_FILE:
                files += 1
                total += nd + ns + nx + 2 + 2 * table.rows[i].path_len
        f.rows = <size_t *>malloc(max(files, 1) * sizeof(size_t))
        f.arena = <char *>malloc(max(total, 1))
        f.c_paths = <const char **>malloc(max(2 * files, 1) * sizeof(char *))
        if f.rows == NULL or f.arena == NULL or f.c_paths == NULL:
            raise MemoryError()
        p = f.arena
        for i in range(table.count):
            r = &table.rows[i]
            if r.kind == ROW_DIRECTORY:
                f.dirs.append(f._dir_job(r, dest, src, suffix))
            if r.kind != ROW_FILE:
                continue
            f.rows[k] = i
            f.c_paths[2 * k] = p
            memcpy(p, <const char *>dest, nd)
            memcpy(p + nd, table.paths + r.path_off, r.path_len)
            p[nd + r.path_len] = 0
            target = PyUnicode_DecodeUTF8(p, nd + r.path_len, NULL)
            p += nd + r.path_len + 1
            f.c_paths[2 * k + 1] = p
            memcpy(p, <const char *>src, ns)
            memcpy(p + ns, table.paths + r.path_off, r.path_len)
            memcpy(p + ns + r.path_len, <const char *>suffix, nx)
            p[ns + r.path_len + nx] = 0
            source = PyUnicode_DecodeUTF8(p, ns + r.path_len + nx, NULL)
            p += ns + r.path_len + nx + 1
            f.pairs.append(_path_pair(target, source))
            k += 1
        f.count = k
        return f

    cdef object _dir_job(self, const obj_row *r, bytes dest, bytes src, bytes suffix):
        path = PyBytes_FromStringAndSize(<const char *>self.table.paths + r.path_off, r.path_len)
        return ((dest + path).decode("utf-8"), (src + path + suffix).decode("utf-8"),
                {"directory": True, "expect": (r.raw_size, _hex32(r.sha256))})

    def jobs(self, dict options=None):
        """The files' jobs as restore_many takes them: ``(target, source,
        {"expect": (size, sha256)})`` (for the Python path), each options
        dict with ``options`` added."""
        cdef size_t i
        cdef obj_row *r
        cdef list out = []
        for i in range(self.count):
            r = &self.table.rows[self.rows[i]]
            target, source = self.pairs[i]
            opts = {"expect": (r.raw_size, _hex32(r.sha256))}
            if options:
                opts.update(options)
            out.append((target, source, opts))
        return out

    def bulk(self, Backend backend, CancelToken token, bint fail_fast, efs_ulong flags):
        """A BulkRestore of every file, each checked as its ``expect`` would
        be, all with ``flags``."""
        cdef size_t i
        cdef bulk_job *j
        cdef object_check *chk
        cdef obj_row *r
        cdef BulkRestore b = BulkRestore.__new__(BulkRestore)
        b._alloc(self.count, token)
        b.keep.append(self)         # (the paths)
        b.checks = <object_check *>calloc(max(self.count, 1), sizeof(object_check))
        if b.checks == NULL:
            raise MemoryError()
        for i in range(self.count):
            r = &self.table.rows[self.rows[i]]
            j = &b.jobs[i]
            j.flags = flags
            j.dest = self.c_paths[2 * i]
            j.src_path = self.c_paths[2 * i + 1]
            chk = &b.checks[i]
            chk.expect_size = r.raw_size
            memcpy(chk.expect, r.sha256, 32)
            chk.state = CHECK_PENDING
            j.check = chk
        b._ready(backend, fail_fast)
        return b

    def meta_batch(self, bint acl, skip):
        """A PosixMetaBatch of the files' POSIX metadata (mode only where
        ``acl``), leaving out files without any and those whose target is
        in the set ``skip``; its indices are the files'."""
        cdef size_t i, k = 0
        cdef obj_row *r
        cdef setmeta_job *j
        cdef PosixMetaBatch b = PosixMetaBatch.__new__(PosixMetaBatch)
        b._alloc(self.count)
        b.keep.append(self)         # (the paths)
        for i in range(self.count):
            r = &self.table.rows[self.rows[i]]
            if not r.posix_meta or (skip and self.pairs[i][0] in skip):
                continue
            j = &b.b.jobs[k]
            j.path = self.c_paths[2 * i]
            j.mode = <int>r.mode if acl else -1
            j.atime_ns = r.atime_ns
            j.mtime_ns = r.mtime_ns
            b.index[k] = i
            k += 1
        b.count = b.b.count = k
        return b
