/* The program break: growth, shrink and regrowth with raw brk semantics. Memory given back and
 * taken again must read as zero (glibc's malloc relies on fresh sbrk memory being zero). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "verdict.h"

static uintptr_t raw_brk(uintptr_t addr)  /* the syscall returns the new (or unchanged) break */
{
    return (uintptr_t)syscall(SYS_brk, addr);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);  /* no malloc from stdio while we move the break */
    const uintptr_t step = 1u << 20;
    uintptr_t start = raw_brk(0);
    verdict("brk(0) returns the break", start != 0 && start == (uintptr_t)sbrk(0));

    uintptr_t grown = raw_brk(start + step);
    verdict("brk grows by 1 MiB", grown == start + step);
    unsigned char *area = (unsigned char *)start;
    int zero = 1;
    for (uintptr_t i = 0; i < step; i += 4096)
        zero &= area[i] == 0;
    verdict("new break memory is zero", zero);
    memset(area, 0xcd, step);
    verdict("break memory writable", area[step - 1] == 0xcd);

    uintptr_t shrunk = raw_brk(start + step / 2);
    verdict("brk shrinks", shrunk == start + step / 2);
    verdict("memory below the break kept", area[0] == 0xcd && area[step / 2 - 1] == 0xcd);
    uintptr_t regrown = raw_brk(start + step);
    verdict("brk regrows", regrown == start + step);
    /* Linux frees the pages above the break; coming back they are zero. Only whole pages
     * count: the page containing the break may keep its old bytes. */
    uintptr_t first_whole = (start + step / 2 + 4095) & ~(uintptr_t)4095;
    zero = 1;
    for (uintptr_t a = first_whole; a < start + step; a += 512)
        zero &= *(unsigned char *)a == 0;
    verdict("regrown memory is zero", zero);

    /* sbrk-style: negative increment, then large growth. */
    void *before = sbrk(0);
    verdict("sbrk(-4096) returns the old break", sbrk(-4096) == before);
    verdict("sbrk(+16 MiB)", sbrk(16 << 20) != (void *)-1);
    unsigned char *top = (unsigned char *)sbrk(0) - 1;
    *top = 9;
    verdict("top byte writable", *top == 9);

    /* A request it cannot satisfy leaves the break where it was. */
    uintptr_t current = raw_brk(0);
    verdict("absurd brk refused", raw_brk(current + ((uintptr_t)1 << 46)) == current);
    verdict("brk below start refused", raw_brk(1) == current);
    verdict("back to the start", raw_brk(start) == start);
    return failures ? 1 : 0;
}
