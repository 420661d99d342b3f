/* Loads a library after start-up with dlopen: the same openat/mmap path as at start-up, but
 * into a process that already runs, and a symbol looked up by name. */
#include <dlfcn.h>
#include <stdio.h>

int main(void)
{
    void *libm = dlopen("libm.so.6", RTLD_NOW | RTLD_LOCAL);
    if (!libm) {
        printf("dlopen failed: %s\n", dlerror());
        return 1;
    }
    double (*sqrt_fn)(double) = (double (*)(double))dlsym(libm, "sqrt");
    if (!sqrt_fn) {
        printf("dlsym failed: %s\n", dlerror());
        return 2;
    }
    printf("sqrt(2)=%.17g\n", sqrt_fn(2.0));
    if (dlsym(libm, "no_such_symbol_here"))
        return 3;
    printf("missing symbol: not found, as expected\n");
    if (dlclose(libm) != 0)
        return 4;
    void *missing = dlopen("libkvms-does-not-exist.so", RTLD_NOW);
    printf("missing library: %s\n", missing ? "found?" : "not found, as expected");
    return missing ? 5 : 0;
}
