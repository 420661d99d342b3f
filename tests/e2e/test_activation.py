"""systemd socket activation: kvmserver started by `systemd-socket-activate` (which holds the
listening socket, passes it as fd 3 with LISTEN_FDS/LISTEN_PID and execs kvmserver at the
first connection) gives that socket to the program when it binds its address. The connection
that started everything is served by a request VM, as pristine as the ones after it, over TCP
and unix sockets. An inherited socket that the program never binds is reported, and one that
is not a listening socket is refused before boot.
"""
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import run_native, run_process, transport_options
from servers import (ConnectionClosed, ServerProcess, http_get, make_endpoint, server_factory, server_path,
                     servers_dir)

__all__ = ["server_factory", "servers_dir"]

PRISTINE = "global=1 heap=1\n"
UNUSED_NOTE = "the program bound no socket to the address of inherited socket fd 3"


def activator():
    path = shutil.which("systemd-socket-activate")
    if not path:
        pytest.skip("systemd-socket-activate not installed")
    return path


def start_activated(server_factory, kvmserver, program, listen_on, program_endpoint, options):
    """systemd-socket-activate listening on `listen_on`, which will exec kvmserver running
    `program` on `program_endpoint`."""
    argv = [activator(), "-l", str(listen_on).removeprefix("unix:"), kvmserver,
            *transport_options(), *program_endpoint.kvmserver_options(), *options,
            "run", program, program_endpoint.argv()]
    server = ServerProcess(argv, listen_on)
    server.start()
    server_factory.started.append(server)
    return server


def wait_listening(server, endpoint, timeout=10.0):
    """Waits until the activator listens (it prints a line first); returns the endpoint."""
    deadline = time.monotonic() + timeout
    while not any(line.startswith("Listening on") for line in server.stderr_lines):
        assert time.monotonic() < deadline and server.process.poll() is None, server.describe()
        time.sleep(0.01)
    return endpoint


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_activated_socket_is_served_from_the_first_connection(server_factory, kvmserver,
                                                              servers_dir, kind):
    endpoint = make_endpoint(kind)
    server = start_activated(server_factory, kvmserver, server_path(servers_dir, "srv_accept"),
                             endpoint, endpoint, ["-e", "-t", "2"])
    # The activator listens before kvmserver exists; this connection starts it, and waits in
    # the socket's queue through the boot until a request VM accepts it.
    first = http_get(wait_listening(server, endpoint), "/counter", timeout=20)
    assert first.status == 200 and first.text == PRISTINE, (first, server.describe())
    server.wait_ready_line()
    for _ in range(5):
        assert http_get(endpoint, "/counter").text == PRISTINE
    assert UNUSED_NOTE not in server.stderr


def test_unbound_inherited_socket_is_reported(server_factory, kvmserver, servers_dir):
    activated, own = make_endpoint("tcp"), make_endpoint("tcp")
    server = start_activated(server_factory, kvmserver, server_path(servers_dir, "srv_accept"),
                             activated, own, ["-e"])
    # The first connection to the activated socket starts kvmserver; the program listens on
    # its own port instead, so that connection is never answered.
    with pytest.raises((ConnectionClosed, OSError)):   # a timeout is an OSError
        http_get(wait_listening(server, activated), "/counter", timeout=0.5)
    server.wait_ready_line()
    assert http_get(own, "/counter").text == PRISTINE
    assert UNUSED_NOTE in server.stderr, server.describe()


def test_inherited_fd_that_does_not_listen_is_refused(kvmserver, programs):
    # fd 3 is a file: sh's pid stays kvmserver's through exec, so LISTEN_PID names it.
    outcome = run_process(["/bin/sh", "-c", 'exec 3</dev/null; LISTEN_PID=$$ LISTEN_FDS=1 '
                           'exec "$0" run "$1"', kvmserver, programs / "argv_static"])
    assert outcome.status == 1, outcome
    assert (b"kvmserver: socket activation: fd 3 is not a listening socket (Socket operation "
            b"on non-socket)") in outcome.stderr, outcome


@pytest.mark.parametrize("listen_pid", ["1", "$$"])
def test_program_never_sees_the_activation_variables(kvmserver, programs, listen_pid):
    """LISTEN_PID=1: meant for another process, ignored; $$: kvmserver's own, taken. Either
    way --allow-env passes the program none of the three variables (argv_static prints its
    environment), and it runs as natively with an empty environment."""
    program = programs / "argv_static"
    native = run_native(program)
    fd3 = "exec 3</dev/null; " if listen_pid == "1" else ""
    fd3 = "unset PWD; " + fd3     # sh's own; kvmserver would pass it on
    outcome = run_process(["/bin/sh", "-c", fd3 + f'LISTEN_PID={listen_pid} LISTEN_FDS=0 '
                           'LISTEN_FDNAMES=x exec "$0" --allow-env run "$1"', kvmserver, program])
    assert (outcome.status, outcome.stdout) == (native.status, native.stdout), outcome
    assert b"socket activation" not in outcome.stderr


# ---------------------------------------------------------------------------- contrib/systemd

UNITS = Path(__file__).resolve().parents[2] / "contrib" / "systemd"
SHIPPED_PROGRAM = "/usr/local/lib/kvmserver/httpd"
SHIPPED_KVMSERVER = "/usr/local/bin/kvmserver"


def unit_text(name, kvmserver, build, port, metrics_port):
    """A shipped unit with the build's binaries and test ports in place of the shipped ones."""
    text = (UNITS / name).read_text()
    shipped = ["127.0.0.1:8000"]
    if name.endswith(".service"):
        shipped += [SHIPPED_PROGRAM, SHIPPED_KVMSERVER, " 8000\n", "127.0.0.1:9100"]
    assert all(value in text for value in shipped), (name, shipped)
    return (text.replace(SHIPPED_KVMSERVER, str(kvmserver))
            .replace(SHIPPED_PROGRAM, str(build / "examples" / "httpd"))
            .replace("127.0.0.1:8000", f"127.0.0.1:{port}").replace(" 8000\n", f" {port}\n")
            .replace("127.0.0.1:9100", f"127.0.0.1:{metrics_port}"))


def test_systemd_units_verify(tmp_path, kvmserver, build):
    analyze = shutil.which("systemd-analyze") or pytest.skip("systemd-analyze not installed")
    for name in ("kvmserver.socket", "kvmserver.service"):
        (tmp_path / name).write_text(unit_text(name, kvmserver, build, 8000, 9100))
    result = subprocess.run([analyze, "verify", tmp_path / "kvmserver.socket",
                             tmp_path / "kvmserver.service"], capture_output=True, text=True,
                            timeout=60)
    # verify exits 0 on unknown keys too, but names them: any output is a finding.
    assert result.returncode == 0 and not result.stdout + result.stderr, result


def test_systemd_service_command_serves_under_socket_activation(server_factory, kvmserver,
                                                                 build):
    """The service's ExecStart, started the way its socket unit starts it."""
    endpoint, metrics = make_endpoint("tcp"), make_endpoint("tcp")
    service = unit_text("kvmserver.service", kvmserver, build, endpoint.port, metrics.port)
    exec_start = re.search(r"^ExecStart=(.*?[^\\])$", service.replace("\\\n", " "), re.M)
    listen = re.search(r"^ListenStream=(.*)$",
                       unit_text("kvmserver.socket", kvmserver, build, endpoint.port,
                                 metrics.port), re.M).group(1)
    assert listen == str(endpoint)
    command = exec_start.group(1).split()
    server = ServerProcess([activator(), "-l", listen, command[0], *transport_options(),
                            *command[1:]], endpoint)
    server.start()
    server_factory.started.append(server)
    assert http_get(wait_listening(server, endpoint), "/", timeout=20).status == 200
    server.wait_ready_line()
    assert "ephemeral=yes" in "\n".join(server.stdout_lines)
