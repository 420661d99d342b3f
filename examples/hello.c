/* The bundled example `make run` starts: a static program that greets and exits.
 * (It becomes a small HTTP server once the engine serves requests.) */
#include <stdio.h>
#include <sys/utsname.h>

int main(int argc, char **argv)
{
    struct utsname system;
    const char *name = uname(&system) == 0 ? system.sysname : "an unknown system";
    printf("Hello from %s, running on %s!\n", argc > 0 ? argv[0] : "hello", name);
    return 0;
}
