/* Exit paths: "exit N", "return N", "_exit N", "abort"-free. atexit handlers and stdio
 * buffers run on exit and return but not on _exit, which the output shows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void on_exit_handler(void) { puts("atexit handler ran"); }

int main(int argc, char **argv)
{
    if (argc != 3) {
        fputs("usage: exitcode exit|return|_exit N\n", stderr);
        return 2;
    }
    int status = atoi(argv[2]);
    atexit(on_exit_handler);
    printf("mode=%s status=%d\n", argv[1], status);
    fflush(stdout);
    printf("buffered line");  /* reaches stdout only if stdio is flushed at exit */
    if (strcmp(argv[1], "exit") == 0)
        exit(status);
    if (strcmp(argv[1], "_exit") == 0)
        _exit(status);
    if (strcmp(argv[1], "return") == 0)
        return status;
    return 3;
}
