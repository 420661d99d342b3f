/* A request VM's file descriptors made ahead (see fdprep.h). */
#include "linux/fdprep.h"

#include <pthread.h>
#include <stdlib.h>

struct lx_fd_prep {
    const struct lx_fdtable *frozen;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work;
    bool stop;
    bool spare_ready;       /* spare holds a fork's fds */
    bool spare_failed;      /* making them failed: tried again at the next take */
    bool closing_full;      /* closing holds a finished request's fds, to close */
    struct lx_fdtable spare, closing;
};

/* Every open entry of `from` moves to `to` (whose entries there are free), and `from` is
 * left empty: the whole table is looked at, so that no fd a request opened stays behind. */
static void move_open(struct lx_fdtable *to, struct lx_fdtable *from)
{
    for (int i = 0; i < LX_MAX_FDS; i++) {
        if (from->fd[i].kind == LX_FD_FREE)
            continue;
        to->fd[i] = from->fd[i];
        from->fd[i] = (struct lx_fd){ .kind = LX_FD_FREE, .host_fd = -1 };
    }
    to->last_ofd = from->last_ofd;
}

static void *helper_main(void *arg)
{
    struct lx_fd_prep *prep = arg;
    pthread_mutex_lock(&prep->lock);
    for (;;) {
        while (!prep->stop && !prep->closing_full && (prep->spare_ready || prep->spare_failed))
            pthread_cond_wait(&prep->work, &prep->lock);
        if (prep->stop)
            break;
        /* The slot being worked on is the helper's alone until its flag changes. */
        if (prep->closing_full) {
            pthread_mutex_unlock(&prep->lock);
            lx_fds_destroy(&prep->closing);
            pthread_mutex_lock(&prep->lock);
            prep->closing_full = false;
        } else {
            pthread_mutex_unlock(&prep->lock);
            /* A failure leaves spare empty: the reset then makes the fds, and reports why. */
            bool made = lx_fds_fork(&prep->spare, prep->frozen) == 0;
            pthread_mutex_lock(&prep->lock);
            prep->spare_ready = made;
            prep->spare_failed = !made;
        }
    }
    pthread_mutex_unlock(&prep->lock);
    return NULL;
}

struct lx_fd_prep *lx_fd_prep_start(const struct lx_fdtable *frozen, const cpu_set_t *cpus)
{
    struct lx_fd_prep *prep = calloc(1, sizeof *prep);
    if (!prep)
        return NULL;
    prep->frozen = frozen;
    pthread_mutex_init(&prep->lock, NULL);
    pthread_cond_init(&prep->work, NULL);
    if (pthread_create(&prep->thread, NULL, helper_main, prep) != 0) {
        pthread_cond_destroy(&prep->work);
        pthread_mutex_destroy(&prep->lock);
        free(prep);
        return NULL;
    }
    if (cpus)
        pthread_setaffinity_np(prep->thread, sizeof *cpus, cpus);
    return prep;
}

void lx_fd_prep_stop(struct lx_fd_prep *prep)
{
    if (!prep)
        return;
    pthread_mutex_lock(&prep->lock);
    prep->stop = true;
    pthread_cond_signal(&prep->work);
    pthread_mutex_unlock(&prep->lock);
    pthread_join(prep->thread, NULL);
    lx_fds_destroy(&prep->closing);
    lx_fds_destroy(&prep->spare);
    pthread_cond_destroy(&prep->work);
    pthread_mutex_destroy(&prep->lock);
    free(prep);
}

void lx_fd_prep_retire(struct lx_fd_prep *prep, struct lx_fdtable *fds)
{
    pthread_mutex_lock(&prep->lock);
    bool busy = prep->closing_full;
    if (!busy) {
        move_open(&prep->closing, fds);
        prep->closing_full = true;
        pthread_cond_signal(&prep->work);
    }
    pthread_mutex_unlock(&prep->lock);
    if (busy)
        lx_fds_destroy(fds);
}

bool lx_fd_prep_take(struct lx_fd_prep *prep, struct lx_fdtable *dst)
{
    pthread_mutex_lock(&prep->lock);
    bool ready = prep->spare_ready;
    if (ready) {
        move_open(dst, &prep->spare);
        prep->spare_ready = false;
    }
    prep->spare_failed = false;
    pthread_cond_signal(&prep->work);   /* make the next (or try again after a failure) */
    pthread_mutex_unlock(&prep->lock);
    return ready;
}
