/*
 * efs_posix.c -- the POSIX system side: OpenEncryptedFileRaw,
 * ReadEncryptedFileRaw, WriteEncryptedFileRaw and CloseEncryptedFileRaw,
 * honouring the documented contract (MS-EFSR 3.1.4.2, PFE_IMPORT_FUNC /
 * PFE_EXPORT_FUNC), over the layout ntfs-3g uses with -o efs_raw (spec 8):
 *
 *   unnamed stream  file content: ciphertext (round512(S) bytes), then the
 *                   padding count P = round512(S) - S as u16 LE; empty: nothing
 *   named stream X  the same bytes in the xattr "user.X"
 *   $EFS            the xattr "user.ntfs.efsinfo", set last
 *
 * On an ntfs-3g efs_raw mount this makes genuine EFS files; elsewhere it is a
 * faithful store of the same bytes.  A restore writes under a temporary name
 * in the destination directory and renames only once the stream is complete
 * and valid, so no partial file is ever visible.  No global state.
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

#include "efs_backend.h"
#include "efs_io.h"
#include "efs_layout.h"
#include "efs_posix_dir.h"
#include "efs_scratch.h"

#define EFSINFO_XATTR "user.ntfs.efsinfo"
#define NTFS_ATTRIB_XATTR "system.ntfs_attrib"     /* ntfs-3g, any mount: u32 LE */
#define NTFS_EFSINFO_XATTR "system.ntfs_efsinfo"   /* ntfs-3g: EPERM without efs_raw */
#define NTFS_ATTR_ENCRYPTED 0x4000u                /* FILE_ATTRIBUTE_ENCRYPTED */
#define XATTR_PREFIX "user."
#define XATTR_VALUE_MAX 65536u          /* Linux VFS limit (XATTR_SIZE_MAX) */
#define XATTR_LIST_MAX_BYTES 65536u     /* Linux VFS limit (XATTR_LIST_MAX) */
#define SMALL_FILE (1u << 20)           /* export: read whole up to this size */
#define WRITE_STAGE (1u << 20)
#define IOV_SLICES 16
#define PAGE_ALIGN 4096u
#define DIRECT_WRITE (32u << 10)
#define DEFAULT_BUFFER 65536u

enum { CUR_NONE, CUR_META, CUR_UNNAMED, CUR_NAMED, CUR_SKIP };

typedef efs_named_value named_stream;

typedef struct posix_ctx {
    char *path;
    char *dir;
    char *base;
    efs_ulong flags;
    efs_posix_options opt;
    int written;
    uint64_t rng;

    efs_error ferr;
    char ferr_detail[256];          /* a detail built here (ferr.detail may point at it) */
    char op_buf[384];               /* an operation described here (op may point at it) */
    int err_no;
    const char *op;

    /* import */
    int fd;
    int anonymous;           /* fd is an O_TMPFILE: no name until linkat */
    struct stat st;          /* export: the object, as opened */
    char *tmp;
    uint8_t *stage;
    size_t staged;
    struct iovec iov[IOV_SLICES];   /* slices of the current system buffer */
    int niov;
    size_t iov_bytes;
    uint64_t file_bytes;            /* bytes of the file written so far */
    int cur;
    named_stream *named;
    size_t nnamed, named_cap;
    uint8_t *meta;
    size_t meta_len;
} posix_ctx;

/* ---- errors ---- */

/* Record a failed system call; returns the Win32 code. */
static efs_dword sys_fail(posix_ctx *c, const char *op, int e)
{
    c->err_no = e;
    c->op = op;
    return efs_win32_from_errno(e);
}

/* Tests: 1 (with errno set) when the system call at `point` is to fail. */
static int fault(const posix_ctx *c, int point)
{
    if (c->opt.fault_point != point) return 0;
    errno = c->opt.fault_errno ? c->opt.fault_errno : EIO;
    return 1;
}

static efs_dword ctx_fail(posix_ctx *c, const char *op, efs_dword code)
{
    c->err_no = 0;
    c->op = op;
    return code;
}

/* ---- helpers ---- */

static char *dup_range(const char *s, size_t n)
{
    char *r = malloc(n + 1);
    if (r) { memcpy(r, s, n); r[n] = 0; }
    return r;
}

static uint64_t next_random(posix_ctx *c)
{
    /* xorshift64*: a seeded, reproducible buffer schedule for tests */
    uint64_t x = c->rng;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    c->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static uint32_t next_capacity(posix_ctx *c)
{
    uint32_t lo = c->opt.min_size, hi = c->opt.buffer_size;
    if (!c->opt.seed || lo >= hi) return hi;
    return lo + (uint32_t)(next_random(c) % ((uint64_t)hi - lo + 1));
}

/* UTF-16LE (no NUL) -> UTF-8; returns the length or -1 when ill-formed. */
static long utf16_to_utf8(const uint8_t *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        uint32_t u = efs_get16(s + i);
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (i + 3 >= n) return -1;
            uint32_t lo = efs_get16(s + i + 2);
            if (lo < 0xDC00 || lo > 0xDFFF) return -1;
            u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            i += 2;
        } else if (u >= 0xDC00 && u <= 0xDFFF) {
            return -1;
        }
        uint8_t b[4];
        size_t k;
        if (u < 0x80) { b[0] = (uint8_t)u; k = 1; }
        else if (u < 0x800) { b[0] = (uint8_t)(0xC0 | (u >> 6)); b[1] = (uint8_t)(0x80 | (u & 0x3F)); k = 2; }
        else if (u < 0x10000) {
            b[0] = (uint8_t)(0xE0 | (u >> 12)); b[1] = (uint8_t)(0x80 | ((u >> 6) & 0x3F));
            b[2] = (uint8_t)(0x80 | (u & 0x3F)); k = 3;
        } else {
            b[0] = (uint8_t)(0xF0 | (u >> 18)); b[1] = (uint8_t)(0x80 | ((u >> 12) & 0x3F));
            b[2] = (uint8_t)(0x80 | ((u >> 6) & 0x3F)); b[3] = (uint8_t)(0x80 | (u & 0x3F)); k = 4;
        }
        if (o + k >= cap) return -1;
        memcpy(out + o, b, k);
        o += k;
    }
    out[o] = 0;
    return (long)o;
}

/* UTF-8 -> UTF-16LE; returns the byte length or -1 when ill-formed. */
static long utf8_to_utf16(const char *s, uint8_t *out, size_t cap)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t u;
        int k;
        if (*p < 0x80) { u = *p; k = 0; }
        else if ((*p & 0xE0) == 0xC0) { u = *p & 0x1F; k = 1; }
        else if ((*p & 0xF0) == 0xE0) { u = *p & 0x0F; k = 2; }
        else if ((*p & 0xF8) == 0xF0) { u = *p & 0x07; k = 3; }
        else return -1;
        p++;
        for (int i = 0; i < k; i++, p++) {
            if ((*p & 0xC0) != 0x80) return -1;
            u = (u << 6) | (*p & 0x3F);
        }
        if (u >= 0xD800 && u <= 0xDFFF) return -1;
        if (u >= 0x10000) {
            if (u > 0x10FFFF || o + 4 > cap) return -1;
            u -= 0x10000;
            efs_put16(out + o, (uint16_t)(0xD800 + (u >> 10)));
            efs_put16(out + o + 2, (uint16_t)(0xDC00 + (u & 0x3FF)));
            o += 4;
        } else {
            if (o + 2 > cap) return -1;
            efs_put16(out + o, (uint16_t)u);
            o += 2;
        }
    }
    return (long)o;
}

/* ---- ntfs-3g without efs_raw ---- */

enum { VOLUME_OTHER, VOLUME_NTFS_EFS_RAW, VOLUME_NTFS_NO_EFS_RAW };

/* ntfs-3g shows the NTFS attributes as system.ntfs_attrib on every mount;
 * without -o efs_raw it refuses system.ntfs_efsinfo with EPERM on every
 * inode (spec 8.1) and user.ntfs.efsinfo is then just a named stream, so the
 * efs_raw layout written there would be plain files holding ciphertext. */
static int volume_kind(const char *path, int fd, uint32_t *attrib)
{
    uint8_t v[4];
    ssize_t n = fd >= 0 ? fgetxattr(fd, NTFS_ATTRIB_XATTR, v, sizeof v)
                        : getxattr(path, NTFS_ATTRIB_XATTR, v, sizeof v);
    if (n != (ssize_t)sizeof v) return VOLUME_OTHER;
    if (attrib) *attrib = efs_get32(v);
    n = fd >= 0 ? fgetxattr(fd, NTFS_EFSINFO_XATTR, NULL, 0)
                : getxattr(path, NTFS_EFSINFO_XATTR, NULL, 0);
    return n < 0 && errno == EPERM ? VOLUME_NTFS_NO_EFS_RAW : VOLUME_NTFS_EFS_RAW;
}

#define NO_EFS_RAW_IMPORT "the NTFS volume is not mounted with -o efs_raw: the file would be " \
    "stored as plain data, not encrypted (mount it with ntfs-3g -o efs_raw)"
#define NO_EFS_RAW_EXPORT "the file is encrypted, but the NTFS volume is not mounted with " \
    "-o efs_raw, so its raw ciphertext cannot be read (mount it with ntfs-3g -o efs_raw)"

/* The folder this thread last found not to be on an NTFS volume without
 * efs_raw, by a hash of its path: a tree restore puts many files in one
 * folder, and on FUSE each probe is two requests to the daemon.  Skipping
 * the probe only skips an early, clearer error: check_marked_encrypted still
 * refuses to publish an object that did not come out encrypted. */
static _Thread_local uint64_t good_dir_hash;
static _Thread_local size_t good_dir_len;

static uint64_t path_hash(const char *p, size_t *len)
{
    uint64_t h = 1469598103934665603ull;            /* FNV-1a */
    size_t n = 0;
    for (; p[n]; n++) h = (h ^ (uint8_t)p[n]) * 1099511628211ull;
    *len = n;
    return h;
}

static int dir_known_good(const char *dir)
{
    size_t n;
    uint64_t h = path_hash(dir, &n);
    return good_dir_len == n && good_dir_hash == h;
}

static void remember_good_dir(const char *dir)
{
    good_dir_hash = path_hash(dir, &good_dir_len);
}

/* After $EFS is set: on NTFS the object must now carry the ENCRYPTED
 * attribute, or it would be published as a plain one. */
static efs_dword check_marked_encrypted(posix_ctx *c, const char *path, int fd)
{
    /* the attributes alone answer it (one request to the FUSE daemon, per
     * restored object): absent off NTFS, ENCRYPTED set where efs_raw worked */
    uint8_t v[4];
    ssize_t n = fd >= 0 ? fgetxattr(fd, NTFS_ATTRIB_XATTR, v, sizeof v)
                        : getxattr(path, NTFS_ATTRIB_XATTR, v, sizeof v);
    if (n != (ssize_t)sizeof v || (efs_get32(v) & NTFS_ATTR_ENCRYPTED))
        return 0;
    return ctx_fail(c, "ntfs-3g did not mark the object encrypted after $EFS was set "
                       "(is the volume mounted with -o efs_raw?)", EFS_ERROR_NOT_SUPPORTED);
}

/* ---- open / close ---- */

void efs_posix_default_options(efs_posix_options *o)
{
    memset(o, 0, sizeof *o);
    o->buffer_size = DEFAULT_BUFFER;
    o->min_size = 1;
    o->mode = EFS_MODE_STRICT;
}

efs_dword efs_posix_set_options(void *context, const efs_posix_options *o)
{
    posix_ctx *c = context;
    if (!c || !o || o->buffer_size == 0 || o->min_size == 0 || o->min_size > o->buffer_size ||
        o->buffer_size > (1u << 30) ||
        (o->cluster_shift && (o->cluster_shift < 9 || o->cluster_shift > 21)))
        return EFS_ERROR_INVALID_PARAMETER;
    c->opt = *o;
    c->rng = o->seed ? o->seed : 1;
    return 0;
}

static void EFS_WINAPI posix_close(void *context);

efs_dword efs_posix_open_ex(const char *path, efs_ulong flags,
                            const efs_posix_options *o, void **context)
{
    posix_ctx *c;
    const char *slash;
    struct stat st;
    efs_posix_options defaults;
    efs_dword rc = 0;

    if (!context) return EFS_ERROR_INVALID_PARAMETER;
    *context = NULL;
    if (!path || !*path) return EFS_ERROR_INVALID_PARAMETER;
    if (!o) { efs_posix_default_options(&defaults); o = &defaults; }
    if (!(c = calloc(1, sizeof *c))) return EFS_ERROR_NOT_ENOUGH_MEMORY;
    c->fd = -1;
    c->flags = flags;
    slash = strrchr(path, '/');
    c->path = strdup(path);
    c->dir = slash ? (slash == path ? strdup("/") : dup_range(path, (size_t)(slash - path)))
                   : strdup(".");
    c->base = strdup(slash ? slash + 1 : path);
    if (!c->path || !c->dir || !c->base)
        rc = EFS_ERROR_NOT_ENOUGH_MEMORY;
    else if (!*c->base || efs_posix_set_options(c, o))    /* "dir/" names nothing */
        rc = EFS_ERROR_INVALID_PARAMETER;
    else if (flags & EFS_CREATE_FOR_IMPORT) {
        if (stat(c->dir, &st) != 0)
            rc = errno == ENOENT ? EFS_ERROR_PATH_NOT_FOUND : efs_win32_from_errno(errno);
        else if (!S_ISDIR(st.st_mode))
            rc = EFS_ERROR_PATH_NOT_FOUND;
    } else if ((c->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(c->fd, &c->st) != 0) {
        /* export: the object is opened here, as Windows opens it, and read
         * through this descriptor (no second path lookup on FUSE) */
        rc = errno == ENOENT ? EFS_ERROR_FILE_NOT_FOUND : efs_win32_from_errno(errno);
    } else if ((flags & EFS_CREATE_FOR_DIR) && !S_ISDIR(c->st.st_mode)) {
        /* MS-EFSR 3.1.4.2.1: exporting with CREATE_FOR_DIR fails on a non-directory */
        rc = EFS_ERROR_DIRECTORY;
    }
    if (rc) {
        posix_close(c);
        return rc;
    }
    *context = c;
    return 0;
}

static efs_dword EFS_WINAPI posix_open(const efs_path_char *path, efs_ulong flags, void **context)
{
    return efs_posix_open_ex(path, flags, NULL, context);
}

static void free_import_state(posix_ctx *c)
{
    for (size_t i = 0; i < c->nnamed; i++) {
        free(c->named[i].xname);
        free(c->named[i].data);
    }
    free(c->named);
    c->named = NULL;
    c->nnamed = c->named_cap = 0;
    free(c->meta);
    c->meta = NULL;
    c->meta_len = 0;
    efs_scratch_put(EFS_SCRATCH_STAGE, c->stage);
    c->stage = NULL;
    c->staged = 0;
}

static void EFS_WINAPI posix_close(void *context)
{
    posix_ctx *c = context;
    if (!c) return;
    free_import_state(c);
    if (c->fd >= 0) close(c->fd);       /* export's descriptor (import closes its own) */
    free(c->tmp);
    free(c->path);
    free(c->dir);
    free(c->base);
    free(c);
}

const efs_error *efs_posix_last_format_error(const void *context)
{
    return &((const posix_ctx *)context)->ferr;
}
int efs_posix_last_errno(const void *context) { return ((const posix_ctx *)context)->err_no; }
const char *efs_posix_last_operation(const void *context) { return ((const posix_ctx *)context)->op; }

/* ---- import: the temporary object ---- */

static efs_dword make_temp(posix_ctx *c, int is_dir)
{
    size_t n = strlen(c->dir) + 40;
    struct timespec ts;
#ifdef O_TMPFILE
    /* Where the file system has them (tmpfs, ext4, xfs, btrfs; not FUSE), a
     * no-replace restore writes into an unnamed file and links it in once
     * complete: it never has a temporary name, vanishes by itself if the
     * process dies, and needs one directory operation instead of two. */
    if (!is_dir && c->opt.no_replace) {
        if (fault(c, EFS_FAULT_CREATE)) return sys_fail(c, "open", errno);
        c->fd = open(c->dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
        if (c->fd >= 0) {
            c->anonymous = 1;
            return 0;
        }
    }
#endif
    if (!(c->tmp = malloc(n))) return EFS_ERROR_NOT_ENOUGH_MEMORY;
    for (int attempt = 0; attempt < 100; attempt++) {
        clock_gettime(CLOCK_REALTIME, &ts);
        c->rng ^= (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)c;
        /* a fixed-length name (29 bytes), not derived from the destination's:
         * any name the file system accepts can be restored, whatever its
         * length or encoding (ntfs-3g counts UTF-16 units, not bytes) */
        snprintf(c->tmp, n, "%s/.efsfast-%016llx.tmp", c->dir,
                 (unsigned long long)next_random(c));
        /* 0666/0777 and the umask: the raw stream carries no ACL or mode */
        if (fault(c, EFS_FAULT_CREATE)) {
            efs_dword rc = sys_fail(c, is_dir ? "mkdir" : "open", errno);
            free(c->tmp);
            c->tmp = NULL;
            return rc;
        }
        if (is_dir ? mkdir(c->tmp, 0777) == 0
                   : (c->fd = open(c->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666)) >= 0)
            return 0;
        if (errno != EEXIST) {
            efs_dword rc = sys_fail(c, is_dir ? "mkdir" : "open", errno);
            free(c->tmp);
            c->tmp = NULL;
            return rc;
        }
    }
    free(c->tmp);
    c->tmp = NULL;
    return sys_fail(c, "create a temporary name", EEXIST);
}

static void discard_temp(posix_ctx *c)
{
    if (c->fd >= 0) { close(c->fd); c->fd = -1; }   /* an O_TMPFILE vanishes here */
    c->anonymous = 0;
    if (c->tmp) {
        if (c->flags & EFS_CREATE_FOR_DIR) rmdir(c->tmp);
        else unlink(c->tmp);
        free(c->tmp);
        c->tmp = NULL;
    }
}

static efs_dword write_all(posix_ctx *c, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = fault(c, EFS_FAULT_WRITE) ? -1 : write(c->fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return sys_fail(c, "write", errno);
        }
        p += w;
        n -= (size_t)w;
        c->file_bytes += (uint64_t)w;
    }
    return 0;
}

static efs_dword flush_stage(posix_ctx *c)
{
    efs_dword rc = c->staged ? write_all(c, c->stage, c->staged) : 0;
    c->staged = 0;
    return rc;
}

static efs_dword stage_bytes(posix_ctx *c, const uint8_t *p, size_t n)
{
    efs_dword rc;
    if (c->staged + n > WRITE_STAGE && (rc = flush_stage(c))) return rc;
    if (n >= WRITE_STAGE) return write_all(c, p, n);
    memcpy(c->stage + c->staged, p, n);
    c->staged += n;
    return 0;
}

/* Ciphertext arrives in slices as the system buffers and segment headers cut
 * it.  The slices of one system buffer are noted as they are parsed and,
 * before the buffer is handed back, written with one writev straight from it
 * when they add up to 32 KiB or more (no second copy), cut so the write ends
 * on a page boundary (a file system handles whole pages fastest); the cut-off
 * tail and smaller amounts are gathered in the stage for the next write. */
static efs_dword flush_slices(posix_ctx *c)
{
    struct iovec v[IOV_SLICES + 1];
    efs_dword rc = 0;
    int n = 0;
    size_t total = c->staged + c->iov_bytes, keep, len = 0;

    if (c->niov == 0) return 0;
    if (c->iov_bytes < DIRECT_WRITE) {
        for (int i = 0; i < c->niov && rc == 0; i++)
            rc = stage_bytes(c, c->iov[i].iov_base, c->iov[i].iov_len);
        c->niov = 0;
        c->iov_bytes = 0;
        return rc;
    }
    keep = (size_t)((c->file_bytes + total) % PAGE_ALIGN);
    if (c->staged) {
        v[n].iov_base = c->stage;
        v[n++].iov_len = c->staged;
    }
    for (int i = 0; i < c->niov; i++) v[n++] = c->iov[i];
    /* hold back the last `keep` bytes (they are in the system buffer) */
    size_t cut = keep;
    const uint8_t *tail[IOV_SLICES + 1];
    size_t tail_len[IOV_SLICES + 1];
    int ntail = 0;
    while (cut > 0 && n > 0) {
        struct iovec *last = &v[n - 1];
        size_t k = cut < last->iov_len ? cut : last->iov_len;
        tail[ntail] = (const uint8_t *)last->iov_base + last->iov_len - k;
        tail_len[ntail++] = k;
        last->iov_len -= k;
        cut -= k;
        if (last->iov_len == 0) n--;
    }
    for (int i = 0; i < n; i++) len += v[i].iov_len;
    struct iovec *p = v;
    while (len > 0) {
        ssize_t w = fault(c, EFS_FAULT_WRITE) ? -1 : writev(c->fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            rc = sys_fail(c, "write", errno);
            break;
        }
        len -= (size_t)w;
        c->file_bytes += (uint64_t)w;
        while (n > 0 && (size_t)w >= p->iov_len) { w -= (ssize_t)p->iov_len; p++; n--; }
        if (n > 0) {
            p->iov_base = (uint8_t *)p->iov_base + w;
            p->iov_len -= (size_t)w;
        }
    }
    c->staged = 0;
    /* the held-back tail, in file order (it was collected back to front) */
    for (int i = ntail - 1; i >= 0 && rc == 0; i--) {
        memcpy(c->stage + c->staged, tail[i], tail_len[i]);
        c->staged += tail_len[i];
    }
    c->niov = 0;
    c->iov_bytes = 0;
    return rc;
}

static efs_dword put_unnamed(posix_ctx *c, const uint8_t *p, size_t n)
{
    efs_dword rc;
    if (c->niov == IOV_SLICES && (rc = flush_slices(c))) return rc;
    c->iov[c->niov].iov_base = (void *)p;
    c->iov[c->niov].iov_len = n;
    c->niov++;
    c->iov_bytes += n;
    return 0;
}

static efs_dword put_named(posix_ctx *c, const uint8_t *p, size_t n)
{
    named_stream *s = &c->named[c->nnamed - 1];
    if (s->len + n > XATTR_VALUE_MAX)
        return sys_fail(c, "a named stream exceeds the 64 KiB xattr limit", E2BIG);
    if (!s->data && !(s->data = malloc(XATTR_VALUE_MAX)))
        return ctx_fail(c, "malloc", EFS_ERROR_NOT_ENOUGH_MEMORY);
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
        return ctx_fail(c, "an unencrypted data stream cannot be stored in the efs_raw layout",
                        EFS_ERROR_NOT_SUPPORTED);
    if (s->name_length == sizeof EFS_UNNAMED_NAME &&
        memcmp(s->name, EFS_UNNAMED_NAME, sizeof EFS_UNNAMED_NAME) == 0) {
        if (c->flags & EFS_CREATE_FOR_DIR)
            return ctx_fail(c, "a directory has no unnamed data stream", EFS_ERROR_INVALID_PARAMETER);
        c->cur = CUR_UNNAMED;
        return 0;
    }
    if (c->flags & EFS_DROP_ALTERNATE_STREAMS) { c->cur = CUR_SKIP; return 0; }
    /* ":x:$DATA" -> "user.x" (the parser checked the form) */
    memcpy(name, XATTR_PREFIX, sizeof XATTR_PREFIX - 1);
    if (utf16_to_utf8(s->name + 2, s->name_length - 14, name + sizeof XATTR_PREFIX - 1,
                      sizeof name - sizeof XATTR_PREFIX) < 0)
        return ctx_fail(c, "a stream name is not valid UTF-16", EFS_ERROR_INVALID_PARAMETER);
    if (strcmp(name, EFSINFO_XATTR) == 0)
        return ctx_fail(c, "a named stream collides with user.ntfs.efsinfo",
                        EFS_ERROR_INVALID_PARAMETER);
    if (c->nnamed == c->named_cap) {
        size_t cap = c->named_cap ? c->named_cap * 2 : 4;
        named_stream *nn = realloc(c->named, cap * sizeof *nn);
        if (!nn) return ctx_fail(c, "malloc", EFS_ERROR_NOT_ENOUGH_MEMORY);
        c->named = nn;
        c->named_cap = cap;
    }
    memset(&c->named[c->nnamed], 0, sizeof c->named[0]);
    if (!(c->named[c->nnamed].xname = strdup(name)))
        return ctx_fail(c, "malloc", EFS_ERROR_NOT_ENOUGH_MEMORY);
    c->nnamed++;
    c->cur = CUR_NAMED;
    return 0;
}

static efs_dword on_metadata(void *ctx, const uint8_t *data, size_t len)
{
    posix_ctx *c = ctx;
    if (!(c->meta = malloc(len ? len : 1))) return ctx_fail(c, "malloc", EFS_ERROR_NOT_ENOUGH_MEMORY);
    memcpy(c->meta, data, len);
    c->meta_len = len;
    return 0;
}

static efs_dword on_segment(void *ctx, const efs_segment *s)
{
    posix_ctx *c = ctx;
    if (s->has_extd && (s->extd_flags & EFS_EXT_FLAG_SPARSE))
        return ctx_fail(c, "sparse streams cannot be stored in the efs_raw layout",
                        EFS_ERROR_NOT_SUPPORTED);
    /* ntfs-3g (spec 8.3) keeps no valid data length apart from the size and
     * refuses files whose VDL differs: storing one would lose it */
    if (s->encrypted && s->bytes_within_vdl != s->bytes_within_stream_size)
        return ctx_fail(c, "a valid data length below the stream size cannot be stored in "
                           "the efs_raw layout", EFS_ERROR_NOT_SUPPORTED);
    return 0;
}

static efs_dword on_data(void *ctx, const uint8_t *data, size_t len)
{
    posix_ctx *c = ctx;
    if (c->opt.null_sink) return 0;
    if (c->cur == CUR_UNNAMED) return put_unnamed(c, data, len);
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
    efs_dword rc = flush_slices(c);         /* keep the order: data, then trailer */
    return rc ? rc : stage_bytes(c, trailer, 2);
}

/* Give the finished temporary its final name.  With no_replace an existing
 * destination is never replaced: renameat2(RENAME_NOREPLACE) where the file
 * system has it, else link()+unlink() for files (also atomic), else a check
 * right before rename() for directories. */
static efs_dword publish(posix_ctx *c)
{
    struct stat st;
    if (fault(c, EFS_FAULT_PUBLISH)) return sys_fail(c, "rename", errno);
    if (!c->opt.no_replace) {
        if (rename(c->tmp, c->path) != 0) return sys_fail(c, "rename", errno);
        return 0;
    }
#ifdef RENAME_NOREPLACE
    if (renameat2(AT_FDCWD, c->tmp, AT_FDCWD, c->path, RENAME_NOREPLACE) == 0) return 0;
    if (errno == EEXIST) return ctx_fail(c, "the destination exists", EFS_ERROR_FILE_EXISTS);
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        return sys_fail(c, "renameat2", errno);
#endif
    if (!(c->flags & EFS_CREATE_FOR_DIR)) {
        if (link(c->tmp, c->path) == 0) {
            unlink(c->tmp);
            return 0;
        }
        if (errno == EEXIST) return ctx_fail(c, "the destination exists", EFS_ERROR_FILE_EXISTS);
    }
    if (lstat(c->path, &st) == 0) return ctx_fail(c, "the destination exists", EFS_ERROR_FILE_EXISTS);
    if (rename(c->tmp, c->path) != 0) return sys_fail(c, "rename", errno);
    return 0;
}

/* A setxattr that failed: where the file system ran out of room for
 * xattrs (not out of disk space) say which limit was hit, not just "No space
 * left on device" (ext4 keeps all of a file's xattrs in one block). */
static efs_dword xattr_fail(posix_ctx *c, const char *op, const char *what, size_t len,
                            const char *path, int fd, int injected)
{
    int e = errno;
    struct statvfs vs;
    if (injected || (e != ENOSPC && e != E2BIG) ||
        (fd >= 0 ? fstatvfs(fd, &vs) : statvfs(path, &vs)) != 0 ||
        (e == ENOSPC && vs.f_bavail == 0))
        return sys_fail(c, op, e);
    if (e == E2BIG)
        snprintf(c->op_buf, sizeof c->op_buf, "%s: %s (%zu bytes) is larger than Linux allows "
                 "one xattr (64 KiB) on any file system", op, what, len);
    else
        snprintf(c->op_buf, sizeof c->op_buf, "%s: %s (%zu bytes) does not fit in the room this "
                 "file system gives a file's xattrs, though the disk has space (ext4: one "
                 "%lu-byte block for all of them; tmpfs from Linux 6.6, xfs, btrfs and ntfs-3g "
                 "give more)", op, what, len, (unsigned long)vs.f_bsize);
    c->err_no = e;
    c->op = c->op_buf;
    return EFS_ERROR_EA_TABLE_FULL;
}

/* The O_TMPFILE variant of commit: attributes through the descriptor, then
 * linkat, which fails with EEXIST rather than replace anything. */
static efs_dword commit_anonymous(posix_ctx *c)
{
    char proc[64];
    efs_dword rc;
    if ((rc = flush_stage(c))) return rc;
    for (size_t i = 0; i < c->nnamed; i++)
        if (fault(c, EFS_FAULT_XATTR_STREAM) || fsetxattr(c->fd, c->named[i].xname, c->named[i].data ? (void *)c->named[i].data : "",
                      c->named[i].len, 0) != 0)
            return xattr_fail(c, "setxattr (named stream)", c->named[i].xname, c->named[i].len,
                              NULL, c->fd, c->opt.fault_point == EFS_FAULT_XATTR_STREAM);
    if (c->meta && (fault(c, EFS_FAULT_XATTR_EFSINFO) || fsetxattr(c->fd, EFSINFO_XATTR, c->meta, c->meta_len, 0) != 0))
        return xattr_fail(c, "setxattr (user.ntfs.efsinfo)", "the $EFS", c->meta_len, NULL, c->fd,
                          c->opt.fault_point == EFS_FAULT_XATTR_EFSINFO);
    if (c->meta && (rc = check_marked_encrypted(c, NULL, c->fd))) return rc;
    /* linkat(AT_EMPTY_PATH) on the descriptor itself (Linux >= 6.10 allows
     * it for the opener; older kernels want CAP_DAC_READ_SEARCH), else
     * through /proc/self/fd, which any process may use */
    if (fault(c, EFS_FAULT_PUBLISH)) return sys_fail(c, "linkat", errno);
    if (linkat(c->fd, "", AT_FDCWD, c->path, AT_EMPTY_PATH) != 0) {
        int e = errno;
        if (e == ENOENT || e == EPERM || e == EINVAL) {
            snprintf(proc, sizeof proc, "/proc/self/fd/%d", c->fd);
            e = linkat(AT_FDCWD, proc, AT_FDCWD, c->path, AT_SYMLINK_FOLLOW) == 0 ? 0 : errno;
        }
        if (e == EEXIST) return ctx_fail(c, "the destination exists", EFS_ERROR_FILE_EXISTS);
        if (e) return sys_fail(c, "linkat", e);
    }
    int fd = c->fd;
    c->fd = -1;
    c->anonymous = 0;
    /* a failing close can mean lost writes (delayed write errors): take back
     * the name just linked, which no_replace guarantees was not there before */
    if (close(fd) != 0 || fault(c, EFS_FAULT_CLOSE)) {
        unlink(c->path);
        return sys_fail(c, "close", errno);
    }
    return 0;
}

/* Everything arrived and validated: give the temporary its attributes, then
 * its name.  ntfs-3g wants the data streams before user.ntfs.efsinfo (8.4). */
static efs_dword commit(posix_ctx *c)
{
    efs_dword rc;
    if (c->opt.null_sink) return 0;
    if (c->anonymous) return commit_anonymous(c);
    if (c->fd >= 0) {
        if ((rc = flush_stage(c))) return rc;
        int fd = c->fd;
        c->fd = -1;
        if (close(fd) != 0 || fault(c, EFS_FAULT_CLOSE)) return sys_fail(c, "close", errno);
    }
    for (size_t i = 0; i < c->nnamed; i++)
        if (fault(c, EFS_FAULT_XATTR_STREAM) || setxattr(c->tmp, c->named[i].xname, c->named[i].data ? (void *)c->named[i].data : "",
                     c->named[i].len, 0) != 0)
            return xattr_fail(c, "setxattr (named stream)", c->named[i].xname, c->named[i].len,
                              c->tmp, -1, c->opt.fault_point == EFS_FAULT_XATTR_STREAM);
    if (c->meta && (fault(c, EFS_FAULT_XATTR_EFSINFO) ||
                    setxattr(c->tmp, EFSINFO_XATTR, c->meta, c->meta_len, 0) != 0))
        return xattr_fail(c, "setxattr (user.ntfs.efsinfo)", "the $EFS", c->meta_len, c->tmp, -1,
                          c->opt.fault_point == EFS_FAULT_XATTR_EFSINFO);
    if (c->meta && (rc = check_marked_encrypted(c, c->tmp, -1))) return rc;
    if ((rc = publish(c))) return rc;
    free(c->tmp);
    c->tmp = NULL;
    return 0;
}

/* Everything arrived and validated, and the folder exists: apply the named
 * streams and $EFS to it, keeping what it holds (efs_posix_dir.c); on NTFS
 * it must end up marked encrypted. */
static efs_dword commit_in_place(posix_ctx *c)
{
    efs_dir_failure f = {0, 0, NULL, 0};
    efs_dword rc = efs_dir_import_in_place(c->path, c->named, c->nnamed, c->meta, c->meta_len, &f);
    if (rc && (f.err_no == ENOSPC || f.err_no == E2BIG)) {
        int named = f.index < c->nnamed;
        errno = f.err_no;
        return xattr_fail(c, f.op, named ? c->named[f.index].xname : "the $EFS",
                          named ? c->named[f.index].len : c->meta_len, c->path, -1, 0);
    }
    if (rc) {
        c->err_no = f.err_no;
        c->op = f.op;
        return rc;
    }
    return c->meta ? check_marked_encrypted(c, c->path, -1) : 0;
}

/* Bytes after the offered capacity; a callback that writes past *ulLength
 * changes them. */
static const uint8_t guard_pattern[EFS_POSIX_GUARD] = {
    0xA5, 0x5A, 0xC3, 0x3C, 0xA5, 0x5A, 0xC3, 0x3C, 0xA5, 0x5A, 0xC3, 0x3C, 0xA5, 0x5A, 0xC3, 0x3C};

static efs_dword EFS_WINAPI posix_write(efs_import_func cb, void *cb_context, void *context)
{
    static const efs_handlers handlers = {on_stream_begin, on_metadata, on_segment,
                                          on_data, on_stream_end};
    posix_ctx *c = context;
    efs_parser *parser = NULL;
    uint8_t *buf = NULL, *meta_buf = NULL;
    efs_dword rc = 0;
    int is_dir, in_place;
    struct stat existing;

    if (!c || !cb) return EFS_ERROR_INVALID_PARAMETER;
    if (!(c->flags & EFS_CREATE_FOR_IMPORT) || c->written)
        return ctx_fail(c, "WriteEncryptedFileRaw needs a context opened once for import",
                        EFS_ERROR_INVALID_PARAMETER);
    c->written = 1;
    memset(&c->ferr, 0, sizeof c->ferr);
    c->err_no = 0;
    c->op = NULL;
    is_dir = (c->flags & EFS_CREATE_FOR_DIR) != 0;

    efs_handlers h = handlers;
    if (c->opt.null_sink) h.data = NULL;      /* validate only: no call per payload slice */
    /* the thread's buffers, reused from file to file (efs_scratch.h) */
    if (!(buf = efs_scratch_take(EFS_SCRATCH_SYSTEM_BUFFER,
                                 (size_t)c->opt.buffer_size + EFS_POSIX_GUARD)) ||
        !(meta_buf = efs_scratch_take(EFS_SCRATCH_META, EFS_META_MAX)) ||
        !(parser = efs_parser_new(c->opt.mode, &h, c)) ||
        (!c->opt.null_sink && !is_dir && !(c->stage = efs_scratch_take(EFS_SCRATCH_STAGE, WRITE_STAGE)))) {
        rc = ctx_fail(c, "malloc", EFS_ERROR_NOT_ENOUGH_MEMORY);
        goto out;
    }
    efs_parser_lend_meta(parser, meta_buf);
    if (!c->opt.null_sink && !dir_known_good(c->dir)) {
        if (volume_kind(c->dir, -1, NULL) == VOLUME_NTFS_NO_EFS_RAW) {
            rc = ctx_fail(c, NO_EFS_RAW_IMPORT, EFS_ERROR_NOT_SUPPORTED);
            goto out;
        }
        remember_good_dir(c->dir);
    }
    /* a folder restored over a folder: its $EFS and named streams are applied
     * in place once the stream is complete and valid (commit_in_place) */
    in_place = is_dir && !c->opt.no_replace && !c->opt.null_sink &&
               lstat(c->path, &existing) == 0 && S_ISDIR(existing.st_mode);
    if (!c->opt.null_sink && !in_place && (rc = make_temp(c, is_dir))) goto out;

    for (;;) {
        efs_ulong cap = next_capacity(c), len = cap;
        memcpy(buf + cap, guard_pattern, EFS_POSIX_GUARD);
        rc = cb(buf, cb_context, &len);
        if (rc) { c->op = "the import callback failed"; break; }
        if (len > cap) {
            rc = ctx_fail(c, "the import callback claimed more bytes than offered",
                          EFS_ERROR_INVALID_PARAMETER);
            break;
        }
        if (memcmp(buf + cap, guard_pattern, EFS_POSIX_GUARD) != 0) {
            rc = ctx_fail(c, "the import callback wrote past the offered capacity",
                          EFS_ERROR_NOACCESS);
            break;
        }
        if (len == 0) {
            rc = c->opt.unvalidated_copy ? 0 : efs_parser_finish(parser);
            break;
        }
        if (c->opt.unvalidated_copy) {
            if (!c->opt.null_sink && ((rc = put_unnamed(c, buf, len)) || (rc = flush_slices(c))))
                break;
            continue;
        }
        if ((rc = efs_parser_feed(parser, buf, len)) || (rc = flush_slices(c))) break;
    }
    if (rc && efs_parser_error(parser)->rule) c->ferr = *efs_parser_error(parser);
    if (!rc) rc = in_place ? commit_in_place(c) : commit(c);
out:
    if (rc) discard_temp(c);
    efs_parser_free(parser);
    efs_scratch_put(EFS_SCRATCH_META, meta_buf);
    efs_scratch_put(EFS_SCRATCH_SYSTEM_BUFFER, buf);
    free_import_state(c);
    return rc;
}

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
    o->cap = next_capacity(o->c);
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
        ssize_t r = fault(s->c, EFS_FAULT_READ) ? -1 : pread(s->fd, dst, len, (off_t)off);
        if (r < 0) {
            if (errno == EINTR) continue;
            return sys_fail(s->c, "pread", errno);
        }
        if (r == 0) return ctx_fail(s->c, "the file shrank while it was read", EFS_ERROR_HANDLE_EOF);
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
        return ctx_fail(c, "not in the efs_raw layout (size mod 512 != 2, or a bad padding count)",
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
        rc = ctx_fail(c, "malloc", EFS_ERROR_NOT_ENOUGH_MEMORY);
        goto out;
    }
    if ((n = flistxattr(fd, (char *)list, XATTR_LIST_MAX_BYTES)) < 0) {
        rc = errno == ENOTSUP ? 0 : sys_fail(c, "listxattr", errno);
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
            rc = sys_fail(c, "getxattr (named stream)", errno);
            break;
        }
        u16[0] = ':'; u16[1] = 0;
        ul = utf8_to_utf16(p + sizeof XATTR_PREFIX - 1, u16 + 2, EFS_STREAM_NAME_MAX - 14);
        if (ul <= 0) { rc = ctx_fail(c, "an xattr name is not valid UTF-8", EFS_ERROR_INVALID_DATA); break; }
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
        if (!whole) return ctx_fail(c, "malloc", EFS_ERROR_NOT_ENOUGH_MEMORY);
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

static efs_dword EFS_WINAPI posix_read(efs_export_func cb, void *cb_context, void *context)
{
    posix_ctx *c = context;
    export_out o;
    uint8_t *meta = NULL;
    ssize_t mlen;
    int fd;
    efs_dword rc;
    unsigned shift;

    if (!c || !cb) return EFS_ERROR_INVALID_PARAMETER;
    if (c->flags & EFS_CREATE_FOR_IMPORT)
        return ctx_fail(c, "ReadEncryptedFileRaw needs a context opened for export",
                        EFS_ERROR_INVALID_PARAMETER);
    memset(&c->ferr, 0, sizeof c->ferr);
    c->err_no = 0;
    c->op = NULL;
    memset(&o, 0, sizeof o);
    o.c = c;
    o.cb = cb;
    o.cb_context = cb_context;
    o.cap = next_capacity(c);
    if (!(o.buf = efs_scratch_take(EFS_SCRATCH_EXPORT_BUFFER, c->opt.buffer_size)) ||
        !(meta = efs_scratch_take(EFS_SCRATCH_XATTR_VALUE, XATTR_VALUE_MAX))) {
        rc = ctx_fail(c, "malloc", EFS_ERROR_NOT_ENOUGH_MEMORY);
        goto out;
    }
    /* everything through the descriptor opened with the context */
    fd = c->fd;
    /* one fgetxattr into a buffer of the VFS maximum: no size query first */
    if ((mlen = fgetxattr(fd, EFSINFO_XATTR, meta, XATTR_VALUE_MAX)) < 0) {
        uint32_t attrib = 0;
        if (errno != ENODATA && errno != ENOTSUP)
            rc = sys_fail(c, "getxattr (user.ntfs.efsinfo)", errno);
        else if (volume_kind(NULL, fd, &attrib) == VOLUME_NTFS_NO_EFS_RAW &&
                 (attrib & NTFS_ATTR_ENCRYPTED))
            rc = ctx_fail(c, NO_EFS_RAW_EXPORT, EFS_ERROR_NOT_SUPPORTED);
        else
            rc = ctx_fail(c, "the file is not encrypted (it has no user.ntfs.efsinfo)",
                          EFS_ERROR_FILE_NOT_ENCRYPTED);
        goto out;
    }
    if (mlen == 0) {
        rc = ctx_fail(c, "user.ntfs.efsinfo is empty", EFS_ERROR_INVALID_DATA);
        goto out;
    }
    if ((rc = check_stored_metadata(c, meta, (size_t)mlen))) goto out;
    shift = cluster_shift_of(c, fd, &c->st);
    if ((rc = efs_emit_raw_header(emit_block, &o)) ||
        (rc = efs_emit_metadata_stream(emit_block, &o, meta, (size_t)mlen)))
        goto out;
    /* $EFS is out: the value buffer is free for the named streams */
    efs_scratch_put(EFS_SCRATCH_XATTR_VALUE, meta);
    meta = NULL;
    if (!S_ISDIR(c->st.st_mode) && (rc = export_unnamed(c, &o, fd, (uint64_t)c->st.st_size, shift)))
        goto out;
    if ((rc = export_named(c, &o, fd, shift))) goto out;
    rc = push_block(&o);
out:
    efs_scratch_put(EFS_SCRATCH_XATTR_VALUE, meta);
    efs_scratch_put(EFS_SCRATCH_EXPORT_BUFFER, o.buf);
    return rc;
}

static const efs_backend posix_backend = {"posix", posix_open, posix_read, posix_write, posix_close};

const efs_backend *efs_posix_backend(void) { return &posix_backend; }

#endif /* !_WIN32 */

/* ISO C wants a non-empty translation unit on the other platform. */
typedef int efs_posix_unit;
