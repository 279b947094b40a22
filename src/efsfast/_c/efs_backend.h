/*
 * efs_backend.h -- the system side: the four raw-EFS calls behind a vtable.
 *
 * win32: advapi32 itself (efs_win32.c).  posix: efsfast's own implementation
 * of the same contract over the ntfs-3g efs_raw layout (efs_posix.c).
 * Everything above this seam is identical on both.
 */
#ifndef EFSFAST_EFS_BACKEND_H
#define EFSFAST_EFS_BACKEND_H

#include <stdint.h>
#include "efs_abi.h"
#include "efs_codec.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  include <wchar.h>
typedef wchar_t efs_path_char;   /* OpenEncryptedFileRawW takes UTF-16 */
#else
typedef char efs_path_char;      /* POSIX paths are bytes (UTF-8 by convention) */
#endif

typedef struct efs_backend {
    const char *name;
    efs_dword (EFS_WINAPI *open)(const efs_path_char *path, efs_ulong flags, void **context);
    efs_dword (EFS_WINAPI *read)(efs_export_func cb, void *cb_context, void *context);
    efs_dword (EFS_WINAPI *write)(efs_import_func cb, void *cb_context, void *context);
    void (EFS_WINAPI *close)(void *context);
} efs_backend;

/* An export context's object, for what a backup set records besides the
 * stream (POSIX side: read through the context's descriptor, no second path
 * lookup). */
typedef struct efs_posix_object_stat {
    uint64_t size;
    uint32_t mode;
    int64_t atime_ns, mtime_ns, ctime_ns;
} efs_posix_object_stat;

/* What became of one object of a backup set exported by the POSIX side. */
enum { EFS_BACKUP_FAILED = 0, EFS_BACKUP_DONE = 1, EFS_BACKUP_PLAIN = 2 };

/* the manifest line an item holds in itself (efs_backup_item.text): a line
 * of up to ~250 bytes of path fits; a longer one is allocated */
#define EFS_ITEM_LINE_MAX 576

typedef struct efs_backup_item {
    /* given */
    const char *src, *dest, *tmp;   /* the object; its backup file; a temporary beside it */
    efs_ulong flags;                /* 0 or EFS_CREATE_FOR_DIR */
    int capture_ntfs;               /* read system.ntfs_attrib/_times/_acl (ntfs-3g) */
    int overwrite;                  /* replace an existing backup file */
    int sync;                       /* fsync the backup file before it is published
                                       (benchmarks: durable.py syncs a set at its end) */
    int no_hash;                    /* backup_many: no SHA-256 of the stream or $EFS
                                       (a set's manifest needs them; plain backups not) */
    uint64_t tmp_nonce;             /* tmp NULL: the temporary is dest's folder +
                                       ".efsfast-<nonce as 16 hex digits>.tmp" */
    const uint8_t *rel;             /* non-NULL: the object's path in the set (rel_len
                                       bytes), and its manifest line is made here */
    size_t rel_len;
    int line_meta;                  /* the line's metadata: EFS_LINE_META_* */
    /* found (the calling thread reads these four of each finished item,
     * written on another core: kept in one cache line) */
    int outcome;                    /* EFS_BACKUP_* */
    size_t data_len;                /* the stream's size */
    char *line;                     /* its manifest line (rel given, done), or NULL: */
    size_t line_len;                /* its name is not UTF-8, or no memory */
    efs_dword rc;
    int err_no;
    const char *op;                 /* the failed operation (may point at op_buf) */
    int name_dest;                  /* the failure is the backup file's, not the object's */
    efs_error ferr;                 /* a format error (ferr.rule != 0) */
    union {
        struct {                    /* failed: */
            char op_buf[320];       /* op may point here */
            char detail[256];       /* ferr.detail may point here */
        } why;
        char line[EFS_ITEM_LINE_MAX];   /* done: its manifest line, where it fits (then
                                           line points here: no allocation per object,
                                           and none freed by another thread) */
    } text;
    efs_posix_object_stat st;
    uint8_t attrib[4], times[32];   /* as ntfs-3g gives them */
    uint8_t *acl;                   /* NULL: unreadable, acl_errno says why */
    size_t acl_len;
    int acl_errno;
    size_t efs_len;                 /* the $EFS's size ... */
    uint8_t efs_sha256[32];         /* ... and SHA-256 */
    uint8_t sha256[32];             /* SHA-256 of the stream, made as it was written */
    uint64_t calls;                 /* export callback calls (system buffers) */
    char *tmp_own;                  /* the temporary's name made here (tmp NULL) */
} efs_backup_item;

/* What a manifest line made by the worker records as metadata. */
enum { EFS_LINE_META_NONE = 0, EFS_LINE_META_POSIX = 1 };

#if defined(_WIN32)
/* advapi32's functions, imported statically (the .pyd's import table names
 * them), so the entries are never NULL: without them the module does not load. */
const efs_backend *efs_win32_backend(void);
/* Enable SeBackupPrivilege and/or SeRestorePrivilege in the process token.
 * Returns 0 or the Win32 error (ERROR_NOT_ALL_ASSIGNED when not held). */
efs_dword efs_win32_enable_privileges(int backup, int restore);
#else

/* ---- the POSIX system side ---- */

#define EFS_POSIX_GUARD 16u      /* bytes after the offered capacity that must stay intact */
#define EFS_ERROR_NOACCESS 998u  /* the import callback wrote past *ulLength */
#define EFS_ERROR_EA_TABLE_FULL 277u

typedef struct efs_posix_options {
    uint32_t buffer_size;    /* system buffer capacity offered per call (>= 1) */
    uint64_t seed;           /* != 0: random capacities in [min_size, buffer_size] */
    uint32_t min_size;
    unsigned mode;           /* EFS_MODE_STRICT / EFS_MODE_COMPATIBLE */
    int null_sink;           /* import: validate only, write nothing */
    unsigned cluster_shift;  /* export: 0 = from statvfs, else 9..21 */
    int no_replace;          /* import: fail with ERROR_FILE_EXISTS rather than
                                replace an existing destination (atomic) */
    int unvalidated_copy;    /* benchmarks only: store the incoming bytes verbatim,
                                without parsing (measures what validation costs);
                                never produces a valid efs_raw file */
    int fault_point;         /* tests only: make this system call fail ... */
    int fault_errno;         /* ... with this errno (EFS_FAULT_*) */
    int sync_each;           /* benchmarks only: fsync each restored file before it is
                                published (the alternative to durable.py's pass) */
} efs_posix_options;

/* Fault-injection points of the POSIX side (tests prove that every failure
 * leaves no temporary and the destination as it was). */
#define EFS_FAULT_NONE             0
#define EFS_FAULT_CREATE           1   /* creating the temporary */
#define EFS_FAULT_WRITE            2   /* writing ciphertext */
#define EFS_FAULT_CLOSE            3   /* closing the written file */
#define EFS_FAULT_XATTR_STREAM     4   /* storing a named stream */
#define EFS_FAULT_XATTR_EFSINFO    5   /* storing $EFS */
#define EFS_FAULT_PUBLISH          6   /* rename / linkat into place */
#define EFS_FAULT_READ             7   /* export: reading ciphertext */

const efs_backend *efs_posix_backend(void);
void efs_posix_default_options(efs_posix_options *o);
/* Open with explicit options (the vtable's open uses the defaults). */
efs_dword efs_posix_open_ex(const char *path, efs_ulong flags,
                            const efs_posix_options *o, void **context);
efs_dword efs_posix_set_options(void *context, const efs_posix_options *o);
/* Details of the last failure on this context: the format error (rule != 0
 * for a malformed stream), the errno of a failed system call and its name. */
const efs_error *efs_posix_last_format_error(const void *context);
int efs_posix_last_errno(const void *context);
const char *efs_posix_last_operation(const void *context);

efs_dword efs_posix_get_object_stat(const void *context, efs_posix_object_stat *out);
/* One extended attribute's value: its length, or -1 with *err the errno. */
long efs_posix_object_xattr(void *context, const char *name, uint8_t *buf, size_t cap, int *err);
/* The object's $EFS, read now and kept for the export (*data lives as long
 * as the context); ERROR_FILE_NOT_ENCRYPTED where it has none. */
efs_dword efs_posix_load_efs(void *context, const uint8_t **data, size_t *len);
/* The steps of a backup before its data (efs_posix_backup.c): the object
 * opened for export (*ctx, which the caller closes), its stat, ntfs-3g's
 * facts where asked, its $EFS (hashed unless it->no_hash); it->outcome
 * PLAIN (returning 0) where it is not encrypted.  A failure returns its
 * code, with what failed recorded in it only where a step named it:
 * efs_posix_backup_failed_on then takes the rest from the context. */
efs_dword efs_posix_backup_open(efs_backup_item *it, const struct efs_posix_options *o,
                                void **ctx);
/* The failure as the system side's context tells it: format error (its
 * detail copied: the context is closed before the item is reported),
 * errno and the failed call's name; returns rc. */
efs_dword efs_posix_backup_failed_on(efs_backup_item *it, void *ctx, efs_dword rc);
/* One object of a backup set (efs_posix_backup.c): ``it->outcome`` says
 * what became of it; returns it->rc. */
efs_dword efs_posix_backup_item(efs_backup_item *it, const struct efs_posix_options *o,
                                const int *cancel, unsigned sigint_base);
void efs_posix_backup_item_free(efs_backup_item *it);
#endif

#ifdef __cplusplus
}
#endif
#endif /* EFSFAST_EFS_BACKEND_H */
