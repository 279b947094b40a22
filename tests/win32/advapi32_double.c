/*
 * advapi32_double.c -- a test double for advapi32's four raw-EFS functions,
 * built with mingw as efsdouble.dll and run under Wine, whose own versions
 * are stubs (spec 7.7).  Tests only: tests/win32double.py patches efsfast's
 * import table to point at these functions; nothing users import loads it.
 *
 * It follows the documented contract (spec 7), not Windows' internals:
 *   - OpenEncryptedFileRawW(CREATE_FOR_IMPORT) creates the destination at
 *     open, replacing an existing file as wimlib observed (7.7); a hidden or
 *     system file needs OVERWRITE_HIDDEN (7.1); CREATE_FOR_DIR creates a
 *     folder.  Paths of MAX_PATH characters or more need the \\?\ prefix,
 *     as on Windows without the long-path opt-in.
 *   - WriteEncryptedFileRaw offers 66,048-byte buffers (one maximal segment,
 *     7.8) with guard bytes behind them, or a seeded schedule of other
 *     sizes; it calls back until *ulLength == 0 (7.5) and returns the
 *     callback's code on failure.  A failed import leaves the destination
 *     as it was when the failure happened, as the API gives no cleanup.
 *   - ReadEncryptedFileRaw hands the stream back in 65,536-byte blocks (or
 *     the schedule's sizes) and returns the callback's code on failure (7.4).
 *   - The raw stream of a file is kept as the file's content; a folder's is
 *     kept in memory by file ID (Wine keeps no $EFS and no ENCRYPTED
 *     attribute).  The stream is stored verbatim: Windows validates it on
 *     import, the double does not.
 * Error injection (fail the open, the n-th write or read of the file) and
 * counters are exported with the C calling convention for ctypes.
 */
#define WINADVAPI __declspec(dllexport)   /* define and export the four functions, not import them */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <winbase.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#define DOUBLE_API __declspec(dllexport)
#define IMPORT_BUFFER 66048u     /* one maximal data segment (spec 7.8) */
#define EXPORT_BLOCK 65536u
#define GUARD 16u
#define GUARD_BYTE 0xA5u

/* ---- counters (test assertions) ---- */
enum {
    C_OPENS, C_CLOSES, C_OPEN_CONTEXTS, C_IMPORT_CALLS, C_EXPORT_CALLS, C_BYTES_IN,
    C_BYTES_OUT, C_SHORT_FILLS, C_GUARD_VIOLATIONS, C_OVERCLAIMS,
    C_MAX_OFFERED, C_FAILED_IMPORTS, C_COUNT
};
static volatile LONG64 counters[C_COUNT];

/* ---- settings (set by tests before a call) ---- */
static struct {
    uint32_t buffer_size, min_size;
    uint64_t seed;                 /* != 0: sizes random in [min_size, buffer_size] */
    DWORD fail_open;               /* != 0: Open returns this code */
    LONG64 fail_write_at;          /* n > 0: the n-th write to a destination fails */
    DWORD fail_write_code;
    LONG64 fail_read_at;           /* n > 0: the n-th read of a source fails */
    DWORD fail_read_code;
} cfg = {IMPORT_BUFFER, 1, 0, 0, 0, 0, 0, 0};
static volatile LONG64 writes_done, reads_done, contexts_made;

/* ---- what the double imported, by file ID (volume serial + file index,
 * which a rename keeps, and efsfast renames every finished restore): a
 * folder's raw stream, and a file's size (Wine keeps no ENCRYPTED attribute,
 * so tests ask double_is_encrypted instead) ---- */
typedef struct object_entry {
    struct object_entry *next;
    DWORD volume;
    uint64_t index;
    uint8_t *data;                 /* folders */
    size_t length;                 /* folders: stream length; files: file size */
} object_entry;
static object_entry *objects;
static SRWLOCK objects_lock = SRWLOCK_INIT;

static int file_id(HANDLE h, DWORD *volume, uint64_t *index)
{
    BY_HANDLE_FILE_INFORMATION info;
    if (!GetFileInformationByHandle(h, &info))
        return 0;
    *volume = info.dwVolumeSerialNumber;
    *index = ((uint64_t)info.nFileIndexHigh << 32) | info.nFileIndexLow;
    return 1;
}

static int path_id(const wchar_t *path, DWORD *volume, uint64_t *index)
{
    HANDLE h = CreateFileW(path, FILE_READ_ATTRIBUTES, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                           NULL, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, NULL);
    int ok;
    if (h == INVALID_HANDLE_VALUE)
        return 0;
    ok = file_id(h, volume, index);
    CloseHandle(h);
    return ok;
}

static object_entry *find_object(DWORD volume, uint64_t index)
{
    object_entry *e;
    for (e = objects; e != NULL; e = e->next)
        if (e->volume == volume && e->index == index)
            return e;
    return NULL;
}

/* Record an object; takes ownership of data.  0 on success. */
static DWORD remember(DWORD volume, uint64_t index, uint8_t *data, size_t length)
{
    object_entry *e;
    DWORD rc = ERROR_SUCCESS;
    AcquireSRWLockExclusive(&objects_lock);
    e = find_object(volume, index);
    if (e == NULL && (e = calloc(1, sizeof *e)) != NULL) {
        e->volume = volume;
        e->index = index;
        e->next = objects;
        objects = e;
    }
    if (e != NULL) {
        free(e->data);
        e->data = data;
        e->length = length;
    } else {
        free(data);
        rc = ERROR_NOT_ENOUGH_MEMORY;
    }
    ReleaseSRWLockExclusive(&objects_lock);
    return rc;
}

typedef struct {
    HANDLE file;                   /* files; INVALID_HANDLE_VALUE for folders */
    DWORD volume;                  /* folders: their file ID */
    uint64_t index;
    ULONG flags;
    uint64_t rng;
    int used;                      /* Write may be called once per import context */
} context;

static void bump(int which, LONG64 by) { InterlockedAdd64(&counters[which], by); }

static uint32_t next_size(context *c, uint32_t fixed)
{
    uint64_t x;
    if (cfg.seed == 0)
        return fixed;
    /* xorshift64*: a reproducible schedule per context */
    x = c->rng;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    c->rng = x;
    x *= 0x2545F4914F6CDD1DULL;
    return cfg.min_size + (uint32_t)(x % (uint64_t)(cfg.buffer_size - cfg.min_size + 1));
}

/* ---- the four functions ---- */

DWORD WINAPI OpenEncryptedFileRawW(LPCWSTR lpFileName, ULONG ulFlags, PVOID *pvContext)
{
    context *c;
    DWORD attrs, create_attrs = FILE_ATTRIBUTE_NORMAL;
    int import = (ulFlags & CREATE_FOR_IMPORT) != 0, dir = (ulFlags & CREATE_FOR_DIR) != 0;

    bump(C_OPENS, 1);
    *pvContext = NULL;
    if (cfg.fail_open)
        return cfg.fail_open;
    if (wcslen(lpFileName) >= MAX_PATH && wcsncmp(lpFileName, L"\\\\?\\", 4) != 0)
        return ERROR_PATH_NOT_FOUND;   /* what Windows says without the long-path opt-in */
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return ERROR_NOT_ENOUGH_MEMORY;
    c->flags = ulFlags;
    c->file = INVALID_HANDLE_VALUE;
    c->rng = cfg.seed ^ (uint64_t)(InterlockedIncrement64(&contexts_made) * 0x9E3779B97F4A7C15ULL);
    if (c->rng == 0)
        c->rng = 1;
    attrs = GetFileAttributesW(lpFileName);
    if (dir) {
        if (import) {
            if (!CreateDirectoryW(lpFileName, NULL) && GetLastError() != ERROR_ALREADY_EXISTS)
                goto fail_last;
        } else if (attrs == INVALID_FILE_ATTRIBUTES) {
            goto fail_last;
        }
        if (GetFileAttributesW(lpFileName) == INVALID_FILE_ATTRIBUTES)
            goto fail_last;
        if (!(GetFileAttributesW(lpFileName) & FILE_ATTRIBUTE_DIRECTORY)) {
            free(c);
            return ERROR_DIRECTORY;    /* CREATE_FOR_DIR on a file (spec 7.1) */
        }
        if (!path_id(lpFileName, &c->volume, &c->index))
            goto fail_last;
    } else if (import) {
        if (attrs != INVALID_FILE_ATTRIBUTES && (attrs & (FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_SYSTEM))) {
            if (!(ulFlags & OVERWRITE_HIDDEN)) {
                free(c);
                return ERROR_ACCESS_DENIED;   /* CreateFile CREATE_ALWAYS on a hidden file */
            }
            create_attrs = attrs & (FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_SYSTEM);
        }
        c->file = CreateFileW(lpFileName, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, create_attrs, NULL);
    } else {
        c->file = CreateFileW(lpFileName, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING,
                              FILE_ATTRIBUTE_NORMAL, NULL);
    }
    if (!dir && c->file == INVALID_HANDLE_VALUE)
        goto fail_last;
    bump(C_OPEN_CONTEXTS, 1);
    *pvContext = c;
    return ERROR_SUCCESS;
fail_last:
    {
        DWORD err = GetLastError();
        free(c);
        return err ? err : ERROR_GEN_FAILURE;
    }
}

static DWORD store(context *c, const uint8_t *data, DWORD n, uint8_t **dir_data,
                   size_t *dir_len, size_t *dir_cap)
{
    DWORD done;
    if (c->file == INVALID_HANDLE_VALUE) {
        if (*dir_len + n > *dir_cap) {
            size_t cap = (*dir_len + n) * 2;
            uint8_t *p = realloc(*dir_data, cap);
            if (p == NULL)
                return ERROR_NOT_ENOUGH_MEMORY;
            *dir_data = p;
            *dir_cap = cap;
        }
        memcpy(*dir_data + *dir_len, data, n);
        *dir_len += n;
        return ERROR_SUCCESS;
    }
    if (cfg.fail_write_at && InterlockedIncrement64(&writes_done) == cfg.fail_write_at)
        return cfg.fail_write_code;
    if (!WriteFile(c->file, data, n, &done, NULL))
        return GetLastError();
    return done == n ? ERROR_SUCCESS : ERROR_WRITE_FAULT;
}

DWORD WINAPI WriteEncryptedFileRaw(PFE_IMPORT_FUNC pfImportCallback, PVOID pvCallbackContext,
                                   PVOID pvContext)
{
    context *c = pvContext;
    uint8_t *buf, *dir_data = NULL;
    size_t dir_len = 0, dir_cap = 0;
    DWORD rc = ERROR_SUCCESS;
    uint32_t cap, i;
    ULONG len;

    if (c == NULL || !(c->flags & CREATE_FOR_IMPORT))
        return ERROR_INVALID_PARAMETER;
    if (c->used)
        return ERROR_INVALID_PARAMETER;   /* once per context (spec 7.2) */
    c->used = 1;
    buf = malloc((size_t)(cfg.seed ? cfg.buffer_size : IMPORT_BUFFER) + GUARD);
    if (buf == NULL)
        return ERROR_NOT_ENOUGH_MEMORY;
    for (;;) {
        cap = next_size(c, IMPORT_BUFFER);
        memset(buf + cap, GUARD_BYTE, GUARD);
        len = cap;
        if ((LONG64)cap > counters[C_MAX_OFFERED])
            InterlockedExchange64(&counters[C_MAX_OFFERED], (LONG64)cap);
        rc = pfImportCallback(buf, pvCallbackContext, &len);
        bump(C_IMPORT_CALLS, 1);
        for (i = 0; i < GUARD; i++)
            if (buf[cap + i] != GUARD_BYTE)
                break;
        if (i < GUARD) {
            bump(C_GUARD_VIOLATIONS, 1);
            rc = ERROR_NOACCESS;      /* the callback wrote past *ulLength */
            break;
        }
        if (rc != ERROR_SUCCESS)
            break;                    /* the callback's own code (spec 7.5) */
        if (len > cap) {
            bump(C_OVERCLAIMS, 1);
            rc = ERROR_INVALID_PARAMETER;
            break;
        }
        if (len == 0)
            break;                    /* end of the stream */
        if (len < cap)
            bump(C_SHORT_FILLS, 1);
        bump(C_BYTES_IN, (LONG64)len);
        if ((rc = store(c, buf, len, &dir_data, &dir_len, &dir_cap)) != ERROR_SUCCESS)
            break;
    }
    free(buf);
    if (rc == ERROR_SUCCESS) {
        if (c->file == INVALID_HANDLE_VALUE) {
            rc = remember(c->volume, c->index, dir_data, dir_len);
            dir_data = NULL;
        } else {
            LARGE_INTEGER size;
            DWORD volume;
            uint64_t index;
            if (!GetFileSizeEx(c->file, &size) || !file_id(c->file, &volume, &index))
                rc = GetLastError();
            else
                rc = remember(volume, index, NULL, (size_t)size.QuadPart);
        }
    }
    free(dir_data);
    if (rc != ERROR_SUCCESS)
        bump(C_FAILED_IMPORTS, 1);
    return rc;
}

DWORD WINAPI ReadEncryptedFileRaw(PFE_EXPORT_FUNC pfExportCallback, PVOID pvCallbackContext,
                                  PVOID pvContext)
{
    context *c = pvContext;
    uint8_t *buf = NULL;
    DWORD rc = ERROR_SUCCESS, got;
    uint32_t block;
    LARGE_INTEGER zero;

    if (c == NULL || (c->flags & CREATE_FOR_IMPORT))
        return ERROR_INVALID_PARAMETER;
    if (c->file == INVALID_HANDLE_VALUE) {
        /* a folder: its stream as one copy, handed out in blocks */
        uint8_t *copy = NULL;
        size_t length = 0, pos = 0;
        object_entry *e;
        AcquireSRWLockShared(&objects_lock);
        e = find_object(c->volume, c->index);
        if (e != NULL && (copy = malloc(e->length ? e->length : 1)) != NULL) {
            memcpy(copy, e->data, e->length);
            length = e->length;
        }
        ReleaseSRWLockShared(&objects_lock);
        if (e == NULL)
            return ERROR_FILE_NOT_ENCRYPTED;
        if (copy == NULL)
            return ERROR_NOT_ENOUGH_MEMORY;
        while (pos < length && rc == ERROR_SUCCESS) {
            block = next_size(c, EXPORT_BLOCK);
            if (block > length - pos)
                block = (uint32_t)(length - pos);
            rc = pfExportCallback(copy + pos, pvCallbackContext, block);
            bump(C_EXPORT_CALLS, 1);
            if (rc == ERROR_SUCCESS)
                bump(C_BYTES_OUT, block);
            pos += block;
        }
        free(copy);
        return rc;
    }
    zero.QuadPart = 0;
    SetFilePointerEx(c->file, zero, NULL, FILE_BEGIN);   /* a repeated read starts over (7.2) */
    buf = malloc(cfg.seed ? cfg.buffer_size : EXPORT_BLOCK);
    if (buf == NULL)
        return ERROR_NOT_ENOUGH_MEMORY;
    for (;;) {
        block = next_size(c, EXPORT_BLOCK);
        if (cfg.fail_read_at && InterlockedIncrement64(&reads_done) == cfg.fail_read_at) {
            rc = cfg.fail_read_code;
            break;
        }
        if (!ReadFile(c->file, buf, block, &got, NULL)) {
            rc = GetLastError();
            break;
        }
        if (got == 0)
            break;
        rc = pfExportCallback(buf, pvCallbackContext, got);
        bump(C_EXPORT_CALLS, 1);
        if (rc != ERROR_SUCCESS)
            break;                    /* the callback's code becomes ours (spec 7.4) */
        bump(C_BYTES_OUT, got);
    }
    free(buf);
    return rc;
}

VOID WINAPI CloseEncryptedFileRaw(PVOID pvContext)
{
    context *c = pvContext;
    bump(C_CLOSES, 1);
    if (c == NULL)
        return;
    if (c->file != INVALID_HANDLE_VALUE)
        CloseHandle(c->file);
    free(c);
    bump(C_OPEN_CONTEXTS, -1);
}

/* ---- control, for the tests (cdecl, through ctypes) ---- */

DOUBLE_API void double_reset(void)
{
    int i;
    for (i = 0; i < C_COUNT; i++)
        if (i != C_OPEN_CONTEXTS)
            InterlockedExchange64(&counters[i], 0);
    cfg.buffer_size = IMPORT_BUFFER;
    cfg.min_size = 1;
    cfg.seed = 0;
    cfg.fail_open = 0;
    cfg.fail_write_at = cfg.fail_read_at = 0;
    cfg.fail_write_code = cfg.fail_read_code = 0;
    InterlockedExchange64(&writes_done, 0);
    InterlockedExchange64(&reads_done, 0);
}

/* Sizes for both directions: random in [min_size, buffer_size] from seed. */
DOUBLE_API int double_set_schedule(uint32_t buffer_size, uint32_t min_size, uint64_t seed)
{
    if (seed == 0 || min_size < 1 || min_size > buffer_size || buffer_size > (1u << 30))
        return -1;
    cfg.buffer_size = buffer_size;
    cfg.min_size = min_size;
    cfg.seed = seed;
    return 0;
}

DOUBLE_API void double_fail_open(DWORD code) { cfg.fail_open = code; }

DOUBLE_API void double_fail_write(int64_t nth, DWORD code)
{
    InterlockedExchange64(&writes_done, 0);
    cfg.fail_write_code = code;
    cfg.fail_write_at = nth;
}

DOUBLE_API void double_fail_read(int64_t nth, DWORD code)
{
    InterlockedExchange64(&reads_done, 0);
    cfg.fail_read_code = code;
    cfg.fail_read_at = nth;
}

DOUBLE_API int64_t double_counter(int which)
{
    return which >= 0 && which < C_COUNT ? counters[which] : -1;
}

/* Whether the double imported this file or folder (and, for a file, it still
 * has the size it was given): what Windows shows as FILE_ATTRIBUTE_ENCRYPTED. */
DOUBLE_API int double_is_encrypted(const wchar_t *path)
{
    DWORD volume;
    uint64_t index;
    object_entry *e;
    int yes = 0;
    LARGE_INTEGER size;
    WIN32_FILE_ATTRIBUTE_DATA data;
    if (!path_id(path, &volume, &index) || !GetFileAttributesExW(path, GetFileExInfoStandard, &data))
        return 0;
    size.HighPart = (LONG)data.nFileSizeHigh;
    size.LowPart = data.nFileSizeLow;
    AcquireSRWLockShared(&objects_lock);
    e = find_object(volume, index);
    if (e != NULL)
        yes = (data.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) || (size_t)size.QuadPart == e->length;
    ReleaseSRWLockShared(&objects_lock);
    return yes;
}
