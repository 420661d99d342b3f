"""The listening socket under `kvmserver -e`: private until the freeze, guarded afterwards.

- No client reaches the master: a client that polls the public address from the moment
  kvmserver starts, while a 100-request warm-up runs, only ever gets the pristine answer of a
  request VM, and every answered request was one reset. A port the kernel picks is still
  the public one the program is told. A warm-up that cannot reach the program stops
  kvmserver.
- What a request VM does to the listener every VM shares (shutdown, a disconnect, options, a
  new backlog, its flags, bind) stays in that VM: later requests, in the same VM after its
  reset and in the others, are served and see the listener as it was. The request itself sees
  what Linux would show it (compared with the same server run natively).
- A request VM that holds its connection gets no second one from any kind of accept.
"""
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import describe, run_guest, transport_options
from servers import (READY_TIMEOUT, Endpoint, ServerProcess, http_get, make_endpoint,
                     server_factory, server_path, servers_dir)

__all__ = ["server_factory", "servers_dir"]

RUNTIME_DIR = Path(__file__).resolve().parents[1] / "servers" / "runtime"
# Three ways to wait for a connection: asyncio's epoll loop that accepts until EAGAIN,
# http.server's poll loop, libuv's (Node.js) epoll loop.
RUNTIMES = [
    pytest.param("/usr/bin/python3", "counter_asyncio.py", "asyncio", id="python-asyncio"),
    pytest.param("/usr/bin/python3", "counter.py", "python", id="python-http.server"),
    pytest.param("/usr/bin/node", "counter.js", "node", id="node"),
]
WARMUP = 100
RESETS = re.compile(r"kvmserver: (\d+) resets;")
RESET_LINE = re.compile(r"request VM \d+ reset:")


def poll_answer(endpoint: Endpoint):
    """One GET / on a fresh connection: the body, or None when no server accepted it."""
    try:
        return http_get(endpoint, "/", timeout=10).text
    except ConnectionRefusedError:
        return None


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("interpreter,script,name", RUNTIMES)
def test_no_client_reaches_the_master(kvmserver, server_factory, interpreter, script, name,
                                      threads):
    if not Path(interpreter).is_file():
        pytest.skip(f"{interpreter} not installed")
    server = server_factory.kvmserver(kvmserver, Path(interpreter), wait_ready=False,
                                      options=["--allow-read", "-v", "-e", "-t", str(threads),
                                               "-w", str(WARMUP)],
                                      args=[RUNTIME_DIR / script])
    endpoint = server.endpoint
    # From the start, through boot and warm-up, until five answers after readiness.
    answers, after_ready = [], 0
    deadline = time.monotonic() + 3 * READY_TIMEOUT
    while after_ready < 5:
        assert time.monotonic() < deadline, "no answers\n" + server.describe()
        assert server.process.poll() is None, server.describe()
        ready = server.ready_line.is_set()
        answer = poll_answer(endpoint)
        if answer is None:
            time.sleep(0.005)
            continue
        answers.append(answer)
        after_ready += ready
    pristine = f"{name} served {server.warmup_requests() + 1}\n"
    assert answers == [pristine] * len(answers), server.describe()
    # Every answered request was served by a request VM, which was then reset (-v logs each
    # reset once it is done: wait for the last one before stopping).
    deadline = time.monotonic() + 5
    while sum(bool(RESET_LINE.search(line)) for line in server.stderr_lines) < len(answers):
        assert time.monotonic() < deadline, server.describe()
        time.sleep(0.05)
    assert server.terminate(10) == 0, server.describe()
    resets = [int(m.group(1)) for m in map(RESETS.search, server.stderr_lines) if m]
    assert resets == [len(answers)], server.describe()


@pytest.mark.parametrize("how", ["bind0", "unbound"])
def test_kernel_chosen_port_is_the_public_one(kvmserver, server_factory, how):
    """getsockname tells the program the public port, before the freeze and after, though
    it accepts from a private listener until the freeze (-w 1)."""
    endpoint = Endpoint()
    argv = [kvmserver, *transport_options(), "--allow-listen", "--allow-read", "-e", "-w", "1",
            "run", "/usr/bin/python3", RUNTIME_DIR / "port0.py", how]
    server = ServerProcess(argv, endpoint)
    server.start()
    server_factory.started.append(server)
    server.wait_ready_line()
    printed = [line for line in server.stdout_lines if line.startswith("port ")]
    assert len(printed) == 1, server.describe()
    endpoint.port = int(printed[0].split()[1])
    assert endpoint.port > 0, server.describe()
    for _ in range(3):
        assert http_get(endpoint, "/").text == printed[0] + "\n", server.describe()
    assert server.terminate() == 0, server.describe()


def test_unreachable_warmup_stops_kvmserver(kvmserver):
    """A warm-up that cannot connect (a stream socket to a SOCK_SEQPACKET listener) ends
    kvmserver with an error: the program is never served without it."""
    endpoint = make_endpoint("unix")
    try:
        outcome = run_guest(kvmserver, "/usr/bin/python3",
                            [RUNTIME_DIR / "seqpacket.py", endpoint.path],
                            options=["--allow-listen", "--allow-read", "-e", "-w", "5"])
    finally:
        shutil.rmtree(Path(endpoint.path).parent, ignore_errors=True)
    stderr = outcome.stderr.decode(errors="replace")
    assert outcome.status == 1, describe(outcome)
    assert "warm-up" in stderr and "not serving" in stderr, describe(outcome)
    assert b"loaded" not in outcome.stdout, describe(outcome)


# ---------------------------------------------------------------------------- the listener

KINDS = ["tcp", "unix"]
# Routes of srv_listener that act on the listener; none may change it for later requests.
# "/listen" changes the backlog, which only `ss` shows.
ROUTES = ["/shutdown", "/disconnect", "/setsockopt", "/listen", "/nonblock", "/fionbio", "/bind"]


def native_answer(server_factory, program, kind, path):
    """What the route answers on a fresh native server (it may stop serving afterwards)."""
    server = server_factory.native(program, kind)
    answer = http_get(server.endpoint, path).text
    server.kill()
    return answer


def listen_backlog(endpoint: Endpoint):
    """The listening socket's backlog as `ss` shows it (Send-Q), or None without ss."""
    if not shutil.which("ss"):
        return None
    query = (["-lxH", "src", endpoint.path] if endpoint.is_unix
             else ["-ltnH", f"sport = :{endpoint.port}"])
    out = subprocess.run(["ss", *query], capture_output=True, text=True, timeout=10).stdout
    fields = out.split()
    column = 3 if endpoint.is_unix else 2       # unix lines start with the netid, u_str
    return int(fields[column]) if len(fields) > column else None


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("path", ROUTES)
def test_listener_calls_stay_in_their_vm(kvmserver, server_factory, servers_dir, path, kind,
                                         threads):
    program = server_path(servers_dir, "srv_listener")
    expected = native_answer(server_factory, program, kind, path)
    native_state = native_answer(server_factory, program, kind, "/state")
    server = server_factory.kvmserver(kvmserver, program, kind,
                                      options=["-e", "-t", str(threads)])
    endpoint = server.endpoint
    pristine = http_get(endpoint, "/state").text
    assert pristine == native_state, server.describe()
    backlog = listen_backlog(endpoint)
    for _ in range(2):
        assert http_get(endpoint, path).text == expected, server.describe()
        # More requests than VMs: the same VM after its reset, and the others.
        for _ in range(2 * threads + 1):
            assert http_get(endpoint, "/state").text == pristine, server.describe()
        if backlog is not None:
            assert listen_backlog(endpoint) == backlog, server.describe()
    assert server.terminate() == 0, server.describe()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", KINDS)
def test_no_second_connection_in_a_request(kvmserver, server_factory, servers_dir, kind,
                                           threads):
    """Connections are waiting while a request tries every way to accept one of them."""
    program = server_path(servers_dir, "srv_listener")
    server = server_factory.kvmserver(kvmserver, program, kind,
                                      options=["-e", "-t", str(threads)])
    endpoint = server.endpoint
    first = endpoint.connect()
    # One more than the other VMs can hold: at least one stays queued on the listener.
    waiting = [endpoint.connect() for _ in range(threads + 1)]
    try:
        first.sendall(b"GET /accept2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := first.recv(4096):
            reply += chunk
        assert reply.split(b"\r\n\r\n", 1)[-1] == (
            b"accept=EAGAIN poll=0 epoll=0 dup_accept=EAGAIN dup_poll=0 passed_accept=EAGAIN "
            b"passed_poll=0 passed_epoll=0\n"), server.describe()
        for sock in waiting:        # every one of them is still served, by a fresh VM
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
            assert data.endswith(b"\r\n\r\nhello\n"), server.describe()
    finally:
        first.close()
        for sock in waiting:
            sock.close()
    assert server.terminate() == 0, server.describe()
