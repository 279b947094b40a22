/*
 * efs_setmeta.h -- the POSIX metadata a backup set records (permission bits,
 * access and modification times), set on a restored object by path: the C
 * twin of backupset/metadata.apply for POSIX metadata on a POSIX file
 * system, so that a set restore sets it on worker threads without the GIL
 * instead of in its calling thread.
 */
#ifndef EFSFAST_EFS_SETMETA_H
#define EFSFAST_EFS_SETMETA_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* chmod(path, mode) unless mode < 0, then utimensat(path, times) following
 * symbolic links (as os.chmod and os.utime do by default).  Times are in
 * nanoseconds since the epoch (negative before it).  Returns 0, or the errno
 * of the first call that failed (the calls after it are not made); *op names
 * that call.  Windows: ENOSYS. */
int efs_set_posix_meta(const char *path, int mode, int64_t atime_ns, int64_t mtime_ns,
                       const char **op);

#ifdef __cplusplus
}
#endif
#endif /* EFSFAST_EFS_SETMETA_H */
