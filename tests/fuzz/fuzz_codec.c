/*
 * libFuzzer harness for the raw-format codec (efs_parser.c, efs_meta.c,
 * efs_writer.c).  Build and run: tests/fuzz/run.sh (or tests/test_fuzz.py).
 *
 * Input: byte 0 picks the mode and a slicing seed, the rest is the raw
 * stream.  Each input is parsed whole and again in pseudo-random slices;
 * the verdicts (winerror, rule, offset) and event digests must agree, so a
 * slicing-dependent bug aborts like a crash does.  The same bytes are also
 * run through efs_meta_parse directly, and valid streams are re-emitted by
 * the writer and re-parsed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "efs_codec.h"

typedef struct digest { uint64_t h; uint64_t events; } digest;

static void mix(digest *d, uint64_t v)
{
    d->h = (d->h ^ v) * 0x100000001B3ULL;
    d->events++;
}

static efs_dword ev_stream(void *ctx, const efs_stream_info *s)
{
    digest *d = ctx;
    mix(d, 1); mix(d, s->index); mix(d, s->flag); mix(d, s->name_length); mix(d, s->offset);
    for (uint32_t i = 0; i < s->name_length; i++) mix(d, s->name[i]);
    return 0;
}

static efs_dword ev_meta(void *ctx, const uint8_t *m, size_t n)
{
    digest *d = ctx;
    mix(d, 2); mix(d, n);
    for (size_t i = 0; i < n; i++) d->h += m[i] * (i + 1);
    return 0;
}

static efs_dword ev_segment(void *ctx, const efs_segment *s)
{
    digest *d = ctx;
    mix(d, 3); mix(d, s->offset); mix(d, s->segment_length); mix(d, s->starting_file_offset);
    mix(d, s->bytes_within_stream_size); mix(d, s->data_length); mix(d, (uint64_t)s->has_extd);
    return 0;
}

/* payload bytes are summed position-free so that slicing does not change it */
static efs_dword ev_data(void *ctx, const uint8_t *p, size_t n)
{
    digest *d = ctx;
    for (size_t i = 0; i < n; i++) d->h += p[i];
    return 0;
}

static efs_dword ev_end(void *ctx, uint64_t logical, uint64_t payload)
{
    digest *d = ctx;
    mix(d, 4); mix(d, logical); mix(d, payload);
    return 0;
}

static const efs_handlers handlers = {ev_stream, ev_meta, ev_segment, ev_data, ev_end};

typedef struct verdict { efs_dword rc; int rule; uint64_t offset; digest d; } verdict;

static verdict run(const uint8_t *data, size_t len, unsigned mode, uint32_t seed)
{
    verdict v;
    memset(&v, 0, sizeof v);
    v.d.h = 14695981039346656037ULL;
    efs_parser *p = efs_parser_new(mode, &handlers, &v.d);
    if (!p) abort();
    size_t pos = 0;
    uint32_t x = seed | 1;
    while (pos < len && v.rc == 0) {
        size_t n = len - pos;
        if (seed) {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            size_t k = (x % 7 == 0) ? (x % 2000) : (x % 17);
            if (k < n) n = k;
        }
        v.rc = efs_parser_feed(p, data + pos, n);
        pos += n;
    }
    if (v.rc == 0) v.rc = efs_parser_finish(p);
    v.rule = efs_parser_error(p)->rule;
    v.offset = efs_parser_error(p)->offset;
    if (v.rc && v.rule && v.offset > len) abort();       /* offsets stay inside the input */
    efs_parser_free(p);
    return v;
}

typedef struct out { uint8_t *p; size_t len, cap; } out;

static efs_dword emit(void *ctx, const uint8_t *d, size_t n)
{
    out *o = ctx;
    if (o->len + n > o->cap) {
        size_t cap = (o->len + n) * 2;
        uint8_t *np = realloc(o->p, cap);
        if (!np) abort();
        o->p = np;
        o->cap = cap;
    }
    memcpy(o->p + o->len, d, n);
    o->len += n;
    return 0;
}

static efs_dword fill_pattern(void *ctx, uint8_t *dst, size_t n, uint64_t off)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) dst[i] = (uint8_t)(off + i);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    unsigned mode = (data[0] & 1) ? EFS_MODE_COMPATIBLE : EFS_MODE_STRICT;
    uint32_t seed = (uint32_t)data[0] * 2654435761u + 1;
    data++;
    size--;

    verdict whole = run(data, size, mode, 0);
    verdict sliced = run(data, size, mode, seed);
    if (whole.rc != sliced.rc || whole.rule != sliced.rule || whole.offset != sliced.offset ||
        whole.d.h != sliced.d.h || whole.d.events != sliced.d.events) {
        fprintf(stderr, "slicing changed the outcome: rc %u/%u rule %d/%d offset %llu/%llu\n",
                whole.rc, sliced.rc, whole.rule, sliced.rule,
                (unsigned long long)whole.offset, (unsigned long long)sliced.offset);
        abort();
    }

    /* the metadata validator on its own, on the same bytes */
    efs_meta_info info;
    efs_error err;
    (void)efs_meta_parse(data, size, mode, &info, NULL, NULL, NULL, NULL, 0, &err);

    /* the writer: a stream of what the input's first bytes describe must parse */
    if (size >= 4) {
        uint64_t n = (uint64_t)(data[0] | (data[1] << 8)) * 7u;
        out o = {NULL, 0, 0};
        uint8_t meta[] = {0x55, 0, 0, 0};      /* deliberately invalid metadata: only layout */
        if (efs_emit_raw_header(emit, &o) == 0 &&
            efs_emit_metadata_stream(emit, &o, meta, sizeof meta) == 0 &&
            efs_emit_data_stream(emit, &o, (const uint8_t *)":\0:\0$\0D\0A\0T\0A\0", 14,
                                 data[2] & 1, n, 9 + (data[3] % 13), fill_pattern, NULL) == 0) {
            verdict w = run(o.p, o.len, EFS_MODE_STRICT, seed);
            if (w.rc == 0 || w.rule != 10) abort();   /* only the metadata may be wrong */
        }
        free(o.p);
    }
    return 0;
}
