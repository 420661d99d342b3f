/* libFuzzer target for the shared-page transport (src/vm/transport.c, included here so
 * that serve_one, the poller's decoding of a request, is reachable without a thread). The
 * input is a script: the guest scribbles on its page, publishes requests with any sequence
 * numbers, and the poller and the vCPU thread (exits, fallbacks or not) take turns. Checked,
 * besides memory errors: the host's claim only grows, the poller runs only a request newer
 * than every claim, it runs the number and arguments the page held when it took them, and
 * a fallback for a request the poller ran is answered with the poller's result, not run. */
#include "vm/transport.c"

#include <stdlib.h>

static void require(int ok)
{
    if (!ok)
        abort();
}

struct script {
    const uint8_t *data;
    size_t size, at;
};

static uint64_t take(struct script *s, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes && s->at < s->size; i++)
        v |= (uint64_t)s->data[s->at++] << (8 * i);
    return v;
}

static struct script *script;
static int runs;                        /* calls the fake dispatcher ran */
static struct vm_syscall last_call;

bool sites_is_syscall(const struct vm *vm, uint64_t ret, uint64_t r11)
{
    (void)vm; (void)ret; (void)r11;
    return take(script, 1) & 1;
}

static long fake_syscall(void *ctx, struct vm *vm, const struct vm_syscall *call, bool *stop)
{
    (void)ctx; (void)vm;
    runs++;
    last_call = *call;
    *stop = take(script, 1) % 8 == 0;
    return (long)take(script, 2) - 4096;
}

static bool fake_can_serve(void *ctx, struct vm *vm, const struct vm_syscall *call)
{
    (void)ctx; (void)vm; (void)call;
    return take(script, 1) % 4 != 0;
}

static bool fake_exit_after(void *ctx, struct vm *vm, const struct vm_syscall *call, long ret)
{
    (void)ctx; (void)vm; (void)call; (void)ret;
    return take(script, 1) % 4 == 0;
}

static const struct vm_ops ops = { .syscall = fake_syscall, .can_serve_shared = fake_can_serve,
                                   .exit_after_shared = fake_exit_after };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t mem[SHARED_PAGE_ADDR + GUEST_PAGE_SIZE];
    struct script s = { data, size, 0 };
    script = &s;
    memset(mem, 0, sizeof mem);
    static struct vm vm;
    static struct poller pl;
    memset(&vm, 0, sizeof vm);
    vm.mem = mem;
    vm.ops = &ops;
    transport_init(&vm);
    transport_attach(&vm, &pl, (unsigned)take(&s, 1));
    struct shared_page *page = page_of(&vm);
    for (int steps = 0; steps < 256 && s.at < s.size; steps++) {
        uint64_t claimed = vm.transport.claimed;
        switch (take(&s, 1) % 5) {
        case 0:                                 /* the guest writes any word of its page */
            ((volatile uint64_t *)page)[take(&s, 1) % 32] = take(&s, 8);
            break;
        case 1:                                 /* the stub publishes a request */
            page->nr = take(&s, 8);
            for (int i = 0; i < 6; i++)
                page->args[i] = take(&s, 2);
            page->req_seq = take(&s, 1) % 4 ? page->req_seq + 1 : take(&s, 8);
            break;
        case 2: {                               /* the poller looks */
            uint64_t seq = page->req_seq, nr = page->nr;
            int before = runs;
            bool served = serve_one(&vm);
            require(served == (seq > claimed));
            if (runs > before) {
                require(seq > claimed && vm.transport.served == seq);
                require(last_call.nr == (uint32_t)nr);
                require(page->result == vm.transport.result);
            }
            break;
        }
        default: {                              /* an exit: a fallback of the stub, or not */
            bool fallback = take(&s, 1) & 1, stop = false;
            uint64_t seq = page->req_seq;
            bool poller_ran = fallback && seq == vm.transport.served && seq == claimed;
            long kept = vm.transport.result;
            int before = runs;
            struct vm_syscall call = { .nr = page->nr };
            long ret = transport_exit_call(&vm, &call, fallback, &stop);
            if (poller_ran)
                require(runs == before && ret == kept);
            else
                require(runs == before + 1);
            break;
        }
        }
        require(vm.transport.claimed >= claimed);
    }
    transport_destroy(&vm);
    return 0;
}
