/*
 * efs_posix_import.c -- WriteEncryptedFileRaw on the POSIX side: the calls
 * of the import callback and the streaming parser's events (the system
 * buffers and the writes of the ciphertext: efs_posix_window.c).
 */
#ifndef _WIN32
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "efs_posix_dir.h"
#include "efs_posix_internal.h"
#include "efs_scratch.h"

static efs_dword put_named(posix_ctx *c, const uint8_t *p, size_t n)
{
    named_stream *s = &c->named[c->nnamed - 1];
    if (s->len + n > XATTR_VALUE_MAX)
        return px_sys_fail(c, "a named stream exceeds the 64 KiB xattr limit", E2BIG);
    if (!s->data && !(s->data = malloc(XATTR_VALUE_MAX)))
        return px_ctx_fail(c, "malloc", EFS_ERROR_NOT_ENOUGH_MEMORY);
    memcpy(s->data + s->len, p, n);
    s->len += n;
    return 0;
}

/* ---- import: parser events ---- */

static efs_dword on_stream_begin(void *ctx, const efs_stream_info *s)
{
    posix_ctx *c = ctx;
    char name[4 * 263 + 8];
    if (s->is_metadata) { c->cur = CUR_META; return 0; }
    if (s->flag != EFS_STREAM_FLAG_ENCRYPTED)
        return px_ctx_fail(c, "an unencrypted data stream cannot be stored in the efs_raw layout",
                        EFS_ERROR_NOT_SUPPORTED);
    if (s->name_length == sizeof EFS_UNNAMED_NAME &&
        memcmp(s->name, EFS_UNNAMED_NAME, sizeof EFS_UNNAMED_NAME) == 0) {
        if (c->flags & EFS_CREATE_FOR_DIR)
            return px_ctx_fail(c, "a directory has no unnamed data stream", EFS_ERROR_INVALID_PARAMETER);
        c->cur = CUR_UNNAMED;
        return 0;
    }
    if (c->flags & EFS_DROP_ALTERNATE_STREAMS) { c->cur = CUR_SKIP; return 0; }
    /* ":x:$DATA" -> "user.x" (the parser checked the form) */
    memcpy(name, XATTR_PREFIX, sizeof XATTR_PREFIX - 1);
    if (px_utf16_to_utf8(s->name + 2, s->name_length - 14, name + sizeof XATTR_PREFIX - 1,
                      sizeof name - sizeof XATTR_PREFIX) < 0)
        return px_ctx_fail(c, "a stream name is not valid UTF-16", EFS_ERROR_INVALID_PARAMETER);
    if (strcmp(name, EFSINFO_XATTR) == 0)
        return px_ctx_fail(c, "a named stream collides with user.ntfs.efsinfo",
                        EFS_ERROR_INVALID_PARAMETER);
    if (c->nnamed == c->named_cap) {
        size_t cap = c->named_cap ? c->named_cap * 2 : 4;
        named_stream *nn = realloc(c->named, cap * sizeof *nn);
        if (!nn) return px_ctx_fail(c, "malloc", EFS_ERROR_NOT_ENOUGH_MEMORY);
        c->named = nn;
        c->named_cap = cap;
    }
    memset(&c->named[c->nnamed], 0, sizeof c->named[0]);
    if (!(c->named[c->nnamed].xname = strdup(name)))
        return px_ctx_fail(c, "malloc", EFS_ERROR_NOT_ENOUGH_MEMORY);
    c->nnamed++;
    c->cur = CUR_NAMED;
    return 0;
}

static efs_dword on_metadata(void *ctx, const uint8_t *data, size_t len)
{
    posix_ctx *c = ctx;
    if (!(c->meta = malloc(len ? len : 1))) return px_ctx_fail(c, "malloc", EFS_ERROR_NOT_ENOUGH_MEMORY);
    memcpy(c->meta, data, len);
    c->meta_len = len;
    return 0;
}

static efs_dword on_segment(void *ctx, const efs_segment *s)
{
    posix_ctx *c = ctx;
    if (s->has_extd && (s->extd_flags & EFS_EXT_FLAG_SPARSE))
        return px_ctx_fail(c, "sparse streams cannot be stored in the efs_raw layout",
                        EFS_ERROR_NOT_SUPPORTED);
    /* ntfs-3g (spec 8.3) keeps no valid data length apart from the size and
     * refuses files whose VDL differs: storing one would lose it */
    if (s->encrypted && s->bytes_within_vdl != s->bytes_within_stream_size)
        return px_ctx_fail(c, "a valid data length below the stream size cannot be stored in "
                           "the efs_raw layout", EFS_ERROR_NOT_SUPPORTED);
    return 0;
}

static efs_dword on_data(void *ctx, const uint8_t *data, size_t len)
{
    posix_ctx *c = ctx;
    if (c->opt.null_sink) return 0;
    if (c->cur == CUR_UNNAMED) return px_window_put(c, data, len);
    if (c->cur == CUR_NAMED) return put_named(c, data, len);
    return 0;
}

static efs_dword on_stream_end(void *ctx, uint64_t logical, uint64_t payload)
{
    posix_ctx *c = ctx;
    uint8_t trailer[2];
    int cur = c->cur;
    c->cur = CUR_NONE;
    if (c->opt.null_sink || payload == 0 || (cur != CUR_UNNAMED && cur != CUR_NAMED)) return 0;
    /* ntfs-3g 8.3: the padding count P = R - S follows the ciphertext */
    efs_put16(trailer, (uint16_t)(payload - logical));
    if (cur == CUR_NAMED) return put_named(c, trailer, 2);
    return px_window_flush(c, trailer, 2);  /* the file's data is complete */
}

/* Bytes after the offered capacity; a callback that writes past *ulLength
 * changes them. */
static const uint8_t guard_pattern[EFS_POSIX_GUARD] = {
    0xA5, 0x5A, 0xC3, 0x3C, 0xA5, 0x5A, 0xC3, 0x3C, 0xA5, 0x5A, 0xC3, 0x3C, 0xA5, 0x5A, 0xC3, 0x3C};

efs_dword EFS_WINAPI posix_write(efs_import_func cb, void *cb_context, void *context)
{
    static const efs_handlers handlers = {on_stream_begin, on_metadata, on_segment,
                                          on_data, on_stream_end};
    posix_ctx *c = context;
    efs_parser *parser = NULL;
    uint8_t *window = NULL, *meta_buf = NULL;
    efs_dword rc = 0;
    int is_dir, in_place, kind = VOLUME_OTHER;
    struct stat existing;

    if (!c || !cb) return EFS_ERROR_INVALID_PARAMETER;
    if (!(c->flags & EFS_CREATE_FOR_IMPORT) || c->written)
        return px_ctx_fail(c, "WriteEncryptedFileRaw needs a context opened once for import",
                        EFS_ERROR_INVALID_PARAMETER);
    c->written = 1;
    memset(&c->ferr, 0, sizeof c->ferr);
    c->err_no = 0;
    c->op = NULL;
    is_dir = (c->flags & EFS_CREATE_FOR_DIR) != 0;

    efs_handlers h = handlers;
    if (c->opt.null_sink) h.data = NULL;      /* validate only: no call per payload slice */
    /* the thread's buffers, reused from file to file (efs_scratch.h) */
    if (!(window = efs_scratch_take(EFS_SCRATCH_SYSTEM_BUFFER, px_window_bytes(c))) ||
        !(meta_buf = efs_scratch_take(EFS_SCRATCH_META, EFS_META_MAX)) ||
        !(parser = efs_parser_new(c->opt.mode, &h, c))) {
        rc = px_ctx_fail(c, "malloc", EFS_ERROR_NOT_ENOUGH_MEMORY);
        goto out;
    }
    efs_parser_lend_meta(parser, meta_buf);
    if (!c->opt.null_sink && !px_dir_known_good(c->dir, &c->dir_dev, &kind)) {
        kind = px_volume_kind(c->dir, -1, NULL);
        if (kind == VOLUME_NTFS_NO_EFS_RAW) {
            rc = px_ctx_fail(c, NO_EFS_RAW_IMPORT, EFS_ERROR_NOT_SUPPORTED);
            goto out;
        }
        px_remember_good_dir(c->dir, c->dir_dev, kind);
    }
    if (!c->opt.null_sink) c->volume_kind = kind;
    /* a folder restored over a folder: its $EFS and named streams are applied
     * in place once the stream is complete and valid (commit_in_place) */
    in_place = is_dir && !c->opt.no_replace && !c->opt.null_sink &&
               lstat(c->path, &existing) == 0 && S_ISDIR(existing.st_mode);
    if (!c->opt.null_sink && !in_place && (rc = px_make_temp(c, is_dir))) goto out;
    if (kind == VOLUME_NTFS_EFS_RAW && c->fd >= 0) px_window_direct_io(c);

    c->window = window;
    c->niov = 0;
    c->iov_bytes = 0;
    for (;;) {
        efs_ulong cap = px_next_capacity(c), len = cap;
        uint8_t *buf = px_window_next(c, &rc);
        if (!buf) break;
        memcpy(buf + cap, guard_pattern, EFS_POSIX_GUARD);
        rc = cb(buf, cb_context, &len);
        if (rc) { c->op = "the import callback failed"; break; }
        if (len > cap) {
            rc = px_ctx_fail(c, "the import callback claimed more bytes than offered",
                          EFS_ERROR_INVALID_PARAMETER);
            break;
        }
        if (memcmp(buf + cap, guard_pattern, EFS_POSIX_GUARD) != 0) {
            rc = px_ctx_fail(c, "the import callback wrote past the offered capacity",
                          EFS_ERROR_NOACCESS);
            break;
        }
        if (len == 0) {
            rc = c->opt.unvalidated_copy ? 0 : efs_parser_finish(parser);
            break;
        }
        if (c->opt.unvalidated_copy)
            rc = c->opt.null_sink ? 0 : px_window_put(c, buf, len);
        else
            rc = efs_parser_feed(parser, buf, len);
        if (rc) break;
        px_window_took(c, len);
    }
    if (rc && efs_parser_error(parser)->rule) c->ferr = *efs_parser_error(parser);
    if (!rc) rc = in_place ? px_commit_in_place(c) : px_commit(c);
out:
    if (rc) px_discard_temp(c);
    efs_parser_free(parser);
    efs_scratch_put(EFS_SCRATCH_META, meta_buf);
    px_free_import_state(c);
    c->window = NULL;
    efs_scratch_put(EFS_SCRATCH_SYSTEM_BUFFER, window);
    return rc;
}

#endif /* !_WIN32 */

/* ISO C wants a non-empty translation unit on the other platform. */
typedef int efs_posix_import_unit;
