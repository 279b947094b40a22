/*
 * efs_posix_dir.h -- the POSIX system side importing a folder's raw stream
 * into a folder that already exists (CREATE_FOR_IMPORT | CREATE_FOR_DIR over
 * an existing directory, as wimlib does on Windows: spec 7.7).
 */
#ifndef EFS_POSIX_DIR_H
#define EFS_POSIX_DIR_H

#include <stddef.h>
#include <stdint.h>
#include "efs_abi.h"

/* One named stream as an xattr: "user.<name>" and its efs_raw value. */
typedef struct efs_named_value {
    char *xname;
    uint8_t *data;
    size_t len;
} efs_named_value;

/* What went wrong: a Win32 code, the errno (0 for none), a description, and
 * which xattr failed (index into the named streams; n for the $EFS). */
typedef struct efs_dir_failure {
    efs_dword code;
    int err_no;
    const char *op;
    size_t index;
} efs_dir_failure;

/* Apply the named streams, then the $EFS (`meta`, may be NULL), to the
 * existing directory `path`, keeping what it holds.  On failure the named
 * streams already set are put back as they were and the $EFS is unchanged;
 * returns 0 or the Win32 code (also in *f). */
efs_dword efs_dir_import_in_place(const char *path, const efs_named_value *named, size_t n,
                                  const uint8_t *meta, size_t meta_len, efs_dir_failure *f);

#endif
