"""README options and claims end to end: the network permissions (--allow-connect, --allow-net,
--allow-listen=unix:PATH), `-t 0`, --max-address-space, kvmserver.toml / -c / --print-config,
and the calls that never leave the VM (getpid and getppid from the per-VM page, the clock
through kvmserver's vDSO), counted with -v.
"""
import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from conftest import describe, program_path, run_guest, run_process
from servers import (Response, http_get, make_endpoint, server_factory, server_path,
                     servers_dir, wait_for_log)

__all__ = ["server_factory", "servers_dir"]

EACCES, ECONNREFUSED = 13, 111


def host_listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    return sock


def accepted(listener) -> bool:
    """Whether a connection is waiting. A guest connect that returned 0 on loopback has
    completed its handshake, so its connection is queued by then: no wait is needed."""
    try:
        listener.accept()[0].close()
        return True
    except BlockingIOError:
        return False


CONNECT_CASES = [
    pytest.param(lambda allowed: [], False, False, id="none"),
    pytest.param(lambda allowed: [f"--allow-connect=127.0.0.1:{allowed}"], True, False,
                 id="allow-connect-list"),
    pytest.param(lambda allowed: ["--allow-connect"], True, True, id="allow-connect-any"),
    pytest.param(lambda allowed: [f"--allow-net=127.0.0.1:{allowed}"], True, False,
                 id="allow-net-list"),
    pytest.param(lambda allowed: ["--allow-net"], True, True, id="allow-net-any"),
]


@pytest.mark.parametrize("options,allowed_ok,other_ok", CONNECT_CASES)
def test_guest_connect_policy(kvmserver, server_factory, servers_dir, options, allowed_ok,
                              other_ok):
    """The guest (srv_accept's /connect) connects to two host listeners, one named in the
    option: an allowed connect reaches its listener, a denied one gets EACCES, reaches
    nothing, and is logged once however often it is tried."""
    with host_listener() as allowed, host_listener() as other:
        allowed_port, other_port = allowed.getsockname()[1], other.getsockname()[1]
        server = server_factory.kvmserver(kvmserver, server_path(servers_dir, "srv_accept"),
                                          options=options(allowed_port))
        for listener, port, ok in ((allowed, allowed_port, allowed_ok),
                                   (other, other_port, other_ok)):
            for _ in range(2):
                answer = http_get(server.endpoint, f"/connect?port={port}")
                assert answer.text == f"connect: {0 if ok else EACCES}\n", server.describe()
                assert accepted(listener) == ok, server.describe()
            denial = (f"kvmserver: denied connect to 127.0.0.1:{port} "
                      f"(allow with --allow-connect=127.0.0.1:{port})")
            if not ok:    # written before the call returned; the collector may lag behind
                assert wait_for_log(server, 0, lambda line: line == denial), server.describe()
            assert server.stderr_lines.count(denial) == (0 if ok else 1), server.describe()


def start_listen_only(server_factory, kvmserver, servers_dir, permissions, kind="tcp"):
    return server_factory.kvmserver(kvmserver, server_path(servers_dir, "srv_accept"), kind,
                                    options=["-t", "1"], permissions=permissions,
                                    wait_ready=False)


def assert_listen_refused(server):
    """The guest's listen failed: srv_accept reports EACCES and exits 1 before readiness."""
    try:
        code = server.process.wait(20)
    except Exception:
        pytest.fail("the server kept running without a listen permission\n" + server.describe())
    wait_for_log(server, 0, lambda line: "Permission denied" in line)
    assert code == 1 and "Permission denied" in server.stderr, server.describe()
    assert not server.ready_line.is_set(), server.describe()


@pytest.mark.parametrize("permissions,serves", [
    pytest.param(lambda ep: [f"--allow-net=127.0.0.1:{ep.port}"], True, id="allow-net"),
    pytest.param(lambda ep: [f"--allow-connect=127.0.0.1:{ep.port}"], False,
                 id="allow-connect"),
])
def test_allow_net_covers_listen(kvmserver, server_factory, servers_dir, permissions, serves):
    """--allow-net grants listening as well as connecting; --allow-connect does not."""
    server = start_listen_only(server_factory, kvmserver, servers_dir, permissions)
    if serves:
        server.wait_ready_line()
        assert http_get(server.endpoint, "/").body == b"hello\n"
    else:
        assert_listen_refused(server)


@pytest.mark.parametrize("permissions,serves", [
    pytest.param(lambda ep: [f"--allow-listen=unix:{ep.path}"], True, id="that-path"),
    pytest.param(lambda ep: [f"--allow-listen=unix:{os.path.dirname(ep.path)}/"], True,
                 id="its-folder"),
    pytest.param(lambda ep: [f"--allow-listen=unix:{ep.path}.other"], False, id="other-path"),
    pytest.param(lambda ep: ["--allow-listen=127.0.0.1:1"], False, id="tcp-only"),
])
def test_allow_listen_unix_path(kvmserver, server_factory, servers_dir, permissions, serves):
    server = start_listen_only(server_factory, kvmserver, servers_dir, permissions, "unix")
    if serves:
        server.wait_ready_line()
        assert http_get(server.endpoint, "/").body == b"hello\n"
    else:
        assert_listen_refused(server)


def test_threads_zero_is_one_vm_per_cpu(kvmserver, server_factory, servers_dir):
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, "srv_accept"),
                                      options=["-t", "0", "-e"])
    ready = next(line for line in server.stdout_lines if line.startswith("Program '"))
    assert f" vms={os.cpu_count()} " in ready, server.describe()
    if os.cpu_count() >= 2:   # every VM serves: two slow requests overlap
        results = []
        threads = [threading.Thread(target=lambda: results.append(
            http_get(server.endpoint, "/sleep?ms=1000", timeout=5))) for _ in range(2)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert [r.status for r in results if isinstance(r, Response)] == [200, 200]
        assert time.monotonic() - started < 1.8, server.describe()


@pytest.mark.parametrize("mib,ok", [(256, True), (2048, False)])
def test_max_address_space(kvmserver, programs, mib, ok):
    """A 1 GiB guest address space: a 256 MiB reservation fits, a 2 GiB one gets ENOMEM,
    which the default (120 GiB) gives (the control)."""
    program = program_path(programs, "reserve")
    guest = run_guest(kvmserver, program, [str(mib)], options=["-v", "--max-address-space",
                                                               "1024"])
    assert "guest memory 1024 MiB" in guest.stderr.decode(), describe(guest)
    assert guest.stdout == f"reserve {mib} MiB: {'ok' if ok else 'ENOMEM'}\n".encode(), (
        describe(guest))
    assert guest.status == (0 if ok else 1)
    default = run_guest(kvmserver, program, [str(mib)])
    assert default.status == 0 and default.stdout == f"reserve {mib} MiB: ok\n".encode(), (
        describe(default))


# ---------------------------------------------------------------------------- configuration

CONFIG = 'threads = 2\nephemeral = true\nallow-listen = ["127.0.0.1:{port}"]\n'


def config_server(server_factory, kvmserver, servers_dir, folder, options=(), cwd=None):
    """srv_epoll with its listen permission, -t and -e in `folder`/kvmserver.toml only (none
    on the command line); returns the server and the file."""
    endpoint = make_endpoint("tcp")
    config = folder / "kvmserver.toml"
    config.write_text(CONFIG.format(port=endpoint.port))
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, "srv_epoll"),
                                      options=[option.format(config=config) for option in options],
                                      permissions=lambda ep: [], cwd=cwd, endpoint=endpoint)
    return server, config


def assert_config_applied(server, vms):
    ready = next(line for line in server.stdout_lines if line.startswith("Program '"))
    assert f" vms={vms} ephemeral=yes " in ready, server.describe()
    for _ in range(3):      # ephemeral: every connection starts from the image
        assert http_get(server.endpoint, "/counter").text == "global=1 heap=1\n"


def test_kvmserver_toml_in_the_working_directory(kvmserver, server_factory, servers_dir,
                                                 tmp_path):
    server, _ = config_server(server_factory, kvmserver, servers_dir, tmp_path, cwd=tmp_path)
    assert_config_applied(server, 2)


def test_config_file_given_with_c(kvmserver, server_factory, servers_dir, tmp_path):
    """-c FILE from another directory; an option on the command line wins over the file."""
    server, _ = config_server(server_factory, kvmserver, servers_dir, tmp_path,
                              options=["-c", "{config}", "-t", "1"])
    assert_config_applied(server, 1)


def test_print_config_reads_back(kvmserver, tmp_path):
    """--print-config shows the file's settings over the defaults, and what it prints, read
    back with -c, prints the same."""
    config = tmp_path / "first.toml"
    config.write_text(CONFIG.format(port=8123) + "max-request-time = 2.5\n")
    first = run_process([kvmserver, "-c", config, "--print-config"])
    assert first.status == 0, describe(first)
    text = first.stdout.decode()
    for line in ["threads = 2", "ephemeral = true", 'allow-listen = ["127.0.0.1:8123"]',
                 "max-request-time = 2.5", "max-request-memory = 128", "allow-read = false"]:
        assert line in text.splitlines(), text
    again_file = tmp_path / "again.toml"
    again_file.write_bytes(first.stdout)
    again = run_process([kvmserver, "-c", again_file, "--print-config"])
    assert again.status == 0, describe(again)
    def settings(out):
        return [line for line in out.decode().splitlines() if not line.startswith("#")]
    assert settings(again.stdout) == settings(first.stdout)


def test_missing_config_file_is_an_error(kvmserver, tmp_path):
    missing = tmp_path / "none.toml"
    outcome = run_process([kvmserver, "-c", missing, "--print-config"])
    assert outcome.status == 2, describe(outcome)
    assert f"cannot open configuration file '{missing}'".encode() in outcome.stderr


# ---------------------------------------------------------------------------- calls in the VM

EXITS_LINE = re.compile(rb"kvmserver: (\d+) VM exits, (\d+) system-call exits")
CALLS = 20000
IN_VM_CALLS = ["getpid", "getppid", "clock_gettime", "gettimeofday"]   # answered in the VM


def exits_for(kvmserver, programs, call, n, options=()):
    """(VM exits, system-call exits) of `in_vm_calls CALL N` under kvmserver -v."""
    guest = run_guest(kvmserver, program_path(programs, "in_vm_calls"), [call, str(n)],
                      options=["-v", *options])
    assert guest.status == 0 and guest.stdout == f"{call} x{n}: ok\n".encode(), describe(guest)
    match = EXITS_LINE.search(guest.stderr)
    assert match, describe(guest)
    return int(match.group(1)), int(match.group(2))


@pytest.mark.parametrize("call", IN_VM_CALLS)
def test_answered_without_leaving_the_vm(kvmserver, programs, call):
    """20000 calls add no system-call exits (a few VM exits for host interrupts at most)
    over a run that makes none."""
    base_vm, base_sys = exits_for(kvmserver, programs, call, 0)
    many_vm, many_sys = exits_for(kvmserver, programs, call, CALLS)
    assert many_sys - base_sys <= 5, (call, base_sys, many_sys)
    assert many_vm - base_vm < CALLS // 100, (call, base_vm, many_vm)


def test_unrewritten_site_takes_the_shared_transport(kvmserver, programs):
    """syscall()'s site keeps its `syscall` (its number is in a register). On kvm_pvm the
    host looks at it once, and from then on its calls go through the shared transport like
    any other, not by an exit each (they did until 2026-12-03). The hardware flavour has no
    shared transport: there each call is an exit."""
    options = ["--syscall-transport=shared"]
    _, base_sys = exits_for(kvmserver, programs, "syscall-getuid", 0, options)
    _, many_sys = exits_for(kvmserver, programs, "syscall-getuid", CALLS, options)
    if Path("/sys/module/kvm_pvm").is_dir():
        # Not one exit per call. A few fall back to exits while the poller is off its CPU:
        # 17 with the machine to itself, 259-1150 with another process busy beside it.
        assert many_sys - base_sys < CALLS // 10, (base_sys, many_sys)
    else:
        assert many_sys - base_sys >= CALLS, (base_sys, many_sys)


def test_host_answered_call_exits(kvmserver, programs):
    """Control: getuid is answered by the host, so with VM exits as the transport each call
    is a system-call exit: the counters above see calls that leave the VM."""
    _, base_sys = exits_for(kvmserver, programs, "getuid", 0, ["--syscall-transport=exit"])
    _, many_sys = exits_for(kvmserver, programs, "getuid", CALLS, ["--syscall-transport=exit"])
    assert many_sys - base_sys >= CALLS, (base_sys, many_sys)
