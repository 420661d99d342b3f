/* An epoll instance reached through a duplicate of its fd (dup, F_DUPFD_CLOEXEC, as tokio
 * clones its registry): registrations made through either fd are the same instance's, and it
 * lives on when the original fd is closed. Prints verdicts. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "verdict.h"

int main(void)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int a = eventfd(1, EFD_CLOEXEC), b = eventfd(1, EFD_CLOEXEC);
    int dup_ep = fcntl(ep, F_DUPFD_CLOEXEC, 3);
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 1 };
    verdict("add through the original", epoll_ctl(ep, EPOLL_CTL_ADD, a, &ev) == 0);
    ev.data.u32 = 2;
    verdict("add through the duplicate", epoll_ctl(dup_ep, EPOLL_CTL_ADD, b, &ev) == 0);
    verdict("the duplicate sees the original's registration",
            epoll_ctl(dup_ep, EPOLL_CTL_ADD, a, &ev) < 0);
    struct epoll_event out[4];
    verdict("waiting on the original sees both", epoll_wait(ep, out, 4, 0) == 2);
    close(ep);
    int again = dup(dup_ep);
    verdict("delete through a second duplicate", epoll_ctl(again, EPOLL_CTL_DEL, a, NULL) == 0);
    int n = epoll_wait(dup_ep, out, 4, 0);
    verdict("the instance outlives its first fd", n == 1 && out[0].data.u32 == 2);
    return failures ? 1 : 0;
}
