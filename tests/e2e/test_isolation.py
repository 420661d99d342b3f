"""Ephemeral isolation, one kind of state at a time. tests/servers/isolation.c changes one kind
of process state per endpoint and reports what it found before changing it. Under
`kvmserver -e` every connection starts from the frozen image, so every answer an endpoint gives
must be its pristine one: with one request VM and with two (while one VM still holds its
connection, the other serves, so a change made in one VM is looked for in the other), under the
transport the suite runs with, and after `-w 100`.

The controls show that each endpoint really changes its state, so that the isolation test can
fail: natively, and under kvmserver without -e, the answers move.

Runtimes: the asyncio and Node.js counters with `-w 100`, asked from the moment kvmserver
starts (as a health check or a load balancer would), must give the same count every time.
"""
import socket
import time
from pathlib import Path

import pytest

from isolation_endpoints import (CLOSED, ENDPOINTS, PRISTINE, answer_of, ask, not_pristine,
                                 steps_for)
from servers import (ConnectionClosed, HttpConnection, Response, ServerFactory, http_get,
                     request_outcome, server_factory, server_path, servers_dir)

__all__ = ["server_factory", "servers_dir"]

WARMUP = 100
RUNTIME_DIR = Path(__file__).resolve().parents[1] / "servers" / "runtime"

# State kvmserver does not keep, so that isolating it cannot fail there: resource limits are
# fixed by the VM (a setrlimit within them is accepted and changes nothing). Calls kvmserver
# answers ENOSYS are recognised by their answer.
FIXED_BY_KVMSERVER = {"/rlimit"}

EPHEMERAL_OPTIONS = [
    pytest.param(["-t", "1"], id="t1"),
    pytest.param(["-t", "1", "-w", str(WARMUP)], id="t1-w100"),
    pytest.param(["-t", "2", "-v"], id="t2"),
    pytest.param(["-t", "2", "-v", "-w", str(WARMUP)], id="t2-w100"),
]


def ask_in_a_row(server, steps, two_vms):
    """Sends the steps one connection each; returns (steps sent, answers). With two VMs the
    first step's connection is held open, so its VM stays busy (and unreset) while the other
    VM serves the next steps; then the steps run again on whichever VM takes them."""
    if not two_vms:
        return steps, [ask(server.endpoint, path) for path in steps]
    with HttpConnection(server.endpoint) as held:
        try:
            answers = [answer_of(held.get(steps[0]))]
        except ConnectionClosed:
            answers = [CLOSED]
        answers += [ask(server.endpoint, path) for path in steps[1:]]
    answers += [ask(server.endpoint, path) for path in steps]
    return steps + steps, answers


def report(steps, answers, server):
    return ("\n".join(f"{path}: {got!r}" for path, got in zip(steps, answers)) + "\n"
            + server.describe())


def wait_for_resets_of_both_vms(server, since, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = server.log_lines_since(since)
        if all(any(f"request VM {vm} reset" in line for line in lines) for vm in (0, 1)):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module", params=EPHEMERAL_OPTIONS)
def ephemeral_server(request, kvmserver, servers_dir):
    """One ephemeral server per option set, shared by every endpoint's check: each check's
    first answer is then also checked against what the checks before it changed."""
    factory = ServerFactory()
    options = request.param
    server = factory.kvmserver(kvmserver, server_path(servers_dir, "isolation"),
                               options=["-e", "--allow-read", *options])
    server.two_vms = options[1] == "2"
    yield server
    factory.cleanup()


@pytest.fixture(scope="module")
def persistent_server(kvmserver, servers_dir):
    factory = ServerFactory()
    yield factory.kvmserver(kvmserver, server_path(servers_dir, "isolation"),
                            options=["-t", "1", "--allow-read"])
    factory.cleanup()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_answer_is_pristine(ephemeral_server, endpoint):
    server = ephemeral_server
    logged = server.log_line_count()
    steps, answers = ask_in_a_row(server, steps_for(endpoint), server.two_vms)
    assert not_pristine(steps, answers) == [], report(steps, answers, server)
    if server.two_vms:
        assert wait_for_resets_of_both_vms(server, logged), (
            "the check did not reach both request VMs\n" + server.describe())


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_native_answers_move(server_factory, servers_dir, endpoint):
    """Control: natively (a fork-less server, nothing reset) the first answer is the pristine
    one and the endpoint's later answers show what the earlier requests changed."""
    server = server_factory.native(server_path(servers_dir, "isolation"))
    steps = steps_for(endpoint)
    answers = [ask(server.endpoint, path) for path in steps]
    assert endpoint in [path for path, _, _ in not_pristine(steps, answers)], (
        report(steps, answers, server))
    assert answers[0] == PRISTINE.get(steps[0], answers[0]), report(steps, answers, server)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_answers_move_without_ephemeral(persistent_server, endpoint):
    """Control: without -e one request VM keeps what each request changed, so inside kvmserver
    too the endpoint's later answers differ from its first: the isolation test above sees the
    state it is meant to see. Where kvmserver does not keep that state at all, the answer says
    so every time."""
    server = persistent_server
    steps = steps_for(endpoint)
    answers = [ask(server.endpoint, path) for path in steps]
    if endpoint in FIXED_BY_KVMSERVER or "=ENOSYS" in answers[0]:
        assert len(set(answers)) == 1, (
            f"kvmserver now keeps the state {endpoint} changes: drop it from "
            "FIXED_BY_KVMSERVER\n" + report(steps, answers, server))
        return
    assert endpoint in [path for path, _, _ in not_pristine(steps, answers)], (
        report(steps, answers, server))


RUNTIME_COUNTERS = [
    pytest.param("/usr/bin/python3", "counter_asyncio.py", "asyncio", id="python-asyncio"),
    pytest.param("/usr/bin/node", "counter.js", "node", id="node"),
]


def served_count(outcome, name):
    assert isinstance(outcome, Response) and outcome.status == 200, outcome
    prefix = f"{name} served "
    assert outcome.text.startswith(prefix), outcome.text
    return int(outcome.text[len(prefix):])


def first_answer(server, timeout=60.0):
    """Asks from the moment kvmserver starts, as a health check would, until the program
    listens; returns that first request's outcome."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return request_outcome(server.endpoint, "/", timeout=30)
        except ConnectionRefusedError:
            if server.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the server never listened\n" + server.describe())
            time.sleep(0.01)
        except socket.timeout:
            pytest.fail("no answer within 30 s\n" + server.describe())


def test_warmup_requests_come_in_several_shapes(kvmserver, server_factory):
    """A JIT runtime warmed up with one request shape specialises its header parsing to it,
    and the first real request of another shape would deoptimise that code in every request
    VM: the warm-up takes turns among six shapes (health checks, wrk, curl closing and
    keeping the connection, a browser, a proxy). More than 4 of them are HTTP/1.1 with
    headers in different orders, so that V8's sites reading the headers object see more maps
    than it specialises to and take any client's order."""
    server = server_factory.kvmserver(kvmserver, Path("/usr/bin/python3"),
                                      options=["--allow-read", "-e", "-t", "1", "-w", "8"],
                                      args=[str(RUNTIME_DIR / "warmup_shapes.py")])
    answers = {http_get(server.endpoint, "/", timeout=30).text for _ in range(3)}
    # http_get's shape (Host, then Connection) is the health checks', one of the six.
    assert answers == {"served 9 in 6 shapes, 5 of HTTP/1.1\n"}, (answers, server.describe())


@pytest.mark.parametrize("interpreter,script,name", RUNTIME_COUNTERS)
def test_runtime_counter_after_warmup(kvmserver, server_factory, interpreter, script, name):
    """The count in the image is the warm-up's: every request, the first included, answers
    the warm-up's requests + 1 (WARMUP, or a few more where the runtime's helper threads set
    the freeze point). A request served before the freeze would be counted into the image."""
    if not Path(interpreter).is_file():
        pytest.skip(f"{interpreter} not installed")
    server = server_factory.kvmserver(kvmserver, Path(interpreter),
                                      options=["--allow-read", "-e", "-t", "1", "-w",
                                               str(WARMUP)],
                                      args=[str(RUNTIME_DIR / script)], wait_ready=False)
    seen = [served_count(first_answer(server), name)]
    seen += [served_count(http_get(server.endpoint, "/", timeout=30), name) for _ in range(5)]
    sent = server.warmup_requests()
    assert WARMUP <= sent <= 2 * WARMUP, server.describe()
    assert seen == [sent + 1] * 6, server.describe()
