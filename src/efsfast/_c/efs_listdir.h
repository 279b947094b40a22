/*
 * efs_listdir.h -- one folder's entries read without the GIL, each told a
 * folder, a regular file or something else as os.scandir's is_dir and
 * is_file (follow_symlinks=False) tell them: the entry's type where the
 * file system gives it, else an lstat of it.  The tree walk lists every
 * folder it plans (treewalk.py): a DirEntry per object, and its path, were
 * most of a backup plan's cost in the calling thread.
 *
 * Header only (static inline), so that the POSIX side needs no other unit;
 * on Windows efs_list_dir answers ENOSYS and the walk uses os.scandir.
 */
#ifndef EFSFAST_EFS_LISTDIR_H
#define EFSFAST_EFS_LISTDIR_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* What an entry is (efs_dir_list.kinds). */
enum {
    EFS_ENTRY_DIR = 0,
    EFS_ENTRY_FILE = 1,
    EFS_ENTRY_OTHER = 2,
    EFS_ENTRY_UNEXAMINED = 3    /* its lstat failed: errnos holds why */
};

/* The entries of one folder, in the order the system lists them: names[i]
 * is the NUL-terminated name at text + offsets[i] (lens[i] bytes). */
typedef struct efs_dir_list {
    char *text;
    size_t text_len, text_cap;
    size_t *offsets;
    size_t *lens;
    unsigned char *kinds;
    int *errnos;
    size_t count, cap;
} efs_dir_list;

static inline void efs_dir_list_free(efs_dir_list *l)
{
    free(l->text);
    free(l->offsets);
    free(l->lens);
    free(l->kinds);
    free(l->errnos);
    memset(l, 0, sizeof *l);
}

#if defined(_WIN32)
static inline int efs_list_dir(const char *path, efs_dir_list *l)
{
    (void)path;
    memset(l, 0, sizeof *l);
    return ENOSYS;
}
#else
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

/* Room for one more entry of `len` bytes; 0 or ENOMEM. */
static inline int efs_dir_list_grow(efs_dir_list *l, size_t len)
{
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        size_t *o = realloc(l->offsets, cap * sizeof *o);
        if (!o) return ENOMEM;
        l->offsets = o;
        size_t *n = realloc(l->lens, cap * sizeof *n);
        if (!n) return ENOMEM;
        l->lens = n;
        unsigned char *k = realloc(l->kinds, cap);
        if (!k) return ENOMEM;
        l->kinds = k;
        int *e = realloc(l->errnos, cap * sizeof *e);
        if (!e) return ENOMEM;
        l->errnos = e;
        l->cap = cap;
    }
    if (l->text_cap - l->text_len < len + 1) {
        size_t cap = l->text_cap ? l->text_cap : 4096;
        while (cap - l->text_len < len + 1) cap *= 2;
        char *t = realloc(l->text, cap);
        if (!t) return ENOMEM;
        l->text = t;
        l->text_cap = cap;
    }
    return 0;
}

/* What the entry `name` of the open folder `d` is (follow no link). */
static inline unsigned char efs_entry_kind(DIR *d, const struct dirent *e, int *err)
{
    struct stat st;
#ifdef DT_UNKNOWN
    if (e->d_type == DT_DIR) return EFS_ENTRY_DIR;
    if (e->d_type == DT_REG) return EFS_ENTRY_FILE;
    if (e->d_type != DT_UNKNOWN) return EFS_ENTRY_OTHER;
#endif
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        *err = errno;
        return EFS_ENTRY_UNEXAMINED;
    }
    if (S_ISDIR(st.st_mode)) return EFS_ENTRY_DIR;
    return S_ISREG(st.st_mode) ? EFS_ENTRY_FILE : EFS_ENTRY_OTHER;
}

/* Every entry of the folder `path` but "." and ".." into `l` (zeroed
 * here); 0, or the errno that stopped the listing (`l` then holds nothing:
 * a folder is listed whole or not at all, as os.scandir's iteration). */
static inline int efs_list_dir(const char *path, efs_dir_list *l)
{
    DIR *d;
    struct dirent *e;
    int rc = 0;
    memset(l, 0, sizeof *l);
    if (!(d = opendir(path))) return errno;
    for (;;) {
        errno = 0;
        if (!(e = readdir(d))) {
            rc = errno;
            break;
        }
        const char *name = e->d_name;
        if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
        size_t len = strlen(name);
        if ((rc = efs_dir_list_grow(l, len)) != 0) break;
        int err = 0;
        l->kinds[l->count] = efs_entry_kind(d, e, &err);
        l->errnos[l->count] = err;
        l->offsets[l->count] = l->text_len;
        l->lens[l->count] = len;
        memcpy(l->text + l->text_len, name, len + 1);
        l->text_len += len + 1;
        l->count++;
    }
    closedir(d);
    if (rc) efs_dir_list_free(l);
    return rc;
}
#endif

#endif /* EFSFAST_EFS_LISTDIR_H */
