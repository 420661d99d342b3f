/* Prints argc, every argument and the environment (sorted, because its order is not part of
 * the ABI). The harness gives the native run and the guest the same argv and environment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Escapes non-printable bytes so odd arguments still give one readable line each. */
static void print_escaped(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p >= 0x20 && *p < 0x7f && *p != '\\')
            putchar(*p);
        else
            printf("\\x%02x", *p);
    }
}

int main(int argc, char **argv)
{
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++) {
        printf("argv[%d]=", i);
        print_escaped(argv[i]);
        putchar('\n');
    }
    if (argv[argc] != NULL) {
        puts("argv not NULL-terminated");
        return 1;
    }

    size_t count = 0;
    while (environ[count])
        count++;
    char **sorted = malloc((count + 1) * sizeof *sorted);
    if (!sorted)
        return 1;
    memcpy(sorted, environ, (count + 1) * sizeof *sorted);
    qsort(sorted, count, sizeof *sorted, compare_strings);
    printf("envc=%zu\n", count);
    for (size_t i = 0; i < count; i++) {
        fputs("env: ", stdout);
        print_escaped(sorted[i]);
        putchar('\n');
    }
    free(sorted);

    const char *probe = getenv("KVMS_PROBE");
    printf("getenv(KVMS_PROBE)=%s\n", probe ? probe : "(unset)");
    return argc > 100 ? 100 : argc;  /* the status checks argv made it, too */
}
