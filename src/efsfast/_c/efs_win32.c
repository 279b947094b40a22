/*
 * efs_win32.c -- the win32 system side: the vtable points at advapi32's
 * raw-EFS functions (winbase.h; Advapi32.dll, XP/2003 and later), plus the
 * privilege helper backup tools need (SeBackupPrivilege to export files the
 * caller has no key for, SeRestorePrivilege to import them; spec 7.3).
 *
 * Windows-only.  CI compiles and links it with the mingw cross compiler,
 * warnings as errors; Wine's raw-EFS functions are stubs, so behaviour is
 * written from the documented contract.
 */
#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <winbase.h>

#include "efs_backend.h"

/* Our fixed-width callback types must have the ABI of PFE_IMPORT_FUNC and
 * PFE_EXPORT_FUNC: 32-bit DWORD/ULONG on every Windows target. */
typedef char efs_assert_dword[(sizeof(DWORD) == sizeof(efs_dword)) ? 1 : -1];
typedef char efs_assert_ulong[(sizeof(ULONG) == sizeof(efs_ulong)) ? 1 : -1];

static efs_dword EFS_WINAPI w32_open(const efs_path_char *path, efs_ulong flags, void **context)
{
    return (efs_dword)OpenEncryptedFileRawW(path, (ULONG)flags, context);
}

static efs_dword EFS_WINAPI w32_read(efs_export_func cb, void *cb_context, void *context)
{
    /* same ABI (checked above); only the integer typedefs differ in name */
    return (efs_dword)ReadEncryptedFileRaw((PFE_EXPORT_FUNC)(void (*)(void))cb, cb_context, context);
}

static efs_dword EFS_WINAPI w32_write(efs_import_func cb, void *cb_context, void *context)
{
    return (efs_dword)WriteEncryptedFileRaw((PFE_IMPORT_FUNC)(void (*)(void))cb, cb_context, context);
}

static void EFS_WINAPI w32_close(void *context)
{
    /* always called, even after a failed read or write: it frees the
     * context and closes the file (spec 7.2) */
    CloseEncryptedFileRaw(context);
}

static const efs_backend win32_backend = {"win32", w32_open, w32_read, w32_write, w32_close};

const efs_backend *efs_win32_backend(void) { return &win32_backend; }

efs_dword efs_win32_enable_privileges(int backup, int restore)
{
    struct {
        DWORD PrivilegeCount;
        LUID_AND_ATTRIBUTES Privileges[2];
    } tp;
    HANDLE token;
    DWORD err = ERROR_SUCCESS;

    if (!OpenProcessToken(GetCurrentProcess(), TOKEN_ADJUST_PRIVILEGES | TOKEN_QUERY, &token))
        return (efs_dword)GetLastError();
    tp.PrivilegeCount = 0;
    if (backup) {
        if (!LookupPrivilegeValueW(NULL, L"SeBackupPrivilege", &tp.Privileges[tp.PrivilegeCount].Luid))
            err = GetLastError();
        tp.Privileges[tp.PrivilegeCount++].Attributes = SE_PRIVILEGE_ENABLED;
    }
    if (restore && err == ERROR_SUCCESS) {
        if (!LookupPrivilegeValueW(NULL, L"SeRestorePrivilege", &tp.Privileges[tp.PrivilegeCount].Luid))
            err = GetLastError();
        tp.Privileges[tp.PrivilegeCount++].Attributes = SE_PRIVILEGE_ENABLED;
    }
    if (err == ERROR_SUCCESS && tp.PrivilegeCount > 0) {
        /* succeeds even when a privilege is not held; GetLastError then says
         * ERROR_NOT_ALL_ASSIGNED */
        if (!AdjustTokenPrivileges(token, FALSE, (PTOKEN_PRIVILEGES)&tp, 0, NULL, NULL))
            err = GetLastError();
        else
            err = GetLastError();
    }
    CloseHandle(token);
    return (efs_dword)err;
}

#endif /* _WIN32 */

/* ISO C wants a non-empty translation unit on the other platform. */
typedef int efs_win32_unit;
