/* Checks the synthesized /proc and /sys files from inside the guest: they must describe the
 * sandbox (pid 1, one CPU, its own mappings and limits) and hide the host's process.
 *   fs_proc EXPECTED_EXE EXPECTED_MEMORY_MAX
 * Prints "ok NAME" or "FAIL NAME: why" per check; the exit status is the number of
 * failures. Only meaningful under kvmserver (natively the host's values differ). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

static int failures;

static void check(bool ok, const char *name, const char *fmt, ...)
{
    if (ok) {
        printf("ok %s\n", name);
        return;
    }
    failures++;
    printf("FAIL %s: ", name);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

/* The whole file, NUL-terminated, or NULL (errno set). */
static char *slurp(const char *path, size_t *len_out)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    ssize_t n;
    while (buf && (n = read(fd, buf + len, cap - len)) > 0) {
        len += (size_t)n;
        if (len == cap)
            buf = realloc(buf, (cap *= 2) + 1);
    }
    close(fd);
    if (!buf)
        return NULL;
    buf[len] = 0;
    if (len_out)
        *len_out = len;
    return buf;
}

static bool in_mapping(const char *maps, uintptr_t addr, const char *perms, const char *label)
{
    for (const char *line = maps; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        unsigned long long lo, hi;
        char p[5];
        if (sscanf(line, "%llx-%llx %4s", &lo, &hi, p) != 3)
            continue;
        const char *eol = strchrnul(line, '\n');
        bool labelled = !label || ((size_t)(eol - line) >= strlen(label) &&
                                   strncmp(eol - strlen(label), label, strlen(label)) == 0);
        if (addr >= lo && addr < hi)
            return strncmp(p, perms, 3) == 0 && labelled;
    }
    return false;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: fs_proc EXPECTED_EXE EXPECTED_MEMORY_MAX\n");
        return 100;
    }
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    check(n > 0 && strcmp(buf, argv[1]) == 0, "exe-link", "got '%s'", buf);
    struct stat exe_st, self_st;
    check(stat("/proc/self/exe", &self_st) == 0 && stat(argv[1], &exe_st) == 0 &&
          self_st.st_size == exe_st.st_size, "exe-stat", "errno %d", errno);

    char *maps = slurp("/proc/self/maps", NULL);
    int local = 0;
    check(maps && in_mapping(maps, (uintptr_t)&local, "rw-", "[stack]"), "maps-stack",
          "%s", maps ? maps : strerror(errno));
    check(maps && in_mapping(maps, (uintptr_t)&main, "r-x", argv[1]), "maps-text", "%s",
          maps ? maps : "");
    void *heap = malloc(100);
    free(maps);
    maps = slurp("/proc/self/maps", NULL);
    check(maps && in_mapping(maps, (uintptr_t)heap, "rw-", NULL), "maps-heap", "%p", heap);
    free(maps);
    free(heap);

    char *stat = slurp("/proc/self/stat", NULL);
    check(stat && strncmp(stat, "1 (fs_proc", 10) == 0, "stat", "%s", stat ? stat : "");
    free(stat);
    char *statm = slurp("/proc/self/statm", NULL);
    unsigned long fields[7];
    check(statm && sscanf(statm, "%lu %lu %lu %lu %lu %lu %lu", &fields[0], &fields[1],
                          &fields[2], &fields[3], &fields[4], &fields[5], &fields[6]) == 7 &&
          fields[1] > 0, "statm", "%s", statm ? statm : "");
    free(statm);
    char *cgroup = slurp("/proc/self/cgroup", NULL);
    check(cgroup && strcmp(cgroup, "0::/\n") == 0, "cgroup", "%s", cgroup ? cgroup : "");
    free(cgroup);
    char *memory_max = slurp("/sys/fs/cgroup/memory.max", NULL);
    check(memory_max && strtoull(memory_max, NULL, 10) == strtoull(argv[2], NULL, 10),
          "memory.max", "%s", memory_max ? memory_max : "");
    free(memory_max);
    char *cpu_max = slurp("/sys/fs/cgroup/cpu.max", NULL);
    check(cpu_max && strcmp(cpu_max, "100000 100000\n") == 0, "cpu.max", "%s",
          cpu_max ? cpu_max : "");
    free(cpu_max);
    char *meminfo = slurp("/proc/meminfo", NULL);
    check(meminfo && strncmp(meminfo, "MemTotal:", 9) == 0, "meminfo", "%s",
          meminfo ? meminfo : "");
    free(meminfo);
    struct utsname u;
    uname(&u);
    char *release = slurp("/proc/sys/kernel/osrelease", NULL);
    check(release && strncmp(release, u.release, strlen(u.release)) == 0, "osrelease", "%s",
          release ? release : "");
    free(release);
    char *over = slurp("/proc/sys/vm/overcommit_memory", NULL);
    check(over && (over[0] >= '0' && over[0] <= '2'), "overcommit", "%s", over ? over : "");
    free(over);
    char *online = slurp("/sys/devices/system/cpu/online", NULL);
    check(online && strcmp(online, "0\n") == 0, "cpu-online", "%s", online ? online : "");
    free(online);
    check(sysconf(_SC_NPROCESSORS_ONLN) == 1, "nprocessors", "%ld",
          sysconf(_SC_NPROCESSORS_ONLN));

    /* The host process is never shown. */
    static const char *const hidden[] = { "/proc/self/environ", "/proc/self/mem",
                                          "/proc/1/environ", "/proc/thread-self/mem",
                                          "/proc/self/auxv" };
    for (size_t i = 0; i < sizeof hidden / sizeof hidden[0]; i++) {
        int fd = open(hidden[i], O_RDONLY);
        check(fd < 0, hidden[i], "opened");
        if (fd >= 0)
            close(fd);
    }
    for (int fd = 3; fd < 32; fd++) {
        snprintf(buf, sizeof buf, "/proc/self/fd/%d", fd);
        int got = open(buf, O_RDONLY);
        char name[32];
        snprintf(name, sizeof name, "fd-%d-closed", fd);
        check(got < 0 && errno == ENOENT, name, "got %d errno %d", got, errno);
        if (got >= 0)
            close(got);
    }

    /* Ordinary fd semantics on a synthesized file: seek, fstat, no writes. */
    int fd = open("/proc/meminfo", O_RDONLY);
    char first[32] = { 0 }, again[32] = { 0 };
    struct stat st;
    check(fd >= 0 && read(fd, first, 16) == 16 && lseek(fd, 0, SEEK_SET) == 0 &&
          read(fd, again, 16) == 16 && memcmp(first, again, 16) == 0 && fstat(fd, &st) == 0 &&
          S_ISREG(st.st_mode) && write(fd, "x", 1) < 0, "meminfo-fd", "errno %d", errno);
    if (fd >= 0)
        close(fd);
    check(open("/proc/meminfo", O_WRONLY) < 0, "meminfo-readonly", "opened for writing");
    return failures;
}
