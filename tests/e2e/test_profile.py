"""--profile: at exit, kvmserver prints where a request's time went (per request: the
connection, the guest, exits, KVM's own counters, handlers, flushes, thread switches, the reset's phases, the
system calls with most host time), with one key=value line for the benchmarks."""
import re

from servers import http_get, server_factory, server_path, servers_dir

__all__ = ["server_factory", "servers_dir"]

REQUESTS = 20


def profile_line(server):
    lines = [line for line in server.stderr_lines
             if line.startswith("kvmserver: profile: requests=")]
    assert len(lines) == 1, server.describe()
    fields = dict(re.findall(r"(\w+)=(\S+)", lines[0]))
    return fields


def test_profile_counts_every_request(server_factory, kvmserver, servers_dir):
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, "srv_accept"),
                                      options=["-e", "--profile"])
    for _ in range(REQUESTS):
        assert http_get(server.endpoint, "/counter").text == "global=1 heap=1\n"
    assert server.terminate() == 0
    p = profile_line(server)
    assert int(p["requests"]) == REQUESTS
    # Each request reads its request and writes its answer; a reset copies its pages back.
    calls = {name: float(count) for name, count, _ in
             (entry.split(":") for entry in p["top"].split(","))}
    assert calls.get("read", 0) >= 1 and calls.get("write", 0) >= 1, p
    assert float(p["pages"]) > 0 and float(p["reset_us"]) > 0 and float(p["guest_us"]) > 0, p
    assert float(p["reset_us"]) >= float(p["scan_us"]) + float(p["copy_us"]), p
    assert float(p["exits"]) >= float(p["syscall_exits"]) >= 1, p
    assert float(p["switches"]) == 0, p             # one guest thread
    # KVM's own counters see every exit KVM_RUN returned for, and the in-kernel ones too.
    assert float(p["kvm_exits"]) >= float(p["syscall_exits"]), p
    assert float(p["kvm_pf"]) >= float(p["kvm_pf_fixed"]) >= 0, p
    assert any(line.startswith("kvmserver: profile:   in KVM ") for line in server.stderr_lines)
    assert any(line.startswith("kvmserver: profile:   reset ") for line in server.stderr_lines)


def test_profile_needs_ephemeral(server_factory, kvmserver, servers_dir):
    server = server_factory.kvmserver(kvmserver, server_path(servers_dir, "srv_accept"),
                                      options=["--profile"])
    assert http_get(server.endpoint, "/").status == 200
    assert server.terminate() == 0
    assert "kvmserver: --profile counts requests only with -e" in server.stderr, server.describe()
    assert "kvmserver: profile: no request was served" in server.stderr, server.describe()
