/* Link check for the win32 system side: built with the mingw cross compiler
 * in CI (tests/test_win32_build.py).  Running it needs real Windows: it
 * restores the raw stream given on the command line, then backs it up again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "efs_backend.h"

typedef struct { const unsigned char *p; size_t len, pos; } source;
typedef struct { unsigned char *p; size_t len, cap; } sink;

static efs_dword EFS_WINAPI import_cb(uint8_t *data, void *ctx, efs_ulong *len)
{
    source *s = ctx;
    size_t n = s->len - s->pos;
    if (n > *len) n = *len;
    memcpy(data, s->p + s->pos, n);
    s->pos += n;
    *len = (efs_ulong)n;
    return 0;
}

static efs_dword EFS_WINAPI export_cb(uint8_t *data, void *ctx, efs_ulong len)
{
    sink *k = ctx;
    if (k->len + len > k->cap) {
        size_t cap = (k->len + len) * 2;
        unsigned char *np = realloc(k->p, cap);
        if (!np) return 8;
        k->p = np;
        k->cap = cap;
    }
    memcpy(k->p + k->len, data, len);
    k->len += len;
    return 0;
}

static void check_raw(const unsigned char *raw, size_t len)
{
    efs_parser *p = efs_parser_new(EFS_MODE_STRICT, NULL, NULL);
    efs_dword rc = p ? efs_parser_feed(p, raw, len) : 8;
    if (!rc) rc = efs_parser_finish(p);
    printf("validation: %lu\n", (unsigned long)rc);
    efs_parser_free(p);
}

int wmain(int argc, wchar_t **argv)
{
    const efs_backend *b = efs_win32_backend();
    void *ctx = NULL;
    efs_dword rc;
    if (argc < 3) {
        fwprintf(stderr, L"usage: smoke RAWFILE DEST\n");
        return 2;
    }
    FILE *f = _wfopen(argv[1], L"rb");
    if (!f) return 1;
    static unsigned char raw[1 << 20];
    size_t n = fread(raw, 1, sizeof raw, f);
    fclose(f);
    check_raw(raw, n);
    printf("privileges: %lu\n", (unsigned long)efs_win32_enable_privileges(1, 1));
    source s = {raw, n, 0};
    rc = b->open(argv[2], EFS_CREATE_FOR_IMPORT, &ctx);
    if (!rc) rc = b->write(import_cb, &s, ctx);
    if (ctx) b->close(ctx);
    printf("restore: %lu\n", (unsigned long)rc);
    sink k = {NULL, 0, 0};
    ctx = NULL;
    rc = b->open(argv[2], 0, &ctx);
    if (!rc) rc = b->read(export_cb, &k, ctx);
    if (ctx) b->close(ctx);
    printf("backup: %lu, %s\n", (unsigned long)rc,
           k.len == n && memcmp(k.p, raw, n) == 0 ? "identical" : "different");
    free(k.p);
    return rc ? 1 : 0;
}
