# cython: language_level=3
"""Thin Cython wrapper over the C raw-format codec (efs_parser.c,
efs_meta.c, efs_writer.c).  No format logic lives here: this file only moves
bytes and events between Python and C."""
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

from efsfast._cdefs cimport *

from efsfast._errors import EfsError, RawFormatError

META_STREAM_NAME = "$EFS"


cdef unsigned mode_value(str mode) except 99:
    if mode == "strict":
        return EFS_MODE_STRICT
    if mode in ("compatible", "compat"):
        return EFS_MODE_COMPATIBLE
    raise ValueError(f"mode must be 'strict' or 'compatible', not {mode!r}")


cdef object error_from(const efs_error *e, object filename=None):
    detail = e.detail.decode() if e.detail != NULL else "error"
    if e.rule == 0:
        return EfsError(e.winerror, detail, filename)
    return RawFormatError(f"R{e.rule}", e.offset, e.code.decode(), detail,
                          e.winerror, filename)


def stream_name_str(bytes raw, bint is_metadata=False):
    """The display name of a stream: '$EFS' for the metadata stream."""
    if is_metadata:
        return META_STREAM_NAME
    return raw.decode("utf-16-le", "surrogatepass")


cdef class RawParser:
    """Streaming validator.  ``feed`` any slices, then ``finish``.

    With ``events=True`` every event is recorded in ``events`` (tests and
    debugging); otherwise only the stream list and the metadata are kept.
    """
    cdef efs_parser *c_parser
    cdef readonly list events
    cdef readonly list streams
    cdef readonly object metadata
    cdef object stored_exc

    def __cinit__(self, str mode="strict", bint events=False):
        cdef efs_handlers h
        h.stream_begin = on_stream_begin
        h.metadata = on_metadata
        h.segment = NULL
        h.data = NULL
        if events:
            h.segment = on_segment
            h.data = on_data
        h.stream_end = on_stream_end
        self.events = [] if events else None
        self.streams = []
        self.metadata = None
        self.c_parser = efs_parser_new(mode_value(mode), &h, <void *>self)
        if self.c_parser == NULL:
            raise MemoryError()

    def __dealloc__(self):
        efs_parser_free(self.c_parser)

    @property
    def position(self):
        return efs_parser_position(self.c_parser)

    cdef int check(self, efs_dword rc) except -1:
        if self.stored_exc is not None:
            exc, self.stored_exc = self.stored_exc, None
            raise exc
        if rc:
            raise error_from(efs_parser_error(self.c_parser))
        return 0

    def feed(self, data):
        cdef Py_buffer view
        cdef efs_dword rc
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            if self.events is None:
                with nogil:
                    rc = efs_parser_feed(self.c_parser, <const uint8_t *>view.buf,
                                         <size_t>view.len)
            else:
                rc = efs_parser_feed(self.c_parser, <const uint8_t *>view.buf,
                                     <size_t>view.len)
        finally:
            PyBuffer_Release(&view)
        self.check(rc)

    def finish(self):
        self.check(efs_parser_finish(self.c_parser))


# The handlers run inside efs_parser_feed; they take the GIL for the
# Python-side bookkeeping and store any exception on the parser.
cdef efs_dword store(RawParser p, object exc) noexcept:
    if p.stored_exc is None:
        p.stored_exc = exc
    return EFS_ERROR_NOT_ENOUGH_MEMORY if isinstance(exc, MemoryError) else EFS_ERROR_INVALID_DATA


cdef efs_dword on_stream_begin(void *ctx, const efs_stream_info *s) noexcept nogil:
    with gil:
        p = <RawParser>ctx
        try:
            name = stream_name_str(s.name[:s.name_length], s.is_metadata)
            p.streams.append([name, s.flag, bool(s.is_metadata), s.offset, 0, 0])
            if p.events is not None:
                p.events.append(("stream", s.index, name, s.flag))
        except BaseException as exc:
            return store(p, exc)
    return 0


cdef efs_dword on_metadata(void *ctx, const uint8_t *data, size_t n) noexcept nogil:
    with gil:
        p = <RawParser>ctx
        try:
            p.metadata = data[:n]
            if p.events is not None:
                p.events.append(("metadata", p.metadata))
        except BaseException as exc:
            return store(p, exc)
    return 0


cdef efs_dword on_segment(void *ctx, const efs_segment *s) noexcept nogil:
    with gil:
        p = <RawParser>ctx
        try:
            p.events.append(("segment", {
                "offset": s.offset, "segment_length": s.segment_length,
                "encrypted": bool(s.encrypted),
                "starting_file_offset": s.starting_file_offset,
                "header_length": s.header_length,
                "bytes_within_stream_size": s.bytes_within_stream_size,
                "bytes_within_vdl": s.bytes_within_vdl,
                "data_unit_shift": s.data_unit_shift, "chunk_shift": s.chunk_shift,
                "cluster_shift": s.cluster_shift, "block_count": s.block_count,
                "first_block_size": s.first_block_size, "has_extd": bool(s.has_extd),
                "extd_flags": s.extd_flags, "data_length": s.data_length}))
        except BaseException as exc:
            return store(p, exc)
    return 0


cdef efs_dword on_data(void *ctx, const uint8_t *data, size_t n) noexcept nogil:
    with gil:
        p = <RawParser>ctx
        try:
            chunk = data[:n]
            ev = p.events
            # slices of one payload are merged so events do not depend on slicing
            if ev and ev[-1][0] == "data":
                ev[-1] = ("data", ev[-1][1] + chunk)
            else:
                ev.append(("data", chunk))
        except BaseException as exc:
            return store(p, exc)
    return 0


cdef efs_dword on_stream_end(void *ctx, uint64_t logical, uint64_t payload) noexcept nogil:
    with gil:
        p = <RawParser>ctx
        try:
            p.streams[-1][4] = logical
            p.streams[-1][5] = payload
            if p.events is not None:
                p.events.append(("end", logical, payload))
        except BaseException as exc:
            return store(p, exc)
    return 0


# ---- metadata ----

cdef efs_dword collect_entry(void *ctx, const efs_key_entry *e) noexcept nogil:
    with gil:
        try:
            (<list>ctx).append({
                "is_drf": bool(e.is_drf), "index": e.index, "flags": e.flags,
                "pki_type": e.pki_type,
                "sid": (e.sid_offset, e.sid_length),
                "thumbprint": (e.thumb_offset, e.thumb_length),
                "container": (e.container_offset, e.container_length),
                "provider": (e.provider_offset, e.provider_length),
                "display_name": (e.display_offset, e.display_length),
                "encrypted_fek": (e.fek_offset, e.fek_length)})
        except BaseException:
            return EFS_ERROR_NOT_ENOUGH_MEMORY
    return 0


def meta_decode(data, str mode="strict", uint64_t base=0):
    """Validate a $EFS value (R10-R12) and list its key entries.

    Returns (layout, version, supported, entries); each entry maps field
    names to (offset, length) pairs within ``data``.
    """
    cdef const uint8_t[::1] m = memoryview(data).cast("B")
    cdef efs_meta_info info
    cdef efs_error err
    cdef list entries = []
    cdef efs_dword rc
    cdef const uint8_t *ptr = &m[0] if m.shape[0] else <const uint8_t *>b""
    rc = efs_meta_parse(ptr, <size_t>m.shape[0], mode_value(mode), &info,
                        collect_entry, <void *>entries, NULL, NULL, base, &err)
    if rc:
        raise error_from(&err)
    return info.layout, info.version, bool(info.supported), entries


def meta_build(uint32_t version, efs_id, list keys):
    """Build a Version 1 $EFS value.  ``keys``: tuples (is_drf, flags, sid,
    thumbprint, container, provider, display_name, encrypted_fek); strings
    are UTF-16LE bytes without NUL, or None."""
    cdef bytes eid = bytes(efs_id)
    if len(eid) != 16:
        raise ValueError("efs_id must be 16 bytes")
    cdef Py_ssize_t n = len(keys), i
    cdef bytearray descs = bytearray(sizeof(efs_key_desc) * max(n, 1))
    cdef efs_key_desc *d = <efs_key_desc *><char *>descs
    cdef list keep = []
    for i in range(n):
        is_drf, flags, sid, thumb, container, provider, display, fek = keys[i]
        fields = [bytes(x) if x is not None else None
                  for x in (sid, thumb, container, provider, display, fek)]
        keep.append(fields)
        d[i].is_drf = bool(is_drf)
        d[i].flags = flags
        d[i].sid_length = set_field(fields[0], &d[i].sid)
        d[i].thumb_length = set_field(fields[1], &d[i].thumb)
        d[i].container_length = set_field(fields[2], &d[i].container)
        d[i].provider_length = set_field(fields[3], &d[i].provider)
        d[i].display_length = set_field(fields[4], &d[i].display)
        d[i].fek_length = set_field(fields[5], &d[i].fek)
    cdef size_t size = efs_meta_build(version, eid, d, n, NULL, 0)
    if size == 0:
        raise ValueError("metadata keys are invalid: need a DDF key, a thumbprint and "
                         "an encrypted FEK per key, a well-formed SID, and 256 KiB at most")
    out = bytearray(size)
    efs_meta_build(version, eid, d, n, <uint8_t *><char *>out, size)
    return bytes(out)


cdef uint32_t set_field(bytes b, const uint8_t **ptr) except? 0xFFFFFFFF:
    # ``b`` stays alive in meta_build's ``keep`` list while C reads it
    if b is None:
        ptr[0] = NULL
        return 0
    if len(b) > 0x40000:
        raise ValueError("a metadata field is larger than 256 KiB")
    ptr[0] = <const uint8_t *><const char *>b
    return <uint32_t>len(b)


# ---- canonical writer ----

cdef struct mem_out:
    uint8_t *buf
    size_t pos
    size_t cap

cdef struct mem_in:
    const uint8_t *buf
    size_t len

cdef efs_dword emit_mem(void *ctx, const uint8_t *data, size_t n) noexcept nogil:
    cdef mem_out *o = <mem_out *>ctx
    if n > o.cap - o.pos:
        return EFS_ERROR_INVALID_PARAMETER
    memcpy(o.buf + o.pos, data, n)
    o.pos += n
    return 0

cdef efs_dword fill_mem(void *ctx, uint8_t *dst, size_t n, uint64_t off) noexcept nogil:
    cdef mem_in *i = <mem_in *>ctx
    if off > i.len or n > i.len - off:
        return EFS_ERROR_INVALID_PARAMETER
    memcpy(dst, i.buf + off, n)
    return 0


def build_raw(metadata, list streams, unsigned cluster_shift=12):
    """Lay out a raw stream the way Windows does.

    ``streams``: tuples (name, size, ciphertext, encrypted); ``ciphertext``
    is round512(size) bytes for encrypted streams, ``size`` bytes otherwise.
    """
    cdef bytes meta = bytes(metadata)
    cdef list prepared = []
    cdef uint64_t total = 20 + 28 + 2 + 16 + len(meta)
    for name, size, ciphertext, encrypted in streams:
        raw_name = name.encode("utf-16-le", "surrogatepass")
        data = memoryview(ciphertext).cast("B")
        expect = ((size + 511) & ~511) if encrypted else size
        if size < 0 or len(data) != expect:
            raise ValueError(f"stream {name!r}: {len(data)} bytes given, "
                             f"{expect} expected for logical size {size}")
        prepared.append((raw_name, size, data, bool(encrypted)))
        total += efs_data_stream_raw_size(len(raw_name), encrypted, size)
    out = bytearray(total)
    cdef mem_out o
    cdef mem_in src
    cdef const uint8_t[::1] view
    o.buf = <uint8_t *><char *>out
    o.pos = 0
    o.cap = total
    rc = efs_emit_raw_header(emit_mem, &o)
    if not rc:
        rc = efs_emit_metadata_stream(emit_mem, &o, <const uint8_t *><const char *>meta, len(meta))
    for raw_name, size, data, encrypted in prepared:
        if rc:
            break
        view = data
        src.buf = &view[0] if len(data) else <const uint8_t *>b""
        src.len = len(data)
        rc = efs_emit_data_stream(emit_mem, &o, <const uint8_t *><const char *>raw_name,
                                  len(raw_name), encrypted, size, cluster_shift,
                                  fill_mem, &src)
    if rc:
        raise EfsError(rc, "cannot lay out the raw stream (invalid stream name, "
                           "cluster shift or metadata size)")
    return bytes(out)


cdef class _Pump:
    """The context of :func:`write_raw`'s C calls: where the bytes go, where
    the current stream's ciphertext comes from, and the first exception
    either raised (kept here, raised after the C call returns: a callback
    cannot raise through C)."""
    cdef object write
    cdef object fill
    cdef object name
    cdef object error
    cdef uint64_t written

    cdef efs_dword emit(self, const uint8_t *data, size_t n):
        cdef bytes chunk
        cdef size_t done = 0
        try:
            # a copy: the C buffer is reused for the next segment, and a
            # write() may keep what it is given
            chunk = (<const char *>data)[:n]
            while done < n:
                wrote = self.write(chunk if done == 0 else chunk[done:])
                if wrote is None:       # a file that writes everything says nothing
                    done = n
                elif wrote <= 0:
                    raise OSError(f"write() took {wrote} bytes of {n - done}")
                else:
                    done += <size_t>wrote
            self.written += n
            return 0
        except BaseException as exc:
            self.error = exc
            return EFS_ERROR_OPERATION_ABORTED

    cdef efs_dword pull(self, uint8_t *dst, size_t n, uint64_t off):
        cdef const uint8_t[::1] view
        try:
            data = memoryview(self.fill(off, n)).cast("B")
            if len(data) != n:
                raise ValueError(f"stream {self.name!r}: {len(data)} bytes of ciphertext "
                                 f"given at offset {off}, {n} expected")
            if n:
                view = data
                memcpy(dst, &view[0], n)
            return 0
        except BaseException as exc:
            self.error = exc
            return EFS_ERROR_OPERATION_ABORTED


cdef efs_dword emit_py(void *ctx, const uint8_t *data, size_t n) noexcept nogil:
    with gil:
        return (<_Pump>ctx).emit(data, n)


cdef efs_dword fill_py(void *ctx, uint8_t *dst, size_t n, uint64_t off) noexcept nogil:
    with gil:
        return (<_Pump>ctx).pull(dst, n, off)


def write_raw(metadata, list streams, write, unsigned cluster_shift=12):
    """:func:`build_raw`, streamed: the raw stream goes to ``write(bytes)``
    one segment (at most 64 KiB of data) at a time, and each data stream's
    ciphertext comes from its ``fill(offset, length)``, which returns that
    many bytes (round512(size) in all for an encrypted stream, ``size``
    otherwise).  ``streams``: tuples (name, size, fill, encrypted).  Returns
    the number of bytes written; the first exception of ``write`` or a
    ``fill`` is raised as it was."""
    cdef bytes meta = bytes(metadata)
    cdef _Pump pump = _Pump()
    cdef efs_dword rc
    cdef bytes raw_name
    cdef const uint8_t *c_name
    cdef uint32_t c_name_len
    cdef uint64_t c_size
    cdef int c_encrypted
    cdef void *c_pump = <void *>pump
    cdef const uint8_t *c_meta = <const uint8_t *><const char *>meta
    cdef size_t c_meta_len = len(meta)
    pump.write = write
    with nogil:
        rc = efs_emit_raw_header(emit_py, c_pump)
        if not rc:
            rc = efs_emit_metadata_stream(emit_py, c_pump, c_meta, c_meta_len)
    for name, size, fill, encrypted in streams:
        if rc:
            break
        if size < 0:
            raise ValueError(f"stream {name!r}: a negative size ({size})")
        raw_name = name.encode("utf-16-le", "surrogatepass")
        pump.fill, pump.name = fill, name
        c_name, c_name_len = <const uint8_t *><const char *>raw_name, len(raw_name)
        c_size, c_encrypted = size, bool(encrypted)
        with nogil:
            rc = efs_emit_data_stream(emit_py, c_pump, c_name, c_name_len, c_encrypted,
                                      c_size, cluster_shift, fill_py, c_pump)
    if pump.error is not None:
        raise pump.error
    if rc:
        raise EfsError(rc, "cannot lay out the raw stream (invalid stream name, "
                           "cluster shift or metadata size)")
    return pump.written
