/* Crashes on purpose: argv[1] picks how. Output before the crash is flushed first, so the
 * harness can compare it. The default is a NULL write (SIGSEGV). */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *how = argc > 1 ? argv[1] : "null-write";
    printf("about to crash: %s\n", how);
    fflush(stdout);
    volatile int *null_pointer = NULL;
    if (strcmp(how, "null-read") == 0)
        return *null_pointer;
    if (strcmp(how, "null-call") == 0) {
        void (*volatile nowhere)(void) = NULL;
        nowhere();
        return 0;
    }
    if (strcmp(how, "rodata-write") == 0) {
        static const char constant[] = "read-only";
        *(volatile char *)constant = 'R';
        return 0;
    }
    *null_pointer = 1;
    puts("still alive");
    return 0;
}
