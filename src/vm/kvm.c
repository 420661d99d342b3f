/* Opening /dev/kvm and querying what it offers (see kvm.h). */
#include "vm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "base/log.h"

static int kvm_fd = -1;
static struct kvm_cpuid2 *cpuid;
static int run_size;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void open_kvm(void)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            log_error("cannot open /dev/kvm: %s — load the KVM module "
                    "(modprobe kvm_intel or kvm_amd) or enable virtualization", strerror(e));
        else if (e == EACCES || e == EPERM)
            log_error("cannot open /dev/kvm: %s — add your user to the kvm "
                    "group (sudo usermod -aG kvm $USER) and log in again", strerror(e));
        else
            log_error("cannot open /dev/kvm: %s", strerror(e));
        return;
    }
    int version = ioctl(fd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION) {
        log_error("/dev/kvm speaks API version %d, we need %d — the host "
                "kernel is too old or too new", version, KVM_API_VERSION);
        close(fd);
        return;
    }
    static const struct { int cap; const char *name; } needed[] = {
        { KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
        { KVM_CAP_SYNC_REGS, "KVM_CAP_SYNC_REGS" },
        { KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
        { KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
    };
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++) {
        if (ioctl(fd, KVM_CHECK_EXTENSION, needed[i].cap) <= 0) {
            log_error("/dev/kvm lacks %s — the host kernel is too old",
                    needed[i].name);
            close(fd);
            return;
        }
    }
    run_size = ioctl(fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    for (int n = 64; n <= 4096; n *= 2) {
        struct kvm_cpuid2 *c = calloc(1, sizeof *c + n * sizeof c->entries[0]);
        if (!c)
            break;
        c->nent = (unsigned)n;
        if (ioctl(fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
            cpuid = c;
            break;
        }
        free(c);
        if (errno != E2BIG)
            break;
    }
    if (!cpuid || run_size <= 0) {
        log_error("/dev/kvm: cannot query CPUID or vCPU layout: %s",
                strerror(errno));
        close(fd);
        return;
    }
    kvm_fd = fd;
}

int kvm_device(void)
{
    pthread_once(&once, open_kvm);
    return kvm_fd;
}

const struct kvm_cpuid2 *kvm_supported_cpuid(void)
{
    return kvm_device() < 0 ? NULL : cpuid;
}

int kvm_vcpu_mmap_size(void)
{
    return run_size;
}
