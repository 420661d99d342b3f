/* The TOML subset: value parsing, document structure, and whole kvmserver.toml files applied
 * to a config (good ones with the fields they set, bad ones with the FILE:LINE: error). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/options.h"
#include "cli/toml.h"

/* ---- single values ---- */

static void test_values_good(void **state)
{
    (void)state;
    struct toml_value v;
    char err[256];

    assert_true(toml_parse_value(" \"a\\tb\\\"c\\\\d\\u00e9\\U0001F600\" # note", &v, err,
                                 sizeof err));
    assert_int_equal(v.type, TOML_STRING);
    assert_string_equal(v.string, "a\tb\"c\\d\xc3\xa9\xf0\x9f\x98\x80");
    toml_value_free(&v);

    assert_true(toml_parse_value("'C:\\path # not a comment'", &v, err, sizeof err));
    assert_int_equal(v.type, TOML_STRING);
    assert_string_equal(v.string, "C:\\path # not a comment");
    toml_value_free(&v);

    assert_true(toml_parse_value("\"x ; y\"", &v, err, sizeof err));
    assert_string_equal(v.string, "x ; y");
    toml_value_free(&v);

    assert_true(toml_parse_value("\"\"", &v, err, sizeof err));
    assert_string_equal(v.string, "");
    toml_value_free(&v);

    assert_true(toml_parse_value("true", &v, err, sizeof err));
    assert_int_equal(v.type, TOML_BOOL);
    assert_true(v.boolean);
    assert_true(toml_parse_value("false#c", &v, err, sizeof err));
    assert_int_equal(v.type, TOML_BOOL);
    assert_false(v.boolean);

    assert_true(toml_parse_value("122_880", &v, err, sizeof err));
    assert_int_equal(v.type, TOML_INTEGER);
    assert_int_equal(v.integer, 122880);
    assert_true(toml_parse_value("-42", &v, err, sizeof err));
    assert_int_equal(v.integer, -42);
    assert_true(toml_parse_value("+7", &v, err, sizeof err));
    assert_int_equal(v.integer, 7);
    assert_true(toml_parse_value("0", &v, err, sizeof err));
    assert_int_equal(v.integer, 0);
    assert_true(toml_parse_value("9223372036854775807", &v, err, sizeof err));
    assert_true(v.integer == INT64_MAX);
    assert_true(toml_parse_value("-9223372036854775808", &v, err, sizeof err));
    assert_true(v.integer == INT64_MIN);

    assert_true(toml_parse_value("2.5", &v, err, sizeof err));
    assert_int_equal(v.type, TOML_DECIMAL);
    assert_true(v.decimal == 2.5);
    assert_true(toml_parse_value("1e3", &v, err, sizeof err));
    assert_int_equal(v.type, TOML_DECIMAL);
    assert_true(v.decimal == 1000.0);
    assert_true(toml_parse_value("0.125", &v, err, sizeof err));
    assert_true(v.decimal == 0.125);

    assert_true(toml_parse_value("[ \"a\", 'b,c' ,\"\\\"\", ] # list", &v, err, sizeof err));
    assert_int_equal(v.type, TOML_ARRAY);
    assert_int_equal(v.array.count, 3);
    assert_string_equal(v.array.items[0], "a");
    assert_string_equal(v.array.items[1], "b,c");
    assert_string_equal(v.array.items[2], "\"");
    toml_value_free(&v);

    assert_true(toml_parse_value("[]", &v, err, sizeof err));
    assert_int_equal(v.type, TOML_ARRAY);
    assert_int_equal(v.array.count, 0);
    toml_value_free(&v);
}

static void test_values_bad(void **state)
{
    (void)state;
    static const struct { const char *text, *error; } cases[] = {
        { "", "missing value" },
        { "   # only a comment", "missing value" },
        { "hello", "invalid value (strings need quotes)" },
        { "\"open", "unterminated string" },
        { "'open", "unterminated string" },
        { "\"a\" \"b\"", "unexpected text after the value" },
        { "1 2", "unexpected text after the value" },
        { "\"\"\"multi\"\"\"", "multi-line strings are not supported" },
        { "'''multi'''", "multi-line strings are not supported" },
        { "\"bad \\q\"", "invalid escape '\\q' in string" },
        { "\"\\u12\"", "\\u needs 4 hex digits" },
        { "\"\\uD800\"", "\\u escape is not a Unicode scalar value" },
        { "\"\\U00110000\"", "\\U escape is not a Unicode scalar value" },
        { "\"\\u0000\"", "NUL characters are not allowed in strings" },
        { "\"tab\tok but bell\a\"", "control character in a string (write it as an escape)" },
        { "007", "leading zeros are not allowed in numbers" },
        { "1__0", "invalid number" },
        { "_1", "invalid value (strings need quotes)" },
        { "1_", "invalid number" },
        { "1.", "invalid decimal number" },
        { ".5", "invalid value (strings need quotes)" },
        { "1e", "invalid exponent" },
        { "1e999", "decimal number out of range" },
        { "9223372036854775808", "integer out of range" },
        { "-9223372036854775809", "integer out of range" },
        { "0x10", "invalid number" },
        { "inf", "invalid value (strings need quotes)" },
        { "1979-05-27", "invalid number" },
        { "truth", "invalid value (strings need quotes)" },
        { "{ a = 1 }", "inline tables are not supported" },
        { "[1, 2]", "arrays may only hold strings" },
        { "[\"a\" \"b\"]", "expected ',' or ']' in array" },
        { "[\"a\",", "unterminated array (arrays must be on one line)" },
        { "[\"a\" # c ]", "unterminated array (arrays must be on one line)" },
        { "[[\"a\"]]", "arrays may only hold strings" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct toml_value v;
        char err[256] = "";
        if (toml_parse_value(cases[i].text, &v, err, sizeof err))
            fail_msg("accepted bad value <%s>", cases[i].text);
        if (strcmp(err, cases[i].error) != 0)
            fail_msg("value <%s>: error '%s', expected '%s'", cases[i].text, err,
                     cases[i].error);
        assert_null(v.string);   /* nothing left allocated on failure */
        assert_null(v.array.items);
    }
}

/* ---- document structure ---- */

struct recorder {
    char log[1024];
};

static bool record_section(void *user, const char *name, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    struct recorder *r = user;
    size_t n = strlen(r->log);
    snprintf(r->log + n, sizeof r->log - n, "[%s]", name);
    return true;
}

static bool record_entry(void *user, const char *section, const char *key,
                         const struct toml_value *value, char *err, size_t errlen)
{
    struct recorder *r = user;
    if (!strcmp(key, "reject")) {
        snprintf(err, errlen, "rejected by handler");
        return false;
    }
    size_t n = strlen(r->log);
    snprintf(r->log + n, sizeof r->log - n, "%s.%s=%s;", section ? section : "", key,
             value->type == TOML_STRING ? value->string : toml_type_name(value->type));
    return true;
}

static bool parse_document(const char *text, size_t len, struct recorder *r,
                           struct toml_error *e)
{
    memset(r, 0, sizeof *r);
    const struct toml_handler handler = { record_section, record_entry, r };
    return toml_parse(text, len, &handler, e);
}

static void test_document_structure(void **state)
{
    (void)state;
    struct recorder r;
    struct toml_error e;
    const char good[] = "# header\r\n"
                        "  a = \"1\"   \r\n"
                        "\tb_c=true\n"
                        "\n"
                        "[ run ] # section\n"
                        "  d-e = 'x'\n"
                        "[snapshot]\n"
                        "f = 3";   /* no final newline */
    assert_true(parse_document(good, sizeof good - 1, &r, &e));
    assert_string_equal(r.log, ".a=1;.b_c=a boolean;[run]run.d-e=x;[snapshot]snapshot.f=an integer;");
    assert_int_equal(e.line, 0);

    static const struct { const char *text; unsigned line; const char *error; } bad[] = {
        { "a = 1\n[run]\nb = 2\n[run]\n", 4, "section [run] appears twice" },
        { "[a.b]\n", 1, "nested sections are not supported" },
        { "[[run]]\n", 1, "arrays of tables ([[...]]) are not supported" },
        { "[]\n", 1, "malformed section header" },
        { "[run\n", 1, "malformed section header" },
        { "[run] x\n", 1, "unexpected text after the section header" },
        { "\n\na.b = 1\n", 3, "dotted keys are not supported" },
        { "\"a\" = 1\n", 1, "quoted keys are not supported" },
        { "= 1\n", 1, "expected a key" },
        { "a 1\n", 1, "expected '=' after the key" },
        { "a =\n", 1, "missing value" },
        { "ok = 1\nreject = 2\n", 2, "rejected by handler" },
        { "s = \"line\nbreak\"\n", 1, "unterminated string" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (parse_document(bad[i].text, strlen(bad[i].text), &r, &e))
            fail_msg("accepted bad document <%s>", bad[i].text);
        if (e.line != bad[i].line || strcmp(e.message, bad[i].error) != 0)
            fail_msg("document <%s>: line %u '%s', expected line %u '%s'", bad[i].text,
                     e.line, e.message, bad[i].line, bad[i].error);
    }

    const char with_nul[] = "a = 1\nb = \"x\0y\"\n";
    assert_false(parse_document(with_nul, sizeof with_nul - 1, &r, &e));
    assert_int_equal(e.line, 2);
    assert_string_equal(e.message, "NUL byte in the file");

    /* Lines are not length-limited. */
    char long_line[5000];
    memset(long_line, 'x', sizeof long_line);
    memcpy(long_line, "k = \"", 5);
    long_line[sizeof long_line - 2] = '"';
    long_line[sizeof long_line - 1] = '\n';
    assert_true(parse_document(long_line, sizeof long_line, &r, &e));
}

/* ---- whole kvmserver.toml files applied to a config ---- */

static void check_threads_4(const struct config *c) { assert_int_equal(c->threads, 4); }

static void check_mixed(const struct config *c)
{
    assert_true(c->ephemeral);
    assert_false(c->verbose);
    assert_true(c->max_boot_time == 2.5);
    assert_true(c->max_request_time == 3.0);
    assert_int_equal(c->max_main_memory, 1024);
    assert_string_equal(c->cwd, "/srv/app");
    assert_int_equal(c->env.count, 2);
    assert_string_equal(c->env.items[0], "A=1");
    assert_string_equal(c->env.items[1], "B=x,y");
    assert_true(c->allow_read_set);
    assert_int_equal(c->allow_read.count, 2);
    assert_string_equal(c->allow_read.items[0], "/data");
    assert_string_equal(c->allow_read.items[1], "/etc/ssl");
}

static void check_bare_access(const struct config *c)
{
    assert_true(c->allow_read_set);
    assert_int_equal(c->allow_read.count, 1);
    assert_string_equal(c->allow_read.items[0], "/");
    assert_true(c->allow_env_set);
    assert_string_equal(c->allow_env.items[0], "*");
    assert_true(c->allow_net_set);
    assert_int_equal(c->allow_net.count, 0);   /* any address */
    assert_false(c->allow_write_set);          /* false = not given */
    assert_false(c->allow_listen_set);         /* [] = not given */
}

static void check_access_lists(const struct config *c)
{
    assert_int_equal(c->allow_connect.count, 2);
    assert_string_equal(c->allow_connect.items[0], "a:1");
    assert_string_equal(c->allow_connect.items[1], "b:2");
    assert_int_equal(c->allow_env.count, 2);
    assert_string_equal(c->allow_env.items[0], "API_*");
    assert_string_equal(c->allow_env.items[1], "HOME");
}

static void check_run_section(const struct config *c)
{
    assert_int_equal(c->threads, 6);   /* the [run] section overrides the top level */
    assert_int_equal(c->dylink_address_hint, 16);
    assert_int_equal(c->env.count, 2); /* lists add up */
    assert_null(c->snapshot_output);   /* [snapshot] is checked, not applied, for run */
}

static void check_defaults_kept(const struct config *c)
{
    struct config d;
    config_defaults(&d);
    assert_int_equal(c->threads, d.threads);
    assert_true(c->max_boot_time == d.max_boot_time);
    assert_int_equal(c->max_address_space, d.max_address_space);
    assert_int_equal(c->env.count, 0);
}

static void test_config_files(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        void (*check)(const struct config *);   /* NULL: the file must fail with error */
        const char *error;
    } cases[] = {
        { "threads = 4\n", check_threads_4, NULL },
        { "# nothing but comments\n\n   # and blanks\n", check_defaults_kept, NULL },
        { "ephemeral = true\nverbose = false\nmax_boot_time = 2.5\nmax-request-time = 3\n"
          "max-main-memory = 1_024\ncwd = \"/srv/app\"\nenv = [\"A=1\", 'B=x,y']\n"
          "allow-read = \"/data,/etc/ssl\"\n", check_mixed, NULL },
        { "allow-read = true\nallow-env = true\nallow-net = true\nallow-write = false\n"
          "allow-listen = []\n", check_bare_access, NULL },
        { "allow-connect = [\"a:1\", \"b:2\"]\nallow_env = \"API_*,HOME\"\n",
          check_access_lists, NULL },
        { "threads = 2\nenv = \"A=1\"\n[run]\nthreads = 6\ndylink-address-hint = 16\n"
          "env = [\"B=2\"]\n[snapshot]\noutput = \"s.bin\"\nthreads = 9\n",
          check_run_section, NULL },

        { "threads = \"4\"\n", NULL, "t.toml:1: 'threads': expected a non-negative integer, not a string" },
        { "threads = -1\n", NULL, "t.toml:1: 'threads': must not be negative" },
        { "threads = 4294967296\n", NULL, "t.toml:1: 'threads': 4294967296 is too large (at most 4294967295)" },
        { "threads = 1.5\n", NULL, "t.toml:1: 'threads': expected a non-negative integer, not a decimal number" },
        { "max-main-memory = 8796093022208\n", NULL, "t.toml:1: 'max-main-memory': 8796093022208 is too large (at most 8796093022207)" },
        { "max-boot-time = -0.5\n", NULL, "t.toml:1: 'max-boot-time': must not be negative" },
        { "max-boot-time = 1e10\n", NULL, "t.toml:1: 'max-boot-time': 1e+10 is too large (at most 1e+09 seconds)" },
        { "max-boot-time = \"20\"\n", NULL, "t.toml:1: 'max-boot-time': expected a number of seconds, not a string" },
        { "ephemeral = 1\n", NULL, "t.toml:1: 'ephemeral': expected true or false, not an integer" },
        { "cwd = \"\"\n", NULL, "t.toml:1: 'cwd': must not be empty" },
        { "metrics = \"localhost\"\n", NULL, "t.toml:1: 'metrics': expected HOST:PORT" },
        { "metrics = 9100\n", NULL, "t.toml:1: 'metrics': expected a string, not an integer" },
        { "cwd = [\"/a\"]\n", NULL, "t.toml:1: 'cwd': expected a string, not an array" },
        { "env = [\"NOVALUE\"]\n", NULL, "t.toml:1: 'env': 'NOVALUE': expected NAME=VALUE" },
        { "env = true\n", NULL, "t.toml:1: 'env': expected a string or an array of strings, not a boolean" },
        { "allow-read = 5\n", NULL, "t.toml:1: 'allow-read': expected true, false, a string or an array of strings, not an integer" },
        { "allow-read = \"/a,,/b\"\n", NULL, "t.toml:1: 'allow-read': empty item in '/a,,/b'" },
        { "allow-env = [\"A*B\"]\n", NULL, "t.toml:1: 'allow-env': 'A*B': '*' may only end a name (prefix pattern)" },
        { "volume = \"/host\"\n", NULL, "t.toml:1: 'volume': '/host': expected HOST:GUEST[:r|rw]" },
        { "volume = \"/h:/g:x\"\n", NULL, "t.toml:1: 'volume': '/h:/g:x': the access mode must be r or rw" },
        { "\n\nthreds = 4\n", NULL, "t.toml:3: unknown key 'threds'" },
        { "config = \"other.toml\"\n", NULL, "t.toml:1: 'config' cannot be set in a configuration file" },
        { "help = true\n", NULL, "t.toml:1: 'help' cannot be set in a configuration file" },
        { "print_config = true\n", NULL, "t.toml:1: 'print_config' cannot be set in a configuration file" },
        { "threads = 1\nthreads = 2\n", NULL, "t.toml:2: 'threads' is set twice" },
        { "max-boot-time = 1\nmax_boot_time = 2\n", NULL, "t.toml:2: 'max_boot_time' is set twice" },
        { "remapping = [\"1:2\"]\n", NULL, "t.toml:1: 'remapping' belongs in a [run] section" },
        { "[snapshot]\nremapping = \"1:2\"\n", NULL, "t.toml:2: 'remapping' is not an option of [snapshot]" },
        { "[run]\n\n\n1-to-1 = true\n", NULL, "t.toml:4: '1-to-1' is not an option of [run]" },
        { "[snapshot]\nthreads = \"x\"\n", NULL, "t.toml:2: 'threads': expected a non-negative integer, not a string" },
        { "[serve]\n", NULL, "t.toml:1: unknown section [serve] (expected [run], [storage], [snapshot] or [snaprun])" },
        { "threads = 4 5\n", NULL, "t.toml:1: unexpected text after the value" },
        { "env = [\"A=1\",\n  \"B=2\"]\n", NULL, "t.toml:1: unterminated array (arrays must be on one line)" },
        { "threads = 4\n[run]\n[run]\n", NULL, "t.toml:3: section [run] appears twice" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct config cfg;
        config_defaults(&cfg);
        cfg.subcommand = SUBCMD_RUN;
        char err[512] = "";
        const bool ok = config_apply_toml(&cfg, "t.toml", cases[i].text, strlen(cases[i].text),
                                          err, sizeof err);
        if (cases[i].check) {
            if (!ok)
                fail_msg("case %zu rejected: %s", i, err);
            cases[i].check(&cfg);
        } else {
            if (ok)
                fail_msg("case %zu accepted, expected: %s", i, cases[i].error);
            if (strcmp(err, cases[i].error) != 0)
                fail_msg("case %zu: got '%s', expected '%s'", i, err, cases[i].error);
        }
        config_free(&cfg);
    }
}

/* The printed configuration reads back to the same configuration. */
static void test_print_reads_back(void **state)
{
    (void)state;
    struct config cfg;
    config_defaults(&cfg);
    cfg.subcommand = SUBCMD_RUN;
    const char text[] =
        "cwd = \"/srv/\\\"quoted\\\"\\ttab\"\nthreads = 0\nephemeral = true\nwarmup = 12\n"
        "verbose-pagetables = true\nenv = [\"A=1\", \"B=line\\nbreak\"]\nallow-read = true\n"
        "allow-write = [\"/tmp\", \"/var,odd\"]\nallow-env = \"API_*\"\nallow-net = true\n"
        "allow-listen = [\"0.0.0.0:8080\"]\nvolume = \"/h:/g:r\"\nmax-boot-time = 0.1\n"
        "max-request-time = 12.125\nmax-main-memory = 512\nshared-memory = 64\n"
        "metrics = \"0.0.0.0:9100\"\nshutdown-timeout = 30\nno-seccomp = true\n"
        "no-split-hugepages = true\n[run]\ndylink-address-hint = 4\nremapping = [\"1:2\"]\n";
    char err[512];
    assert_true(config_apply_toml(&cfg, "in.toml", text, sizeof text - 1, err, sizeof err));

    char *first = NULL, *second = NULL;
    size_t first_len = 0, second_len = 0;
    FILE *out = open_memstream(&first, &first_len);
    config_print(&cfg, out);
    fclose(out);

    struct config back;
    config_defaults(&back);
    back.subcommand = SUBCMD_RUN;
    if (!config_apply_toml(&back, "printed.toml", first, first_len, err, sizeof err))
        fail_msg("printed configuration does not read back: %s\n%s", err, first);
    out = open_memstream(&second, &second_len);
    config_print(&back, out);
    fclose(out);
    assert_string_equal(first, second);

    assert_string_equal(back.cwd, "/srv/\"quoted\"\ttab");
    assert_int_equal(back.threads, 0);
    assert_int_equal(back.warmup, 12);
    assert_true(back.max_boot_time == 0.1);
    assert_true(back.max_request_time == 12.125);
    assert_string_equal(back.metrics, "0.0.0.0:9100");
    assert_true(back.shutdown_timeout == 30.0);
    assert_true(back.no_seccomp);
    assert_string_equal(back.env.items[1], "B=line\nbreak");
    assert_int_equal(back.allow_write.count, 2);
    assert_string_equal(back.allow_write.items[1], "/var,odd");
    assert_true(back.allow_net_set);
    assert_int_equal(back.allow_net.count, 0);
    assert_false(back.allow_connect_set);
    assert_int_equal(back.dylink_address_hint, 4);
    assert_int_equal(back.remappings.count, 1);
    free(first);
    free(second);
    config_free(&cfg);
    config_free(&back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_good),
        cmocka_unit_test(test_values_bad),
        cmocka_unit_test(test_document_structure),
        cmocka_unit_test(test_config_files),
        cmocka_unit_test(test_print_reads_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
