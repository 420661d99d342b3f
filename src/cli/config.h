/* The effective configuration: command line and kvmserver.toml reduced to plain data. Only
 * main.c and the server layer read it; the server hands the engine its vm_params and the
 * personality its struct lx_env (server/lx_env.c), so vm/ and linux/ never see it. */
#ifndef KVMS_CONFIG_H
#define KVMS_CONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str_list.h"

enum subcommand { SUBCMD_NONE, SUBCMD_RUN, SUBCMD_STORAGE, SUBCMD_SNAPSHOT, SUBCMD_SNAPRUN };

struct config {
    enum subcommand subcommand;
    const char *config_file;       /* -c/--config; NULL = ./kvmserver.toml if present */
    bool print_config;
    const char *cwd;               /* --cwd; NULL = current directory */
    struct str_list env;           /* --env K=V, in order */
    unsigned threads;              /* -t; 0 = CPU count */
    bool ephemeral;                /* -e */
    bool no_ephemeral_clock_skip;  /* -e: request VMs' MONOTONIC counts all time since the
                                    * freeze (server/serve.c) */
    unsigned warmup;               /* -w */
    const char *log_level;         /* --log-level: error|warn|info|debug; NULL = info (-v: debug) */
    const char *log_format;        /* --log-format: text|kv; NULL = text */
    bool profile;                  /* --profile: where a request's time goes (server/profile.h) */
    bool verbose, verbose_syscalls, verbose_mmap_syscalls, verbose_thread_syscalls,
         verbose_pagetables;

    bool allow_all;
    bool allow_read_set, allow_write_set, allow_env_set;  /* flag given at all */
    struct str_list allow_read;    /* bare flag = {"/"} */
    struct str_list allow_write;   /* bare flag = {"/"} */
    struct str_list allow_env;     /* bare flag = {"*"}; entries may end in '*' (prefix) */
    bool allow_net_set, allow_connect_set, allow_listen_set;
    struct str_list allow_net, allow_connect, allow_listen;   /* empty = any address */
    struct str_list volumes;       /* HOST:GUEST[:r|rw] */

    const char *syscall_transport; /* "exit", "shared", "auto"; NULL = auto */
    unsigned syscall_spin_us;      /* shared transport: wait before falling back, default 100 */
    bool no_syscall_rewrite;       /* kvm_pvm: keep `syscall` instructions (syscall_sites.h) */
    bool no_seccomp;               /* no host seccomp filter (server/seccomp.h) */
    double max_boot_time;          /* seconds, default 20 */
    double max_request_time;       /* seconds, default 8 */
    double shutdown_timeout;       /* seconds SIGTERM waits for requests in flight, default 10 */
    const char *metrics;           /* --metrics HOST:PORT; NULL = no metrics listener */
    uint64_t max_main_memory;      /* MiB, default 8192 */
    uint64_t max_address_space;    /* MiB, default 122880 */
    uint64_t max_request_memory;   /* MiB, default 128 */
    uint64_t limit_request_memory; /* MiB, default 128 */
    uint64_t shared_memory;        /* MiB, default 0 */
    uint64_t heap_address_hint;    /* MiB, default 256 */
    uint64_t hugepage_arena_size, hugepage_requests_arena;   /* MiB, default 0 */
    bool no_executable_heap, no_mmap_backed_files, hugepages, no_split_hugepages,
         transparent_hugepages, no_ephemeral_keep_working_memory;

    /* run subcommand */
    uint64_t dylink_address_hint;  /* MiB, default 2 */
    struct str_list remappings;    /* VIRT:SIZE[:PHYS][:rwx] */
    const char *snapshot_output;   /* snapshot -o FILE */
    bool one_to_one;               /* storage --1-to-1 */

    /* storage subcommand: the storage VM's PROGRAM ARGS..., NULL-terminated (before "++ run";
     * program_argv is what follows "run") */
    char **storage_argv;
    int storage_argc;

    const char *program;           /* PROGRAM (or the snapshot file for snaprun) */
    char **program_argv;           /* PROGRAM ARGS..., NULL-terminated (argv[0] = PROGRAM) */
    int program_argc;
};

#endif
