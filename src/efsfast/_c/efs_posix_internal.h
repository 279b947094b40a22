/*
 * efs_posix_internal.h -- what the files of the POSIX system side share: the
 * per-call context, the efs_raw layout's names and limits, and the functions
 * one file of it calls in another (efs_posix.c: context, errors, options,
 * the ntfs-3g checks; efs_posix_publish.c: temporaries and giving them their
 * name; efs_posix_import.c: WriteEncryptedFileRaw; efs_posix_window.c: its
 * system buffers and the writes of the ciphertext; efs_posix_export.c:
 * ReadEncryptedFileRaw).  Their functions carry the px_ prefix; none is
 * part of an interface outside _c/ (the library is built with hidden
 * visibility).
 */
#ifndef EFSFAST_EFS_POSIX_INTERNAL_H
#define EFSFAST_EFS_POSIX_INTERNAL_H
#ifndef _WIN32
#include <stdint.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "efs_backend.h"
#include "efs_io.h"
#include "efs_layout.h"
#include "efs_posix_dir.h"

#define EFSINFO_XATTR "user.ntfs.efsinfo"
#define NTFS_ATTRIB_XATTR "system.ntfs_attrib"     /* ntfs-3g, any mount: u32 LE */
#define NTFS_EFSINFO_XATTR "system.ntfs_efsinfo"   /* ntfs-3g: EPERM without efs_raw */
#define NTFS_ATTR_ENCRYPTED 0x4000u                /* FILE_ATTRIBUTE_ENCRYPTED */
#define XATTR_PREFIX "user."
#define XATTR_VALUE_MAX 65536u          /* Linux VFS limit (XATTR_SIZE_MAX) */
#define XATTR_LIST_MAX_BYTES 65536u     /* Linux VFS limit (XATTR_LIST_MAX) */
#define SMALL_FILE (1u << 20)           /* export: read whole up to this size */
/* import (efs_posix_window.c): the system buffers of about this many bytes
 * of stream are written at once; at most this many separate slices wait;
 * while less than GATHER_BELOW waits it is gathered, not written */
#define IMPORT_WINDOW (1u << 20)
#define IOV_SLICES 128
#define GATHER_BELOW (IMPORT_WINDOW / 4)
#define PAGE_ALIGN 4096u
#define DEFAULT_BUFFER 65536u

enum { CUR_NONE, CUR_META, CUR_UNNAMED, CUR_NAMED, CUR_SKIP };

typedef efs_named_value named_stream;

typedef struct posix_ctx {
    char *path;
    char *dir;
    char *base;
    efs_ulong flags;
    efs_posix_options opt;
    int written;
    uint64_t rng;

    efs_error ferr;
    char ferr_detail[256];          /* a detail built here (ferr.detail may point at it) */
    char op_buf[384];               /* an operation described here (op may point at it) */
    int err_no;
    const char *op;

    /* import */
    int fd;
    int anonymous;           /* fd is an O_TMPFILE: no name until linkat */
    int direct_io;           /* fd writes with O_DIRECT (efs_posix_window.c) */
    struct stat st;          /* export: the object, as opened */
    char *tmp;
    dev_t dir_dev;           /* import: the device of the destination folder */
    int volume_kind;         /* import: VOLUME_* of that folder, -1 until known */
    uint8_t *window;                /* the system buffers (efs_posix_window.c) */
    size_t window_pos;              /* where the next one starts */
    struct iovec iov[IOV_SLICES];   /* ciphertext in the window, not yet written */
    int niov;
    size_t iov_bytes;
    uint64_t file_bytes;            /* bytes of the file written so far */
    int cur;
    named_stream *named;
    size_t nnamed, named_cap;
    uint8_t *meta;
    size_t meta_len;
} posix_ctx;

enum { VOLUME_OTHER, VOLUME_NTFS_EFS_RAW, VOLUME_NTFS_NO_EFS_RAW };

#define NO_EFS_RAW_IMPORT "the NTFS volume is not mounted with -o efs_raw: the file would be " \
    "stored as plain data, not encrypted (mount it with ntfs-3g -o efs_raw)"
#define NO_EFS_RAW_EXPORT "the file is encrypted, but the NTFS volume is not mounted with " \
    "-o efs_raw, so its raw ciphertext cannot be read (mount it with ntfs-3g -o efs_raw)"

efs_dword px_sys_fail(posix_ctx *c, const char *op, int e);
int px_fault(const posix_ctx *c, int point);
efs_dword px_ctx_fail(posix_ctx *c, const char *op, efs_dword code);
uint64_t px_next_random(posix_ctx *c);
uint32_t px_next_capacity(posix_ctx *c);
long px_utf16_to_utf8(const uint8_t *s, size_t n, char *out, size_t cap);
long px_utf8_to_utf16(const char *s, uint8_t *out, size_t cap);
int px_volume_kind(const char *path, int fd, uint32_t *attrib);
/* the folder this thread restored into last: its device and volume kind */
int px_dir_known_good(const char *dir, dev_t *dev, int *kind);
void px_remember_good_dir(const char *dir, dev_t dev, int kind);
/* What a file system refused once, remembered (per thread) for its device:
 * the next restore onto it goes straight to what works. */
enum { PX_REFUSED_TMPFILE = 1, PX_REFUSED_RENAME_NOREPLACE = 2 };
int px_refused(dev_t dev, unsigned what);
void px_remember_refused(dev_t dev, unsigned what);
efs_dword px_check_marked_encrypted(posix_ctx *c, const char *path, int fd);
void px_free_import_state(posix_ctx *c);
efs_dword px_make_temp(posix_ctx *c, int is_dir);
void px_discard_temp(posix_ctx *c);
/* efs_posix_window.c: the bytes to allocate for the window; the next system
 * buffer (its capacity fits); the bytes the callback put there; ciphertext
 * found in the window; everything pending written, then `extra`. */
size_t px_window_bytes(const posix_ctx *c);
uint8_t *px_window_next(posix_ctx *c, efs_dword *rc);
void px_window_took(posix_ctx *c, size_t len);
efs_dword px_window_put(posix_ctx *c, const uint8_t *p, size_t n);
efs_dword px_window_flush(posix_ctx *c, const uint8_t *extra, size_t extra_len);
void px_window_direct_io(posix_ctx *c);
efs_dword px_commit(posix_ctx *c);
efs_dword px_commit_in_place(posix_ctx *c);
efs_dword EFS_WINAPI posix_write(efs_import_func cb, void *cb_context, void *context);
efs_dword EFS_WINAPI posix_read(efs_export_func cb, void *cb_context, void *context);

#endif /* !_WIN32 */
#endif /* EFSFAST_EFS_POSIX_INTERNAL_H */
