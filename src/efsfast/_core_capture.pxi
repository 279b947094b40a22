# Included by _core.pyx: what a backup set records of an object besides its
# raw stream, read on the POSIX side through the export context's descriptor
# (no second path lookup: on ntfs-3g every call is a round trip to a
# single-threaded FUSE daemon).  Windows has its own way (metadata_win32).

# a small value (system.ntfs_attrib, _times, most descriptors) fits here;
# a larger one is read again into a buffer of the VFS maximum
cdef enum:
    SMALL_XATTR = 1024
    XATTR_VALUE_MAX = 65536


cdef void *_posix_export(RawContext raw) except NULL:
    if not isinstance(raw.backend, PosixBackend):
        raise EfsError(EFS_ERROR_NOT_SUPPORTED, "object facts come from the POSIX system side only",
                       os.fspath(raw.path))
    return raw.enter()


def object_stat(RawContext raw):
    """(size, st_mode, atime_ns, mtime_ns, ctime_ns) of the object, as opened."""
    cdef void *ctx = _posix_export(raw)
    cdef efs_posix_object_stat st
    cdef efs_dword rc
    try:
        rc = efs_posix_get_object_stat(ctx, &st)
        if rc:
            raise EfsError(rc, "not an export context", os.fspath(raw.path))
        return st.size, st.mode, st.atime_ns, st.mtime_ns, st.ctime_ns
    finally:
        raw.busy = 0


def object_xattr(RawContext raw, name):
    """The value of the object's extended attribute ``name``; OSError (with
    the path) where it cannot be read."""
    cdef void *ctx = _posix_export(raw)
    cdef bytes bname = name if type(name) is bytes else os.fsencode(name)
    cdef const char *cname = bname
    cdef uint8_t small[SMALL_XATTR]
    cdef uint8_t *big = NULL
    cdef long n
    cdef int err = 0
    try:
        with nogil:
            n = efs_posix_object_xattr(ctx, cname, small, SMALL_XATTR, &err)
        if n >= 0:
            return PyBytes_FromStringAndSize(<char *>small, n)
        if err == errno.ERANGE:
            big = <uint8_t *>malloc(XATTR_VALUE_MAX)
            if big == NULL:
                raise MemoryError()
            with nogil:
                n = efs_posix_object_xattr(ctx, cname, big, XATTR_VALUE_MAX, &err)
            if n >= 0:
                return PyBytes_FromStringAndSize(<char *>big, n)
        raise OSError(err, os.strerror(err), os.fspath(raw.path))
    finally:
        free(big)
        raw.busy = 0


def load_efs(RawContext raw):
    """The object's $EFS, read now and kept for the export that follows (it
    is read once).  EfsError 6007 (ERROR_FILE_NOT_ENCRYPTED) where it has none."""
    cdef void *ctx = _posix_export(raw)
    cdef const uint8_t *data = NULL
    cdef size_t length = 0
    cdef efs_dword rc
    try:
        with nogil:
            rc = efs_posix_load_efs(ctx, &data, &length)
        if rc:
            raw.raise_for(rc)
        return PyBytes_FromStringAndSize(<const char *>data, length)
    finally:
        raw.busy = 0
