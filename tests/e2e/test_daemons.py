"""Root-started daemons that drop their rights at start-up (issue 11): memcached with `-u root`
and `-u nobody` (setgroups, setgid, setuid), redis-server and nginx with a `user` directive
run unmodified inside kvmserver and answer their own protocols over real sockets.

With -e a connection is a request VM that is reset afterwards: what one connection stored is
seen on that connection and gone on the next. Without -e, one request VM keeps it.
"""
import os
import shutil
import socket
import time

import pytest

from conftest import transport_options
from servers import (IO_TIMEOUT, Endpoint, HttpConnection, ServerProcess,
                     assert_transport_used, free_port, server_factory)

__all__ = ["server_factory"]

READY_TIMEOUT = 30.0


def binary(name):
    path = shutil.which(name) or f"/usr/sbin/{name}"
    for candidate in (path, f"/usr/bin/{name}"):
        if os.access(candidate, os.X_OK):
            return candidate
    pytest.skip(f"{name} not installed (scripts/install-deps.sh)")


def start(server_factory, kvmserver, port, options, argv):
    """`kvmserver -t 1 [options] run ARGV`, allowed to listen on 127.0.0.1:port and to read
    the file system (the program, its libraries, /etc/passwd and /etc/group)."""
    endpoint = Endpoint(port=port)
    server = ServerProcess([kvmserver, *transport_options(), "-t", "1", f"--allow-listen=127.0.0.1:{port}",
                            "--allow-read", *options, "run", *argv], endpoint)
    server.start()
    server_factory.started.append(server)
    server.wait_ready_line(READY_TIMEOUT)
    assert_transport_used(server)
    return server


class Connection:
    """One client connection; `ask` sends a request and reads until the reply is complete."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)

    def ask(self, request: bytes, complete) -> bytes:
        self.sock.sendall(request)
        reply = b""
        while not complete(reply):
            chunk = self.sock.recv(4096)
            assert chunk, f"connection closed after {reply!r}"
            reply += chunk
        return reply

    def close(self):
        self.sock.close()


# ---------------------------------------------------------------------------- memcached

def mc_set(conn, key, value):
    return conn.ask(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value),
                    lambda r: r.endswith(b"\r\n"))


def mc_get(conn, key):
    return conn.ask(b"get %s\r\n" % key, lambda r: r.endswith(b"END\r\n"))


@pytest.mark.parametrize("user", ["root", "nobody"])
@pytest.mark.parametrize("ephemeral", [False, True], ids=["persistent", "ephemeral"])
def test_memcached_drops_to_user(kvmserver, server_factory, user, ephemeral):
    port = free_port()
    server = start(server_factory, kvmserver, port, ["-e"] if ephemeral else [],
                   [binary("memcached"), "-u", user, "-l", "127.0.0.1", "-p", str(port),
                    "-U", "0"])
    first = Connection(port)
    assert mc_set(first, b"k", b"abc") == b"STORED\r\n", server.describe()
    assert mc_get(first, b"k") == b"VALUE k 0 3\r\nabc\r\nEND\r\n", server.describe()
    first.close()
    second = Connection(port)
    seen = mc_get(second, b"k")
    second.close()
    assert seen == (b"END\r\n" if ephemeral else b"VALUE k 0 3\r\nabc\r\nEND\r\n"), \
        server.describe()


# ---------------------------------------------------------------------------- redis

def resp(*words: bytes) -> bytes:
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)


def resp_reply(r: bytes) -> bool:
    """A complete simple reply: +OK, -ERR, :1, $-1, or one bulk string."""
    if not r.endswith(b"\r\n"):
        return False
    if r[:1] != b"$" or r.startswith(b"$-1"):
        return True
    size = int(r[1:r.index(b"\r\n")])
    return len(r) >= r.index(b"\r\n") + 2 + size + 2


@pytest.mark.parametrize("ephemeral", [False, True], ids=["persistent", "ephemeral"])
def test_redis(kvmserver, server_factory, ephemeral):
    port = free_port()
    server = start(server_factory, kvmserver, port, ["-e"] if ephemeral else [],
                   [binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--daemonize", "no"])
    first = Connection(port)
    assert first.ask(resp(b"PING"), resp_reply) == b"+PONG\r\n", server.describe()
    assert first.ask(resp(b"SET", b"k", b"v"), resp_reply) == b"+OK\r\n", server.describe()
    assert first.ask(resp(b"GET", b"k"), resp_reply) == b"$1\r\nv\r\n", server.describe()
    first.close()
    second = Connection(port)
    seen = second.ask(resp(b"GET", b"k"), resp_reply)
    second.close()
    assert seen == (b"$-1\r\n" if ephemeral else b"$1\r\nv\r\n"), server.describe()


# ---------------------------------------------------------------------------- nginx

NGINX_CONF = """user {user};
daemon off;
master_process off;
error_log stderr notice;
pid {tmp}/nginx.pid;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  server {{ listen 127.0.0.1:{port}; location / {{ return 200 "hello\\n"; }} }}
}}
"""


@pytest.mark.parametrize("user", ["root", "nobody nogroup"])
def test_nginx_with_user(kvmserver, server_factory, tmp_path, user):
    """A guest cannot fork, so nginx runs in one process (master_process off); it still
    looks its user and group up and starts."""
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=user, tmp=tmp_path, port=port))
    server = start(server_factory, kvmserver, port, ["-e", f"--allow-write={tmp_path}"],
                   [binary("nginx"), "-p", str(tmp_path), "-c", str(conf)])
    for _ in range(3):
        with HttpConnection(server.endpoint) as http:
            page = http.get("/", keep_alive=False)
        assert page.status == 200 and page.text == "hello\n", server.describe()
    time.sleep(0.1)
    assert "[emerg]" not in server.stderr, server.describe()
