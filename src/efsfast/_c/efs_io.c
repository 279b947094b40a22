/* efs_io.c -- see efs_io.h. */
#ifndef _WIN32
#define _GNU_SOURCE
#endif
#include <errno.h>

#include "efs_io.h"

#if defined(_WIN32)
#include <io.h>
#include <stdio.h>
#include <stdlib.h>

uint8_t *efs_big_alloc(size_t n) { return (uint8_t *)malloc(n ? n : 1); }

uint8_t *efs_big_grow(uint8_t *p, size_t old, size_t n)
{
    (void)old;
    return (uint8_t *)realloc(p, n);
}

void efs_big_free(uint8_t *p, size_t n)
{
    (void)n;
    free(p);
}

long efs_fd_read(int fd, uint8_t *buf, size_t n, int64_t offset, int *err)
{
    int r;
    if (n > 0x40000000u) n = 0x40000000u;
    if (offset >= 0 && _lseeki64(fd, offset, SEEK_SET) < 0) { *err = errno; return -1; }
    r = _read(fd, buf, (unsigned)n);
    if (r < 0) { *err = errno; return -1; }
    return r;
}

int efs_fd_write_all(int fd, const uint8_t *buf, size_t n, int *err)
{
    while (n > 0) {
        int w = _write(fd, buf, (unsigned)(n > 0x40000000u ? 0x40000000u : n));
        if (w < 0) { *err = errno; return -1; }
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}
#else
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

uint8_t *efs_big_alloc(size_t n)
{
    void *p = mmap(NULL, n ? n : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : (uint8_t *)p;
}

uint8_t *efs_big_grow(uint8_t *p, size_t old, size_t n)
{
    void *q;
    if (p == NULL) return efs_big_alloc(n);
#if defined(__linux__)
    q = mremap(p, old ? old : 1, n, MREMAP_MAYMOVE);
    return q == MAP_FAILED ? NULL : (uint8_t *)q;
#else
    q = efs_big_alloc(n);
    if (q == NULL) return NULL;
    memcpy(q, p, old < n ? old : n);
    efs_big_free(p, old);
    return (uint8_t *)q;
#endif
}

void efs_big_free(uint8_t *p, size_t n)
{
    if (p != NULL) munmap(p, n ? n : 1);
}

long efs_fd_read(int fd, uint8_t *buf, size_t n, int64_t offset, int *err)
{
    for (;;) {
        ssize_t r = offset >= 0 ? pread(fd, buf, n, (off_t)offset) : read(fd, buf, n);
        if (r >= 0) return (long)r;
        if (errno != EINTR) { *err = errno; return -1; }
    }
}

int efs_fd_write_all(int fd, const uint8_t *buf, size_t n, int *err)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            *err = errno;
            return -1;
        }
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}
#endif

#include <string.h>

#if defined(_MSC_VER)
#include <intrin.h>
size_t efs_atomic_next(size_t *counter)
{
#if defined(_WIN64)
    return (size_t)_InterlockedExchangeAdd64((volatile __int64 *)counter, 1);
#else
    return (size_t)_InterlockedExchangeAdd((volatile long *)counter, 1);
#endif
}
void efs_atomic_add(uint64_t *counter, uint64_t value)
{
    _InterlockedExchangeAdd64((volatile __int64 *)counter, (__int64)value);
}
void efs_atomic_set(uint64_t *flag, uint64_t value)
{
    _InterlockedExchange64((volatile __int64 *)flag, (__int64)value);
}
uint64_t efs_atomic_get(uint64_t *flag)
{
    return (uint64_t)_InterlockedCompareExchange64((volatile __int64 *)flag, 0, 0);
}
#else
size_t efs_atomic_next(size_t *counter) { return __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED); }
void efs_atomic_add(uint64_t *counter, uint64_t value)
{
    __atomic_fetch_add(counter, value, __ATOMIC_RELAXED);
}
/* A flag that publishes what its setter wrote before it (release), read by
 * another thread that then sees all of that (acquire). */
void efs_atomic_set(uint64_t *flag, uint64_t value) { __atomic_store_n(flag, value, __ATOMIC_RELEASE); }
uint64_t efs_atomic_get(uint64_t *flag) { return __atomic_load_n(flag, __ATOMIC_ACQUIRE); }
#endif

#if defined(_WIN32)
int efs_fd_open_read(const char *path, int *err) { (void)path; *err = ENOSYS; return -1; }
int efs_fd_close(int fd) { return _close(fd); }
#else
#include <fcntl.h>
int efs_fd_open_read(const char *path, int *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) *err = errno;
    return fd;
}
int efs_fd_close(int fd) { return close(fd); }
#endif

static void *(*volatile bench_copy)(void *, const void *, size_t) = memcpy;

uint64_t efs_bench_memcpy(uint8_t *dst, const uint8_t *src, size_t n, size_t chunk,
                          uint64_t total)
{
    uint64_t moved = 0;
    size_t pos = 0;
    if (n == 0 || chunk == 0) return 0;
    while (moved < total) {
        size_t k = n - pos < chunk ? n - pos : chunk;
        bench_copy(dst, src + pos, k);
        pos += k;
        if (pos >= n) pos = 0;
        moved += k;
    }
    return moved;
}

efs_dword efs_win32_from_errno(int e)
{
    switch (e) {
    case ENOENT: return EFS_ERROR_PATH_NOT_FOUND;
    case EACCES: case EPERM: case EROFS: case EISDIR: return EFS_ERROR_ACCESS_DENIED;
    case ENOSPC:
#ifdef EDQUOT
    case EDQUOT:
#endif
        return EFS_ERROR_DISK_FULL;
    case EEXIST: return EFS_ERROR_ALREADY_EXISTS;
    case ENOTEMPTY: return EFS_ERROR_DIR_NOT_EMPTY;
    case ENAMETOOLONG: return EFS_ERROR_FILENAME_EXCED_RANGE;
    case ENOTDIR: return EFS_ERROR_DIRECTORY;
    case ENOMEM: return EFS_ERROR_NOT_ENOUGH_MEMORY;
    case EBUSY: return EFS_ERROR_SHARING_VIOLATION;
#ifdef ETXTBSY
    case ETXTBSY: return EFS_ERROR_SHARING_VIOLATION;
#endif
#ifdef ENOTSUP
    case ENOTSUP: return EFS_ERROR_EAS_NOT_SUPPORTED;
#endif
    case E2BIG: case ERANGE: return 277u;  /* ERROR_EA_TABLE_FULL */
    case EINVAL: return EFS_ERROR_INVALID_PARAMETER;
    case EIO: return EFS_ERROR_WRITE_FAULT;
    case EBADF: return EFS_ERROR_INVALID_HANDLE;
    default: return EFS_ERROR_GEN_FAILURE;
    }
}

/* ---- Ctrl-C while the GIL is released ----
 * Python's own SIGINT handler only sets a flag that the main thread looks at
 * when it runs bytecode, which it does not do inside a long nogil restore.
 * efsfast chains a handler in front of it that also bumps a counter the
 * trampolines compare on every callback, so a restore stops within one
 * system buffer.  The signal is process-wide, so this is the one piece of
 * global state; it holds no restore's data. */
volatile unsigned efs_sigint_counter;

#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

/* Console control handlers run LIFO: ours counts, then returns FALSE so the
 * C runtime's handler (which raises SIGINT for Python) still runs. */
static BOOL WINAPI ctrl_handler(DWORD type)
{
    if (type == CTRL_C_EVENT || type == CTRL_BREAK_EVENT) efs_sigint_counter++;
    return FALSE;
}

int efs_sigint_install(void)
{
    static volatile LONG installed;
    if (InterlockedCompareExchange(&installed, 1, 0) != 0) return 0;
    return SetConsoleCtrlHandler(ctrl_handler, TRUE) ? 0 : -1;
}
#else
#include <signal.h>
#include <string.h>

static struct sigaction sigint_previous;

/* (an aligned unsigned store is atomic on every platform efsfast builds for;
 * sig_atomic_t would do too, but the trampolines want a plain load) */
static void sigint_handler(int sig, siginfo_t *info, void *uctx)
{
    efs_sigint_counter++;
    if (sigint_previous.sa_flags & SA_SIGINFO) {
        if (sigint_previous.sa_sigaction) sigint_previous.sa_sigaction(sig, info, uctx);
    } else if (sigint_previous.sa_handler == SIG_DFL) {
        signal(sig, SIG_DFL);
        raise(sig);
    } else if (sigint_previous.sa_handler != SIG_IGN) {
        sigint_previous.sa_handler(sig);
    }
}

int efs_sigint_install(void)
{
    struct sigaction now, ours;
    if (sigaction(SIGINT, NULL, &now) != 0) return -1;
    if ((now.sa_flags & SA_SIGINFO) && now.sa_sigaction == sigint_handler) return 0;
    if (!(now.sa_flags & SA_SIGINFO) && now.sa_handler == SIG_IGN) return 0;
    memset(&ours, 0, sizeof ours);
    ours.sa_sigaction = sigint_handler;
    ours.sa_flags = SA_SIGINFO | (now.sa_flags & SA_RESTART);
    sigemptyset(&ours.sa_mask);
    sigint_previous = now;
    return sigaction(SIGINT, &ours, NULL);
}

#endif
