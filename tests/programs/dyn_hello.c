/* A dynamically linked glibc program at its simplest: stdio, argv, the environment and an
 * exit status. Built as a PIE (dyn_hello) and as a fixed-address ET_EXEC (dyn_hello_nopie),
 * so both placements of a program beside its interpreter are exercised. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    printf("hello from a dynamic program, argc=%d\n", argc);
    for (int i = 1; i < argc; i++)
        printf("argv[%d]=%s (%zu bytes)\n", i, argv[i], strlen(argv[i]));
    const char *probe = getenv("KVMS_PROBE");
    printf("KVMS_PROBE=%s\n", probe ? probe : "(unset)");
    /* Enough heap to go past the first brk page and into an mmap'd chunk. */
    size_t total = 0;
    for (int i = 0; i < 64; i++) {
        size_t n = (size_t)1 << (i % 20);
        char *p = malloc(n);
        if (!p)
            return 100;
        memset(p, i, n);
        total += (unsigned char)p[n - 1];
        free(p);
    }
    printf("heap check %zu\n", total);
    return argc;
}
