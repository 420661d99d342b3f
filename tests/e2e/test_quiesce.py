"""The freeze waits for the guest to be quiescent (src/linux/thread.c): a program that hands
work to a background thread right before it waits for its first connection is frozen only
after that thread did the work, and with -w N each warm-up request's hand-off is done before
the next request is taken. srv_handoff answers "posted P done D": the jobs its main thread
had handed to its worker, and those the worker had done, when the request came. Guest threads
take turns on one vCPU and a blocking accept is no switch point, so without the wait the
worker never runs before the freeze, nor inside a request VM (D would be 0). A thread that
never blocks only delays the freeze, by LX_QUIESCE_MAX_NS (500 ms) a wait."""
import time
from pathlib import Path

import pytest

from servers import http_get, server_factory, servers_dir

RUNTIME_DIR = Path(__file__).resolve().parents[1] / "servers" / "runtime"

__all__ = ["server_factory", "servers_dir"]


@pytest.mark.parametrize("options,jobs", [(["-e"], 1), (["-e", "-w", "3"], 4), (["-t", "1"], 1)],
                         ids=["e", "e-warmup", "persistent"])
def test_background_work_is_in_the_frozen_image(kvmserver, server_factory, servers_dir,
                                                options, jobs):
    server = server_factory.kvmserver(kvmserver, servers_dir / "srv_handoff", options=options)
    first = http_get(server.endpoint, "/")
    assert first.status == 200, server.describe()
    assert first.text == f"posted {jobs} done {jobs}\n", server.describe()
    if "-e" in options:
        # Every request VM starts from that image.
        for _ in range(4):
            assert http_get(server.endpoint, "/").text == first.text, server.describe()
    assert "still runnable" not in server.stderr, server.describe()
    assert server.terminate() == 0, server.describe()


def test_a_thread_that_never_blocks_only_delays_the_freeze(kvmserver, server_factory,
                                                          servers_dir):
    # The request VM's image holds the spinning thread runnable. Its time slices end
    # (LX_SLICE_NS, 4 ms), so the main thread's wait for its connection is looked at and the
    # request is answered at once; before slices, only --max-request-time's cut ended it.
    server = server_factory.kvmserver(kvmserver, servers_dir / "srv_handoff",
                                      options=["-e", "--max-request-time", "2"], args=["spin"])
    for _ in range(3):
        started = time.monotonic()
        assert http_get(server.endpoint, "/", timeout=10).text == "posted 1 done 1\n", \
            server.describe()
        assert time.monotonic() - started < 1.5, server.describe()
    assert "freezing with 1 guest thread(s) still runnable" in server.stderr, server.describe()
    assert "longer than --max-request-time" not in server.stderr, server.describe()
    assert server.terminate() == 0, server.describe()


def test_looks_that_find_the_loops_own_task_let_the_worker_run(kvmserver, server_factory,
                                                               servers_dir):
    # Each request waits for its job with zero-timeout epoll looks that are never empty.
    # Served by the shared transport's poller, which never switches threads, they kept the
    # worker off the vCPU for every look (Node spent ~0.5-2.7 s of CPU so, idle, each time
    # V8's memory reducer started marking).
    server = server_factory.kvmserver(kvmserver, servers_dir / "srv_handoff", options=["-e"],
                                      args=["ready"])
    for _ in range(3):
        assert http_get(server.endpoint, "/", timeout=30).text == "posted 2 done 2\n", \
            server.describe()
    assert server.terminate() == 0, server.describe()


@pytest.mark.parametrize("warmup", ["4", "9"])
def test_the_warmup_pauses_until_the_workers_ran(kvmserver, server_factory, servers_dir,
                                                 warmup):
    # The first two requests each hand a job to the worker; each request installs the jobs
    # done since the one before. Sent back to back (a blocking accept is no switch point),
    # the warm-up requests left the worker's turn to the freeze's wait, and a job it did
    # then was never installed: every request VM installed it again ("installed now 1 of
    # 3"), as Deno installed 4-25 finished compiles in every request VM.
    server = server_factory.kvmserver(kvmserver, servers_dir / "srv_handoff",
                                      options=["-e", "-w", warmup], args=["install"])
    for _ in range(3):
        assert http_get(server.endpoint, "/").text == "installed now 0 of 3\n", \
            server.describe()
    assert "not quiet" not in server.stderr, server.describe()
    assert server.terminate() == 0, server.describe()


@pytest.mark.parametrize("warmup,sent,helper_runs", [(1, 1, 0), (3, 3, 1), (4, 6, 2), (7, 9, 3)])
def test_warmup_ends_after_a_request_that_woke_a_helper(kvmserver, server_factory, warmup, sent,
                                                        helper_runs):
    """A garbage-collected runtime wakes its collector's threads every so many requests, and
    an image frozen between two collections makes every request VM collect: past -w N, the
    warm-up goes on (up to N more) until a request wakes a helper thread. helper_wakes.py
    wakes one at every third request; -w 1 saw none, so it stops at 1."""
    server = server_factory.kvmserver(kvmserver, Path("/usr/bin/python3"),
                                      options=["--allow-read", "-e", "-w", str(warmup)],
                                      args=[str(RUNTIME_DIR / "helper_wakes.py")])
    answers = {http_get(server.endpoint, "/", timeout=30).text for _ in range(3)}
    assert answers == {f"served {sent + 1}, helper ran {helper_runs}\n"}, server.describe()
    assert server.warmup_requests() == sent, server.describe()
    if sent > warmup:
        assert f"({sent - warmup} past -w, to freeze after one that woke a helper thread: done)" \
            in server.stderr, server.describe()
    assert server.terminate() == 0, server.describe()
