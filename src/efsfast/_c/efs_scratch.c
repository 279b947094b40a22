/*
 * efs_scratch.c -- per-thread working buffers (see efs_scratch.h).
 */
#ifndef _WIN32
#include <pthread.h>
#include <stdlib.h>

#include "efs_scratch.h"

typedef struct scratch_buffer {
    uint8_t *p;
    size_t size;
    int taken;
} scratch_buffer;

typedef struct thread_scratch {
    scratch_buffer slot[EFS_SCRATCH_SLOTS];
} thread_scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void scratch_free(void *v)
{
    thread_scratch *t = v;
    for (int i = 0; i < EFS_SCRATCH_SLOTS; i++) free(t->slot[i].p);
    free(t);
}

static void scratch_init(void)
{
    scratch_key_ok = pthread_key_create(&scratch_key, scratch_free) == 0;
}

static thread_scratch *this_thread(void)
{
    thread_scratch *t;
    pthread_once(&scratch_once, scratch_init);
    if (!scratch_key_ok) return NULL;
    if ((t = pthread_getspecific(scratch_key)) != NULL) return t;
    if (!(t = calloc(1, sizeof *t))) return NULL;
    if (pthread_setspecific(scratch_key, t) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

uint8_t *efs_scratch_take(efs_scratch_slot slot, size_t size)
{
    thread_scratch *t = this_thread();
    scratch_buffer *b;
    if (!t || t->slot[slot].taken) return malloc(size ? size : 1);   /* re-entered */
    b = &t->slot[slot];
    if (b->size < size) {
        uint8_t *p = malloc(size);
        if (!p) return NULL;
        free(b->p);
        b->p = p;
        b->size = size;
    }
    b->taken = 1;
    return b->p;
}

void efs_scratch_put(efs_scratch_slot slot, uint8_t *p)
{
    thread_scratch *t;
    if (!p) return;
    t = this_thread();
    if (t && t->slot[slot].taken && t->slot[slot].p == p) {
        t->slot[slot].taken = 0;
        return;
    }
    free(p);
}
#endif /* !_WIN32 */

/* ISO C wants a non-empty translation unit on the other platform. */
typedef int efs_scratch_unit;
