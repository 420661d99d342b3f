"""Real interpreters as servers: Python's http.server and a Node.js HTTP server run
unmodified inside kvmserver, are frozen at their first wait for a connection and served from
request VMs. With -e each request starts from the frozen image, so the counter says the same
every time: 1, or 2 after a warm-up request before the freeze; without -e it grows."""
from pathlib import Path

import pytest

from servers import http_get, server_factory

__all__ = ["server_factory"]

RUNTIME_DIR = Path(__file__).resolve().parents[1] / "servers" / "runtime"
RUNTIMES = [
    pytest.param("/usr/bin/python3", "counter.py", "python", id="python"),
    pytest.param("/usr/bin/node", "counter.js", "node", id="node"),
]


def start(server_factory, kvmserver, interpreter, script, options):
    if not Path(interpreter).is_file():
        pytest.skip(f"{interpreter} not installed")
    return server_factory.kvmserver(kvmserver, Path(interpreter),
                                    options=["--allow-read", "-t", "1", *options],
                                    args=[str(RUNTIME_DIR / script)], ready_timeout=60)


def served(server, name):
    page = http_get(server.endpoint, "/", timeout=10)
    assert page.status == 200, page
    prefix = f"{name} served "
    assert page.text.startswith(prefix), page.text
    return int(page.text[len(prefix):])


@pytest.mark.parametrize("interpreter,script,name", RUNTIMES)
@pytest.mark.parametrize("options,count", [(["-e"], 1), (["-e", "-w", "1"], 2)],
                         ids=["e", "e-warmup"])
def test_every_request_starts_fresh(kvmserver, server_factory, interpreter, script, name,
                                    options, count):
    server = start(server_factory, kvmserver, interpreter, script, options)
    assert [served(server, name) for _ in range(8)] == [count] * 8, server.describe()
    assert server.terminate(10) == 0, server.describe()


@pytest.mark.parametrize("interpreter,script,name", RUNTIMES)
def test_state_persists_without_ephemeral(kvmserver, server_factory, interpreter, script,
                                          name):
    server = start(server_factory, kvmserver, interpreter, script, [])
    seen = [served(server, name) for _ in range(8)]
    assert seen == list(range(seen[0], seen[0] + 8)), server.describe()
    assert server.terminate(10) == 0, server.describe()
