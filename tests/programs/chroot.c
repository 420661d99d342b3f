/* chroot as a root-started daemon uses it (issue 11), run natively as root and in the VM:
 * argv[1] is a directory JAIL holding etc/hello, abs -> /etc/hello, up -> ../../../etc,
 * sub/deep/, sub/x and lnk -> sub/deep. Prints one line per call: its result, errno name and what it read or saw.
 * `chroot denied PATH` only prints what chroot(PATH) answers (a path the policy refuses). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static void show(const char *what, long r)
{
    printf("%-24s %ld %s\n", what, r, r < 0 ? strerrorname_np(errno) : "");
}

/* What the raw getcwd answers: "(unreachable)..." for a directory outside the root, which
 * glibc's getcwd would turn into ENOENT. */
static void cwd(void)
{
    char buf[4096];
    long n = syscall(SYS_getcwd, buf, sizeof buf);
    printf("cwd %s\n", n < 0 ? strerrorname_np(errno) : buf);
}

static void cat(const char *path)
{
    char buf[64] = "";
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("open %-19s -1 %s\n", path, strerrorname_np(errno));
        return;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    printf("open %-19s %s", path, buf);
    close(fd);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc == 3 && strcmp(argv[1], "denied") == 0) {
        show("chroot(denied)", chroot(argv[2]));
        return 0;
    }
    if (argc != 2 || chdir(argv[1]) != 0)
        return 2;
    static char longname[5000];
    memset(longname, 'a', sizeof longname - 1);
    show("chroot(\"\")", chroot(""));
    show("chroot(bad pointer)", syscall(SYS_chroot, (void *)8));
    show("chroot(too long)", chroot(longname));
    show("chroot(missing)", chroot("missing"));
    show("chroot(a file)", chroot("etc/hello"));
    show("chroot(file/x)", chroot("etc/hello/x"));
    show("chroot(.)", chroot("."));
    cwd();
    cat("/etc/hello");
    cat("/../../etc/hello");
    cat("abs");
    cat("/up/hello");
    cat("/sub/../etc/hello");
    cat("/lnk/../x");               /* ".." of the link's target: /sub/x */
    char link[64] = "";
    long n = readlink("/abs", link, sizeof link - 1);
    printf("readlink /abs %ld %s\n", n, n > 0 ? link : "");
    struct stat root, up;
    stat("/", &root);
    stat("/..", &up);
    printf("/.. is / %d\n", root.st_ino == up.st_ino && root.st_dev == up.st_dev);
    show("chdir(/sub)", chdir("/sub"));
    cwd();
    show("chdir(../..)", chdir("../.."));
    cwd();
    show("chroot(/)", chroot("/"));
    cat("/etc/hello");
    /* A root beneath the working directory: cwd is outside it, and relative paths still
     * start there. */
    show("chroot(sub)", chroot("sub"));
    cwd();
    char *p = getcwd(link, sizeof link);
    printf("getcwd %s %s\n", p ? p : "NULL", p ? "" : strerrorname_np(errno));
    cat("etc/hello");
    cat("/etc/hello");
    show("chdir(/)", chdir("/"));
    cwd();
    cat("/../etc/hello");
    return 0;
}
