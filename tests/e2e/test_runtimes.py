"""Real runtimes as servers: Python's http.server, Node.js, Bun and Deno (`deno run -A`, and
a `deno compile`d binary where a denort is at hand) run unmodified inside kvmserver, are
frozen at their first wait for a connection and served from request VMs.

With -e each request starts from the frozen image, so the counter says the same every time:
1, or 1 + N after N warm-up requests before the freeze; and every request is one reset
(counted in the -v log), with one VM or two. Without -e each VM's count grows. An idle
kvmserver hosting a runtime uses next to no CPU."""
import os
import subprocess
import time
from pathlib import Path

import pytest

from servers import bun_path, deno_path, http_get, server_factory, wait_for_log

__all__ = ["server_factory"]

RUNTIME_DIR = Path(__file__).resolve().parents[1] / "servers" / "runtime"
REQUESTS = 8
RUNTIMES = [
    pytest.param("/usr/bin/python3", [], "counter.py", "python", id="python"),
    pytest.param("/usr/bin/node", [], "counter.js", "node", id="node"),
    pytest.param(bun_path(), [], "counter_bun.js", "bun", id="bun"),
    pytest.param(deno_path(), ["run", "-A"], "counter_deno.ts", "deno", id="deno"),
]
# (options, what every answer says): one VM or two, with and without warm-up requests.
EPHEMERAL_MODES = [
    pytest.param(["-e", "-t", "1"], 1, id="e-t1"),
    pytest.param(["-e", "-t", "2"], 1, id="e-t2"),
    pytest.param(["-e", "-t", "1", "-w", "1"], 2, id="e-t1-w1"),
    pytest.param(["-e", "-t", "2", "-w", "3"], 4, id="e-t2-w3"),
]
IDLE_SECONDS = 5
IDLE_CPU_LIMIT = 0.10       # of one CPU: the target is 2%, the rest is margin for a busy host


def start(server_factory, kvmserver, runtime, runtime_args, script, options):
    if not runtime or not Path(runtime).is_file():
        pytest.skip(f"{runtime} not installed")
    return start_program(server_factory, kvmserver, Path(runtime),
                         [*runtime_args, str(RUNTIME_DIR / script)], options)


def start_program(server_factory, kvmserver, program, args, options):
    return server_factory.kvmserver(kvmserver, program, options=["--allow-read", *options],
                                    args=args, ready_timeout=60)


def served(server, name):
    page = http_get(server.endpoint, "/", timeout=10)
    assert page.status == 200, page
    prefix = f"{name} served "
    assert page.text.startswith(prefix), page.text
    return int(page.text[len(prefix):])


def reset_lines(server):
    return [line for line in server.stderr_lines if " reset: " in line]


def assert_fresh_every_time(server, name, count):
    """Every answer is the frozen count, each request was one reset, none was cut."""
    assert [served(server, name) for _ in range(REQUESTS)] == [count] * REQUESTS, \
        server.describe()
    # A reset is logged after its client saw the end of its connection.
    wait_for_log(server, 0, lambda _: len(reset_lines(server)) >= REQUESTS, timeout=10)
    assert len(reset_lines(server)) == REQUESTS, server.describe()
    assert not [line for line in server.stderr_lines
                if "max-request-time" in line or "crashed" in line], server.describe()
    assert server.terminate(10) == 0, server.describe()


def fits_vms(seen, vms, start=1):
    """Could these answers come from `vms` counters that each start at `start` and go up by
    one per request they serve?"""
    last = [start - 1] * vms
    for value in seen:
        if value - 1 not in last:
            return False
        last[last.index(value - 1)] = value
    return True


@pytest.mark.parametrize("runtime,runtime_args,script,name", RUNTIMES)
@pytest.mark.parametrize("options,count", EPHEMERAL_MODES)
def test_every_request_starts_fresh(kvmserver, server_factory, runtime, runtime_args, script,
                                    name, options, count):
    server = start(server_factory, kvmserver, runtime, runtime_args, script, ["-v", *options])
    if "-w" in options:
        # A runtime whose helper threads set the freeze point gets up to -w more requests.
        asked = int(options[options.index("-w") + 1])
        sent = server.warmup_requests()
        assert asked <= sent <= 2 * asked, server.describe()
        count += sent - asked
    assert_fresh_every_time(server, name, count)


@pytest.mark.parametrize("runtime,runtime_args,script,name", RUNTIMES)
@pytest.mark.parametrize("vms", [1, 2], ids=["t1", "t2"])
def test_state_persists_without_ephemeral(kvmserver, server_factory, runtime, runtime_args,
                                          script, name, vms):
    server = start(server_factory, kvmserver, runtime, runtime_args, script,
                   ["-t", str(vms)])
    seen = [served(server, name) for _ in range(REQUESTS)]
    assert max(seen) > 1 and fits_vms(seen, vms), f"{seen}\n{server.describe()}"
    assert server.terminate(10) == 0, server.describe()


def denort_at_hand():
    """`deno compile` needs a denort binary: $DENORT_BIN, or one Deno downloaded before
    (this project's machines reach no Deno download server)."""
    if os.environ.get("DENORT_BIN"):
        return True
    return any((Path.home() / ".cache" / "deno" / "dl").glob("**/denort*"))


@pytest.fixture(scope="module")
def deno_compiled(tmp_path_factory):
    deno = deno_path()
    binary = tmp_path_factory.mktemp("deno-compile") / "counter"
    done = subprocess.run([deno, "compile", "-A", "--output", str(binary),
                           str(RUNTIME_DIR / "counter_deno.ts")],
                          capture_output=True, timeout=300)
    assert done.returncode == 0 and binary.is_file(), done.stderr.decode(errors="replace")
    return binary


# Only where it can run (under CI a skip fails the run, and no denort can be fetched there).
if deno_path() and denort_at_hand():
    @pytest.mark.parametrize("options,count", [EPHEMERAL_MODES[0], EPHEMERAL_MODES[3]])
    def test_deno_compiled_binary(kvmserver, server_factory, deno_compiled, options, count):
        server = start_program(server_factory, kvmserver, deno_compiled, [], ["-v", *options])
        assert_fresh_every_time(server, "deno", count)


def cpu_seconds(pid):
    """utime + stime of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("runtime,runtime_args,script,name",
                         [RUNTIMES[1], RUNTIMES[3]])
@pytest.mark.parametrize("options", [["-e"], ["-t", "1"]], ids=["e", "t1"])
def test_idle_server_uses_no_cpu(kvmserver, server_factory, runtime, runtime_args, script,
                                 name, options):
    """No request arriving: no thread of the program, no timer of ours keeps waking it."""
    server = start(server_factory, kvmserver, runtime, runtime_args, script, options)
    served(server, name)
    before, started = cpu_seconds(server.process.pid), time.monotonic()
    time.sleep(IDLE_SECONDS)        # what is measured: CPU used while nothing happens
    used = (cpu_seconds(server.process.pid) - before) / (time.monotonic() - started)
    assert used <= IDLE_CPU_LIMIT, f"{used:.1%} of a CPU while idle\n{server.describe()}"
    assert server.terminate(10) == 0, server.describe()
