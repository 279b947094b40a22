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
