/*
 * efs_parser.c -- streaming validator/parser for the EFSRPC raw data format.
 *
 * A state machine fed arbitrary slices (the import callback hands the system
 * whatever it likes, down to one byte).  Only fixed headers are staged in a
 * small buffer; payload passes to the handler without a copy.  The metadata
 * stream (<= 256 KiB, MS-EFSR <7>/<14>) is the only thing kept whole, so the
 * R10-R12 checks can see all of it.  Rule numbers refer to
 * shared/spec/efs-raw-format.md section 6.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "efs_codec.h"
#include "efs_layout.h"

enum {
    ST_RAW_HDR, ST_STREAM_HDR, ST_STREAM_NAME, ST_PEEK, ST_SEG_HDR,
    ST_META_DATA, ST_ENC_FIXED, ST_ENC_BLOCKS, ST_ENC_EXT, ST_ENC_PAD,
    ST_DATA, ST_DONE, ST_FAILED
};

/* Metadata split over more segments than this is refused (R10): Windows
 * writes one, and the offset map must stay bounded. */
#define META_MAX_SEGMENTS 1024u
/* Bytes of stream names remembered for the duplicate check (R7). */
#define NAMES_MAX (1u << 20)

typedef struct { uint32_t meta_off; uint64_t abs_off; } meta_span;

struct efs_parser {
    unsigned mode;
    efs_handlers h;
    void *ctx;
    int state;
    uint64_t pos;            /* absolute offset of the next input byte */

    /* staging for fixed headers */
    uint8_t buf[EFS_STREAM_HDR_FIXED + EFS_STREAM_NAME_MAX];
    size_t have, need;
    uint64_t struct_off;     /* absolute offset of what is being staged */

    /* current stream */
    uint32_t stream_count;   /* streams begun so far */
    int in_stream, is_meta;
    uint32_t flag;
    uint32_t name_len;
    uint64_t stream_off;
    uint32_t segments;
    uint64_t next_sfo, logical_size, payload;
    int short_seen;

    /* current segment */
    efs_segment seg;
    uint64_t enc_off;        /* absolute offset of the encryption header */
    uint32_t blocks_left;
    uint64_t block_sum;
    uint64_t pad_left;
    uint64_t data_left;

    /* metadata */
    uint8_t *meta;
    int meta_borrowed;       /* meta belongs to the caller (efs_parser_lend_meta) */
    uint32_t meta_len;
    uint32_t meta_segments;

    /* names seen, stored as u32 length + bytes */
    uint8_t *names;
    size_t names_len, names_cap;
    /* open-addressing index over `names` (offset + 1; 0 = empty), so the
     * duplicate check stays linear in the number of streams */
    uint32_t *name_index;
    size_t index_cap, index_used;

    efs_error err;

    /* last, and left unzeroed by efs_parser_new (16 KiB; only the first
     * meta_segments entries are ever read) */
    meta_span spans[META_MAX_SEGMENTS];
};

static efs_dword fail(efs_parser *p, int rule, const char *code,
                      const char *detail, uint64_t offset, efs_dword winerror)
{
    p->err.rule = rule;
    p->err.code = code;
    p->err.detail = detail;
    p->err.offset = offset;
    p->err.winerror = winerror;
    p->state = ST_FAILED;
    return winerror;
}

#define FAIL(rule, code, detail, off) \
    fail(p, rule, code, detail, off, EFS_ERROR_INVALID_DATA)

static efs_dword handler_failed(efs_parser *p, efs_dword rc)
{
    return fail(p, 0, "E_CONSUMER", "the consumer aborted", p->pos, rc);
}

efs_parser *efs_parser_new(unsigned mode, const efs_handlers *h, void *ctx)
{
    /* one parser per restored file: zero the state, not the 16 KiB map */
    efs_parser *p = malloc(sizeof *p);
    if (!p) return NULL;
    memset(p, 0, offsetof(efs_parser, spans));
    p->mode = mode;
    if (h) p->h = *h;
    p->ctx = ctx;
    p->state = ST_RAW_HDR;
    p->need = EFS_RAW_HDR_LEN;
    return p;
}

void efs_parser_lend_meta(efs_parser *p, uint8_t *buffer)
{
    if (p->meta || !buffer) return;
    p->meta = buffer;
    p->meta_borrowed = 1;
}

void efs_parser_free(efs_parser *p)
{
    if (!p) return;
    if (!p->meta_borrowed) free(p->meta);
    free(p->names);
    free(p->name_index);
    free(p);
}

const efs_error *efs_parser_error(const efs_parser *p) { return &p->err; }
uint64_t efs_parser_position(const efs_parser *p) { return p->pos; }

static void stage(efs_parser *p, int state, size_t need)
{
    p->state = state;
    p->need = need;
}

static void expect_next(efs_parser *p)
{
    p->have = 0;
    p->struct_off = p->pos;
    stage(p, ST_PEEK, EFS_PEEK_LEN);
}

/* ---- stream names ---- */

int efs_check_stream_name(const uint8_t *name, uint32_t len, int is_metadata,
                          uint32_t *stripped_len)
{
    static const uint8_t suffix[12] = {':', 0, '$', 0, 'D', 0, 'A', 0, 'T', 0, 'A', 0};
    uint32_t n = len;
    /* Windows writes no terminator, the spec says there is one: take both. */
    if (n >= 4 && name[n - 2] == 0 && name[n - 1] == 0) n -= 2;
    if (stripped_len) *stripped_len = n;
    if (is_metadata)
        return (n == 2 && name[0] == EFS_META_NAME[0] && name[1] == EFS_META_NAME[1]) ? 0 : 3;
    if (len == 0 || (len & 1) || len > EFS_STREAM_NAME_MAX) return 6;
    /* "::$DATA" or ":x:$DATA" with a non-empty x free of ':' and NUL */
    if (n < 14 || name[0] != ':' || name[1] != 0) return 6;
    if (memcmp(name + n - 12, suffix, 12) != 0) return 6;
    if (n == 14) return 0;
    for (uint32_t i = 2; i < n - 12; i += 2) {
        uint16_t u = efs_get16(name + i);
        if (u == 0 || u == ':') return 6;
    }
    return 0;
}

static uint64_t name_hash(const uint8_t *name, uint32_t n)
{
    uint64_t h = 14695981039346656037ULL;          /* FNV-1a */
    for (uint32_t i = 0; i < n; i++) h = (h ^ name[i]) * 1099511628211ULL;
    return h;
}

/* Slot of `name` in the index: where it is, or the empty slot it would take. */
static size_t name_slot(const efs_parser *p, const uint8_t *name, uint32_t n, uint64_t h)
{
    size_t mask = p->index_cap - 1, i = (size_t)h & mask;
    for (;; i = (i + 1) & mask) {
        uint32_t e = p->name_index[i];
        if (e == 0) return i;
        uint32_t l = efs_get32(p->names + e - 1);
        if (l == n && memcmp(p->names + e - 1 + 4, name, n) == 0) return i;
    }
}

static int grow_index(efs_parser *p)
{
    size_t cap = p->index_cap ? p->index_cap * 2 : 64;
    uint32_t *old = p->name_index, *fresh = calloc(cap, sizeof *fresh);
    size_t old_cap = p->index_cap;
    if (!fresh) return -1;
    p->name_index = fresh;
    p->index_cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i]) {
            uint32_t l = efs_get32(p->names + old[i] - 1);
            const uint8_t *nm = p->names + old[i] - 1 + 4;
            fresh[name_slot(p, nm, l, name_hash(nm, l))] = old[i];
        }
    free(old);
    return 0;
}

/* R7: remember the name; 1 when it was seen before, -1 when out of room. */
static int remember_name(efs_parser *p, const uint8_t *name, uint32_t n)
{
    uint64_t h = name_hash(name, n);
    size_t slot;
    if ((p->index_used + 1) * 2 > p->index_cap && grow_index(p)) return -1;
    slot = name_slot(p, name, n, h);
    if (p->name_index[slot]) return 1;
    if (p->names_len + 4 + n > p->names_cap) {
        size_t cap = p->names_cap ? p->names_cap * 2 : 256;
        while (cap < p->names_len + 4 + n) cap *= 2;
        if (cap > NAMES_MAX) return -1;
        uint8_t *nb = realloc(p->names, cap);
        if (!nb) return -1;
        p->names = nb;
        p->names_cap = cap;
    }
    efs_put32(p->names + p->names_len, n);
    memcpy(p->names + p->names_len + 4, name, n);
    p->name_index[slot] = (uint32_t)p->names_len + 1;
    p->index_used++;
    p->names_len += 4 + n;
    return 0;
}

/* ---- metadata offsets ---- */

static uint64_t meta_abs(void *ctx, uint32_t meta_off)
{
    efs_parser *p = ctx;
    uint32_t i = p->meta_segments;
    while (i > 0 && p->spans[i - 1].meta_off > meta_off) i--;
    if (i == 0) return p->spans[0].abs_off;
    return p->spans[i - 1].abs_off + (meta_off - p->spans[i - 1].meta_off);
}

/* ---- stream boundaries ---- */

static efs_dword end_stream(efs_parser *p)
{
    efs_dword rc;
    if (!p->in_stream) return 0;
    p->in_stream = 0;
    if (p->is_meta) {
        efs_meta_info info;
        if (p->meta_segments == 0)
            return FAIL(10, "E_META_LEN", "the metadata stream has no segment",
                        p->struct_off);
        rc = efs_meta_parse(p->meta, p->meta_len, p->mode, &info, NULL, NULL,
                            meta_abs, p, 0, &p->err);
        if (rc) { p->state = ST_FAILED; return rc; }
        if (p->h.metadata && (rc = p->h.metadata(p->ctx, p->meta, p->meta_len)))
            return handler_failed(p, rc);
        if (p->h.stream_end && (rc = p->h.stream_end(p->ctx, p->meta_len, p->meta_len)))
            return handler_failed(p, rc);
        return 0;
    }
    if (p->h.stream_end &&
        (rc = p->h.stream_end(p->ctx, p->flag == EFS_STREAM_FLAG_ENCRYPTED ?
                                      p->logical_size : p->payload, p->payload)))
        return handler_failed(p, rc);
    return 0;
}

static efs_dword on_stream_fixed(efs_parser *p)
{
    const uint8_t *b = p->buf;
    uint64_t off = p->struct_off;
    int first = p->stream_count == 0;
    uint32_t hdrlen = efs_get32(b + EFS_STREAM_OFF_HDRLEN);
    uint32_t namelen = efs_get32(b + EFS_STREAM_OFF_NAMELEN);
    uint32_t flag = efs_get32(b + EFS_STREAM_OFF_FLAG);

    if (first && memcmp(b + EFS_STREAM_OFF_SIG, EFS_SIG_NTFS, EFS_SIG_LEN) != 0)
        return FAIL(3, "E_FIRST_NOT_METADATA", "no NTFS stream header at offset 20",
                    off + EFS_STREAM_OFF_SIG);
    if (first && namelen != sizeof EFS_META_NAME)
        return FAIL(3, "E_FIRST_NOT_METADATA", "the first stream's NameLength is not 2",
                    off + EFS_STREAM_OFF_NAMELEN);
    if (namelen == 0 || (namelen & 1) || namelen > EFS_STREAM_NAME_MAX)
        return FAIL(6, "E_STREAM_NAME", "stream NameLength is zero, odd or too long",
                    off + EFS_STREAM_OFF_NAMELEN);
    if (hdrlen != EFS_STREAM_HDR_FIXED + namelen)
        return FAIL(4, "E_STREAM_HDRLEN", "HeaderLength is not 28 + NameLength",
                    off + EFS_STREAM_OFF_HDRLEN);
    if (flag > EFS_STREAM_FLAG_PLAIN)
        return FAIL(5, "E_STREAM_FLAG", "stream Flag is neither 0 nor 1",
                    off + EFS_STREAM_OFF_FLAG);
    if (p->mode == EFS_MODE_STRICT) {
        if (first && flag != EFS_STREAM_FLAG_ENCRYPTED)
            return FAIL(5, "E_STREAM_FLAG", "the metadata stream's Flag is not 0",
                        off + EFS_STREAM_OFF_FLAG);
        if (!efs_all_zero(b + EFS_STREAM_OFF_RESERVED, EFS_STREAM_RESERVED_LEN))
            return FAIL(5, "E_STREAM_RESERVED", "stream header Reserved is not zero",
                        off + EFS_STREAM_OFF_RESERVED);
    }
    p->name_len = namelen;
    p->flag = flag;
    stage(p, ST_STREAM_NAME, EFS_STREAM_HDR_FIXED + namelen);
    return 0;
}

static efs_dword on_stream_name(efs_parser *p)
{
    const uint8_t *name = p->buf + EFS_STREAM_HDR_FIXED;
    uint64_t name_off = p->struct_off + EFS_STREAM_HDR_FIXED;
    int first = p->stream_count == 0;
    uint32_t stripped = p->name_len;
    efs_dword rc;

    if (first) {
        if (efs_check_stream_name(name, p->name_len, 1, &stripped))
            return FAIL(3, "E_FIRST_NOT_METADATA", "the first stream is not named 0x1910",
                        name_off);
    } else if (efs_check_stream_name(name, p->name_len, 1, NULL) == 0) {
        return FAIL(7, "E_DUP_STREAM", "a second metadata stream", p->struct_off);
    } else if (efs_check_stream_name(name, p->name_len, 0, &stripped)) {
        return FAIL(6, "E_STREAM_NAME", "stream name is not \"::$DATA\" or \":name:$DATA\"",
                    name_off);
    }
    switch (remember_name(p, name, stripped)) {
    case 1:
        return FAIL(7, "E_DUP_STREAM", "a stream name appears twice", p->struct_off);
    case -1:
        return FAIL(20, "E_OVERFLOW", "more stream names than efsfast keeps track of",
                    p->struct_off);
    default:
        break;
    }

    p->in_stream = 1;
    p->is_meta = first;
    p->stream_off = p->struct_off;
    p->segments = 0;
    p->next_sfo = p->logical_size = p->payload = 0;
    p->short_seen = 0;
    if (p->h.stream_begin) {
        efs_stream_info si;
        si.index = p->stream_count;
        si.offset = p->stream_off;
        si.name = name;
        si.name_length = stripped;
        si.flag = p->flag;
        si.is_metadata = first;
        if ((rc = p->h.stream_begin(p->ctx, &si))) return handler_failed(p, rc);
    }
    p->stream_count++;
    expect_next(p);
    return 0;
}

static efs_dword on_peek(efs_parser *p)
{
    const uint8_t *sig = p->buf + EFS_SEG_OFF_SIG;   /* same offset in both headers */
    efs_dword rc;
    if (memcmp(sig, EFS_SIG_GURE, EFS_SIG_LEN) == 0) {
        stage(p, ST_SEG_HDR, EFS_SEG_HDR_LEN);
        return 0;
    }
    if (memcmp(sig, EFS_SIG_NTFS, EFS_SIG_LEN) == 0) {
        if ((rc = end_stream(p))) return rc;
        stage(p, ST_STREAM_HDR, EFS_STREAM_HDR_FIXED);
        return 0;
    }
    return FAIL(9, "E_TRAILING_GARBAGE",
                "neither a GURE segment nor an NTFS stream header follows", p->struct_off);
}

static efs_dword begin_payload(efs_parser *p, uint64_t n)
{
    p->data_left = n;
    if (n == 0) expect_next(p);
    else p->state = ST_DATA;
    return 0;
}

static efs_dword on_seg_hdr(efs_parser *p)
{
    const uint8_t *b = p->buf;
    uint64_t off = p->struct_off;
    uint32_t seglen = efs_get32(b + EFS_SEG_OFF_LEN);
    efs_dword rc;

    if (seglen < EFS_SEG_HDR_LEN)
        return FAIL(8, "E_SEG_LEN", "SegmentLength is below 16", off + EFS_SEG_OFF_LEN);
    if (p->mode == EFS_MODE_STRICT && efs_get32(b + EFS_SEG_OFF_RESERVED) != 0)
        return FAIL(8, "E_SEG_RESERVED", "segment Reserved is not zero",
                    off + EFS_SEG_OFF_RESERVED);
    memset(&p->seg, 0, sizeof p->seg);
    p->seg.offset = off;
    p->seg.segment_length = seglen;
    p->segments++;

    if (p->is_meta) {
        uint32_t n = seglen - EFS_SEG_HDR_LEN;
        if (p->meta_segments >= META_MAX_SEGMENTS)
            return FAIL(10, "E_META_LEN", "the metadata is split over too many segments", off);
        if ((uint64_t)p->meta_len + n > EFS_META_MAX)
            return FAIL(10, "E_META_LEN", "the metadata exceeds 262144 bytes", off);
        if (!p->meta && !(p->meta = malloc(EFS_META_MAX)))
            return fail(p, 0, "E_NOMEM", "out of memory", off, EFS_ERROR_NOT_ENOUGH_MEMORY);
        p->spans[p->meta_segments].meta_off = p->meta_len;
        p->spans[p->meta_segments].abs_off = off + EFS_SEG_HDR_LEN;
        p->meta_segments++;
        p->data_left = n;
        if (n == 0) expect_next(p);
        else p->state = ST_META_DATA;
        return 0;
    }
    if (p->flag == EFS_STREAM_FLAG_PLAIN) {
        p->seg.data_length = seglen - EFS_SEG_HDR_LEN;
        if (p->h.segment && (rc = p->h.segment(p->ctx, &p->seg))) return handler_failed(p, rc);
        return begin_payload(p, p->seg.data_length);
    }
    if (seglen < EFS_SEG_HDR_LEN + EFS_ENC_FIXED)
        return FAIL(13, "E_ENC_HDRLEN", "an encrypted segment is too short for its header",
                    off + EFS_SEG_OFF_LEN);
    p->seg.encrypted = 1;
    p->enc_off = off + EFS_SEG_HDR_LEN;
    p->have = 0;
    p->struct_off = p->enc_off;
    stage(p, ST_ENC_FIXED, EFS_ENC_FIXED);
    return 0;
}

static efs_dword finish_enc_header(efs_parser *p);

static efs_dword after_blocks(efs_parser *p)
{
    uint64_t rest = (uint64_t)p->seg.header_length - EFS_ENC_FIXED - 4u * (uint64_t)p->seg.block_count;
    p->have = 0;
    p->struct_off = p->pos;
    if (rest >= EFS_EXT_LEN) {
        p->pad_left = rest - EFS_EXT_LEN;
        stage(p, ST_ENC_EXT, EFS_EXT_LEN);
        return 0;
    }
    p->pad_left = rest;
    if (rest == 0) return finish_enc_header(p);
    p->state = ST_ENC_PAD;
    return 0;
}

static efs_dword on_enc_fixed(efs_parser *p)
{
    const uint8_t *b = p->buf;
    uint64_t e = p->enc_off;
    efs_segment *s = &p->seg;
    uint32_t len = efs_get32(b + EFS_ENC_OFF_LENGTH);
    uint16_t nblocks = efs_get16(b + EFS_ENC_OFF_NBLOCKS);

    if ((uint64_t)len < EFS_ENC_FIXED + 4u * (uint64_t)nblocks ||
        (uint64_t)len > (uint64_t)s->segment_length - EFS_SEG_HDR_LEN)
        return FAIL(13, "E_ENC_HDRLEN",
                    "encryption header Length is below 28 + 4N or past the segment",
                    e + EFS_ENC_OFF_LENGTH);
    if (efs_get16(b + EFS_ENC_OFF_COMPRESSION) != 0)
        return FAIL(14, "E_ENC_FIELDS", "CompressionFormat is not 0", e + EFS_ENC_OFF_COMPRESSION);
    if (b[EFS_ENC_OFF_DATA_UNIT] < 9 || b[EFS_ENC_OFF_DATA_UNIT] > 31)
        return FAIL(14, "E_ENC_FIELDS", "DataUnitShift is outside 9..31", e + EFS_ENC_OFF_DATA_UNIT);
    if (b[EFS_ENC_OFF_CHUNK] != b[EFS_ENC_OFF_DATA_UNIT])
        return FAIL(14, "E_ENC_FIELDS", "ChunkShift differs from DataUnitShift", e + EFS_ENC_OFF_CHUNK);
    if (b[EFS_ENC_OFF_CLUSTER] < 9 || b[EFS_ENC_OFF_CLUSTER] > 21)
        return FAIL(14, "E_ENC_FIELDS", "ClusterShift is outside 9..21", e + EFS_ENC_OFF_CLUSTER);
    if (b[EFS_ENC_OFF_FORMAT] != EFS_ENC_FORMAT_DEFAULT)
        return FAIL(14, "E_ENC_FIELDS", "EncryptionFormat is not 1", e + EFS_ENC_OFF_FORMAT);

    s->starting_file_offset = efs_get64(b + EFS_ENC_OFF_START);
    s->header_length = len;
    s->bytes_within_stream_size = efs_get32(b + EFS_ENC_OFF_BWSS);
    s->bytes_within_vdl = efs_get32(b + EFS_ENC_OFF_BWVDL);
    s->data_unit_shift = b[EFS_ENC_OFF_DATA_UNIT];
    s->chunk_shift = b[EFS_ENC_OFF_CHUNK];
    s->cluster_shift = b[EFS_ENC_OFF_CLUSTER];
    s->block_count = nblocks;
    s->data_length = s->segment_length - EFS_SEG_HDR_LEN - len;
    p->blocks_left = nblocks;
    p->block_sum = 0;
    if (nblocks == 0) return after_blocks(p);
    p->have = 0;
    p->struct_off = p->pos;
    stage(p, ST_ENC_BLOCKS, 4);
    return 0;
}

static efs_dword on_enc_block(efs_parser *p)
{
    uint32_t v = efs_get32(p->buf);
    if (p->blocks_left == p->seg.block_count) p->seg.first_block_size = v;
    p->block_sum += v;
    p->blocks_left--;
    p->have = 0;
    p->struct_off = p->pos;
    if (p->blocks_left == 0) return after_blocks(p);
    return 0;
}

static efs_dword on_enc_ext(efs_parser *p)
{
    const uint8_t *b = p->buf;
    uint64_t off = p->struct_off;
    if (memcmp(b + EFS_EXT_OFF_CODE, EFS_EXT_CODE, sizeof EFS_EXT_CODE) == 0) {
        if (efs_get32(b + EFS_EXT_OFF_LENGTH) != EFS_EXT_LEN)
            return FAIL(15, "E_ENC_EXT", "EXTD Length is not 16", off + EFS_EXT_OFF_LENGTH);
        if (efs_get32(b + EFS_EXT_OFF_FLAGS) > EFS_EXT_FLAG_SPARSE)
            return FAIL(15, "E_ENC_EXT", "EXTD Flags is neither 0 nor 1", off + EFS_EXT_OFF_FLAGS);
        if (efs_get32(b + EFS_EXT_OFF_RESERVED) != 0)
            return FAIL(15, "E_ENC_EXT", "EXTD Reserved is not zero", off + EFS_EXT_OFF_RESERVED);
        p->seg.has_extd = 1;
        p->seg.extd_flags = efs_get32(b + EFS_EXT_OFF_FLAGS);
    } else if (p->mode == EFS_MODE_STRICT) {
        size_t i = efs_first_nonzero(b, EFS_EXT_LEN);
        if (i < EFS_EXT_LEN)
            return FAIL(15, "E_ENC_PADDING", "encryption header padding is not zero", off + i);
    }
    if (p->pad_left == 0) return finish_enc_header(p);
    p->state = ST_ENC_PAD;
    return 0;
}

static efs_dword finish_enc_header(efs_parser *p)
{
    efs_segment *s = &p->seg;
    uint64_t e = p->enc_off;
    uint32_t d = s->data_length;
    int sparse = s->has_extd && (s->extd_flags & EFS_EXT_FLAG_SPARSE);
    efs_dword rc;

    if (!sparse) {
        uint64_t limit = p->mode == EFS_MODE_STRICT ? EFS_SEG_MAX_DATA
                                                    : ((uint64_t)1 << s->data_unit_shift);
        if (s->block_count != 1)
            return FAIL(16, "E_ENC_BLOCKS", "a non-sparse segment has more than one block",
                        e + EFS_ENC_OFF_NBLOCKS);
        if (s->first_block_size != d)
            return FAIL(16, "E_ENC_BLOCKS", "DataBlockSizes[0] differs from the data present",
                        e + EFS_ENC_OFF_BLOCKS);
        if (d == 0 || d % EFS_BLOCK_ALIGN != 0 || d > limit)
            return FAIL(16, "E_ENC_BLOCKS",
                        "segment data is empty, not a multiple of 512 or too large",
                        e + EFS_ENC_OFF_BLOCKS);
        if (s->bytes_within_vdl > s->bytes_within_stream_size)
            return FAIL(17, "E_ENC_SIZES", "BytesWithinVDL exceeds BytesWithinStreamSize",
                        e + EFS_ENC_OFF_BWVDL);
        if (s->bytes_within_stream_size > d || d - s->bytes_within_stream_size >= EFS_BLOCK_ALIGN)
            return FAIL(17, "E_ENC_SIZES",
                        "BytesWithinStreamSize is not within 512 bytes below the data present",
                        e + EFS_ENC_OFF_BWSS);
        if (p->short_seen)
            return FAIL(18, "E_ENC_OFFSETS", "a segment follows a short (final) segment",
                        e + EFS_ENC_OFF_START);
        if (s->starting_file_offset != p->next_sfo)
            return FAIL(18, "E_ENC_OFFSETS", "StartingFileOffset is not contiguous",
                        e + EFS_ENC_OFF_START);
        p->short_seen = s->bytes_within_stream_size < d;
    } else if (p->mode == EFS_MODE_STRICT) {
        if (p->block_sum != d)
            return FAIL(19, "E_SPARSE_LAYOUT", "sparse DataBlockSizes do not sum to the data present",
                        e + EFS_ENC_OFF_BLOCKS);
        if (s->starting_file_offset & ((((uint64_t)1) << s->data_unit_shift) - 1))
            return FAIL(19, "E_SPARSE_LAYOUT", "sparse StartingFileOffset is not data-unit aligned",
                        e + EFS_ENC_OFF_START);
    }
    if (s->starting_file_offset > ((uint64_t)1 << 63) - s->bytes_within_stream_size)
        return FAIL(20, "E_OVERFLOW", "the stream size exceeds 2^63", e + EFS_ENC_OFF_START);
    p->next_sfo = s->starting_file_offset + s->bytes_within_stream_size;
    if (p->next_sfo > p->logical_size) p->logical_size = p->next_sfo;
    if (p->h.segment && (rc = p->h.segment(p->ctx, s))) return handler_failed(p, rc);
    return begin_payload(p, d);
}

static efs_dword on_staged(efs_parser *p)
{
    switch (p->state) {
    case ST_RAW_HDR:
        for (unsigned i = 0; i < EFS_RAW_MAGIC_LEN; i++)
            if (p->buf[i] != EFS_RAW_MAGIC[i])
                return FAIL(1, "E_RAW_MAGIC", "not an EFS raw stream (bad magic)", i);
        if (p->mode == EFS_MODE_STRICT &&
            !efs_all_zero(p->buf + EFS_RAW_OFF_RESERVED, EFS_RAW_RESERVED_LEN))
            return FAIL(2, "E_RAW_RESERVED", "raw header Reserved is not zero",
                        EFS_RAW_OFF_RESERVED);
        p->have = 0;
        p->struct_off = p->pos;
        stage(p, ST_STREAM_HDR, EFS_STREAM_HDR_FIXED);
        return 0;
    case ST_STREAM_HDR: return on_stream_fixed(p);
    case ST_STREAM_NAME: return on_stream_name(p);
    case ST_PEEK: return on_peek(p);
    case ST_SEG_HDR: return on_seg_hdr(p);
    case ST_ENC_FIXED: return on_enc_fixed(p);
    case ST_ENC_BLOCKS: return on_enc_block(p);
    case ST_ENC_EXT: return on_enc_ext(p);
    default: return fail(p, 0, "E_INTERNAL", "parser state error", p->pos,
                         EFS_ERROR_INVALID_DATA);
    }
}

efs_dword efs_parser_feed(efs_parser *p, const uint8_t *data, size_t len)
{
    efs_dword rc;
    if (p->state == ST_FAILED) return p->err.winerror;
    if (p->state == ST_DONE && len)
        return fail(p, 9, "E_TRAILING_GARBAGE", "input after the end was declared", p->pos,
                    EFS_ERROR_INVALID_DATA);
    while (len > 0) {
        switch (p->state) {
        case ST_DATA: {
            size_t n = p->data_left < len ? (size_t)p->data_left : len;
            if (p->h.data && (rc = p->h.data(p->ctx, data, n))) return handler_failed(p, rc);
            p->payload += n;
            p->data_left -= n;
            p->pos += n; data += n; len -= n;
            if (p->data_left == 0) expect_next(p);
            break;
        }
        case ST_META_DATA: {
            size_t n = p->data_left < len ? (size_t)p->data_left : len;
            memcpy(p->meta + p->meta_len, data, n);
            p->meta_len += (uint32_t)n;
            p->data_left -= n;
            p->pos += n; data += n; len -= n;
            if (p->data_left == 0) expect_next(p);
            break;
        }
        case ST_ENC_PAD: {
            size_t n = p->pad_left < len ? (size_t)p->pad_left : len;
            if (p->mode == EFS_MODE_STRICT) {
                size_t i = efs_first_nonzero(data, n);
                if (i < n)
                    return FAIL(15, "E_ENC_PADDING", "encryption header padding is not zero",
                                p->pos + i);
            }
            p->pad_left -= n;
            p->pos += n; data += n; len -= n;
            if (p->pad_left == 0 && (rc = finish_enc_header(p))) return rc;
            break;
        }
        default: {
            size_t n = p->need - p->have;
            if (n > len) n = len;
            memcpy(p->buf + p->have, data, n);
            p->have += n;
            p->pos += n; data += n; len -= n;
            if (p->have == p->need && (rc = on_staged(p))) return rc;
            break;
        }
        }
    }
    return 0;
}

efs_dword efs_parser_finish(efs_parser *p)
{
    efs_dword rc;
    switch (p->state) {
    case ST_FAILED:
        return p->err.winerror;
    case ST_DONE:
        return 0;
    case ST_RAW_HDR:
        return FAIL(1, "E_RAW_MAGIC", "input is shorter than the 20-byte raw header", 0);
    case ST_STREAM_HDR:
        if (p->stream_count == 0 && p->have == 0)
            return FAIL(3, "E_FIRST_NOT_METADATA", "the input ends before the metadata stream",
                        p->struct_off);
        /* fall through */
    case ST_STREAM_NAME:
        return FAIL(4, "E_STREAM_HDRLEN", "the input ends inside a stream header",
                    p->struct_off);
    case ST_PEEK:
        if (p->have != 0)
            return FAIL(9, "E_TRAILING_GARBAGE",
                        "the input ends inside what follows a segment", p->struct_off);
        if ((rc = end_stream(p))) return rc;
        p->state = ST_DONE;
        return 0;
    case ST_SEG_HDR:
        return FAIL(8, "E_SEG_LEN", "the input ends inside a segment header", p->struct_off);
    default:
        return FAIL(8, "E_SEG_LEN", "the input ends inside a segment", p->seg.offset);
    }
}
