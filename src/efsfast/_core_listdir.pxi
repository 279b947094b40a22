# Included by _core.pyx: one folder's entries listed without the GIL and
# told apart (efs_listdir.h), for the tree walk (treewalk.py).

cdef extern from "_c/efs_listdir.h" nogil:
    enum:
        EFS_ENTRY_DIR
        EFS_ENTRY_FILE
        EFS_ENTRY_OTHER
        EFS_ENTRY_UNEXAMINED
    ctypedef struct efs_dir_list:
        char *text
        size_t *offsets
        size_t *lens
        unsigned char *kinds
        int *errnos
        size_t count
    int efs_list_dir(const char *path, efs_dir_list *l)
    void efs_dir_list_free(efs_dir_list *l)

cdef extern from "Python.h":
    object PyUnicode_DecodeFSDefaultAndSize(const char *s, Py_ssize_t size)


def list_folder(path):
    """(sub-folders, regular files, other entries, [(name, errno)] of the
    entries that could not be examined) of the folder ``path``, each list
    in the order the system gives: os.scandir's is_dir and is_file
    (follow_symlinks=False) without a DirEntry per entry.  OSError (naming
    ``path``) where it cannot be listed; on Windows, NotImplementedError."""
    cdef bytes bpath = _fs_bytes(path)
    cdef const char *c_path = bpath
    cdef efs_dir_list l
    cdef int rc
    cdef size_t i
    cdef list dirs = [], files = [], others = [], unexamined = []
    if os.name == "nt":
        raise NotImplementedError("list_folder: the POSIX side's")
    with nogil:
        rc = efs_list_dir(c_path, &l)
    if rc:
        raise OSError(rc, os.strerror(rc), path)
    try:
        for i in range(l.count):
            name = PyUnicode_DecodeFSDefaultAndSize(l.text + l.offsets[i], <Py_ssize_t>l.lens[i])
            if l.kinds[i] == EFS_ENTRY_DIR:
                dirs.append(name)
            elif l.kinds[i] == EFS_ENTRY_FILE:
                files.append(name)
            elif l.kinds[i] == EFS_ENTRY_OTHER:
                others.append(name)
            else:
                unexamined.append((name, l.errnos[i]))
    finally:
        efs_dir_list_free(&l)
    return dirs, files, others, unexamined


cdef struct _named:
    const char *name        # NUL-terminated, in the listing's text
    size_t len
    unsigned char kind
    int err


cdef int _by_name(const void *a, const void *b) noexcept nogil:
    # (UTF-8's byte order is its code points': the order of the names as str)
    return strcmp((<const _named *>a).name, (<const _named *>b).name)


cdef void _sort_by_name(_named *order, size_t n) noexcept nogil:
    """``order`` by name.  A listing that comes near name order, or near its
    reverse (tmpfs lists the newest first, and a tree restore makes a
    folder's files about in name order), is turned round where it is
    mostly reversed and finished by insertion, in about n compares; one
    that does not (ext4 lists by hash) goes to qsort as soon as insertion
    moves entries far.  (qsort's n log n compares were half of a
    10,000-file folder's plan.)"""
    cdef size_t i, j, down = 0, moves = 0
    cdef _named t
    for i in range(1, n):
        if strcmp(order[i - 1].name, order[i].name) > 0:
            down += 1
    if 2 * down > n:
        for i in range(n // 2):
            t = order[i]
            order[i] = order[n - 1 - i]
            order[n - 1 - i] = t
    for i in range(1, n):
        t = order[i]
        j = i
        while j > 0 and strcmp(order[j - 1].name, t.name) > 0:
            order[j] = order[j - 1]
            j -= 1
        order[j] = t
        moves += i - j
        if moves > 4 * i + 64:      # (far from ordered: each entry still in ``order``)
            qsort(order, n, sizeof(_named), _by_name)
            return


def plan_folder(path, str src_pre, str out_pre, str suffix, bint restore=False):
    """What treewalk._listed and the tree plans make of the folder ``path``
    with one C pass: (sub-folders, file jobs, other entries, [(name,
    errno)] of the entries that could not be examined), each in name order,
    without a str per name.  A regular file's job is ``(src_pre + name,
    out_pre + name + suffix)`` (a backup's); with ``restore``, only a file
    whose name ends with ``suffix`` has one, ``(out_pre + name less the
    suffix, src_pre + name)`` (a restore's: target, raw stream), and the
    other files none.  None where a name, a prefix or the file system's
    encoding is not UTF-8 (the caller lists the folder by names then).
    OSError (naming ``path``) where it cannot be listed; on Windows,
    NotImplementedError."""
    cdef bytes bpath = _fs_bytes(path)
    cdef const char *c_path = bpath
    cdef efs_dir_list l
    cdef int rc
    cdef size_t i, longest = 0, n_src, n_out, n_suf, n
    cdef _named *order = NULL
    cdef char *src_buf = NULL
    cdef char *out_buf = NULL
    cdef const char *name
    cdef const char *s_src
    cdef const char *s_out
    cdef const char *s_suf
    cdef Py_ssize_t len_src, len_out, len_suf
    cdef list dirs = [], jobs = [], others = [], unexamined = []
    if os.name == "nt":
        raise NotImplementedError("plan_folder: the POSIX side's")
    if not _fs_is_utf8():
        return None
    try:
        s_src = PyUnicode_AsUTF8AndSize(src_pre, &len_src)
        s_out = PyUnicode_AsUTF8AndSize(out_pre, &len_out)
        s_suf = PyUnicode_AsUTF8AndSize(suffix, &len_suf)
    except UnicodeEncodeError:          # (lone surrogates: a name that is not UTF-8)
        return None
    n_src, n_out, n_suf = <size_t>len_src, <size_t>len_out, <size_t>len_suf
    with nogil:
        rc = efs_list_dir(c_path, &l)
    if rc:
        raise OSError(rc, os.strerror(rc), path)
    try:
        order = <_named *>malloc(max(l.count, 1) * sizeof(_named))
        if order == NULL:
            raise MemoryError()
        for i in range(l.count):
            order[i].name = l.text + l.offsets[i]
            order[i].len = l.lens[i]
            order[i].kind = l.kinds[i]
            order[i].err = l.errnos[i]
            if not efs_utf8_valid(<const uint8_t *>order[i].name, order[i].len):
                return None
            if order[i].len > longest:
                longest = order[i].len
        _sort_by_name(order, l.count)
        src_buf = <char *>malloc(n_src + longest + 1)
        out_buf = <char *>malloc(n_out + longest + n_suf + 1)
        if src_buf == NULL or out_buf == NULL:
            raise MemoryError()
        memcpy(src_buf, s_src, n_src)
        memcpy(out_buf, s_out, n_out)
        for i in range(l.count):
            name, n = order[i].name, order[i].len
            if order[i].kind == EFS_ENTRY_FILE and restore:
                if n < n_suf or memcmp(name + n - n_suf, s_suf, n_suf) != 0:
                    continue        # (not a raw stream's name: no job)
                memcpy(src_buf + n_src, name, n)
                memcpy(out_buf + n_out, name, n - n_suf)
                jobs.append(_path_pair(
                    PyUnicode_DecodeUTF8(out_buf, <Py_ssize_t>(n_out + n - n_suf), NULL),
                    PyUnicode_DecodeUTF8(src_buf, <Py_ssize_t>(n_src + n), NULL)))
            elif order[i].kind == EFS_ENTRY_FILE:
                memcpy(src_buf + n_src, name, n)
                memcpy(out_buf + n_out, name, n)
                memcpy(out_buf + n_out + n, s_suf, n_suf)
                jobs.append(_path_pair(
                    PyUnicode_DecodeUTF8(src_buf, <Py_ssize_t>(n_src + n), NULL),
                    PyUnicode_DecodeUTF8(out_buf, <Py_ssize_t>(n_out + n + n_suf), NULL)))
            elif order[i].kind == EFS_ENTRY_DIR:
                dirs.append(PyUnicode_DecodeUTF8(name, <Py_ssize_t>n, NULL))
            elif order[i].kind == EFS_ENTRY_OTHER:
                others.append(PyUnicode_DecodeUTF8(name, <Py_ssize_t>n, NULL))
            else:
                unexamined.append((PyUnicode_DecodeUTF8(name, <Py_ssize_t>n, NULL),
                                   order[i].err))
    finally:
        free(src_buf)
        free(out_buf)
        free(order)
        efs_dir_list_free(&l)
    return dirs, jobs, others, unexamined
