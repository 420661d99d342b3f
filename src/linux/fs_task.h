/* A process's file-system context: the policy its paths go through, and the working
 * directory and umask it starts with. Below fs.c and procfs.c, which both use it. */
#ifndef KVMS_FS_TASK_H
#define KVMS_FS_TASK_H

#include "linux/policy.h"

struct lx_proc;

/* The policy of p's configuration. */
const struct fs_policy *fs_policy(const struct lx_proc *p);
/* Sets up p->task.cwd (--cwd, else the host's working directory) and p->task.umask on first use. */
void fs_ready(struct lx_proc *p);

#endif
