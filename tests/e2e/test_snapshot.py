"""`kvmserver snapshot -o FILE PROGRAM` and `kvmserver snaprun FILE`: a snapshot of the frozen
master served without a boot, isolation kept (tests/servers/isolation.c state by state, the
Python and Node.js counters), its time to first response against a cold boot, the recorded
policy (narrowed, never widened), and damaged or hostile files refused with one clear line
(docs/snapshot-format.md). Files that are checksummed again after an edit reach the checks
behind the checksums."""
import re
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT, run_process, transport_options
from isolation_endpoints import ENDPOINTS, ask, not_pristine, steps_for
from servers import (READY_TIMEOUT, WARMUP_LINE, ServerProcess, assert_transport_used, deno_path,
                     free_port, http_get, make_endpoint, server_factory, server_path,
                     servers_dir)

sys.path.insert(0, str(REPO_ROOT / "tests" / "fuzz"))
from snapshot_seeds import crc32c  # noqa: E402

RUNTIME = REPO_ROOT / "tests" / "servers" / "runtime"
HEADER = struct.Struct("<8sII64sQII")
SECTION = struct.Struct("<IIQQ")
TAGS = {"meta": 1, "policy": 2, "cpu": 3, "vcpu": 4, "engine": 5, "memruns": 6, "memdata": 7,
        "proc": 8, "fds": 9}


def take_snapshot(kvmserver, path, program, args, endpoint, options=()):
    argv = [kvmserver, *endpoint.kvmserver_options(), *options, "snapshot", "-o", path,
            program, *args, endpoint.argv()]
    outcome = run_process(argv, timeout=60)
    assert outcome.status == 0 and Path(path).is_file(), (
        f"snapshot failed: {outcome.status}\n" + outcome.stderr.decode(errors="replace"))
    assert b"Snapshot of " in outcome.stdout, outcome.stdout
    return outcome


def start_snaprun(factory, kvmserver, path, endpoint, options=(), wait=True):
    server = ServerProcess([kvmserver, *transport_options(), *options, "snaprun", path],
                           endpoint)
    server.start()
    factory.started.append(server)
    if wait:
        server.wait_ready_line()
        assert_transport_used(server)
    return server


def snaprun_outcome(kvmserver, path, options=()):
    """snaprun that must not start: its exit status and stderr."""
    outcome = run_process([kvmserver, *options, "snaprun", path], timeout=30)
    assert outcome.raw_returncode >= 0, (
        f"kvmserver died of signal {-outcome.raw_returncode}\n"
        + outcome.stderr.decode(errors="replace"))
    return outcome.status, outcome.stderr.decode(errors="replace")


# ---------------------------------------------------------------------------- isolation

@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    return tmp_path_factory.mktemp("snapshots")


@pytest.mark.parametrize("threads", ["1", "2"])
def test_isolation_server_from_snapshot(kvmserver, servers_dir, server_factory, snapshots,
                                        threads):
    """Every endpoint of the isolation server answers pristine, request after request, from
    a snapshot: pipes, socketpairs, eventfds, memfds, files, epoll and threads included."""
    endpoint = make_endpoint("tcp")
    path = snapshots / f"isolation-{threads}.snap"
    take_snapshot(kvmserver, path, server_path(servers_dir, "isolation"), [], endpoint,
                  ["-e", "--allow-read"])
    server = start_snaprun(server_factory, kvmserver, path, endpoint, ["-t", threads])
    for name in ENDPOINTS:
        steps = steps_for(name)
        answers = [ask(endpoint, step) for step in steps]
        assert not_pristine(steps, answers) == [], (name, answers, server.describe())


def test_fd_kinds_from_snapshot(kvmserver, servers_dir, server_factory, snapshots):
    """srv_fdkinds' pipes (one end closed, a dup), socketpair, eventfd, memfd and file: from
    a snapshot every request sees them as the fresh native server's first request does."""
    program = server_path(servers_dir, "srv_fdkinds")
    expected = http_get(server_factory.native(program).endpoint, "/").text
    endpoint = make_endpoint("tcp")
    path = snapshots / "fdkinds.snap"
    take_snapshot(kvmserver, path, program, [], endpoint, ["-e"])
    server = start_snaprun(server_factory, kvmserver, path, endpoint, ["-t", "2"])
    assert [http_get(endpoint, "/").text for _ in range(6)] == [expected] * 6, server.describe()


def test_unix_socket_server_from_snapshot(kvmserver, servers_dir, server_factory, snapshots):
    """A unix listener is bound again at its path (the snapshot's own process left it)."""
    endpoint = make_endpoint("unix")
    path = snapshots / "unix.snap"
    take_snapshot(kvmserver, path, server_path(servers_dir, "srv_accept"), [], endpoint, ["-e"])
    start_snaprun(server_factory, kvmserver, path, endpoint)
    bodies = [http_get(endpoint, "/").text for _ in range(3)]
    assert len(set(bodies)) == 1, bodies


def runtime_counter(kvmserver, server_factory, snapshots, interpreter, script, warmup,
                    before_script=()):
    assert Path(interpreter).is_file(), f"{interpreter} not installed"
    endpoint = make_endpoint("tcp")
    path = snapshots / f"{Path(script).stem}-{warmup}.snap"
    outcome = take_snapshot(kvmserver, path, interpreter, [*before_script, RUNTIME / script],
                            endpoint, ["-e", "--allow-read", "-w", str(warmup)])
    # -w's count, or a few more where the runtime's helper threads set the freeze point.
    sent = [int(m.group(1)) for m in WARMUP_LINE.finditer(outcome.stderr.decode(errors="replace"))]
    assert len(sent) == (warmup > 0) and all(warmup <= n <= 2 * warmup for n in sent), outcome
    start_snaprun(server_factory, kvmserver, path, endpoint)
    return [http_get(endpoint, "/", timeout=10).text for _ in range(5)], sum(sent)


@pytest.mark.parametrize("warmup", [0, 3])
def test_python_counter_from_snapshot(kvmserver, server_factory, snapshots, warmup):
    """Each request starts from the image: the warm-up's count plus one, every time."""
    answers, sent = runtime_counter(kvmserver, server_factory, snapshots, "/usr/bin/python3",
                                    "counter.py", warmup)
    assert sent == warmup       # no helper threads: exactly -w
    assert answers == [f"python served {warmup + 1}\n"] * 5


def test_node_counter_from_snapshot(kvmserver, server_factory, snapshots):
    answers, sent = runtime_counter(kvmserver, server_factory, snapshots, "/usr/bin/node",
                                    "counter.js", 2)
    assert answers == [f"node served {sent + 1}\n"] * 5


def test_deno_counter_from_snapshot(kvmserver, server_factory, snapshots):
    answers, sent = runtime_counter(kvmserver, server_factory, snapshots, deno_path(),
                                    "counter_deno.ts", 2, before_script=["run", "-A"])
    assert answers == [f"deno served {sent + 1}\n"] * 5


def test_port0_server_keeps_its_port(kvmserver, server_factory, snapshots):
    """A program that let the kernel pick its port serves on that port again, which is the
    one it read back before the snapshot."""
    path = snapshots / "port0.snap"
    outcome = run_process([kvmserver, "--allow-read", "--allow-listen", "-e", "snapshot", "-o",
                           path, "/usr/bin/python3", RUNTIME / "port0.py", "bind0"], timeout=60)
    assert outcome.status == 0, outcome.stderr.decode(errors="replace")
    port = int(outcome.stdout.decode().split("port ")[1].split()[0])
    endpoint = make_endpoint("tcp")
    endpoint.port = port
    start_snaprun(server_factory, kvmserver, path, endpoint)
    assert http_get(endpoint, "/").text == f"port {port}\n"


# ---------------------------------------------------------------------------- cold start

def first_response_ms(argv, port, timeout=30.0):
    """From starting argv to the first whole response on 127.0.0.1:port."""
    started = time.monotonic()
    process = subprocess.Popen([str(a) for a in argv], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={})
    try:
        while time.monotonic() - started < timeout:
            assert process.poll() is None, f"{argv} exited with {process.returncode}"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
                    data = b""
                    while chunk := sock.recv(65536):
                        data += chunk
                if data.startswith(b"HTTP/1."):
                    return (time.monotonic() - started) * 1e3
            except OSError:
                time.sleep(0.0005)
        pytest.fail(f"no response from {argv} within {timeout} s")
    finally:
        process.terminate()
        process.wait(5)


@pytest.mark.parametrize("name", ["static", "python"])
def test_first_response_faster_than_cold_boot(kvmserver, build, snapshots, name):
    """Interleaved rounds of a cold `run` and a `snaprun` of the same server: the snapshot
    answers its first request sooner (the figures are printed). The fastest rounds are
    compared: on a shared 2-CPU machine the others carry whatever else ran meanwhile."""
    port = free_port()
    if name == "static":
        program, args = build / "examples" / "httpd", [str(port)]
    else:
        program, args = "/usr/bin/python3", [RUNTIME / "counter.py", str(port)]
    path = snapshots / f"cold-{name}.snap"
    options = ["-e", "--allow-read", f"--allow-listen=127.0.0.1:{port}"]
    outcome = run_process([kvmserver, *options, "snapshot", "-o", path, program, *args],
                          timeout=60)
    assert outcome.status == 0, outcome.stderr.decode(errors="replace")
    cold, warm = [], []
    for _ in range(5):
        cold.append(first_response_ms([kvmserver, *transport_options(), *options, "run",
                                       program, *args], port))
        warm.append(first_response_ms([kvmserver, *transport_options(), "snaprun", path],
                                      port))
    print(f"{name}: cold boot {cold} ms, snaprun {warm} ms; medians "
          f"{statistics.median(cold):.1f} / {statistics.median(warm):.1f} ms")
    assert min(warm) < min(cold), (cold, warm)


# ---------------------------------------------------------------------------- policy

@pytest.fixture(scope="module")
def httpd_snapshot(kvmserver, build, snapshots):
    port = free_port()
    path = snapshots / "httpd.snap"
    outcome = run_process([kvmserver, "-e", f"--allow-listen=127.0.0.1:{port}",
                           "--max-request-memory", "64", "snapshot", "-o", path,
                           build / "examples" / "httpd", str(port)], timeout=60)
    assert outcome.status == 0, outcome.stderr.decode(errors="replace")
    return path, port


@pytest.mark.parametrize("options, words", [
    (["--allow-read"], "--allow-read differs from the snapshot's policy"),
    (["--allow-listen"], "--allow-listen differs from the snapshot's policy"),
    (["--allow-all"], "--allow-all would widen"),
    (["--max-request-memory", "65"], "--max-request-memory would widen"),
    (["--max-request-time", "0"], "--max-request-time would widen"),
    (["-w", "1"], "-w has no effect on snaprun"),
])
def test_snaprun_refuses_to_widen_the_policy(kvmserver, httpd_snapshot, options, words):
    status, stderr = snaprun_outcome(kvmserver, httpd_snapshot[0], options)
    assert status == 2 and words in stderr, (status, stderr)


def test_snaprun_accepts_the_same_or_a_narrower_policy(kvmserver, httpd_snapshot,
                                                       server_factory):
    path, port = httpd_snapshot
    endpoint = make_endpoint("tcp")
    endpoint.port = port
    start_snaprun(server_factory, kvmserver, path, endpoint,
                  [f"--allow-listen=127.0.0.1:{port}", "--max-request-memory", "32",
                   "--max-request-time", "2"])
    assert http_get(endpoint, "/").status == 200


def test_unsaveable_fd_names_the_fd(kvmserver, tmp_path):
    """A socket reaching outside the guest cannot be made again from a file: the snapshot
    fails and says which fd it is and what it is."""
    script = tmp_path / "udp_server.py"
    script.write_text("import socket, sys\n"
                      "udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                      "sys.argv = sys.argv[1:]\n"
                      "exec(open(sys.argv[0]).read())\n")
    port = free_port()
    outcome = run_process([kvmserver, "--allow-read", "--allow-listen", "snapshot", "-o",
                           tmp_path / "x.snap", "/usr/bin/python3", script,
                           RUNTIME / "counter.py", str(port)], timeout=60)
    stderr = outcome.stderr.decode(errors="replace")
    assert outcome.status == 1 and re.search(
        r"guest fd \d+ \(a socket connected or bound outside\) cannot be saved", stderr), stderr
    assert not (tmp_path / "x.snap").exists()


# ---------------------------------------------------------------------------- damaged files

def sections(data: bytes):
    head = HEADER.unpack_from(data)
    return [list(SECTION.unpack_from(data, HEADER.size + i * SECTION.size))
            for i in range(head[2])]


def resealed(data: bytearray) -> bytes:
    """The file with every checksum made right again (as a careful forger would)."""
    table = sections(data)
    for i, sec in enumerate(table):
        sec[1] = crc32c(bytes(data[sec[2]:sec[2] + sec[3]]))
        SECTION.pack_into(data, HEADER.size + i * SECTION.size, *sec)
    struct.pack_into("<I", data, 88, 0)
    struct.pack_into("<I", data, 88, crc32c(bytes(data[:4096])))
    return bytes(data)


def edited(data: bytes, tag: str, offset: int, new: bytes) -> bytes:
    """The file with bytes of one section replaced, checksums resealed."""
    out = bytearray(data)
    sec = next(s for s in sections(data) if s[0] == TAGS[tag])
    assert offset + len(new) <= sec[3]
    out[sec[2] + offset:sec[2] + offset + len(new)] = new
    return resealed(out)


def damaged_files(data: bytes):
    """(name, bytes, words the refusal must contain)."""
    table = sections(data)
    yield "empty", b"", "empty file"
    yield "short", data[:100], "not a kvmserver snapshot"
    yield "header only", data[:4096], "truncated"
    yield "half", data[:len(data) // 2], "truncated"
    yield "no magic", b"X" + data[1:], "no KVMSSNAP magic"
    yield "format", data[:8] + struct.pack("<I", 99) + data[12:], "format 99"
    for pos in [9 * 4096 // 10, 12, 20, 70, 100, len(data) - 1] + \
               [s[2] + s[3] // 2 for s in table if s[3]]:
        flipped = bytearray(data)
        flipped[pos] ^= 0x10
        yield f"bit flip at {pos}", bytes(flipped), "damaged snapshot"
    version = bytearray(data)
    version[16:80] = b"0.0.1 layout 00000000".ljust(64, b"\0")
    yield "version", resealed(version), "made by kvmserver 0.0.1 layout 00000000; this is"
    outside = bytearray(data)
    SECTION.pack_into(outside, HEADER.size, table[0][0], 0, 1 << 60, 16)
    yield "section outside", resealed(outside), "outside the file"
    yield "hostile run", edited(data, "memruns", 0, struct.pack("<QQ", 1 << 40, 1 << 40)), \
        "misplaced"
    proc = next(s for s in table if s[0] == TAGS["proc"])
    task, stats, sig, mm, server, _ = struct.unpack_from("<6I", data, proc[2])
    threads = 24 + 12 + 4 + 8 + task + stats + sig + mm + server
    yield "hostile threads", edited(data, "proc", threads + 8, struct.pack("<i", 1000)), \
        "thread table is inconsistent"
    yield "platform", edited(data, "engine", 80, b"hardware\0"), \
        "made on hardware KVM; this machine has kvm_pvm KVM"
    yield "cpuid", edited(data, "cpu", 8 + 12, b"\x5a\x5a\x5a\x5a"), "another feature set"
    yield "xsave size", edited(data, "cpu", 0, struct.pack("<I", 4096 * 3)), "damaged snapshot"
    yield "fd table", edited(data, "fds", 0, struct.pack("<I", 5000)), "no valid fd table"


def test_damaged_files_are_refused(kvmserver, httpd_snapshot, tmp_path):
    data = Path(httpd_snapshot[0]).read_bytes()
    failures = []
    for name, content, words in damaged_files(data):
        path = tmp_path / "damaged.snap"
        path.write_bytes(content)
        status, stderr = snaprun_outcome(kvmserver, path)
        lines = [line for line in stderr.splitlines() if line.startswith("kvmserver: snaprun")]
        if status != 1 or not lines or words not in lines[0]:
            failures.append((name, status, stderr))
    assert failures == []


def test_missing_file(kvmserver, tmp_path):
    status, stderr = snaprun_outcome(kvmserver, tmp_path / "none.snap")
    assert status == 1 and "cannot open" in stderr and "No such file" in stderr, stderr
