/*
 * efs_posix_backup.c -- one object of a backup set in one C call (POSIX
 * side): opened for export once, its NTFS metadata and $EFS read through
 * that descriptor, its raw stream written to a temporary file in the set
 * and given its final name without replacing anything unless asked, its
 * SHA-256 made as it is written.  The Cython core runs it for many objects
 * on worker threads without the GIL; the manifest lines are made from what
 * it records (backupset/bulk.py).
 */
#ifndef _WIN32
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "efs_backend.h"
#include "efs_io.h"
#include "efs_layout.h"
#include "efs_manifest.h"
#include "efs_sha256.h"

#define ATTRIB_XATTR "system.ntfs_attrib"
#define TIMES_XATTR "system.ntfs_times"
#define ACL_XATTR "system.ntfs_acl"
#define ATTR_ENCRYPTED 0x4000u              /* FILE_ATTRIBUTE_ENCRYPTED */
#define XATTR_VALUE_MAX 65536u              /* Linux VFS limit */

typedef struct stream_tee {
    efs_backup_item *it;
    int fd;
    efs_sha256 hash;
    const int *cancel;
    unsigned sigint_base;
} stream_tee;

/* The export callback: the stream into the file, hashed for the manifest
 * from the buffer it is written from (nothing is read back). */
static efs_dword EFS_WINAPI to_file_hashed(uint8_t *data, void *context, efs_ulong n)
{
    stream_tee *t = context;
    efs_backup_item *it = t->it;
    if ((t->cancel && *t->cancel) || efs_sigint_count() != t->sigint_base)
        return EFS_ERROR_CANCELLED;
    if (efs_fd_write_all(t->fd, data, n, &it->err_no) != 0) {
        it->op = "write the backup file";
        it->name_dest = 1;
        return efs_win32_from_errno(it->err_no);
    }
    if (!it->no_hash) efs_sha256_update(&t->hash, data, n);
    it->data_len += n;
    it->calls++;
    return 0;
}

static efs_dword sys_fail(efs_backup_item *it, const char *op, int e, int dest)
{
    it->err_no = e;
    it->op = op;
    it->name_dest = dest;
    return efs_win32_from_errno(e);
}

/* The system side's own account of a failure on its context. */
efs_dword efs_posix_backup_failed_on(efs_backup_item *it, void *ctx, efs_dword rc)
{
    const efs_error *fe = efs_posix_last_format_error(ctx);
    const char *op = efs_posix_last_operation(ctx);
    if (fe && fe->rule) {
        /* the detail may live in the context, which is closed before the
         * item is reported */
        it->ferr = *fe;
        if (fe->detail) {
            snprintf(it->text.why.detail, sizeof it->text.why.detail, "%s", fe->detail);
            it->ferr.detail = it->text.why.detail;
        }
    }
    it->err_no = efs_posix_last_errno(ctx);
    if (op) snprintf(it->text.why.op_buf, sizeof it->text.why.op_buf, "%s", op);
    it->op = op ? it->text.why.op_buf : NULL;
    return rc;
}

/* The finished temporary gets the final name: link() fails rather than
 * replace (then the temporary goes); where the file system has no links,
 * a check right before rename(). */
static efs_dword publish(efs_backup_item *it)
{
    struct stat st;
    if (it->overwrite) {
        if (rename(it->tmp, it->dest) != 0) return sys_fail(it, "rename", errno, 1);
        return 0;
    }
    if (link(it->tmp, it->dest) == 0) {
        unlink(it->tmp);
        return 0;
    }
    if (errno == EEXIST) {
        it->op = "the backup file exists (pass overwrite=True to replace it)";
        it->name_dest = 1;
        return EFS_ERROR_FILE_EXISTS;
    }
    if (lstat(it->dest, &st) == 0) {
        it->op = "the backup file exists (pass overwrite=True to replace it)";
        it->name_dest = 1;
        return EFS_ERROR_FILE_EXISTS;
    }
    if (rename(it->tmp, it->dest) != 0) return sys_fail(it, "rename", errno, 1);
    return 0;
}

/* The temporary's name when the caller gave none: the form of _winfs.temp_beside
 * (".efsfast-" + 16 hex digits + ".tmp" in dest's folder, which is_temporary
 * recognises as a killed run's leftover), made here so that a bulk backup's
 * calling thread does not spend its GIL time naming every item.  The nonce
 * (a random batch base plus the item's index) only has to differ between
 * items at once in one folder; O_EXCL catches the impossible collision. */
static efs_dword make_tmp_name(efs_backup_item *it)
{
    const char *slash = strrchr(it->dest, '/');
    size_t dir_len = slash ? (size_t)(slash - it->dest) + 1 : 0;
    size_t cap = dir_len + sizeof ".efsfast-0123456789abcdef.tmp";
    if (!(it->tmp_own = malloc(cap))) return sys_fail(it, "name the temporary file", ENOMEM, 1);
    memcpy(it->tmp_own, it->dest, dir_len);
    snprintf(it->tmp_own + dir_len, cap - dir_len, ".efsfast-%016llx.tmp",
             (unsigned long long)it->tmp_nonce);
    it->tmp = it->tmp_own;
    return 0;
}

static int read_xattr(void *ctx, const char *name, uint8_t *buf, size_t cap, size_t want,
                      efs_backup_item *it)
{
    int e = 0;
    long n = efs_posix_object_xattr(ctx, name, buf, cap, &e);
    if (n < 0 || (want && (size_t)n != want)) {
        snprintf(it->text.why.op_buf, sizeof it->text.why.op_buf, "getxattr (%s)", name);
        it->op = it->text.why.op_buf;
        it->err_no = n < 0 ? e : EINVAL;
        return -1;
    }
    return (int)n;
}

/* Metadata before the data: a change during the backup shows as a newer
 * change time next time, so an incremental run takes it again. */
static efs_dword capture_ntfs(efs_backup_item *it, void *ctx)
{
    int e = 0;
    long n;
    if (read_xattr(ctx, ATTRIB_XATTR, it->attrib, sizeof it->attrib, sizeof it->attrib, it) < 0)
        return efs_win32_from_errno(it->err_no);
    if (!(efs_get32(it->attrib) & ATTR_ENCRYPTED)) {
        it->outcome = EFS_BACKUP_PLAIN;
        return 0;
    }
    if (read_xattr(ctx, TIMES_XATTR, it->times, sizeof it->times, sizeof it->times, it) < 0)
        return efs_win32_from_errno(it->err_no);
    if (!(it->acl = malloc(XATTR_VALUE_MAX))) return EFS_ERROR_NOT_ENOUGH_MEMORY;
    n = efs_posix_object_xattr(ctx, ACL_XATTR, it->acl, XATTR_VALUE_MAX, &e);
    if (n < 0) {                  /* no right to it: recorded, not a failure */
        free(it->acl);
        it->acl = NULL;
        it->acl_errno = e;
    } else {
        uint8_t *p = realloc(it->acl, n ? (size_t)n : 1);
        if (p) it->acl = p;
        it->acl_len = (size_t)n;
    }
    return 0;
}

/* The object's manifest line, made here on the worker: the calling thread
 * only writes it (backupset/bulk.py).  Left NULL, the caller makes it. */
static void make_line(efs_backup_item *it)
{
    char stack[2048];
    efs_line_facts f;
    int directory = (it->flags & EFS_CREATE_FOR_DIR) != 0;
    f.path = it->rel;
    f.path_len = it->rel_len;
    f.directory = directory;
    f.raw_size = it->data_len;
    f.source_size = directory ? 0 : it->st.size;
    f.sha256 = it->sha256;
    f.efs_sha256 = it->efs_sha256;
    f.posix_meta = it->line_meta == EFS_LINE_META_POSIX;
    f.mode = it->st.mode;
    f.atime_ns = it->st.atime_ns;
    f.mtime_ns = it->st.mtime_ns;
    f.ctime_ns = it->st.ctime_ns;
    /* in the item where it fits (made first on the stack where the bound
     * on its length does not fit there), else allocated */
    if (efs_manifest_line_max(f.path_len) <= sizeof stack) {
        it->line_len = efs_manifest_object_line_into(&f, stack);
        if (it->line_len && it->line_len <= sizeof it->text.line) {
            memcpy(it->text.line, stack, it->line_len);
            it->line = it->text.line;
            return;
        }
        if (it->line_len && (it->line = malloc(it->line_len))) {
            memcpy(it->line, stack, it->line_len);
            return;
        }
        it->line_len = 0;
        it->line = NULL;
        return;
    }
    it->line = efs_manifest_object_line(&f, &it->line_len);
}

efs_dword efs_posix_backup_open(efs_backup_item *it, const efs_posix_options *o, void **ctx)
{
    const uint8_t *efs;
    size_t efs_len;
    efs_dword rc;

    it->outcome = EFS_BACKUP_FAILED;
    *ctx = NULL;
    if ((rc = efs_posix_open_ex(it->src, it->flags, o, ctx)) != 0) return rc;
    if ((rc = efs_posix_get_object_stat(*ctx, &it->st)) != 0) return rc;
    if (it->capture_ntfs && ((rc = capture_ntfs(it, *ctx)) != 0 || it->outcome == EFS_BACKUP_PLAIN))
        return rc;
    if ((rc = efs_posix_load_efs(*ctx, &efs, &efs_len)) != 0) {
        if (rc != EFS_ERROR_FILE_NOT_ENCRYPTED) return rc;
        it->outcome = EFS_BACKUP_PLAIN;
        return 0;
    }
    it->efs_len = efs_len;
    if (!it->no_hash) efs_sha256_digest(efs, efs_len, it->efs_sha256);
    return 0;
}

efs_dword efs_posix_backup_item(efs_backup_item *it, const efs_posix_options *o,
                                const int *cancel, unsigned sigint_base)
{
    void *ctx = NULL;
    stream_tee t;
    int fd;
    efs_dword rc;

    if ((rc = efs_posix_backup_open(it, o, &ctx)) != 0 || it->outcome == EFS_BACKUP_PLAIN)
        goto out;
    if (!it->tmp && (rc = make_tmp_name(it)) != 0) goto out;
    if ((fd = open(it->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666)) < 0) {
        rc = sys_fail(it, "create the backup file", errno, 1);
        goto out;
    }
    t.it = it;
    t.fd = fd;
    efs_sha256_init(&t.hash);
    t.cancel = cancel;
    t.sigint_base = sigint_base;
    rc = efs_posix_backend()->read(to_file_hashed, &t, ctx);
    if (!rc && !it->no_hash) efs_sha256_final(&t.hash, it->sha256);
    if (rc && !it->op && !it->err_no) efs_posix_backup_failed_on(it, ctx, rc);
    /* durable before it has its name (benchmarks: a set is synced once, cheaper) */
    if (!rc && it->sync && fsync(fd) != 0) rc = sys_fail(it, "fsync the backup file", errno, 1);
    if (close(fd) != 0 && !rc) rc = sys_fail(it, "close the backup file", errno, 1);
    if (!rc) rc = publish(it);
    if (rc) unlink(it->tmp);
    else it->outcome = EFS_BACKUP_DONE;
    if (!rc && it->rel && !it->no_hash) make_line(it);
out:
    if (rc && it->outcome == EFS_BACKUP_FAILED && !it->op && !it->err_no && ctx)
        efs_posix_backup_failed_on(it, ctx, rc);
    if (ctx) efs_posix_backend()->close(ctx);
    /* the temporary's name is not needed after this: freed here, on the
     * worker that made it (freed by the calling thread, each free took a
     * lock of this thread's malloc arena, which this thread was using) */
    if (it->tmp_own) {
        if (it->tmp == it->tmp_own) it->tmp = NULL;
        free(it->tmp_own);
        it->tmp_own = NULL;
    }
    return it->rc = rc;
}

void efs_posix_backup_item_free(efs_backup_item *it)
{
    free(it->acl);
    it->acl = NULL;
    if (it->tmp_own && it->tmp == it->tmp_own) it->tmp = NULL;
    free(it->tmp_own);
    it->tmp_own = NULL;
    if (it->line != it->text.line) free(it->line);
    it->line = NULL;
}

#endif /* !_WIN32 */

/* ISO C wants a non-empty translation unit on the other platform. */
typedef int efs_posix_backup_unit;
