# cython: language_level=3
"""The hot path: C import/export trampolines, the Python fallbacks, and the
system sides (backends) they run against.  This is the module users' code
reaches (through api.py); each concern is a file of its own, included below.
Test hooks are in _testhooks, benchmark helpers in _benchhooks.

A restore from a buffer runs entirely in C with the GIL released: the system
side calls ``import_from_buffer`` for each system buffer, which copies
``min(*ulLength, remaining)`` bytes and returns.  Sources that are not
buffers go through ``import_from_python``, which takes the GIL, calls the
source, checks what it returned, and stores any exception on the context; the
exception is raised (before the C status is looked at) once the system call
returns.
"""
from cpython.buffer cimport (PyBuffer_FillInfo, PyBuffer_Release, PyObject_GetBuffer,
                             PyBUF_ANY_CONTIGUOUS, PyBUF_FORMAT, PyBUF_SIMPLE,
                             PyBUF_WRITABLE)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.exc cimport PyErr_CheckSignals
from cpython.ref cimport PyObject
from cpython.unicode cimport PyUnicode_DecodeASCII, PyUnicode_DecodeUTF8
cdef extern from "Python.h":
    bytes PyUnicode_EncodeFSDefault(object)
    # object's own setattr: sets a frozen dataclass's fields the way its
    # generated __init__ does (through object.__setattr__), without the calls
    int PyObject_GenericSetAttr(object o, object name, object value) except -1
    const char *PyUnicode_AsUTF8AndSize(object s, Py_ssize_t *size) except NULL
    void PyObject_GC_UnTrack(void *op)


cdef inline tuple _path_pair(str a, str b):
    """``(a, b)``, untracked by the cyclic GC as CPython's collector itself
    leaves a tuple of strs once it has seen one: a tree plan makes one per
    object, and the collections that would see each of them, young and
    then older, were ~0.1 us per object of a restore's calling thread."""
    cdef tuple t = (a, b)
    PyObject_GC_UnTrack(<void *>t)
    return t

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, qsort, realloc
from libc.string cimport memcmp, memcpy, memset, strcmp, strdup

from efsfast._cdefs cimport *

import errno
import operator
import os
import sys

from efsfast import _winfs
from efsfast._errors import CancelledError, EfsError, ObjectMismatchError, RawFormatError

CREATE_FOR_IMPORT = EFS_CREATE_FOR_IMPORT
CREATE_FOR_DIR = EFS_CREATE_FOR_DIR
OVERWRITE_HIDDEN = EFS_OVERWRITE_HIDDEN
EFS_DROP_ALTERNATE_STREAMS_FLAG = EFS_DROP_ALTERNATE_STREAMS
HAVE_POSIX = bool(EFS_HAVE_POSIX)
HAVE_WIN32 = bool(EFS_HAVE_WIN32)

# Returned by a fallback trampoline whose Python source raised: the stored
# exception, not this code, is what the caller sees.
cdef efs_dword SOURCE_RAISED = EFS_ERROR_OPERATION_ABORTED


include "_core_buffers.pxi"      # source/sink buffer accounting; the system buffer as a view
include "_core_cancel.pxi"       # CancelToken, Ctrl-C
include "_core_sources.pxi"      # import side: sources, trampolines (restore)
include "_core_sinks.pxi"        # export side: sinks, trampolines (backup)
include "_core_backends.pxi"     # the system sides: win32 (advapi32), POSIX
include "_core_check.pxi"        # restores checked against a manifest (size, SHA-256)
include "_core_rawcalls.pxi"     # RawContext, open_raw, write_raw, read_raw
include "_core_bulk.pxi"         # BulkRestore: restore_many in C
include "_core_capture.pxi"      # what a backup set records besides the stream (POSIX)
include "_core_bulkexport.pxi"   # BulkExport: a backup set's objects in C (POSIX)
include "_core_streamexport.pxi" # StreamExport: a tar stream's objects into memory, in C (POSIX)
include "_core_manifest.pxi"     # a set's manifest lines read in C (the writer's own)
include "_core_probe.pxi"        # StreamProbe: folders told from files, in C (tree restores)
include "_core_paths.pxi"        # parent folders of many paths, in C (tree jobs)
include "_core_setmeta.pxi"      # PosixMetaBatch: a set restore's POSIX metadata, in C
include "_core_objtable.pxi"     # ObjectTable, SetFiles: a set's lines as C rows, its restore jobs
include "_core_objpieces.pxi"    # RunPieces: a long manifest's lines read on several threads
include "_core_listdir.pxi"      # list_folder: a folder's entries told apart, in C (walks)
