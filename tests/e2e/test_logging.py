"""Logs people can grep: --log-level filters by importance (-v is debug), --log-format=kv
writes every line as `ts=... level=... [event=... FIELDS] msg="..."`, with one event line each
for readiness, crashes, time-outs, denials, resets (debug) and the stop; and a progress line
redrawn on the terminal while a program takes more than a second to start.
"""
import re
import shutil
import subprocess

import pytest

from conftest import run_process, transport_options
from servers import request_outcome, server_factory, server_path, servers_dir, wait_for_log

__all__ = ["server_factory", "servers_dir"]

KV_LINE = re.compile(r'^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z '
                     r'level=(error|warn|info|debug)( event=\w+)?'
                     r'(?P<fields>( [a-z_]+=("[^"]*"|[^ "]+))*) msg="(\\.|[^"\\])*"$')


def kv(line):
    """The fields of a kv line, or AssertionError."""
    match = KV_LINE.match(line)
    assert match, f"not a kv log line: {line!r}"
    return dict(re.findall(r'([a-z_]+)=("[^"]*"|[^ "]+)', line))


def test_kv_lines_one_per_event(server_factory, kvmserver, servers_dir):
    server = server_factory.kvmserver(
        kvmserver, server_path(servers_dir, "srv_accept"),
        options=["-e", "--log-format", "kv", "--log-level", "debug", "--max-request-time", "0.5"])
    assert request_outcome(server.endpoint, "/crash") == "closed"
    assert request_outcome(server.endpoint, "/sleep?ms=2000", timeout=10) == "closed"
    assert request_outcome(server.endpoint, "/connect?port=1").status == 200   # denied
    assert wait_for_log(server, 0, lambda line: "event=timeout" in line)
    assert server.terminate() == 0
    lines = [line for line in server.stderr_lines if line.startswith("ts=")]
    events = {}
    for line in lines:
        fields = kv(line)
        events.setdefault(fields.get("event"), []).append(fields)
    assert events["boot"][0]["program"] == f'"{server_path(servers_dir, "srv_accept")}"'
    assert events["ready"][0]["ephemeral"] == "yes"
    crash, = events["crash"]
    assert (crash["vm"], crash["role"], crash["signal"]) == ("0", "request", "11")
    assert events["timeout"][0]["limit_s"] == "0.5"
    assert events["denied"][0]["kind"] == "connect"
    assert events["denied"][0]["addr"] == '"127.0.0.1:1"'
    assert len(events["reset"]) >= 3            # debug: one per request
    assert events["stop"][0]["signal"] == "SIGTERM"
    # Only the summary at exit (counters, written by their own printer) is not in kv form.
    plain = [line for line in server.stderr_lines if not line.startswith("ts=")]
    assert all(" resets; per reset" in line or line.startswith("kvmserver: ")
               for line in plain), plain


def test_log_level_error_keeps_only_errors(kvmserver, programs):
    quiet = run_process([kvmserver, *transport_options(), "--log-level", "error", "run",
                         "/bin/true"])
    # /bin/true cannot load its libraries without --allow-read: warnings, then ld.so's error.
    assert quiet.status == 127 and b"error while loading shared libraries" in quiet.stderr
    assert b"denied read" not in quiet.stderr, quiet               # a warning: dropped
    loud = run_process([kvmserver, *transport_options(), "run", "/bin/true"])
    assert b"denied read" in loud.stderr, loud
    missing = run_process([kvmserver, "--log-level", "error", "run", "/no/such/program"])
    assert missing.status == 1 and b"/no/such/program: cannot open" in missing.stderr, missing


@pytest.mark.parametrize("args, message", [
    (["--log-level", "loud"], b"'--log-level': must be error, warn, info or debug"),
    (["--log-format", "json"], b"'--log-format': must be text or kv"),
])
def test_bad_log_options(kvmserver, args, message):
    outcome = run_process([kvmserver, *args, "run", "/bin/true"])
    assert outcome.status == 2 and message in outcome.stderr, outcome


def test_progress_line_on_a_terminal_only(kvmserver):
    script = shutil.which("script") or pytest.skip("script (util-linux) not installed")
    slow = [str(kvmserver), *transport_options(), "--allow-read", "run", "/bin/sleep", "1.6"]
    on_tty = subprocess.run([script, "-qec", " ".join(slow), "/dev/null"], capture_output=True,
                            timeout=60)
    assert on_tty.returncode == 0, on_tty
    assert re.search(rb"\r\x1b\[Kkvmserver: starting /bin/sleep: 1\.\d s, \d+ VM exits",
                     on_tty.stdout), on_tty.stdout
    assert on_tty.stdout.rstrip(b"\r\n").endswith(b"\r\x1b[K"), on_tty.stdout   # cleared
    piped = run_process(slow)
    assert piped.status == 0 and b"starting" not in piped.stderr, piped
