/* Checks the auxiliary vector the loader built. Prints "ok"/"bad" verdicts, never addresses,
 * so the output is the same natively and in the guest. */
#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>

#include "verdict.h"

extern char **environ;
extern const Elf64_Ehdr __ehdr_start;  /* linker-provided: our own ELF header, in memory */
extern void _start(void);

int main(void)
{
    /* The vector follows the environment's NULL terminator on the initial stack. */
    char **p = environ;
    while (*p)
        p++;
    const Elf64_auxv_t *auxv = (const Elf64_auxv_t *)(p + 1);

    enum { MAX_ENTRIES = 256 };
    int seen[64] = {0};
    int entries = 0, duplicates = 0, terminated = 0;
    for (int i = 0; i < MAX_ENTRIES; i++) {
        uint64_t type = auxv[i].a_type;
        if (type == AT_NULL) {
            terminated = 1;
            break;
        }
        entries++;
        if (type < 64) {
            if (seen[type])
                duplicates++;
            seen[type] = 1;
        }
    }
    verdict("auxv terminated", terminated);
    verdict("auxv no duplicates", duplicates == 0);
    verdict("auxv has entries", entries >= 6);

    static const struct { unsigned long type; const char *name; } required[] = {
        {AT_PHDR, "AT_PHDR"}, {AT_PHENT, "AT_PHENT"}, {AT_PHNUM, "AT_PHNUM"},
        {AT_PAGESZ, "AT_PAGESZ"}, {AT_ENTRY, "AT_ENTRY"}, {AT_RANDOM, "AT_RANDOM"},
    };
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        char line[64];
        snprintf(line, sizeof line, "%s present", required[i].name);
        verdict(line, seen[required[i].type]);
    }

    verdict("AT_PAGESZ == 4096", getauxval(AT_PAGESZ) == 4096);
    const char *image = (const char *)&__ehdr_start;
    verdict("AT_PHDR points at our program headers",
            getauxval(AT_PHDR) == (unsigned long)(image + __ehdr_start.e_phoff));
    verdict("AT_PHNUM matches ELF header", getauxval(AT_PHNUM) == __ehdr_start.e_phnum);
    verdict("AT_PHENT == sizeof(Elf64_Phdr)", getauxval(AT_PHENT) == sizeof(Elf64_Phdr));
    verdict("AT_ENTRY == _start", getauxval(AT_ENTRY) == (unsigned long)&_start);

    /* Reading all 16 bytes proves they are mapped; the fold keeps the loop from being elided. */
    const volatile unsigned char *random_bytes = (const unsigned char *)getauxval(AT_RANDOM);
    unsigned fold = 0;
    if (random_bytes)
        for (int i = 0; i < 16; i++)
            fold |= random_bytes[i];
    verdict("AT_RANDOM 16 readable bytes, not all zero", random_bytes && fold != 0);

    /* Optional entries: absent is fine, present must be sane. */
    if (seen[AT_SECURE])
        verdict("AT_SECURE == 0 if present", getauxval(AT_SECURE) == 0);
    else
        verdict("AT_SECURE == 0 if present", 1);
    if (seen[AT_BASE])
        verdict("AT_BASE == 0 if present (static)", getauxval(AT_BASE) == 0);
    else
        verdict("AT_BASE == 0 if present (static)", 1);
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    verdict("AT_EXECFN readable if present", !seen[AT_EXECFN] || (execfn && strlen(execfn) < 4096));
    const unsigned char *vdso = (const unsigned char *)getauxval(AT_SYSINFO_EHDR);
    verdict("AT_SYSINFO_EHDR is an ELF image if present",
            !seen[AT_SYSINFO_EHDR] || (vdso && memcmp(vdso, ELFMAG, SELFMAG) == 0));
    verdict("AT_CLKTCK == 100 if present", !seen[AT_CLKTCK] || getauxval(AT_CLKTCK) == 100);
    return failures ? 1 : 0;
}
