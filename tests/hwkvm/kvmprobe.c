/* kvmprobe: the hwkvm harness's own sanity test. Proves that the /dev/kvm inside the
 * QEMU guest really runs guest code: a 4 KiB real-mode slot does `out` then `hlt`,
 * and we exit 0 only after seeing the expected KVM_EXIT_IO (and then KVM_EXIT_HLT).
 * Built statically by tests/hwkvm/run.sh, independent of the meson build. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

enum {
    SLOT_GPA = 0x1000,
    SLOT_SIZE = 4096,
    PROBE_PORT = 0x10,
    PROBE_BYTE = 0x42,
    MAX_RUNS = 16,
    WATCHDOG_SECONDS = 20, /* a wedged KVM_RUN must not hang the whole guest */
};

/* mov $PROBE_BYTE,%al; out %al,$PROBE_PORT; hlt */
static const uint8_t probe_code[] = { 0xb0, PROBE_BYTE, 0xe6, PROBE_PORT, 0xf4 };

static int fail(const char *what)
{
    fprintf(stderr, "kvmprobe: %s: %s\n", what, strerror(errno));
    return 1;
}

int main(void)
{
    alarm(WATCHDOG_SECONDS);

    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0)
        return fail("open /dev/kvm");
    int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
    if (api != KVM_API_VERSION) {
        fprintf(stderr, "kvmprobe: KVM_GET_API_VERSION = %d, want %d\n", api, KVM_API_VERSION);
        return 1;
    }
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0)
        return fail("KVM_CREATE_VM");

    uint8_t *mem = mmap(NULL, SLOT_SIZE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return fail("mmap guest memory");
    memcpy(mem, probe_code, sizeof probe_code);
    struct kvm_userspace_memory_region region = {
        .slot = 0,
        .guest_phys_addr = SLOT_GPA,
        .memory_size = SLOT_SIZE,
        .userspace_addr = (uintptr_t)mem,
    };
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
        return fail("KVM_SET_USER_MEMORY_REGION");

    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0)
        return fail("KVM_CREATE_VCPU");
    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size < (int)sizeof(struct kvm_run))
        return fail("KVM_GET_VCPU_MMAP_SIZE");
    struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE,
                               MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED)
        return fail("mmap kvm_run");

    /* Real mode with CS base 0, so RIP is the guest-physical address of the code. */
    struct kvm_sregs sregs;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
        return fail("KVM_GET_SREGS");
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
        return fail("KVM_SET_SREGS");
    struct kvm_regs regs = { .rip = SLOT_GPA, .rflags = 0x2 };
    if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
        return fail("KVM_SET_REGS");

    int saw_io = 0;
    for (int i = 0; i < MAX_RUNS; i++) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) {
            if (errno == EINTR)
                continue;
            return fail("KVM_RUN");
        }
        switch (run->exit_reason) {
        case KVM_EXIT_IO: {
            /* io.data_offset comes from the kernel, but check it stays inside the mapping. */
            if (run->io.data_offset > (uint64_t)run_size - 1) {
                fprintf(stderr, "kvmprobe: bad io.data_offset %llu\n",
                        (unsigned long long)run->io.data_offset);
                return 1;
            }
            uint8_t byte = ((const uint8_t *)run)[run->io.data_offset];
            if (run->io.direction != KVM_EXIT_IO_OUT || run->io.port != PROBE_PORT ||
                run->io.size != 1 || byte != PROBE_BYTE) {
                fprintf(stderr, "kvmprobe: unexpected io: dir %u port 0x%x size %u byte 0x%x\n",
                        run->io.direction, run->io.port, run->io.size, byte);
                return 1;
            }
            saw_io = 1;
            break;
        }
        case KVM_EXIT_HLT:
            if (!saw_io) {
                fprintf(stderr, "kvmprobe: hlt before the out\n");
                return 1;
            }
            printf("kvmprobe: ok (api %d, out 0x%x to port 0x%x, then hlt)\n",
                   api, PROBE_BYTE, PROBE_PORT);
            return 0;
        default:
            fprintf(stderr, "kvmprobe: unexpected exit reason %u\n", run->exit_reason);
            return 1;
        }
    }
    fprintf(stderr, "kvmprobe: no hlt after %d runs (saw io: %d)\n", MAX_RUNS, saw_io);
    return 1;
}
