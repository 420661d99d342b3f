/* snaprun's configuration: the policy recorded in a snapshot, narrowed by the options given
 * to snaprun (see options.h, config_narrow). */
#include "cli/options.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static bool say(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return false;
}

static bool lists_equal(const struct str_list *a, const struct str_list *b)
{
    if (a->count != b->count)
        return false;
    for (size_t i = 0; i < a->count; i++)
        if (strcmp(a->items[i], b->items[i]) != 0)
            return false;
    return true;
}

static bool strings_equal(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

bool config_narrow(struct config *run, struct config *rec, char *err, size_t errlen)
{
    struct config d;
    config_defaults(&d);
#define SAME_ACCESS(set, list, name)                                                          \
    if ((run->set != d.set || run->list.count) &&                                             \
        (run->set != rec->set || !lists_equal(&run->list, &rec->list)))                       \
        return say(err, errlen, "%s differs from the snapshot's policy: snaprun serves with the " \
                   "recorded policy and may only repeat it (see --print-config of snapshot)", name);
    SAME_ACCESS(allow_read_set, allow_read, "--allow-read")
    SAME_ACCESS(allow_write_set, allow_write, "--allow-write")
    SAME_ACCESS(allow_env_set, allow_env, "--allow-env")
    SAME_ACCESS(allow_net_set, allow_net, "--allow-net")
    SAME_ACCESS(allow_connect_set, allow_connect, "--allow-connect")
    SAME_ACCESS(allow_listen_set, allow_listen, "--allow-listen")
#undef SAME_ACCESS
    if (run->allow_all && !rec->allow_all)
        return say(err, errlen, "--allow-all would widen the snapshot's policy");
    if ((run->volumes.count && !lists_equal(&run->volumes, &rec->volumes)) ||
        (run->env.count && !lists_equal(&run->env, &rec->env)) ||
        (run->cwd && !strings_equal(run->cwd, rec->cwd)))
        return say(err, errlen, "--volume, --env and --cwd are in the snapshot already: "
                   "snaprun may only repeat them");
    if (run->warmup)
        return say(err, errlen, "-w has no effect on snaprun: warm up when taking the snapshot");
#define NARROWER(field, name)                                                                 \
    if (run->field != d.field) {                                                              \
        if (run->field == 0 || (rec->field != 0 && run->field > rec->field))                  \
            return say(err, errlen, "%s would widen the snapshot's limit", name);             \
    } else {                                                                                  \
        run->field = rec->field;                                                              \
    }
    NARROWER(max_request_memory, "--max-request-memory")
    NARROWER(limit_request_memory, "--limit-request-memory")
    NARROWER(max_request_time, "--max-request-time")
#undef NARROWER
    run->ephemeral |= rec->ephemeral;           /* -e only narrows */
    run->no_ephemeral_keep_working_memory |= rec->no_ephemeral_keep_working_memory;
    /* The policy itself, and what the booted program's state depends on. */
    run->allow_all = rec->allow_all;
#define TAKE_LIST(f) do { struct str_list given = run->f; run->f = rec->f; rec->f = given; } while (0)
    TAKE_LIST(allow_read);
    TAKE_LIST(allow_write);
    TAKE_LIST(allow_env);
    TAKE_LIST(allow_net);
    TAKE_LIST(allow_connect);
    TAKE_LIST(allow_listen);
    TAKE_LIST(volumes);
    TAKE_LIST(env);
#undef TAKE_LIST
    if (!run->cwd) {            /* owned by rec until now: they trade */
        run->cwd = rec->cwd;
        rec->cwd = NULL;
    }
    run->allow_read_set = rec->allow_read_set;
    run->allow_write_set = rec->allow_write_set;
    run->allow_env_set = rec->allow_env_set;
    run->allow_net_set = rec->allow_net_set;
    run->allow_connect_set = rec->allow_connect_set;
    run->allow_listen_set = rec->allow_listen_set;
    run->max_main_memory = rec->max_main_memory;
    run->max_address_space = rec->max_address_space;
    run->no_syscall_rewrite = rec->no_syscall_rewrite;
    config_free(&d);
    return true;
}
