# Included by _core.pyx: paths taken apart in C for the calling thread of
# the tree jobs (one Python call per object there is the serial part).

cdef extern from "Python.h":
    Py_ssize_t PyUnicode_FindChar(object s, Py_UCS4 ch, Py_ssize_t start, Py_ssize_t end,
                                  int direction) except -2
    object PyUnicode_Substring(object s, Py_ssize_t start, Py_ssize_t end)


def parent_folders(paths):
    """The set of ``os.path.dirname(p)`` of every path in ``paths`` (str or
    path-like), for POSIX paths: one search for the last "/" each, and
    os.path.dirname itself only where a path has no "/" past its start or
    ends its parent in another (``//a``, ``a//b``)."""
    cdef set out = set()
    cdef Py_ssize_t i
    dirname = os.path.dirname
    for p in paths:
        if type(p) is not str:
            p = os.fspath(p)
            if type(p) is not str:
                out.add(dirname(p))
                continue
        i = PyUnicode_FindChar(p, u'/', 0, len(p), -1)
        if i > 0 and p[i - 1] != u'/':
            out.add(PyUnicode_Substring(p, 0, i))
        else:
            out.add(dirname(p))
    return out
