"""What a request VM sees of the time between the freeze and its request (server/serve.c,
lx_proc_skip_frozen_time). With -e a fork stays still until its client is there, and its
CLOCK_MONOTONIC then shows at most 1 s of the time since the freeze, as if the VM had been
suspended: the timers the program set before the freeze, on the guest's side or the host's
(futex waits, itimers), fire as they would just after it, however long the server has been up.
CLOCK_REALTIME and CLOCK_BOOTTIME stay the host's. Before this, every request VM of a Deno
server that had sat idle 30 s ran V8's delayed full collection and served 17 req/s instead
of 1,000. --no-ephemeral-clock-skip gives every fork all of the time.

clock_after_freeze.py arms its timers LATE seconds on in its first request (the warm-up's),
and the requests come a second after that time has passed."""
import json
import time
from pathlib import Path

import pytest

from servers import http_get, server_factory

RUNTIME_DIR = Path(__file__).resolve().parents[1] / "servers" / "runtime"
LATE = 4.0

__all__ = ["server_factory"]


def clocks_after_late(kvmserver, server_factory, options):
    """The answers to three requests sent back to back once LATE + 1 s have passed since
    the freeze (which comes after the warm-up's request)."""
    server = server_factory.kvmserver(kvmserver, Path("/usr/bin/python3"),
                                      options=["--allow-read", "-w", "1", *options],
                                      args=[str(RUNTIME_DIR / "clock_after_freeze.py"),
                                            str(LATE)])
    time.sleep(LATE + 1)
    answers = [json.loads(http_get(server.endpoint, "/").text) for _ in range(3)]
    assert server.terminate() == 0, server.describe()
    return answers, server


@pytest.mark.parametrize("threads", ["1", "2"])
def test_a_request_vm_resumes_its_clock_near_the_freeze(kvmserver, server_factory, threads):
    answers, server = clocks_after_late(kvmserver, server_factory, ["-e", "-t", threads])
    for a in answers:
        # Since the warm-up's request: the quiet wait before the freeze, then 1 s.
        assert 1.0 <= a["mono"] < 3.0 and a["fired"] == [], (a, server.describe())
        assert a["real"] >= LATE + 1 and a["boot"] >= LATE + 1, (a, server.describe())
        assert abs(a["boot"] - a["real"]) < 0.1, (a, server.describe())


def test_the_skip_can_be_turned_off(kvmserver, server_factory):
    answers, server = clocks_after_late(kvmserver, server_factory,
                                        ["-e", "-t", "1", "--no-ephemeral-clock-skip"])
    for a in answers:
        assert a["mono"] >= LATE + 1, (a, server.describe())
        assert a["fired"] == ["itimer", "thread"], (a, server.describe())


def test_a_vm_that_is_never_reset_keeps_the_hosts_clock(kvmserver, server_factory):
    # -t 1 without -e: one long-lived fork made at the freeze, whose timers fire on time.
    answers, server = clocks_after_late(kvmserver, server_factory, ["-t", "1"])
    assert answers[-1]["mono"] >= LATE + 1, (answers, server.describe())
    assert answers[-1]["fired"] == ["itimer", "thread"], (answers, server.describe())
