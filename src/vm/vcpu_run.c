/* The vCPU loop: run until the syscall handler stops us, the guest faults, or time is up.
 * A periodic per-thread timer signal kicks KVM_RUN so that nothing the guest does (a spin,
 * a `vmcall` that wedges kvm_pvm) can hold the host thread past its deadline. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/time.h"
#include "vm/clock.h"
#include "vm/cpu_state.h"
#include "vm/guest_mem.h"
#include "vm/layout.h"
#include "vm/platform.h"
#include "vm/syscall_sites.h"
#include "vm/vm.h"

#define KICK_SIGNAL SIGUSR1
#define KICK_INTERVAL_NS (50 * 1000 * 1000)

static __thread struct kvm_run *kick_target;

static void on_kick(int sig)
{
    (void)sig;
    /* A kick that lands between two KVM_RUNs must not be lost: make the next one return. */
    if (kick_target)
        kick_target->immediate_exit = 1;
}

static struct itimerspec kick_period(const struct vm *vm)
{
    struct timespec every = ns_timespec((int64_t)(vm->kick_ns ? vm->kick_ns : KICK_INTERVAL_NS));
    return (struct itimerspec){ .it_interval = every, .it_value = every };
}

void vm_set_kick_interval(struct vm *vm, uint64_t ns)
{
    if (ns == vm->kick_ns)
        return;
    vm->kick_ns = ns;
    if (!vm->kick_armed)
        return;         /* the first vm_run arms it with this period */
    /* Never later than the kick already due: the guest, which makes these changes come
     * (its threads' switches), must not be able to put off the kicks that time it. */
    struct itimerspec its = kick_period(vm), due;
    if (timer_gettime(vm->kick_timer, &due) == 0 && (due.it_value.tv_sec || due.it_value.tv_nsec) &&
        timespec_ns(&due.it_value) < timespec_ns(&its.it_value))
        its.it_value = due.it_value;
    if (timer_settime(vm->kick_timer, 0, &its, NULL) < 0)
        fprintf(stderr, "kvmserver: setting the vCPU timer's period: %s\n", strerror(errno));
}

static int arm_kick_timer(struct vm *vm)
{
    struct sigaction sa = { .sa_handler = on_kick, .sa_flags = SA_RESTART };
    sigemptyset(&sa.sa_mask);
    if (sigaction(KICK_SIGNAL, &sa, NULL) < 0)
        return -1;
    struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = KICK_SIGNAL };
    sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
    if (timer_create(CLOCK_MONOTONIC, &sev, &vm->kick_timer) < 0)
        return -1;
    struct itimerspec its = kick_period(vm);
    if (timer_settime(vm->kick_timer, 0, &its, NULL) < 0)
        return -1;
    vm->kick_armed = true;
    kick_target = vm->run;
    return 0;
}

void vm_disarm(struct vm *vm)
{
    if (vm->kick_armed) {
        timer_delete(vm->kick_timer);
        vm->kick_armed = false;
    }
    kick_target = NULL;
}

struct vector_info { const char *name; int signal; bool has_error; };
static const struct vector_info vectors[32] = {
    [0] = { "divide error", SIGFPE, false },       [1] = { "debug trap", SIGTRAP, false },
    [2] = { "NMI", SIGSEGV, false },                [3] = { "breakpoint", SIGTRAP, false },
    [4] = { "overflow", SIGSEGV, false },           [5] = { "bound range", SIGSEGV, false },
    [6] = { "invalid opcode", SIGILL, false },      [7] = { "device not available", SIGFPE, false },
    [8] = { "double fault", SIGSEGV, true },        [10] = { "invalid TSS", SIGSEGV, true },
    [11] = { "segment not present", SIGBUS, true }, [12] = { "stack fault", SIGBUS, true },
    [13] = { "general protection fault", SIGSEGV, true },
    [14] = { "page fault", SIGSEGV, true },         [16] = { "x87 FP error", SIGFPE, false },
    [17] = { "alignment check", SIGBUS, true },     [18] = { "machine check", SIGBUS, false },
    [19] = { "SIMD FP exception", SIGFPE, false },  [21] = { "control protection", SIGSEGV, true },
};

/* Records a guest crash as one line: what happened, the instruction and the fault address. */
static enum vm_run_result crash(struct vm *vm, int sig, uint64_t rip, uint64_t addr,
                                const char *what)
{
    snprintf(vm->crash_report, sizeof vm->crash_report, "%s at rip 0x%llx, address 0x%llx",
             what, (unsigned long long)rip, (unsigned long long)addr);
    vm->crash_signal = sig;
    return VM_CRASHED;
}

/* kvm_pvm raises #UD for a user-mode `int N` where the CPU raises #GP (a DPL-0 gate): report
 * what Linux would. The faulting RIP is in the frame on the ring-0 stack. */
static bool software_interrupt_at(struct vm *vm)
{
    uint64_t sp = vm->run->s.regs.regs.rsp, rip;
    uint8_t opcode;
    if (sp < KSTACK_ADDR || sp > KSTACK_ADDR + KSTACK_SIZE - 8)
        return false;
    memcpy(&rip, vm->mem + sp, 8);
    return gm_read(vm, &opcode, rip, 1) == 0 && opcode == 0xcd;
}

/* The program ran code in page 0, which is not its own (syscall_sites.h): the crash Linux
 * gives for an instruction fetch from an unmapped page. */
static enum vm_run_result fetch_from_page0(struct vm *vm, uint64_t at)
{
    return crash(vm, SIGSEGV, at, at, "page fault (instruction fetch, page not mapped)");
}

static bool frame_ok(uint64_t frame_gva)
{
    return frame_gva >= KSTACK_ADDR && frame_gva <= KSTACK_ADDR + KSTACK_SIZE - 5 * 8;
}

/* Offers a fault of user code to the Linux layer (vm_ops.fault), with the program's own
 * registers from the iret frame at frame_gva. */
static bool deliver_fault(struct vm *vm, unsigned vec, uint64_t error, uint64_t cr2, int sig,
                          uint64_t frame_gva)
{
    if (!vm->ops || !vm->ops->fault || !frame_ok(frame_gva))
        return false;
    const uint64_t *frame = (const uint64_t *)(vm->mem + frame_gva);
    if ((frame[1] & 3) != 3)
        return false;               /* our own ring-0 code faulted */
    struct vm_fault f = { .vector = vec, .error = error, .addr = cr2, .signal = sig,
                          .regs = vm->run->s.regs.regs };
    f.regs.rip = frame[0];
    f.regs.rflags = frame[2];
    f.regs.rsp = frame[3];
    vm->fault_frame = frame_gva;
    bool resumed = vm->ops->fault(vm->ops_ctx, vm, &f);
    vm->fault_frame = 0;
    vm->user_regs_set = false;
    return resumed;
}

void vm_get_user_regs(struct vm *vm, long result_rax, struct kvm_regs *out)
{
    if (vm->user_regs_set) {
        *out = vm->user_regs;
        return;
    }
    *out = vm->run->s.regs.regs;
    if (vm->in_interrupt)
        return;
    if (vm->fault_frame) {
        const uint64_t *frame = (const uint64_t *)(vm->mem + vm->fault_frame);
        out->rip = frame[0];
        out->rflags = frame[2];
        out->rsp = frame[3];
        return;
    }
    vm_syscall_return_regs(out, result_rax);
}

void vm_syscall_return_regs(struct kvm_regs *regs, long result_rax)
{
    /* A system call returns as sysret does. */
    regs->rax = (uint64_t)result_rax;
    regs->rip = regs->rcx;
    regs->rflags = regs->r11;
}

int vm_set_user_regs(struct vm *vm, const struct kvm_regs *regs)
{
    /* kvm_pvm cannot enter user mode with a non-canonical stack pointer: such a context
     * fails as a bad frame (SIGSEGV), which is where Linux's iret ends up too. */
    if (regs->rip >= (1ull << 47) || regs->rsp >= (1ull << 47))
        return -1;
    struct kvm_regs user = *regs;
    user.rflags = (regs->rflags & RFLAGS_USER_MASK) | RFLAGS_FIXED | RFLAGS_IF;
    vm->user_regs = user;
    vm->user_regs_set = true;
    if (vm->in_interrupt) {
        vm->run->s.regs.regs = user;
        vm->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
        return 0;
    }
    if (!vm->fault_frame) {
        vm->plat->resume_user(vm, &user);
        return 0;
    }
    /* In a fault: the stub irets through its frame. */
    uint64_t *frame = (uint64_t *)(vm->mem + vm->fault_frame);
    frame[0] = user.rip;
    frame[1] = SEL_UCODE;
    frame[2] = user.rflags;
    frame[3] = user.rsp;
    frame[4] = SEL_UDATA;
    struct kvm_regs *r = &vm->run->s.regs.regs;
    uint64_t ksp = r->rsp, kip = r->rip, kflags = r->rflags;
    *r = user;
    r->rsp = ksp;
    r->rip = kip;
    r->rflags = kflags;
    vm->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
    return 0;
}

/* A guest exception: a crash, unless it is fixed up (*resumed: run on). */
static enum vm_run_result exception(struct vm *vm, unsigned vec, bool *resumed)
{
    const struct vector_info *v = &vectors[vec];
    bool has_error = v->has_error;     /* the frame's layout is the raised vector's */
    if (vec == 6 && software_interrupt_at(vm)) {
        vec = 13;
        v = &vectors[13];
    }
    const char *name = v->name ? v->name : "reserved exception";
    int sig = v->signal ? v->signal : SIGSEGV;
    /* The frame the CPU pushed on the ring-0 stack, which the guest cannot reach. */
    uint64_t sp = vm->run->s.regs.regs.rsp;
    uint64_t frame[3] = { 0 };
    if (sp >= KSTACK_ADDR && sp <= KSTACK_ADDR + KSTACK_SIZE - sizeof frame)
        memcpy(frame, vm->mem + sp, sizeof frame);
    uint64_t error = has_error ? frame[0] : 0;
    uint64_t rip = has_error ? frame[1] : frame[0];
    uint64_t cr2 = 0;
    if (vec == 14) {
        struct kvm_sregs sr;
        cr2 = ioctl(vm->vcpu_fd, KVM_GET_SREGS, &sr) == 0 ? sr.cr2 : 0;
    }
    if (vm->sites) {
        *resumed = sites_fixup(vm, vec, error, cr2, sp + (has_error ? 8 : 0),
                               &vm->run->s.regs.regs);
        if (*resumed)
            return VM_STOPPED;
        if (rip <= GUEST_PAGE_SIZE) {
            /* A call through RAX got here: report its target if it is one. */
            uint64_t rax = vm->run->s.regs.regs.rax;
            return fetch_from_page0(vm, rax <= GUEST_PAGE_SIZE ? rax : rip);
        }
    }
    if (deliver_fault(vm, vec, error, cr2, sig, sp + (has_error ? 8 : 0))) {
        *resumed = true;
        return VM_STOPPED;
    }
    char what[96];
    if (vec == 14) {
        snprintf(what, sizeof what, "page fault (%s, %s)",
                 error & 16 ? "instruction fetch" : error & 2 ? "write" : "read",
                 error & 1 ? "protection violation" : "page not mapped");
        return crash(vm, sig, rip, cr2, what);
    }
    if (has_error && error)
        snprintf(what, sizeof what, "%s (error code 0x%llx)", name, (unsigned long long)error);
    else
        snprintf(what, sizeof what, "%s", name);
    /* The fault address as Linux reports it in si_addr: the instruction for traps and
     * undefined or arithmetic faults, 0 for protection faults. */
    return crash(vm, sig, rip, sig == SIGSEGV || sig == SIGBUS ? 0 : rip, what);
}

/* A kick found the guest running: if it is in the program's own user-mode code (not in our
 * stubs or page 0, not in ring 0) and the Linux layer has something due, let it interrupt. */
static void offer_interrupt(struct vm *vm)
{
    /* The place first: in a stub the guest may be waiting for the poller, which may be
     * changing the state interrupt_due reads. */
    if (!vm->ops->interrupt || vm->run->s.regs.regs.rip < SYSTEM_AREA_END ||
        !vm->ops->interrupt_due(vm->ops_ctx, vm))
        return;
    struct kvm_sregs sr;
    if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &sr) < 0 || (sr.cs.selector & 3) != 3)
        return;
    vm->in_interrupt = true;
    vm->ops->interrupt(vm->ops_ctx, vm);
    vm->in_interrupt = false;
    vm->user_regs_set = false;
}

/* Is the guest sitting on vmcall/vmmcall? kvm_pvm never returns from those by itself. */
static bool on_hypercall(struct vm *vm, uint64_t rip)
{
    uint8_t insn[3];
    if (gm_read(vm, insn, rip, sizeof insn))
        return false;
    return insn[0] == 0x0f && insn[1] == 0x01 && (insn[2] == 0xc1 || insn[2] == 0xd9);
}

static enum vm_run_result syscall_exit(struct vm *vm, bool fallback, bool *stop)
{
    struct kvm_regs *r = &vm->run->s.regs.regs;
    uint64_t r11 = r->r11;
    if (!sites_on_syscall(vm, r->rcx, r->rax, &r11))
        return fetch_from_page0(vm, r->rax);
    r->r11 = r11;
    /* Linux looks at the low 32 bits of the number only. */
    struct vm_syscall call = { .nr = (uint32_t)r->rax, .arg = { r->rdi, r->rsi, r->rdx, r->r10, r->r8, r->r9 } };
    vm->syscall_exits++;
    clock_page_update((struct clock_page *)(vm->mem + CLOCK_PAGE_ADDR), vm->tsc_offset,
                      vm->mono_lag_ns);
    vm->user_regs_set = false;
    long ret = transport_exit_call(vm, &call, fallback, stop);
    if (!*stop && vm->ops->after_syscall)
        ret = vm->ops->after_syscall(vm->ops_ctx, vm, &call, ret, stop);
    if (vm->user_regs_set) {
        vm->user_regs_set = false;      /* resumes exactly as the handler said */
        return VM_STOPPED;
    }
    r->rax = (uint64_t)ret;
    vm->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
    if (!*stop && !vm->plat->complete_return(r))
        return crash(vm, SIGSEGV, r->rip, r->rcx, "system call returns to a non-canonical address");
    return VM_STOPPED;
}

int vm_complete_exit(struct vm *vm)
{
    /* KVM finishes an I/O or MMIO exit (for a port write on SVM without next-RIP support:
     * stepping RIP past the `out`) only when KVM_RUN is entered again. A KVM_RUN that
     * returns at once does that and nothing else, so the registers read afterwards are
     * the ones the guest will really resume with, in this VM or in a fork of it. Only
     * port I/O needs it: an MMIO write exit has already moved RIP past the store. */
    if (vm->run->exit_reason != KVM_EXIT_IO)
        return 0;
    vm->run->immediate_exit = 1;
    int rc = ioctl(vm->vcpu_fd, KVM_RUN, 0);
    int err = errno;
    vm->run->immediate_exit = 0;
    if (rc == 0 || err == EINTR || err == EAGAIN)
        return 0;
    errno = err;
    return -1;
}

static enum vm_run_result run_loop(struct vm *vm)
{
    if (!vm->kick_armed && arm_kick_timer(vm) < 0) {
        snprintf(vm->crash_report, sizeof vm->crash_report, "cannot arm the vCPU timer: %s",
                 strerror(errno));
        return VM_HOST_ERROR;
    }
    kick_target = vm->run;
    uint64_t last_kick_rip = 0;
    for (;;) {
        uint64_t entered = vm->profiling ? now_ns() : 0;
        int rc = ioctl(vm->vcpu_fd, KVM_RUN, 0);
        if (entered)
            vm->guest_ns += now_ns() - entered;
        vm->exits++;
        struct kvm_run *run = vm->run;
        if (rc < 0) {
            if (errno != EINTR && errno != EAGAIN) {
                snprintf(vm->crash_report, sizeof vm->crash_report, "KVM_RUN failed: %s",
                         strerror(errno));
                return VM_HOST_ERROR;
            }
            run->immediate_exit = 0;
            uint64_t rip = run->s.regs.regs.rip;
            if (rip == last_kick_rip && on_hypercall(vm, rip))
                return crash(vm, SIGILL, rip, rip, "hypercall instruction (vmcall)");
            last_kick_rip = rip;
            if (vm->deadline_ns && now_ns() >= vm->deadline_ns)
                return VM_TIMED_OUT;
            offer_interrupt(vm);
            continue;
        }
        if (vm->plat->is_syscall_exit(vm, run)) {
            bool stop = false;
            bool fallback = run->exit_reason == KVM_EXIT_MMIO &&
                            run->mmio.phys_addr == vm->mem_size + MMIO_SHARED_FALLBACK;
            enum vm_run_result res = syscall_exit(vm, fallback, &stop);
            if (res != VM_STOPPED || stop)
                return res;
            continue;
        }
        uint64_t rip = run->s.regs.regs.rip;
        switch (run->exit_reason) {
        case KVM_EXIT_IO:
            if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port >= PORT_EXCEPTION_BASE &&
                run->io.port < PORT_EXCEPTION_BASE + 32) {
                bool resumed = false;
                enum vm_run_result res = exception(vm, run->io.port - PORT_EXCEPTION_BASE,
                                                   &resumed);
                if (resumed)
                    continue;
                return res;
            }
            return crash(vm, SIGSEGV, rip, run->io.port, "unexpected I/O port access");
        case KVM_EXIT_MMIO:
            return crash(vm, SIGSEGV, rip, run->mmio.phys_addr, "access to unbacked memory");
        case KVM_EXIT_SHUTDOWN:
            return crash(vm, SIGSEGV, rip, 0, "triple fault (a fault could not be delivered)");
        case KVM_EXIT_HLT:
            return crash(vm, SIGSEGV, rip, 0, "hlt");
        case KVM_EXIT_FAIL_ENTRY:
            snprintf(vm->crash_report, sizeof vm->crash_report,
                     "KVM could not enter the guest (reason 0x%llx)",
                     (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
            return VM_HOST_ERROR;
        case KVM_EXIT_INTERNAL_ERROR:
            return crash(vm, SIGSEGV, rip, 0, "an instruction KVM could not emulate");
        default:
            return crash(vm, SIGSEGV, rip, run->exit_reason, "unexpected VM exit");
        }
    }
}

enum vm_run_result vm_run(struct vm *vm)
{
    struct poller *pl = transport_guest_enter(vm);
    enum vm_run_result res = run_loop(vm);
    transport_guest_leave(pl);
    return res;
}
