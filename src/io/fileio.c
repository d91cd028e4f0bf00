/* Whole-file reads, atomic (temp + fsync + rename) writes, path helpers, CRC32. */
#include "leanprop/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ---- reading ----------------------------------------------------------- */

lp_status lp_file_read_all(const char *path, size_t max_bytes, lp_mem_category cat, char **out, size_t *out_len)
{
    if (!path || !out) return lp_error(LP_ERR_INVALID_ARG, "lp_file_read_all: NULL argument");
    *out = NULL;
    if (out_len) *out_len = 0;
    if (max_bytes >= SIZE_MAX - 1) max_bytes = SIZE_MAX - 2;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lp_error(errno == ENOENT ? LP_ERR_NOT_FOUND : LP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return lp_error(LP_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(sb.st_mode)) {
        close(fd);
        return lp_error(LP_ERR_IO, "%s: is a directory, not a file", path);
    }
    if (S_ISREG(sb.st_mode) && (uint64_t)sb.st_size > (uint64_t)max_bytes) {
        close(fd);
        return lp_error(LP_ERR_FORMAT, "%s: file is %lld bytes, more than the limit of %zu", path,
                        (long long)sb.st_size, max_bytes);
    }
    /* Regular files: exact size (+1 to notice growth). Others: grow as needed. */
    size_t cap = S_ISREG(sb.st_mode) ? (size_t)sb.st_size + 1 : 4096;
    if (cap > max_bytes + 1) cap = max_bytes + 1;
    char *buf = lp_alloc(cat, cap + 1);
    if (!buf) {
        close(fd);
        return lp_error_context(LP_ERR_NOMEM, "%s", path);
    }
    size_t len = 0;
    for (;;) {
        if (len == cap) {
            if (cap > max_bytes) break; /* read max_bytes + 1: too large */
            size_t ncap = cap * 2 > max_bytes + 1 ? max_bytes + 1 : cap * 2;
            char *nb = lp_realloc(buf, ncap + 1);
            if (!nb) {
                lp_free(buf);
                close(fd);
                return lp_error_context(LP_ERR_NOMEM, "%s", path);
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            lp_free(buf);
            close(fd);
            return lp_error(LP_ERR_IO, "%s: read failed: %s", path, strerror(e));
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    close(fd);
    if (len > max_bytes) {
        lp_free(buf);
        return lp_error(LP_ERR_FORMAT, "%s: file is more than the limit of %zu bytes", path, max_bytes);
    }
    buf[len] = '\0';
    *out = buf;
    if (out_len) *out_len = len;
    return LP_OK;
}

int lp_path_exists(const char *path)
{
    struct stat sb;
    return path && stat(path, &sb) == 0;
}

int lp_file_exists(const char *path)
{
    struct stat sb;
    return path && stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

int lp_dir_exists(const char *path)
{
    struct stat sb;
    return path && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

lp_status lp_file_size(const char *path, uint64_t *out)
{
    if (!path || !out) return lp_error(LP_ERR_INVALID_ARG, "lp_file_size: NULL argument");
    struct stat sb;
    if (stat(path, &sb) != 0)
        return lp_error(errno == ENOENT ? LP_ERR_NOT_FOUND : LP_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    *out = (uint64_t)sb.st_size;
    return LP_OK;
}

lp_status lp_dir_create(const char *path)
{
    if (!path || !*path) return lp_error(LP_ERR_INVALID_ARG, "lp_dir_create: empty path");
    if (mkdir(path, 0755) == 0) return LP_OK;
    int e = errno;
    if (e == EEXIST && lp_dir_exists(path)) return LP_OK;
    if (e == EEXIST) return lp_error(LP_ERR_IO, "%s: exists and is not a directory", path);
    return lp_error(e == ENOENT ? LP_ERR_NOT_FOUND : LP_ERR_IO, "%s: cannot create directory: %s", path, strerror(e));
}

lp_status lp_file_remove(const char *path)
{
    if (!path) return lp_error(LP_ERR_INVALID_ARG, "lp_file_remove: NULL path");
    if (unlink(path) == 0 || errno == ENOENT) return LP_OK;
    return lp_error(LP_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
}

/* ---- paths ------------------------------------------------------------- */

lp_status lp_path_join(char *dst, size_t dst_size, const char *a, const char *b)
{
    if (!dst || !a || !b || dst_size == 0) return lp_error(LP_ERR_INVALID_ARG, "lp_path_join: NULL argument");
    size_t la = strlen(a);
    int n;
    if (la == 0 || b[0] == '/')
        n = snprintf(dst, dst_size, "%s", b);
    else if (a[la - 1] == '/')
        n = snprintf(dst, dst_size, "%s%s", a, b);
    else
        n = snprintf(dst, dst_size, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= dst_size) {
        dst[0] = '\0';
        return lp_error(LP_ERR_INVALID_ARG, "path too long: '%s' + '%s' (limit %zu bytes)", a, b, dst_size - 1);
    }
    return LP_OK;
}

const char *lp_path_basename(const char *path)
{
    if (!path) return NULL;
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

lp_status lp_path_dirname(char *dst, size_t dst_size, const char *path)
{
    if (!dst || !path || dst_size == 0) return lp_error(LP_ERR_INVALID_ARG, "lp_path_dirname: NULL argument");
    const char *s = strrchr(path, '/');
    size_t n;
    if (!s) {
        path = ".";
        n = 1;
    } else {
        while (s > path && s[-1] == '/') s--; /* "a//b" -> "a" */
        n = s == path ? 1 : (size_t)(s - path);
    }
    if (n >= dst_size) return lp_error(LP_ERR_INVALID_ARG, "path too long: '%s' (limit %zu bytes)", path, dst_size - 1);
    memcpy(dst, path, n);
    dst[n] = '\0';
    return LP_OK;
}

/* ---- atomic writer ----------------------------------------------------- */

struct lp_atomic_writer {
    FILE *fp;
    char path[LP_PATH_MAX];
    char tmp[LP_PATH_MAX];
    uint64_t written;
    lp_status failed; /* first write error, kept for commit */
    char failed_msg[512];
};

static uint64_t g_fail_after; /* testing aid: 0 = off, else bytes left + 1 */

void lp_fileio_fail_after_bytes(uint64_t n) { g_fail_after = n ? n + 1 : 0; }

lp_status lp_atomic_writer_open(lp_atomic_writer **out, const char *path)
{
    if (!out || !path || !*path) return lp_error(LP_ERR_INVALID_ARG, "lp_atomic_writer_open: NULL or empty path");
    *out = NULL;
    lp_atomic_writer *w = calloc(1, sizeof *w);
    if (!w) return lp_error(LP_ERR_NOMEM, "%s: out of memory", path);
    int n = snprintf(w->path, sizeof w->path, "%s", path);
    int m = snprintf(w->tmp, sizeof w->tmp, "%s.tmp-XXXXXX", path);
    if (n < 0 || (size_t)n >= sizeof w->path || m < 0 || (size_t)m >= sizeof w->tmp) {
        free(w);
        return lp_error(LP_ERR_INVALID_ARG, "%s: path too long", path);
    }
    int fd = mkstemp(w->tmp);
    if (fd < 0) {
        int e = errno;
        free(w);
        return lp_error(e == ENOENT ? LP_ERR_NOT_FOUND : LP_ERR_IO, "%s: cannot create temporary file: %s", path,
                        strerror(e));
    }
    struct stat sb;
    mode_t mode = stat(path, &sb) == 0 && S_ISREG(sb.st_mode) ? (sb.st_mode & 07777) : 0644;
    (void)fchmod(fd, mode); /* best effort: the temp file works with mkstemp's 0600 too */
    w->fp = fdopen(fd, "wb");
    if (!w->fp) {
        int e = errno;
        close(fd);
        unlink(w->tmp);
        free(w);
        return lp_error(LP_ERR_IO, "%s: fdopen failed: %s", path, strerror(e));
    }
    *out = w;
    return LP_OK;
}

lp_status lp_atomic_writer_write(lp_atomic_writer *w, const void *data, size_t n)
{
    if (!w) return lp_error(LP_ERR_INVALID_ARG, "lp_atomic_writer_write: NULL writer");
    if (w->failed != LP_OK) return lp_error(w->failed, "%s", w->failed_msg);
    if (n == 0) return LP_OK;
    if (!data) return lp_error(LP_ERR_INVALID_ARG, "%s: write of NULL data", w->path);
    size_t allowed = n;
    if (g_fail_after) {
        uint64_t left = g_fail_after - 1;
        allowed = left < n ? (size_t)left : n;
        g_fail_after = allowed < n ? 0 : g_fail_after - allowed; /* fires once */
    }
    size_t put = allowed ? fwrite(data, 1, allowed, w->fp) : 0;
    w->written += put;
    if (put != n) {
        int e = put != allowed ? errno : ENOSPC;
        w->failed = lp_error(LP_ERR_IO, "%s: write failed after %llu bytes: %s", w->path,
                             (unsigned long long)w->written, strerror(e ? e : EIO));
        snprintf(w->failed_msg, sizeof w->failed_msg, "%s", lp_error_message());
        return w->failed;
    }
    return LP_OK;
}

uint64_t lp_atomic_writer_tell(const lp_atomic_writer *w) { return w ? w->written : 0; }

void lp_atomic_writer_abort(lp_atomic_writer *w)
{
    if (!w) return;
    if (w->fp) fclose(w->fp);
    unlink(w->tmp);
    free(w);
}

/* "<base>.tmp-XXXXXX" (base NULL: any non-empty base), XXXXXX as mkstemp makes them. */
static int is_atomic_temp(const char *name, const char *base)
{
    size_t n = strlen(name), nb = base ? strlen(base) : 0;
    if (n < 12 || (base && n != nb + 11)) return 0;
    const char *t = name + n - 11;
    if (strncmp(t, ".tmp-", 5) || (base && strncmp(name, base, nb))) return 0;
    for (int i = 5; i < 11; i++)
        if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') || (t[i] >= '0' && t[i] <= '9'))) return 0;
    return 1;
}

lp_status lp_atomic_sweep_temps(const char *path, int *removed)
{
    if (removed) *removed = 0;
    if (!path || !*path) return lp_error(LP_ERR_INVALID_ARG, "lp_atomic_sweep_temps: NULL or empty path");
    char dir[LP_PATH_MAX], full[LP_PATH_MAX];
    const char *base = NULL;
    if (lp_dir_exists(path)) {
        int n = snprintf(dir, sizeof dir, "%s", path);
        if (n < 0 || (size_t)n >= sizeof dir) return lp_error(LP_ERR_INVALID_ARG, "%s: path too long", path);
    } else {
        LP_TRY(lp_path_dirname(dir, sizeof dir, path));
        base = lp_path_basename(path);
        if (!*base) return lp_error(LP_ERR_INVALID_ARG, "%s: no file name", path);
    }
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return LP_OK;
        return lp_error(LP_ERR_IO, "%s: cannot list the directory: %s", dir, strerror(errno));
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_atomic_temp(e->d_name, base)) continue;
        if (lp_path_join(full, sizeof full, dir, e->d_name) == LP_OK && unlink(full) == 0 && removed) (*removed)++;
    }
    closedir(d);
    return LP_OK;
}

static lp_status fsync_dir_of(const char *path)
{
    char dir[LP_PATH_MAX];
    LP_TRY(lp_path_dirname(dir, sizeof dir, path));
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return lp_error(LP_ERR_IO, "%s: cannot open directory to fsync: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL && e != EROFS) /* some filesystems cannot fsync directories */
        return lp_error(LP_ERR_IO, "%s: fsync of directory failed: %s", dir, strerror(e));
    return LP_OK;
}

lp_status lp_atomic_writer_commit(lp_atomic_writer *w)
{
    if (!w) return lp_error(LP_ERR_INVALID_ARG, "lp_atomic_writer_commit: NULL writer");
    lp_status st = w->failed;
    if (st != LP_OK) {
        lp_error(st, "%s", w->failed_msg);
        lp_atomic_writer_abort(w);
        return st;
    }
    FILE *fp = w->fp;
    w->fp = NULL;
    if (fflush(fp) != 0) st = lp_error(LP_ERR_IO, "%s: flush failed: %s", w->path, strerror(errno));
    if (st == LP_OK && fsync(fileno(fp)) != 0) st = lp_error(LP_ERR_IO, "%s: fsync failed: %s", w->path, strerror(errno));
    if (fclose(fp) != 0 && st == LP_OK) st = lp_error(LP_ERR_IO, "%s: close failed: %s", w->path, strerror(errno));
    if (st == LP_OK && rename(w->tmp, w->path) != 0)
        st = lp_error(LP_ERR_IO, "%s: cannot rename temporary file over it: %s", w->path, strerror(errno));
    if (st != LP_OK) {
        lp_atomic_writer_abort(w);
        return st;
    }
    st = fsync_dir_of(w->path);
    free(w);
    return st;
}

lp_status lp_file_write_atomic(const char *path, const void *data, size_t n)
{
    lp_atomic_writer *w;
    LP_TRY(lp_atomic_writer_open(&w, path));
    lp_status st = lp_atomic_writer_write(w, data, n);
    if (st != LP_OK) {
        lp_atomic_writer_abort(w);
        return st;
    }
    return lp_atomic_writer_commit(w);
}

/* ---- CRC32 ------------------------------------------------------------- */

uint32_t lp_crc32(uint32_t crc, const void *data, size_t n)
{
    const unsigned char *p = data;
    uLong c = crc;
    while (n > 0) {
        uInt chunk = n > (size_t)UINT_MAX ? UINT_MAX : (uInt)n;
        c = crc32(c, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return (uint32_t)c;
}

lp_status lp_file_crc32(const char *path, uint32_t *out)
{
    if (!path || !out) return lp_error(LP_ERR_INVALID_ARG, "lp_file_crc32: NULL argument");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lp_error(errno == ENOENT ? LP_ERR_NOT_FOUND : LP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char *buf = malloc(1 << 16);
    if (!buf) {
        close(fd);
        return lp_error(LP_ERR_NOMEM, "%s: out of memory", path);
    }
    uint32_t c = 0;
    lp_status st = LP_OK;
    for (;;) {
        ssize_t r = read(fd, buf, 1 << 16);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            st = lp_error(LP_ERR_IO, "%s: read failed: %s", path, strerror(errno));
            break;
        }
        if (r == 0) break;
        c = lp_crc32(c, buf, (size_t)r);
    }
    free(buf);
    close(fd);
    if (st == LP_OK) *out = c;
    return st;
}
