/*
 * libFuzzer harness for the manifest lines a backup's workers make
 * (efs_manifest.c).  Build and run: tests/fuzz/run.sh SECONDS manifest (or
 * tests/test_fuzz.py).  The byte-for-byte comparison with Python's json
 * encoder is tests/test_backupset_cline.py's; here, on any bytes:
 *   - efs_utf8_valid agrees with a decoder written from the Unicode
 *     definition (code point by code point: shortest form, no surrogates,
 *     at most U+10FFFF), which is what Python's strict decoder takes;
 *   - a line is made iff the path is valid, and it has the fixed frame (its
 *     keys in order, one "\n", at its end) with the path's string as
 *     json.encoder's ESCAPE_DCT table spells it (a table here, not code);
 *   - the numbers are the facts', as decimal text;
 *   - the reader takes every line the writer makes, giving its facts back;
 *   - the reader takes nothing else: any input it takes as a line (the
 *     whole input, tried as one) is what the writer makes of the facts it
 *     read, byte for byte (so json reads it as the writer meant it).
 * Input: 40 bytes of facts (sizes, times, mode, flags), then the path.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "efs_manifest.h"

static void fail(const char *why)
{
    fprintf(stderr, "fuzz_manifest: %s\n", why);
    abort();
}

/* the Unicode definition of UTF-8, the long way round */
static int reference_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t len;
        uint8_t c = s[i];
        if (c < 0x80) { cp = c; len = 1; }
        else if ((c & 0xE0) == 0xC0) { cp = c & 0x1Fu; len = 2; }
        else if ((c & 0xF0) == 0xE0) { cp = c & 0x0Fu; len = 3; }
        else if ((c & 0xF8) == 0xF0) { cp = c & 0x07u; len = 4; }
        else return 0;
        if (n - i < len) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
            return 0;                                   /* not the shortest form */
        if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return 0;
        i += len;
    }
    return 1;
}

/* Python's json.encoder.ESCAPE_DCT, as a table: what each byte becomes in
 * a JSON string (NULL: itself) */
static const char *escape_dct[256];

static void init_escape_dct(void)
{
    static char long_forms[32][7];
    for (int i = 0; i < 32; i++) {
        snprintf(long_forms[i], sizeof long_forms[i], "\\u%04x", i);
        escape_dct[i] = long_forms[i];
    }
    escape_dct['\\'] = "\\\\";
    escape_dct['"'] = "\\\"";
    escape_dct['\b'] = "\\b";
    escape_dct['\f'] = "\\f";
    escape_dct['\n'] = "\\n";
    escape_dct['\r'] = "\\r";
    escape_dct['\t'] = "\\t";
}

/* encode_basestring's output for the path, by the table */
static char *expected_string(const uint8_t *s, size_t n)
{
    char *out = malloc(6 * n + 3), *q = out;
    if (!out) fail("no memory");
    *q++ = '"';
    for (size_t i = 0; i < n; i++) {
        const char *e = escape_dct[s[i]];
        if (e) {
            size_t k = strlen(e);
            memcpy(q, e, k);
            q += k;
        } else {
            *q++ = (char)s[i];
        }
    }
    *q++ = '"';
    *q = 0;
    return out;
}

static void expect(const char **p, const char *end, const char *text)
{
    size_t n = strlen(text);
    if ((size_t)(end - *p) < n || memcmp(*p, text, n) != 0) fail(text);
    *p += n;
}

static void expect_u64(const char **p, const char *end, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    expect(p, end, buf);
}

static void expect_i64(const char **p, const char *end, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    expect(p, end, buf);
}

static void expect_hex(const char **p, const char *end, const uint8_t *b)
{
    char buf[67];
    buf[0] = '"';
    for (int i = 0; i < 32; i++) snprintf(buf + 1 + 2 * i, 3, "%02x", b[i]);
    buf[65] = '"';
    buf[66] = 0;
    expect(p, end, buf);
}

static uint64_t u64_at(const uint8_t *d)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | d[i];
    return v;
}

/* the whole input as a line: taken only where the writer makes it again */
static void read_any(const uint8_t *data, size_t size)
{
    efs_line_facts f;
    uint8_t sha[32], efs_sha[32];
    uint8_t *path = malloc(size + 1);
    char *again;
    size_t len = 0;
    if (!path) fail("no memory");
    if (efs_manifest_read_object_line((const char *)data, size, &f, path, sha, efs_sha)) {
        if (!(again = efs_manifest_object_line(&f, &len))) fail("a line read is not made again");
        if (len != size || memcmp(again, data, size) != 0) fail("a line read is not the writer's");
        free(again);
    }
    free(path);
}

/* the writer's line read back: the facts it was made of */
static void read_back(const char *line, size_t len, const efs_line_facts *want)
{
    efs_line_facts f;
    uint8_t sha[32], efs_sha[32];
    uint8_t *path = malloc(len);
    if (!path) fail("no memory");
    if (!efs_manifest_read_object_line(line, len, &f, path, sha, efs_sha))
        fail("the writer's line is not read");
    if (f.path_len != want->path_len || memcmp(f.path, want->path, f.path_len) != 0
            || f.directory != want->directory || f.raw_size != want->raw_size
            || f.source_size != want->source_size || memcmp(sha, want->sha256, 32) != 0
            || memcmp(efs_sha, want->efs_sha256, 32) != 0 || f.posix_meta != want->posix_meta)
        fail("the line read back gives other facts");
    if (want->posix_meta && (f.mode != (want->mode & 07777u) || f.atime_ns != want->atime_ns
                             || f.mtime_ns != want->mtime_ns || f.ctime_ns != want->ctime_ns))
        fail("the line read back gives other metadata");
    free(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t sha[32] = {0x01, 0xab, 0xff}, efs_sha[32] = {0xfe, 0x10};
    efs_line_facts f;
    size_t len = 0;
    char *line, *want;
    const char *p, *end;
    int valid;
    if (!escape_dct['"']) init_escape_dct();
    read_any(data, size);
    if (size < 40) return 0;
    f.raw_size = u64_at(data);
    f.source_size = u64_at(data + 8);
    f.atime_ns = (int64_t)u64_at(data + 16);
    f.mtime_ns = (int64_t)u64_at(data + 24);
    f.ctime_ns = f.atime_ns ^ f.mtime_ns;
    f.mode = (uint32_t)u64_at(data + 32);
    f.directory = data[32] & 1;
    f.posix_meta = (data[33] & 1) != 0;
    f.sha256 = sha;
    f.efs_sha256 = efs_sha;
    f.path = data + 40;
    f.path_len = size - 40;

    valid = efs_utf8_valid(f.path, f.path_len);
    if (valid != reference_utf8(f.path, f.path_len)) fail("UTF-8 check differs from the reference");
    line = efs_manifest_object_line(&f, &len);
    if (!valid) {
        if (line) fail("a line made for a path that is not UTF-8");
        return 0;
    }
    if (!line) fail("no line for a UTF-8 path");
    p = line;
    end = line + len;
    if (memchr(line, '\n', len) != end - 1) fail("the line's one \\n is not at its end");
    expect(&p, end, "{\"efs_sha256\":");
    expect_hex(&p, end, efs_sha);
    expect(&p, end, f.directory ? ",\"kind\":\"directory\"," : ",\"kind\":\"file\",");
    if (f.posix_meta) {
        expect(&p, end, "\"meta\":{\"atime_ns\":");
        expect_i64(&p, end, f.atime_ns);
        expect(&p, end, ",\"ctime_ns\":");
        expect_i64(&p, end, f.ctime_ns);
        expect(&p, end, ",\"mode\":");
        expect_u64(&p, end, f.mode & 07777u);
        expect(&p, end, ",\"mtime_ns\":");
        expect_i64(&p, end, f.mtime_ns);
        expect(&p, end, ",\"source\":\"posix\"},");
    }
    expect(&p, end, "\"path\":");
    want = expected_string(f.path, f.path_len);
    expect(&p, end, want);
    free(want);
    expect(&p, end, ",\"raw_size\":");
    expect_u64(&p, end, f.raw_size);
    expect(&p, end, ",\"sha256\":");
    expect_hex(&p, end, sha);
    expect(&p, end, ",\"source_size\":");
    expect_u64(&p, end, f.source_size);
    expect(&p, end, ",\"type\":\"object\"}\n");
    if (p != end) fail("text after the line's end");
    read_back(line, len, &f);
    free(line);
    return 0;
}
