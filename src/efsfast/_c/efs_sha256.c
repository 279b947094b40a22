/*
 * efs_sha256.c -- SHA-256 as FIPS 180-4 defines it (sections 4.1.2, 4.2.2,
 * 5.1.1, 5.3.3, 6.2): see efs_sha256.h.
 */
#include "efs_sha256.h"

#include <string.h>

#if (defined(__x86_64__) || defined(_M_X64)) && !defined(EFSFAST_NO_SHANI)
#  define EFS_HAVE_SHANI_BUILD 1
#  include <immintrin.h>
#  if defined(_MSC_VER) && !defined(__clang__)
#    include <intrin.h>
#    define EFS_TARGET_SHA
#  else
#    include <cpuid.h>
#    define EFS_TARGET_SHA __attribute__((target("sha,sse4.1,ssse3")))
#  endif
#else
#  define EFS_HAVE_SHANI_BUILD 0
#endif

/* 4.2.2: the first 32 bits of the fractional parts of the cube roots of the
 * first 64 primes */
static const uint32_t K[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u,
    0xab1c5ed5u, 0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu,
    0x9bdc06a7u, 0xc19bf174u, 0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu,
    0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau, 0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u,
    0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u, 0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu,
    0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u, 0xa2bfe8a1u, 0xa81a664bu,
    0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u, 0x19a4c116u,
    0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u,
    0xc67178f2u};

/* 5.3.3: the first 32 bits of the fractional parts of the square roots of
 * the first 8 primes */
static const uint32_t H0[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                               0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};

/* ---- the portable compression function (6.2.2) ---- */

static uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

static uint32_t load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* 4.1.2 */
#define CH(x, y, z) (((x) & (y)) ^ (~(x) & (z)))
#define MAJ(x, y, z) (((x) & (y)) ^ ((x) & (z)) ^ ((y) & (z)))
#define BSIG0(x) (rotr((x), 2) ^ rotr((x), 13) ^ rotr((x), 22))
#define BSIG1(x) (rotr((x), 6) ^ rotr((x), 11) ^ rotr((x), 25))
#define SSIG0(x) (rotr((x), 7) ^ rotr((x), 18) ^ ((x) >> 3))
#define SSIG1(x) (rotr((x), 17) ^ rotr((x), 19) ^ ((x) >> 10))

/* One round with the working variables renamed instead of moved: eight
 * calls with rotated arguments make the usual h=g, g=f, ... shift. */
#define ROUND(a, b, c, d, e, f, g, h, i) do {                               \
        uint32_t t1_ = (h) + BSIG1(e) + CH((e), (f), (g)) + K[i] + w[i];   \
        uint32_t t2_ = BSIG0(a) + MAJ((a), (b), (c));                      \
        (d) += t1_;                                                        \
        (h) = t1_ + t2_;                                                   \
    } while (0)

static void compress_portable(uint32_t state[8], const uint8_t *p, size_t nblocks)
{
    uint32_t w[64];
    while (nblocks--) {
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
        for (int t = 0; t < 16; t++) w[t] = load_be32(p + 4 * t);
        for (int t = 16; t < 64; t++)
            w[t] = SSIG1(w[t - 2]) + w[t - 7] + SSIG0(w[t - 15]) + w[t - 16];
        for (int i = 0; i < 64; i += 8) {
            ROUND(a, b, c, d, e, f, g, h, i);
            ROUND(h, a, b, c, d, e, f, g, i + 1);
            ROUND(g, h, a, b, c, d, e, f, i + 2);
            ROUND(f, g, h, a, b, c, d, e, i + 3);
            ROUND(e, f, g, h, a, b, c, d, i + 4);
            ROUND(d, e, f, g, h, a, b, c, i + 5);
            ROUND(c, d, e, f, g, h, a, b, i + 6);
            ROUND(b, c, d, e, f, g, h, a, i + 7);
        }
        state[0] += a; state[1] += b; state[2] += c; state[3] += d;
        state[4] += e; state[5] += f; state[6] += g; state[7] += h;
        p += EFS_SHA256_BLOCK;
    }
}

/* ---- x86-64 SHA extensions ---- */

#if EFS_HAVE_SHANI_BUILD

static int cpu_has_shani(void)
{
    /* SHA: CPUID.(EAX=7,ECX=0):EBX bit 29; the shuffles need SSSE3 and
     * SSE4.1: CPUID.1:ECX bits 9 and 19 */
#if defined(_MSC_VER) && !defined(__clang__)
    int r[4];
    __cpuid(r, 0);
    if (r[0] < 7) return 0;
    __cpuidex(r, 7, 0);
    if (!((unsigned)r[1] & (1u << 29))) return 0;
    __cpuid(r, 1);
    return ((unsigned)r[2] & (1u << 9)) && ((unsigned)r[2] & (1u << 19));
#else
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & (1u << 29))) return 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c & (1u << 9)) && (c & (1u << 19));
#endif
}

/* Four rounds: the message words plus their constants, two rounds per
 * sha256rnds2 (its third operand's low half). */
#define SHANI_ROUNDS(msg, i) do {                                                    \
        __m128i m_ = _mm_add_epi32((msg), _mm_loadu_si128((const __m128i *)(const void *)&K[4 * (i)])); \
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, m_);                                \
        abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(m_, 0x0E));       \
    } while (0)

/* The next four schedule words W[t..t+3] from the sixteen before them
 * (6.2.2 step 1): sha256msg1 adds sigma0, the alignr gives W[t-7..t-4],
 * sha256msg2 adds sigma1. */
#define SHANI_SCHEDULE(w0, w1, w2, w3) \
    _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32((w0), (w1)), \
                                       _mm_alignr_epi8((w3), (w2), 4)), (w3))

EFS_TARGET_SHA
static void compress_shani(uint32_t state[8], const uint8_t *p, size_t nblocks)
{
    /* the words are big-endian (3.1): swap the bytes of each 32-bit lane */
    const __m128i swap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i dcba = _mm_loadu_si128((const __m128i *)(const void *)&state[0]);
    __m128i hgfe = _mm_loadu_si128((const __m128i *)(const void *)&state[4]);
    /* sha256rnds2 keeps the state as (A,B,E,F) and (C,D,G,H), high lane first */
    __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1);
    __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
    __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);
    while (nblocks--) {
        __m128i abef0 = abef, cdgh0 = cdgh, w0, w1, w2, w3;
        w0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 0)), swap);
        w1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 16)), swap);
        w2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 32)), swap);
        w3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 48)), swap);
        SHANI_ROUNDS(w0, 0);
        SHANI_ROUNDS(w1, 1);
        SHANI_ROUNDS(w2, 2);
        SHANI_ROUNDS(w3, 3);
        for (int i = 4; i < 16; i += 4) {
            w0 = SHANI_SCHEDULE(w0, w1, w2, w3);
            SHANI_ROUNDS(w0, i);
            w1 = SHANI_SCHEDULE(w1, w2, w3, w0);
            SHANI_ROUNDS(w1, i + 1);
            w2 = SHANI_SCHEDULE(w2, w3, w0, w1);
            SHANI_ROUNDS(w2, i + 2);
            w3 = SHANI_SCHEDULE(w3, w0, w1, w2);
            SHANI_ROUNDS(w3, i + 3);
        }
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
        p += EFS_SHA256_BLOCK;
    }
    /* back to (A..D), (E..H) */
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    dcba = _mm_blend_epi16(feba, dchg, 0xF0);
    hgfe = _mm_alignr_epi8(dchg, feba, 8);
    _mm_storeu_si128((__m128i *)(void *)&state[0], dcba);
    _mm_storeu_si128((__m128i *)(void *)&state[4], hgfe);
}

/* Asked once per process; threads racing here all store the same value. */
static int shani_state = -1;

static int have_shani(void)
{
#if defined(_MSC_VER) && !defined(__clang__)
    int v = *(volatile int *)&shani_state;
    if (v < 0) *(volatile int *)&shani_state = v = cpu_has_shani();
#else
    int v = __atomic_load_n(&shani_state, __ATOMIC_RELAXED);
    if (v < 0) __atomic_store_n(&shani_state, v = cpu_has_shani(), __ATOMIC_RELAXED);
#endif
    return v;
}
#else
static int have_shani(void) { return 0; }
#endif

/* ---- the incremental interface (padding: 5.1.1) ---- */

int efs_sha256_available(int impl)
{
    switch (impl) {
    case EFS_SHA256_AUTO: case EFS_SHA256_PORTABLE: return 1;
    case EFS_SHA256_SHANI: return have_shani();
    default: return 0;
    }
}

int efs_sha256_init_impl(efs_sha256 *s, int impl)
{
    int ok = efs_sha256_available(impl);
    if (!ok || impl == EFS_SHA256_AUTO) impl = have_shani() ? EFS_SHA256_SHANI : EFS_SHA256_PORTABLE;
    memcpy(s->state, H0, sizeof H0);
    s->length = 0;
    s->fill = 0;
    s->impl = impl;
    s->compress = compress_portable;
#if EFS_HAVE_SHANI_BUILD
    if (impl == EFS_SHA256_SHANI) s->compress = compress_shani;
#endif
    return ok ? 0 : -1;
}

void efs_sha256_init(efs_sha256 *s)
{
    (void)efs_sha256_init_impl(s, EFS_SHA256_AUTO);
}

void efs_sha256_update(efs_sha256 *s, const uint8_t *data, size_t n)
{
    if (n == 0) return;             /* (data may be NULL then) */
    s->length += n;
    if (s->fill) {
        size_t k = EFS_SHA256_BLOCK - s->fill;
        if (k > n) k = n;
        memcpy(s->block + s->fill, data, k);
        s->fill += k;
        data += k;
        n -= k;
        if (s->fill < EFS_SHA256_BLOCK) return;
        s->compress(s->state, s->block, 1);
        s->fill = 0;
    }
    if (n >= EFS_SHA256_BLOCK) {
        size_t whole = n / EFS_SHA256_BLOCK;
        s->compress(s->state, data, whole);
        data += whole * EFS_SHA256_BLOCK;
        n -= whole * EFS_SHA256_BLOCK;
    }
    if (n) {
        memcpy(s->block, data, n);
        s->fill = n;
    }
}

void efs_sha256_final(efs_sha256 *s, uint8_t out[EFS_SHA256_DIGEST])
{
    /* a 1 bit, zeros up to 56 mod 64 bytes, the length in bits (big-endian) */
    uint64_t bits = s->length * 8;
    s->block[s->fill++] = 0x80;
    if (s->fill > EFS_SHA256_BLOCK - 8) {
        memset(s->block + s->fill, 0, EFS_SHA256_BLOCK - s->fill);
        s->compress(s->state, s->block, 1);
        s->fill = 0;
    }
    memset(s->block + s->fill, 0, EFS_SHA256_BLOCK - 8 - s->fill);
    store_be32(s->block + 56, (uint32_t)(bits >> 32));
    store_be32(s->block + 60, (uint32_t)bits);
    s->compress(s->state, s->block, 1);
    for (int i = 0; i < 8; i++) store_be32(out + 4 * i, s->state[i]);
    s->fill = 0;
}

void efs_sha256_digest(const uint8_t *data, size_t n, uint8_t out[EFS_SHA256_DIGEST])
{
    efs_sha256 s;
    efs_sha256_init(&s);
    efs_sha256_update(&s, data, n);
    efs_sha256_final(&s, out);
}
