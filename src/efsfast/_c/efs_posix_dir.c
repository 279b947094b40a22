/*
 * efs_posix_dir.c -- import a folder's raw stream into an existing folder.
 *
 * Restoring a folder over one that exists must not replace the folder (it
 * holds files the raw stream knows nothing of): its $EFS and named streams
 * are applied in place.  The raw stream was validated whole before this
 * runs, so only the xattr calls can fail; the $EFS goes last (spec 8.4), and
 * a failure puts the named streams already set back as they were.
 */
#ifndef _WIN32
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "efs_posix_dir.h"

#define EFSINFO_XATTR "user.ntfs.efsinfo"
#define NTFS_ATTRIB_XATTR "system.ntfs_attrib"

#define W_ACCESS_DENIED 5u
#define W_NOT_ENOUGH_MEMORY 8u
#define W_GEN_FAILURE 31u
#define W_NOT_SUPPORTED 50u
#define W_DISK_FULL 112u
#define W_EA_TABLE_FULL 277u

typedef struct saved_value {
    uint8_t *data;      /* NULL: the folder had no such xattr */
    ssize_t len;
} saved_value;

static efs_dword fail(efs_dir_failure *f, efs_dword code, int e, const char *op)
{
    f->code = code;
    f->err_no = e;
    f->op = op;
    return code;
}

static efs_dword code_of(int e)
{
    switch (e) {
    case EACCES: case EPERM: return W_ACCESS_DENIED;
    case ENOSPC: return W_DISK_FULL;
    case E2BIG: case ERANGE: return W_EA_TABLE_FULL;
    case ENOMEM: return W_NOT_ENOUGH_MEMORY;
    default: return W_GEN_FAILURE;
    }
}

/* The current value of xattr `name`: 0 with out->data NULL when absent. */
static int read_value(const char *path, const char *name, saved_value *out)
{
    out->data = NULL;
    out->len = 0;
    ssize_t n = getxattr(path, name, NULL, 0);
    if (n < 0) return (errno == ENODATA || errno == ENOTSUP) ? 0 : errno;
    if (!(out->data = malloc(n ? (size_t)n : 1))) return ENOMEM;
    out->len = getxattr(path, name, out->data, (size_t)n);
    if (out->len < 0) {
        int e = errno;
        free(out->data);
        out->data = NULL;
        return e;
    }
    return 0;
}

/* Put the first `count` named streams back as they were. */
static void roll_back(const char *path, const efs_named_value *named, const saved_value *old,
                      size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (old[i].data) setxattr(path, named[i].xname, old[i].data, (size_t)old[i].len, 0);
        else removexattr(path, named[i].xname);
    }
}

efs_dword efs_dir_import_in_place(const char *path, const efs_named_value *named, size_t n,
                                  const uint8_t *meta, size_t meta_len, efs_dir_failure *f)
{
    saved_value efs = {NULL, 0}, *old = NULL;
    efs_dword rc = 0;
    size_t set = 0;
    int e, same;
    uint8_t attrib[4];

    if ((e = read_value(path, EFSINFO_XATTR, &efs)))
        return fail(f, code_of(e), e, "getxattr (user.ntfs.efsinfo)");
    same = !meta || (efs.data && (size_t)efs.len == meta_len &&
                     memcmp(efs.data, meta, meta_len) == 0);
    /* ntfs-3g refuses to replace the $EFS of an encrypted inode (EEXIST,
     * spec 8.2): say so before anything changes */
    if (!same && efs.data &&
        getxattr(path, NTFS_ATTRIB_XATTR, attrib, sizeof attrib) == (ssize_t)sizeof attrib) {
        rc = fail(f, W_NOT_SUPPORTED, 0, "the folder is already encrypted with another $EFS, "
                  "which NTFS (ntfs-3g) cannot replace in place; restore it into a new folder");
        goto out;
    }
    if (n && !(old = calloc(n, sizeof *old))) {
        rc = fail(f, W_NOT_ENOUGH_MEMORY, 0, "malloc");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if ((e = read_value(path, named[i].xname, &old[i]))) {
            rc = fail(f, code_of(e), e, "getxattr (named stream)");
            goto out;
        }
    for (; set < n; set++)
        if (setxattr(path, named[set].xname, named[set].data ? (void *)named[set].data : "",
                     named[set].len, 0) != 0) {
            e = errno;
            rc = fail(f, code_of(e), e, "setxattr (named stream)");
            f->index = set;
            break;
        }
    if (!rc && !same && setxattr(path, EFSINFO_XATTR, meta, meta_len, 0) != 0) {
        e = errno;
        rc = fail(f, code_of(e), e, "setxattr (user.ntfs.efsinfo)");
        f->index = n;
    }
    if (rc) roll_back(path, named, old, set);
out:
    for (size_t i = 0; old && i < n; i++) free(old[i].data);
    free(old);
    free(efs.data);
    return rc;
}

#endif /* !_WIN32 */

/* ISO C wants a non-empty translation unit on the other platform. */
typedef int efs_posix_dir_unit;
