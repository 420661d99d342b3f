/* getrandom: fills the buffer, two calls differ, flags accepted, bad flags rejected. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "verdict.h"

static int nonzero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 1;
    return 0;
}

int main(void)
{
    unsigned char a[64], b[64];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    verdict("getrandom 64 bytes", getrandom(a, sizeof a, 0) == (ssize_t)sizeof a);
    verdict("getrandom again", getrandom(b, sizeof b, 0) == (ssize_t)sizeof b);
    verdict("not all zero", nonzero(a, sizeof a) && nonzero(b, sizeof b));
    verdict("two calls differ", memcmp(a, b, sizeof a) != 0);
    /* Every byte position gets written: the last 8 bytes of each call are not all zero. */
    verdict("tail filled", nonzero(a + 56, 8) && nonzero(b + 56, 8));
    verdict("GRND_NONBLOCK", getrandom(a, 16, GRND_NONBLOCK) == 16);
    verdict("length 0 returns 0", getrandom(a, 0, 0) == 0);
    static unsigned char big[65536];
    ssize_t got = getrandom(big, sizeof big, 0);
    verdict("64 KiB request fills something", got > 0 && got <= (ssize_t)sizeof big);
    errno = 0;
    verdict("unknown flag -> EINVAL", getrandom(a, 16, 0x4000) == -1 && errno == EINVAL);
    verdict("getentropy", getentropy(a, 32) == 0);
    return failures ? 1 : 0;
}
