"""SIGHUP while serving: kvmserver parses kvmserver.toml (and its command line over it) again.
--max-request-time, --max-request-memory, --limit-request-memory and --shutdown-timeout take
effect from the next request; any other option that changed is named as needing a restart
and keeps its value; a file that does not parse changes nothing.
"""
import signal

from servers import (request_outcome, server_factory, server_path, servers_dir, wait_for_log)

__all__ = ["server_factory", "servers_dir"]


def hup(server, toml, text, expect):
    """Writes kvmserver.toml, sends SIGHUP, and waits for the log line `expect`."""
    since = server.log_line_count()
    toml.write_text(text)
    server.process.send_signal(signal.SIGHUP)
    lines = wait_for_log(server, since, lambda line: expect in line, timeout=5)
    assert lines is not None, f"no {expect!r} after SIGHUP\n" + server.describe()
    return lines


def test_sighup_applies_request_limits_and_names_the_rest(server_factory, kvmserver,
                                                         servers_dir, tmp_path):
    toml = tmp_path / "kvmserver.toml"
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, "srv_accept"),
                                      options=["-e", "-t", "1"], cwd=tmp_path)
    slow = "/sleep?ms=1500"
    assert request_outcome(server.endpoint, slow).status == 200     # under the 8 s default

    # threads: -t 1 on the command line wins over the file, as at start: not a change.
    lines = hup(server, toml, "max-request-time = 1.0\nthreads = 3\nwarmup = 2\n",
                "SIGHUP: max-request-time = 1.0 (was: max-request-time = 8.0)")
    lines = wait_for_log(server, 0, lambda line: "warmup = 2' needs a restart" in line)
    assert lines and any("SIGHUP: 'warmup = 2' needs a restart; still 'warmup = 0'" in line
                         for line in lines), server.describe()
    assert not any("threads" in line for line in server.stderr_lines), server.describe()
    assert request_outcome(server.endpoint, slow, timeout=10) == "closed"
    cut = "request took longer than --max-request-time (1 s)"
    assert wait_for_log(server, 0, lambda line: cut in line), server.describe()

    # A file that does not parse leaves the running values (1 s) in force.
    hup(server, toml, "max-request-time = [\n", "SIGHUP: the configuration does not parse")
    assert request_outcome(server.endpoint, slow, timeout=10) == "closed"

    # The same file again: nothing left to apply, and warmup still needs a restart.
    lines = hup(server, toml, "max-request-time = 1.0\nwarmup = 2\n", "needs a restart")
    assert not any("SIGHUP: max-request-time" in line for line in lines), lines
    hup(server, toml, "", "SIGHUP: max-request-time = 8.0 (was: max-request-time = 1.0)")
    assert request_outcome(server.endpoint, slow).status == 200
    assert server.terminate() == 0


def test_sighup_with_nothing_changed_says_so(server_factory, kvmserver, servers_dir, tmp_path):
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, "srv_accept"),
                                      options=["-e"], cwd=tmp_path)
    hup(server, tmp_path / "kvmserver.toml", "", "SIGHUP: the configuration is unchanged")
    assert request_outcome(server.endpoint, "/").status == 200
