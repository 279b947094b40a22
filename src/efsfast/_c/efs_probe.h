/*
 * efs_probe.h -- does a raw stream carry an unnamed data stream (a file's
 * does, a directory's does not)?  Found by walking the stream and segment
 * headers with positioned reads, the ciphertext never read: the C twin of
 * raw.walk_for_unnamed_stream, so that a tree restore tells folders from
 * files on worker threads without the GIL instead of in its calling thread.
 */
#ifndef EFSFAST_EFS_PROBE_H
#define EFSFAST_EFS_PROBE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum efs_probe_result {
    EFS_PROBE_NO_UNNAMED = 0,    /* whole streams, a $EFS segment, no unnamed stream */
    EFS_PROBE_UNNAMED = 1,       /* an unnamed data stream: a file's */
    EFS_PROBE_UNKNOWN = 2,       /* the headers do not walk (the restore reports why) */
    EFS_PROBE_IO_ERROR = 3       /* could not be opened or read (*err says why) */
};

/* Probe the raw stream in the file at `path` (POSIX: bytes; Windows: not
 * supported, EFS_PROBE_IO_ERROR with *err = ENOSYS). */
int efs_probe_unnamed_path(const char *path, int *err);
/* Probe `end` bytes read through `fd` at offsets. */
int efs_probe_unnamed_fd(int fd, uint64_t end, int *err);

#ifdef __cplusplus
}
#endif
#endif /* EFSFAST_EFS_PROBE_H */
