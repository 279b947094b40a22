/*
 * efs_sector.h -- the EFS data-stream cipher layout (spec section 10):
 * independent 512-byte sectors, each in CBC mode with an IV derived from the
 * sector's byte offset in the stream.  Pure C, no Python, no I/O.
 *
 * Decryption runs in one pass per buffer: with AES-NI the blocks are
 * decrypted eight at a time and XORed with the previous ciphertext block (or
 * the sector IV) as they leave the registers; without it the caller runs one
 * ECB decryption over the whole buffer (OpenSSL through `cryptography`) and
 * efs_sector_unchain() does the CBC XOR afterwards.
 */
#ifndef EFSFAST_EFS_SECTOR_H
#define EFSFAST_EFS_SECTOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EFS_SECTOR_SIZE 512u

/* The data ciphers efsfast decrypts (the FEK blob's ALG_ID picks one). */
typedef enum efs_sector_alg {
    EFS_SECTOR_AES256 = 1,   /* CALG_AES_256: 16-byte blocks, 32-byte key */
    EFS_SECTOR_3DES = 2      /* CALG_3DES: 8-byte blocks, 24-byte key */
} efs_sector_alg;

/* Sector IV constants (spec section 10, confirmed on Windows 10 data). */
#define EFS_AES_IV_LOW   UINT64_C(0x5816657be9161312)
#define EFS_AES_IV_HIGH  UINT64_C(0x1989adbe44918961)
#define EFS_DES_IV       UINT64_C(0x169119629891ad13)

/* Block size of `alg` in bytes (16 or 8); 0 for an unknown value. */
size_t efs_sector_block_size(int alg);

/* The IV of the sector at byte offset `offset` of its stream; writes
 * efs_sector_block_size(alg) bytes. */
void efs_sector_iv(int alg, uint64_t offset, uint8_t *iv);

/* CBC "unchaining" after an ECB pass: `plain` holds the block-wise ECB
 * decryption of `cipher` (`n` bytes, a multiple of 512, the first sector at
 * stream offset `offset`); XOR each block with the previous ciphertext block,
 * or with the sector IV for a sector's first block.  `plain` and `cipher`
 * must not overlap. */
void efs_sector_unchain(int alg, uint8_t *plain, const uint8_t *cipher, size_t n,
                        uint64_t offset);

/* AES-256 decryption round keys for the AES-NI path (15 x 16 bytes). */
typedef struct efs_aes256_dec {
    uint8_t round_keys[15 * 16];
} efs_aes256_dec;

/* 1 when this build and CPU run the AES-NI path. */
int efs_sector_have_aesni(void);

/* Expands `key` into decryption round keys; returns 0, or -1 without
 * AES-NI (then `k` is left zeroed). */
int efs_aes256_dec_init(efs_aes256_dec *k, const uint8_t key[32]);

/* Decrypts `n` bytes (a multiple of 512) of whole sectors, the first at
 * stream offset `offset`, from `in` to `out` in one pass; `out == in` is
 * allowed.  Requires efs_aes256_dec_init() to have succeeded. */
void efs_aes256_sectors_decrypt(const efs_aes256_dec *k, uint8_t *out, const uint8_t *in,
                                size_t n, uint64_t offset);

/* Overwrites `n` bytes with zeros in a way the compiler may not remove
 * (key material: spec section 10). */
void efs_wipe(void *p, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* EFSFAST_EFS_SECTOR_H */
