/* Takes memory until the system says no: 16 MiB anonymous chunks, every page touched, up to
 * argv[1] MiB (default 4096). Under a memory limit the guest must get ENOMEM from mmap or be
 * stopped with a crash report; the host must not fall over. Prints how it stopped. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

int main(int argc, char **argv)
{
    unsigned long limit_mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 4096;
    const size_t chunk = 16u << 20;
    unsigned long taken_mib = 0;
    while (taken_mib < limit_mib) {
        unsigned char *p = mmap(NULL, chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            puts("mmap refused: stopped cleanly");
            return 0;
        }
        for (size_t off = 0; off < chunk; off += 4096)
            p[off] = 1;
        taken_mib += 16;
    }
    printf("reached the %lu MiB goal\n", limit_mib);
    return 0;
}
