/*
 * efs_setmeta.c -- see efs_setmeta.h.
 */
#ifndef _WIN32
#define _POSIX_C_SOURCE 200809L
#endif

#include "efs_setmeta.h"

#include <errno.h>

#ifndef _WIN32
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

/* Nanoseconds to a timespec with tv_nsec in [0, 1e9), as os.utime(ns=...)
 * converts them (floor division: -1 ns is 1 ns before the epoch). */
static struct timespec to_timespec(int64_t ns)
{
    struct timespec ts;
    int64_t sec = ns / 1000000000, rem = ns % 1000000000;
    if (rem < 0) {
        rem += 1000000000;
        sec -= 1;
    }
    ts.tv_sec = (time_t)sec;
    ts.tv_nsec = (long)rem;
    return ts;
}

int efs_set_posix_meta(const char *path, int mode, int64_t atime_ns, int64_t mtime_ns,
                       const char **op)
{
    struct timespec times[2];
    if (mode >= 0 && fchmodat(AT_FDCWD, path, (mode_t)mode, 0) != 0) {
        *op = "chmod";
        return errno;
    }
    times[0] = to_timespec(atime_ns);
    times[1] = to_timespec(mtime_ns);
    if (utimensat(AT_FDCWD, path, times, 0) != 0) {
        *op = "utime";
        return errno;
    }
    *op = NULL;
    return 0;
}

#else

int efs_set_posix_meta(const char *path, int mode, int64_t atime_ns, int64_t mtime_ns,
                       const char **op)
{
    (void)path;
    (void)mode;
    (void)atime_ns;
    (void)mtime_ns;
    *op = "chmod";
    return ENOSYS;
}

#endif
