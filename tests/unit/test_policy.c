/* Unit tests for the file-system policy (linux/policy.c): path strings, root matching and
 * rights, and resolution against a real directory tree in a temporary directory: `..`,
 * planted symlinks, /proc, volumes and writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "linux/policy.h"

static char top[64];                /* the temporary tree */

static void path_in(char out[PATH_MAX], const char *rel)
{
    assert_true((size_t)snprintf(out, PATH_MAX, "%s/%s", top, rel) < PATH_MAX);
}

static void make_file(const char *rel, const char *text)
{
    char path[PATH_MAX];
    path_in(path, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void make_dir(const char *rel)
{
    char path[PATH_MAX];
    path_in(path, rel);
    assert_int_equal(mkdir(path, 0755), 0);
}

static void make_link(const char *target, const char *rel)
{
    char path[PATH_MAX];
    path_in(path, rel);
    assert_int_equal(symlink(target, path), 0);
}

/* top/ allowed/{f, sub/g, up -> .., abs -> /etc/passwd, rel_out -> ../secret,
 *               to_rw -> TOP/rw/h, proc -> /proc/self/mem, dotproc -> ../../../../proc/self/mem}
 *      secret, rw/h, vol/v */
static int setup_tree(void **state)
{
    (void)state;
    snprintf(top, sizeof top, "/tmp/kvms-policy-XXXXXX");
    assert_non_null(mkdtemp(top));
    make_dir("allowed");
    make_dir("allowed/sub");
    make_dir("rw");
    make_dir("vol");
    make_file("allowed/f", "f");
    make_file("allowed/sub/g", "g");
    make_file("secret", "secret");
    make_file("rw/h", "h");
    make_file("vol/v", "v");
    make_link("..", "allowed/up");
    make_link("/etc/passwd", "allowed/abs");
    make_link("../secret", "allowed/rel_out");
    char target[PATH_MAX];
    path_in(target, "rw/h");
    make_link(target, "allowed/to_rw");
    make_link("/proc/self/mem", "allowed/proc");
    /* Deep enough to reach "/" from /tmp/kvms-policy-X/allowed. */
    make_link("../../../../../../proc/self/environ", "allowed/dotproc");
    return 0;
}

static int teardown_tree(void **state)
{
    (void)state;
    char cmd[sizeof top + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
    return system(cmd) == 0 ? 0 : -1;
}

/* A policy: read top/allowed, write top/rw, volume top/vol at /data (read-only). */
static void build(struct fs_policy *pol, bool volume_rw)
{
    static char read_path[PATH_MAX], write_path[PATH_MAX], volume[2 * PATH_MAX];
    static char *reads[1], *writes[1], *volumes[1];
    path_in(read_path, "allowed");
    path_in(write_path, "rw");
    snprintf(volume, sizeof volume, "%s/vol:/data%s", top, volume_rw ? ":rw" : "");
    reads[0] = read_path;
    writes[0] = write_path;
    volumes[0] = volume;
    struct fsp_rules rules;
    memset(&rules, 0, sizeof rules);
    rules.read = (struct str_list){ reads, 1 };
    rules.write = (struct str_list){ writes, 1 };
    rules.volumes = (struct str_list){ volumes, 1 };
    assert_int_equal(fsp_init(pol, &rules, stderr), 0);
}

/* Opens and reads one byte: the byte, or -errno. */
static int open_read(const struct fs_policy *pol, const char *base, const char *path,
                     bool *denied)
{
    struct fsp_result r;
    int err = fsp_open(pol, NULL, base, path, O_RDONLY, 0, FSP_READ, &r);
    if (denied)
        *denied = r.denied;
    if (err)
        return err;
    if (r.pseudo)
        return -ENOSYS;             /* distinct from every real outcome */
    char c;
    int n = (int)read(r.fd, &c, 1);
    close(r.fd);
    return n == 1 ? c : -EIO;
}

static void test_absolute(void **state)
{
    (void)state;
    char out[PATH_MAX];
    assert_int_equal(fsp_absolute(out, sizeof out, "/a/b", "c/./d//e/"), 0);
    assert_string_equal(out, "/a/b/c/d/e");
    assert_int_equal(fsp_absolute(out, sizeof out, "/a/b", "../c"), 0);
    assert_string_equal(out, "/a/b/../c");          /* ".." is for the kernel to resolve */
    assert_int_equal(fsp_absolute(out, sizeof out, "/a", "/x/."), 0);
    assert_string_equal(out, "/x");
    assert_int_equal(fsp_absolute(out, sizeof out, "/", "."), 0);
    assert_string_equal(out, "/");
    assert_int_equal(fsp_absolute(out, sizeof out, "/a", ""), -ENOENT);
    char small[8];
    assert_int_equal(fsp_absolute(small, sizeof small, "/abc", "defgh"), -ENAMETOOLONG);
}

static void test_lexical(void **state)
{
    (void)state;
    char out[PATH_MAX];
    assert_int_equal(fsp_lexical(out, sizeof out, "/a/b/../../../c/./d/.."), 0);
    assert_string_equal(out, "/c");
    assert_int_equal(fsp_lexical(out, sizeof out, "/.."), 0);
    assert_string_equal(out, "/");
    assert_int_equal(fsp_lexical(out, sizeof out, "/proc/self/../1/maps"), 0);
    assert_string_equal(out, "/proc/1/maps");
}

static void test_pseudo_names(void **state)
{
    (void)state;
    assert_true(fsp_is_pseudo("/proc"));
    assert_true(fsp_is_pseudo("/proc/self/maps"));
    assert_true(fsp_is_pseudo("/sys/fs/cgroup/memory.max"));
    assert_false(fsp_is_pseudo("/process"));
    assert_false(fsp_is_pseudo("/system/x"));
    assert_false(fsp_is_pseudo("/data/proc"));
}

static void test_match_and_rights(void **state)
{
    (void)state;
    struct fs_policy pol;
    build(&pol, false);
    char path[PATH_MAX];
    const char *rel;
    path_in(path, "allowed/sub/g");
    const struct fsp_root *r = fsp_match(&pol, path, &rel);
    assert_non_null(r);
    assert_string_equal(rel, "sub/g");
    assert_true(fsp_grants(r, FSP_READ));
    assert_false(fsp_grants(r, FSP_WRITE));
    path_in(path, "allowed");
    r = fsp_match(&pol, path, &rel);
    assert_string_equal(rel, ".");
    path_in(path, "allowedX/f");                     /* a prefix, not a parent */
    assert_null(fsp_match(&pol, path, &rel));
    path_in(path, "rw/h");
    r = fsp_match(&pol, path, &rel);
    assert_true(fsp_grants(r, FSP_WRITE));
    assert_false(fsp_grants(r, FSP_READ));           /* --allow-write alone is write only */
    assert_true(fsp_grants(r, FSP_LOOK));
    r = fsp_match(&pol, "/data/v", &rel);
    assert_true(r && r->volume);
    assert_string_equal(rel, "v");
    assert_false(fsp_grants(r, FSP_WRITE));          /* volumes are read-only by default */
    assert_non_null(fsp_match(&pol, "/dev/null", &rel));   /* always allowed */
    assert_null(fsp_match(&pol, "/dev/null2", &rel));
    assert_null(fsp_match(&pol, "/etc/passwd", &rel));
    assert_true(fsp_is_ancestor(&pol, "/"));
    assert_true(fsp_is_ancestor(&pol, top));
    path_in(path, "allowed");
    assert_false(fsp_is_ancestor(&pol, path));
    fsp_destroy(&pol);
}

static void test_inherited_rights(void **state)
{
    (void)state;
    static char *reads[] = { "/" };
    static char write_path[PATH_MAX];
    static char *writes[] = { write_path };
    path_in(write_path, "rw");
    struct fsp_rules rules;
    memset(&rules, 0, sizeof rules);
    rules.read = (struct str_list){ reads, 1 };
    rules.write = (struct str_list){ writes, 1 };
    struct fs_policy pol;
    assert_int_equal(fsp_init(&pol, &rules, stderr), 0);
    char path[PATH_MAX];
    path_in(path, "rw/h");
    const struct fsp_root *r = fsp_match(&pol, path, NULL);
    assert_true(fsp_grants(r, FSP_READ | FSP_WRITE));
    fsp_destroy(&pol);
}

static void test_open_inside(void **state)
{
    (void)state;
    struct fs_policy pol;
    build(&pol, false);
    char dir[PATH_MAX];
    path_in(dir, "allowed");
    assert_int_equal(open_read(&pol, dir, "f", NULL), 'f');
    assert_int_equal(open_read(&pol, dir, "sub/../sub/g", NULL), 'g');
    assert_int_equal(open_read(&pol, "/", "/data/v", NULL), 'v');
    assert_int_equal(open_read(&pol, "/data", "v", NULL), 'v');
    /* A symlink that leaves its root for another allowed one is followed there. */
    struct fsp_result r;
    assert_int_equal(fsp_open(&pol, NULL, dir, "to_rw", O_WRONLY, 0, FSP_WRITE, &r), 0);
    close(r.fd);
    fsp_destroy(&pol);
}

static void test_escapes_refused(void **state)
{
    (void)state;
    struct fs_policy pol;
    build(&pol, false);
    char dir[PATH_MAX];
    path_in(dir, "allowed");
    bool denied;
    assert_int_equal(open_read(&pol, dir, "../secret", &denied), -EACCES);
    assert_true(denied);
    assert_int_equal(open_read(&pol, dir, "up/secret", &denied), -EACCES);
    assert_int_equal(open_read(&pol, dir, "rel_out", &denied), -EACCES);
    assert_int_equal(open_read(&pol, dir, "abs", &denied), -EACCES);
    assert_true(denied);
    assert_int_equal(open_read(&pol, "/", "/etc/passwd", &denied), -EACCES);
    assert_int_equal(open_read(&pol, dir, "sub/../../secret", &denied), -EACCES);
    assert_int_equal(open_read(&pol, "/data", "../etc/passwd", &denied), -EACCES);
    /* Not readable: rw is write-only, even through a link from a readable tree. */
    assert_int_equal(open_read(&pol, dir, "to_rw", &denied), -EACCES);
    fsp_destroy(&pol);
}

static void test_proc_is_synthesized(void **state)
{
    (void)state;
    static char *reads[] = { "/" };
    struct fsp_rules rules;
    memset(&rules, 0, sizeof rules);
    rules.read = (struct str_list){ reads, 1 };
    struct fs_policy pol;
    assert_int_equal(fsp_init(&pol, &rules, stderr), 0);
    char dir[PATH_MAX];
    path_in(dir, "allowed");
    /* Everything under /proc and /sys goes to the synthesized files, however it is named,
     * and never to the host's (even with --allow-read=/). */
    static const char *const paths[] = { "/proc/self/mem", "proc", "dotproc",
                                         "/tmp/../proc/self/environ", "/sys/kernel/notes" };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        struct fsp_result r;
        int err = fsp_open(&pol, NULL, dir, paths[i], O_RDONLY, 0, FSP_READ, &r);
        assert_int_equal(err, 0);
        assert_true(r.pseudo);
        assert_true(fsp_is_pseudo(r.guest));
    }
    assert_int_equal(open_read(&pol, dir, "f", NULL), 'f');
    fsp_destroy(&pol);
}

static void test_writes(void **state)
{
    (void)state;
    struct fs_policy pol;
    build(&pol, false);
    char dir[PATH_MAX];
    path_in(dir, "rw");
    struct fsp_result r;
    assert_int_equal(fsp_open(&pol, NULL, dir, "new", O_WRONLY | O_CREAT, 0644, FSP_WRITE, &r), 0);
    close(r.fd);
    char name[NAME_MAX + 1];
    assert_int_equal(fsp_open_parent(&pol, NULL, dir, "new", FSP_WRITE, &r, name), 0);
    assert_string_equal(name, "new");
    assert_int_equal(unlinkat(r.fd, name, 0), 0);
    close(r.fd);
    /* The read-only trees and the read-only volume refuse. */
    char ro[PATH_MAX];
    path_in(ro, "allowed");
    assert_int_equal(fsp_open(&pol, NULL, ro, "f", O_WRONLY, 0, FSP_WRITE, &r), -EACCES);
    assert_true(r.denied);
    assert_int_equal(fsp_open_parent(&pol, NULL, ro, "f", FSP_WRITE, &r, name), -EACCES);
    assert_int_equal(fsp_open(&pol, NULL, "/data", "new", O_WRONLY | O_CREAT, 0644, FSP_WRITE, &r),
                     -EACCES);
    /* A root's mount point is not removed from its parent; "." and ".." are no names. */
    assert_int_equal(fsp_open_parent(&pol, NULL, "/", "/", FSP_WRITE, &r, name), -EBUSY);
    assert_int_equal(fsp_open_parent(&pol, NULL, dir, "..", FSP_WRITE, &r, name), -EINVAL);
    fsp_destroy(&pol);

    build(&pol, true);              /* now an rw volume */
    assert_int_equal(fsp_open(&pol, NULL, "/data", "new", O_WRONLY | O_CREAT,
                              0644, FSP_WRITE, &r), 0);
    close(r.fd);
    char host[PATH_MAX];
    path_in(host, "vol/new");
    assert_int_equal(access(host, F_OK), 0);     /* it landed in the host directory */
    assert_int_equal(unlink(host), 0);
    fsp_destroy(&pol);
}

static void test_guest_path_of_fd(void **state)
{
    (void)state;
    struct fs_policy pol;
    build(&pol, false);
    struct fsp_result r;
    assert_int_equal(fsp_open(&pol, NULL, "/", "/data", O_RDONLY | O_DIRECTORY,
                              0, FSP_READ, &r), 0);
    char guest[PATH_MAX];
    assert_int_equal(fsp_guest_path_of_fd(&pol, r.fd, guest), 0);
    assert_string_equal(guest, "/data");          /* the volume's name, not the host's */
    close(r.fd);
    char dir[PATH_MAX], expect[PATH_MAX];
    path_in(dir, "allowed/sub");
    assert_int_equal(fsp_open(&pol, NULL, "/", dir, O_RDONLY | O_DIRECTORY, 0, FSP_READ, &r), 0);
    assert_int_equal(fsp_guest_path_of_fd(&pol, r.fd, guest), 0);
    assert_non_null(realpath(dir, expect));
    assert_string_equal(guest, expect);
    close(r.fd);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(fsp_guest_path_of_fd(&pol, fds[0], guest), -ENOTDIR);
    close(fds[0]);
    close(fds[1]);
    fsp_destroy(&pol);
}

static void test_canonical(void **state)
{
    (void)state;
    struct fs_policy pol;
    build(&pol, false);
    char dir[PATH_MAX], out[PATH_MAX], expect[PATH_MAX];
    path_in(dir, "allowed");
    bool pseudo;
    assert_int_equal(fsp_canonical(&pol, NULL, dir, "to_rw", out, &pseudo), 0);
    path_in(expect, "rw/h");
    assert_string_equal(out, expect);
    assert_false(pseudo);
    /* A directory on the way to a root may be passed through, not opened. */
    assert_int_equal(fsp_canonical(&pol, NULL, dir, "up", out, &pseudo), 0);
    assert_string_equal(out, top);
    struct fsp_result r;
    assert_int_equal(fsp_open(&pol, NULL, "/", out, O_PATH | O_DIRECTORY,
                              0, FSP_LOOK, &r), -EACCES);
    fsp_destroy(&pol);
}

/* After a chroot to top/allowed: ".." and symlinks that climb stop at the new root, and an
 * absolute symlink's target starts there (allowed/abs -> /etc/passwd names allowed/etc/passwd,
 * which does not exist). */
static void test_process_root(void **state)
{
    (void)state;
    struct fs_policy pol;
    build(&pol, false);
    char root[PATH_MAX], sub[PATH_MAX], out[PATH_MAX];
    path_in(root, "allowed");
    path_in(sub, "allowed/sub");
    bool pseudo;
    assert_int_equal(fsp_canonical(&pol, root, root, "sub/../../..", out, &pseudo), 0);
    assert_string_equal(out, root);
    assert_int_equal(fsp_canonical(&pol, root, sub, "../up/up/sub", out, &pseudo), 0);
    assert_string_equal(out, sub);
    struct fsp_result r;
    assert_int_equal(fsp_open(&pol, root, root, "abs", O_RDONLY, 0, FSP_READ, &r), -ENOENT);
    assert_int_equal(fsp_open(&pol, root, root, "up/f", O_RDONLY, 0, FSP_READ, &r), 0);
    close(r.fd);
    /* Without the root, the same paths leave the allowed tree. */
    assert_int_equal(fsp_canonical(&pol, NULL, root, "sub/../..", out, &pseudo), 0);
    assert_string_equal(out, top);
    assert_int_equal(fsp_open(&pol, NULL, root, "up/f", O_RDONLY, 0, FSP_READ, &r), -EACCES);
    fsp_destroy(&pol);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_absolute),
        cmocka_unit_test(test_lexical),
        cmocka_unit_test(test_pseudo_names),
        cmocka_unit_test(test_match_and_rights),
        cmocka_unit_test(test_inherited_rights),
        cmocka_unit_test(test_open_inside),
        cmocka_unit_test(test_escapes_refused),
        cmocka_unit_test(test_proc_is_synthesized),
        cmocka_unit_test(test_writes),
        cmocka_unit_test(test_guest_path_of_fd),
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_process_root),
    };
    return cmocka_run_group_tests(tests, setup_tree, teardown_tree);
}
