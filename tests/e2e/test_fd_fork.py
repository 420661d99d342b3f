"""Fds made before the freeze are private to each request: tests/servers/srv_fdkinds.c makes a
pipe (and a dup of its read end), a socketpair, an eventfd, a memfd, two half-closed pipes and
opens a file before its first accept; each request writes into all of them and reads back.
Natively, the first request's answer is what the frozen state gives; under `kvmserver -e`
every request, in every request VM, must give that same answer."""
import threading

import pytest

from servers import http_get, server_factory, server_path, servers_dir

__all__ = ["server_factory", "servers_dir"]

REQUESTS = 8


def fresh_answer(server_factory, program, kind):
    native = server_factory.native(program, kind)
    first = http_get(native.endpoint, "/").text
    assert first.startswith("pipe=FA "), first       # the server itself works
    assert http_get(native.endpoint, "/").text != first   # and natively its state moves on
    return first


@pytest.mark.parametrize("kind", ["tcp", "unix"])
@pytest.mark.parametrize("vms", ["1", "2"])
def test_every_request_sees_the_frozen_fds(kvmserver, server_factory, servers_dir, kind, vms):
    program = server_path(servers_dir, "srv_fdkinds")
    expected = fresh_answer(server_factory, program, kind)
    server = server_factory.kvmserver(kvmserver, program, kind, options=["-e", "-t", vms])
    seen = [http_get(server.endpoint, "/").text for _ in range(REQUESTS)]
    # Concurrent requests, so that with -t 2 both request VMs serve at the same time.
    concurrent = []
    threads = [threading.Thread(target=lambda: concurrent.append(
        http_get(server.endpoint, "/").text)) for _ in range(REQUESTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen + concurrent == [expected] * (2 * REQUESTS), server.describe()
