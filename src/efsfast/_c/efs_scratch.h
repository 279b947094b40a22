/*
 * efs_scratch.h -- per-thread working buffers for the POSIX side.
 *
 * A bulk job restores or backs up thousands of files per worker thread; the
 * buffers each one needs (the import window, the export buffer, the $EFS and
 * xattr values) are kept per thread and reused, not allocated and freed per
 * file: large malloc/free pairs turn into mmap/munmap or heap trimming, which
 * take the process-wide memory-map lock and serialise the workers.  A
 * thread's buffers are freed when it exits.  Re-entrant use on one thread (a
 * callback that starts another restore) gets a fresh allocation instead.
 */
#ifndef EFSFAST_EFS_SCRATCH_H
#define EFSFAST_EFS_SCRATCH_H

#include <stddef.h>
#include <stdint.h>

typedef enum efs_scratch_slot {
    EFS_SCRATCH_SYSTEM_BUFFER,   /* import: the window of system buffers */
    EFS_SCRATCH_META,            /* import: the parser's $EFS buffer */
    EFS_SCRATCH_EXPORT_BUFFER,   /* export: the buffer handed to the callback */
    EFS_SCRATCH_XATTR_VALUE,     /* export: $EFS and named-stream values */
    EFS_SCRATCH_XATTR_LIST,      /* export: the xattr name list */
    EFS_SCRATCH_FILE,            /* export: a small file read whole */
    EFS_SCRATCH_SLOTS
} efs_scratch_slot;

/* A buffer of at least `size` bytes for this thread, or NULL (out of memory).
 * Give it back with efs_scratch_put(slot, p) before the next take. */
uint8_t *efs_scratch_take(efs_scratch_slot slot, size_t size);
void efs_scratch_put(efs_scratch_slot slot, uint8_t *p);

#endif /* EFSFAST_EFS_SCRATCH_H */
