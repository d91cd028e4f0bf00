/* fileio: bounded whole-file reads, atomic writes (commit, abort, failure),
 * paths, CRC32. */
#include "util/test_util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "leanprop/alloc.h"
#include "leanprop/fileio.h"
#include "leanprop/status.h"

static char g_dir[256];

static const char *in_dir(const char *name)
{
    static char buf[4][512];
    static int k;
    if (!g_dir[0]) {
        snprintf(g_dir, sizeof g_dir, "/tmp/leanprop-fileio-XXXXXX");
        assert_non_null(mkdtemp(g_dir));
    }
    char *b = buf[k++ % 4];
    snprintf(b, 512, "%s/%s", g_dir, name);
    return b;
}

static int count_temp_files(void)
{
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += strstr(e->d_name, ".tmp-") != NULL;
    closedir(d);
    return n;
}

static void assert_file_is(const char *path, const char *want)
{
    char *buf;
    size_t len;
    LP_ASSERT_OK(lp_file_read_all(path, 1 << 20, LP_MEM_SCRATCH, &buf, &len));
    assert_int_equal(len, strlen(want));
    assert_memory_equal(buf, want, len);
    lp_free(buf);
}

static void test_read_all(void **state)
{
    (void)state;
    const char *p = lp_test_write_temp(".txt", "hello\0world", 11);
    char *buf;
    size_t len;
    size_t s0 = lp_mem_current(LP_MEM_DATA);
    LP_ASSERT_OK(lp_file_read_all(p, 11, LP_MEM_DATA, &buf, &len));
    assert_int_equal(len, 11);
    assert_memory_equal(buf, "hello\0world", 11);
    assert_int_equal(buf[11], '\0');
    assert_true(lp_mem_current(LP_MEM_DATA) > s0);
    assert_int_equal(lp_alloc_category(buf), LP_MEM_DATA);
    lp_free(buf);
    /* over the bound: format error naming the file and the limit */
    buf = (char *)0x1;
    assert_int_equal(lp_file_read_all(p, 10, LP_MEM_DATA, &buf, &len), LP_ERR_FORMAT);
    assert_null(buf);
    assert_non_null(strstr(lp_error_message(), p));
    assert_non_null(strstr(lp_error_message(), "10"));
    unlink(p);
    /* empty file */
    p = lp_test_write_temp(".txt", "", 0);
    LP_ASSERT_OK(lp_file_read_all(p, 100, LP_MEM_SCRATCH, &buf, &len));
    assert_int_equal(len, 0);
    assert_string_equal(buf, "");
    lp_free(buf);
    unlink(p);
    /* missing file, directory */
    assert_int_equal(lp_file_read_all("/nonexistent/lp.json", 100, LP_MEM_SCRATCH, &buf, &len), LP_ERR_NOT_FOUND);
    assert_non_null(strstr(lp_error_message(), "/nonexistent/lp.json"));
    assert_int_equal(lp_file_read_all("/tmp", 100, LP_MEM_SCRATCH, &buf, &len), LP_ERR_IO);
    assert_non_null(strstr(lp_error_message(), "/tmp"));
    /* a file whose size stat does not know (procfs): read until EOF, bounded */
    LP_ASSERT_OK(lp_file_read_all("/proc/self/status", 1 << 20, LP_MEM_SCRATCH, &buf, &len));
    assert_true(len > 0);
    assert_non_null(strstr(buf, "Name:"));
    lp_free(buf);
    assert_int_equal(lp_file_read_all("/proc/self/status", 16, LP_MEM_SCRATCH, &buf, &len), LP_ERR_FORMAT);
    assert_int_equal(lp_file_read_all(NULL, 16, LP_MEM_SCRATCH, &buf, &len), LP_ERR_INVALID_ARG);
}

static void test_paths(void **state)
{
    (void)state;
    char b[64];
    LP_ASSERT_OK(lp_path_join(b, sizeof b, "a/b", "c.json"));
    assert_string_equal(b, "a/b/c.json");
    LP_ASSERT_OK(lp_path_join(b, sizeof b, "a/b/", "c.json"));
    assert_string_equal(b, "a/b/c.json");
    LP_ASSERT_OK(lp_path_join(b, sizeof b, "", "c.json"));
    assert_string_equal(b, "c.json");
    LP_ASSERT_OK(lp_path_join(b, sizeof b, "a", "/abs/c"));
    assert_string_equal(b, "/abs/c");
    char small[8];
    assert_int_equal(lp_path_join(small, sizeof small, "abcd", "efgh"), LP_ERR_INVALID_ARG);
    assert_non_null(strstr(lp_error_message(), "abcd"));
    assert_string_equal(small, "");
    LP_ASSERT_OK(lp_path_dirname(b, sizeof b, "a/b/c.json"));
    assert_string_equal(b, "a/b");
    LP_ASSERT_OK(lp_path_dirname(b, sizeof b, "c.json"));
    assert_string_equal(b, ".");
    LP_ASSERT_OK(lp_path_dirname(b, sizeof b, "/c.json"));
    assert_string_equal(b, "/");
    LP_ASSERT_OK(lp_path_dirname(b, sizeof b, "a//c"));
    assert_string_equal(b, "a");
    assert_string_equal(lp_path_basename("a/b/c.json"), "c.json");
    assert_string_equal(lp_path_basename("c.json"), "c.json");
    assert_true(lp_dir_exists("/tmp"));
    assert_false(lp_file_exists("/tmp"));
    assert_true(lp_path_exists("/tmp"));
    assert_false(lp_path_exists("/nonexistent/x"));
    const char *f = in_dir("exists.txt");
    LP_ASSERT_OK(lp_file_write_atomic(f, "abc", 3));
    assert_true(lp_file_exists(f));
    assert_false(lp_dir_exists(f));
    uint64_t sz;
    LP_ASSERT_OK(lp_file_size(f, &sz));
    assert_int_equal(sz, 3);
    assert_int_equal(lp_file_size("/nonexistent/x", &sz), LP_ERR_NOT_FOUND);
    assert_int_equal(lp_dir_create(f), LP_ERR_IO); /* a file is in the way */
    const char *d = in_dir("sub");
    LP_ASSERT_OK(lp_dir_create(d));
    LP_ASSERT_OK(lp_dir_create(d)); /* exists: fine */
    assert_true(lp_dir_exists(d));
    assert_int_equal(lp_dir_create("/nonexistent/a/b"), LP_ERR_NOT_FOUND);
    rmdir(d);
    LP_ASSERT_OK(lp_file_remove(f));
    LP_ASSERT_OK(lp_file_remove(f)); /* already gone: fine */
    assert_false(lp_path_exists(f));
}

static void test_atomic_commit_and_abort(void **state)
{
    (void)state;
    const char *p = in_dir("atomic.bin");
    lp_atomic_writer *w;
    LP_ASSERT_OK(lp_atomic_writer_open(&w, p));
    LP_ASSERT_OK(lp_atomic_writer_write(w, "hello ", 6));
    assert_false(lp_path_exists(p)); /* nothing visible before commit */
    assert_int_equal(count_temp_files(), 1);
    LP_ASSERT_OK(lp_atomic_writer_write(w, "world", 5));
    LP_ASSERT_OK(lp_atomic_writer_write(w, NULL, 0));
    assert_int_equal(lp_atomic_writer_tell(w), 11);
    LP_ASSERT_OK(lp_atomic_writer_commit(w));
    assert_file_is(p, "hello world");
    assert_int_equal(count_temp_files(), 0);
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0644);

    /* abort: the old file stays, the temp file goes */
    LP_ASSERT_OK(lp_atomic_writer_open(&w, p));
    LP_ASSERT_OK(lp_atomic_writer_write(w, "XXXX", 4));
    lp_atomic_writer_abort(w);
    lp_atomic_writer_abort(NULL);
    assert_file_is(p, "hello world");
    assert_int_equal(count_temp_files(), 0);

    /* replacing keeps the old file's mode */
    assert_int_equal(chmod(p, 0600), 0);
    LP_ASSERT_OK(lp_file_write_atomic(p, "second", 6));
    assert_file_is(p, "second");
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    /* no such directory */
    assert_int_equal(lp_atomic_writer_open(&w, "/nonexistent/dir/f.bin"), LP_ERR_NOT_FOUND);
    assert_non_null(strstr(lp_error_message(), "/nonexistent/dir/f.bin"));
    assert_int_equal(lp_atomic_writer_open(&w, ""), LP_ERR_INVALID_ARG);
    unlink(p);
}

/* A write failing midway (disk full) poisons the writer: later writes and
 * the commit fail with the first error, the temp file is removed and the
 * old file survives. */
static void test_atomic_failure(void **state)
{
    (void)state;
    const char *p = in_dir("fail.bin");
    LP_ASSERT_OK(lp_file_write_atomic(p, "original", 8));
    lp_atomic_writer *w;
    LP_ASSERT_OK(lp_atomic_writer_open(&w, p));
    lp_fileio_fail_after_bytes(5);
    LP_ASSERT_OK(lp_atomic_writer_write(w, "abc", 3));
    assert_int_equal(lp_atomic_writer_write(w, "defg", 4), LP_ERR_IO);
    assert_non_null(strstr(lp_error_message(), p));
    char first[512];
    snprintf(first, sizeof first, "%s", lp_error_message());
    assert_int_equal(lp_atomic_writer_write(w, "h", 1), LP_ERR_IO); /* the injected failure fired once; still poisoned */
    lp_error_clear();
    assert_int_equal(lp_atomic_writer_commit(w), LP_ERR_IO);
    assert_string_equal(lp_error_message(), first);
    assert_file_is(p, "original");
    assert_int_equal(count_temp_files(), 0);
    /* the one-shot failure is spent: writes work again */
    LP_ASSERT_OK(lp_file_write_atomic(p, "new", 3));
    assert_file_is(p, "new");
    /* rename onto a non-empty directory fails after writing: temp removed */
    const char *d = in_dir("adir");
    LP_ASSERT_OK(lp_dir_create(d));
    char inner[600];
    LP_ASSERT_OK(lp_path_join(inner, sizeof inner, d, "x"));
    LP_ASSERT_OK(lp_file_write_atomic(inner, "x", 1));
    assert_int_equal(lp_file_write_atomic(d, "data", 4), LP_ERR_IO);
    assert_non_null(strstr(lp_error_message(), "rename"));
    assert_int_equal(count_temp_files(), 0);
    unlink(inner);
    rmdir(d);
    unlink(p);
}

static void test_crc32(void **state)
{
    (void)state;
    assert_int_equal(lp_crc32(0, "123456789", 9), 0xCBF43926u); /* the standard check value */
    assert_int_equal(lp_crc32(0, "", 0), 0);
    uint32_t c = lp_crc32(0, "1234", 4);
    c = lp_crc32(c, "56789", 5);
    assert_int_equal(c, 0xCBF43926u);
    const char *p = in_dir("crc.bin");
    size_t n = 200000;
    unsigned char *buf = malloc(n);
    for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)(i * 131u + 7u);
    LP_ASSERT_OK(lp_file_write_atomic(p, buf, n));
    uint32_t fc;
    LP_ASSERT_OK(lp_file_crc32(p, &fc));
    assert_int_equal(fc, lp_crc32(0, buf, n));
    assert_int_equal(lp_file_crc32("/nonexistent/x", &fc), LP_ERR_NOT_FOUND);
    free(buf);
    unlink(p);
}

/* Leave a temp file as a killed save does: a child opens a writer, writes, and dies. */
static void killed_save(const char *path)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        lp_atomic_writer *w;
        if (lp_atomic_writer_open(&w, path) == LP_OK) (void)lp_atomic_writer_write(w, "partial", 7);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
}

static void test_sweep_temps(void **state)
{
    (void)state;
    const char *sub = in_dir("sweep");
    assert_int_equal(mkdir(sub, 0755), 0);
    char a[600], b[600], other[600], near[600], mine[600];
    snprintf(a, sizeof a, "%s/a.bin", sub);
    snprintf(b, sizeof b, "%s/b.bin", sub);
    snprintf(other, sizeof other, "%s/notes.tmp-keep", sub); /* not XXXXXX: not ours */
    snprintf(near, sizeof near, "%s/a.bin.tmp-12345", sub);  /* 5 characters: not ours */
    LP_ASSERT_OK(lp_file_write_atomic(a, "A", 1));
    LP_ASSERT_OK(lp_file_write_atomic(b, "B", 1));
    LP_ASSERT_OK(lp_file_write_atomic(other, "o", 1));
    LP_ASSERT_OK(lp_file_write_atomic(near, "n", 1));
    killed_save(a);
    killed_save(a);
    killed_save(b);
    int removed = -1;
    /* a target: only its own temps */
    LP_ASSERT_OK(lp_atomic_sweep_temps(a, &removed));
    assert_int_equal(removed, 2);
    LP_ASSERT_OK(lp_atomic_sweep_temps(a, &removed));
    assert_int_equal(removed, 0);
    assert_file_is(a, "A");
    /* a directory: every temp in it */
    killed_save(a);
    LP_ASSERT_OK(lp_atomic_sweep_temps(sub, &removed));
    assert_int_equal(removed, 2);
    assert_file_is(a, "A");
    assert_file_is(b, "B");
    assert_file_is(other, "o");
    assert_file_is(near, "n");
    /* a temp of a target whose name is a prefix of another's is not the other's */
    snprintf(mine, sizeof mine, "%s/a.bin.tmp-abcdef", sub);
    LP_ASSERT_OK(lp_file_write_atomic(mine, "m", 1));
    snprintf(mine, sizeof mine, "%s/a", sub);
    LP_ASSERT_OK(lp_atomic_sweep_temps(mine, &removed));
    assert_int_equal(removed, 0);
    LP_ASSERT_OK(lp_atomic_sweep_temps(in_dir("missing-dir/x.bin"), &removed));
    assert_int_equal(removed, 0);
    assert_int_equal(lp_atomic_sweep_temps(NULL, NULL), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_atomic_sweep_temps("", NULL), LP_ERR_INVALID_ARG);
    LP_ASSERT_OK(lp_atomic_sweep_temps(sub, &removed));
    assert_int_equal(removed, 1); /* a.bin.tmp-abcdef */
    unlink(a);
    unlink(b);
    unlink(other);
    unlink(near);
    assert_int_equal(rmdir(sub), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_all),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_atomic_commit_and_abort),
        cmocka_unit_test(test_atomic_failure),
        cmocka_unit_test(test_crc32),
        cmocka_unit_test(test_sweep_temps),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (g_dir[0]) rmdir(g_dir);
    return rc;
}
