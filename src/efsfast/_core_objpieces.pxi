# Included by _core.pyx after _core_objtable.pxi: a long manifest's object
# lines read on several threads without the GIL.  The bytes from an offset
# on are cut into pieces at line ends; each piece is read into rows of its
# own (ObjectTable.read_run's reading, on a worker), and the pieces are then
# added to the table in order, up to the first line any piece stopped at: a
# line not in the writer's spelling, or a last one cut short.  So the table
# ends exactly as read_run would leave it, and the calling thread of a set
# restore does not read every line itself (~0.27 us a line there).

cdef struct run_piece:
    size_t start            # offsets in the data: [start, end), whole lines
    size_t end
    size_t stop             # the first line not read (end when all were)
    obj_row *rows           # path_off relative to this piece's paths
    size_t count
    size_t cap
    uint8_t *paths
    size_t paths_len
    size_t paths_cap
    int out_of_memory


cdef int _piece_room(run_piece *p, size_t line_len) noexcept nogil:
    """Room for one more row and its path; 0, or -1 (out of memory)."""
    cdef size_t cap
    cdef obj_row *rows
    cdef uint8_t *paths
    if p.count == p.cap:
        cap = max(2 * p.cap, <size_t>256)
        rows = <obj_row *>realloc(p.rows, cap * sizeof(obj_row))
        if rows == NULL:
            return -1
        p.rows, p.cap = rows, cap
    if p.paths_len + line_len > p.paths_cap:
        cap = max(2 * p.paths_cap, p.paths_len + line_len, <size_t>16384)
        paths = <uint8_t *>realloc(p.paths, cap)
        if paths == NULL:
            return -1
        p.paths, p.paths_cap = paths, cap
    return 0


cdef void _read_piece(const char *base, run_piece *p) noexcept nogil:
    """The object lines of piece ``p`` into its rows, up to the first one
    that is not in the writer's spelling or has no "\\n"."""
    cdef size_t start = p.start, n
    cdef const char *nl
    cdef efs_line_facts f
    cdef obj_row *r
    while start < p.end:
        nl = <const char *>memchr(base + start, b'\n', p.end - start)
        if nl == NULL:
            break
        n = <size_t>(nl - (base + start)) + 1
        if _piece_room(p, n) != 0:
            p.out_of_memory = 1
            break
        r = &p.rows[p.count]
        if not efs_manifest_read_object_line(base + start, n, &f, p.paths + p.paths_len,
                                             r.sha256, r.efs_sha256):
            break
        _fill_row(r, &f, p.paths_len)
        p.paths_len += f.path_len
        p.count += 1
        start += n
    p.stop = start


cdef class RunPieces:
    """A manifest's bytes from an offset on, cut into pieces at line ends
    (ObjectTable.pieces): run ``work()`` from as many threads as wanted,
    then give it to ObjectTable.take_pieces once every ``work()`` returned."""
    cdef run_piece *pieces
    cdef size_t count
    cdef size_t next_index
    cdef bytes data             # (its buffer is what the pieces read)
    cdef size_t pos             # where the first piece starts
    cdef bint taken

    def __cinit__(self):
        self.pieces = NULL
        self.count = self.next_index = 0
        self.taken = False

    def __dealloc__(self):
        cdef size_t i
        if self.pieces != NULL:
            for i in range(self.count):
                free(self.pieces[i].rows)
                free(self.pieces[i].paths)
        free(self.pieces)

    def __len__(self):
        return self.count

    def work(self):
        """Read pieces until none is left (one of the workers)."""
        cdef size_t i
        cdef const char *base = PyBytes_AS_STRING(self.data)
        with nogil:
            while True:
                i = efs_atomic_next(&self.next_index)
                if i >= self.count:
                    break
                _read_piece(base, &self.pieces[i])


    def add_to(self, ObjectTable table):
        """The rows read, added to ``table`` in order up to the first line a
        piece stopped at (as ``table.read_run`` would have):
        ``(the offset of the first line not taken, lines taken)``.  Once,
        after every ``work()`` returned."""
        cdef size_t i, k, taken = 0, stop
        cdef run_piece *p
        cdef obj_row *r
        if self.taken:
            raise ValueError("add_to: these pieces were added already")
        if self.next_index < self.count:
            raise ValueError("add_to: some pieces were not read (work() first)")
        self.taken = True
        stop = self.pos
        for i in range(self.count):
            p = &self.pieces[i]
            if p.out_of_memory:
                raise MemoryError()
            if p.paths_len:         # (an empty piece has no paths buffer: no memcpy of NULL)
                table._reserve_paths(p.paths_len)
                memcpy(table.paths + table.paths_len, p.paths, p.paths_len)
            for k in range(p.count):
                r = table._next_row()
                r[0] = p.rows[k]
                r.path_off += table.paths_len
                table.count += 1
            table.paths_len += p.paths_len
            taken += p.count
            stop = p.stop
            if p.stop < p.end:
                break
        return stop, taken


def cut_run(bytes data, Py_ssize_t pos, size_t pieces):
    """A manifest's ``data`` from ``pos`` on as RunPieces: up to ``pieces``
    pieces of about the same length, each ending just after a "\n"."""
    return _cut_pieces(data, pos, pieces)


cdef RunPieces _cut_pieces(bytes data, Py_ssize_t pos, size_t wanted):
    """``data`` from ``pos`` on in up to ``wanted`` pieces of about the same
    length, each ending just after a "\\n" (the last at the data's end)."""
    cdef RunPieces rp = RunPieces.__new__(RunPieces)
    cdef const char *base = PyBytes_AS_STRING(data)
    cdef size_t size = <size_t>len(data), start = <size_t>pos, cut, each
    cdef const char *nl
    if pos < 0 or <size_t>pos > size:
        raise ValueError("pieces: the offset is outside the data")
    wanted = max(wanted, <size_t>1)
    rp.data = data
    rp.pos = start
    rp.pieces = <run_piece *>calloc(wanted, sizeof(run_piece))
    if rp.pieces == NULL:
        raise MemoryError()
    each = (size - start) // wanted + 1
    while start < size and rp.count < wanted:
        cut = size
        if rp.count + 1 < wanted and start + each < size:
            nl = <const char *>memchr(base + start + each, b'\n', size - start - each)
            cut = size if nl == NULL else <size_t>(nl - base) + 1
        rp.pieces[rp.count].start = start
        rp.pieces[rp.count].end = cut
        rp.count += 1
        start = cut
    return rp
