/* Warm-up (-w N): before the program is frozen, send it N requests, so what they leave
 * behind (JIT code, caches, lazily built state) is part of the image every fork starts from. */
#ifndef KVMS_WARMUP_H
#define KVMS_WARMUP_H
#include <pthread.h>

#include "cli/config.h"
#include "linux/process.h"

struct warmup;

/* A boot's way to its freeze (the personality's struct lx_freeze_hooks). The warm-up thread
 * writes it (atomic accesses, or under `lock`), so it outlives the booted process: the
 * booted program's. */
struct boot_freeze {
    bool due;               /* a wait for a connection freezes the program */
    bool warmup_failed;     /* the warm-up could not reach the program's listener */
    uint32_t warmup_port;   /* the loopback port its connections come from */
    struct warmup *warmup;  /* armed and not started yet: NULL without one */
    pthread_mutex_t lock;   /* the pauses after each warm-up request: */
    pthread_cond_t quiet;   /* signalled when the program is seen quiet */
    bool pausing;           /* the warm-up runs and waits for that after each request */
    unsigned quiet_accepted;    /* connections taken when it last was */
    bool quiet_woke;            /* ...and whether it had woken a thread since the time before */
};

/* The boot freezes p at its first wait for a connection (unless a warm-up is armed). */
void boot_freeze_install(struct boot_freeze *f, struct lx_proc *p);
/* Arms the warm-up for a booting process: at its first wait for a connection it is not
 * frozen; a thread sends `count` `GET /` requests (of the shapes real clients send, both
 * ways of ending a connection) to the program's private listener (linux/listener.h), one
 * at a time, each once the program is quiet after the one before, then asks for the freeze
 * at the program's next wait. Where the program's helper threads were given work by recent
 * requests and not by the last one, a few more requests follow, until one does (see
 * warmup.c: the freeze then comes after a garbage collection). If it cannot start or
 * connect, the boot fails instead of freezing. */
void warmup_arm(struct boot_freeze *f, unsigned count);

#endif
