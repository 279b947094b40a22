/*
 * efs_posix_window.c -- the import window: where WriteEncryptedFileRaw's
 * system buffers live on the POSIX side, and how the ciphertext they carry
 * reaches the file.
 *
 * The import callback fills one system buffer per call (spec 7.5; 64 KiB by
 * default).  Writing each buffer's ciphertext as it arrives costs one write()
 * per buffer, and on ntfs-3g every write() costs a FUSE round trip of its own
 * besides the WRITE requests (the kernel asks the daemon for
 * security.capability before each one).  So the buffers are offered one
 * after another at successive places of a window of about 1 MiB per thread:
 * the ciphertext slices the parser finds stay where they arrived, and once
 * the window is full one writev sends them, with no second copy.  The
 * callback still gets a buffer and its capacity, valid for that call only
 * (7.5); the window bounds the memory whatever the file's size.
 *
 * Invariant: the pending slices (iov) all lie in the window, in file order
 * at increasing, non-overlapping addresses, and below window_pos, where the
 * next system buffer goes.  That is what lets compact() move them to the
 * window's start with memmove, piece by piece.
 */
#ifndef _WIN32
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "efs_posix_internal.h"

#define WINDOW_ALIGN 64u        /* each system buffer starts on a cache line */

size_t px_window_bytes(const posix_ctx *c)
{
    if (c->opt.null_sink) return (size_t)c->opt.buffer_size + EFS_POSIX_GUARD;
    return IMPORT_WINDOW + WINDOW_ALIGN + (size_t)c->opt.buffer_size + EFS_POSIX_GUARD;
}

/* On ntfs-3g (FUSE) a write through the page cache reaches the daemon one
 * 4 KiB page per WRITE request (ntfs-3g does not ask for big_writes), and the
 * pages stay cached on the temporary's inode until it is evicted, which its
 * unlink after the link does (about 40 ms per 256 MiB).  With O_DIRECT the
 * kernel sends the user's buffer in requests of up to max_write (128 KiB) and
 * caches nothing: a 256 MiB file takes 2,048 WRITE requests instead of
 * 65,537, and a 10,000-byte file one instead of three.  FUSE needs no
 * alignment for it; a file system that does (EINVAL) gets buffered writes. */
void px_window_direct_io(posix_ctx *c)
{
    c->direct_io = fcntl(c->fd, F_SETFL, O_DIRECT) == 0;
}

static int leave_direct_io(posix_ctx *c)
{
    c->direct_io = 0;
    return fcntl(c->fd, F_SETFL, 0) == 0;
}

/* Writes the first `n` pending bytes, then `extra` (the trailer). */
static efs_dword write_pending(posix_ctx *c, size_t n, const uint8_t *extra, size_t extra_len)
{
    struct iovec v[IOV_SLICES + 1], *p = v;
    int cnt = 0;
    size_t len = n + extra_len;

    for (int i = 0; i < c->niov && n > 0; i++) {
        v[cnt] = c->iov[i];
        if (v[cnt].iov_len > n) v[cnt].iov_len = n;
        n -= v[cnt++].iov_len;
    }
    if (extra_len) {
        v[cnt].iov_base = (void *)extra;
        v[cnt++].iov_len = extra_len;
    }
    while (len > 0) {
        ssize_t w = px_fault(c, EFS_FAULT_WRITE) ? -1 : writev(c->fd, p, cnt);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EINVAL && c->direct_io && leave_direct_io(c)) continue;
            return px_sys_fail(c, "write", errno);
        }
        len -= (size_t)w;
        c->file_bytes += (uint64_t)w;
        while (cnt > 0 && (size_t)w >= p->iov_len) { w -= (ssize_t)p->iov_len; p++; cnt--; }
        if (cnt > 0) {
            p->iov_base = (uint8_t *)p->iov_base + w;
            p->iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* Moves the last `keep` pending bytes to the start of the window, in file
 * order, and makes them the only pending slice. */
static void compact(posix_ctx *c, size_t keep)
{
    size_t skip = c->iov_bytes - keep, at = 0;
    for (int i = 0; i < c->niov; i++) {
        const uint8_t *src = c->iov[i].iov_base;
        size_t len = c->iov[i].iov_len;
        if (skip >= len) { skip -= len; continue; }
        src += skip;
        len -= skip;
        skip = 0;
        if (c->window + at != src) memmove(c->window + at, src, len);   /* at <= src: the invariant */
        at += len;
    }
    c->niov = keep ? 1 : 0;
    c->iov[0].iov_base = c->window;
    c->iov[0].iov_len = keep;
    c->iov_bytes = keep;
}

/* Makes room while the stream goes on: with enough pending, write it up to a
 * page boundary of the file (a file system handles whole pages fastest) and
 * keep the rest; less (tiny system buffers, many slices) is gathered at the
 * window's start rather than written small. */
static efs_dword drain(posix_ctx *c)
{
    efs_dword rc;
    size_t keep;
    if (c->iov_bytes < GATHER_BELOW) {
        compact(c, c->iov_bytes);
        return 0;
    }
    keep = (size_t)((c->file_bytes + c->iov_bytes) % PAGE_ALIGN);
    if ((rc = write_pending(c, c->iov_bytes - keep, NULL, 0))) {
        c->niov = 0;
        c->iov_bytes = 0;
        return rc;
    }
    compact(c, keep);
    return 0;
}

uint8_t *px_window_next(posix_ctx *c, efs_dword *rc)
{
    *rc = 0;
    if (c->niov == 0) {
        c->window_pos = 0;
    } else if (c->window_pos >= IMPORT_WINDOW) {
        if ((*rc = drain(c))) return NULL;
        c->window_pos = c->iov_bytes;
    }
    /* window_pos < IMPORT_WINDOW here, so the buffer, its capacity and the
     * guard fit in px_window_bytes */
    c->window_pos = (c->window_pos + WINDOW_ALIGN - 1) & ~(size_t)(WINDOW_ALIGN - 1);
    return c->window + c->window_pos;
}

void px_window_took(posix_ctx *c, size_t len)
{
    c->window_pos += len;
}

efs_dword px_window_put(posix_ctx *c, const uint8_t *p, size_t n)
{
    efs_dword rc;
    struct iovec *last = c->niov ? &c->iov[c->niov - 1] : NULL;
    if (n == 0) return 0;
    if (last && (const uint8_t *)last->iov_base + last->iov_len == p) {
        last->iov_len += n;             /* a segment's payload split across two buffers */
    } else {
        if (c->niov == IOV_SLICES && (rc = drain(c))) return rc;
        c->iov[c->niov].iov_base = (void *)p;
        c->iov[c->niov++].iov_len = n;
    }
    c->iov_bytes += n;
    return 0;
}

efs_dword px_window_flush(posix_ctx *c, const uint8_t *extra, size_t extra_len)
{
    efs_dword rc = 0;
    if (c->iov_bytes + extra_len > 0) rc = write_pending(c, c->iov_bytes, extra, extra_len);
    c->niov = 0;
    c->iov_bytes = 0;
    return rc;
}

#endif /* !_WIN32 */

/* ISO C wants a non-empty translation unit on the other platform. */
typedef int efs_posix_window_unit;
