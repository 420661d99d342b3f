/* Warm-up (-w N): before the program is frozen, send it N requests, so what they leave
 * behind (JIT code, caches, lazily built state) is part of the image every fork starts from. */
#ifndef KVMS_WARMUP_H
#define KVMS_WARMUP_H
#include "cli/config.h"
#include "linux/process.h"

/* Arms the warm-up for a booting process: at its first wait for a connection it is not
 * frozen; a thread sends `count` `GET /` requests (HTTP/1.1, Connection: close) to the
 * program's private listener (linux/listener.h), then asks for the freeze at the program's
 * next wait. If it cannot start or connect, the boot fails instead of freezing. */
void warmup_arm(struct lx_proc *p, unsigned count);

#endif
