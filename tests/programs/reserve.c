/* Reserves N MiB of address space (PROT_NONE, nothing committed) and says whether the kernel
 * gave it, so a test can find where --max-address-space ends it. Usage: reserve N */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    unsigned long mib = strtoul(argv[1], NULL, 10);
    void *p = mmap(NULL, mib << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        printf("reserve %lu MiB: %s\n", mib, errno == ENOMEM ? "ENOMEM" : strerror(errno));
        return 1;
    }
    printf("reserve %lu MiB: ok\n", mib);
    return 0;
}
