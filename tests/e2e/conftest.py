"""Shared fixtures for the end-to-end tests: where the build is, how to run a program natively
and under `kvmserver run`, and how to compare the outcomes.

The build directory comes from $KVMS_BUILD (default: build), relative to the repository root
unless absolute. A missing kvmserver binary or test program is a test failure, not a skip.
"""
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 60  # seconds for one program run, native or guest

SIGNAL_NAMES = {4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE",
                9: "SIGKILL", 11: "SIGSEGV"}

# What a crash report line must name for each signal (case-insensitive), besides addresses.
CRASH_WORDS = {
    4: r"SIGILL|illegal|invalid opcode|#UD",
    5: r"SIGTRAP|breakpoint|trap|#BP|#DB|debug",
    7: r"SIGBUS|bus error|alignment|#AC",
    8: r"SIGFPE|divide|division|floating|#DE",
    11: r"SIGSEGV|segmentation|page fault|protection|#PF|#GP",
}
HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")


def build_dir() -> Path:
    path = Path(os.environ.get("KVMS_BUILD", "build"))
    return path if path.is_absolute() else REPO_ROOT / path


def musl_available() -> bool:
    return shutil.which("musl-gcc") is not None


@dataclass
class Outcome:
    status: int          # exit status as a shell reports it: 0..255, or 128+signal
    stdout: bytes
    stderr: bytes
    seconds: float
    raw_returncode: int  # what subprocess saw (negative = killed by that signal)


def normalise_status(returncode: int) -> int:
    """Natively a signal death is -N from subprocess; kvmserver reports it as 128+N."""
    return 128 - returncode if returncode < 0 else returncode


def run_process(argv, *, env=None, stdin=b"", cwd=None, timeout=RUN_TIMEOUT) -> Outcome:
    started = time.monotonic()
    completed = subprocess.run([str(a) for a in argv], input=stdin, capture_output=True,
                               env=env if env is not None else {}, cwd=cwd, timeout=timeout)
    return Outcome(normalise_status(completed.returncode), completed.stdout, completed.stderr,
                   time.monotonic() - started, completed.returncode)


def pytest_collection_modifyitems(items):
    """A test that starts no kvmserver (it does not ask for the kvmserver fixture) checks the
    test programs natively, as the oracle the differential tests compare with: it is marked
    `native`, and tests/run-all.sh reports it apart from the sandbox tests."""
    for item in items:
        if "kvmserver" not in item.fixturenames:
            item.add_marker(pytest.mark.native)


@pytest.fixture(scope="session")
def build() -> Path:
    path = build_dir()
    assert path.is_dir(), f"build directory {path} missing: run meson setup/compile or set KVMS_BUILD"
    return path


@pytest.fixture(scope="session")
def kvmserver(build) -> Path:
    for candidate in (build / "kvmserver", build / "src" / "kvmserver"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(f"kvmserver binary not found in {build} (or {build}/src)")


@pytest.fixture(scope="session")
def programs(build) -> Path:
    return build / "tests" / "programs"


def program_path(programs: Path, name: str) -> Path:
    path = programs / name
    if name.endswith("_musl") and not musl_available():
        pytest.skip("musl-gcc not installed")
    assert path.is_file(), f"test program {path} not built"
    return path


def run_native(program, args=(), *, env=None, stdin=b"", cwd=None) -> Outcome:
    return run_process([program, *args], env=env or {}, stdin=stdin, cwd=cwd)


def transport_options():
    """The syscall transport every kvmserver run of this test session uses: the suite runs
    once per transport (tests/run-all.sh sets KVMS_TRANSPORT)."""
    transport = os.environ.get("KVMS_TRANSPORT")
    return [f"--syscall-transport={transport}"] if transport else []


def run_guest(kvmserver, program, args=(), *, env=None, options=(), host_env=None, stdin=b"",
              cwd=None, timeout=RUN_TIMEOUT) -> Outcome:
    """`kvmserver [--env K=V]... [options] run PROGRAM ARGS`. Global options go before the
    subcommand; the guest environment is given only through --env."""
    argv = [kvmserver, *transport_options()]
    for key, value in (env or {}).items():
        argv += ["--env", f"{key}={value}"]
    argv += list(options)
    argv += ["run", program, *args]
    outcome = run_process(argv, env=host_env or {}, stdin=stdin, cwd=cwd, timeout=timeout)
    assert outcome.raw_returncode >= 0, (
        f"kvmserver itself died of signal {-outcome.raw_returncode}; stderr:\n"
        + outcome.stderr.decode(errors="replace"))
    return outcome


def crash_report_lines(stderr: bytes, signal_number: int):
    """Lines of stderr that read like the one-line crash report for this signal: they name
    what happened and carry at least two hex addresses (instruction and fault address)."""
    words = re.compile(CRASH_WORDS.get(signal_number, r"signal|crash"), re.IGNORECASE)
    return [line for line in stderr.decode(errors="replace").splitlines()
            if words.search(line) and len(HEX_ADDRESS.findall(line)) >= 2]


def assert_crash_report(outcome: Outcome, signal_number: int):
    assert outcome.status == 128 + signal_number, (
        f"expected exit {128 + signal_number} ({SIGNAL_NAMES.get(signal_number)}), "
        f"got {outcome.status}; stderr:\n{outcome.stderr.decode(errors='replace')}")
    assert crash_report_lines(outcome.stderr, signal_number), (
        "no one-line crash report (naming the fault, with instruction and fault address "
        f"as 0x...) on stderr:\n{outcome.stderr.decode(errors='replace')}")


def describe(outcome: Outcome) -> str:
    return (f"status {outcome.status}\n--- stdout ---\n{outcome.stdout.decode(errors='replace')}"
            f"\n--- stderr ---\n{outcome.stderr.decode(errors='replace')}")
