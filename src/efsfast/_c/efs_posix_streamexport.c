/*
 * efs_posix_streamexport.c -- one object of a backup set exported into
 * memory (POSIX side) for a tar stream, without the GIL: opened for export
 * once, its NTFS metadata and $EFS read through that descriptor, its raw
 * stream appended to a buffer of its own and hashed as it comes.  The
 * Cython core (_core_streamexport.pxi) runs it for many objects on worker
 * threads; backupset/tarbulk.py writes the members.  The steps before the
 * data (open, stat, ntfs-3g facts, $EFS) are efs_posix_backup_item's; one
 * function for them both, in efs_posix_backup.c, would remove the copy.
 */
#ifndef _WIN32
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "efs_layout.h"
#include "efs_sha256.h"
#include "efs_streamexport.h"

#define FILE_ATTRIBUTE_ENCRYPTED 0x4000u
#define XATTR_VALUE_MAX 65536u              /* Linux VFS limit */
#define HEADROOM 4096u                      /* stream headers beyond data and $EFS */

typedef struct mem_tee {
    efs_backup_item *it;
    efs_mem_stream *m;
    efs_sha256 hash;
    const int *cancel;
    unsigned sigint_base;
} mem_tee;

/* The export callback: each system buffer appended and hashed. */
static efs_dword EFS_WINAPI to_memory_hashed(uint8_t *data, void *context, efs_ulong n)
{
    mem_tee *t = context;
    efs_mem_stream *m = t->m;
    if ((t->cancel && *t->cancel) || efs_sigint_count() != t->sigint_base)
        return EFS_ERROR_CANCELLED;
    if (n > m->cap - m->len) {
        size_t cap = m->cap ? m->cap : 65536u;
        uint8_t *p;
        while (cap - m->len < n) cap *= 2;
        if (!(p = realloc(m->data, cap))) return EFS_ERROR_NOT_ENOUGH_MEMORY;
        m->data = p;
        m->cap = cap;
    }
    memcpy(m->data + m->len, data, n);
    m->len += n;
    efs_sha256_update(&t->hash, data, n);
    t->it->data_len += n;
    t->it->calls++;
    return 0;
}

/* The failure as the system side's context tells it (its detail copied:
 * the context is closed before the item is reported). */
static efs_dword failed_on(efs_backup_item *it, void *ctx, efs_dword rc)
{
    const efs_error *fe = efs_posix_last_format_error(ctx);
    const char *op = efs_posix_last_operation(ctx);
    if (fe && fe->rule) {
        it->ferr = *fe;
        if (fe->detail) {
            snprintf(it->ferr_detail, sizeof it->ferr_detail, "%s", fe->detail);
            it->ferr.detail = it->ferr_detail;
        }
    }
    it->err_no = efs_posix_last_errno(ctx);
    if (op) {
        snprintf(it->op_buf, sizeof it->op_buf, "%s", op);
        it->op = it->op_buf;
    }
    return rc;
}

/* One fixed-size ntfs-3g attribute value; -1 (op and errno recorded) if it
 * cannot be read whole. */
static int fixed_xattr(efs_backup_item *it, void *ctx, const char *name, uint8_t *buf,
                       size_t size)
{
    int e = 0;
    long n = efs_posix_object_xattr(ctx, name, buf, size, &e);
    if (n >= 0 && (size_t)n == size) return 0;
    snprintf(it->op_buf, sizeof it->op_buf, "getxattr (%s)", name);
    it->op = it->op_buf;
    it->err_no = n < 0 ? e : EINVAL;
    return -1;
}

/* ntfs-3g's attributes, times and descriptor, read before the data (a
 * change during the backup shows as a newer change time next time).  An
 * object without FILE_ATTRIBUTE_ENCRYPTED is plain; a descriptor that
 * cannot be read is recorded (acl_errno), not a failure. */
static efs_dword ntfs_facts(efs_backup_item *it, void *ctx)
{
    int e = 0;
    long n;
    uint8_t *p;
    if (fixed_xattr(it, ctx, "system.ntfs_attrib", it->attrib, sizeof it->attrib) < 0)
        return efs_win32_from_errno(it->err_no);
    if (!(efs_get32(it->attrib) & FILE_ATTRIBUTE_ENCRYPTED)) {
        it->outcome = EFS_BACKUP_PLAIN;
        return 0;
    }
    if (fixed_xattr(it, ctx, "system.ntfs_times", it->times, sizeof it->times) < 0)
        return efs_win32_from_errno(it->err_no);
    if (!(it->acl = malloc(XATTR_VALUE_MAX))) return EFS_ERROR_NOT_ENOUGH_MEMORY;
    n = efs_posix_object_xattr(ctx, "system.ntfs_acl", it->acl, XATTR_VALUE_MAX, &e);
    if (n < 0) {
        free(it->acl);
        it->acl = NULL;
        it->acl_errno = e;
        return 0;
    }
    if ((p = realloc(it->acl, n ? (size_t)n : 1u)) != NULL) it->acl = p;
    it->acl_len = (size_t)n;
    return 0;
}

efs_dword efs_posix_backup_item_to_memory(efs_backup_item *it, efs_mem_stream *m, uint64_t limit,
                                          const efs_posix_options *o, const int *cancel,
                                          unsigned sigint_base)
{
    void *ctx = NULL;
    const uint8_t *efs;
    size_t efs_len;
    mem_tee t;
    efs_dword rc;

    it->outcome = EFS_BACKUP_FAILED;
    if ((rc = efs_posix_open_ex(it->src, it->flags, o, &ctx)) != 0) return it->rc = rc;
    if ((rc = efs_posix_get_object_stat(ctx, &it->st)) != 0) goto out;
    if (it->capture_ntfs && ((rc = ntfs_facts(it, ctx)) != 0 || it->outcome == EFS_BACKUP_PLAIN))
        goto out;
    if ((rc = efs_posix_load_efs(ctx, &efs, &efs_len)) != 0) {
        if (rc == EFS_ERROR_FILE_NOT_ENCRYPTED) {
            it->outcome = EFS_BACKUP_PLAIN;
            rc = 0;
        }
        goto out;
    }
    it->efs_len = efs_len;
    efs_sha256_digest(efs, efs_len, it->efs_sha256);
    if (!(it->flags & EFS_CREATE_FOR_DIR) && it->st.size > limit) {
        m->large = 1;           /* its facts only: the caller streams it */
        it->outcome = EFS_BACKUP_DONE;
        goto out;
    }
    /* room for the whole stream at once, as a rule: data, $EFS, headers */
    if (it->st.size < SIZE_MAX - efs_len - HEADROOM) {
        m->cap = (size_t)it->st.size + efs_len + HEADROOM;
        if (!(m->data = malloc(m->cap))) m->cap = 0;
    }
    t.it = it;
    t.m = m;
    efs_sha256_init(&t.hash);
    t.cancel = cancel;
    t.sigint_base = sigint_base;
    rc = efs_posix_backend()->read(to_memory_hashed, &t, ctx);
    if (!rc) {
        efs_sha256_final(&t.hash, it->sha256);
        it->outcome = EFS_BACKUP_DONE;
    } else {
        efs_mem_stream_free(m);
    }
out:
    if (rc && !it->op && !it->err_no && ctx) failed_on(it, ctx, rc);
    efs_posix_backend()->close(ctx);
    return it->rc = rc;
}

void efs_mem_stream_free(efs_mem_stream *m)
{
    free(m->data);
    m->data = NULL;
    m->len = m->cap = 0;
}

void efs_pause_us(unsigned us)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(us / 1000000u);
    ts.tv_nsec = (long)(us % 1000000u) * 1000L;
    nanosleep(&ts, NULL);
}

#endif /* !_WIN32 */

/* ISO C wants a non-empty translation unit on the other platform. */
typedef int efs_posix_streamexport_unit;
