/*
 * efs_sha256.h -- SHA-256 (FIPS 180-4), incremental, for the hashes a backup
 * set records and a restore checks, computed where the bytes already are: in
 * the worker threads, in the system buffer, without the GIL.
 *
 * Two compression functions: a portable one, and on x86-64 one with the SHA
 * extensions (SHA-NI), chosen at run time by cpuid.  The SHA-NI function is
 * compiled with a target attribute, so nothing else needs -msha.
 */
#ifndef EFSFAST_EFS_SHA256_H
#define EFSFAST_EFS_SHA256_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EFS_SHA256_DIGEST 32u
#define EFS_SHA256_BLOCK 64u

/* Which compression function a context uses. */
typedef enum efs_sha256_impl {
    EFS_SHA256_AUTO = 0,        /* the fastest this CPU has */
    EFS_SHA256_PORTABLE = 1,
    EFS_SHA256_SHANI = 2        /* x86-64 with the SHA extensions */
} efs_sha256_impl;

typedef void (*efs_sha256_compress_fn)(uint32_t state[8], const uint8_t *blocks, size_t nblocks);

typedef struct efs_sha256 {
    uint32_t state[8];
    uint64_t length;                    /* bytes hashed so far */
    uint8_t block[EFS_SHA256_BLOCK];    /* a partial block waiting for more */
    size_t fill;
    efs_sha256_compress_fn compress;
    int impl;                           /* the efs_sha256_impl in use */
} efs_sha256;

/* Whether `impl` can run on this CPU (AUTO and PORTABLE always can). */
int efs_sha256_available(int impl);
/* Start a hash with the fastest implementation. */
void efs_sha256_init(efs_sha256 *s);
/* Start a hash with a given implementation (tests, benchmarks): 0, or -1
 * where it cannot run here (then `s` is started with AUTO). */
int efs_sha256_init_impl(efs_sha256 *s, int impl);
void efs_sha256_update(efs_sha256 *s, const uint8_t *data, size_t n);
/* The digest; `s` must be started again before further use. */
void efs_sha256_final(efs_sha256 *s, uint8_t out[EFS_SHA256_DIGEST]);
/* One-shot. */
void efs_sha256_digest(const uint8_t *data, size_t n, uint8_t out[EFS_SHA256_DIGEST]);

#ifdef __cplusplus
}
#endif
#endif /* EFSFAST_EFS_SHA256_H */
