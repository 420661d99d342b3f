"""The reverse-proxy recipes (contrib/nginx/kvmserver.conf, contrib/haproxy/kvmserver.cfg), run
for real: nginx or HAProxy on a TCP port in front of `kvmserver -e` on a unix socket, with
clients that keep their connections alive. Each request must reach a freshly reset request VM,
so a keep-alive client connection never carries state from one request to the next.

The shipped files are what runs: the test only replaces their socket path and port.
"""
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from proxies import CONTRIB, haproxy_config, nginx_config
from servers import (Endpoint, HttpConnection, free_port, make_endpoint, server_factory,
                     server_path, servers_dir)

__all__ = ["server_factory", "servers_dir"]

REQUESTS = 20
PROXY_READY_TIMEOUT = 10.0


def start_proxy(kind: str, tmp: Path, socket_path: str):
    binary = shutil.which(kind) or f"/usr/sbin/{kind}"
    if not os.access(binary, os.X_OK):
        pytest.skip(f"{kind} not installed")
    port = free_port()
    if kind == "nginx":
        argv = [binary, "-p", str(tmp), "-c", str(nginx_config(tmp, socket_path, port))]
    else:
        argv = [binary, "-db", "-f", str(haproxy_config(tmp, socket_path, port))]
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    endpoint = Endpoint(port=port)
    deadline = time.monotonic() + PROXY_READY_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"{kind} exited: {process.stdout.read().decode(errors='replace')}")
        try:
            endpoint.connect(timeout=1.0).close()
            return process, endpoint
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"{kind} not listening within {PROXY_READY_TIMEOUT} s")
            time.sleep(0.02)


@pytest.fixture
def proxied(server_factory, kvmserver, servers_dir, tmp_path):
    """proxied(kind, options) -> (proxy endpoint, kvmserver process): srv_accept under
    kvmserver with `options` on a unix socket, and the proxy `kind` in front of it."""
    proxies = []

    def start(kind, options):
        upstream = make_endpoint("unix")
        server = server_factory.kvmserver(kvmserver, server_path(servers_dir, "srv_accept"),
                                          options=options, endpoint=upstream)
        process, endpoint = start_proxy(kind, tmp_path, upstream.path)
        proxies.append(process)
        return endpoint, server

    yield start
    for process in proxies:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def counters_over_one_connection(endpoint, count=REQUESTS):
    """The /counter bodies of `count` requests sent over one keep-alive connection."""
    bodies = []
    with HttpConnection(endpoint) as conn:
        for _ in range(count):
            response = conn.get("/counter")
            assert response.status == 200, response
            assert response.headers.get("connection", "keep-alive").lower() != "close", (
                "the proxy closed the client's connection", response)
            bodies.append(response.text)
    return bodies


@pytest.mark.parametrize("proxy", ["nginx", "haproxy"])
def test_every_proxied_request_is_pristine(proxied, proxy):
    endpoint, _ = proxied(proxy, ["-e", "-t", "2"])
    assert counters_over_one_connection(endpoint) == ["global=1 heap=1\n"] * REQUESTS


@pytest.mark.parametrize("proxy", ["nginx", "haproxy"])
def test_concurrent_keepalive_clients_stay_isolated(proxied, proxy):
    endpoint, _ = proxied(proxy, ["-e", "-t", "2"])
    results, errors = [], []

    def client():
        try:
            results.extend(counters_over_one_connection(endpoint, 10))
        except Exception as error:   # reported below, with the others
            errors.append(repr(error))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert results == ["global=1 heap=1\n"] * 40


@pytest.mark.parametrize("proxy", ["nginx", "haproxy"])
def test_without_ephemeral_the_state_carries_over(proxied, proxy):
    """The control: one persistent request VM counts every proxied request, so the pristine
    answers above come from the resets, not from the proxy or the client."""
    endpoint, _ = proxied(proxy, ["-t", "1"])
    assert counters_over_one_connection(endpoint) == [
        f"global={n} heap={n}\n" for n in range(1, REQUESTS + 1)]


def test_readme_shows_the_shipped_recipes():
    readme = (CONTRIB.parent / "README.md").read_text()
    for recipe in ("nginx/kvmserver.conf", "haproxy/kvmserver.cfg"):
        assert (CONTRIB / recipe).read_text().rstrip("\n") in readme, recipe
