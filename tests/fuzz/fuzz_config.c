/* libFuzzer target for the configuration layer (src/cli): the input is a kvmserver.toml,
 * or, after a first byte of 0, a NUL-separated command line. Besides memory errors, checks
 * what config_print promises: a file it accepted prints as a file that reads back to the
 * same configuration (printed again, the same text). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/options.h"

static void require(int ok)
{
    if (!ok)
        abort();
}

static char *printed(const struct config *cfg, size_t *len)
{
    char *text = NULL;
    FILE *out = open_memstream(&text, len);
    require(out != NULL);
    config_print(cfg, out);
    require(fclose(out) == 0);
    return text;
}

static void fuzz_toml(const char *text, size_t len)
{
    struct config cfg;
    char err[512];
    config_defaults(&cfg);
    if (config_apply_toml(&cfg, "fuzz.toml", text, len, err, sizeof err)) {
        size_t n1, n2;
        char *once = printed(&cfg, &n1);
        struct config again;
        config_defaults(&again);
        require(config_apply_toml(&again, "printed.toml", once, n1, err, sizeof err));
        char *twice = printed(&again, &n2);
        require(n1 == n2 && memcmp(once, twice, n1) == 0);
        free(once);
        free(twice);
        config_free(&again);
    } else {
        require(strlen(err) > 0);
    }
    config_free(&cfg);
}

static void fuzz_argv(const char *text, size_t len)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = "kvmserver";
    for (size_t at = 0; at < len && argc < 63;) {
        const char *arg = text + at;
        size_t n = strnlen(arg, len - at);
        /* A configuration file would be read from the host: a file's text is fuzzed above. */
        if (strncmp(arg, "-c", 2) == 0 || strncmp(arg, "--c", 3) == 0)
            return;
        argv[argc++] = (char *)arg;
        at += n + 1;
    }
    argv[argc] = NULL;
    struct config cfg;
    int rc = cli_parse(argc, argv, &cfg);
    require(rc == -1 || rc == 0 || rc == CLI_USAGE_ERROR);
    config_free(&cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Both parsers take NUL-terminated text in the end: one copy that ends in NUL. */
    char *text = malloc(size + 1);
    require(text != NULL);
    memcpy(text, data, size);
    text[size] = 0;
    if (size > 0 && data[0] == 0)
        fuzz_argv(text + 1, size - 1);
    else
        fuzz_toml(text, size);
    free(text);
    return 0;
}
