"""Output a program buffers in its own memory under -e (README, Limitations). A request VM's
memory is reset after its connection, so whatever the program printed to a buffered stdout
(stdio's full buffering when stdout is a pipe or a file) and had not written yet is reset
with it: each request starts again from the image's empty buffer, and the lines never
reach kvmserver's stdout, however many requests come (a VM that is never reset writes its
buffer out once it fills, every few requests here). Written at once (PYTHONUNBUFFERED, a
flush, line buffering), every request's output arrives."""
from pathlib import Path

import pytest

from servers import http_get, server_factory

SERVER = Path(__file__).resolve().parents[1] / "servers" / "runtime" / "print_per_request.py"
REQUESTS = 6

__all__ = ["server_factory"]


def printed_lines(kvmserver, server_factory, options):
    """The lines print_per_request.py printed for REQUESTS requests, once kvmserver stopped."""
    server = server_factory.kvmserver(kvmserver, Path("/usr/bin/python3"),
                                      options=["--allow-read", *options],
                                      args=[str(SERVER)])
    for _ in range(REQUESTS):
        assert http_get(server.endpoint, "/").text == "ok\n", server.describe()
    assert server.terminate() == 0, server.describe()
    return [line for line in server.stdout_lines if line.startswith("served a request")], server


@pytest.mark.parametrize("threads", ["1", "2"])
def test_unflushed_output_is_reset_with_the_request(kvmserver, server_factory, threads):
    lines, server = printed_lines(kvmserver, server_factory, ["-e", "-t", threads])
    assert lines == [], server.describe()


def test_a_vm_that_is_never_reset_writes_its_buffer_when_it_fills(kvmserver, server_factory):
    lines, server = printed_lines(kvmserver, server_factory, ["-t", "1"])
    assert len(lines) >= REQUESTS // 3, server.describe()


@pytest.mark.parametrize("threads", ["1", "2"])
def test_output_written_at_once_arrives_from_every_request(kvmserver, server_factory, threads):
    lines, server = printed_lines(kvmserver, server_factory,
                                  ["-e", "-t", threads, "--env", "PYTHONUNBUFFERED=1"])
    assert len(lines) == REQUESTS, server.describe()
