"""Helpers for the server-mode end-to-end tests (test_server.py): where the test servers are,
free TCP ports and unix socket paths, a small HTTP/1.1 client over raw sockets (TCP or unix),
and starting/stopping a server natively or under `kvmserver run` with bounded waits.

Every socket operation and every wait has a timeout, so a hung server fails a test instead of
hanging the suite.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import transport_options

SERVER_NAMES = ["srv_accept", "srv_poll", "srv_select", "srv_epoll"]
READY_TIMEOUT = 20.0     # seconds for a server to reach readiness
STOP_TIMEOUT = 5.0       # seconds kvmserver may take to exit after SIGTERM
IO_TIMEOUT = 5.0         # default per-socket-operation timeout
READY_PREFIX = "Program '"
WARMUP_LINE = re.compile(r"kvmserver: warm-up: \d+ of (\d+) requests answered")


# ---------------------------------------------------------------------------- runtimes

def _runtime(env_var, name, cached):
    """A JavaScript runtime from $env_var, PATH, or where scripts/install-deps.sh puts it
    (under ~/.cache/kvmserver); None when there is none."""
    for candidate in (os.environ.get(env_var), shutil.which(name),
                      Path.home() / ".cache/kvmserver" / cached):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    return None


def bun_path():
    return _runtime("KVMS_BUN", "bun", "bun/node_modules/@oven/bun-linux-x64/bin/bun")


def deno_path():
    return _runtime("KVMS_DENO", "deno", "deno/node_modules/@deno/linux-x64-glibc/deno")


# ---------------------------------------------------------------------------- endpoints

def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Endpoint:
    """Where a test server listens: TCP on 127.0.0.1:port, or a unix socket path."""
    port: int = 0
    path: str = ""

    @property
    def is_unix(self) -> bool:
        return bool(self.path)

    def argv(self) -> str:
        """The test servers' argv[1]."""
        return f"unix:{self.path}" if self.is_unix else str(self.port)

    def connect(self, timeout=IO_TIMEOUT) -> socket.socket:
        family = socket.AF_UNIX if self.is_unix else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(self.path if self.is_unix else ("127.0.0.1", self.port))
        except OSError:
            sock.close()
            raise
        return sock

    def kvmserver_options(self):
        """The permission options kvmserver needs to let the guest listen here."""
        if self.is_unix:
            return ["--allow-listen"]    # HOST:PORT lists cannot name a unix socket
        return [f"--allow-listen=127.0.0.1:{self.port}"]

    def __str__(self):
        return f"unix:{self.path}" if self.is_unix else f"127.0.0.1:{self.port}"


def make_endpoint(kind: str) -> Endpoint:
    if kind == "unix":
        # sun_path holds 107 characters: pytest's tmp_path can be longer, so use a short folder.
        folder = tempfile.mkdtemp(prefix="kvms-", dir="/tmp")
        return Endpoint(path=os.path.join(folder, "s.sock"))
    return Endpoint(port=free_port())


# ---------------------------------------------------------------------------- HTTP client

class ConnectionClosed(Exception):
    """The server closed (or reset) the connection before a whole response arrived."""


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def fields(self) -> dict:
        """Parses bodies like "global=1 heap=1\\n" into {"global": "1", "heap": "1"}."""
        return dict(item.split("=", 1) for item in self.text.split() if "=" in item)


class HttpConnection:
    """One client connection; several requests may go over it (keep-alive)."""

    def __init__(self, endpoint: Endpoint, timeout=IO_TIMEOUT):
        self.sock = endpoint.connect(timeout)
        self.buffer = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, path: str, keep_alive=True):
        connection = "keep-alive" if keep_alive else "close"
        request = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: {connection}\r\n\r\n"
        self.sock.sendall(request.encode())

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError) as error:
            raise ConnectionClosed(str(error)) from error
        if not chunk:
            raise ConnectionClosed("end of stream")
        self.buffer += chunk

    def receive(self) -> Response:
        """Reads one response. Raises ConnectionClosed or socket.timeout."""
        while b"\r\n\r\n" not in self.buffer:
            if len(self.buffer) > 65536:
                raise AssertionError("response head too long")
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        assert len(parts) >= 2 and parts[0].startswith("HTTP/1."), f"bad status line {lines[0]!r}"
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Response(int(parts[1]), headers, body)

    def get(self, path: str, keep_alive=True) -> Response:
        self.send(path, keep_alive)
        return self.receive()


def http_get(endpoint: Endpoint, path: str, timeout=IO_TIMEOUT) -> Response:
    """One request on a fresh connection with `Connection: close`."""
    with HttpConnection(endpoint, timeout) as conn:
        return conn.get(path, keep_alive=False)


def request_outcome(endpoint: Endpoint, path: str, timeout=IO_TIMEOUT):
    """A Response, or the string "closed" when the connection ended without one. A timeout
    propagates (socket.timeout): the caller decides whether that is acceptable."""
    try:
        return http_get(endpoint, path, timeout)
    except (ConnectionClosed, ConnectionResetError, BrokenPipeError):
        return "closed"


# ---------------------------------------------------------------------------- --metrics

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def scrape_text(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"text/plain; version=0.0.4" in head, head
    return body.decode()


def scrape(port: int) -> dict:
    """{'name{labels}': value} of every sample."""
    samples = {}
    for line in scrape_text(port).splitlines():
        if line.startswith("#") or not line:
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples



# ---------------------------------------------------------------------------- host state

def frozen_memory_bytes(pid: int) -> int:
    """Bytes the master's guest memory (its memfd, open in kvmserver) has allocated."""
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/memfd:kvmserver-guest"):
                return os.stat(f"/proc/{pid}/fd/{fd}").st_blocks * 512
        except OSError:
            continue
    pytest.fail("no kvmserver-guest memfd among kvmserver's fds")


def host_state(pid: int, metrics_port: int):
    """kvmserver's fd count, RSS (KiB) and frozen memory (bytes) once every request so far
    has been reset (kvmserver runs with --metrics on metrics_port): a request VM between its
    client's EOF and the end of its reset still holds that request's fds."""
    deadline = time.monotonic() + 10
    while True:
        samples = scrape(metrics_port)
        if (samples["kvmserver_reset_duration_seconds_count"] >=
                samples["kvmserver_requests_total"]):
            break
        assert time.monotonic() < deadline, f"resets never caught up: {samples}"
        time.sleep(0.02)
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return fds, rss, frozen_memory_bytes(pid)


def serve_on_both_vms(server, port, request, finish):
    """With `-t 2 -v`: holds one connection open (a request VM takes it and waits for its
    request) while `request()` is served by the other VM, then `finish(sock)` completes the
    held one, until both VMs have logged a reset. Only then is what each VM holds between
    requests all made, and a host fd count or RSS a baseline."""
    for _ in range(20):
        held = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        try:
            request()
            finish(held)
        finally:
            held.close()
        deadline = time.monotonic() + IO_TIMEOUT
        while time.monotonic() < deadline:
            logged = "\n".join(server.stderr_lines)
            if "request VM 0 reset" in logged and "request VM 1 reset" in logged:
                return
            time.sleep(0.02)
    pytest.fail("the two request VMs did not both serve\n" + server.describe())


# ---------------------------------------------------------------------------- processes

@dataclass
class ServerProcess:
    """A running server (native or kvmserver) whose stdout and stderr are collected by
    threads, so the pipes never fill up and the output can be inspected at any time."""
    argv: list
    endpoint: Endpoint
    process: subprocess.Popen = None
    stdout_lines: list = field(default_factory=list)
    stderr_lines: list = field(default_factory=list)
    ready_line: threading.Event = field(default_factory=threading.Event)
    cwd: Path = None

    def start(self):
        self.process = subprocess.Popen([str(a) for a in self.argv], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={},
                                        cwd=self.cwd)
        threading.Thread(target=self._collect, args=(self.process.stdout, self.stdout_lines, True),
                         daemon=True).start()
        threading.Thread(target=self._collect, args=(self.process.stderr, self.stderr_lines, False),
                         daemon=True).start()

    def _collect(self, pipe, lines, watch_ready):
        for raw in iter(pipe.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            lines.append(line)
            if watch_ready and line.startswith(READY_PREFIX):
                self.ready_line.set()
        pipe.close()

    @property
    def stderr(self) -> str:
        return "\n".join(self.stderr_lines)

    def describe(self) -> str:
        code = self.process.poll() if self.process else None
        return (f"argv: {' '.join(map(str, self.argv))}\nexit: {code}\n--- stdout ---\n"
                + "\n".join(self.stdout_lines) + "\n--- stderr ---\n" + self.stderr)

    def wait_ready_line(self, timeout=READY_TIMEOUT):
        """Waits for kvmserver's `Program '...' loaded.` line."""
        deadline = time.monotonic() + timeout
        while not self.ready_line.wait(0.05):
            if self.process.poll() is not None:
                time.sleep(0.1)   # let the collector threads catch the last lines
                pytest.fail("kvmserver exited before readiness\n" + self.describe())
            if time.monotonic() > deadline:
                pytest.fail(f"no {READY_PREFIX!r} line within {timeout} s\n" + self.describe())

    def wait_connectable(self, timeout=READY_TIMEOUT):
        """Natively there is no readiness line: wait until a connection is accepted."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                pytest.fail("server exited before listening\n" + self.describe())
            try:
                self.endpoint.connect(timeout=1.0).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"server not listening within {timeout} s\n" + self.describe())
                time.sleep(0.02)

    def warmup_requests(self, timeout=5.0) -> int:
        """How many warm-up requests kvmserver sent (its `warm-up: A of N requests` line):
        -w's count, or a few more where the program's helper threads set the freeze point."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.stderr_lines:
                m = WARMUP_LINE.search(line)
                if m:
                    return int(m.group(1))
            if time.monotonic() > deadline:
                pytest.fail("no warm-up line\n" + self.describe())
            time.sleep(0.02)

    def log_lines_since(self, count: int):
        """stdout and stderr lines kvmserver logged after it had logged `count` lines."""
        return (self.stdout_lines + self.stderr_lines)[count:]

    def log_line_count(self) -> int:
        return len(self.stdout_lines) + len(self.stderr_lines)

    def terminate(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then wait; returns the exit code (None if it had to be killed)."""
        if self.process.poll() is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


def wait_for_log(server: ServerProcess, since: int, predicate, timeout=3.0):
    """Waits until a log line written after `since` lines satisfies predicate; returns them."""
    deadline = time.monotonic() + timeout
    while True:
        lines = server.log_lines_since(since)
        if any(predicate(line) for line in lines):
            return lines
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)


def ready_transport(server: ServerProcess) -> str:
    """The transport kvmserver's readiness line names."""
    ready = [line for line in server.stdout_lines if line.startswith(READY_PREFIX)]
    assert ready, "no readiness line\n" + server.describe()
    match = re.search(r" transport=(\w+)$", ready[0])
    assert match, f"readiness line names no transport: {ready[0]!r}"
    return match.group(1)


def assert_transport_used(server: ServerProcess):
    """The suite's run for a transport (KVMS_TRANSPORT) tests that transport: kvmserver must
    not have fallen back to another one."""
    wanted = os.environ.get("KVMS_TRANSPORT")
    if wanted:
        assert ready_transport(server) == wanted, (
            f"KVMS_TRANSPORT={wanted}, but kvmserver serves through another transport\n"
            + server.describe())


class ServerFactory:
    """Starts servers for one test and makes sure none outlives it."""

    def __init__(self):
        self.started = []

    def native(self, program: Path, kind="tcp") -> ServerProcess:
        assert program.is_file(), f"test server {program} not built"
        endpoint = make_endpoint(kind)
        server = ServerProcess([program, endpoint.argv()], endpoint)
        server.start()
        self.started.append(server)
        server.wait_connectable()
        return server

    def kvmserver(self, kvmserver: Path, program: Path, kind="tcp", options=(),
                  ready_timeout=READY_TIMEOUT, args=(), wait_ready=True, permissions=None,
                  cwd=None, endpoint=None) -> ServerProcess:
        """`kvmserver [listen permissions] [options] run PROGRAM [ARGS] ENDPOINT`, waiting
        for the readiness line unless told not to. `permissions(endpoint)` gives the listen
        permissions instead of the endpoint's own; `endpoint` one chosen beforehand."""
        assert program.is_file(), f"test server {program} not built"
        endpoint = endpoint or make_endpoint(kind)
        listen = permissions(endpoint) if permissions else endpoint.kvmserver_options()
        argv = [kvmserver, *transport_options(), *listen, *options,
                "run", program, *args, endpoint.argv()]
        server = ServerProcess(argv, endpoint, cwd=cwd)
        server.start()
        self.started.append(server)
        if wait_ready:
            server.wait_ready_line(ready_timeout)
            assert_transport_used(server)
        return server

    def cleanup(self):
        for server in self.started:
            server.kill()
            # pytest shows captured output only for failing tests: the server's log is there.
            print(server.describe())
            if server.endpoint.is_unix:
                try:
                    os.unlink(server.endpoint.path)
                    os.rmdir(os.path.dirname(server.endpoint.path))
                except OSError:
                    pass


@pytest.fixture
def server_factory():
    factory = ServerFactory()
    yield factory
    factory.cleanup()


@pytest.fixture(scope="session")
def servers_dir(build) -> Path:
    """Where meson builds the test servers (tests/servers/meson.build)."""
    return build / "tests" / "servers"


def server_path(servers_dir: Path, name: str) -> Path:
    path = servers_dir / name
    assert path.is_file(), f"test server {path} not built (is tests/servers in the build?)"
    return path
