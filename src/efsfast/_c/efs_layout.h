/*
 * efs_layout.h -- byte layout of the EFSRPC raw data format (MS-EFSR 2.2.3)
 * and of the Version 1 $EFS metadata (MS-EFSR 2.2.2.1).
 *
 * This is the single place that knows where each field lives.  The parser
 * reads through these offsets and the writer writes through them, so the two
 * cannot drift apart.  All integers are little-endian.
 */
#ifndef EFSFAST_EFS_LAYOUT_H
#define EFSFAST_EFS_LAYOUT_H

#include <stdint.h>
#include <string.h>

/* ---- raw header (20 bytes), spec section 1.1 ---- */
#define EFS_RAW_HDR_LEN            20u
#define EFS_RAW_MAGIC_LEN          12u   /* 00 01 00 00 + "ROBS" UTF-16 */
#define EFS_RAW_OFF_RESERVED       12u
#define EFS_RAW_RESERVED_LEN        8u
static const uint8_t EFS_RAW_MAGIC[EFS_RAW_MAGIC_LEN] = {
    0x00, 0x01, 0x00, 0x00, 'R', 0, 'O', 0, 'B', 0, 'S', 0};

/* ---- marshaled stream header (28 + NameLength), section 2 ---- */
#define EFS_STREAM_HDR_FIXED       28u
#define EFS_STREAM_OFF_HDRLEN       0u
#define EFS_STREAM_OFF_SIG          4u
#define EFS_STREAM_OFF_FLAG        12u
#define EFS_STREAM_OFF_RESERVED    16u
#define EFS_STREAM_RESERVED_LEN     8u
#define EFS_STREAM_OFF_NAMELEN     24u
#define EFS_SIG_LEN                 8u
static const uint8_t EFS_SIG_NTFS[EFS_SIG_LEN] = {'N', 0, 'T', 0, 'F', 0, 'S', 0};
static const uint8_t EFS_SIG_GURE[EFS_SIG_LEN] = {'G', 0, 'U', 0, 'R', 0, 'E', 0};
/* R6: NTFS stream names are <= 255 characters, plus ":" and ":$DATA". */
#define EFS_STREAM_NAME_MAX        (2u * (255u + 8u))
#define EFS_STREAM_FLAG_ENCRYPTED   0u
#define EFS_STREAM_FLAG_PLAIN       1u
/* The metadata stream's name is the single UTF-16 unit 0x1910. */
static const uint8_t EFS_META_NAME[2] = {0x10, 0x19};
/* The unnamed data stream, without terminator as Windows writes it. */
static const uint8_t EFS_UNNAMED_NAME[14] = {':', 0, ':', 0, '$', 0, 'D', 0,
                                            'A', 0, 'T', 0, 'A', 0};
/* Peeking 12 bytes after a segment decides between GURE, NTFS and garbage. */
#define EFS_PEEK_LEN               12u

/* ---- stream data segment header (16 bytes), section 3 ---- */
#define EFS_SEG_HDR_LEN            16u
#define EFS_SEG_OFF_LEN             0u
#define EFS_SEG_OFF_SIG             4u
#define EFS_SEG_OFF_RESERVED       12u

/* ---- data segment encryption header, section 4 (offsets from seg+16) ---- */
#define EFS_ENC_FIXED              28u
#define EFS_ENC_OFF_START           0u   /* u64 StartingFileOffset */
#define EFS_ENC_OFF_LENGTH          8u   /* u32 header Length */
#define EFS_ENC_OFF_BWSS           12u   /* u32 BytesWithinStreamSize */
#define EFS_ENC_OFF_BWVDL          16u   /* u32 BytesWithinVDL */
#define EFS_ENC_OFF_COMPRESSION    20u   /* u16 */
#define EFS_ENC_OFF_DATA_UNIT      22u   /* u8 DataUnitShift */
#define EFS_ENC_OFF_CHUNK          23u   /* u8 ChunkShift */
#define EFS_ENC_OFF_CLUSTER        24u   /* u8 ClusterShift */
#define EFS_ENC_OFF_FORMAT         25u   /* u8 EncryptionFormat */
#define EFS_ENC_OFF_NBLOCKS        26u   /* u16 NumberOfDataBlocks */
#define EFS_ENC_OFF_BLOCKS         28u   /* u32[N] DataBlockSizes */
#define EFS_ENC_FORMAT_DEFAULT      1u
/* Windows writes a 0x1F0-byte encryption header: data starts at segment+512. */
#define EFS_ENC_WINDOWS_LEN     0x1F0u
#define EFS_SEG_WINDOWS_HDR    (EFS_SEG_HDR_LEN + EFS_ENC_WINDOWS_LEN)
#define EFS_SEG_MAX_DATA        65536u
#define EFS_BLOCK_ALIGN           512u
#define EFS_DEFAULT_CLUSTER_SHIFT  12u

/* ---- EXTD extended header (16 bytes), section 4.1 ---- */
#define EFS_EXT_LEN                16u
#define EFS_EXT_OFF_CODE            0u
#define EFS_EXT_OFF_LENGTH          4u
#define EFS_EXT_OFF_FLAGS           8u
#define EFS_EXT_OFF_RESERVED       12u
#define EFS_EXT_FLAG_SPARSE         1u
static const uint8_t EFS_EXT_CODE[4] = {'E', 'X', 'T', 'D'};

/* ---- $EFS metadata, Version 1 layout, section 5.1 ---- */
#define EFS_META_MAX           262144u
#define EFS_META_V1_HDR            84u
#define EFS_META_OFF_LENGTH         0u
#define EFS_META_OFF_RESERVED1      4u
#define EFS_META_OFF_VERSION        8u
#define EFS_META_OFF_RESERVED2     12u
#define EFS_META_OFF_ID            16u
#define EFS_META_OFF_HASH          32u
#define EFS_META_OFF_RESERVED3     48u
#define EFS_META_OFF_DDF           64u
#define EFS_META_OFF_DRF           68u
#define EFS_META_OFF_RESERVED4     72u
#define EFS_META_RESERVED4_LEN     12u
static const uint8_t EFS_META_PFILE[6] = {'.', 'p', 'f', 'i', 'l', 'e'};

#define EFS_KEYLIST_OFF_COUNT       0u
#define EFS_KEYLIST_HDR             4u

#define EFS_KEY_HDR                20u
#define EFS_KEY_OFF_LENGTH          0u
#define EFS_KEY_OFF_PKI             4u
#define EFS_KEY_OFF_FEK_LEN         8u
#define EFS_KEY_OFF_FEK             12u
#define EFS_KEY_OFF_FLAGS          16u

#define EFS_PKI_HDR                28u
#define EFS_PKI_OFF_LENGTH          0u
#define EFS_PKI_OFF_SID             4u
#define EFS_PKI_OFF_TYPE            8u
#define EFS_PKI_OFF_CERT_LEN       12u
#define EFS_PKI_OFF_CERT           16u
#define EFS_PKI_OFF_RESERVED       20u
#define EFS_PKI_RESERVED_LEN        8u
#define EFS_PKI_TYPE_CERT           3u

#define EFS_SID_HDR                 8u   /* revision, count, 6-byte authority */
#define EFS_SID_MAX_SUBAUTH        15u

#define EFS_CERT_HDR               20u
#define EFS_CERT_OFF_THUMB          0u
#define EFS_CERT_OFF_THUMB_LEN      4u
#define EFS_CERT_OFF_CONTAINER      8u
#define EFS_CERT_OFF_PROVIDER      12u
#define EFS_CERT_OFF_DISPLAY       16u

/* Largest run of unused bytes a strict reader tolerates between fields. */
#define EFS_META_MAX_GAP            8u

/* ---- little-endian access ---- */
static inline uint16_t efs_get16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t efs_get32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}
static inline uint64_t efs_get64(const uint8_t *p) {
    return (uint64_t)efs_get32(p) | ((uint64_t)efs_get32(p + 4) << 32);
}
static inline void efs_put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8);
}
static inline void efs_put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void efs_put64(uint8_t *p, uint64_t v) {
    efs_put32(p, (uint32_t)v); efs_put32(p + 4, (uint32_t)(v >> 32));
}
/* Index of the first non-zero byte of p[0..n), or n; eight bytes a step
 * (the 448 padding bytes of every segment header pass through here). */
static inline size_t efs_first_nonzero(const uint8_t *p, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w) break;
    }
    for (; i < n; i++)
        if (p[i]) return i;
    return n;
}
static inline int efs_all_zero(const uint8_t *p, size_t n) {
    return efs_first_nonzero(p, n) == n;
}

/* DataUnitShift for a non-sparse segment of D data bytes: ceil(log2(D)),
 * at least 9 (spec 4.2). */
static inline unsigned efs_data_unit_shift(uint32_t d) {
    unsigned s = 9;
    while (s < 32 && ((uint64_t)1 << s) < d) s++;
    return s;
}

/* Round a logical size up to the 512-byte EFS block (spec 3.1). */
static inline uint64_t efs_round512(uint64_t n) {
    return (n + (EFS_BLOCK_ALIGN - 1)) & ~(uint64_t)(EFS_BLOCK_ALIGN - 1);
}

#endif /* EFSFAST_EFS_LAYOUT_H */
