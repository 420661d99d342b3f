"""Cold start against snaprun: the time from starting a server to its first whole response,
natively, under `kvmserver -e run` (a cold boot) and under `kvmserver -e snaprun` of a
snapshot taken once, in interleaved rounds (README: Snapshots).

Usage: bench/snapshot_start.py BUILD_DIR [ROUNDS]   (default 5)
"""
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "tests" / "servers" / "runtime"
# Where scripts/install-deps.sh puts Deno (npm @deno/linux-x64-glibc).
DENO = Path.home() / ".cache/kvmserver/deno/node_modules/@deno/linux-x64-glibc/deno"
OPTIONS = ["-e", "--allow-read", "--allow-listen"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def first_response_ms(argv, port, timeout=30.0) -> float:
    started = time.monotonic()
    process = subprocess.Popen([str(a) for a in argv], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        while time.monotonic() - started < timeout:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
                    data = b""
                    while chunk := sock.recv(65536):
                        data += chunk
                if data.startswith(b"HTTP/"):
                    return (time.monotonic() - started) * 1e3
            except OSError:
                time.sleep(0.0005)
        raise SystemExit(f"no response from {argv} within {timeout} s")
    finally:
        process.terminate()
        process.wait()


def main():
    build = Path(sys.argv[1]).resolve()
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    kvmserver = build / "kvmserver"
    servers = {
        "static httpd": [build / "examples" / "httpd"],
        "python3 counter.py": ["/usr/bin/python3", RUNTIME / "counter.py"],
        "node counter.js": ["/usr/bin/node", RUNTIME / "counter.js"],
        "deno counter_deno.ts": [DENO, "run", "-A", RUNTIME / "counter_deno.ts"],
    }
    with tempfile.TemporaryDirectory() as folder:
        for name, program in servers.items():
            port = free_port()
            argv = [*program, str(port)]
            snap = Path(folder) / "server.snap"
            taken = subprocess.run([kvmserver, *OPTIONS, "snapshot", "-o", snap, *argv],
                                   capture_output=True, text=True, check=True)
            native, cold, warm = [], [], []
            for _ in range(rounds):
                native.append(first_response_ms(argv, port))
                cold.append(first_response_ms([kvmserver, *OPTIONS, "run", *argv], port))
                warm.append(first_response_ms([kvmserver, "-e", "snaprun", snap], port))
            median = statistics.median
            print(f"{name}: native {median(native):.1f} ms, cold {median(cold):.1f} ms, "
                  f"snaprun {median(warm):.1f} ms (snaprun/cold {median(warm) / median(cold):.2f})")
            print(f"  cold {[round(x, 1) for x in cold]}  snaprun {[round(x, 1) for x in warm]}")
            print(f"  {taken.stdout.strip()}")


if __name__ == "__main__":
    main()
