/* The sector loop alone, as `openssl speed` measures OpenSSL: AES-256 CBC
 * decryption of 512-byte sectors (efs_sector.c's AES-NI path) over one
 * cache-resident 64 KiB buffer, again and again for SECONDS, one thread.
 *
 *   sector_kernel SECONDS        prints "GB/s", or "no-aesni"
 *
 * Only a benchmark, never a test. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "efs_sector.h"

static double now(void)
{
    struct timespec t;
    /* CPU time, as `openssl speed` divides by (without -elapsed) */
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    static uint8_t in[1 << 16], out[1 << 16];
    uint8_t key[32];
    efs_aes256_dec k;
    double seconds = argc > 1 ? atof(argv[1]) : 1.0, t0, t;
    unsigned long long bytes = 0;
    unsigned sum = 0;
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (uint8_t)(i * 31u + 7u);
    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (uint8_t)i;
    if (efs_aes256_dec_init(&k, key) != 0) {
        puts("no-aesni");
        return 0;
    }
    t0 = now();
    do {
        for (int r = 0; r < 64; r++) {
            efs_aes256_sectors_decrypt(&k, out, in, sizeof in, bytes);
            bytes += sizeof in;
            sum += out[r];        /* keeps the work observable */
        }
        t = now();
    } while (t - t0 < seconds);
    printf("%.3f %u\n", (double)bytes / (t - t0) / 1e9, sum & 1u);
    return 0;
}
