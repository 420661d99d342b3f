/* Needs a second shared library (libm) besides libc: ld.so opens and maps both. Inputs come
 * from argv-derived volatiles so the compiler cannot fold the calls away. */
#include <math.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    (void)argv;
    volatile double x = 0.5 + argc;
    printf("cos=%.17g\n", cos(x));
    printf("exp=%.17g\n", exp(x));
    printf("log=%.17g\n", log(x));
    printf("pow=%.17g\n", pow(x, 2.5));
    printf("atan2=%.17g\n", atan2(x, 3.0));
    return 0;
}
