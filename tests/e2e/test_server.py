"""Server mode end to end: the unmodified static test servers (tests/servers) under
`kvmserver run`: readiness, TCP and unix sockets, -t N, ephemeral isolation (-e), request time,
crash and memory limits, parallel request VMs, keep-alive and a clean stop on SIGTERM.

The test_native_* tests run the same servers without kvmserver, to check the servers and the
client code themselves (isolation expectations differ natively: nothing is reset).
"""
import re
import signal
import socket
import threading
import time

import pytest

from conftest import run_process
from servers import (SERVER_NAMES, STOP_TIMEOUT, ConnectionClosed, HttpConnection, Response,
                     free_port, http_get, request_outcome, scrape, server_factory,
                     server_path, servers_dir, wait_for_log)

# Imported fixtures must be module globals for pytest to find them.
__all__ = ["server_factory", "servers_dir"]

KINDS = ["tcp", "unix"]
# kvmserver's line for a request VM that crashed: the fault and the signal the program got.
CRASH_LOG = re.compile(r"kvmserver: request VM \d+: crashed: .*0x[0-9a-f]+.*\(signal 11\); "
                       r"connection closed, VM reset")
MEMORY_LOG = re.compile(r"kvmserver: request VM \d+: request exceeded --max-request-memory "
                        r"\(64 MiB\); connection closed, VM reset")


def assert_hello(response):
    assert isinstance(response, Response), f"expected a response, got {response!r}"
    assert response.status == 200 and response.body == b"hello\n", response


def assert_failed_request(outcome):
    """A request kvmserver had to abort: closed without a response, or an error status."""
    assert outcome == "closed" or outcome.status >= 500, f"request was not aborted: {outcome!r}"


def stop_cleanly(server):
    started = time.monotonic()
    code = server.terminate(STOP_TIMEOUT)
    assert code == 0, (f"kvmserver exit {code} after SIGTERM (None = still running after "
                       f"{STOP_TIMEOUT} s)\n" + server.describe())
    assert time.monotonic() - started < STOP_TIMEOUT


def counters(response):
    assert isinstance(response, Response) and response.status == 200, response
    fields = response.fields()
    return int(fields["global"]), int(fields["heap"])


# ---------------------------------------------------------------------------- native checks

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", SERVER_NAMES)
def test_native_smoke(server_factory, servers_dir, name, kind):
    server = server_factory.native(server_path(servers_dir, name), kind)
    endpoint = server.endpoint
    assert_hello(http_get(endpoint, "/"))
    with HttpConnection(endpoint) as conn:
        for _ in range(50):
            assert_hello(conn.get("/"))
        last = conn.get("/", keep_alive=False)
        assert_hello(last)
        assert last.headers.get("connection") == "close"
        with pytest.raises(ConnectionClosed):
            conn.receive()
    # Natively nothing is reset: the counters grow and the secret stays.
    first = counters(http_get(endpoint, "/counter"))
    assert counters(http_get(endpoint, "/counter")) == (first[0] + 1, first[1] + 1)
    assert http_get(endpoint, "/secret").text == "global=none heap=none\n"
    assert http_get(endpoint, "/secret?set=XYZ").status == 200
    assert http_get(endpoint, "/secret").text == "global=XYZ heap=XYZ\n"
    assert http_get(endpoint, "/secret?set=bad%20chars").status == 400
    assert http_get(endpoint, "/eat?mb=8").status == 200
    started = time.monotonic()
    assert http_get(endpoint, "/sleep?ms=100").status == 200
    assert time.monotonic() - started >= 0.1
    assert http_get(endpoint, "/nowhere").status == 404
    assert http_get(endpoint, "/eat?mb=x").status == 400


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_native_rejects_bad_requests(server_factory, servers_dir, name):
    server = server_factory.native(server_path(servers_dir, name))
    for raw in (b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
                b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", b"GET / HTTP/1.1\x00\r\n\r\n",
                b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n"):
        with HttpConnection(server.endpoint) as conn:
            conn.sock.sendall(raw)
            assert 400 <= conn.receive().status < 500
    assert_hello(http_get(server.endpoint, "/"))


@pytest.mark.parametrize("name", ["srv_poll", "srv_select", "srv_epoll"])
def test_native_multiplexes_connections(server_factory, servers_dir, name):
    """An idle keep-alive connection must not block others in the event-loop servers."""
    server = server_factory.native(server_path(servers_dir, name))
    with HttpConnection(server.endpoint) as idle, HttpConnection(server.endpoint) as busy:
        assert_hello(idle.get("/"))
        for _ in range(5):
            assert_hello(busy.get("/"))
        assert_hello(idle.get("/"))


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_native_crash_and_spin_routes(server_factory, servers_dir, name):
    path = server_path(servers_dir, name)
    spinner = server_factory.native(path)
    with pytest.raises(socket.timeout):
        http_get(spinner.endpoint, "/spin", timeout=0.5)
    assert spinner.process.poll() is None
    spinner.kill()
    crasher = server_factory.native(path)
    assert request_outcome(crasher.endpoint, "/crash") == "closed"
    assert crasher.process.wait(5) == -signal.SIGSEGV


# ---------------------------------------------------------------------------- kvmserver

@pytest.mark.parametrize("options", [["-t", "1"], ["-t", "2"], ["-e"]], ids=["t1", "t2", "e"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", SERVER_NAMES)
def test_serves(kvmserver, server_factory, servers_dir, name, kind, options):
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, name), kind, options)
    for _ in range(5):
        assert_hello(http_get(server.endpoint, "/"))
    with HttpConnection(server.endpoint) as conn:
        for _ in range(3):
            assert_hello(conn.get("/"))
    stop_cleanly(server)


@pytest.mark.parametrize("allow", [[], ["--allow-listen=127.0.0.1:1"]], ids=["none", "other"])
def test_listen_denied_without_permission(kvmserver, servers_dir, allow):
    """Without a matching --allow-listen, bind/listen fail with EACCES: the server reports it
    and exits 1, and kvmserver never reports readiness."""
    port = free_port()
    outcome = run_process([kvmserver, *allow, "-t", "1", "run",
                           server_path(servers_dir, "srv_accept"), str(port)], timeout=30)
    assert outcome.status == 1, outcome
    assert b"Permission denied" in outcome.stderr, outcome
    assert b"Program '" not in outcome.stdout, outcome


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_ephemeral_counter_starts_fresh(kvmserver, server_factory, servers_dir, name):
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, name),
                                      options=["-t", "1", "-e"])
    seen = [counters(http_get(server.endpoint, "/counter")) for _ in range(20)]
    assert seen == [(1, 1)] * 20
    stop_cleanly(server)


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_counter_grows_without_ephemeral(kvmserver, server_factory, servers_dir, name):
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, name),
                                      options=["-t", "1"])
    seen = [counters(http_get(server.endpoint, "/counter")) for _ in range(20)]
    first = seen[0][0]
    assert seen == [(first + i, first + i) for i in range(20)]
    stop_cleanly(server)


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_ephemeral_secret_not_visible_to_next_connection(kvmserver, server_factory, servers_dir,
                                                         name):
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, name),
                                      options=["-t", "1", "-e"])
    with HttpConnection(server.endpoint) as conn:
        assert conn.get("/secret?set=XYZ").status == 200
        assert conn.get("/secret").text == "global=XYZ heap=XYZ\n"   # same connection, same VM
    for _ in range(3):
        assert http_get(server.endpoint, "/secret").text == "global=none heap=none\n"
    stop_cleanly(server)


@pytest.mark.parametrize("reset_options", [["--no-ephemeral-keep-working-memory"],
                                           ["--limit-request-memory", "0"]],
                         ids=["no-keep-working-memory", "limit-0"])
def test_full_reset_isolates_too(kvmserver, server_factory, servers_dir, reset_options):
    """Resets that drop the working set (the fork starts over from the image) isolate
    connections as well, request after request."""
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, "srv_epoll"),
                                      options=["-t", "1", "-e", *reset_options])
    for _ in range(5):
        assert counters(http_get(server.endpoint, "/counter")) == (1, 1)
        assert http_get(server.endpoint, "/secret?set=XYZ").status == 200
        assert http_get(server.endpoint, "/secret").text == "global=none heap=none\n"
    stop_cleanly(server)


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_secret_persists_without_ephemeral(kvmserver, server_factory, servers_dir, name):
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, name),
                                      options=["-t", "1"])
    assert http_get(server.endpoint, "/secret?set=XYZ").status == 200
    assert http_get(server.endpoint, "/secret").text == "global=XYZ heap=XYZ\n"
    stop_cleanly(server)


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_max_request_time_cuts_off_spin(kvmserver, server_factory, servers_dir, name):
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, name),
                                      options=["-t", "1", "--max-request-time", "1"])
    started = time.monotonic()
    try:
        outcome = request_outcome(server.endpoint, "/spin", timeout=5)
    except socket.timeout:
        pytest.fail("/spin was not cut off within 5 s\n" + server.describe())
    assert time.monotonic() - started < 3.0
    assert_failed_request(outcome)
    assert_hello(http_get(server.endpoint, "/"))
    stop_cleanly(server)


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_crash_is_contained(kvmserver, server_factory, servers_dir, name):
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, name),
                                      options=["-t", "1"])
    assert_hello(http_get(server.endpoint, "/"))
    logged = server.log_line_count()
    assert_failed_request(request_outcome(server.endpoint, "/crash"))
    assert wait_for_log(server, logged, CRASH_LOG.search), (
        "no crash line logged\n" + server.describe())
    for _ in range(3):
        assert_hello(http_get(server.endpoint, "/"))
    stop_cleanly(server)


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_max_request_memory(kvmserver, server_factory, servers_dir, name):
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, name),
                                      options=["-t", "1", "--max-request-memory", "64"])
    logged = server.log_line_count()
    # kvmserver closes the connection: an answer (the guest's own 503 when its allocation
    # fails) would mean the limit was not enforced as an abort.
    assert request_outcome(server.endpoint, "/eat?mb=200", timeout=10) == "closed"
    assert wait_for_log(server, logged, MEMORY_LOG.search), (
        "the aborted request was not logged\n" + server.describe())
    assert_hello(http_get(server.endpoint, "/"))
    eaten = http_get(server.endpoint, "/eat?mb=8", timeout=10)
    assert eaten.status == 200 and eaten.text == "ate 8 MiB\n", eaten
    stop_cleanly(server)


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_request_vms_run_in_parallel(kvmserver, server_factory, servers_dir, name):
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, name),
                                      options=["-t", "2", "-e"])
    assert_hello(http_get(server.endpoint, "/"))    # warm: both VMs forked and waiting
    results = [None, None]

    def sleeper(slot):
        try:
            results[slot] = http_get(server.endpoint, "/sleep?ms=1000", timeout=5)
        except Exception as error:   # reported by the assertion below
            results[slot] = error

    threads = [threading.Thread(target=sleeper, args=(slot,)) for slot in range(2)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    elapsed = time.monotonic() - started
    for result in results:
        assert isinstance(result, Response) and result.status == 200, result
    assert elapsed < 1.8, f"two 1 s requests took {elapsed:.2f} s: not served in parallel"
    stop_cleanly(server)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("options", [["-t", "1"], ["-t", "2", "-e"]], ids=["t1", "t2e"])
def test_signal_stops_cleanly(kvmserver, server_factory, servers_dir, options, sig):
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, "srv_accept"),
                                      options=options)
    assert_hello(http_get(server.endpoint, "/"))
    started = time.monotonic()
    server.process.send_signal(sig)
    try:
        code = server.process.wait(STOP_TIMEOUT)
    except Exception:
        pytest.fail(f"kvmserver still running {STOP_TIMEOUT} s after {sig.name}\n"
                    + server.describe())
    assert code == 0, f"exit {code} after {sig.name}\n" + server.describe()
    assert time.monotonic() - started < STOP_TIMEOUT


def test_sigterm_during_spinning_request(kvmserver, server_factory, servers_dir):
    """A request VM stuck in a loop must not keep kvmserver from stopping."""
    port = free_port()
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, "srv_accept"),
                                      options=["-t", "1", "--max-request-time", "30",
                                               "--metrics", f"127.0.0.1:{port}"])
    spinning = HttpConnection(server.endpoint)
    try:
        spinning.send("/spin")
        # The whole request is sent before the guest accepts: once it has, it spins.
        deadline = time.monotonic() + 5
        while scrape(port)["kvmserver_requests_total"] < 1:
            assert time.monotonic() < deadline, "the guest never accepted\n" + server.describe()
            time.sleep(0.01)
        stop_cleanly(server)
        with pytest.raises(ConnectionClosed):    # the spin never answered
            spinning.receive()
    finally:
        spinning.close()


@pytest.mark.parametrize("ephemeral", [False, True], ids=["persistent", "ephemeral"])
def test_epoll_keep_alive(kvmserver, server_factory, servers_dir, ephemeral):
    options = ["-t", "1"] + (["-e"] if ephemeral else [])
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, "srv_epoll"),
                                      options=options)
    with HttpConnection(server.endpoint) as conn:
        seen = [counters(conn.get("/counter")) for _ in range(50)]
    first = seen[0][0]
    # One connection is served by one VM from start to end, reset or not.
    assert seen == [(first + i, first + i) for i in range(50)]
    if ephemeral:
        assert first == 1
    after = counters(http_get(server.endpoint, "/counter"))
    assert after == ((1, 1) if ephemeral else (first + 50, first + 50))
    stop_cleanly(server)


def test_bundled_example_as_make_run_serves_it(kvmserver, server_factory, build):
    """`make run`: the example server, ephemeral: every page load starts from the frozen
    image, so its request counter shows 1 every time."""
    server = server_factory.kvmserver(kvmserver, build / "examples" / "httpd", options=["-e"])
    for _ in range(5):
        page = http_get(server.endpoint, "/")
        assert page.status == 200
        assert "served <b>1</b> request" in page.text, page.text
    stop_cleanly(server)
