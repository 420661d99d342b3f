"""Static binaries of other toolchains: Go (its own runtime, goroutines on threads, no libc)
and Rust (static-pie with glibc's static runtime), built at test time, run natively and
inside kvmserver with the same output and exit status."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT, describe, run_guest, run_native

SOURCES = REPO_ROOT / "tests" / "programs" / "lang"
BUILD_TIMEOUT = 300


def build(argv, cwd, env=None):
    result = subprocess.run(argv, cwd=cwd, capture_output=True, timeout=BUILD_TIMEOUT, env=env)
    assert result.returncode == 0, f"build failed: {argv}\n{result.stderr.decode()}"


def toolchain(name):
    """The toolchain on PATH, or rustup's usual place (these machines ship Rust there)."""
    path = shutil.which(name) or shutil.which(name, path=str(Path.home() / ".cargo" / "bin"))
    assert path, f"{name} is not installed (scripts/install-deps.sh installs Go; Rust comes " \
                 "with the machine)"
    return path


def assert_same_as_native(kvmserver, program):
    native = run_native(program, [])
    guest = run_guest(kvmserver, program)
    assert guest.stdout == native.stdout, "guest: " + describe(guest)
    assert guest.status == native.status, "guest: " + describe(guest)


def test_go_static(kvmserver, tmp_path):
    env = dict(os.environ, CGO_ENABLED="0", GOCACHE=str(tmp_path / "gocache"),
               GOPATH=str(tmp_path / "gopath"))
    shutil.copy(SOURCES / "threads.go", tmp_path / "main.go")
    build([toolchain("go"), "build", "-o", "threads_go", "main.go"], tmp_path, env)
    assert_same_as_native(kvmserver, tmp_path / "threads_go")


def test_rust_static_pie(kvmserver, tmp_path):
    build([toolchain("rustc"), "-O", "-C", "target-feature=+crt-static",
           str(SOURCES / "threads.rs"), "-o", "threads_rs"], tmp_path)
    assert_same_as_native(kvmserver, tmp_path / "threads_rs")
