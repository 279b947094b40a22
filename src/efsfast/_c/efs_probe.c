/*
 * efs_probe.c -- see efs_probe.h.  The walk is raw.walk_for_unnamed_stream's,
 * step for step (tests/test_probe.py holds the two against each other on
 * generated and mutated streams): the same answer for every input, since a
 * tree restore may take either.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "efs_io.h"
#include "efs_layout.h"
#include "efs_probe.h"

#define PROBE_WINDOW 4096u       /* raw.py's _PROBE_WINDOW: one read covers most headers */

typedef struct probe_reader {
    int fd;
    uint8_t buf[PROBE_WINDOW];
    uint64_t base;               /* file offset of buf[0] */
    size_t have;                 /* valid bytes in buf */
    int *err;
} probe_reader;

/* Point *out at the n (<= PROBE_WINDOW) bytes at pos; returns how many of
 * them exist (fewer past the end of the file), or -1 on a read error. */
static long probe_read(probe_reader *r, uint64_t pos, size_t n, const uint8_t **out)
{
    if (!(r->base <= pos && pos + n <= r->base + r->have)) {
        long got = efs_fd_read(r->fd, r->buf, PROBE_WINDOW, (int64_t)pos, r->err);
        if (got < 0) return -1;
        r->base = pos;
        r->have = (size_t)got;
    }
    *out = r->buf + (pos - r->base);
    if (pos - r->base >= r->have) return 0;
    return (long)(r->have - (pos - r->base) < n ? r->have - (pos - r->base) : n);
}

int efs_probe_unnamed_fd(int fd, uint64_t end, int *err)
{
    probe_reader r;
    const uint8_t *head, *p;
    uint64_t pos = EFS_RAW_HDR_LEN;
    unsigned long streams = 0, efs_segments = 0;
    long got;
    r.fd = fd;
    r.base = 0;
    r.have = 0;
    r.err = err;
    for (;;) {
        uint32_t length, name_len;
        if (pos == end) return efs_segments ? EFS_PROBE_NO_UNNAMED : EFS_PROBE_UNKNOWN;
        if (pos > end) return EFS_PROBE_UNKNOWN;
        if ((got = probe_read(&r, pos, EFS_PEEK_LEN, &head)) < 0) return EFS_PROBE_IO_ERROR;
        if (got < (long)EFS_PEEK_LEN) return EFS_PROBE_UNKNOWN;
        length = efs_get32(head);
        if (memcmp(head + EFS_STREAM_OFF_SIG, EFS_SIG_NTFS, EFS_SIG_LEN) == 0) {
            streams++;
            /* a name that cannot be read whole is not the unnamed one */
            if ((got = probe_read(&r, pos + EFS_STREAM_OFF_NAMELEN, 4, &p)) < 0)
                return EFS_PROBE_IO_ERROR;
            name_len = got == 4 ? efs_get32(p) : 0;
            if (name_len == sizeof EFS_UNNAMED_NAME || name_len == sizeof EFS_UNNAMED_NAME + 2) {
                if ((got = probe_read(&r, pos + EFS_STREAM_HDR_FIXED, name_len, &p)) < 0)
                    return EFS_PROBE_IO_ERROR;
                if (got == (long)name_len
                        && memcmp(p, EFS_UNNAMED_NAME, sizeof EFS_UNNAMED_NAME) == 0
                        && (name_len == sizeof EFS_UNNAMED_NAME
                            || (p[sizeof EFS_UNNAMED_NAME] == 0
                                && p[sizeof EFS_UNNAMED_NAME + 1] == 0)))
                    return EFS_PROBE_UNNAMED;
            }
        } else if (memcmp(head + EFS_STREAM_OFF_SIG, EFS_SIG_GURE, EFS_SIG_LEN) != 0) {
            return EFS_PROBE_UNKNOWN;
        } else if (streams == 1) {
            efs_segments++;
        }
        if (length < EFS_PEEK_LEN) return EFS_PROBE_UNKNOWN;
        pos += length;
    }
}

int efs_probe_unnamed_path(const char *path, int *err)
{
#if defined(_WIN32)
    (void)path;
    *err = ENOSYS;
    return EFS_PROBE_IO_ERROR;
#else
    struct stat st;
    int rc, fd = efs_fd_open_read(path, err);
    if (fd < 0) return EFS_PROBE_IO_ERROR;
    if (fstat(fd, &st) != 0) {
        *err = errno;
        efs_fd_close(fd);
        return EFS_PROBE_IO_ERROR;
    }
    rc = efs_probe_unnamed_fd(fd, (uint64_t)st.st_size, err);
    efs_fd_close(fd);
    return rc;
#endif
}
