/* Standard streams with raw calls: write, writev (including empty iovecs), readv and read of
 * stdin until EOF, stderr, and the errors pipes give. The harness feeds stdin. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static int failures;

static void say(const char *s) { (void)!write(1, s, strlen(s)); }

static void verdict(const char *what, int good)
{
    say(what);
    say(good ? ": ok\n" : ": bad\n");
    if (!good)
        failures++;
}

int main(void)
{
    verdict("write 0 bytes", write(1, "", 0) == 0);
    verdict("write", write(1, "hello from write\n", 17) == 17);

    char part2[] = "writev ";
    struct iovec pieces[] = {
        {.iov_base = "hello ", .iov_len = 6},
        {.iov_base = NULL, .iov_len = 0},
        {.iov_base = part2, .iov_len = sizeof part2 - 1},
        {.iov_base = "\n", .iov_len = 1},
    };
    verdict("writev", writev(1, pieces, 4) == 14);
    verdict("writev zero count", writev(1, pieces, 0) == 0);
    verdict("stderr write", write(2, "to stderr\n", 10) == 10);

    /* stdin: first 5 bytes split over readv, then the rest with read. */
    char head_a[2], head_b[3];
    struct iovec head[] = {{head_a, sizeof head_a}, {head_b, sizeof head_b}};
    ssize_t got = readv(0, head, 2);
    verdict("readv from stdin", got == 5);
    if (got == 5) {
        say("readv got: ");
        (void)!write(1, head_a, 2);
        (void)!write(1, head_b, 3);
        say("\n");
    }
    unsigned long checksum = 0, total = 0;
    char buffer[1000];
    for (;;) {
        ssize_t n = read(0, buffer, sizeof buffer);
        if (n < 0) {
            failures++;
            break;
        }
        if (n == 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            checksum = checksum * 131 + (unsigned char)buffer[i];
        total += (unsigned long)n;
    }
    verdict("read after EOF returns 0", read(0, buffer, sizeof buffer) == 0);
    printf("stdin rest: %lu bytes, checksum %lu\n", total, checksum);
    fflush(stdout);

    errno = 0;
    verdict("lseek on a pipe -> ESPIPE", lseek(1, 0, SEEK_CUR) == -1 && errno == ESPIPE);
    errno = 0;
    verdict("isatty(stdout) false, ENOTTY", !isatty(1) && errno == ENOTTY);
    struct stat st;
    verdict("fstat(stdout) is a FIFO", fstat(1, &st) == 0 && S_ISFIFO(st.st_mode));
    errno = 0;
    verdict("write to closed fd -> EBADF", write(42, "x", 1) == -1 && errno == EBADF);
    errno = 0;
    verdict("read from stdout-only fd 99 -> EBADF", read(99, buffer, 1) == -1 && errno == EBADF);
    return failures ? 1 : 0;
}
