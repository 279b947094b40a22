# cython: language_level=3
# C declarations of the efsfast C layers; only the symbols Cython uses.
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t

cdef extern from "_c/efs_abi.h" nogil:
    ctypedef uint32_t efs_dword
    ctypedef uint32_t efs_ulong
    ctypedef efs_dword (*efs_import_func)(uint8_t *, void *, efs_ulong *) noexcept nogil
    ctypedef efs_dword (*efs_export_func)(uint8_t *, void *, efs_ulong) noexcept nogil
    efs_dword EFS_ERROR_NOT_ENOUGH_MEMORY
    efs_dword EFS_ERROR_INVALID_DATA
    efs_dword EFS_ERROR_INVALID_PARAMETER
    efs_dword EFS_ERROR_CANCELLED
    efs_dword EFS_ERROR_OPERATION_ABORTED
    efs_dword EFS_ERROR_READ_FAULT
    efs_dword EFS_ERROR_NOT_SUPPORTED
    efs_dword EFS_ERROR_INSUFFICIENT_BUFFER
    efs_dword EFS_ERROR_GEN_FAILURE

cdef extern from "_c/efs_codec.h" nogil:
    unsigned EFS_MODE_STRICT
    unsigned EFS_MODE_COMPATIBLE

    ctypedef struct efs_error:
        int rule
        const char *code
        const char *detail
        uint64_t offset
        efs_dword winerror

    ctypedef struct efs_segment:
        uint64_t offset
        uint32_t segment_length
        int encrypted
        uint64_t starting_file_offset
        uint32_t header_length
        uint32_t bytes_within_stream_size
        uint32_t bytes_within_vdl
        uint8_t data_unit_shift
        uint8_t chunk_shift
        uint8_t cluster_shift
        uint16_t block_count
        uint32_t first_block_size
        int has_extd
        uint32_t extd_flags
        uint32_t data_length

    ctypedef struct efs_stream_info:
        uint32_t index
        uint64_t offset
        const uint8_t *name
        uint32_t name_length
        uint32_t flag
        int is_metadata

    ctypedef struct efs_handlers:
        efs_dword (*stream_begin)(void *, const efs_stream_info *) noexcept nogil
        efs_dword (*metadata)(void *, const uint8_t *, size_t) noexcept nogil
        efs_dword (*segment)(void *, const efs_segment *) noexcept nogil
        efs_dword (*data)(void *, const uint8_t *, size_t) noexcept nogil
        efs_dword (*stream_end)(void *, uint64_t, uint64_t) noexcept nogil

    ctypedef struct efs_parser:
        pass

    efs_parser *efs_parser_new(unsigned mode, const efs_handlers *h, void *ctx)
    void efs_parser_free(efs_parser *p)
    efs_dword efs_parser_feed(efs_parser *p, const uint8_t *data, size_t length)
    efs_dword efs_parser_finish(efs_parser *p)
    const efs_error *efs_parser_error(const efs_parser *p)
    uint64_t efs_parser_position(const efs_parser *p)

    ctypedef struct efs_key_entry:
        int is_drf
        uint32_t index
        uint32_t entry_offset, entry_length
        uint32_t flags
        uint32_t pki_type
        uint32_t sid_offset, sid_length
        uint32_t thumb_offset, thumb_length
        uint32_t container_offset, container_length
        uint32_t provider_offset, provider_length
        uint32_t display_offset, display_length
        uint32_t fek_offset, fek_length

    ctypedef struct efs_meta_info:
        int layout
        uint32_t version
        uint32_t length
        int supported
        uint32_t ddf_count, drf_count

    ctypedef uint64_t (*efs_offset_map)(void *, uint32_t) noexcept nogil
    ctypedef efs_dword (*efs_entry_fn)(void *, const efs_key_entry *) noexcept nogil
    efs_dword efs_meta_parse(const uint8_t *m, size_t length, unsigned mode,
                             efs_meta_info *info, efs_entry_fn entry, void *ctx,
                             efs_offset_map map, void *map_ctx, uint64_t base,
                             efs_error *err)

    ctypedef struct efs_key_desc:
        int is_drf
        uint32_t flags
        const uint8_t *sid
        uint32_t sid_length
        const uint8_t *thumb
        uint32_t thumb_length
        const uint8_t *container
        uint32_t container_length
        const uint8_t *provider
        uint32_t provider_length
        const uint8_t *display
        uint32_t display_length
        const uint8_t *fek
        uint32_t fek_length

    size_t efs_meta_build(uint32_t version, const uint8_t *efs_id,
                          const efs_key_desc *keys, size_t nkeys,
                          uint8_t *out, size_t cap)

    ctypedef efs_dword (*efs_emit_fn)(void *, const uint8_t *, size_t) noexcept nogil
    ctypedef efs_dword (*efs_fill_fn)(void *, uint8_t *, size_t, uint64_t) noexcept nogil
    efs_dword efs_emit_raw_header(efs_emit_fn emit, void *ctx)
    efs_dword efs_emit_metadata_stream(efs_emit_fn emit, void *ctx,
                                       const uint8_t *meta, size_t length)
    efs_dword efs_emit_data_stream(efs_emit_fn emit, void *ctx,
                                   const uint8_t *name, uint32_t name_length,
                                   int encrypted, uint64_t size, unsigned cluster_shift,
                                   efs_fill_fn fill, void *fill_ctx)
    uint64_t efs_data_stream_raw_size(uint32_t name_length, int encrypted, uint64_t size)

cdef extern from "_c/efs_backend.h" nogil:
    ctypedef struct efs_path_char:
        pass
    ctypedef struct efs_backend:
        const char *name
        efs_dword (*open)(const efs_path_char *path, efs_ulong flags, void **context) noexcept nogil
        efs_dword (*read)(efs_export_func cb, void *cb_context, void *context) noexcept nogil
        efs_dword (*write)(efs_import_func cb, void *cb_context, void *context) noexcept nogil
        void (*close)(void *context) noexcept nogil
    efs_ulong EFS_CREATE_FOR_IMPORT
    efs_ulong EFS_CREATE_FOR_DIR
    efs_ulong EFS_OVERWRITE_HIDDEN
    efs_ulong EFS_DROP_ALTERNATE_STREAMS

cdef extern from "_c/efs_sha256.h" nogil:
    enum:
        EFS_SHA256_DIGEST
        EFS_SHA256_AUTO
        EFS_SHA256_PORTABLE
        EFS_SHA256_SHANI
    ctypedef struct efs_sha256:
        int impl
    int efs_sha256_available(int impl)
    void efs_sha256_init(efs_sha256 *s)
    int efs_sha256_init_impl(efs_sha256 *s, int impl)
    void efs_sha256_update(efs_sha256 *s, const uint8_t *data, size_t n)
    void efs_sha256_final(efs_sha256 *s, uint8_t *out)

cdef extern from "_c/efs_io.h" nogil:
    int EFS_HAVE_POSIX
    int EFS_HAVE_WIN32
    ctypedef struct efs_posix_options:
        uint32_t buffer_size
        uint64_t seed
        uint32_t min_size
        unsigned mode
        int null_sink
        unsigned cluster_shift
        int no_replace
        int unvalidated_copy
        int fault_point
        int fault_errno
        int sync_each
    const efs_backend *efs_posix_backend()
    const efs_backend *efs_win32_backend()
    efs_dword efs_win32_enable_privileges(int backup, int restore)
    void efs_posix_default_options(efs_posix_options *o)
    efs_dword efs_posix_open_ex(const char *path, efs_ulong flags,
                                const efs_posix_options *o, void **context)
    const efs_error *efs_posix_last_format_error(const void *context)
    int efs_posix_last_errno(const void *context)
    const char *efs_posix_last_operation(const void *context)
    ctypedef struct efs_posix_object_stat:
        uint64_t size
        uint32_t mode
        int64_t atime_ns
        int64_t mtime_ns
        int64_t ctime_ns
    efs_dword efs_posix_get_object_stat(const void *context, efs_posix_object_stat *out)
    long efs_posix_object_xattr(void *context, const char *name, uint8_t *buf, size_t cap,
                                int *err)
    efs_dword efs_posix_load_efs(void *context, const uint8_t **data, size_t *length)
    enum:
        EFS_BACKUP_FAILED
        EFS_BACKUP_DONE
        EFS_BACKUP_PLAIN
    ctypedef struct efs_backup_item:
        const char *src
        const char *dest
        const char *tmp
        efs_ulong flags
        int capture_ntfs
        int overwrite
        int sync
        int no_hash
        uint64_t tmp_nonce
        int outcome
        efs_dword rc
        int err_no
        const char *op
        int name_dest
        efs_error ferr
        efs_posix_object_stat st
        uint8_t attrib[4]
        uint8_t times[32]
        uint8_t *acl
        size_t acl_len
        int acl_errno
        size_t efs_len
        uint8_t sha256[32]
        uint8_t efs_sha256[32]
        size_t data_len
        uint64_t calls
        const uint8_t *rel
        size_t rel_len
        int line_meta
        char *line
        size_t line_len
    enum:
        EFS_LINE_META_NONE
        EFS_LINE_META_POSIX
    efs_dword efs_posix_backup_item(efs_backup_item *it, const efs_posix_options *o,
                                    const int *cancel, unsigned sigint_base)
    void efs_posix_backup_item_free(efs_backup_item *it)
    long efs_fd_read(int fd, uint8_t *buf, size_t n, int64_t offset, int *err)
    int efs_fd_write_all(int fd, const uint8_t *buf, size_t n, int *err)
    uint8_t *efs_big_alloc(size_t n)
    uint8_t *efs_big_grow(uint8_t *p, size_t old, size_t n)
    void efs_big_free(uint8_t *p, size_t n)
    efs_dword efs_win32_from_errno(int e)
    uint64_t efs_bench_memcpy(uint8_t *dst, const uint8_t *src, size_t n, size_t chunk,
                              uint64_t total)
    size_t efs_atomic_next(size_t *counter)
    void efs_atomic_add(uint64_t *counter, uint64_t value)
    void efs_atomic_set(uint64_t *flag, uint64_t value)
    uint64_t efs_atomic_get(uint64_t *flag)
    int efs_fd_open_read(const char *path, int *err)
    int efs_fd_close(int fd)
    int efs_sigint_install()
    unsigned efs_sigint_count()


cdef extern from "_c/efs_probe.h" nogil:
    enum:
        EFS_PROBE_NO_UNNAMED
        EFS_PROBE_UNNAMED
        EFS_PROBE_UNKNOWN
        EFS_PROBE_IO_ERROR
    int efs_probe_unnamed_path(const char *path, int *err)


cdef extern from "_c/efs_manifest.h" nogil:
    ctypedef struct efs_line_facts:
        const uint8_t *path
        size_t path_len
        int directory
        uint64_t raw_size
        uint64_t source_size
        const uint8_t *sha256
        const uint8_t *efs_sha256
        int posix_meta
        uint32_t mode
        int64_t atime_ns
        int64_t mtime_ns
        int64_t ctime_ns
    char *efs_manifest_object_line(const efs_line_facts *f, size_t *len)
    int efs_utf8_valid(const uint8_t *s, size_t n)
    int efs_manifest_read_object_line(const char *line, size_t len, efs_line_facts *f,
                                      uint8_t *path_buf, uint8_t *sha256, uint8_t *efs_sha256)


cdef extern from "_c/efs_setmeta.h" nogil:
    int efs_set_posix_meta(const char *path, int mode, int64_t atime_ns, int64_t mtime_ns,
                           const char **op)
