/*
 * efs_io.h -- the few platform differences the Cython core needs: reading a
 * file descriptor at an offset or at its position, writing one, the
 * atomic no-replace rename, and stand-ins for the system side that does not
 * exist on this platform (so one Cython source builds everywhere).
 */
#ifndef EFSFAST_EFS_IO_H
#define EFSFAST_EFS_IO_H

#include <stddef.h>
#include <stdint.h>
#include "efs_backend.h"

/* The Cython trampolines use the platform's default calling convention,
 * which is advapi32's (WINAPI) only on 64-bit Windows; 32-bit x86 would need
 * __stdcall shims, which efsfast does not build. */
#if defined(_WIN32) && !defined(_WIN64)
#error "efsfast supports 64-bit Windows only (win_amd64)"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Read up to n bytes; offset < 0 reads at the current position (pipes).
 * Returns the count, 0 at end of file, -1 with *err set. */
long efs_fd_read(int fd, uint8_t *buf, size_t n, int64_t offset, int *err);
/* Write all n bytes; returns 0 or -1 with *err set. */
int efs_fd_write_all(int fd, const uint8_t *buf, size_t n, int *err);
/* Benchmarks: copy `total` bytes of src[0..n) in `chunk` pieces into dst,
 * through a volatile function pointer so the copy cannot be optimised out. */
uint64_t efs_bench_memcpy(uint8_t *dst, const uint8_t *src, size_t n, size_t chunk,
                          uint64_t total);
/* Atomically take the next index of a shared counter (bulk workers). */
size_t efs_atomic_next(size_t *counter);
void efs_atomic_add(uint64_t *counter, uint64_t value);
/* Set (release) and read (acquire) a flag that hands data between threads. */
void efs_atomic_set(uint64_t *flag, uint64_t value);
uint64_t efs_atomic_get(uint64_t *flag);
/* Open a file for reading (POSIX: bytes path; Windows: -1, unsupported). */
int efs_fd_open_read(const char *path, int *err);
int efs_fd_close(int fd);
/* Chain a SIGINT handler that counts (main thread, GIL held); 0 on success. */
int efs_sigint_install(void);
/* Read on every callback: a plain load, not a call into another unit. */
extern volatile unsigned efs_sigint_counter;
static inline unsigned efs_sigint_count(void) { return efs_sigint_counter; }
/* Large buffers given back to the system as soon as they are freed.  An
 * exported object held in memory for an upload is freed by another thread
 * than the one that made it; malloc keeps such blocks in its arenas once its
 * mmap threshold has risen to their size, so a process of many in-flight
 * objects grew to three times what it held.  POSIX: a mapping of its own
 * (pages cost memory only once written), grown by mremap without a copy on
 * Linux; Windows: the heap, which maps large blocks itself.  NULL on failure. */
uint8_t *efs_big_alloc(size_t n);
uint8_t *efs_big_grow(uint8_t *p, size_t old, size_t n);
void efs_big_free(uint8_t *p, size_t n);
/* Win32 code for an errno value. */
efs_dword efs_win32_from_errno(int e);

#if defined(_WIN32)
/* The POSIX side does not exist on Windows. */
typedef struct efs_posix_options {
    uint32_t buffer_size;
    uint64_t seed;
    uint32_t min_size;
    unsigned mode;
    int null_sink;
    unsigned cluster_shift;
    int no_replace;
    int unvalidated_copy;
    int fault_point;
    int fault_errno;
    int sync_each;
} efs_posix_options;
#define EFS_HAVE_POSIX 0
#define EFS_HAVE_WIN32 1
static inline const efs_backend *efs_posix_backend(void) { return NULL; }
static inline void efs_posix_default_options(efs_posix_options *o) { (void)o; }
static inline efs_dword efs_posix_open_ex(const char *p, efs_ulong f, const efs_posix_options *o, void **c)
{ (void)p; (void)f; (void)o; *c = NULL; return EFS_ERROR_NOT_SUPPORTED; }
static inline const efs_error *efs_posix_last_format_error(const void *c) { (void)c; return NULL; }
static inline int efs_posix_last_errno(const void *c) { (void)c; return 0; }
static inline const char *efs_posix_last_operation(const void *c) { (void)c; return NULL; }
static inline efs_dword efs_posix_get_object_stat(const void *c, efs_posix_object_stat *o)
{ (void)c; (void)o; return EFS_ERROR_NOT_SUPPORTED; }
static inline long efs_posix_object_xattr(void *c, const char *n, uint8_t *b, size_t k, int *e)
{ (void)c; (void)n; (void)b; (void)k; *e = 38 /* ENOSYS */; return -1; }
static inline efs_dword efs_posix_load_efs(void *c, const uint8_t **d, size_t *n)
{ (void)c; *d = NULL; *n = 0; return EFS_ERROR_NOT_SUPPORTED; }
static inline efs_dword efs_posix_backup_item(efs_backup_item *it, const efs_posix_options *o,
                                              const int *c, unsigned b)
{ (void)o; (void)c; (void)b; return it->rc = EFS_ERROR_NOT_SUPPORTED; }
static inline void efs_posix_backup_item_free(efs_backup_item *it) { (void)it; }
#else
#define EFS_HAVE_POSIX 1
#define EFS_HAVE_WIN32 0
static inline const efs_backend *efs_win32_backend(void) { return NULL; }
static inline efs_dword efs_win32_enable_privileges(int b, int r)
{ (void)b; (void)r; return EFS_ERROR_NOT_SUPPORTED; }
#endif

#ifdef __cplusplus
}
#endif
#endif /* EFSFAST_EFS_IO_H */
