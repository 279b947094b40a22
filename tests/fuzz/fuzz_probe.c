/*
 * libFuzzer harness for the restore-tree stream probe (efs_probe.c).  Build
 * and run: tests/fuzz/run.sh SECONDS probe (or tests/test_fuzz.py).
 *
 * Input: byte 0 picks the codec's mode (as in fuzz_codec.c, so the two
 * share a seed corpus), the rest is the raw stream.  The stream goes into a
 * memfd and efs_probe_unnamed_fd reads it there, through the same positioned
 * reads and 4 KiB window as on a real file, and again through the same
 * walk built with a 29-byte window (probe_small_window.c), where headers
 * cross the window's edge on most inputs.  The answers must agree, or the
 * harness aborts like a crash:
 *   - both probes', on any bytes, with a plain walk over the whole buffer
 *     written from raw.walk_for_unnamed_stream (no window: a window that
 *     serves stale or short bytes shows up here);
 *   - the probe's, where the codec accepts the stream, with what the
 *     codec's stream headers say: a file's iff one data stream is "::$DATA".
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "efs_codec.h"
#include "efs_layout.h"
#include "efs_probe.h"

/* probe_small_window.c */
int efs_probe_unnamed_fd_small_window(int fd, uint64_t end, int *err);

static const char *const answer_name[] = {"no unnamed stream", "unnamed stream", "unknown",
                                          "I/O error"};

/* raw.walk_for_unnamed_stream over a buffer, line for line: read(pos, n)
 * gives the bytes at pos, fewer past the end. */
static size_t avail(size_t len, uint64_t pos, size_t n)
{
    if (pos >= len) return 0;
    return len - pos < n ? (size_t)(len - pos) : n;
}

static int reference_walk(const uint8_t *d, size_t end)
{
    uint64_t pos = EFS_RAW_HDR_LEN;
    unsigned long streams = 0, efs_segments = 0;
    for (;;) {
        if (pos == end) return efs_segments ? EFS_PROBE_NO_UNNAMED : EFS_PROBE_UNKNOWN;
        if (pos > end || avail(end, pos, EFS_PEEK_LEN) < EFS_PEEK_LEN) return EFS_PROBE_UNKNOWN;
        const uint8_t *head = d + pos;
        uint32_t length = efs_get32(head);
        if (memcmp(head + EFS_STREAM_OFF_SIG, EFS_SIG_NTFS, EFS_SIG_LEN) == 0) {
            streams++;
            /* int.from_bytes of what is there: fewer than 4 bytes give a smaller number */
            size_t k = avail(end, pos + EFS_STREAM_OFF_NAMELEN, 4);
            uint32_t name_len = 0;
            for (size_t i = 0; i < k; i++)
                name_len |= (uint32_t)d[pos + EFS_STREAM_OFF_NAMELEN + i] << (8 * i);
            if ((name_len == sizeof EFS_UNNAMED_NAME || name_len == sizeof EFS_UNNAMED_NAME + 2)
                    && avail(end, pos + EFS_STREAM_HDR_FIXED, name_len) == name_len) {
                const uint8_t *n = d + pos + EFS_STREAM_HDR_FIXED;
                if (memcmp(n, EFS_UNNAMED_NAME, sizeof EFS_UNNAMED_NAME) == 0
                        && (name_len == sizeof EFS_UNNAMED_NAME
                            || (n[sizeof EFS_UNNAMED_NAME] == 0
                                && n[sizeof EFS_UNNAMED_NAME + 1] == 0)))
                    return EFS_PROBE_UNNAMED;
            }
        } else if (memcmp(head + EFS_STREAM_OFF_SIG, EFS_SIG_GURE, EFS_SIG_LEN) != 0) {
            return EFS_PROBE_UNKNOWN;
        } else if (streams == 1) {
            efs_segments++;
        }
        if (length < EFS_PEEK_LEN) return EFS_PROBE_UNKNOWN;
        pos += length;
    }
}

/* ---- the codec's view: does an accepted stream carry "::$DATA"? ---- */

static efs_dword on_stream(void *ctx, const efs_stream_info *s)
{
    if (!s->is_metadata && s->name_length == sizeof EFS_UNNAMED_NAME
            && memcmp(s->name, EFS_UNNAMED_NAME, sizeof EFS_UNNAMED_NAME) == 0)
        *(int *)ctx = 1;
    return 0;
}

static const efs_handlers handlers = {on_stream, NULL, NULL, NULL, NULL};

/* EFS_PROBE_* as the codec sees the stream, or -1 where it rejects it */
static int codec_answer(const uint8_t *data, size_t len, unsigned mode)
{
    int unnamed = 0;
    efs_parser *p = efs_parser_new(mode, &handlers, &unnamed);
    if (!p) abort();
    efs_dword rc = efs_parser_feed(p, data, len);
    if (rc == 0) rc = efs_parser_finish(p);
    efs_parser_free(p);
    if (rc) return -1;
    return unnamed ? EFS_PROBE_UNNAMED : EFS_PROBE_NO_UNNAMED;
}

static int memfd = -1;

static void check_answer(const char *which, int got, int err, size_t len)
{
    if (got == EFS_PROBE_IO_ERROR || got < 0 || got > EFS_PROBE_IO_ERROR) {
        fprintf(stderr, "%s of %zu bytes in a memfd: answer %d, errno %d\n", which, len, got,
                err);
        abort();
    }
}

/* the probe's answer with the 4 KiB window; *small: with the 29-byte one */
static int probe(const uint8_t *data, size_t len, int *small)
{
    int err = 0;
    if (memfd < 0 && (memfd = memfd_create("efs-probe-fuzz", MFD_CLOEXEC)) < 0) abort();
    if (ftruncate(memfd, 0) != 0) abort();
    for (size_t done = 0; done < len;) {
        ssize_t w = pwrite(memfd, data + done, len - done, (off_t)done);
        if (w <= 0) abort();
        done += (size_t)w;
    }
    int got = efs_probe_unnamed_fd(memfd, len, &err);
    check_answer("probe", got, err, len);
    *small = efs_probe_unnamed_fd_small_window(memfd, len, &err);
    check_answer("probe with a 29-byte window", *small, err, len);
    return got;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    unsigned mode = (data[0] & 1) ? EFS_MODE_COMPATIBLE : EFS_MODE_STRICT;
    data++;
    size--;

    int small;
    int got = probe(data, size, &small);
    int want = reference_walk(data, size);
    if (got != want || small != want) {
        fprintf(stderr, "probe says %s (with a 29-byte window: %s), the walk over the buffer "
                "%s (%zu bytes)\n", answer_name[got], answer_name[small], answer_name[want],
                size);
        abort();
    }
    int codec = codec_answer(data, size, mode);
    if (codec >= 0 && got != codec) {
        fprintf(stderr, "probe says %s, the codec (mode %u) accepts the stream with %s\n",
                answer_name[got], mode, answer_name[codec]);
        abort();
    }
    return 0;
}
