/* Runs file-system operations named on the command line and prints one line per operation:
 * what it did and its result ("ok ..." or the errno name). The output depends only on the
 * file system's content, so native and guest runs compare line by line.
 *   fs_probe read PATH | write PATH TEXT | append PATH TEXT | stat PATH | lstat PATH |
 *            readlink PATH | list DIR | mkdir PATH | rmdir PATH | unlink PATH |
 *            rename OLD NEW | symlink TARGET LINK | link OLD NEW | chdir DIR | getcwd |
 *            access PATH rwxf | truncate PATH N | chmod PATH OCTAL | openat DIR NAME |
 *            reopen PATH (read-only, then O_RDWR through /proc/self/fd/N) ...
 * Exit status: the number of failed operations (capped at 100). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int failures;

static void fail(const char *what)
{
    printf("%s: error %s\n", what, strerrorname_np(errno) ? strerrorname_np(errno) : "?");
    failures++;
}

static unsigned long checksum(const unsigned char *p, size_t n, unsigned long h)
{
    for (size_t i = 0; i < n; i++)
        h = (h * 31 + p[i]) & 0xffffffffu;
    return h;
}

static void do_read(const char *label, int fd)
{
    unsigned char buf[4096];
    size_t total = 0;
    unsigned long h = 7;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        total += (size_t)n;
        h = checksum(buf, (size_t)n, h);
    }
    if (n < 0) {
        fail(label);
    } else {
        printf("%s: ok %zu bytes, sum %08lx", label, total, h);
        if (total && total < 64 && buf[0] >= ' ') {     /* short text: show it */
            printf(" \"");
            for (size_t i = 0; i < total; i++)
                putchar(buf[i] >= ' ' && buf[i] < 127 ? buf[i] : '.');
            printf("\"");
        }
        printf("\n");
    }
    close(fd);
}

static const char *type_of(mode_t m)
{
    return S_ISREG(m) ? "file" : S_ISDIR(m) ? "dir" : S_ISLNK(m) ? "link" : S_ISCHR(m) ? "chr"
                                                                                     : "other";
}

static void print_stat(const char *label, const struct stat *st)
{
    if (S_ISREG(st->st_mode))
        printf("%s: ok %s %lld bytes mode %03o\n", label, type_of(st->st_mode),
               (long long)st->st_size, st->st_mode & 0777);
    else
        printf("%s: ok %s\n", label, type_of(st->st_mode));
}

static int compare(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list(const char *label, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        fail(label);
        return;
    }
    char *names[256];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof names[0], compare);
    printf("%s: ok", label);
    for (size_t i = 0; i < n; i++) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    printf("\n");
}

static int access_mode(const char *s)
{
    int m = 0;
    for (; *s; s++)
        m |= *s == 'r' ? R_OK : *s == 'w' ? W_OK : *s == 'x' ? X_OK : F_OK;
    return m;
}

int main(int argc, char **argv)
{
    char label[PATH_MAX * 2 + 64];
    for (int i = 1; i < argc; i++) {
        const char *cmd = argv[i];
        const char *a = i + 1 < argc ? argv[i + 1] : "";
        const char *b = i + 2 < argc ? argv[i + 2] : "";
        snprintf(label, sizeof label, "%s %s", cmd, a);
        struct stat st;
        char buf[PATH_MAX];
        int fd;
        if (!strcmp(cmd, "read")) {
            i += 1;
            fd = open(a, O_RDONLY);
            if (fd < 0)
                fail(label);
            else
                do_read(label, fd);
        } else if (!strcmp(cmd, "write") || !strcmp(cmd, "append")) {
            i += 2;
            int flags = O_WRONLY | O_CREAT | (cmd[0] == 'w' ? O_TRUNC : O_APPEND);
            fd = open(a, flags, 0644);
            if (fd < 0 || write(fd, b, strlen(b)) != (ssize_t)strlen(b)) {
                fail(label);
            } else {
                printf("%s: ok\n", label);
            }
            if (fd >= 0)
                close(fd);
        } else if (!strcmp(cmd, "stat") || !strcmp(cmd, "lstat")) {
            i += 1;
            if ((cmd[0] == 's' ? stat(a, &st) : lstat(a, &st)) < 0)
                fail(label);
            else
                print_stat(label, &st);
        } else if (!strcmp(cmd, "readlink")) {
            i += 1;
            ssize_t n = readlink(a, buf, sizeof buf - 1);
            if (n < 0) {
                fail(label);
            } else {
                buf[n] = 0;
                printf("%s: ok %s\n", label, buf);
            }
        } else if (!strcmp(cmd, "list")) {
            i += 1;
            list(label, a);
        } else if (!strcmp(cmd, "mkdir") || !strcmp(cmd, "rmdir") || !strcmp(cmd, "unlink") ||
                   !strcmp(cmd, "chdir")) {
            i += 1;
            int r = cmd[0] == 'm' ? mkdir(a, 0755) : cmd[0] == 'r' ? rmdir(a)
                    : cmd[0] == 'u' ? unlink(a) : chdir(a);
            if (r < 0)
                fail(label);
            else
                printf("%s: ok\n", label);
        } else if (!strcmp(cmd, "rename") || !strcmp(cmd, "symlink") || !strcmp(cmd, "link")) {
            i += 2;
            snprintf(label, sizeof label, "%s %s %s", cmd, a, b);
            int r = cmd[0] == 'r' ? rename(a, b) : cmd[0] == 's' ? symlink(a, b) : link(a, b);
            if (r < 0)
                fail(label);
            else
                printf("%s: ok\n", label);
        } else if (!strcmp(cmd, "getcwd")) {
            if (!getcwd(buf, sizeof buf))
                fail(cmd);
            else
                printf("getcwd: ok %s\n", buf);
        } else if (!strcmp(cmd, "access")) {
            i += 2;
            snprintf(label, sizeof label, "access %s %s", a, b);
            if (access(a, access_mode(b)) < 0)
                fail(label);
            else
                printf("%s: ok\n", label);
        } else if (!strcmp(cmd, "truncate")) {
            i += 2;
            if (truncate(a, atol(b)) < 0)
                fail(label);
            else
                printf("%s %s: ok\n", label, b);
        } else if (!strcmp(cmd, "chmod")) {
            i += 2;
            if (chmod(a, (mode_t)strtol(b, NULL, 8)) < 0 || stat(a, &st) < 0)
                fail(label);
            else
                printf("%s: ok %03o\n", label, st.st_mode & 0777);
        } else if (!strcmp(cmd, "openat")) {
            i += 2;
            snprintf(label, sizeof label, "openat %s %s", a, b);
            int dir = open(a, O_RDONLY | O_DIRECTORY);
            fd = dir < 0 ? -1 : openat(dir, b, O_RDONLY);
            if (fd < 0)
                fail(label);
            else
                do_read(label, fd);
            if (dir >= 0)
                close(dir);
        } else if (!strcmp(cmd, "reopen")) {
            /* Read-only open, then the same file again for writing through /proc/self/fd. */
            i += 1;
            fd = open(a, O_RDONLY);
            if (fd < 0) {
                fail(label);
                continue;
            }
            snprintf(buf, sizeof buf, "/proc/self/fd/%d", fd);
            int again = open(buf, O_RDWR);
            if (again < 0) {
                fail(label);
            } else {
                printf("%s: ok (writable)\n", label);
                close(again);
            }
            close(fd);
        } else {
            printf("unknown command %s\n", cmd);
            return 100;
        }
    }
    return failures > 100 ? 100 : failures;
}
