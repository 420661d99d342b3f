"""Operating kvmserver: the Prometheus metrics of --metrics (parsed by `promtool check
metrics`, and moving with real requests, crashes, time-outs and denials) and the graceful stop
on SIGTERM (--shutdown-timeout).
"""
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from servers import (STOP_TIMEOUT, Response, free_port, http_get, request_outcome, scrape,
                     scrape_text, server_factory, server_path, servers_dir, wait_for_log)

# Imported fixtures must be module globals for pytest to find them.
__all__ = ["server_factory", "servers_dir"]

CUT_LINE = re.compile(r"stopped accepting; (\d+) requests in flight cut short")


def metrics_server(server_factory, kvmserver, program, options=()):
    port = free_port()
    server = server_factory.kvmserver(kvmserver, program,
                                      options=["--metrics", f"127.0.0.1:{port}", *options])
    return server, port


def test_exposition_passes_promtool_and_counts_requests(kvmserver, server_factory, build):
    promtool = shutil.which("promtool")
    assert promtool, "promtool not installed (scripts/install-deps.sh installs prometheus)"
    server, port = metrics_server(server_factory, kvmserver, build / "examples" / "httpd",
                                  ["-e"])
    before = scrape(port)
    assert before["kvmserver_requests_total"] == 0
    assert before["kvmserver_boot_seconds"] > 0
    assert before['kvmserver_request_vms{state="idle"}'] == 1
    requests = 7
    for _ in range(requests):
        assert http_get(server.endpoint, "/").status == 200
    text = scrape_text(port)
    checked = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                             capture_output=True, timeout=30)
    assert checked.returncode == 0, (checked.stdout + checked.stderr).decode() + text
    after = scrape(port)
    assert after["kvmserver_requests_total"] == requests
    assert after["kvmserver_reset_duration_seconds_count"] == requests
    assert after["kvmserver_reset_pages_count"] == requests
    assert after["kvmserver_request_duration_seconds_count"] == requests
    assert after['kvmserver_request_duration_seconds_bucket{le="+Inf"}'] == requests
    assert after["kvmserver_reset_pages_sum"] > 0
    assert after["kvmserver_vm_exits_total"] > 0
    assert after['kvmserver_request_vms{state="busy"}'] == 0
    assert after['kvmserver_build_info{version="0.1.0"}'] == 1
    assert after["kvmserver_guest_crashes_total"] == 0
    # The test harness gives kvmserver an empty environment: nothing to withhold.
    assert after['kvmserver_denied_total{kind="env"}'] == 0


def test_crash_and_timeout_are_counted(kvmserver, server_factory, servers_dir):
    server, port = metrics_server(server_factory, kvmserver,
                                  server_path(servers_dir, "srv_accept"),
                                  ["-e", "--max-request-time", "0.5"])
    assert request_outcome(server.endpoint, "/crash") == "closed"
    assert request_outcome(server.endpoint, "/spin", timeout=5) == "closed"
    assert http_get(server.endpoint, "/").status == 200
    samples = scrape(port)
    assert samples["kvmserver_guest_crashes_total"] == 1
    assert samples["kvmserver_request_timeouts_total"] == 1
    assert samples["kvmserver_requests_total"] == 3


@pytest.mark.parametrize("allowed", [False, True], ids=["denied", "allowed"])
def test_denied_connect_is_counted(kvmserver, server_factory, servers_dir, allowed):
    closed_port = free_port()          # nothing listens there: allowed, it is refused
    options = ["-e"] + ([f"--allow-connect=127.0.0.1:{closed_port}"] if allowed else [])
    server, port = metrics_server(server_factory, kvmserver,
                                  server_path(servers_dir, "srv_accept"), options)
    for _ in range(2):
        answer = http_get(server.endpoint, f"/connect?port={closed_port}")
        assert answer.text == ("connect: 111\n" if allowed else "connect: 13\n")  # ECONNREFUSED / EACCES
    samples = scrape(port)
    assert samples['kvmserver_denied_total{kind="connect"}'] == (0 if allowed else 2)
    assert samples['kvmserver_denied_total{kind="listen"}'] == 0


def test_metrics_path_only(kvmserver, server_factory, servers_dir):
    server, port = metrics_server(server_factory, kvmserver,
                                  server_path(servers_dir, "srv_accept"))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 404")


def test_metrics_bind_failure_stops_start_up(kvmserver, servers_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([kvmserver, "--metrics", f"127.0.0.1:{port}", "--allow-listen",
                                 "run", server_path(servers_dir, "srv_accept"),
                                 str(free_port())],
                                capture_output=True, timeout=20, env={})
    assert result.returncode != 0
    assert b"--metrics" in result.stderr and b"Address already in use" in result.stderr
    assert b"Program '" not in result.stdout, "the program booted despite the failure"


# ---------------------------------------------------------------------------- graceful stop

def start_slow_request(endpoint, ms):
    """Sends /sleep?ms=N; the thread's result list gets the Response or the failure."""
    result = []

    def run():
        try:
            result.append(http_get(endpoint, f"/sleep?ms={ms}", timeout=ms / 1000 + 10))
        except Exception as error:            # noqa: BLE001 - reported by the test
            result.append(error)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def sigterm_and_wait_for_stop(server):
    since = server.log_line_count()
    server.process.send_signal(signal.SIGTERM)
    assert wait_for_log(server, since, lambda line: "received, stopping" in line), \
        server.describe()


@pytest.mark.parametrize("kind", ["tcp", "unix"])
@pytest.mark.parametrize("name", ["srv_accept", "srv_epoll"])
def test_sigterm_lets_request_in_flight_finish(kvmserver, server_factory, servers_dir, name,
                                               kind):
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, name), kind,
                                      options=["-e", "-t", "2"])
    thread, result = start_slow_request(server.endpoint, 1500)
    time.sleep(0.3)                              # the request VM is in its sleep
    started = time.monotonic()
    sigterm_and_wait_for_stop(server)
    time.sleep(0.1)
    assert server.process.poll() is None, "kvmserver did not wait for the request"
    with pytest.raises(ConnectionRefusedError):
        server.endpoint.connect(timeout=2).close()
    code = server.process.wait(STOP_TIMEOUT)
    thread.join(5)
    assert code == 0, server.describe()
    assert time.monotonic() - started < 1.5 + 1
    assert result and isinstance(result[0], Response), result
    assert result[0].status == 200 and result[0].text == "slept 1500 ms\n"
    cut = [CUT_LINE.search(line) for line in server.stderr_lines]
    assert [m.group(1) for m in cut if m] == ["0"], server.describe()


def test_sigterm_cuts_request_past_shutdown_timeout(kvmserver, server_factory, servers_dir):
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, "srv_accept"),
                                      options=["-e", "--shutdown-timeout", "1"])
    thread, result = start_slow_request(server.endpoint, 5000)
    time.sleep(0.3)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(STOP_TIMEOUT)
    elapsed = time.monotonic() - started
    thread.join(5)
    assert code == 0, server.describe()
    assert 0.9 < elapsed < 1 + 1, f"exited {elapsed:.2f} s after SIGTERM"
    assert result and not isinstance(result[0], Response), result
    cut = [CUT_LINE.search(line) for line in server.stderr_lines]
    assert [m.group(1) for m in cut if m] == ["1"], server.describe()
