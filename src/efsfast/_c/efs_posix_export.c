/*
 * efs_posix_export.c -- ReadEncryptedFileRaw on the POSIX side: the efs_raw
 * layout read back (one descriptor, one getxattr, one listxattr) and emitted
 * as the Windows raw stream through the export callback.
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
#include <sys/uio.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "efs_posix_dir.h"
#include "efs_posix_internal.h"
#include "efs_scratch.h"

/* ---- export ---- */

typedef struct export_out {
    posix_ctx *c;
    efs_export_func cb;
    void *cb_context;
    uint8_t *buf;
    uint32_t cap, len;
} export_out;

static efs_dword push_block(export_out *o)
{
    efs_dword rc;
    if (o->len == 0) return 0;
    rc = o->cb(o->buf, o->cb_context, o->len);
    o->len = 0;
    o->cap = px_next_capacity(o->c);
    if (rc) o->c->op = "the export callback failed";
    return rc;
}

static efs_dword emit_block(void *ctx, const uint8_t *data, size_t n)
{
    export_out *o = ctx;
    efs_dword rc;
    while (n > 0) {
        size_t k = o->cap - o->len;
        if (k > n) k = n;
        memcpy(o->buf + o->len, data, k);
        o->len += (uint32_t)k;
        data += k;
        n -= k;
        if (o->len == o->cap && (rc = push_block(o))) return rc;
    }
    return 0;
}

typedef struct fd_source { posix_ctx *c; int fd; } fd_source;

static efs_dword fill_fd(void *ctx, uint8_t *dst, size_t len, uint64_t off)
{
    fd_source *s = ctx;
    while (len > 0) {
        ssize_t r = px_fault(s->c, EFS_FAULT_READ) ? -1 : pread(s->fd, dst, len, (off_t)off);
        if (r < 0) {
            if (errno == EINTR) continue;
            return px_sys_fail(s->c, "pread", errno);
        }
        if (r == 0) return px_ctx_fail(s->c, "the file shrank while it was read", EFS_ERROR_HANDLE_EOF);
        dst += r;
        off += (uint64_t)r;
        len -= (size_t)r;
    }
    return 0;
}

/* The 2-byte padding count at the end of an efs_raw file of t bytes.
 *
 * ntfs-3g (seen with 2022.10.3) fails a read that *starts* at the trailer
 * when the ciphertext ends on a cluster boundary and that cluster's runlist
 * is not mapped yet: the FUSE request for the page holding only the trailer
 * gets EIO.  Such a read is retried with O_DIRECT over a window that starts
 * inside the last cluster, which ntfs-3g serves correctly. */
static efs_dword read_trailer(posix_ctx *c, int fd, uint64_t t, uint8_t out[2])
{
    fd_source src = {c, fd};
    efs_dword rc = fill_fd(&src, out, 2, t - 2);
#ifdef O_DIRECT
    if (rc && c->err_no == EIO && t > 2) {
        uint64_t start = (t - 3) & ~(uint64_t)4095;
        void *buf = NULL;
        int dfd = open(c->path, O_RDONLY | O_DIRECT | O_CLOEXEC);
        if (dfd >= 0 && posix_memalign(&buf, 4096, 8192) == 0) {
            ssize_t r = pread(dfd, buf, 8192, (off_t)start);
            if (r >= 0 && (uint64_t)r == t - start) {
                memcpy(out, (uint8_t *)buf + (t - 2 - start), 2);
                rc = 0;
                c->err_no = 0;
                c->op = NULL;
            }
        }
        free(buf);
        if (dfd >= 0) close(dfd);
    }
#endif
    return rc;
}

typedef struct mem_source { const uint8_t *p; size_t len; } mem_source;

static efs_dword fill_mem(void *ctx, uint8_t *dst, size_t len, uint64_t off)
{
    mem_source *s = ctx;
    if (off > s->len || len > s->len - off) return EFS_ERROR_HANDLE_EOF;
    memcpy(dst, s->p + off, len);
    return 0;
}

/* Split an efs_raw value of T bytes into ciphertext length R and logical
 * size S (ntfs-3g 8.3/8.4): T = 0, or T = R + 2 with R a multiple of 512 and
 * the trailer P = R - S in 0..511. */
static efs_dword split_trailer(posix_ctx *c, uint64_t t, const uint8_t trailer[2], uint64_t *size)
{
    if (t == 0) { *size = 0; return 0; }
    uint16_t p = efs_get16(trailer);
    if (t % EFS_BLOCK_ALIGN != 2 || p >= EFS_BLOCK_ALIGN || p > t - 2)
        return px_ctx_fail(c, "not in the efs_raw layout (size mod 512 != 2, or a bad padding count)",
                        EFS_ERROR_INVALID_DATA);
    *size = t - 2 - p;
    return 0;
}

static efs_dword export_named(posix_ctx *c, export_out *o, int fd, unsigned shift)
{
    /* one flistxattr into a buffer of the VFS maximum (XATTR_LIST_MAX), not a
     * size query first: on FUSE every call is a round trip to the daemon */
    uint8_t *list = efs_scratch_take(EFS_SCRATCH_XATTR_LIST, XATTR_LIST_MAX_BYTES);
    uint8_t *value = efs_scratch_take(EFS_SCRATCH_XATTR_VALUE, XATTR_VALUE_MAX);
    efs_dword rc = 0;
    ssize_t n;

    if (!list || !value) {
        rc = px_ctx_fail(c, "malloc", EFS_ERROR_NOT_ENOUGH_MEMORY);
        goto out;
    }
    if ((n = flistxattr(fd, (char *)list, XATTR_LIST_MAX_BYTES)) < 0) {
        rc = errno == ENOTSUP ? 0 : px_sys_fail(c, "listxattr", errno);
        goto out;
    }
    /* the order the file system lists them in: NTFS keeps attributes in its
     * collation order, which is what Windows exports (spec 7.7); ext4 keeps
     * the order they were set in, which is the restored stream's order */
    for (char *p = (char *)list; p < (char *)list + n && !rc; p += strlen(p) + 1) {
        uint8_t u16[EFS_STREAM_NAME_MAX + 16];
        uint64_t size;
        long ul;
        ssize_t t;
        if (strncmp(p, XATTR_PREFIX, sizeof XATTR_PREFIX - 1) != 0 || strcmp(p, EFSINFO_XATTR) == 0)
            continue;
        if ((t = fgetxattr(fd, p, value, XATTR_VALUE_MAX)) < 0) {
            rc = px_sys_fail(c, "getxattr (named stream)", errno);
            break;
        }
        u16[0] = ':'; u16[1] = 0;
        ul = px_utf8_to_utf16(p + sizeof XATTR_PREFIX - 1, u16 + 2, EFS_STREAM_NAME_MAX - 14);
        if (ul <= 0) { rc = px_ctx_fail(c, "an xattr name is not valid UTF-8", EFS_ERROR_INVALID_DATA); break; }
        memcpy(u16 + 2 + ul, EFS_UNNAMED_NAME + 2, 12);        /* ":$DATA" */
        if ((rc = split_trailer(c, (uint64_t)t, value + (t >= 2 ? t - 2 : 0), &size))) break;
        mem_source src = {value, (size_t)t};
        rc = efs_emit_data_stream(emit_block, o, u16, (uint32_t)(ul + 14), 1, size, shift,
                                  fill_mem, &src);
    }
out:
    efs_scratch_put(EFS_SCRATCH_XATTR_VALUE, value);
    efs_scratch_put(EFS_SCRATCH_XATTR_LIST, list);
    return rc;
}

/* The cluster size (the encryption headers' cluster shift) of the file
 * system holding fd, from fstatvfs once per file system and thread: a tree
 * backup asks for every file, and on FUSE each statfs is a round trip. */
static unsigned cluster_shift_of(posix_ctx *c, int fd, const struct stat *st)
{
    static _Thread_local dev_t cached_dev;
    static _Thread_local unsigned cached_shift;
    struct statvfs vs;
    unsigned shift = EFS_DEFAULT_CLUSTER_SHIFT;
    if (c->opt.cluster_shift) return c->opt.cluster_shift;
    if (cached_shift && cached_dev == st->st_dev) return cached_shift;
    if (fstatvfs(fd, &vs) == 0)
        for (unsigned s = 9; s <= 21; s++)
            if (((unsigned long)1 << s) == vs.f_bsize) shift = s;
    cached_dev = st->st_dev;
    cached_shift = shift;
    return shift;
}

/* The unnamed stream of a file whose efs_raw value (ciphertext + trailer)
 * is t bytes.  A file up to SMALL_FILE bytes is read whole with one pread
 * from its start (one FUSE read request, and never a read that starts at the
 * trailer); a larger one streams, its trailer read first. */
static efs_dword export_unnamed(posix_ctx *c, export_out *o, int fd, uint64_t t, unsigned shift)
{
    uint8_t trailer[2] = {0, 0};
    uint64_t size;
    efs_dword rc;
    fd_source src = {c, fd};
    if (t > 0 && t <= SMALL_FILE) {
        uint8_t *whole = efs_scratch_take(EFS_SCRATCH_FILE, (size_t)t);
        if (!whole) return px_ctx_fail(c, "malloc", EFS_ERROR_NOT_ENOUGH_MEMORY);
        rc = fill_fd(&src, whole, (size_t)t, 0);
        if (!rc && !(rc = split_trailer(c, t, whole + t - 2 * (t >= 2), &size))) {
            mem_source mem = {whole, (size_t)t};
            rc = efs_emit_data_stream(emit_block, o, EFS_UNNAMED_NAME, sizeof EFS_UNNAMED_NAME,
                                      1, size, shift, fill_mem, &mem);
        }
        efs_scratch_put(EFS_SCRATCH_FILE, whole);
        /* EIO: perhaps ntfs-3g's trailer bug (read_trailer), if the kernel cut
         * the read so that a request starts at the trailer; nothing was
         * emitted yet, so take the streaming path, which works around it */
        if (!(rc && c->err_no == EIO)) return rc;
        c->err_no = 0;
        c->op = NULL;
    }
    if (t >= 2 && (rc = read_trailer(c, fd, t, trailer))) return rc;
    if ((rc = split_trailer(c, t, trailer, &size))) return rc;
    return efs_emit_data_stream(emit_block, o, EFS_UNNAMED_NAME, sizeof EFS_UNNAMED_NAME,
                                1, size, shift, fill_fd, &src);
}

/* Where the one metadata segment's data starts in an exported stream: the
 * raw header, the metadata stream header (name 10 19), the segment header. */
#define EXPORT_META_OFFSET (EFS_RAW_HDR_LEN + EFS_STREAM_HDR_FIXED + 2 + EFS_SEG_HDR_LEN)

/* What a backup produces, a restore in the same mode must accept: the $EFS
 * is checked against R10-R12 before anything is emitted (the data streams
 * are laid out by the writer, valid by construction).  When strict mode
 * refuses what compatible mode accepts, the detail says so. */
static efs_dword check_stored_metadata(posix_ctx *c, const uint8_t *meta, size_t len)
{
    efs_meta_info info;
    efs_error other;
    if (efs_meta_parse(meta, len, c->opt.mode, &info, NULL, NULL, NULL, NULL,
                       EXPORT_META_OFFSET, &c->ferr) == 0)
        return 0;
    if (c->opt.mode == EFS_MODE_STRICT &&
        efs_meta_parse(meta, len, EFS_MODE_COMPATIBLE, &info, NULL, NULL, NULL, NULL,
                       EXPORT_META_OFFSET, &other) == 0) {
        snprintf(c->ferr_detail, sizeof c->ferr_detail, "%s in the stored $EFS; compatible "
                 "mode accepts it (back up, verify and restore with --mode compatible)",
                 c->ferr.detail ? c->ferr.detail : "a strict rule is broken");
    } else {
        snprintf(c->ferr_detail, sizeof c->ferr_detail, "%s in the stored $EFS",
                 c->ferr.detail ? c->ferr.detail : "a rule is broken");
    }
    c->ferr.detail = c->ferr_detail;
    return c->ferr.winerror ? c->ferr.winerror : EFS_ERROR_INVALID_DATA;
}

/* The object's $EFS (user.ntfs.efsinfo) into c->meta: one fgetxattr into a
 * buffer of the VFS maximum (no size query first), then a copy of its size
 * kept for the export.  A file without it is not encrypted; on an ntfs-3g
 * volume without efs_raw an encrypted one looks the same, and is told
 * apart by its attributes (spec 8.1). */
static efs_dword load_efs(posix_ctx *c)
{
    uint8_t *value;
    ssize_t n;
    efs_dword rc = 0;

    if (c->meta) return 0;
    if (!(value = efs_scratch_take(EFS_SCRATCH_XATTR_VALUE, XATTR_VALUE_MAX)))
        return px_ctx_fail(c, "malloc", EFS_ERROR_NOT_ENOUGH_MEMORY);
    if ((n = fgetxattr(c->fd, EFSINFO_XATTR, value, XATTR_VALUE_MAX)) < 0) {
        uint32_t attrib = 0;
        if (errno != ENODATA && errno != ENOTSUP)
            rc = px_sys_fail(c, "getxattr (user.ntfs.efsinfo)", errno);
        else if (px_volume_kind(NULL, c->fd, &attrib) == VOLUME_NTFS_NO_EFS_RAW &&
                 (attrib & NTFS_ATTR_ENCRYPTED))
            rc = px_ctx_fail(c, NO_EFS_RAW_EXPORT, EFS_ERROR_NOT_SUPPORTED);
        else
            rc = px_ctx_fail(c, "the file is not encrypted (it has no user.ntfs.efsinfo)",
                             EFS_ERROR_FILE_NOT_ENCRYPTED);
    } else if (n == 0) {
        rc = px_ctx_fail(c, "user.ntfs.efsinfo is empty", EFS_ERROR_INVALID_DATA);
    } else if (!(c->meta = malloc((size_t)n))) {
        rc = px_ctx_fail(c, "malloc", EFS_ERROR_NOT_ENOUGH_MEMORY);
    } else {
        memcpy(c->meta, value, (size_t)n);
        c->meta_len = (size_t)n;
    }
    efs_scratch_put(EFS_SCRATCH_XATTR_VALUE, value);
    return rc;
}

static void clear_error(posix_ctx *c)
{
    memset(&c->ferr, 0, sizeof c->ferr);
    c->err_no = 0;
    c->op = NULL;
}

static efs_dword export_context(const posix_ctx *c)
{
    if (!c) return EFS_ERROR_INVALID_PARAMETER;
    if (c->flags & EFS_CREATE_FOR_IMPORT) return EFS_ERROR_INVALID_PARAMETER;
    return 0;
}

efs_dword EFS_WINAPI posix_read(efs_export_func cb, void *cb_context, void *context)
{
    posix_ctx *c = context;
    export_out o;
    efs_dword rc;
    unsigned shift;

    if (!c || !cb) return EFS_ERROR_INVALID_PARAMETER;
    if (export_context(c))
        return px_ctx_fail(c, "ReadEncryptedFileRaw needs a context opened for export",
                        EFS_ERROR_INVALID_PARAMETER);
    clear_error(c);
    memset(&o, 0, sizeof o);
    o.c = c;
    o.cb = cb;
    o.cb_context = cb_context;
    o.cap = px_next_capacity(c);
    if (!(o.buf = efs_scratch_take(EFS_SCRATCH_EXPORT_BUFFER, c->opt.buffer_size))) {
        rc = px_ctx_fail(c, "malloc", EFS_ERROR_NOT_ENOUGH_MEMORY);
        goto out;
    }
    /* everything through the descriptor opened with the context; the $EFS
     * may have been read already (efs_posix_load_efs, for a backup set) */
    if ((rc = load_efs(c)) || (rc = check_stored_metadata(c, c->meta, c->meta_len))) goto out;
    shift = cluster_shift_of(c, c->fd, &c->st);
    if ((rc = efs_emit_raw_header(emit_block, &o)) ||
        (rc = efs_emit_metadata_stream(emit_block, &o, c->meta, c->meta_len)))
        goto out;
    if (!S_ISDIR(c->st.st_mode) &&
        (rc = export_unnamed(c, &o, c->fd, (uint64_t)c->st.st_size, shift)))
        goto out;
    if ((rc = export_named(c, &o, c->fd, shift))) goto out;
    rc = push_block(&o);
out:
    efs_scratch_put(EFS_SCRATCH_EXPORT_BUFFER, o.buf);
    return rc;
}

/* ---- what a backup set records besides the stream ----
 *
 * Read through the export context's descriptor, so that a backup set costs
 * no second path lookup per object: on FUSE (ntfs-3g) every call is a round
 * trip to a single-threaded daemon. */

efs_dword efs_posix_get_object_stat(const void *context, efs_posix_object_stat *out)
{
    const posix_ctx *c = context;
    efs_dword rc = export_context(c);
    if (rc || !out) return rc ? rc : EFS_ERROR_INVALID_PARAMETER;
    out->size = (uint64_t)c->st.st_size;
    out->mode = (uint32_t)c->st.st_mode;
    out->atime_ns = (int64_t)c->st.st_atim.tv_sec * 1000000000 + c->st.st_atim.tv_nsec;
    out->mtime_ns = (int64_t)c->st.st_mtim.tv_sec * 1000000000 + c->st.st_mtim.tv_nsec;
    out->ctime_ns = (int64_t)c->st.st_ctim.tv_sec * 1000000000 + c->st.st_ctim.tv_nsec;
    return 0;
}

long efs_posix_object_xattr(void *context, const char *name, uint8_t *buf, size_t cap, int *err)
{
    posix_ctx *c = context;
    ssize_t n;
    *err = 0;
    if (export_context(c) || !name) { *err = EINVAL; return -1; }
    do n = fgetxattr(c->fd, name, buf, cap); while (n < 0 && errno == EINTR);
    if (n < 0) *err = errno;
    return (long)n;
}

efs_dword efs_posix_load_efs(void *context, const uint8_t **data, size_t *len)
{
    posix_ctx *c = context;
    efs_dword rc = export_context(c);
    if (rc) return rc;
    clear_error(c);
    if ((rc = load_efs(c))) return rc;
    *data = c->meta;
    *len = c->meta_len;
    return 0;
}

#endif /* !_WIN32 */

/* ISO C wants a non-empty translation unit on the other platform. */
typedef int efs_posix_export_unit;
