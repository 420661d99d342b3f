/* A process's file-system context (see fs_task.h). */
#include "linux/fs_task.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "linux/process.h"

const struct fs_policy *fs_policy(const struct lx_proc *p)
{
    static const struct fs_policy none;     /* nothing allowed */
    return p->env ? &p->env->fs : &none;
}

/* The umask kvmserver itself was started with, which the guest inherits (read from the
 * host's status file: umask() cannot be read without being set, racing other threads). */
static unsigned host_umask(void)
{
    unsigned mask = 022;
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return mask;
    char line[256];
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Umask: %o", &mask) == 1)
            break;
    fclose(f);
    return mask & 0777;
}

void fs_ready(struct lx_proc *p)
{
    if (p->task.cwd[0])
        return;
    p->task.umask = host_umask();
    char host[PATH_MAX];
    const char *first_cwd = p->env ? p->env->cwd : NULL;
    if (!getcwd(host, sizeof host))
        strcpy(host, "/");
    if (fsp_absolute(p->task.cwd, sizeof p->task.cwd, host, first_cwd ? first_cwd : ".") ||
        fsp_lexical(p->task.cwd, sizeof p->task.cwd, strcpy(host, p->task.cwd)))
        strcpy(p->task.cwd, "/");
}

/* What follows `dir` in `path` ("" for dir itself, "/x..." beneath it), or NULL when path
 * lies elsewhere (both normalised absolute paths). */
static const char *beneath(const char *dir, const char *path)
{
    size_t n = strlen(dir);
    if (strcmp(dir, "/") == 0)
        return path[1] ? path : "";
    return strncmp(path, dir, n) == 0 && (path[n] == 0 || path[n] == '/') ? path + n : NULL;
}

bool fs_view(const struct lx_proc *p, const char *path, char out[PATH_MAX])
{
    const char *rest = p->task.root[0] ? beneath(p->task.root, path) : path;
    snprintf(out, PATH_MAX, "%s", !rest ? path : rest[0] ? rest : "/");
    return rest != NULL;
}
