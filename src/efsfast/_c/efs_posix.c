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
 *
 * This file: the context (open, close, options, errors) and the ntfs-3g
 * checks; the rest of the side is in efs_posix_publish.c (temporaries and
 * their publication), efs_posix_import.c (WriteEncryptedFileRaw),
 * efs_posix_export.c (ReadEncryptedFileRaw) and efs_posix_dir.c (a folder's
 * stream imported into an existing folder).
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
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "efs_posix_dir.h"
#include "efs_posix_internal.h"
#include "efs_scratch.h"

/* ---- errors ---- */

/* Record a failed system call; returns the Win32 code. */
efs_dword px_sys_fail(posix_ctx *c, const char *op, int e)
{
    c->err_no = e;
    c->op = op;
    return efs_win32_from_errno(e);
}

/* Tests: 1 (with errno set) when the system call at `point` is to fail. */
int px_fault(const posix_ctx *c, int point)
{
    if (c->opt.fault_point != point) return 0;
    errno = c->opt.fault_errno ? c->opt.fault_errno : EIO;
    return 1;
}

efs_dword px_ctx_fail(posix_ctx *c, const char *op, efs_dword code)
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

uint64_t px_next_random(posix_ctx *c)
{
    /* xorshift64*: a seeded, reproducible buffer schedule for tests */
    uint64_t x = c->rng;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    c->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

uint32_t px_next_capacity(posix_ctx *c)
{
    uint32_t lo = c->opt.min_size, hi = c->opt.buffer_size;
    if (!c->opt.seed || lo >= hi) return hi;
    return lo + (uint32_t)(px_next_random(c) % ((uint64_t)hi - lo + 1));
}

/* UTF-16LE (no NUL) -> UTF-8; returns the length or -1 when ill-formed. */
long px_utf16_to_utf8(const uint8_t *s, size_t n, char *out, size_t cap)
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
long px_utf8_to_utf16(const char *s, uint8_t *out, size_t cap)
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


/* ntfs-3g shows the NTFS attributes as system.ntfs_attrib on every mount;
 * without -o efs_raw it refuses system.ntfs_efsinfo with EPERM on every
 * inode (spec 8.1) and user.ntfs.efsinfo is then just a named stream, so the
 * efs_raw layout written there would be plain files holding ciphertext. */
/* The NTFS attributes ntfs-3g shows as system.ntfs_attrib (through fd when
 * it is >= 0); 0 off NTFS, where there are none. */
static int ntfs_attributes(const char *path, int fd, uint32_t *attrib)
{
    uint8_t v[4];
    ssize_t n = fd >= 0 ? fgetxattr(fd, NTFS_ATTRIB_XATTR, v, sizeof v)
                        : getxattr(path, NTFS_ATTRIB_XATTR, v, sizeof v);
    if (n != (ssize_t)sizeof v) return 0;
    *attrib = efs_get32(v);
    return 1;
}

int px_volume_kind(const char *path, int fd, uint32_t *attrib)
{
    uint32_t a;
    ssize_t n;
    if (!ntfs_attributes(path, fd, &a)) return VOLUME_OTHER;
    if (attrib) *attrib = a;
    n = fd >= 0 ? fgetxattr(fd, NTFS_EFSINFO_XATTR, NULL, 0)
                : getxattr(path, NTFS_EFSINFO_XATTR, NULL, 0);
    return n < 0 && errno == EPERM ? VOLUME_NTFS_NO_EFS_RAW : VOLUME_NTFS_EFS_RAW;
}


/* The folder this thread last found not to be on an NTFS volume without
 * efs_raw, by a hash of its path: a tree restore puts many files in one
 * folder, and on FUSE each probe is two requests to the daemon.  Skipping
 * the probe only skips an early, clearer error: check_marked_encrypted still
 * refuses to publish an object that did not come out encrypted. */
static _Thread_local uint64_t good_dir_hash;
static _Thread_local size_t good_dir_len;
static _Thread_local dev_t good_dir_dev;
static _Thread_local int good_dir_kind;

static uint64_t path_hash(const char *p, size_t *len)
{
    uint64_t h = 1469598103934665603ull;            /* FNV-1a */
    size_t n = 0;
    for (; p[n]; n++) h = (h ^ (uint8_t)p[n]) * 1099511628211ull;
    *len = n;
    return h;
}

int px_dir_known_good(const char *dir, dev_t *dev, int *kind)
{
    size_t n;
    uint64_t h = path_hash(dir, &n);
    if (good_dir_len != n || good_dir_hash != h) return 0;
    *dev = good_dir_dev;
    if (kind) *kind = good_dir_kind;
    return 1;
}

void px_remember_good_dir(const char *dir, dev_t dev, int kind)
{
    good_dir_hash = path_hash(dir, &good_dir_len);
    good_dir_dev = dev;
    good_dir_kind = kind;
}

/* The refusals of the last device this thread restored onto.  Device
 * numbers are reused after an unmount; a stale entry only sends a restore
 * to the fallback, which is correct everywhere. */
static _Thread_local dev_t refused_dev;
static _Thread_local unsigned refused_what;

int px_refused(dev_t dev, unsigned what)
{
    return refused_dev == dev && (refused_what & what) != 0;
}

void px_remember_refused(dev_t dev, unsigned what)
{
    if (refused_dev != dev) {
        refused_dev = dev;
        refused_what = 0;
    }
    refused_what |= what;
}

/* After $EFS is set: on NTFS the object must now carry the ENCRYPTED
 * attribute, or it would be published as a plain one. */
efs_dword px_check_marked_encrypted(posix_ctx *c, const char *path, int fd)
{
    /* the attributes alone answer it (one request to the FUSE daemon, per
     * restored object): absent off NTFS, ENCRYPTED set where efs_raw worked */
    uint32_t attrib;
    /* off NTFS (the folder had no NTFS attributes) there is nothing to ask */
    if (c->volume_kind == VOLUME_OTHER) return 0;
    if (!ntfs_attributes(path, fd, &attrib) || (attrib & NTFS_ATTR_ENCRYPTED))
        return 0;
    return px_ctx_fail(c, "ntfs-3g did not mark the object encrypted after $EFS was set "
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

/* The object just opened for export, as the open found it.  statx with
 * AT_STATX_DONT_SYNC takes the attributes the path lookup brought: on FUSE
 * (ntfs-3g, which gives them no lifetime) fstat would ask the daemon again,
 * one more round trip per backed-up object. */
static int stat_opened(int fd, struct stat *st)
{
#if defined(STATX_BASIC_STATS) && defined(AT_STATX_DONT_SYNC)
    struct statx x;
    if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_BASIC_STATS, &x) == 0 &&
        (x.stx_mask & (STATX_TYPE | STATX_MODE | STATX_SIZE)) == (STATX_TYPE | STATX_MODE | STATX_SIZE)) {
        memset(st, 0, sizeof *st);
        st->st_dev = makedev(x.stx_dev_major, x.stx_dev_minor);
        st->st_ino = (ino_t)x.stx_ino;
        st->st_mode = x.stx_mode;
        st->st_nlink = x.stx_nlink;
        st->st_uid = x.stx_uid;
        st->st_gid = x.stx_gid;
        st->st_size = (off_t)x.stx_size;
        st->st_atim.tv_sec = x.stx_atime.tv_sec;
        st->st_atim.tv_nsec = x.stx_atime.tv_nsec;
        st->st_mtim.tv_sec = x.stx_mtime.tv_sec;
        st->st_mtim.tv_nsec = x.stx_mtime.tv_nsec;
        st->st_ctim.tv_sec = x.stx_ctime.tv_sec;
        st->st_ctim.tv_nsec = x.stx_ctime.tv_nsec;
        return 0;
    }
#endif
    return fstat(fd, st);
}

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
    c->volume_kind = -1;
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
        /* the folder this thread restored into last is not asked again (on
         * FUSE a stat is a round trip); if it went away since, creating the
         * temporary fails with ENOENT */
        if (px_dir_known_good(c->dir, &c->dir_dev, NULL))
            ;
        else if (stat(c->dir, &st) != 0)
            rc = errno == ENOENT ? EFS_ERROR_PATH_NOT_FOUND : efs_win32_from_errno(errno);
        else if (!S_ISDIR(st.st_mode))
            rc = EFS_ERROR_PATH_NOT_FOUND;
        else
            c->dir_dev = st.st_dev;
    } else if ((c->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || stat_opened(c->fd, &c->st) != 0) {
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

void px_free_import_state(posix_ctx *c)
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
    c->niov = 0;
    c->iov_bytes = 0;
}

static void EFS_WINAPI posix_close(void *context)
{
    posix_ctx *c = context;
    if (!c) return;
    px_free_import_state(c);
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

static const efs_backend posix_backend = {"posix", posix_open, posix_read, posix_write, posix_close};

const efs_backend *efs_posix_backend(void) { return &posix_backend; }

#endif /* !_WIN32 */

/* ISO C wants a non-empty translation unit on the other platform. */
typedef int efs_posix_unit;
