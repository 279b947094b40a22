/* The bulk-restore ceiling: what a C program that knows nothing of Python,
 * validation or callbacks needs to create the same files a no-replace restore
 * creates, with N threads.  Each file: an unnamed temporary (O_TMPFILE) or a
 * temporary name, the ciphertext and its 2-byte trailer written in one call,
 * the $EFS as the user.ntfs.efsinfo xattr, then linked to its final name
 * without replacing anything (linkat, or link + unlink).  This is the
 * efs_raw layout efsfast's POSIX side writes (spec, ntfs-3g mapping).
 *
 *   bulk_ceiling DIR FILES SIZE THREADS [tmpfile|link]
 *
 * Prints one line: "files seconds".  Only a benchmark, never a test. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

enum create_mode { MODE_TMPFILE, MODE_LINK };

static const char *g_dir;
static long g_files;
static size_t g_size;
static int g_threads;
static enum create_mode g_mode;
static unsigned char *g_data;          /* ciphertext + trailer, shared */
static size_t g_data_len;
static unsigned char g_efs[672];       /* a $EFS-sized value; its bytes do not matter here */
static atomic_long g_next;

static void die(const char *what, const char *path)
{
    fprintf(stderr, "bulk_ceiling: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

static void write_all(int fd, const char *path)
{
    size_t off = 0;
    while (off < g_data_len) {
        ssize_t n = write(fd, g_data + off, g_data_len - off);
        if (n < 0) die("write", path);
        off += (size_t)n;
    }
}

static void one_file(long i)
{
    char path[4096], tmp[4096], proc[64];
    snprintf(path, sizeof path, "%s/f%ld", g_dir, i);
    if (g_mode == MODE_TMPFILE) {
        int fd = open(g_dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
        if (fd < 0) die("open(O_TMPFILE)", g_dir);
        write_all(fd, path);
        if (fsetxattr(fd, "user.ntfs.efsinfo", g_efs, sizeof g_efs, 0) != 0) die("fsetxattr", path);
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        if (linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH) != 0 &&
            linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) != 0)
            die("linkat", path);
        if (close(fd) != 0) die("close", path);
    } else {
        snprintf(tmp, sizeof tmp, "%s/.f%ld.tmp", g_dir, i);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0) die("open", tmp);
        write_all(fd, tmp);
        if (close(fd) != 0) die("close", tmp);
        if (setxattr(tmp, "user.ntfs.efsinfo", g_efs, sizeof g_efs, 0) != 0) die("setxattr", tmp);
        if (link(tmp, path) != 0) die("link", path);
        if (unlink(tmp) != 0) die("unlink", tmp);
    }
}

static void *worker(void *arg)
{
    (void)arg;
    for (;;) {
        long i = atomic_fetch_add(&g_next, 1);
        if (i >= g_files) return NULL;
        one_file(i);
    }
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: bulk_ceiling DIR FILES SIZE THREADS [tmpfile|link]\n");
        return 2;
    }
    g_dir = argv[1];
    g_files = atol(argv[2]);
    g_size = (size_t)atol(argv[3]);
    g_threads = atoi(argv[4]);
    g_mode = (argc > 5 && strcmp(argv[5], "link") == 0) ? MODE_LINK : MODE_TMPFILE;
    if (g_files <= 0 || g_threads <= 0) return 2;
    /* the efs_raw layout: ciphertext rounded up to 512 bytes, then the
     * 2-byte trailer holding the padding length */
    size_t cipher = (g_size + 511) & ~(size_t)511;
    g_data_len = cipher + 2;
    if (!(g_data = malloc(g_data_len))) return 1;
    for (size_t k = 0; k < g_data_len; k++) g_data[k] = (unsigned char)(k * 131 + 1);
    memset(g_efs, 0x5A, sizeof g_efs);

    pthread_t *t = calloc((size_t)g_threads, sizeof *t);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int k = 0; k < g_threads; k++)
        if (pthread_create(&t[k], NULL, worker, NULL) != 0) return 1;
    for (int k = 0; k < g_threads; k++) pthread_join(t[k], NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%ld %.6f\n", g_files, (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
    free(t);
    free(g_data);
    return 0;
}
