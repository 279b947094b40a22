/*
 * efs_codec.h -- streaming validator/parser and canonical writer for the
 * EFSRPC raw data format.  Pure C: no Python, no I/O, no global state.
 */
#ifndef EFSFAST_EFS_CODEC_H
#define EFSFAST_EFS_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include "efs_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Validation mode (spec section 6). */
#define EFS_MODE_STRICT      0u
#define EFS_MODE_COMPATIBLE  1u

/* The first violation found: the rule R1..R20, a stable sub-code, the
 * absolute byte offset in the raw stream, and the Win32 code to return. */
typedef struct efs_error {
    int rule;              /* 1..20; 0 = no error */
    const char *code;      /* e.g. "E_SEG_LEN" (static string) */
    const char *detail;    /* human-readable (static string) */
    uint64_t offset;       /* absolute byte offset in the raw stream */
    efs_dword winerror;    /* EFS_ERROR_INVALID_DATA, _NOT_SUPPORTED, ... */
} efs_error;

/* ---- events ---- */

/* Describes one data segment (after its headers validated). */
typedef struct efs_segment {
    uint64_t offset;             /* absolute offset of the segment header */
    uint32_t segment_length;
    int encrypted;               /* stream Flag == 0 */
    /* encryption header fields (zero for plain streams) */
    uint64_t starting_file_offset;
    uint32_t header_length;
    uint32_t bytes_within_stream_size;
    uint32_t bytes_within_vdl;
    uint8_t data_unit_shift;
    uint8_t chunk_shift;
    uint8_t cluster_shift;
    uint16_t block_count;
    uint32_t first_block_size;
    int has_extd;
    uint32_t extd_flags;
    uint32_t data_length;        /* D: payload bytes that follow */
} efs_segment;

typedef struct efs_stream_info {
    uint32_t index;              /* 0 = metadata */
    uint64_t offset;             /* absolute offset of the stream header */
    const uint8_t *name;         /* UTF-16LE, trailing NUL stripped */
    uint32_t name_length;        /* bytes */
    uint32_t flag;               /* 0 encrypted, 1 plain */
    int is_metadata;
} efs_stream_info;

/* Every handler may be NULL.  A non-zero return aborts parsing and becomes
 * the return value of efs_parser_feed/finish (e.g. an I/O error in the
 * consumer).  Pointers are valid only during the call. */
typedef struct efs_handlers {
    efs_dword (*stream_begin)(void *ctx, const efs_stream_info *s);
    /* the whole $EFS value, after R10-R12 passed */
    efs_dword (*metadata)(void *ctx, const uint8_t *data, size_t len);
    efs_dword (*segment)(void *ctx, const efs_segment *seg);
    /* a slice of the current segment's payload (zero-copy) */
    efs_dword (*data)(void *ctx, const uint8_t *data, size_t len);
    /* logical size: for encrypted streams last.StartingFileOffset +
     * last.BytesWithinStreamSize; payload = ciphertext bytes seen */
    efs_dword (*stream_end)(void *ctx, uint64_t logical_size, uint64_t payload);
} efs_handlers;

typedef struct efs_parser efs_parser;

/* Allocates a parser; NULL when out of memory. */
efs_parser *efs_parser_new(unsigned mode, const efs_handlers *h, void *ctx);
void efs_parser_free(efs_parser *p);
/* Use `buffer` (EFS_META_MAX bytes, owned by the caller and outliving the
 * parser) for the $EFS value instead of allocating one: callers that parse
 * many streams in a row reuse it.  Only before the first feed. */
void efs_parser_lend_meta(efs_parser *p, uint8_t *buffer);
/* Feed the next slice (any length, 0 allowed).  Returns 0, a handler's
 * non-zero code, or the winerror of a format violation (see efs_parser_error). */
efs_dword efs_parser_feed(efs_parser *p, const uint8_t *data, size_t len);
/* Declare the end of input; checks that it fell on a stream boundary. */
efs_dword efs_parser_finish(efs_parser *p);
const efs_error *efs_parser_error(const efs_parser *p);
uint64_t efs_parser_position(const efs_parser *p);

/* ---- metadata ($EFS) ---- */

#define EFS_META_LAYOUT_V1 1
#define EFS_META_LAYOUT_V2 2
#define EFS_META_LAYOUT_V3 3

/* One DDF/DRF entry; offsets are relative to the start of the metadata,
 * 0 length means absent.  Strings are UTF-16LE without their NUL. */
typedef struct efs_key_entry {
    int is_drf;
    uint32_t index;
    uint32_t entry_offset, entry_length;
    uint32_t flags;
    uint32_t pki_type;
    uint32_t sid_offset, sid_length;
    uint32_t thumb_offset, thumb_length;
    uint32_t container_offset, container_length;
    uint32_t provider_offset, provider_length;
    uint32_t display_offset, display_length;
    uint32_t fek_offset, fek_length;
} efs_key_entry;

typedef struct efs_meta_info {
    int layout;               /* EFS_META_LAYOUT_* */
    uint32_t version;         /* EFS_Version (0 for the .pfile layout) */
    uint32_t length;
    int supported;            /* decoded (V1) */
    uint32_t ddf_count, drf_count;
} efs_meta_info;

/* Validates $EFS value `m` (rules R10-R12).  `entry` (may be NULL) is called
 * for each key entry with `ctx`; a non-zero return aborts with that code.
 * Error offsets are `base` + the metadata offset, or, when `map` is given,
 * map(map_ctx, metadata offset) (metadata split over several segments). */
typedef uint64_t (*efs_offset_map)(void *map_ctx, uint32_t meta_offset);
typedef efs_dword (*efs_entry_fn)(void *ctx, const efs_key_entry *e);
efs_dword efs_meta_parse(const uint8_t *m, size_t len, unsigned mode,
                         efs_meta_info *info, efs_entry_fn entry, void *ctx,
                         efs_offset_map map, void *map_ctx, uint64_t base,
                         efs_error *err);

/* Build a Version 1 $EFS value.  Key descriptions: */
typedef struct efs_key_desc {
    int is_drf;
    uint32_t flags;
    const uint8_t *sid; uint32_t sid_length;          /* binary RPC_SID, may be 0 */
    const uint8_t *thumb; uint32_t thumb_length;
    const uint8_t *container; uint32_t container_length; /* UTF-16, no NUL; NULL = absent */
    const uint8_t *provider; uint32_t provider_length;
    const uint8_t *display; uint32_t display_length;
    const uint8_t *fek; uint32_t fek_length;
} efs_key_desc;

/* Returns the size needed; writes only when out != NULL and cap suffices.
 * Returns 0 on invalid input (e.g. no DDF key, over 256 KiB). */
size_t efs_meta_build(uint32_t version, const uint8_t efs_id[16],
                      const efs_key_desc *keys, size_t nkeys,
                      uint8_t *out, size_t cap);

/* ---- canonical writer ---- */

/* A destination for produced bytes; non-zero return aborts. */
typedef efs_dword (*efs_emit_fn)(void *ctx, const uint8_t *data, size_t len);
/* A source of ciphertext: fill exactly `len` bytes at `dst` taken from
 * offset `off` of the stream's ciphertext; non-zero return aborts. */
typedef efs_dword (*efs_fill_fn)(void *ctx, uint8_t *dst, size_t len, uint64_t off);

/* Checks that a data-stream name is acceptable (rule R6 / R3); returns 0 or
 * the rule number that fails.  Shared by parser and writer. */
int efs_check_stream_name(const uint8_t *name, uint32_t len, int is_metadata,
                          uint32_t *stripped_len);

efs_dword efs_emit_raw_header(efs_emit_fn emit, void *ctx);
efs_dword efs_emit_metadata_stream(efs_emit_fn emit, void *ctx,
                                   const uint8_t *meta, size_t len);
/* Emits the stream header and the segments of a data stream of `size`
 * logical bytes, with round512(size) ciphertext bytes pulled from `fill` in
 * chunks of at most 64 KiB.  Plain (flag 1) streams carry `size` bytes. */
efs_dword efs_emit_data_stream(efs_emit_fn emit, void *ctx,
                               const uint8_t *name, uint32_t name_length,
                               int encrypted, uint64_t size,
                               unsigned cluster_shift,
                               efs_fill_fn fill, void *fill_ctx);
/* Size of the stream efs_emit_data_stream produces. */
uint64_t efs_data_stream_raw_size(uint32_t name_length, int encrypted, uint64_t size);

#ifdef __cplusplus
}
#endif
#endif /* EFSFAST_EFS_CODEC_H */
