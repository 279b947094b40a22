/*
 * efs_posix_publish.c -- the POSIX side's temporary objects and their publication:
 * an unnamed O_TMPFILE or a fixed-length hidden name beside the destination,
 * attributes set, then the final name given without replacing anything
 * unless asked (renameat2 RENAME_NOREPLACE, linkat, link + unlink).
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
#ifdef __linux__
#include <sys/vfs.h>
#endif
#include <sys/uio.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "efs_posix_dir.h"
#include "efs_posix_internal.h"
#include "efs_scratch.h"

#ifndef FUSE_SUPER_MAGIC
#define FUSE_SUPER_MAGIC 0x65735546UL      /* linux/magic.h */
#endif
/* free space below a value's size plus this is a volume too full to hold it */
#define XATTR_FULL_MARGIN ((uint64_t)64 << 10)

/* ---- import: the temporary object ---- */

/* Mixed into temporary names: the process id, asked once per thread (a
 * forked child may repeat its parent's names; O_EXCL then retries). */
static _Thread_local uint64_t name_seed;

efs_dword px_make_temp(posix_ctx *c, int is_dir)
{
    size_t n = strlen(c->dir) + 40;
    struct timespec ts;
#ifdef O_TMPFILE
    /* Where the file system has them (tmpfs, ext4, xfs, btrfs; not FUSE), a
     * no-replace restore writes into an unnamed file and links it in once
     * complete: it never has a temporary name, vanishes by itself if the
     * process dies, and needs one directory operation instead of two. */
    if (!is_dir && c->opt.no_replace && !px_refused(c->dir_dev, PX_REFUSED_TMPFILE)) {
        if (px_fault(c, EFS_FAULT_CREATE)) return px_sys_fail(c, "open", errno);
        c->fd = open(c->dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
        if (c->fd >= 0) {
            c->anonymous = 1;
            return 0;
        }
        /* the file system has no unnamed files (FUSE, NFS, old kernels) */
        if (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)
            px_remember_refused(c->dir_dev, PX_REFUSED_TMPFILE);
    }
#endif
    if (!(c->tmp = malloc(n))) return EFS_ERROR_NOT_ENOUGH_MEMORY;
    for (int attempt = 0; attempt < 100; attempt++) {
        clock_gettime(CLOCK_REALTIME, &ts);
        if (!name_seed) name_seed = (uint64_t)getpid() << 32;   /* once per thread */
        c->rng ^= (uint64_t)ts.tv_nsec ^ name_seed ^ (uint64_t)(uintptr_t)c;
        /* a fixed-length name (29 bytes), not derived from the destination's:
         * any name the file system accepts can be restored, whatever its
         * length or encoding (ntfs-3g counts UTF-16 units, not bytes) */
        snprintf(c->tmp, n, "%s/.efsfast-%016llx.tmp", c->dir,
                 (unsigned long long)px_next_random(c));
        /* 0666/0777 and the umask: the raw stream carries no ACL or mode */
        if (px_fault(c, EFS_FAULT_CREATE)) {
            efs_dword rc = px_sys_fail(c, is_dir ? "mkdir" : "open", errno);
            free(c->tmp);
            c->tmp = NULL;
            return rc;
        }
        if (is_dir ? mkdir(c->tmp, 0777) == 0
                   : (c->fd = open(c->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666)) >= 0)
            return 0;
        if (errno != EEXIST) {
            efs_dword rc = px_sys_fail(c, is_dir ? "mkdir" : "open", errno);
            free(c->tmp);
            c->tmp = NULL;
            return rc;
        }
    }
    free(c->tmp);
    c->tmp = NULL;
    return px_sys_fail(c, "create a temporary name", EEXIST);
}

void px_discard_temp(posix_ctx *c)
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

/* Give the finished temporary its final name.  With no_replace an existing
 * destination is never replaced: renameat2(RENAME_NOREPLACE) where the file
 * system has it, else link()+unlink() for files (also atomic), else a check
 * right before rename() for directories. */
static efs_dword publish(posix_ctx *c)
{
    struct stat st;
    if (px_fault(c, EFS_FAULT_PUBLISH)) return px_sys_fail(c, "rename", errno);
    if (!c->opt.no_replace) {
        if (rename(c->tmp, c->path) != 0) return px_sys_fail(c, "rename", errno);
        return 0;
    }
#ifdef RENAME_NOREPLACE
    /* refused by FUSE file systems without rename2 (ntfs-3g), after a
     * lookup of the destination at the daemon: asked once per device */
    if (!px_refused(c->dir_dev, PX_REFUSED_RENAME_NOREPLACE)) {
        if (renameat2(AT_FDCWD, c->tmp, AT_FDCWD, c->path, RENAME_NOREPLACE) == 0) return 0;
        if (errno == EEXIST) return px_ctx_fail(c, "the destination exists", EFS_ERROR_FILE_EXISTS);
        if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
            return px_sys_fail(c, "renameat2", errno);
        px_remember_refused(c->dir_dev, PX_REFUSED_RENAME_NOREPLACE);
    }
#endif
    if (!(c->flags & EFS_CREATE_FOR_DIR)) {
        if (link(c->tmp, c->path) == 0) {
            unlink(c->tmp);
            return 0;
        }
        if (errno == EEXIST) return px_ctx_fail(c, "the destination exists", EFS_ERROR_FILE_EXISTS);
    }
    if (lstat(c->path, &st) == 0) return px_ctx_fail(c, "the destination exists", EFS_ERROR_FILE_EXISTS);
    if (rename(c->tmp, c->path) != 0) return px_sys_fail(c, "rename", errno);
    return 0;
}

/* Whether an ENOSPC from setxattr means the volume is full rather than a
 * file's xattr room (ext4's one block): on FUSE (ntfs-3g keeps these values in
 * NTFS attributes of any size, so ENOSPC there is the volume or its MFT
 * running out, seen with 32 KiB of clusters still free), or where the free
 * space would not hold the value with room to spare. */
static int volume_full(const struct statvfs *vs, size_t len, const char *path, int fd)
{
#ifdef __linux__
    struct statfs fs;
    if ((fd >= 0 ? fstatfs(fd, &fs) : statfs(path, &fs)) == 0 &&
        (unsigned long)fs.f_type == FUSE_SUPER_MAGIC)
        return 1;
#endif
    uint64_t unit = vs->f_frsize ? vs->f_frsize : vs->f_bsize;
    return (uint64_t)vs->f_bavail * unit < (uint64_t)len + XATTR_FULL_MARGIN;
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
        (e == ENOSPC && volume_full(&vs, len, path, fd)))
        return px_sys_fail(c, op, e);
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
    if ((rc = px_window_flush(c, NULL, 0))) return rc;
    for (size_t i = 0; i < c->nnamed; i++)
        if (px_fault(c, EFS_FAULT_XATTR_STREAM) || fsetxattr(c->fd, c->named[i].xname, c->named[i].data ? (void *)c->named[i].data : "",
                      c->named[i].len, 0) != 0)
            return xattr_fail(c, "setxattr (named stream)", c->named[i].xname, c->named[i].len,
                              NULL, c->fd, c->opt.fault_point == EFS_FAULT_XATTR_STREAM);
    if (c->meta && (px_fault(c, EFS_FAULT_XATTR_EFSINFO) || fsetxattr(c->fd, EFSINFO_XATTR, c->meta, c->meta_len, 0) != 0))
        return xattr_fail(c, "setxattr (user.ntfs.efsinfo)", "the $EFS", c->meta_len, NULL, c->fd,
                          c->opt.fault_point == EFS_FAULT_XATTR_EFSINFO);
    if (c->meta && (rc = px_check_marked_encrypted(c, NULL, c->fd))) return rc;
    if (c->opt.sync_each && fsync(c->fd) != 0) return px_sys_fail(c, "fsync", errno);
    /* linkat(AT_EMPTY_PATH) on the descriptor itself (Linux >= 6.10 allows
     * it for the opener; older kernels want CAP_DAC_READ_SEARCH), else
     * through /proc/self/fd, which any process may use */
    if (px_fault(c, EFS_FAULT_PUBLISH)) return px_sys_fail(c, "linkat", errno);
    if (linkat(c->fd, "", AT_FDCWD, c->path, AT_EMPTY_PATH) != 0) {
        int e = errno;
        if (e == ENOENT || e == EPERM || e == EINVAL) {
            snprintf(proc, sizeof proc, "/proc/self/fd/%d", c->fd);
            e = linkat(AT_FDCWD, proc, AT_FDCWD, c->path, AT_SYMLINK_FOLLOW) == 0 ? 0 : errno;
        }
        if (e == EEXIST) return px_ctx_fail(c, "the destination exists", EFS_ERROR_FILE_EXISTS);
        if (e) return px_sys_fail(c, "linkat", e);
    }
    int fd = c->fd;
    c->fd = -1;
    c->anonymous = 0;
    /* a failing close can mean lost writes (delayed write errors): take back
     * the name just linked, which no_replace guarantees was not there before */
    if (close(fd) != 0 || px_fault(c, EFS_FAULT_CLOSE)) {
        unlink(c->path);
        return px_sys_fail(c, "close", errno);
    }
    return 0;
}

/* Everything arrived and validated: give the temporary its attributes, then
 * its name.  ntfs-3g wants the data streams before user.ntfs.efsinfo (8.4). */
efs_dword px_commit(posix_ctx *c)
{
    efs_dword rc;
    if (c->opt.null_sink) return 0;
    if (c->anonymous) return commit_anonymous(c);
    if (c->fd >= 0) {
        if ((rc = px_window_flush(c, NULL, 0))) return rc;
        if (c->opt.sync_each && fsync(c->fd) != 0) return px_sys_fail(c, "fsync", errno);
        int fd = c->fd;
        c->fd = -1;
        if (close(fd) != 0 || px_fault(c, EFS_FAULT_CLOSE)) return px_sys_fail(c, "close", errno);
    }
    for (size_t i = 0; i < c->nnamed; i++)
        if (px_fault(c, EFS_FAULT_XATTR_STREAM) || setxattr(c->tmp, c->named[i].xname, c->named[i].data ? (void *)c->named[i].data : "",
                     c->named[i].len, 0) != 0)
            return xattr_fail(c, "setxattr (named stream)", c->named[i].xname, c->named[i].len,
                              c->tmp, -1, c->opt.fault_point == EFS_FAULT_XATTR_STREAM);
    if (c->meta && (px_fault(c, EFS_FAULT_XATTR_EFSINFO) ||
                    setxattr(c->tmp, EFSINFO_XATTR, c->meta, c->meta_len, 0) != 0))
        return xattr_fail(c, "setxattr (user.ntfs.efsinfo)", "the $EFS", c->meta_len, c->tmp, -1,
                          c->opt.fault_point == EFS_FAULT_XATTR_EFSINFO);
    if (c->meta && (rc = px_check_marked_encrypted(c, c->tmp, -1))) return rc;
    if ((rc = publish(c))) return rc;
    free(c->tmp);
    c->tmp = NULL;
    return 0;
}

/* Everything arrived and validated, and the folder exists: apply the named
 * streams and $EFS to it, keeping what it holds (efs_posix_dir.c); on NTFS
 * it must end up marked encrypted. */
efs_dword px_commit_in_place(posix_ctx *c)
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
    return c->meta ? px_check_marked_encrypted(c, c->path, -1) : 0;
}

#endif /* !_WIN32 */

/* ISO C wants a non-empty translation unit on the other platform. */
typedef int efs_posix_publish_unit;
