"""The host seccomp filter (src/server/seccomp.c): kvmserver runs filtered while it serves and
while a plain `kvmserver run` program runs, --no-seccomp turns the filter off, and a host call
off the allow list made from a handler kills kvmserver with SIGSYS.

The last one uses the debug-build test hook: with KVMS_TEST_SECCOMP_VIOLATION in kvmserver's
environment, the accept handler of a request VM calls execve(NULL) (src/linux/net.c).
"""
import signal
import subprocess
import time

import pytest

from conftest import program_path, run_native, transport_options
from servers import (ServerProcess, http_get, make_endpoint, request_outcome, server_factory,
                     servers_dir)

# Imported fixtures must be module globals for pytest to find them.
__all__ = ["server_factory", "servers_dir"]

HOOK = "KVMS_TEST_SECCOMP_VIOLATION"


def seccomp_mode(pid: int) -> int:
    """The Seccomp: line of /proc/PID/status: 0 none, 2 filtered."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Seccomp:"):
                return int(line.split()[1])
    pytest.fail(f"no Seccomp: line in /proc/{pid}/status")


@pytest.fixture
def httpd(build):
    return build / "examples" / "httpd"


@pytest.mark.parametrize("options,mode", [((), 2), (("--no-seccomp",), 0)],
                         ids=["filtered", "no-seccomp"])
def test_serving_mode(kvmserver, server_factory, httpd, options, mode):
    server = server_factory.kvmserver(kvmserver, httpd, options=["-e", *options])
    assert http_get(server.endpoint, "/").status == 200
    assert seccomp_mode(server.process.pid) == mode, server.describe()
    assert http_get(server.endpoint, "/").status == 200     # still serving, filtered or not
    assert server.process.poll() is None, server.describe()


@pytest.mark.parametrize("options,mode", [((), 2), (("--no-seccomp",), 0)],
                         ids=["filtered", "no-seccomp"])
def test_run_mode(kvmserver, programs, options, mode):
    """A program that never listens runs under the boot phase; it waits on stdin here."""
    program = program_path(programs, "stdio_static")
    native = run_native(program)
    proc = subprocess.Popen([str(kvmserver), *transport_options(), *options, "run",
                             str(program)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={})
    try:
        time.sleep(1.0)          # it reads stdin until EOF: still running
        assert proc.poll() is None, proc.communicate(timeout=5)
        assert seccomp_mode(proc.pid) == mode
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == native.status, stderr.decode(errors="replace")
    assert stdout == native.stdout


def test_call_off_the_list_kills_with_sigsys(kvmserver, server_factory, httpd):
    if HOOK.encode() not in kvmserver.read_bytes():
        pytest.skip("a release build has no seccomp test hook")
    endpoint = make_endpoint("tcp")
    # No core file: the kill dumps core by default.
    argv = ["/bin/sh", "-c", f'ulimit -c 0; exec env {HOOK}=1 "$@"', "sh", kvmserver,
            *transport_options(), *endpoint.kvmserver_options(), "-e", "run", httpd,
            endpoint.argv()]
    server = ServerProcess(argv, endpoint)
    server.start()
    server_factory.started.append(server)
    server.wait_ready_line()
    assert request_outcome(endpoint, "/") == "closed", server.describe()
    try:
        code = server.process.wait(5)
    except subprocess.TimeoutExpired:
        pytest.fail("kvmserver still running after the call off its allow list\n"
                    + server.describe())
    assert code == -signal.SIGSYS, server.describe()
