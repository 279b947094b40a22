/*
 * efs_posix_streamexport.c -- one object of a backup set exported into
 * memory (POSIX side) for a tar stream, without the GIL: opened for export
 * once, its NTFS metadata and $EFS read through that descriptor, its raw
 * stream appended to a buffer of its own and hashed as it comes.  The
 * Cython core (_core_streamexport.pxi) runs it for many objects on worker
 * threads; backupset/tarbulk.py writes the members.  The steps before the
 * data (open, stat, ntfs-3g facts, $EFS) are efs_posix_backup_item's own
 * (efs_posix_backup_open).
 */
#ifndef _WIN32
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "efs_layout.h"
#include "efs_sha256.h"
#include "efs_streamexport.h"

#define HEADROOM 4096u                      /* stream headers beyond data and $EFS */

typedef struct mem_tee {
    efs_backup_item *it;
    efs_mem_stream *m;
    efs_sha256 hash;
    const int *cancel;
    unsigned sigint_base;
} mem_tee;

/* The export callback: each system buffer appended and hashed. */
static efs_dword EFS_WINAPI to_memory_hashed(uint8_t *data, void *context, efs_ulong n)
{
    mem_tee *t = context;
    efs_mem_stream *m = t->m;
    if ((t->cancel && *t->cancel) || efs_sigint_count() != t->sigint_base)
        return EFS_ERROR_CANCELLED;
    if (n > m->cap - m->len) {
        size_t cap = m->cap ? m->cap : 65536u;
        uint8_t *p;
        while (cap - m->len < n) cap *= 2;
        if (!(p = realloc(m->data, cap))) return EFS_ERROR_NOT_ENOUGH_MEMORY;
        m->data = p;
        m->cap = cap;
    }
    memcpy(m->data + m->len, data, n);
    m->len += n;
    efs_sha256_update(&t->hash, data, n);
    t->it->data_len += n;
    t->it->calls++;
    return 0;
}

efs_dword efs_posix_backup_item_to_memory(efs_backup_item *it, efs_mem_stream *m, uint64_t limit,
                                          const efs_posix_options *o, const int *cancel,
                                          unsigned sigint_base)
{
    void *ctx = NULL;
    size_t efs_len;
    mem_tee t;
    efs_dword rc;

    it->no_hash = 0;            /* (a stream's members are always hashed) */
    if ((rc = efs_posix_backup_open(it, o, &ctx)) != 0 || it->outcome == EFS_BACKUP_PLAIN)
        goto out;
    efs_len = it->efs_len;
    if (!(it->flags & EFS_CREATE_FOR_DIR) && it->st.size > limit) {
        m->large = 1;           /* its facts only: the caller streams it */
        it->outcome = EFS_BACKUP_DONE;
        goto out;
    }
    /* room for the whole stream at once, as a rule: data, $EFS, headers */
    if (it->st.size < SIZE_MAX - efs_len - HEADROOM) {
        m->cap = (size_t)it->st.size + efs_len + HEADROOM;
        if (!(m->data = malloc(m->cap))) m->cap = 0;
    }
    t.it = it;
    t.m = m;
    efs_sha256_init(&t.hash);
    t.cancel = cancel;
    t.sigint_base = sigint_base;
    rc = efs_posix_backend()->read(to_memory_hashed, &t, ctx);
    if (!rc) {
        efs_sha256_final(&t.hash, it->sha256);
        it->outcome = EFS_BACKUP_DONE;
    } else {
        efs_mem_stream_free(m);
    }
out:
    if (rc && !it->op && !it->err_no && ctx) efs_posix_backup_failed_on(it, ctx, rc);
    if (ctx) efs_posix_backend()->close(ctx);
    return it->rc = rc;
}

void efs_mem_stream_free(efs_mem_stream *m)
{
    free(m->data);
    m->data = NULL;
    m->len = m->cap = 0;
}

void efs_pause_us(unsigned us)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(us / 1000000u);
    ts.tv_nsec = (long)(us % 1000000u) * 1000L;
    nanosleep(&ts, NULL);
}

#endif /* !_WIN32 */

/* ISO C wants a non-empty translation unit on the other platform. */
typedef int efs_posix_streamexport_unit;
