"""Ephemeral isolation through every way a request ends: a long request leaves no bytes for a
shorter one after it; a crash, a --max-request-time cut and a --max-request-memory abort under
`-e` are each followed by a pristine request; and a request that takes the working set past
--limit-request-memory makes the reset start the fork over from the image (the -v reset line
shows the working set starting over), after which requests are pristine too.

The pristine answers of tests/servers/isolation.c are those of isolation_endpoints.PRISTINE, or
for the other endpoints what a fresh ephemeral server answers first.
"""
import re

import pytest

from isolation_endpoints import ENDPOINTS, PRISTINE, ask
from servers import (SERVER_NAMES, ConnectionClosed, HttpConnection, request_outcome,
                     server_factory, server_path, servers_dir, wait_for_log)

__all__ = ["server_factory", "servers_dir"]

PAGE = 4096
# A head far longer than the short request after it, within the servers' 8 KiB buffer.
PADDING = 7000
LONG_REQUEST = (b"GET /stale HTTP/1.1\r\nHost: localhost\r\nX-Padding: " + b"p" * PADDING
                + b"\r\nConnection: close\r\n\r\n")
RESET_LINE = re.compile(r"kvmserver: request VM 0 reset: (\d+) pages \((\d+) new\)")


def stale_after_long(server):
    """Sends the long request on one connection, then a short /stale on the next one; returns
    the short request's answer, checking nothing else came on its connection."""
    with HttpConnection(server.endpoint) as conn:
        conn.sock.sendall(LONG_REQUEST)
        long_answer = conn.receive()
        assert long_answer.status == 200, long_answer
    with HttpConnection(server.endpoint) as conn:
        answer = conn.get("/stale", keep_alive=False)
        assert answer.status == 200, answer
        with pytest.raises(ConnectionClosed):
            conn.receive()
        assert conn.buffer == b"", f"bytes after the response: {conn.buffer!r}"
    return answer.text


@pytest.mark.parametrize("options", [["-t", "1"], ["-t", "2"]], ids=["t1", "t2"])
@pytest.mark.parametrize("name", SERVER_NAMES)
def test_no_stale_bytes_after_a_long_request(kvmserver, server_factory, servers_dir, name,
                                             options):
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, name),
                                      options=["-e", *options])
    for _ in range(3):
        assert stale_after_long(server) == "stale=0\n", server.describe()


def test_stale_bytes_seen_where_nothing_is_reset(kvmserver, server_factory, servers_dir):
    """Control: srv_accept keeps one static buffer for every connection, so natively, without
    -e, and within one connection under -e, the long request's bytes are there to be seen."""
    program = server_path(servers_dir, "srv_accept")
    native = server_factory.native(program)
    assert stale_after_long(native) != "stale=0\n", native.describe()
    persistent = server_factory.kvmserver(kvmserver, program, options=["-t", "1"])
    assert stale_after_long(persistent) != "stale=0\n", persistent.describe()
    ephemeral = server_factory.kvmserver(kvmserver, program, options=["-t", "1", "-e"])
    with HttpConnection(ephemeral.endpoint) as conn:
        conn.sock.sendall(LONG_REQUEST.replace(b"Connection: close", b"Connection: keep-alive"))
        assert conn.receive().status == 200
        assert conn.get("/stale").text != "stale=0\n", ephemeral.describe()


def pristine_answers(server):
    """What a fresh ephemeral VM answers at each endpoint."""
    answers = {path: ask(server.endpoint, path) for path in ENDPOINTS}
    wrong = {path: got for path, got in answers.items() if PRISTINE.get(path, got) != got}
    assert wrong == {}, f"not pristine on a fresh server: {wrong}\n" + server.describe()
    return answers


ABORTS = [
    pytest.param("/crash", ["--allow-read"],
                 r"request VM 0: crashed: .*\(signal 11\); connection closed, VM reset",
                 id="crash"),
    pytest.param("/slow", ["--allow-read", "--max-request-time", "0.3"],
                 r"request VM 0: request took longer than --max-request-time \(0.3 s\); "
                 r"connection closed, VM reset", id="max-request-time"),
    pytest.param("/eat?mb=200", ["--allow-read", "--max-request-memory", "64"],
                 r"request VM 0: request exceeded --max-request-memory \(64 MiB\); "
                 r"connection closed, VM reset", id="max-request-memory"),
]


@pytest.mark.parametrize("abort,options,logged", ABORTS)
def test_aborted_request_is_followed_by_a_pristine_one(kvmserver, server_factory, servers_dir,
                                                       abort, options, logged):
    """The aborting request first changes every kind of state isolation.c knows; the request
    right after it, on the same (only) request VM, must find each one pristine."""
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, "isolation"),
                                      options=["-e", "-t", "1", *options])
    pristine = pristine_answers(server)
    pattern = re.compile(logged)
    wrong = []
    for path in ENDPOINTS:
        since = server.log_line_count()
        assert request_outcome(server.endpoint, abort, timeout=10) == "closed", (
            f"{abort} was answered\n" + server.describe())
        assert wait_for_log(server, since, pattern.search), (
            f"no abort line for {abort}\n" + server.describe())
        got = ask(server.endpoint, path)
        if got != pristine[path]:
            wrong.append((path, got, pristine[path]))
    assert wrong == [], f"after {abort}: {wrong}\n" + server.describe()


def reset_lines(server):
    """(pages restored, pages new) of each -v reset line so far: one per request, logged
    after its connection closed."""
    return [(int(match.group(1)), int(match.group(2)))
            for match in map(RESET_LINE.search, server.log_lines_since(0)) if match]


def scribble_then(server, path, sent):
    """/scribble (8 MiB of the image written) and then `path`, each on its own connection,
    after `sent` requests; returns the answer to `path` and the reset lines of the two."""
    assert ask(server.endpoint, "/scribble") == "changed=0\n", server.describe()
    got = ask(server.endpoint, path)
    assert wait_for_log(server, 0, lambda line: len(reset_lines(server)) >= sent + 2), (
        "no reset lines\n" + server.describe())
    return got, reset_lines(server)[sent:sent + 2]


SCRIBBLED_PAGES = (8 << 20) // PAGE


def test_limit_request_memory_starts_the_fork_over(kvmserver, server_factory, servers_dir):
    """8 MiB of the image written passes a 4 MiB limit: the reset after it starts the fork
    over from the image, so the next request's reset restores only what that request wrote,
    not the 8 MiB again, and every endpoint's answer after it is pristine."""
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, "isolation"),
                                      options=["-e", "-t", "1", "-v", "--allow-read",
                                               "--limit-request-memory", "4"])
    pristine = pristine_answers(server)
    wrong = []
    for turn, path in enumerate(ENDPOINTS):
        sent = len(ENDPOINTS) + 2 * turn
        got, ((scribbled, _), (next_pages, _)) = scribble_then(server, path, sent)
        assert scribbled >= SCRIBBLED_PAGES, server.describe()
        # A kept working set would hold the scribbled pages still (the control below).
        assert next_pages < SCRIBBLED_PAGES, (
            f"after /scribble, {path}'s reset restored {next_pages} pages: "
            "the working set was kept\n" + server.describe())
        if got != pristine[path]:
            wrong.append((path, got, pristine[path]))
    assert wrong == [], wrong


def test_working_set_kept_under_the_limit(kvmserver, server_factory, servers_dir):
    """Control: under the default limit (128 MiB) the 8 MiB stay in the working set, and the
    request after /scribble restores them again (so the check above can fail)."""
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, "isolation"),
                                      options=["-e", "-t", "1", "-v", "--allow-read"])
    got, ((scribbled, _), (next_pages, next_new)) = scribble_then(server, "/scribble", 0)
    assert got == "changed=0\n", server.describe()
    assert scribbled >= SCRIBBLED_PAGES and next_pages >= scribbled, server.describe()
    assert next_new < SCRIBBLED_PAGES, server.describe()
