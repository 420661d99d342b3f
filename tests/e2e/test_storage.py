"""The storage subcommand: `kvmserver -e storage ./kvstore SOCKET ++ run ./storefront PORT
SOCKET` (examples/). The storage VM is booted first and never reset; request VMs reach it
only by connecting to the unix socket its program bound, and what they store there outlives
their own ephemeral state. Nobody outside kvmserver reaches the storage VM.
"""
import os
import socket
import tempfile
import threading
import time

import pytest

from conftest import run_process, transport_options
from servers import (Endpoint, ServerProcess, free_port, http_get, scrape, server_factory,
                     server_path, servers_dir)

__all__ = ["server_factory", "servers_dir"]


@pytest.fixture
def examples(build):
    return build / "examples"


@pytest.fixture
def storage_socket():
    folder = tempfile.mkdtemp(prefix="kvms-", dir="/tmp")
    yield os.path.join(folder, "kv.sock")
    try:
        os.unlink(os.path.join(folder, "kv.sock"))
    except FileNotFoundError:
        pass
    os.rmdir(folder)


def start(server_factory, kvmserver, examples, storage_socket, options=(), storage_options=()):
    endpoint = Endpoint(port=free_port())
    argv = [kvmserver, *transport_options(),
            f"--allow-listen=127.0.0.1:{endpoint.port},unix:{storage_socket}", *options,
            "storage", *storage_options, examples / "kvstore", storage_socket,
            "++", "run", examples / "storefront", str(endpoint.port), storage_socket]
    server = ServerProcess(argv, endpoint)
    server.start()
    server_factory.started.append(server)
    server.wait_ready_line()
    return server


@pytest.mark.parametrize("threads", ["1", "2"])
def test_storage_outlives_ephemeral_requests(server_factory, kvmserver, examples,
                                             storage_socket, threads):
    server = start(server_factory, kvmserver, examples, storage_socket, ["-e", "-t", threads])
    assert any(line.startswith("Storage program '") and line.endswith(storage_socket)
               for line in server.stdout_lines), server.describe()
    bodies = [http_get(server.endpoint, "/visits").text for _ in range(6)]
    assert bodies == [f"local=1 storage={n}\n" for n in range(1, 7)], server.describe()


def test_storage_as_a_cache_in_front_of_a_slow_backend(server_factory, kvmserver, examples,
                                                       storage_socket):
    server = start(server_factory, kvmserver, examples, storage_socket, ["-e", "-t", "2"])
    t0 = time.monotonic()
    first = http_get(server.endpoint, "/slow?key=page")
    slow = time.monotonic() - t0
    assert first.status == 200 and first.text.endswith(" cached=no\n"), first
    assert slow >= 0.2
    value = first.text.split()[0]
    for _ in range(3):
        again = http_get(server.endpoint, "/slow?key=page")
        assert again.text == f"{value} cached=yes\n", again


def test_nobody_outside_reaches_the_storage_vm(server_factory, kvmserver, examples,
                                               storage_socket):
    server = start(server_factory, kvmserver, examples, storage_socket, ["-e"])
    # The path exists (the storage program bound it) but does not listen on the host.
    assert os.path.exists(storage_socket)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as outsider:
        with pytest.raises(ConnectionRefusedError):
            outsider.connect(storage_socket)
    assert http_get(server.endpoint, "/visits").text == "local=1 storage=1\n"
    assert server.terminate() == 0


def whoami_pair(endpoint, metrics_port):
    """Two requests at once: one holds its request VM (and so its storage VM, if it has one
    of its own) for 1.5 s, the other is served meanwhile by the other request VM. Returns
    the two storage pids they saw."""
    held = {}
    thread = threading.Thread(target=lambda: held.update(r=http_get(endpoint, "/whoami?ms=1500")))
    thread.start()
    deadline = time.monotonic() + 5
    while scrape(metrics_port).get('kvmserver_request_vms{state="busy"}') != 1:
        assert time.monotonic() < deadline, "the first request was never accepted"
        time.sleep(0.01)
    other = http_get(endpoint, "/whoami")
    thread.join(10)
    return held["r"].text, other.text


@pytest.mark.parametrize("one_to_one", [True, False])
def test_one_to_one_gives_each_request_vm_its_storage_vm(server_factory, kvmserver, examples,
                                                         storage_socket, one_to_one):
    metrics = free_port()
    server = start(server_factory, kvmserver, examples, storage_socket,
                   ["-e", "-t", "2", "--metrics", f"127.0.0.1:{metrics}"],
                   ["--1-to-1"] if one_to_one else [])
    first, second = whoami_pair(server.endpoint, metrics)
    assert first.startswith("storage_pid=") and second.startswith("storage_pid="), (first, second)
    assert (first != second) == one_to_one, (first, second)


def test_storage_program_must_listen_on_a_unix_socket(kvmserver, servers_dir, examples):
    port, front = free_port(), free_port()
    outcome = run_process([kvmserver, *transport_options(), "--allow-listen", "storage",
                           server_path(servers_dir, "srv_accept"), str(port), "++", "run",
                           examples / "storefront", str(front), "/tmp/none.sock"])
    assert outcome.status == 1, outcome
    assert b"the storage program listens on a socket that is not a unix socket" in outcome.stderr


@pytest.mark.parametrize("args, message", [
    (["storage", "/bin/true"], b"storage needs STORAGE-PROGRAM [ARGS] ++ run PROGRAM [ARGS]"),
    (["storage", "/bin/true", "++", "/bin/true"], b"'++' must be followed by 'run PROGRAM"),
    (["storage", "/bin/true", "++", "run"], b"missing PROGRAM after '++ run'"),
])
def test_storage_command_line_errors(kvmserver, args, message):
    outcome = run_process([kvmserver, *args])
    assert outcome.status == 2, outcome
    assert message in outcome.stderr, outcome
