/*
 * efs_manifest.c -- the manifest line of one object of a backup set (see
 * efs_manifest.h).  The line is the JSON object manifest.py's encoder makes:
 * keys sorted, separators "," and ":", no ASCII escaping, UTF-8.  Tested
 * byte for byte against it (tests/test_backupset_cline.py) and fuzzed
 * (tests/fuzz/fuzz_manifest.c).
 */
#include "efs_manifest.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int efs_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t more;
        uint8_t lo = 0x80, hi = 0xBF;   /* the second byte's range */
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            if (c == 0xE0) lo = 0xA0;           /* overlong below */
            else if (c == 0xED) hi = 0x9F;      /* surrogates above */
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            if (c == 0xF0) lo = 0x90;           /* overlong below */
            else if (c == 0xF4) hi = 0x8F;      /* past U+10FFFF above */
        } else {
            return 0;                           /* 80-C1, F5-FF: never a first byte */
        }
        if (n - i - 1 < more || s[i + 1] < lo || s[i + 1] > hi) return 0;
        for (size_t k = 2; k <= more; k++)
            if ((s[i + k] & 0xC0) != 0x80) return 0;
        i += more + 1;
    }
    return 1;
}

size_t efs_json_string(char *out, const uint8_t *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char *p = out;
    *p++ = '"';
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *p++ = (char)c;
            continue;
        }
        *p++ = '\\';
        switch (c) {
        case '"': *p++ = '"'; break;
        case '\\': *p++ = '\\'; break;
        case '\b': *p++ = 'b'; break;
        case '\f': *p++ = 'f'; break;
        case '\n': *p++ = 'n'; break;
        case '\r': *p++ = 'r'; break;
        case '\t': *p++ = 't'; break;
        default:
            *p++ = 'u';
            *p++ = '0';
            *p++ = '0';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        }
    }
    *p++ = '"';
    return (size_t)(p - out);
}

static char *put(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

static char *put_hex(char *p, const uint8_t *b)
{
    static const char hex[] = "0123456789abcdef";
    *p++ = '"';
    for (int i = 0; i < 32; i++) {
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 15];
    }
    *p++ = '"';
    return p;
}

/* an integer as Python's int.__repr__ writes it */
static char *put_u64(char *p, uint64_t v)
{
    return p + sprintf(p, "%" PRIu64, v);
}

static char *put_i64(char *p, int64_t v)
{
    return p + sprintf(p, "%" PRId64, v);
}

/* the fixed text of a line (keys, hashes, numbers, meta) stays below this */
#define LINE_FIXED_MAX 512u

char *efs_manifest_object_line(const efs_line_facts *f, size_t *len)
{
    char *line, *p;
    if (!efs_utf8_valid(f->path, f->path_len)) return NULL;
    if (f->path_len > (SIZE_MAX - LINE_FIXED_MAX) / 6 - 1) return NULL;
    if (!(line = malloc(LINE_FIXED_MAX + EFS_JSON_STRING_MAX(f->path_len)))) return NULL;
    p = put(line, "{\"efs_sha256\":");
    p = put_hex(p, f->efs_sha256);
    p = put(p, f->directory ? ",\"kind\":\"directory\"," : ",\"kind\":\"file\",");
    if (f->posix_meta) {
        p = put(p, "\"meta\":{\"atime_ns\":");
        p = put_i64(p, f->atime_ns);
        p = put(p, ",\"ctime_ns\":");
        p = put_i64(p, f->ctime_ns);
        p = put(p, ",\"mode\":");
        p = put_u64(p, f->mode & 07777u);
        p = put(p, ",\"mtime_ns\":");
        p = put_i64(p, f->mtime_ns);
        p = put(p, ",\"source\":\"posix\"},");
    }
    p = put(p, "\"path\":");
    p += efs_json_string(p, f->path, f->path_len);
    p = put(p, ",\"raw_size\":");
    p = put_u64(p, f->raw_size);
    p = put(p, ",\"sha256\":");
    p = put_hex(p, f->sha256);
    p = put(p, ",\"source_size\":");
    p = put_u64(p, f->source_size);
    p = put(p, ",\"type\":\"object\"}\n");
    *len = (size_t)(p - line);
    return line;
}
