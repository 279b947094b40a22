/*
 * efs_writer.c -- the canonical writer: lays a raw stream out exactly as
 * Windows does (spec 3.1 and 8.5): one metadata segment, then per data stream
 * segments of at most 64 KiB of ciphertext, each behind a 512-byte header
 * (16-byte GURE header + 0x1F0-byte encryption header with the EXTD
 * extension).  Field positions come from efs_layout.h, shared with the parser.
 */
#include <stdlib.h>
#include <string.h>

#include "efs_codec.h"
#include "efs_layout.h"

efs_dword efs_emit_raw_header(efs_emit_fn emit, void *ctx)
{
    uint8_t b[EFS_RAW_HDR_LEN];
    memset(b, 0, sizeof b);
    memcpy(b, EFS_RAW_MAGIC, EFS_RAW_MAGIC_LEN);
    return emit(ctx, b, sizeof b);
}

static efs_dword emit_stream_header(efs_emit_fn emit, void *ctx, const uint8_t *name,
                                    uint32_t name_length, uint32_t flag)
{
    uint8_t b[EFS_STREAM_HDR_FIXED + EFS_STREAM_NAME_MAX];
    memset(b, 0, EFS_STREAM_HDR_FIXED);
    efs_put32(b + EFS_STREAM_OFF_HDRLEN, EFS_STREAM_HDR_FIXED + name_length);
    memcpy(b + EFS_STREAM_OFF_SIG, EFS_SIG_NTFS, EFS_SIG_LEN);
    efs_put32(b + EFS_STREAM_OFF_FLAG, flag);
    efs_put32(b + EFS_STREAM_OFF_NAMELEN, name_length);
    memcpy(b + EFS_STREAM_HDR_FIXED, name, name_length);
    return emit(ctx, b, EFS_STREAM_HDR_FIXED + name_length);
}

static void put_seg_header(uint8_t *b, uint32_t segment_length)
{
    efs_put32(b + EFS_SEG_OFF_LEN, segment_length);
    memcpy(b + EFS_SEG_OFF_SIG, EFS_SIG_GURE, EFS_SIG_LEN);
    efs_put32(b + EFS_SEG_OFF_RESERVED, 0);
}

efs_dword efs_emit_metadata_stream(efs_emit_fn emit, void *ctx,
                                   const uint8_t *meta, size_t len)
{
    uint8_t seg[EFS_SEG_HDR_LEN];
    efs_dword rc;
    if (len > EFS_META_MAX) return EFS_ERROR_INVALID_PARAMETER;
    if ((rc = emit_stream_header(emit, ctx, EFS_META_NAME, sizeof EFS_META_NAME,
                                 EFS_STREAM_FLAG_ENCRYPTED)))
        return rc;
    put_seg_header(seg, (uint32_t)(EFS_SEG_HDR_LEN + len));
    if ((rc = emit(ctx, seg, sizeof seg))) return rc;
    return len ? emit(ctx, meta, len) : 0;
}

uint64_t efs_data_stream_raw_size(uint32_t name_length, int encrypted, uint64_t size)
{
    uint64_t payload = encrypted ? efs_round512(size) : size;
    uint64_t segs = (payload + EFS_SEG_MAX_DATA - 1) / EFS_SEG_MAX_DATA;
    uint64_t hdr = encrypted ? EFS_SEG_WINDOWS_HDR : EFS_SEG_HDR_LEN;
    return EFS_STREAM_HDR_FIXED + name_length + segs * hdr + payload;
}

/* The 512-byte header of one encrypted segment (spec 4, 4.1, 8.5). */
static void put_enc_segment_header(uint8_t *b, uint64_t start, uint32_t chunk,
                                   uint32_t within, unsigned cluster_shift)
{
    uint8_t *e = b + EFS_SEG_HDR_LEN;
    uint8_t *x = e + EFS_ENC_OFF_BLOCKS + 4;
    unsigned shift = efs_data_unit_shift(chunk);
    memset(b, 0, EFS_SEG_WINDOWS_HDR);
    put_seg_header(b, EFS_SEG_WINDOWS_HDR + chunk);
    efs_put64(e + EFS_ENC_OFF_START, start);
    efs_put32(e + EFS_ENC_OFF_LENGTH, EFS_ENC_WINDOWS_LEN);
    efs_put32(e + EFS_ENC_OFF_BWSS, within);
    efs_put32(e + EFS_ENC_OFF_BWVDL, within);
    efs_put16(e + EFS_ENC_OFF_COMPRESSION, 0);
    e[EFS_ENC_OFF_DATA_UNIT] = (uint8_t)shift;
    e[EFS_ENC_OFF_CHUNK] = (uint8_t)shift;
    e[EFS_ENC_OFF_CLUSTER] = (uint8_t)cluster_shift;
    e[EFS_ENC_OFF_FORMAT] = EFS_ENC_FORMAT_DEFAULT;
    efs_put16(e + EFS_ENC_OFF_NBLOCKS, 1);
    efs_put32(e + EFS_ENC_OFF_BLOCKS, chunk);
    memcpy(x + EFS_EXT_OFF_CODE, EFS_EXT_CODE, sizeof EFS_EXT_CODE);
    efs_put32(x + EFS_EXT_OFF_LENGTH, EFS_EXT_LEN);
    efs_put32(x + EFS_EXT_OFF_FLAGS, 0);
    efs_put32(x + EFS_EXT_OFF_RESERVED, 0);
}

efs_dword efs_emit_data_stream(efs_emit_fn emit, void *ctx,
                               const uint8_t *name, uint32_t name_length,
                               int encrypted, uint64_t size,
                               unsigned cluster_shift,
                               efs_fill_fn fill, void *fill_ctx)
{
    uint64_t payload = encrypted ? efs_round512(size) : size;
    uint8_t *buf;
    efs_dword rc;

    if (efs_check_stream_name(name, name_length, 0, NULL) ||
        cluster_shift < 9 || cluster_shift > 21 || size > ((uint64_t)1 << 62))
        return EFS_ERROR_INVALID_PARAMETER;
    if ((rc = emit_stream_header(emit, ctx, name, name_length,
                                 encrypted ? EFS_STREAM_FLAG_ENCRYPTED : EFS_STREAM_FLAG_PLAIN)))
        return rc;
    if (payload == 0) return 0;
    buf = malloc(EFS_SEG_WINDOWS_HDR + EFS_SEG_MAX_DATA);
    if (!buf) return EFS_ERROR_NOT_ENOUGH_MEMORY;
    for (uint64_t off = 0; off < payload && rc == 0; off += EFS_SEG_MAX_DATA) {
        uint32_t chunk = (uint32_t)(payload - off < EFS_SEG_MAX_DATA ? payload - off
                                                                     : EFS_SEG_MAX_DATA);
        size_t hdr;
        if (encrypted) {
            uint32_t within = (uint32_t)(size - off < chunk ? size - off : chunk);
            put_enc_segment_header(buf, off, chunk, within, cluster_shift);
            hdr = EFS_SEG_WINDOWS_HDR;
        } else {
            put_seg_header(buf, EFS_SEG_HDR_LEN + chunk);
            hdr = EFS_SEG_HDR_LEN;
        }
        if ((rc = fill(fill_ctx, buf + hdr, chunk, off)) == 0)
            rc = emit(ctx, buf, hdr + chunk);
    }
    free(buf);
    return rc;
}
