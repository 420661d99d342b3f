/* What signal.c (dispositions, masks, delivery) and signal_send.c (sending, timers, waiting)
 * share. */
#ifndef KVMS_SIGNAL_INTERNAL_H
#define KVMS_SIGNAL_INTERNAL_H
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

struct lx_proc;
struct lx_signals;

#define GUEST_SIGSET_SIZE 8
#define GUEST_SIG_DFL 0
#define GUEST_SIG_IGN 1

static inline uint64_t sig_bit(int sig) { return 1ull << (sig - 1); }
static const uint64_t UNBLOCKABLE = (1ull << (SIGKILL - 1)) | (1ull << (SIGSTOP - 1));

/* Would delivering sig do anything (run a handler, or end the process)? */
bool lx_sig_acts(const struct lx_proc *p, int sig);
/* The pending signals the running thread may take, blocked or not: those for the process
 * and those sent to it, not another thread's. */
uint64_t lx_sig_pending_here(const struct lx_proc *p);
/* Of those, the lowest unblocked number; 0 if none. */
int lx_sig_next_deliverable(const struct lx_proc *p);
/* Expired timers raise their signals, and are re-armed or disarmed. */
void lx_sig_fire_timers(struct lx_proc *p);
/* The caller's mask back after a call that replaced it (rt_sigsuspend, a wait's mask). */
void lx_sig_end_call_mask(struct lx_signals *s);

#endif
