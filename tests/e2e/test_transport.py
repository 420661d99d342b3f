"""The syscall transports under stress: a random mix of calls served by the shared-memory
poller, calls handed back to the vCPU thread, calls answered in the guest, forced
fallbacks (a 1 us spin limit) and a guest that scribbles on the transport's page. Every
call must take effect exactly once (the program counts side effects) and the host must
survive."""
import re

import pytest

from conftest import describe, program_path, run_guest
from servers import (HttpConnection, http_get, ready_transport, server_factory, server_path,
                     servers_dir, wait_for_log)

__all__ = ["server_factory", "servers_dir"]

SHARED_CALLS = re.compile(r"kvmserver: \d+ VM exits in request VMs, (\d+) calls served through "
                          r"shared memory")

CASES = [
    ("exit", 100, False),
    ("shared", 100, False),
    ("shared", 1, False),       # the stub gives up almost at once: fallbacks race the poller
    ("shared", 100, True),
    ("shared", 1, True),
]


@pytest.mark.parametrize("transport,spin_us,scribble", CASES)
def test_every_call_takes_effect_once(kvmserver, programs, transport, spin_us, scribble):
    args = ["20000"] + (["scribble"] if scribble else [])
    guest = run_guest(kvmserver, program_path(programs, "transport_stress"), args,
                      options=[f"--syscall-transport={transport}",
                               f"--syscall-spin-us={spin_us}"], timeout=120)
    assert guest.status == 0 and guest.stdout == b"ok\n", describe(guest)


def test_native_run_agrees(programs):
    """The program's own check holds natively (no scribbling there: no such page)."""
    import subprocess
    result = subprocess.run([program_path(programs, "transport_stress"), "20000"],
                            capture_output=True, timeout=60)
    assert result.returncode == 0 and result.stdout == b"ok\n", result


@pytest.mark.parametrize("options", [["-t", "1"], ["-t", "2", "-e"]], ids=["t1", "t2e"])
def test_requests_go_through_the_suite_transport(kvmserver, server_factory, servers_dir,
                                                 options):
    """The transport this run of the suite is for (or the one kvmserver chose) really served
    the requests: through shared memory some calls, through VM exits none."""
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, "srv_epoll"),
                                      options=options)
    transport = ready_transport(server)
    for _ in range(5):
        assert http_get(server.endpoint, "/").status == 200
    with HttpConnection(server.endpoint) as conn:
        for _ in range(5):
            assert conn.get("/").status == 200
    assert server.terminate() == 0, server.describe()
    assert wait_for_log(server, 0, SHARED_CALLS.search), server.describe()
    counts = [int(match.group(1)) for match in map(SHARED_CALLS.search, server.stderr_lines)
              if match]
    assert len(counts) == 1, server.describe()
    if transport == "shared":
        assert counts[0] > 0, "no call went through shared memory\n" + server.describe()
    else:
        assert counts[0] == 0, server.describe()
