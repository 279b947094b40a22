/*
 * efs_sector.c -- per-sector CBC of EFS data streams (spec section 10).
 *
 * CBC decryption parallelises (P_i = D_K(C_i) XOR C_(i-1), C_(-1) = the
 * sector IV), so a whole buffer of sectors runs at the speed of ECB.  The
 * AES-NI path does it in one pass with eight blocks in flight; other builds
 * and 3DES use an ECB pass done by OpenSSL (through `cryptography`, in the
 * caller) followed by efs_sector_unchain().
 */
#include "efs_sector.h"

#include <string.h>

#if (defined(__x86_64__) || defined(_M_X64)) && !defined(EFSFAST_NO_AESNI)
#  define EFS_HAVE_AESNI_BUILD 1
#  include <wmmintrin.h>
#  include <emmintrin.h>
#  if defined(_MSC_VER) && !defined(__clang__)
#    include <intrin.h>
#    define EFS_TARGET_AES
#  else
#    define EFS_TARGET_AES __attribute__((target("aes,sse2")))
#  endif
#else
#  define EFS_HAVE_AESNI_BUILD 0
#endif

static void store64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v & 0xFF);
        v >>= 8;
    }
}

/* p ^= q over n bytes (a multiple of 8), a word at a time; XOR does not
 * care about byte order, and memcpy compiles to plain loads and stores */
static void xor_words(uint8_t *p, const uint8_t *q, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t a, b;
        memcpy(&a, p + i, 8);
        memcpy(&b, q + i, 8);
        a ^= b;
        memcpy(p + i, &a, 8);
    }
}

size_t efs_sector_block_size(int alg)
{
    switch (alg) {
    case EFS_SECTOR_AES256: return 16;
    case EFS_SECTOR_3DES: return 8;
    default: return 0;
    }
}

void efs_sector_iv(int alg, uint64_t offset, uint8_t *iv)
{
    /* the additions wrap modulo 2^64 (unsigned arithmetic) */
    if (alg == EFS_SECTOR_AES256) {
        store64(iv, EFS_AES_IV_LOW + offset);
        store64(iv + 8, EFS_AES_IV_HIGH + offset);
    } else {
        store64(iv, EFS_DES_IV + offset);
    }
}

void efs_sector_unchain(int alg, uint8_t *plain, const uint8_t *cipher, size_t n,
                        uint64_t offset)
{
    size_t bs = efs_sector_block_size(alg);
    uint8_t iv[16];
    if (bs == 0)
        return;
    for (size_t s = 0; s + EFS_SECTOR_SIZE <= n; s += EFS_SECTOR_SIZE) {
        uint8_t *p = plain + s;
        const uint8_t *c = cipher + s;
        efs_sector_iv(alg, offset + s, iv);
        xor_words(p, iv, bs);
        xor_words(p + bs, c, EFS_SECTOR_SIZE - bs);
    }
}

void efs_wipe(void *p, size_t n)
{
    volatile uint8_t *v = (volatile uint8_t *)p;
    while (n--)
        *v++ = 0;
}

#if EFS_HAVE_AESNI_BUILD

int efs_sector_have_aesni(void)
{
#if defined(_MSC_VER) && !defined(__clang__)
    int info[4];
    __cpuid(info, 1);
    return (info[2] >> 25) & 1;
#else
    __builtin_cpu_init();
    return __builtin_cpu_supports("aes") && __builtin_cpu_supports("sse2");
#endif
}

/* One step of the AES-256 key schedule (FIPS-197 5.2): `assist` is
 * aeskeygenassist of the other half; `lane` picks SubWord(RotWord) (0xFF)
 * or SubWord alone (0xAA). */
#define EFS_EXPAND(prev, assist, lane, out) do {                               \
        __m128i t_ = _mm_shuffle_epi32((assist), (lane));                     \
        __m128i k_ = (prev);                                                   \
        k_ = _mm_xor_si128(k_, _mm_slli_si128(k_, 4));                         \
        k_ = _mm_xor_si128(k_, _mm_slli_si128(k_, 4));                         \
        k_ = _mm_xor_si128(k_, _mm_slli_si128(k_, 4));                         \
        (out) = _mm_xor_si128(k_, t_);                                         \
    } while (0)

#define EFS_ROUND_PAIR(i, rcon) do {                                           \
        EFS_EXPAND(ek[(i) - 2], _mm_aeskeygenassist_si128(ek[(i) - 1], rcon), 0xFF, ek[i]); \
        EFS_EXPAND(ek[(i) - 1], _mm_aeskeygenassist_si128(ek[i], 0), 0xAA, ek[(i) + 1]); \
    } while (0)

EFS_TARGET_AES
static void aes256_expand(const uint8_t key[32], uint8_t *out)
{
    __m128i ek[15];
    ek[0] = _mm_loadu_si128((const __m128i *)(const void *)key);
    ek[1] = _mm_loadu_si128((const __m128i *)(const void *)(key + 16));
    EFS_ROUND_PAIR(2, 0x01);
    EFS_ROUND_PAIR(4, 0x02);
    EFS_ROUND_PAIR(6, 0x04);
    EFS_ROUND_PAIR(8, 0x08);
    EFS_ROUND_PAIR(10, 0x10);
    EFS_ROUND_PAIR(12, 0x20);
    EFS_EXPAND(ek[12], _mm_aeskeygenassist_si128(ek[13], 0x40), 0xFF, ek[14]);
    /* the equivalent inverse cipher (FIPS-197 5.3.5): reversed order,
     * InvMixColumns on the inner round keys */
    _mm_storeu_si128((__m128i *)(void *)out, ek[14]);
    for (int r = 1; r < 14; r++)
        _mm_storeu_si128((__m128i *)(void *)(out + 16 * r), _mm_aesimc_si128(ek[14 - r]));
    _mm_storeu_si128((__m128i *)(void *)(out + 16 * 14), ek[0]);
    efs_wipe(ek, sizeof ek);
}

int efs_aes256_dec_init(efs_aes256_dec *k, const uint8_t key[32])
{
    memset(k, 0, sizeof *k);
    if (!efs_sector_have_aesni())
        return -1;
    aes256_expand(key, k->round_keys);
    return 0;
}

#define EFS_LOAD(i) c[i] = _mm_loadu_si128((const __m128i *)(const void *)(src + 16 * (i)))
#define EFS_ALL8(M) do { M(0); M(1); M(2); M(3); M(4); M(5); M(6); M(7); } while (0)
#define EFS_WHITEN(i) x[i] = _mm_xor_si128(c[i], rk[0])
#define EFS_DEC(i) x[i] = _mm_aesdec_si128(x[i], key)
#define EFS_LAST(i) x[i] = _mm_aesdeclast_si128(x[i], rk[14])
#define EFS_CHAIN7(M) do { M(1); M(2); M(3); M(4); M(5); M(6); M(7); } while (0)
#define EFS_UNCHAIN(i) x[i] = _mm_xor_si128(x[i], c[(i) - 1])
#define EFS_STORE(i) _mm_storeu_si128((__m128i *)(void *)(dst + 16 * (i)), x[i])

EFS_TARGET_AES
void efs_aes256_sectors_decrypt(const efs_aes256_dec *k, uint8_t *out, const uint8_t *in,
                                size_t n, uint64_t offset)
{
    __m128i rk[15];
    for (int r = 0; r < 15; r++)
        rk[r] = _mm_loadu_si128((const __m128i *)(const void *)(k->round_keys + 16 * r));
    for (size_t s = 0; s + EFS_SECTOR_SIZE <= n; s += EFS_SECTOR_SIZE) {
        uint64_t o = offset + s;
        __m128i prev = _mm_set_epi64x((long long)(EFS_AES_IV_HIGH + o),
                                      (long long)(EFS_AES_IV_LOW + o));
        for (size_t b = 0; b < EFS_SECTOR_SIZE; b += 128) {
            const uint8_t *src = in + s + b;
            uint8_t *dst = out + s + b;
            __m128i c[8], x[8];
            /* all eight ciphertext blocks are loaded before any store, so
             * decrypting in place is safe */
            EFS_ALL8(EFS_LOAD);
            EFS_ALL8(EFS_WHITEN);
            /* the 13 middle rounds, written out so the eight blocks stay in
             * registers and the AES units always have independent work */
#define EFS_ROUND(r) do { __m128i key = rk[r]; EFS_ALL8(EFS_DEC); } while (0)
            EFS_ROUND(1); EFS_ROUND(2); EFS_ROUND(3); EFS_ROUND(4); EFS_ROUND(5);
            EFS_ROUND(6); EFS_ROUND(7); EFS_ROUND(8); EFS_ROUND(9); EFS_ROUND(10);
            EFS_ROUND(11); EFS_ROUND(12); EFS_ROUND(13);
#undef EFS_ROUND
            EFS_ALL8(EFS_LAST);
            x[0] = _mm_xor_si128(x[0], prev);
            EFS_CHAIN7(EFS_UNCHAIN);
            prev = c[7];
            EFS_ALL8(EFS_STORE);
        }
    }
    efs_wipe(rk, sizeof rk);
}

#else  /* no AES-NI in this build: the caller takes the ECB + unchain path */

int efs_sector_have_aesni(void) { return 0; }

int efs_aes256_dec_init(efs_aes256_dec *k, const uint8_t key[32])
{
    (void)key;
    memset(k, 0, sizeof *k);
    return -1;
}

void efs_aes256_sectors_decrypt(const efs_aes256_dec *k, uint8_t *out, const uint8_t *in,
                                size_t n, uint64_t offset)
{
    (void)k; (void)out; (void)in; (void)n; (void)offset;
}

#endif
