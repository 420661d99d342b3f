/* The command line: every option kind, the usage errors and their exit status, the
 * configuration file under the command line, --help, and the guest environment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/env.h"
#include "cli/options.h"

/* What the last cli() call printed. */
static char out_text[32768], err_text[4096];

static void read_back(FILE *f, char *buf, size_t size)
{
    rewind(f);
    const size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* Runs cli_parse on a NULL-terminated argv with stdout and stderr captured. */
static int cli_argv(struct config *cfg, char **argv)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    fflush(stdout);
    fflush(stderr);
    FILE *out = tmpfile(), *err = tmpfile();
    assert_non_null(out);
    assert_non_null(err);
    const int saved_out = dup(1), saved_err = dup(2);
    dup2(fileno(out), 1);
    dup2(fileno(err), 2);
    const int status = cli_parse(argc, argv, cfg);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    read_back(out, out_text, sizeof out_text);
    read_back(err, err_text, sizeof err_text);
    return status;
}

#define CLI(cfg, ...) cli_argv(cfg, (char *[]){ "kvmserver", __VA_ARGS__, NULL })

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Every test runs in an empty directory, so no stray kvmserver.toml is read. */
static char test_dir[] = "/tmp/kvms-test-options-XXXXXX";

static int enter_test_dir(void **state)
{
    (void)state;
    if (!mkdtemp(test_dir) || chdir(test_dir) != 0)
        return -1;
    return 0;
}

static int leave_test_dir(void **state)
{
    (void)state;
    unlink("kvmserver.toml");
    unlink("other.toml");
    unlink("bad.toml");
    if (chdir("/") != 0)
        return -1;
    return rmdir(test_dir);
}

static void assert_usage_error(int status, const char *message)
{
    assert_int_equal(status, 2);
    if (!strstr(err_text, message))
        fail_msg("stderr '%s' does not contain '%s'", err_text, message);
    assert_true(strncmp(err_text, "kvmserver: ", 11) == 0);
    assert_non_null(strstr(err_text, "Try 'kvmserver --help'."));
}

static void test_defaults(void **state)
{
    (void)state;
    struct config cfg;
    assert_int_equal(CLI(&cfg, "run", "./prog"), -1);
    assert_string_equal(err_text, "");
    assert_int_equal(cfg.subcommand, SUBCMD_RUN);
    assert_null(cfg.config_file);   /* no kvmserver.toml here */
    assert_false(cfg.print_config);
    assert_null(cfg.cwd);
    assert_int_equal(cfg.env.count, 0);
    assert_int_equal(cfg.threads, 1);
    assert_false(cfg.ephemeral);
    assert_int_equal(cfg.warmup, 0);
    assert_false(cfg.verbose || cfg.verbose_syscalls || cfg.verbose_mmap_syscalls ||
                 cfg.verbose_thread_syscalls || cfg.verbose_pagetables);
    assert_false(cfg.allow_all || cfg.allow_read_set || cfg.allow_write_set ||
                 cfg.allow_env_set || cfg.allow_net_set || cfg.allow_connect_set ||
                 cfg.allow_listen_set);
    assert_true(cfg.max_boot_time == 20.0);
    assert_true(cfg.max_request_time == 8.0);
    assert_true(cfg.shutdown_timeout == 10.0);
    assert_null(cfg.metrics);
    assert_false(cfg.no_seccomp);
    assert_int_equal(cfg.max_main_memory, 8192);
    assert_int_equal(cfg.max_address_space, 122880);
    assert_int_equal(cfg.max_request_memory, 128);
    assert_int_equal(cfg.limit_request_memory, 128);
    assert_int_equal(cfg.shared_memory, 0);
    assert_int_equal(cfg.heap_address_hint, 256);
    assert_int_equal(cfg.hugepage_arena_size, 0);
    assert_int_equal(cfg.hugepage_requests_arena, 0);
    assert_false(cfg.no_executable_heap || cfg.no_mmap_backed_files || cfg.hugepages ||
                 cfg.no_split_hugepages || cfg.transparent_hugepages ||
                 cfg.no_ephemeral_keep_working_memory || cfg.no_ephemeral_clock_skip);
    assert_int_equal(cfg.dylink_address_hint, 2);
    assert_int_equal(cfg.remappings.count, 0);
    assert_int_equal(cfg.volumes.count, 0);
    assert_null(cfg.snapshot_output);
    assert_false(cfg.one_to_one);
    assert_string_equal(cfg.program, "./prog");
    assert_int_equal(cfg.program_argc, 1);
    assert_string_equal(cfg.program_argv[0], "./prog");
    assert_null(cfg.program_argv[1]);
    assert_null(config_unimplemented(&cfg));
    config_free(&cfg);
}

static void test_option_kinds(void **state)
{
    (void)state;
    struct config cfg;
    int status = CLI(&cfg, "-e", "--verbose-syscalls", "--cwd", "/srv", "-w", "3",
                     "--max-boot-time=2.5", "--max-request-time", ".5", "--max-main-memory",
                     "1024", "--heap-address-hint=512", "--no-executable-heap", "--allow-all",
                     "--metrics", "[::1]:9100", "--shutdown-timeout=2.5", "--no-seccomp",
                     "--no-ephemeral-clock-skip", "run", "--dylink-address-hint", "8", "-v", "--env", "A=1", "./prog");
    assert_int_equal(status, -1);
    assert_true(cfg.ephemeral);
    assert_true(cfg.verbose_syscalls);
    assert_true(cfg.verbose);   /* a global option after the subcommand */
    assert_string_equal(cfg.cwd, "/srv");
    assert_int_equal(cfg.warmup, 3);
    assert_true(cfg.max_boot_time == 2.5);
    assert_true(cfg.max_request_time == 0.5);
    assert_int_equal(cfg.max_main_memory, 1024);
    assert_int_equal(cfg.heap_address_hint, 512);
    assert_true(cfg.no_executable_heap);
    assert_true(cfg.allow_all);
    assert_string_equal(cfg.metrics, "[::1]:9100");
    assert_true(cfg.shutdown_timeout == 2.5);
    assert_true(cfg.no_seccomp);
    assert_true(cfg.no_ephemeral_clock_skip);
    assert_int_equal(cfg.dylink_address_hint, 8);
    assert_int_equal(cfg.env.count, 1);
    assert_string_equal(cfg.env.items[0], "A=1");
    config_free(&cfg);
}

static void test_threads_forms(void **state)
{
    (void)state;
    struct config cfg;
    static const char *const forms[][2] = {
        { "-t", "2" }, { "-t2", NULL }, { "--threads", "2" }, { "--threads=2", NULL },
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        char *argv[] = { "kvmserver", (char *)forms[i][0], (char *)forms[i][1], "run", "p", NULL };
        if (!forms[i][1])
            memmove(&argv[2], &argv[3], 3 * sizeof *argv);
        assert_int_equal(cli_argv(&cfg, argv), -1);
        assert_int_equal(cfg.threads, 2);
        assert_string_equal(cfg.program, "p");
        config_free(&cfg);
    }

    assert_int_equal(CLI(&cfg, "-t0", "run", "p"), -1);
    assert_int_equal(cfg.threads, 0);   /* 0 = CPU count, resolved later */
    config_free(&cfg);

    /* The last one wins; grouped short flags with a value at the end. */
    assert_int_equal(CLI(&cfg, "-t", "5", "run", "-evt7", "p"), -1);
    assert_int_equal(cfg.threads, 7);
    assert_true(cfg.ephemeral && cfg.verbose);
    config_free(&cfg);
}

static void test_repeated_lists(void **state)
{
    (void)state;
    struct config cfg;
    assert_int_equal(CLI(&cfg, "--allow-read=/a", "--allow-read=/b,/c", "--env", "A=1",
                         "--env=B=2,3", "--allow-write", "--allow-connect=h:1",
                         "--allow-connect=h:2", "--allow-listen", "--allow-listen=x:1", "run",
                         "--allow-read=/a", "--allow-env", "p"), -1);
    assert_true(cfg.allow_read_set);
    assert_int_equal(cfg.allow_read.count, 3);   /* /a only once */
    assert_string_equal(cfg.allow_read.items[0], "/a");
    assert_string_equal(cfg.allow_read.items[1], "/b");
    assert_string_equal(cfg.allow_read.items[2], "/c");
    assert_int_equal(cfg.env.count, 2);
    assert_string_equal(cfg.env.items[1], "B=2,3");   /* --env values are not split */
    assert_true(cfg.allow_write_set);
    assert_int_equal(cfg.allow_write.count, 1);
    assert_string_equal(cfg.allow_write.items[0], "/");   /* bare = "/" */
    assert_true(cfg.allow_env_set);
    assert_string_equal(cfg.allow_env.items[0], "*");      /* bare = all */
    assert_int_equal(cfg.allow_connect.count, 2);
    assert_true(cfg.allow_listen_set);
    assert_int_equal(cfg.allow_listen.count, 0);           /* bare = any address */
    assert_false(cfg.allow_net_set);
    config_free(&cfg);
}

static void test_optional_values_need_equals(void **state)
{
    (void)state;
    struct config cfg;
    /* The word after a bare --allow-read is not its value: here it is PROGRAM. */
    assert_int_equal(CLI(&cfg, "run", "--allow-read", "./prog", "x"), -1);
    assert_true(cfg.allow_read_set);
    assert_string_equal(cfg.allow_read.items[0], "/");
    assert_string_equal(cfg.program, "./prog");
    assert_int_equal(cfg.program_argc, 2);
    config_free(&cfg);

    assert_usage_error(CLI(&cfg, "--allow-read", "/data", "run", "p"),
                       "unknown subcommand '/data'");
    config_free(&cfg);
    assert_usage_error(CLI(&cfg, "--allow-read=", "run", "p"), "option '--allow-read': empty item");
    config_free(&cfg);
    assert_usage_error(CLI(&cfg, "--allow-env=A*B", "run", "p"),
                       "option '--allow-env': 'A*B': '*' may only end a name");
    config_free(&cfg);
}

static void test_program_arguments_are_not_parsed(void **state)
{
    (void)state;
    struct config cfg;
    assert_int_equal(CLI(&cfg, "-t", "1", "run", "./prog", "-t", "9", "--bogus", "--help",
                         "run"), -1);
    assert_int_equal(cfg.threads, 1);
    assert_int_equal(cfg.program_argc, 6);
    assert_string_equal(cfg.program_argv[0], "./prog");
    assert_string_equal(cfg.program_argv[1], "-t");
    assert_string_equal(cfg.program_argv[2], "9");
    assert_string_equal(cfg.program_argv[3], "--bogus");
    assert_string_equal(cfg.program_argv[4], "--help");
    assert_string_equal(cfg.program_argv[5], "run");
    assert_null(cfg.program_argv[6]);
    assert_string_equal(out_text, "");   /* --help belonged to the program */
    config_free(&cfg);

    /* "--" lets PROGRAM start with a dash. */
    assert_int_equal(CLI(&cfg, "run", "--", "-prog", "-x"), -1);
    assert_string_equal(cfg.program, "-prog");
    assert_int_equal(cfg.program_argc, 2);
    config_free(&cfg);
}

static void test_env_takes_several_values(void **state)
{
    (void)state;
    struct config cfg;
    assert_int_equal(CLI(&cfg, "--env", "A=1", "B_2=two", "run", "--env=C=3", "D=4", "./prog",
                         "E=5"), -1);
    assert_int_equal(cfg.env.count, 4);
    assert_string_equal(cfg.env.items[0], "A=1");
    assert_string_equal(cfg.env.items[1], "B_2=two");
    assert_string_equal(cfg.env.items[2], "C=3");
    assert_string_equal(cfg.env.items[3], "D=4");
    assert_string_equal(cfg.program, "./prog");
    assert_string_equal(cfg.program_argv[1], "E=5");
    config_free(&cfg);
    assert_usage_error(CLI(&cfg, "--env", "NOVALUE", "run", "p"),
                       "option '--env': 'NOVALUE': expected NAME=VALUE");
    config_free(&cfg);
}

static void test_usage_errors(void **state)
{
    (void)state;
    struct config cfg;
    static const struct { const char *args[6]; const char *message; } cases[] = {
        { { "--bogus", "run", "p" }, "unknown option '--bogus'" },
        { { "run", "--bogus=1", "p" }, "unknown option '--bogus'" },
        { { "-x", "run", "p" }, "unknown option '-x'" },
        { { "-t", "abc", "run", "p" }, "option '--threads': 'abc' is not a non-negative integer" },
        { { "--metrics", "9100", "run", "p" }, "option '--metrics': expected HOST:PORT" },
        { { "--metrics=:http", "run", "p" }, "option '--metrics': the port must be a number from 0 to 65535" },
        { { "--metrics=h:65536", "run", "p" }, "option '--metrics': the port must be a number from 0 to 65535" },
        { { "--shutdown-timeout=-1", "run", "p" }, "option '--shutdown-timeout': '-1' is not a number of seconds" },
        { { "-t-1", "run", "p" }, "option '--threads': '-1' is not a non-negative integer" },
        { { "--threads=", "run", "p" }, "option '--threads': '' is not a non-negative integer" },
        { { "--threads=4294967296", "run", "p" }, "option '--threads': '4294967296' is too large" },
        { { "-w", "1.5", "run", "p" }, "option '--warmup': '1.5' is not a non-negative integer" },
        { { "--max-main-memory=12x", "run", "p" }, "option '--max-main-memory': '12x' is not a non-negative integer" },
        { { "--max-main-memory=99999999999999999999", "run", "p" }, "option '--max-main-memory': '99999999999999999999' is too large" },
        { { "--max-boot-time", "-1", "run", "p" }, "option '--max-boot-time': '-1' is not a number of seconds" },
        { { "--max-boot-time=1e3", "run", "p" }, "option '--max-boot-time': '1e3' is not a number of seconds" },
        { { "--max-boot-time=.", "run", "p" }, "option '--max-boot-time': '.' is not a number of seconds" },
        { { "--max-boot-time=2000000000", "run", "p" }, "option '--max-boot-time': 2e+09 is too large" },
        { { "--cwd" }, "option '--cwd' needs a value" },
        { { "run", "-t" }, "option '-t' needs a value" },
        { { "--cwd=", "run", "p" }, "option '--cwd': must not be empty" },
        { { "--verbose=yes", "run", "p" }, "option '--verbose' takes no value" },
        { { "--help=x" }, "option '--help' takes no value" },
        { { "run" }, "missing PROGRAM after 'run'" },
        { { "-t", "2" }, "missing subcommand" },
        { { "serve", "p" }, "unknown subcommand 'serve'" },
        { { "--", "run", "p" }, "'--' must follow the subcommand" },
        { { "--remapping", "1:2", "run", "p" }, "option '--remapping' must follow the 'run' subcommand" },
        { { "snapshot", "--remapping=1:2", "p" }, "option '--remapping' is not valid for 'snapshot'" },
        { { "run", "-o", "f", "p" }, "option '-o' is not valid for 'run'" },
        { { "run", "--1-to-1", "p" }, "option '--1-to-1' is not valid for 'run'" },
        { { "snapshot", "p" }, "snapshot needs -o FILE" },
        { { "snaprun" }, "snaprun needs a snapshot FILE" },
        { { "snaprun", "f", "x" }, "snaprun takes only the snapshot FILE, not 'x'" },
        { { "--volume", "/only", "run", "p" }, "option '--volume': '/only': expected HOST:GUEST[:r|rw]" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[8] = { "kvmserver" };
        for (size_t j = 0; j < 6 && cases[i].args[j]; j++)
            argv[j + 1] = (char *)cases[i].args[j];
        const int status = cli_argv(&cfg, argv);
        if (status != 2 || !strstr(err_text, cases[i].message))
            fail_msg("case %zu (%s ...): status %d, stderr '%s', expected '%s'", i,
                     cases[i].args[0], status, err_text, cases[i].message);
        assert_usage_error(status, cases[i].message);
        config_free(&cfg);
    }
    assert_int_equal(cli_argv(&cfg, (char *[]){ "kvmserver", NULL }), 2);
    assert_usage_error(2, "missing subcommand");
    config_free(&cfg);
}

static void test_subcommands(void **state)
{
    (void)state;
    struct config cfg;
    assert_int_equal(CLI(&cfg, "snapshot", "-o", "out.snap", "./prog", "a"), -1);
    assert_int_equal(cfg.subcommand, SUBCMD_SNAPSHOT);
    assert_string_equal(cfg.snapshot_output, "out.snap");
    assert_int_equal(cfg.program_argc, 2);
    assert_null(config_unimplemented(&cfg));
    config_free(&cfg);

    assert_int_equal(CLI(&cfg, "snapshot", "--output=o2", "p"), -1);
    assert_string_equal(cfg.snapshot_output, "o2");
    config_free(&cfg);

    assert_int_equal(CLI(&cfg, "snaprun", "file.snap"), -1);
    assert_int_equal(cfg.subcommand, SUBCMD_SNAPRUN);
    assert_string_equal(cfg.program, "file.snap");
    assert_null(config_unimplemented(&cfg));
    config_free(&cfg);

    /* storage: the part before "++ run" is the storage program's. */
    assert_int_equal(CLI(&cfg, "storage", "./store", "-x", "++", "run", "./prog", "a"), -1);
    assert_int_equal(cfg.subcommand, SUBCMD_STORAGE);
    assert_int_equal(cfg.storage_argc, 2);
    assert_string_equal(cfg.storage_argv[0], "./store");
    assert_string_equal(cfg.storage_argv[1], "-x");
    assert_null(cfg.storage_argv[2]);
    assert_int_equal(cfg.program_argc, 2);
    assert_string_equal(cfg.program, "./prog");
    assert_string_equal(cfg.program_argv[1], "a");
    assert_null(cfg.program_argv[2]);
    assert_null(config_unimplemented(&cfg));
    config_free(&cfg);

    assert_int_equal(CLI(&cfg, "storage", "--1-to-1", "./store", "++", "run", "./prog"), -1);
    assert_true(cfg.one_to_one);
    assert_null(config_unimplemented(&cfg));
    config_free(&cfg);

    /* --print-config needs no subcommand or program. */
    assert_int_equal(CLI(&cfg, "--print-config", "-t", "3"), -1);
    assert_true(cfg.print_config);
    assert_int_equal(cfg.subcommand, SUBCMD_NONE);
    assert_int_equal(cfg.threads, 3);
    config_free(&cfg);
}

static void test_unimplemented(void **state)
{
    (void)state;
    static const struct { const char *option; const char *message; } cases[] = {
        { "--shared-memory=1", "--shared-memory is not implemented yet" },
        { "--hugepages", "--hugepages is not implemented yet" },
        { "--hugepage-arena-size=2", "--hugepage-arena-size is not implemented yet" },
        { "--hugepage-requests-arena=2", "--hugepage-requests-arena is not implemented yet" },
        { "--transparent-hugepages", "--transparent-hugepages is not implemented yet" },
        { "--remapping=0x1000:0x1000", "--remapping is not implemented yet" },
        { "--volume=/h:/g:rw", NULL },       /* implemented (linux/policy.c) */
        { "--shared-memory=0", NULL },   /* 0 is the default: nothing requested */
        { "--max-main-memory=64", NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct config cfg;
        char *argv[] = { "kvmserver", "run", (char *)cases[i].option, "p", NULL };
        assert_int_equal(cli_argv(&cfg, argv), -1);
        const char *message = config_unimplemented(&cfg);
        if (cases[i].message)
            assert_string_equal(message, cases[i].message);
        else
            assert_null(message);
        config_free(&cfg);
    }
}

static void test_config_file_then_command_line(void **state)
{
    (void)state;
    struct config cfg;
    write_file("other.toml", "threads = 4\nephemeral = true\nenv = [\"A=1\"]\n"
                             "allow-read = [\"/data\", \"/etc\"]\nmax-boot-time = 5\n"
                             "[run]\nwarmup = 10\n");
    assert_int_equal(CLI(&cfg, "-c", "other.toml", "-t", "7", "run", "--allow-read=/cli",
                         "--allow-read=/cli2", "p"), -1);
    assert_string_equal(cfg.config_file, "other.toml");
    assert_int_equal(cfg.threads, 7);                 /* the command line wins */
    assert_true(cfg.ephemeral);                       /* from the file */
    assert_true(cfg.max_boot_time == 5.0);
    assert_int_equal(cfg.warmup, 10);                 /* [run] applies to run */
    assert_int_equal(cfg.env.count, 1);               /* untouched file list */
    assert_int_equal(cfg.allow_read.count, 2);        /* replaced by the command line's */
    assert_string_equal(cfg.allow_read.items[0], "/cli");
    assert_string_equal(cfg.allow_read.items[1], "/cli2");
    config_free(&cfg);

    /* The [run] section does not apply to another subcommand. */
    assert_int_equal(CLI(&cfg, "--config=other.toml", "snapshot", "-o", "s", "p"), -1);
    assert_int_equal(cfg.warmup, 0);
    assert_int_equal(cfg.threads, 4);
    config_free(&cfg);

    /* ./kvmserver.toml is read without -c; -c replaces it. */
    write_file("kvmserver.toml", "threads = 3\n[snapshot]\noutput = \"from-file.snap\"\n");
    assert_int_equal(CLI(&cfg, "snapshot", "p"), -1);
    assert_string_equal(cfg.config_file, "kvmserver.toml");
    assert_int_equal(cfg.threads, 3);
    assert_string_equal(cfg.snapshot_output, "from-file.snap");
    config_free(&cfg);
    assert_int_equal(CLI(&cfg, "-c", "other.toml", "run", "p"), -1);
    assert_int_equal(cfg.threads, 4);
    config_free(&cfg);
    unlink("kvmserver.toml");

    /* An explicit file must exist. */
    assert_int_equal(CLI(&cfg, "-c", "missing.toml", "run", "p"), 2);
    assert_non_null(strstr(err_text, "'missing.toml'"));
    config_free(&cfg);

    /* A bad file: FILE:LINE: message, exit status 2, even when argv sets the key. */
    write_file("bad.toml", "# ok\nthreads = 2\nmax-boot-time = \"soon\"\n");
    assert_int_equal(CLI(&cfg, "-c", "bad.toml", "--max-boot-time=1", "run", "p"), 2);
    assert_string_equal(err_text, "bad.toml:3: 'max-boot-time': expected a number of seconds, "
                                  "not a string\n");
    config_free(&cfg);
    write_file("kvmserver.toml", "threads = 2\nnope = 1\n");
    assert_int_equal(CLI(&cfg, "run", "p"), 2);
    assert_string_equal(err_text, "kvmserver.toml:2: unknown key 'nope'\n");
    config_free(&cfg);
    /* --help does not need a valid file. */
    assert_int_equal(CLI(&cfg, "--help"), 0);
    config_free(&cfg);
    unlink("kvmserver.toml");
}

static void test_print_config(void **state)
{
    (void)state;
    struct config cfg;
    assert_int_equal(CLI(&cfg, "--print-config", "-t", "6", "--env", "X=\"q\"",
                         "--allow-net", "--metrics", "127.0.0.1:9100", "--no-seccomp", "run",
                         "p"), -1);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    config_print(&cfg, out);
    fclose(out);
    assert_non_null(strstr(text, "\nthreads = 6\n"));
    assert_non_null(strstr(text, "\nenv = [\"X=\\\"q\\\"\"]\n"));
    assert_non_null(strstr(text, "\nallow-net = true\n"));
    assert_non_null(strstr(text, "\nallow-read = false\n"));
    assert_non_null(strstr(text, "\nmax-boot-time = 20.0\n"));
    assert_non_null(strstr(text, "\nshutdown-timeout = 10.0\n"));
    assert_non_null(strstr(text, "\nmetrics = \"127.0.0.1:9100\"\n"));
    assert_non_null(strstr(text, "\nno-seccomp = true\n"));
    assert_non_null(strstr(text, "\n[run]\ndylink-address-hint = 2\n"));
    config_free(&cfg);

    /* What it prints is a configuration file giving the same result. */
    write_file("other.toml", text);
    free(text);
    assert_int_equal(CLI(&cfg, "-c", "other.toml", "run", "p"), -1);
    assert_int_equal(cfg.threads, 6);
    assert_string_equal(cfg.env.items[0], "X=\"q\"");
    assert_true(cfg.allow_net_set);
    assert_int_equal(cfg.allow_net.count, 0);
    assert_string_equal(cfg.metrics, "127.0.0.1:9100");
    assert_true(cfg.no_seccomp);
    config_free(&cfg);
}

static void test_help(void **state)
{
    (void)state;
    struct config cfg;
    assert_int_equal(CLI(&cfg, "--help"), 0);
    assert_non_null(strstr(out_text, "Usage: kvmserver [GLOBAL OPTIONS] SUBCOMMAND"));
    assert_non_null(strstr(out_text, "-t, --threads N"));
    assert_null(strstr(out_text, "--verbose-pagetables"));   /* concise */
    assert_string_equal(err_text, "");
    config_free(&cfg);

    assert_int_equal(CLI(&cfg, "run", "-h", "p"), 0);
    assert_non_null(strstr(out_text, "Usage:"));
    config_free(&cfg);

    assert_int_equal(CLI(&cfg, "--help-all"), 0);
    /* Every option users know from the anchor, by its name. */
    static const char *const names[] = {
        "--help", "--help-all", "--config", "--print-config", "--cwd", "--env", "--threads",
        "--ephemeral", "--warmup", "--verbose", "--verbose-syscalls", "--verbose-mmap-syscalls",
        "--verbose-thread-syscalls", "--verbose-pagetables", "--allow-all", "--allow-read[",
        "--allow-write[", "--allow-env[", "--allow-net[", "--allow-connect[", "--allow-listen[",
        "--volume", "--max-boot-time", "--max-request-time", "--max-main-memory",
        "--max-address-space", "--max-request-memory", "--limit-request-memory",
        "--shared-memory", "--heap-address-hint", "--hugepage-arena-size",
        "--hugepage-requests-arena", "--no-executable-heap", "--no-mmap-backed-files",
        "--hugepages", "--no-split-hugepages", "--transparent-hugepages",
        "--no-ephemeral-keep-working-memory", "--no-ephemeral-clock-skip", "--no-seccomp",
        "--dylink-address-hint",
        "--remapping", "--1-to-1", "-o, --output",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strstr(out_text, names[i]))
            fail_msg("--help-all does not list %s", names[i]);
    assert_non_null(strstr(out_text, "(0 = CPU count) [default: 1]"));
    assert_non_null(strstr(out_text, "[default: 20.0]"));
    assert_non_null(strstr(out_text, "[default: 122880]"));
    assert_non_null(strstr(out_text, "[default: kvmserver.toml if present]"));
    config_free(&cfg);
}

/* ---- the guest environment ---- */

static char *host_env[] = {
    "HOME=/root", "API_KEY=k1", "API_URL=u", "APIX=no", "SECRET=s", "PATH=/bin", "NOEQUALS",
    NULL,
};

static size_t env_count(char **env)
{
    size_t n = 0;
    while (env[n])
        n++;
    return n;
}

static char **env_for(struct config *cfg, char **argv)
{
    assert_int_equal(cli_argv(cfg, argv), -1);
    char **env = guest_environ(cfg, host_env, NULL);
    assert_non_null(env);
    return env;
}

#define ENV_FOR(cfg, ...) env_for(cfg, (char *[]){ "kvmserver", __VA_ARGS__, NULL })

static void test_guest_environ(void **state)
{
    (void)state;
    struct config cfg;

    char **env = ENV_FOR(&cfg, "run", "p");   /* the host environment stays out */
    assert_int_equal(env_count(env), 0);
    guest_environ_free(env);
    config_free(&cfg);

    env = ENV_FOR(&cfg, "--env", "A=1", "run", "p");
    assert_int_equal(env_count(env), 1);
    assert_string_equal(env[0], "A=1");
    guest_environ_free(env);
    config_free(&cfg);

    env = ENV_FOR(&cfg, "--allow-env=API_*,PATH", "run", "p");
    assert_int_equal(env_count(env), 3);
    assert_string_equal(env[0], "API_KEY=k1");
    assert_string_equal(env[1], "API_URL=u");
    assert_string_equal(env[2], "PATH=/bin");
    guest_environ_free(env);
    config_free(&cfg);

    env = ENV_FOR(&cfg, "--allow-env=HOM", "run", "p");   /* exact names are not prefixes */
    assert_int_equal(env_count(env), 0);
    guest_environ_free(env);
    config_free(&cfg);

    env = ENV_FOR(&cfg, "--allow-env", "run", "p");   /* bare: everything with a '=' */
    assert_int_equal(env_count(env), 6);
    assert_string_equal(env[0], "HOME=/root");
    guest_environ_free(env);
    config_free(&cfg);

    env = ENV_FOR(&cfg, "--allow-all", "--env", "PATH=/guest", "HOME=/g", "NEW=1", "run", "p");
    assert_int_equal(env_count(env), 7);
    assert_string_equal(env[0], "HOME=/g");      /* replaced in place */
    assert_string_equal(env[5], "PATH=/guest");
    assert_string_equal(env[6], "NEW=1");
    guest_environ_free(env);
    config_free(&cfg);

    env = ENV_FOR(&cfg, "--env", "A=1", "--env", "A=2", "--env", "EMPTY=", "run", "p");
    assert_int_equal(env_count(env), 2);
    assert_string_equal(env[0], "A=2");
    assert_string_equal(env[1], "EMPTY=");
    guest_environ_free(env);
    config_free(&cfg);

    /* Duplicate host entries collapse into the --env value. */
    char *dup_env[] = { "X=1", "Y=2", "X=3", NULL };
    assert_int_equal(CLI(&cfg, "--allow-env=X", "--env", "X=9", "run", "p"), -1);
    env = guest_environ(&cfg, dup_env, NULL);
    assert_int_equal(env_count(env), 1);
    assert_string_equal(env[0], "X=9");
    guest_environ_free(env);
    env = guest_environ(&cfg, NULL, NULL);
    assert_int_equal(env_count(env), 1);
    guest_environ_free(env);
    config_free(&cfg);
}

/* snaprun: the recorded configuration, read back from its --print-config text, narrowed. */
static bool narrowed(struct config *run, const char *const *snapshot_args, size_t n,
                     char *err, size_t errlen)
{
    char *argv[16] = { "kvmserver" };
    for (size_t i = 0; i < n; i++)
        argv[i + 1] = (char *)snapshot_args[i];
    struct config taken;
    assert_int_equal(cli_argv(&taken, argv), -1);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    config_print(&taken, out);
    fclose(out);
    config_free(&taken);
    struct config rec;
    config_defaults(&rec);
    rec.subcommand = SUBCMD_SNAPSHOT;
    assert_true(config_apply_toml(&rec, "recorded", text, len, err, errlen));
    free(text);
    bool ok = config_narrow(run, &rec, err, errlen);
    config_free(&rec);
    return ok;
}

static void test_snaprun_narrows_the_recorded_policy(void **state)
{
    (void)state;
    static const char *const taken[] = { "-e", "--allow-read=/srv", "--allow-listen=:8000",
                                         "--max-request-memory=64", "--cwd=/srv",
                                         "snapshot", "-o", "s", "p" };
    const size_t n = sizeof taken / sizeof taken[0];
    char err[256];
    struct config run;
    assert_int_equal(CLI(&run, "-t", "3", "--max-request-memory=32", "snaprun", "s"), -1);
    assert_true(narrowed(&run, taken, n, err, sizeof err));
    assert_true(run.ephemeral);
    assert_int_equal(run.threads, 3);
    assert_int_equal(run.max_request_memory, 32);
    assert_true(run.allow_read_set);
    assert_int_equal(run.allow_read.count, 1);
    assert_string_equal(run.allow_read.items[0], "/srv");
    assert_string_equal(run.cwd, "/srv");
    config_free(&run);

    assert_int_equal(CLI(&run, "--allow-read=/srv", "--allow-listen=:8000", "snaprun", "s"), -1);
    assert_true(narrowed(&run, taken, n, err, sizeof err));
    config_free(&run);

    static char *const widen[][2] = {
        { "--allow-read=/", "--allow-read differs" },
        { "--allow-write", "--allow-write differs" },
        { "--allow-all", "--allow-all would widen" },
        { "--max-request-memory=65", "--max-request-memory would widen" },
        { "--max-request-time=0", "--max-request-time would widen" },
        { "--volume=/a:/b", "--volume, --env and --cwd" },
        { "-w2", "-w has no effect" },
    };
    for (size_t i = 0; i < sizeof widen / sizeof widen[0]; i++) {
        assert_int_equal(CLI(&run, widen[i][0], "snaprun", "s"), -1);
        assert_false(narrowed(&run, taken, n, err, sizeof err));
        if (!strstr(err, widen[i][1]))
            fail_msg("%s: '%s' does not say '%s'", widen[i][0], err, widen[i][1]);
        config_free(&run);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_option_kinds),
        cmocka_unit_test(test_threads_forms),
        cmocka_unit_test(test_repeated_lists),
        cmocka_unit_test(test_optional_values_need_equals),
        cmocka_unit_test(test_program_arguments_are_not_parsed),
        cmocka_unit_test(test_env_takes_several_values),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_subcommands),
        cmocka_unit_test(test_unimplemented),
        cmocka_unit_test(test_config_file_then_command_line),
        cmocka_unit_test(test_print_config),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_guest_environ),
        cmocka_unit_test(test_snaprun_narrows_the_recorded_policy),
    };
    return cmocka_run_group_tests(tests, enter_test_dir, leave_test_dir);
}
