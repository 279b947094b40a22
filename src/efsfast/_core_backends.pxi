# Included by _core.pyx: the system sides, advapi32 (win32) and efsfast's own
# POSIX side, behind one vtable (efs_backend.h).

# the largest system buffer a PosixBackend takes (the command line's
# --buffer-size checks the same bound before any work)
MAX_BUFFER_SIZE = 1 << 30


cdef class Backend:
    """A system side: the four raw-EFS calls."""

    @property
    def name(self):
        return self.c_backend.name.decode() if self.c_backend != NULL else "unavailable"

    cdef efs_dword c_open(self, object path, efs_ulong flags, void **ctx) except? 0xFFFFFFFF:
        cdef bytes bpath
        if self.c_backend == NULL:
            raise EfsError(EFS_ERROR_NOT_SUPPORTED, f"the {type(self).__name__} system side "
                           "is not available on this platform")
        bpath = _c_path(path)
        return self.c_open_raw(<const char *>bpath, flags, ctx)

    cdef efs_dword c_open_raw(self, const char *path, efs_ulong flags, void **ctx) except? 0xFFFFFFFF:
        cdef efs_dword rc
        with nogil:
            rc = self.c_backend.open(<const efs_path_char *>path, flags, ctx)
        return rc

    cdef object details(self, void *ctx):
        """(format error or None, errno, operation) of the last failure."""
        return None, 0, None


cdef class PosixBackend(Backend):
    """efsfast's own system side: the ntfs-3g efs_raw layout on any POSIX
    file system.  ``buffer_size`` is the capacity offered per import call
    (and the export block size); with ``seed`` the capacities are random in
    ``min_size..buffer_size``; ``null_sink`` validates without writing."""

    def __init__(self, *, buffer_size=65536, seed=None, min_size=1, mode="strict",
                 null_sink=False, cluster_shift=0, _unvalidated_copy=False, _fault=None,
                 _sync_each=False):
        if not EFS_HAVE_POSIX:
            raise EfsError(EFS_ERROR_NOT_SUPPORTED, "the POSIX system side is not built on Windows")
        self.c_backend = efs_posix_backend()
        efs_posix_default_options(&self.opts)
        if not 1 <= buffer_size <= MAX_BUFFER_SIZE:
            raise ValueError(f"the buffer size must be 1 to {MAX_BUFFER_SIZE} bytes (1 GiB), "
                             f"not {buffer_size}")
        if not 1 <= min_size <= buffer_size:
            raise ValueError(f"min_size must be 1 to the buffer size ({buffer_size}), "
                             f"not {min_size}")
        if cluster_shift and not 9 <= cluster_shift <= 21:
            raise ValueError("cluster_shift must be 0 (from the file system) or 9..21")
        self.opts.buffer_size = buffer_size
        self.opts.min_size = min_size
        self.opts.seed = 0 if seed is None else (seed & 0xFFFFFFFFFFFFFFFF) or 1
        self.opts.mode = EFS_MODE_COMPATIBLE if mode in ("compatible", "compat") else EFS_MODE_STRICT
        if mode not in ("strict", "compatible", "compat"):
            raise ValueError(f"mode must be 'strict' or 'compatible', not {mode!r}")
        self.opts.null_sink = bool(null_sink)
        self.opts.cluster_shift = cluster_shift
        # benchmarks only: what a restore costs without the streaming validation
        self.opts.unvalidated_copy = bool(_unvalidated_copy)
        # benchmarks only: each restored file fsynced before it is published
        self.opts.sync_each = bool(_sync_each)
        # tests only: (point, errno) makes one system call of the side fail
        if _fault is not None:
            self.opts.fault_point, self.opts.fault_errno = _fault

    def __repr__(self):
        o = self.opts
        return (f"PosixBackend(buffer_size={o.buffer_size}, seed={o.seed or None}, "
                f"min_size={o.min_size}, null_sink={bool(o.null_sink)})")

    cdef efs_dword c_open_raw(self, const char *path, efs_ulong flags, void **ctx) except? 0xFFFFFFFF:
        cdef efs_dword rc
        cdef efs_posix_options o = self.opts
        o.no_replace = (flags & NO_REPLACE_FLAG) != 0
        flags &= ~NO_REPLACE_FLAG
        with nogil:
            rc = efs_posix_open_ex(path, flags, &o, ctx)
        return rc

    cdef object details(self, void *ctx):
        cdef const efs_error *fe = efs_posix_last_format_error(ctx)
        cdef const char *op = efs_posix_last_operation(ctx)
        return ((<object>_format_error(fe)) if fe != NULL and fe.rule else None,
                efs_posix_last_errno(ctx), op.decode() if op != NULL else None)


cdef object _format_error(const efs_error *e):
    return RawFormatError(f"R{e.rule}", e.offset, e.code.decode(),
                          e.detail.decode() if e.detail != NULL else "", e.winerror)


cdef class Win32Backend(Backend):
    """advapi32's OpenEncryptedFileRawW / ReadEncryptedFileRaw /
    WriteEncryptedFileRaw / CloseEncryptedFileRaw."""

    def __init__(self):
        self.c_backend = efs_win32_backend()
        if self.c_backend == NULL:
            raise EfsError(EFS_ERROR_NOT_SUPPORTED, "the win32 system side exists only on Windows")

    def __repr__(self):
        return "Win32Backend()"

    @staticmethod
    def enable_privileges(bint backup=True, bint restore=True):
        """Enable SeBackupPrivilege / SeRestorePrivilege in the process token."""
        if not EFS_HAVE_WIN32:
            raise EfsError(EFS_ERROR_NOT_SUPPORTED, "enable_privileges: Windows only (the "
                           "privileges are Windows'; the POSIX system side needs none)")
        cdef efs_dword rc = efs_win32_enable_privileges(backup, restore)
        if rc:
            raise EfsError(rc, "could not enable the backup/restore privileges "
                               "(1300: not held by this account)")


# A private flag bit above the documented ones: "never replace the destination".
cdef efs_ulong NO_REPLACE_FLAG = 0x80000000u
NO_REPLACE = NO_REPLACE_FLAG


def default_backend():
    return Win32Backend() if EFS_HAVE_WIN32 else PosixBackend()



cdef object _c_path(object path):
    if EFS_HAVE_WIN32:
        p = os.fspath(path)
        if isinstance(p, bytes):
            p = os.fsdecode(p)
        # OpenEncryptedFileRawW takes a long path only in the \\?\ form
        return (_winfs.extended(p) + "\0").encode("utf-16-le")
    return _fs_bytes(path)


cdef bint _fs_is_utf8():
    """Whether os.fsencode spells a str without lone surrogates as its UTF-8."""
    return (sys.getfilesystemencoding() == "utf-8"
            and sys.getfilesystemencodeerrors() == "surrogateescape")


cdef const char *_fs_chars(object path, bint utf8, list keep, size_t *length) except NULL:
    """``path``'s C path, os.fsencode's bytes, without a bytes object per
    path where it can: a str's own UTF-8 where that is them (``utf8``: see
    _fs_is_utf8; a str with lone surrogates is not), which the caller keeps
    alive by keeping ``path``; else a bytes object, kept in ``keep``."""
    cdef Py_ssize_t n
    cdef const char *s
    if utf8 and type(path) is str:
        try:
            s = PyUnicode_AsUTF8AndSize(path, &n)
            length[0] = <size_t>n
            return s
        except UnicodeEncodeError:
            pass
    b = _fs_bytes(path)
    keep.append(b)
    length[0] = <size_t>len(<bytes>b)
    return <const char *>(<bytes>b)


cdef bytes _fs_bytes(object path):
    """os.fsencode(path) (the same encoding and error handler), without a
    Python-level call for a str: the bulk paths make two per item while
    holding the GIL."""
    if type(path) is str:
        return PyUnicode_EncodeFSDefault(path)
    return os.fsencode(path)
