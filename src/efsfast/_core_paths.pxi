# Included by _core.pyx: paths taken apart in C for the calling thread of
# the tree jobs (one Python call per object there is the serial part).

cdef extern from "Python.h":
    Py_ssize_t PyUnicode_FindChar(object s, Py_UCS4 ch, Py_ssize_t start, Py_ssize_t end,
                                  int direction) except -2
    object PyUnicode_Substring(object s, Py_ssize_t start, Py_ssize_t end)
    Py_ssize_t PyUnicode_Tailmatch(object s, object sub, Py_ssize_t start, Py_ssize_t end,
                                   int direction) except -1
    Py_UCS4 PyUnicode_ReadChar(object s, Py_ssize_t index) except? <Py_UCS4>-1


def parent_folders(paths, Py_ssize_t item=-1):
    """The set of ``os.path.dirname(p)`` of every path in ``paths`` (str or
    path-like), for POSIX paths: one search for the last "/" each, and
    os.path.dirname itself only where a path has no "/" past its start or
    ends its parent in another (``//a``, ``a//b``).  A path in the folder
    of the one before it (a plan lists a folder's files together) makes no
    str.  ``item``: the paths are each ``job[item]`` of jobs."""
    cdef set out = set()
    cdef Py_ssize_t i
    cdef str last = None
    dirname = os.path.dirname
    for p in paths:
        if item >= 0:
            p = p[item]
        if type(p) is not str:
            p = os.fspath(p)
            if type(p) is not str:
                out.add(dirname(p))
                continue
        i = PyUnicode_FindChar(p, u'/', 0, len(p), -1)
        if i > 0 and PyUnicode_ReadChar(p, i - 1) != u'/':
            if (last is not None and len(last) == i
                    and PyUnicode_Tailmatch(p, last, 0, i, -1)):
                continue
            last = PyUnicode_Substring(p, 0, i)
            out.add(last)
        else:
            out.add(dirname(p))
    return out


cdef enum:
    _LENGTH_TABLE = 512     # bytes of positions_in's table: lengths below 4096


def positions_in(jobs, Py_ssize_t item, set paths):
    """The positions of the jobs whose path ``os.fspath(job[item])`` is in
    ``paths``, in order.  A path is looked up only where some path of
    ``paths`` has its length: a tree plan asks whether any target is also
    a folder of others, almost never so, without a hash per job."""
    cdef unsigned char lengths[_LENGTH_TABLE]
    cdef bint longer = False
    cdef Py_ssize_t i, n
    cdef list out = []
    memset(lengths, 0, sizeof(lengths))
    for p in paths:
        n = len(p)
        if n < 8 * _LENGTH_TABLE:
            lengths[n >> 3] |= <unsigned char>(1 << (n & 7))
        else:
            longer = True
    if not paths:
        return out
    for i in range(len(jobs)):
        p = jobs[i][item]
        if type(p) is not str:
            p = os.fspath(p)
        n = len(p)
        if n < 8 * _LENGTH_TABLE:
            if not (lengths[n >> 3] & (1 << (n & 7))):
                continue
        elif not longer:
            continue
        if p in paths:
            out.append(i)
    return out
