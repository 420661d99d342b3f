/* Exhaustion server (tests/e2e/test_exhaustion.py): listens on 127.0.0.1:PORT; each
 * connection sends one word and gets one line back.
 *   fds    opens /dev/null until that fails: "fds N errno E", then closes them all and
 *          opens one again ("again ok"), so a request reaches the fd limit and recovers
 *   maps   maps and touches 1 MiB at a time until mmap fails: "maps N MiB errno E" (in a
 *          request VM kvmserver aborts the request at --max-request-memory instead)
 *   pipe   writes 1 MiB into a pipe nobody reads: it blocks, as on Linux, until kvmserver
 *          cuts the request at --max-request-time
 *   hello  "hello" */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FDS 1000000

static int fds[MAX_FDS];

static void answer(int c, const char *word)
{
    char line[128];
    if (strncmp(word, "fds", 3) == 0) {
        int n = 0, err = 0;
        while (n < MAX_FDS) {
            int fd = open("/dev/null", O_RDONLY);
            if (fd < 0) {
                err = errno;
                break;
            }
            fds[n++] = fd;
        }
        for (int i = 0; i < n; i++)
            close(fds[i]);
        int again = open("/dev/null", O_RDONLY);
        snprintf(line, sizeof line, "fds %d errno %d again %s\n", n, err, again >= 0 ? "ok" : "bad");
        if (again >= 0)
            close(again);
    } else if (strncmp(word, "maps", 4) == 0) {
        long mib = 0;
        int err = 0;
        for (;;) {
            char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) {
                err = errno;
                break;
            }
            memset(p, 1, 1 << 20);
            mib++;
        }
        snprintf(line, sizeof line, "maps %ld MiB errno %d\n", mib, err);
    } else if (strncmp(word, "pipe", 4) == 0) {
        int p[2];
        static char big[1 << 20];
        if (pipe(p) == 0)
            (void)!write(p[1], big, sizeof big);
        snprintf(line, sizeof line, "pipe write returned\n");
    } else {
        snprintf(line, sizeof line, "hello\n");
    }
    (void)!write(c, line, strlen(line));
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (bind(ls, (struct sockaddr *)&sin, sizeof sin) || listen(ls, 1024))
        return 2;
    for (;;) {
        int c = accept(ls, NULL, NULL);
        if (c < 0)
            continue;
        char word[16] = "";
        ssize_t n = read(c, word, sizeof word - 1);
        word[n > 0 ? n : 0] = 0;
        answer(c, word);
        close(c);
    }
}
