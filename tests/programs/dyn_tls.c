/* Thread-local storage set up by ld.so rather than by static start-up code: initialised and
 * zeroed variables of the program and libc's own (errno), and %fs pointing at the TCB. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "verdict.h"

static __thread int initialised = 42;
static __thread char zeroed_block[4096];
static _Alignas(64) __thread unsigned char aligned_64[64] = {1, 2, 3};

static __attribute__((noinline)) int *address_of_initialised(void) { return &initialised; }

int main(void)
{
    verdict("initialised", *address_of_initialised() == 42);
    int zero = 1;
    for (size_t i = 0; i < sizeof zeroed_block; i++)
        zero &= zeroed_block[i] == 0;
    verdict("zeroed", zero);
    verdict("aligned", ((uintptr_t)aligned_64 % 64) == 0 && aligned_64[2] == 3);
    errno = 0;
    verdict("errno from libc", close(-1) == -1 && errno == EBADF);
    void *tcb;
    __asm__("mov %%fs:0, %0" : "=r"(tcb));
    verdict("tcb self-pointer", tcb != NULL);
    memset(zeroed_block, 7, sizeof zeroed_block);
    verdict("tls writable", zeroed_block[4095] == 7);
    return failures;
}
