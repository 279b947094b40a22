/*
 * efs_abi.h -- the C ABI every efsfast layer speaks.
 *
 * Fixed-width mirrors of the advapi32 raw-EFS interface (winbase.h): Windows
 * DWORD/ULONG are 32-bit everywhere, while Linux `unsigned long` is 64-bit, so
 * nothing here uses the native long types.  The callbacks use the WINAPI
 * calling convention on Windows (stdcall on x86, the only ABI on x64).
 */
#ifndef EFSFAST_EFS_ABI_H
#define EFSFAST_EFS_ABI_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#  define EFS_WINAPI __stdcall
#else
#  define EFS_WINAPI
#endif

typedef uint32_t efs_dword;   /* DWORD */
typedef uint32_t efs_ulong;   /* ULONG */

/* PFE_IMPORT_FUNC: fill at most *ulLength bytes of pbData, set *ulLength to
 * the count written; *ulLength == 0 with ERROR_SUCCESS ends the stream; any
 * non-zero return is a failure. */
typedef efs_dword (EFS_WINAPI *efs_import_func)(uint8_t *pbData,
                                                void *pvCallbackContext,
                                                efs_ulong *ulLength);

/* PFE_EXPORT_FUNC: consume ulLength bytes at pbData (valid only during the
 * call); a non-zero return aborts the read. */
typedef efs_dword (EFS_WINAPI *efs_export_func)(uint8_t *pbData,
                                                void *pvCallbackContext,
                                                efs_ulong ulLength);

/* OpenEncryptedFileRaw flags (winbase.h, MS-EFSR 3.1.4.2.1). */
#define EFS_CREATE_FOR_IMPORT           0x00000001u
#define EFS_CREATE_FOR_DIR              0x00000002u
#define EFS_OVERWRITE_HIDDEN            0x00000004u
#define EFS_EFSRPC_SECURE_ONLY          0x00000008u
#ifndef EFS_DROP_ALTERNATE_STREAMS     /* winbase.h spells it the same */
#define EFS_DROP_ALTERNATE_STREAMS      0x00000010u
#endif

/* Win32 error codes efsfast produces or maps (winerror.h values). */
#define EFS_ERROR_SUCCESS               0u
#define EFS_ERROR_FILE_NOT_FOUND        2u
#define EFS_ERROR_PATH_NOT_FOUND        3u
#define EFS_ERROR_ACCESS_DENIED         5u
#define EFS_ERROR_INVALID_HANDLE        6u
#define EFS_ERROR_NOT_ENOUGH_MEMORY     8u
#define EFS_ERROR_INVALID_DATA          13u
#define EFS_ERROR_WRITE_FAULT           29u
#define EFS_ERROR_READ_FAULT            30u
#define EFS_ERROR_GEN_FAILURE           31u
#define EFS_ERROR_SHARING_VIOLATION     32u
#define EFS_ERROR_HANDLE_EOF            38u
#define EFS_ERROR_NOT_SUPPORTED         50u
#define EFS_ERROR_FILE_EXISTS           80u
#define EFS_ERROR_INVALID_PARAMETER     87u
#define EFS_ERROR_DISK_FULL             112u
#define EFS_ERROR_CALL_NOT_IMPLEMENTED  120u
#define EFS_ERROR_INSUFFICIENT_BUFFER   122u
#define EFS_ERROR_DIR_NOT_EMPTY         145u
#define EFS_ERROR_ALREADY_EXISTS        183u
#define EFS_ERROR_FILENAME_EXCED_RANGE  206u
#define EFS_ERROR_DIRECTORY             267u
#define EFS_ERROR_EAS_NOT_SUPPORTED     282u
#define EFS_ERROR_OPERATION_ABORTED     995u
#define EFS_ERROR_CANCELLED             1223u
#define EFS_ERROR_FILE_NOT_ENCRYPTED    6007u

#endif /* EFSFAST_EFS_ABI_H */
