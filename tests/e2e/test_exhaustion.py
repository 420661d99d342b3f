"""Exhaustion under load, against `kvmserver -e -t 2` serving tests/programs/exhaust.c: 1,000
concurrent connections, slowloris clients cut by --max-request-time while the server keeps
serving, a request that opens fds until EMFILE, and one that maps memory until its limit.
Afterwards kvmserver's fd count and frozen memory must be what they were, and its RSS within
a few MiB. Each test prints its figures (run with -s to see them).
"""
import asyncio
import resource
import socket
import time

import pytest

from conftest import program_path
from servers import (free_port, host_state, scrape, serve_on_both_vms, server_factory,
                     servers_dir, wait_for_log)

__all__ = ["server_factory", "servers_dir"]

RSS_SLACK_KIB = 8 * 1024


def ask(port, word, timeout=10):
    """The server's one-line answer, or None when it closed the connection without one."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(word.encode())
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return data.decode() or None


@pytest.fixture
def exhaust(kvmserver, programs, server_factory):
    def start(*options):
        metrics = free_port()
        server = server_factory.kvmserver(
            kvmserver, program_path(programs, "exhaust"),
            options=["-e", "-t", "2", "-v", "--metrics", f"127.0.0.1:{metrics}", *options])

        def hello():
            assert ask(server.endpoint.port, "hello") == "hello\n", server.describe()

        def finish(sock):
            sock.sendall(b"hello")
            assert sock.recv(4096) == b"hello\n", server.describe()
        serve_on_both_vms(server, server.endpoint.port, hello, finish)
        return server, metrics
    return start


def assert_flat(server, metrics, before):
    after = host_state(server.process.pid, metrics)
    assert server.process.poll() is None, "kvmserver died\n" + server.describe()
    assert after[0] == before[0], f"kvmserver's fds went from {before[0]} to {after[0]}"
    assert after[2] == before[2], f"frozen memory went from {before[2]} to {after[2]} bytes"
    assert after[1] - before[1] < RSS_SLACK_KIB, f"RSS went from {before[1]} to {after[1]} KiB"
    return after


def test_thousand_concurrent_connections(exhaust):
    count = 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    server, metrics = exhaust()
    port = server.endpoint.port
    before = host_state(server.process.pid, metrics)

    async def one():
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 60)
        writer.write(b"hello")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 60)
        writer.close()
        return data

    async def all_of_them():
        return await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)

    started = time.monotonic()
    answers = asyncio.run(all_of_them())
    elapsed = time.monotonic() - started
    bad = [a for a in answers if a != b"hello\n"]
    assert not bad, f"{len(bad)} of {count} failed, e.g. {bad[:3]}\n" + server.describe()[-2000:]
    after = assert_flat(server, metrics, before)
    assert ask(port, "hello") == "hello\n"
    print(f"\n{count} concurrent connections: all answered in {elapsed:.2f} s "
          f"({count / elapsed:.0f}/s); fds {before[0]} -> {after[0]}, RSS {before[1]} -> "
          f"{after[1]} KiB, frozen memory {before[2]} -> {after[2]} bytes")


def test_slowloris_is_cut_and_serving_goes_on(exhaust):
    """Clients that connect and never send hold a VM each until --max-request-time (1 s)
    cuts them; then the server answers again."""
    holders = 6
    server, metrics = exhaust("--max-request-time", "1")
    port = server.endpoint.port
    before = host_state(server.process.pid, metrics)
    started = time.monotonic()
    socks = [socket.create_connection(("127.0.0.1", port), timeout=15) for _ in range(holders)]
    held = []
    for sock in socks:
        assert sock.recv(4096) == b"", "a slowloris client got an answer"
        held.append(time.monotonic() - started)
        sock.close()
    # Two VMs, one second each: the last holder is cut after about holders/2 seconds.
    assert max(held) < holders / 2 + 3, f"holders were cut after {held}"
    answered_at = time.monotonic()
    assert ask(port, "hello") == "hello\n", server.describe()
    answer_s = time.monotonic() - answered_at
    assert answer_s < 1, f"after the cuts an answer took {answer_s:.2f} s"
    after = assert_flat(server, metrics, before)      # waits for the last cut's reset too
    assert scrape(metrics)["kvmserver_request_timeouts_total"] >= holders
    print(f"\nslowloris: {holders} holders against -t 2, --max-request-time 1: cut after "
          f"{min(held):.2f}-{max(held):.2f} s; next answer in {answer_s * 1000:.1f} ms; "
          f"fds {before[0]} -> {after[0]}, RSS {before[1]} -> {after[1]} KiB")


def test_fds_until_emfile(exhaust):
    server, metrics = exhaust()
    before = host_state(server.process.pid, metrics)
    answers = [ask(server.endpoint.port, "fds") for _ in range(6)]
    first = answers[0].split()
    assert first[0] == "fds" and first[2:] == ["errno", "24", "again", "ok"], answers[0]
    assert int(first[1]) > 100, answers[0]
    assert all(a == answers[0] for a in answers), answers     # every request starts afresh
    after = assert_flat(server, metrics, before)
    print(f"\nfds until EMFILE: {first[1]} opened per request, 6 requests; kvmserver fds "
          f"{before[0]} -> {after[0]}, RSS {before[1]} -> {after[1]} KiB")


def test_maps_until_the_request_limit(exhaust):
    """Past --max-request-memory kvmserver aborts the request (README), resets the VM and
    serves on; the memory comes back."""
    server, metrics = exhaust("--max-request-memory", "64")
    before = host_state(server.process.pid, metrics)
    for _ in range(4):
        since = server.log_line_count()
        assert ask(server.endpoint.port, "maps") is None, "a request mapped past its limit"
        assert wait_for_log(server, since, lambda line: "exceeded --max-request-memory" in line)
        assert ask(server.endpoint.port, "hello") == "hello\n"
    after = assert_flat(server, metrics, before)
    print(f"\nmaps until --max-request-memory 64: 4 requests aborted, served on; fds "
          f"{before[0]} -> {after[0]}, RSS {before[1]} -> {after[1]} KiB, frozen memory "
          f"{before[2]} -> {after[2]} bytes")


def test_blocked_write_is_cut(exhaust):
    """A request writing 1 MiB into its own pipe, which nobody reads, ends within
    --max-request-time: cut there, or (by an exit, where the engine's kick ends the host
    write) with a short write, which Linux would not return. With the shared transport the
    poller thread used to make that write itself and block for good holding the VM: the
    request was never cut."""
    server, metrics = exhaust("--max-request-time", "1")
    before = host_state(server.process.pid, metrics)
    started = time.monotonic()
    assert ask(server.endpoint.port, "pipe", timeout=15) in (None, "pipe write returned\n")
    took = time.monotonic() - started
    assert took < 4, f"the blocked request was cut after {took:.1f} s"
    assert ask(server.endpoint.port, "hello") == "hello\n"
    assert_flat(server, metrics, before)
