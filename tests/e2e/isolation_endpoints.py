"""What tests/servers/isolation.c answers when nothing has changed its state: its endpoints,
their pristine answers, and asking one. Shared by tests/e2e/test_isolation.py and
bench/isolation_soak.py."""
from servers import IO_TIMEOUT, Response, request_outcome

CLOSED = "(closed without an answer)"
GONE = "(connection refused: the server is gone)"
# Every endpoint of isolation.c. /fixed-touch and /widen-touch load from (store to) memory that
# the endpoint before them mapped (made writable) in its own request: on a pristine VM they
# crash it, and a VM whose translations outlived the reset answers instead.
ENDPOINTS = ["/pipe", "/socketpair", "/eventfd", "/memfd", "/file-offset", "/file-flags",
             "/timerfd", "/signalfd", "/pending", "/cwd", "/umask", "/rlimit", "/fds",
             "/sigaction", "/itimer", "/fixed", "/fixed-touch", "/widen", "/widen-touch",
             "/unmap", "/epoll", "/threads", "/memory"]
TOUCHES = {"/fixed-touch": "/fixed", "/widen-touch": "/widen"}

# The pristine answers that do not depend on the kernel or the host: the same natively and
# inside kvmserver. Other endpoints' pristine answer is their first one.
PRISTINE = {
    "/pipe": "bytes=F\n",
    "/socketpair": "bytes=F\n",
    "/eventfd": "count=3\n",
    "/memfd": "contents=frozen-memfd\n",
    "/file-offset": "offset=0\n",
    "/file-flags": "nonblock=0 append=0\n",
    "/sigaction": "previous=default\n",
    "/fixed": "readable=EFAULT writable=EFAULT map=ok\n",
    "/fixed-touch": CLOSED,
    "/widen": "readable=ok writable=EFAULT contents=frozen read-only page\n",
    "/widen-touch": CLOSED,
    "/unmap": "contents=frozen data page\n",
    "/epoll": "events=0 add=ok\n",
    "/threads": "threads=1 ticking=0\n",
    "/memory": "checksum=f141f8519ded2325\n",
}


def answer_of(outcome) -> str:
    if outcome == "closed":
        return CLOSED
    assert isinstance(outcome, Response) and outcome.status == 200, outcome
    return outcome.text


def ask(endpoint, path, timeout=IO_TIMEOUT) -> str:
    """One request on a fresh connection, as an answer to compare with PRISTINE."""
    try:
        return answer_of(request_outcome(endpoint, path, timeout))
    except ConnectionRefusedError:
        return GONE       # natively, a crash ends the server


def steps_for(endpoint):
    """The requests in a row that check one endpoint."""
    if endpoint in TOUCHES:
        return [TOUCHES[endpoint], endpoint, TOUCHES[endpoint], endpoint, endpoint]
    return [endpoint] * 3


def not_pristine(steps, answers):
    """(path, answer, pristine answer) for every answer that is not the pristine one."""
    first = {}
    wrong = []
    for path, got in zip(steps, answers):
        want = PRISTINE.get(path, first.setdefault(path, got))
        if got != want:
            wrong.append((path, got, want))
    return wrong
