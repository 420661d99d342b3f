/* The Linux personality's part of a snapshot file: the frozen process (SNAP_PROC: ids,
 * task, signals, timers, the mm allocator, server state, threads) and its fd table
 * (SNAP_FDS: each fd's kind, flags and what recreates it). Loading makes a master process
 * that never runs: its fds are real host objects holding what the frozen ones held, so
 * that lx_proc_freeze and lx_proc_fork treat it as they treat a booted master. */
#ifndef KVMS_LX_SNAPSHOT_H
#define KVMS_LX_SNAPSHOT_H
#include <stddef.h>

#include "vm/snapfile.h"

struct lx_proc;
struct vm;
struct lx_env;

/* Writes SNAP_PROC and SNAP_FDS of a process after lx_proc_freeze. An fd of a kind that
 * cannot be recreated from a file fails with a message naming the fd and its kind. */
int lx_snapshot_save(struct snap_writer *w, struct lx_proc *p);

/* Checks SNAP_PROC and SNAP_FDS without making anything (the fuzzer's entry): 0 or -1. */
int lx_snapshot_check(const struct snap_reader *r, char *err, size_t errlen);

/* Fills p (zeroed by the caller) from the file, running in `vm`, under env (built from the
 * recorded policy: files and devices are reopened through it, listeners bound only where it
 * allows).
 * Timers and timed waits keep the time they had left. 0, or -1 with err. */
int lx_snapshot_load(const struct snap_reader *r, struct lx_proc *p, struct vm *vm,
                     const struct lx_env *env, char *err, size_t errlen);

#endif
