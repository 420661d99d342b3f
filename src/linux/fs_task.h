/* A process's file-system context: the policy its paths go through, and the working
 * directory and umask it starts with, and paths as a chroot shows them. Below fs.c and
 * procfs.c, which both use it. */
#ifndef KVMS_FS_TASK_H
#define KVMS_FS_TASK_H

#include <limits.h>
#include <stdbool.h>

#include "linux/policy.h"

struct lx_proc;

/* The policy of p's configuration. */
const struct fs_policy *fs_policy(const struct lx_proc *p);
/* Sets up p->task.cwd (--cwd, else the host's working directory) and p->task.umask on first use. */
void fs_ready(struct lx_proc *p);
/* A guest path (as the policy sees it) as the program sees it after a chroot: "/" and what
 * lies beneath p->task.root; false, and the path itself, when it lies outside (Linux's
 * /proc links show it so; getcwd puts "(unreachable)" before it). */
bool fs_view(const struct lx_proc *p, const char *path, char out[PATH_MAX]);

#endif
