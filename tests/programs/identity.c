/* The identity calls a root-started daemon makes to drop its rights (setgroups, setgid,
 * setuid and their re/res forms, capget/capset), and what it sees afterwards. Prints one
 * line per call: its result and errno name, then the ids. */
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static void show(const char *what, long r)
{
    printf("%-28s %ld %s\n", what, r, r < 0 ? strerrorname_np(errno) : "");
}

static void ids(void)
{
    uid_t r, e, s;
    gid_t gr, ge, gs;
    getresuid(&r, &e, &s);
    getresgid(&gr, &ge, &gs);
    gid_t groups[8];
    int n = getgroups(8, groups);
    printf("uid %u %u %u gid %u %u %u groups %d\n", r, e, s, gr, ge, gs, n);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    uid_t me = getuid();
    gid_t my_gid = getgid();
    ids();
    show("getgroups(0)", getgroups(0, NULL));
    show("setgroups(0) drops", setgroups(0, NULL));
    gid_t g = my_gid;
    show("setgroups(own gid)", setgroups(1, &g));
    show("setgid(own)", setgid(my_gid));
    show("setuid(own)", setuid(me));
    show("setregid(-1, own)", setregid((gid_t)-1, my_gid));
    show("setreuid(-1, own)", setreuid((uid_t)-1, me));
    show("setresgid(own x3)", setresgid(my_gid, my_gid, my_gid));
    show("setresuid(own x3)", setresuid(me, me, me));
    show("setresuid(-1 x3)", setresuid((uid_t)-1, (uid_t)-1, (uid_t)-1));
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    show("capget", syscall(SYS_capget, &hdr, data));
    printf("caps effective %#x permitted %#x\n", data[0].effective, data[0].permitted);
    memset(data, 0, sizeof data);
    show("capset(none)", syscall(SYS_capset, &hdr, data));
    ids();
    /* msync on a mapping, and on bad ranges. */
    char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    m[0] = 1;
    show("msync", msync(m, 8192, MS_SYNC));
    show("msync(async)", msync(m, 4096, MS_ASYNC));
    show("msync(unaligned)", msync(m + 1, 4096, MS_SYNC));
    show("msync(both flags)", msync(m, 4096, MS_SYNC | MS_ASYNC));
    munmap(m, 8192);
    show("msync(unmapped)", msync(m, 4096, MS_SYNC));
    /* Root drops to nobody: natively the ids change; in the sandbox they stay its own. */
    show("setgid(nobody)", setgid(65534));
    show("setuid(nobody)", setuid(65534));
    ids();
    return 0;
}
