/* The test programs' one-line verdicts: "WHAT: ok|bad", compared with a native run; main
 * returns `failures ? 1 : 0`. */
#ifndef KVMS_TEST_VERDICT_H
#define KVMS_TEST_VERDICT_H
#include <stdio.h>

static int failures;

static void verdict(const char *what, int good)
{
    printf("%s: %s\n", what, good ? "ok" : "bad");
    if (!good)
        failures++;
}

#endif
