/* --profile (see profile.h). */
#include "server/profile.h"

#include <string.h>

#include "linux/syscalls.h"

#define TOP_CALLS 5

void profile_start(struct request_profile *p, const struct vm *vm)
{
    if (vm_kvm_stats_open(&p->kvm_stats, vm) == 0)
        p->kvm_vms = 1;
}

void profile_resumed(struct request_profile *p)
{
    vm_kvm_stats_read(&p->kvm_stats, p->kvm_mark);
}

void profile_request(struct request_profile *p, uint64_t resumed_ns, uint64_t accepted_ns,
                     uint64_t ended_ns, uint64_t exits, uint64_t syscall_exits,
                     const struct vm_reset_stats *reset, uint64_t personality_ns)
{
    if (!accepted_ns)
        return;                 /* no client: a stop, or a failed wait */
    p->requests++;
    p->wait_ns += accepted_ns > resumed_ns ? accepted_ns - resumed_ns : 0;
    p->request_ns += ended_ns > accepted_ns ? ended_ns - accepted_ns : 0;
    p->exits += exits;
    p->syscall_exits += syscall_exits;
    p->reset_ns += reset->ns;
    p->scan_ns += reset->scan_ns;
    p->copy_ns += reset->copy_ns;
    p->cpu_ns += reset->cpu_ns;
    p->pages += reset->pages_restored;
    p->personality_ns += personality_ns;
    uint64_t now[KVM_COUNTERS];
    vm_kvm_stats_read(&p->kvm_stats, now);
    for (int c = 0; c < KVM_COUNTERS; c++)
        p->kvm[c] += now[c] - p->kvm_mark[c];
}

void profile_add(struct request_profile *total, const struct request_profile *v,
                 const struct vm *vm)
{
    for (int i = 0; i < LX_PROFILE_CALLS; i++) {
        total->calls.calls[i] += v->calls.calls[i];
        total->calls.ns[i] += v->calls.ns[i];
    }
    total->calls.thread_switches += v->calls.thread_switches;
    total->requests += v->requests;
    total->wait_ns += v->wait_ns;
    total->request_ns += v->request_ns;
    total->exits += v->exits;
    total->syscall_exits += v->syscall_exits;
    total->reset_ns += v->reset_ns;
    total->scan_ns += v->scan_ns;
    total->copy_ns += v->copy_ns;
    total->cpu_ns += v->cpu_ns;
    total->pages += v->pages;
    total->personality_ns += v->personality_ns;
    struct vm_stats st;
    vm_get_stats(vm, &st);
    total->guest_ns += st.guest_ns;
    total->flushes += st.flushes;
    total->flush_ns += st.flush_ns;
    for (int c = 0; c < KVM_COUNTERS; c++)
        total->kvm[c] += v->kvm[c];
    total->kvm_vms += v->kvm_vms;
}

/* The call numbers with the most host time, most first; -1 past the last one. */
static void top_calls(const struct lx_profile *c, int top[TOP_CALLS])
{
    for (int k = 0; k < TOP_CALLS; k++) {
        top[k] = -1;
        for (int i = 0; i < LX_PROFILE_CALLS; i++) {
            bool taken = false;
            for (int j = 0; j < k; j++)
                taken |= top[j] == i;
            if (!taken && c->calls[i] && (top[k] < 0 || c->ns[i] > c->ns[top[k]]))
                top[k] = i;
        }
    }
}

static const char *call_name(int nr)
{
    const struct lx_syscall_desc *d = lx_syscall_of((uint64_t)nr);
    return d ? d->name : "unknown";
}

void profile_print(const struct request_profile *t, FILE *out)
{
    if (!t->requests) {
        fprintf(out, "kvmserver: profile: no request was served\n");
        return;
    }
    double n = (double)t->requests, us = 1e3 * n;
    uint64_t handler_ns = 0;
    for (int i = 0; i < LX_PROFILE_CALLS; i++)
        handler_ns += t->calls.ns[i];
    int top[TOP_CALLS];
    top_calls(&t->calls, top);
    fprintf(out, "kvmserver: profile: %llu requests; per request, in us:\n",
            (unsigned long long)t->requests);
    fprintf(out, "kvmserver: profile:   %.1f from accept to close, after %.1f waiting for the "
            "client\n", t->request_ns / us, t->wait_ns / us);
    fprintf(out, "kvmserver: profile:   %.1f in the guest; %.1f VM exits (%.1f for system "
            "calls); %.1f in system-call handlers\n", t->guest_ns / us, t->exits / n,
            t->syscall_exits / n, handler_ns / us);
    if (t->kvm_vms)
        fprintf(out, "kvmserver: profile:   in KVM (in-kernel exits included): %.1f exits, "
                "%.1f page faults (%.1f translations made), %.1f emulated instructions, %.1f "
                "TLB flushes\n", t->kvm[KVM_COUNTER_EXITS] / n, t->kvm[KVM_COUNTER_PF_TAKEN] / n,
                t->kvm[KVM_COUNTER_PF_FIXED] / n, t->kvm[KVM_COUNTER_INSN_EMULATION] / n,
                t->kvm[KVM_COUNTER_TLB_FLUSH] / n);
    fprintf(out, "kvmserver: profile:   %.2f translation flushes (%.1f); %.2f thread switches\n",
            t->flushes / n, t->flush_ns / us, t->calls.thread_switches / n);
    fprintf(out, "kvmserver: profile:   reset %.1f: scan %.1f, copy %.1f (%.1f pages), vCPU "
            "%.1f; the process again (fds, epoll, threads) %.1f\n", t->reset_ns / us,
            t->scan_ns / us, t->copy_ns / us, t->pages / n, t->cpu_ns / us,
            t->personality_ns / us);
    fprintf(out, "kvmserver: profile:   system calls by host time:");
    for (int k = 0; k < TOP_CALLS && top[k] >= 0; k++)
        fprintf(out, " %s %.1fx %.1f%s", call_name(top[k]), t->calls.calls[top[k]] / n,
                t->calls.ns[top[k]] / us, k + 1 < TOP_CALLS && top[k + 1] >= 0 ? "," : "");
    fprintf(out, "\n");
    /* The same, one line for scripts. */
    fprintf(out, "kvmserver: profile: requests=%llu request_us=%.1f wait_us=%.1f guest_us=%.1f "
            "exits=%.1f syscall_exits=%.1f handler_us=%.1f flushes=%.2f flush_us=%.1f "
            "switches=%.2f reset_us=%.1f scan_us=%.1f copy_us=%.1f pages=%.1f cpu_us=%.1f "
            "process_us=%.1f kvm_exits=%.1f kvm_pf=%.1f kvm_pf_fixed=%.1f kvm_emulated=%.1f "
            "kvm_tlb_flushes=%.1f top=", (unsigned long long)t->requests, t->request_ns / us,
            t->wait_ns / us, t->guest_ns / us, t->exits / n, t->syscall_exits / n,
            handler_ns / us, t->flushes / n, t->flush_ns / us, t->calls.thread_switches / n,
            t->reset_ns / us, t->scan_ns / us, t->copy_ns / us, t->pages / n, t->cpu_ns / us,
            t->personality_ns / us, t->kvm[KVM_COUNTER_EXITS] / n, t->kvm[KVM_COUNTER_PF_TAKEN] / n,
            t->kvm[KVM_COUNTER_PF_FIXED] / n, t->kvm[KVM_COUNTER_INSN_EMULATION] / n,
            t->kvm[KVM_COUNTER_TLB_FLUSH] / n);
    for (int k = 0; k < TOP_CALLS && top[k] >= 0; k++)
        fprintf(out, "%s%s:%.1f:%.1f", k ? "," : "", call_name(top[k]),
                t->calls.calls[top[k]] / n, t->calls.ns[top[k]] / us);
    fprintf(out, "\n");
}
