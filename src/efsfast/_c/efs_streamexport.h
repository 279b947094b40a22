/*
 * efs_streamexport.h -- one object of a backup set exported into memory (POSIX
 * side), for a tar stream: the same facts efs_posix_backup_item records (stat,
 * NTFS metadata, $EFS and stream SHA-256), the raw stream kept in memory of
 * its own rather than written to a file, so that one writer can put the
 * members into the stream in order while workers export without the GIL.
 */
#ifndef EFSFAST_EFS_STREAMEXPORT_H
#define EFSFAST_EFS_STREAMEXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "efs_backend.h"
#include "efs_io.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct efs_mem_stream {
    uint8_t *data;      /* malloc'd; the caller frees it with efs_mem_stream_free */
    size_t len;
    size_t cap;
    int large;          /* a file over the limit: its facts only, the stream not
                           exported (the caller streams it in another way) */
} efs_mem_stream;

#if defined(_WIN32)
static inline efs_dword efs_posix_backup_item_to_memory(efs_backup_item *it, efs_mem_stream *m,
                                                         uint64_t limit,
                                                         const efs_posix_options *o,
                                                         const int *c, unsigned b)
{ (void)m; (void)limit; (void)o; (void)c; (void)b; return it->rc = EFS_ERROR_NOT_SUPPORTED; }
static inline void efs_mem_stream_free(efs_mem_stream *m) { (void)m; }
static inline void efs_pause_us(unsigned us) { (void)us; }
#else
/* Export the object it->src (it->flags) into m, recording in it what
 * efs_posix_backup_item records (it->dest and it->tmp are not used).  A file
 * whose size is over ``limit`` is left unexported: m->large set, outcome DONE
 * with its facts and no stream hash. */
efs_dword efs_posix_backup_item_to_memory(efs_backup_item *it, efs_mem_stream *m, uint64_t limit,
                                          const efs_posix_options *o, const int *cancel,
                                          unsigned sigint_base);
void efs_mem_stream_free(efs_mem_stream *m);
/* Sleep about ``us`` microseconds (a worker waiting for the writer). */
void efs_pause_us(unsigned us);
#endif

#ifdef __cplusplus
}
#endif
#endif /* EFSFAST_EFS_STREAMEXPORT_H */
