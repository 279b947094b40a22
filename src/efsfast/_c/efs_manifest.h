/*
 * efs_manifest.h -- a backup set's manifest line for one object, made in C
 * by the worker that backed the object up (so that the calling thread only
 * writes it): the same bytes as backupset/manifest.py's
 * _line(entry.to_json()) for a whole object with POSIX metadata or none.
 */
#ifndef EFS_MANIFEST_H
#define EFS_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

/* What the line says of one object (docs/BACKUP-SETS.md). */
typedef struct efs_line_facts {
    const uint8_t *path;            /* relative to the source, "/" between names, */
    size_t path_len;                /* as os.fsencode gives it */
    int directory;                  /* "kind": "directory", else "file" */
    uint64_t raw_size, source_size;
    const uint8_t *sha256;          /* 32 bytes: the raw stream's */
    const uint8_t *efs_sha256;      /* 32 bytes: the $EFS's */
    int posix_meta;                 /* 1: "meta" with the POSIX fields below; 0: none */
    uint32_t mode;                  /* (only its permission bits are recorded) */
    int64_t atime_ns, mtime_ns, ctime_ns;
} efs_line_facts;

/* Whether s is UTF-8 as Python's strict decoder takes it (no overlong
 * forms, no surrogates, nothing above U+10FFFF, nothing cut short). */
int efs_utf8_valid(const uint8_t *s, size_t n);

/* The JSON string of s (valid UTF-8), quotes included, as Python's
 * json.encoder.encode_basestring makes it: '"', '\\' and the control
 * characters escaped (\b \f \n \r \t, others \u00xx), everything else as it
 * is.  out must hold EFS_JSON_STRING_MAX(n) bytes; returns the length. */
#define EFS_JSON_STRING_MAX(n) (6 * (n) + 2)
size_t efs_json_string(char *out, const uint8_t *s, size_t n);

/* The object's whole line, "\n" included, in a buffer the caller frees;
 * NULL where the path is not UTF-8 (Python refuses such a name: the caller
 * leaves the line to it) or no memory was had. */
char *efs_manifest_object_line(const efs_line_facts *f, size_t *len);

/* The most bytes that line can take for a path of path_len bytes (SIZE_MAX:
 * beyond any buffer). */
size_t efs_manifest_line_max(size_t path_len);

/* The line written into out, which holds efs_manifest_line_max(f->path_len)
 * bytes; returns its length, 0 where the path is not UTF-8. */
size_t efs_manifest_object_line_into(const efs_line_facts *f, char *out);

/* Read a line as efs_manifest_object_line makes it, and only such a line:
 * any other spelling (spaces, other escapes, keys in another order, numbers
 * written otherwise or out of 64-bit range, upper-case hex, a mode beyond
 * the permission bits, another shape) returns 0 and is left to the
 * caller's JSON reader, which takes or refuses it as before.  Returns 1
 * with f filled: f->path points into path_buf (len bytes at least), its
 * escapes undone; f->sha256 and f->efs_sha256 into the 32 bytes given.
 * Whatever it takes, efs_manifest_object_line(f) gives back byte for byte. */
int efs_manifest_read_object_line(const char *line, size_t len, efs_line_facts *f,
                                  uint8_t *path_buf, uint8_t *sha256, uint8_t *efs_sha256);

#endif
