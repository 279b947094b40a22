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

size_t efs_manifest_line_max(size_t path_len)
{
    if (path_len > (SIZE_MAX - LINE_FIXED_MAX) / 6 - 1) return SIZE_MAX;
    return LINE_FIXED_MAX + EFS_JSON_STRING_MAX(path_len);
}

char *efs_manifest_object_line(const efs_line_facts *f, size_t *len)
{
    size_t cap = efs_manifest_line_max(f->path_len);
    char *line;
    if (cap == SIZE_MAX || !(line = malloc(cap))) return NULL;
    if (!(*len = efs_manifest_object_line_into(f, line))) {     /* not UTF-8 */
        free(line);
        return NULL;
    }
    return line;
}

size_t efs_manifest_object_line_into(const efs_line_facts *f, char *line)
{
    char *p;
    if (!efs_utf8_valid(f->path, f->path_len)) return 0;
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
    return (size_t)(p - line);
}

/* ---- reading ---- */

typedef struct cursor {
    const char *p, *end;
} cursor;

static int lit(cursor *c, const char *text)
{
    size_t n = strlen(text);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, text, n) != 0) return 0;
    c->p += n;
    return 1;
}

static int hexdigit(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    return -1;                  /* (the writer's hex is lower case) */
}

static int read_hex(cursor *c, uint8_t *out)
{
    if (c->end - c->p < 66 || c->p[0] != '"' || c->p[65] != '"') return 0;
    for (int i = 0; i < 32; i++) {
        int hi = hexdigit(c->p[1 + 2 * i]), lo = hexdigit(c->p[2 + 2 * i]);
        if (hi < 0 || lo < 0) return 0;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    c->p += 66;
    return 1;
}

/* digits as Python writes an int: no leading zero, no "+"; the magnitude in
 * 64 bits */
static int read_magnitude(cursor *c, uint64_t *v)
{
    const char *start = c->p;
    uint64_t x = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        unsigned d = (unsigned)(*c->p - '0');
        if (x > (UINT64_MAX - d) / 10) return 0;
        x = x * 10 + d;
        c->p++;
    }
    if (c->p == start || (*start == '0' && c->p - start > 1)) return 0;
    *v = x;
    return 1;
}

static int read_u64(cursor *c, uint64_t *v)
{
    return read_magnitude(c, v);
}

static int read_i64(cursor *c, int64_t *v)
{
    uint64_t m;
    int negative = c->p < c->end && *c->p == '-';
    if (negative) c->p++;
    if (!read_magnitude(c, &m)) return 0;
    if (negative) {
        if (m == 0 || m > (uint64_t)INT64_MAX + 1) return 0;     /* ("-0": not the writer's) */
        *v = m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
    } else {
        if (m > (uint64_t)INT64_MAX) return 0;
        *v = (int64_t)m;
    }
    return 1;
}

/* the escapes efs_json_string makes, and no other */
static int read_string(cursor *c, uint8_t *out, size_t *n_out)
{
    size_t n = 0;
    if (c->p >= c->end || *c->p != '"') return 0;
    for (c->p++; c->p < c->end; c->p++) {
        uint8_t ch = (uint8_t)*c->p;
        if (ch == '"') {
            c->p++;
            *n_out = n;
            return efs_utf8_valid(out, n);
        }
        if (ch < 0x20) return 0;
        if (ch != '\\') {
            out[n++] = ch;
            continue;
        }
        if (c->end - c->p < 2) return 0;
        switch (*++c->p) {
        case '"': out[n++] = '"'; break;
        case '\\': out[n++] = '\\'; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u': {
            int hi, lo;
            if (c->end - c->p < 5 || c->p[1] != '0' || c->p[2] != '0') return 0;
            hi = hexdigit(c->p[3]);
            lo = hexdigit(c->p[4]);
            if (hi < 0 || lo < 0) return 0;
            ch = (uint8_t)(hi << 4 | lo);
            /* only the control characters without a short escape */
            if (ch >= 0x20 || ch == '\b' || ch == '\f' || ch == '\n' || ch == '\r' || ch == '\t')
                return 0;
            out[n++] = ch;
            c->p += 4;
            break;
        }
        default:
            return 0;
        }
    }
    return 0;
}

int efs_manifest_read_object_line(const char *line, size_t len, efs_line_facts *f,
                                  uint8_t *path_buf, uint8_t *sha256, uint8_t *efs_sha256)
{
    cursor c;
    uint64_t mode;
    c.p = line;
    c.end = line + len;
    memset(f, 0, sizeof *f);
    f->sha256 = sha256;
    f->efs_sha256 = efs_sha256;
    f->path = path_buf;
    if (!lit(&c, "{\"efs_sha256\":") || !read_hex(&c, efs_sha256)) return 0;
    if (lit(&c, ",\"kind\":\"directory\",")) f->directory = 1;
    else if (!lit(&c, ",\"kind\":\"file\",")) return 0;
    if (lit(&c, "\"meta\":{\"atime_ns\":")) {
        f->posix_meta = 1;
        if (!read_i64(&c, &f->atime_ns) || !lit(&c, ",\"ctime_ns\":")
                || !read_i64(&c, &f->ctime_ns) || !lit(&c, ",\"mode\":")
                || !read_u64(&c, &mode) || mode > 07777u || !lit(&c, ",\"mtime_ns\":")
                || !read_i64(&c, &f->mtime_ns) || !lit(&c, ",\"source\":\"posix\"},"))
            return 0;
        f->mode = (uint32_t)mode;
    }
    if (!lit(&c, "\"path\":") || !read_string(&c, path_buf, &f->path_len)) return 0;
    if (!lit(&c, ",\"raw_size\":") || !read_u64(&c, &f->raw_size)) return 0;
    if (!lit(&c, ",\"sha256\":") || !read_hex(&c, sha256)) return 0;
    if (!lit(&c, ",\"source_size\":") || !read_u64(&c, &f->source_size)) return 0;
    if (!lit(&c, ",\"type\":\"object\"}\n")) return 0;
    return c.p == c.end;
}
