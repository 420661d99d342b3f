"""Dynamically linked programs: the loader maps the program and the host's ld.so, and ld.so
maps the shared libraries through the guest's openat/read/mmap. Each program runs natively and
under `kvmserver --allow-read run`; stdout and the exit status must be identical.

Programs that need libraries can only pass once the file-system calls let ld.so open them
(issue 4, item 2). Until then ld.so reports "error while loading shared libraries" and the
test is an expected failure at run time; dyn_nolibc, which needs no library, must pass now.
"""
import os
import shutil
from pathlib import Path

import pytest

from conftest import (REPO_ROOT, describe, program_path, run_guest, run_native,
                      run_process)

LD_SO = "/lib64/ld-linux-x86-64.so.2"
PROBE_ENV = {"KVMS_PROBE": "probe value"}

# (case id, program, args, guest environment, expected exit status)
CASES = [
    ("nolibc", "dyn_nolibc", [], {}, 1),
    ("nolibc-args", "dyn_nolibc", ["one", "two words", ""], {}, 4),
    ("hello", "dyn_hello", ["a", "b c"], PROBE_ENV, 3),
    ("hello-nopie", "dyn_hello_nopie", ["a"], PROBE_ENV, 2),
    ("libm", "dyn_libm", [], {}, 0),
    ("dlopen", "dyn_dlopen", [], {}, 0),
    ("tls", "dyn_tls", [], {}, 0),
]


def guest_run(kvmserver, program, args=(), env=None, options=("--allow-read",), **kw):
    allow_env = [f"--allow-env={','.join(env)}"] if env else []
    return run_guest(kvmserver, program, args, env=env, options=[*options, *allow_env],
                     cwd=REPO_ROOT, **kw)


def assert_same(native, guest):
    assert guest.status == native.status, "guest: " + describe(guest)
    assert guest.stdout == native.stdout, "guest: " + describe(guest)


@pytest.mark.parametrize("name,args,env,expected_status",
                         [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_same_as_native(kvmserver, programs, name, args, env, expected_status):
    program = program_path(programs, name)
    native = run_native(program, args, env=env, cwd=REPO_ROOT)
    assert native.status == expected_status, "native run: " + describe(native)
    guest = guest_run(kvmserver, program, args, env)
    assert_same(native, guest)


def test_nolibc_other_address_hint(kvmserver, programs):
    """The interpreter moves with --dylink-address-hint and the program follows it."""
    program = program_path(programs, "dyn_nolibc")
    native = run_native(program, ["x"], cwd=REPO_ROOT)
    guest = run_process([kvmserver, "run", "--dylink-address-hint", "64", program, "x"],
                        cwd=REPO_ROOT)
    assert_same(native, guest)


def test_hint_outside_address_space(kvmserver, programs):
    program = program_path(programs, "dyn_nolibc")
    guest = run_process([kvmserver, "run", "--dylink-address-hint", "200000000", program],
                        cwd=REPO_ROOT)
    assert guest.status != 0 and b"does not fit" in guest.stderr, describe(guest)
    assert guest.stdout == b""


# --- Bad interpreters: a copy of dyn_nolibc whose PT_INTERP string is rewritten in place
# (same length), so it names something that must be refused.

def with_interpreter(programs, tmp_path, interp: str) -> Path:
    assert len(interp) == len(LD_SO), "the replacement must keep the string's length"
    image = program_path(programs, "dyn_nolibc").read_bytes()
    old = LD_SO.encode() + b"\0"
    assert image.count(old) == 1
    patched = tmp_path / "patched"
    patched.write_bytes(image.replace(old, interp.encode() + b"\0"))
    patched.chmod(0o755)
    return patched


def interp_path_of_length() -> Path:
    """A path as long as LD_SO, in /tmp, unique to this process."""
    base = f"/tmp/kvmsdyn-{os.getpid()}-"
    link = Path(base + "x" * (len(LD_SO) - len(base)))
    assert len(str(link)) == len(LD_SO)
    return link


@pytest.fixture
def interp_link():
    link = interp_path_of_length()
    yield link
    if link.is_symlink() or link.exists():
        link.unlink()


def refused(kvmserver, program, words: bytes):
    guest = run_process([kvmserver, "--allow-read", "run", program], cwd=REPO_ROOT)
    assert guest.status != 0 and guest.stdout == b"", describe(guest)
    assert words in guest.stderr, describe(guest)


def test_interpreter_missing(kvmserver, programs, tmp_path):
    refused(kvmserver, with_interpreter(programs, tmp_path, LD_SO[:-1] + "X"),
            b"cannot open")


def test_interpreter_relative(kvmserver, programs, tmp_path):
    refused(kvmserver, with_interpreter(programs, tmp_path, LD_SO[1:] + "x"),
            b"not absolute")


def test_interpreter_static_executable(kvmserver, programs, tmp_path, interp_link):
    interp_link.symlink_to(program_path(programs, "argv_static"))
    refused(kvmserver, with_interpreter(programs, tmp_path, str(interp_link)),
            b"not a self-contained shared object")


def test_interpreter_itself_dynamic(kvmserver, programs, tmp_path, interp_link):
    interp_link.symlink_to(program_path(programs, "dyn_nolibc"))
    refused(kvmserver, with_interpreter(programs, tmp_path, str(interp_link)),
            b"not a self-contained shared object")


def test_interpreter_not_elf(kvmserver, programs, tmp_path, interp_link):
    text = tmp_path / "text"
    text.write_text("#!/bin/sh\n")
    interp_link.symlink_to(text)
    refused(kvmserver, with_interpreter(programs, tmp_path, str(interp_link)),
            b"not an ELF file")


# --- The host's own dynamically linked programs.

LICENSES = "/usr/share/common-licenses"
SYSTEM_CASES = [
    pytest.param(["/usr/bin/true"], id="true"),
    pytest.param(["/bin/echo", "hello"], id="echo"),
    pytest.param(["/usr/bin/python3", "-c", "print(1+1)"], id="python3"),
    pytest.param(["/usr/bin/perl", "-e", "print 6*7, qq(\\n)"], id="perl"),
    pytest.param(["/usr/bin/sha256sum", f"{LICENSES}/GPL-3"], id="sha256sum"),
    pytest.param(["/usr/bin/wc", f"{LICENSES}/GPL-3"], id="wc"),
    pytest.param(["/usr/bin/sort", f"{LICENSES}/MPL-2.0"], id="sort"),
    pytest.param(["/bin/cat", f"{LICENSES}/Apache-2.0"], id="cat"),
    pytest.param(["/bin/ls", "-la", LICENSES], id="ls-la"),
    # node starts ~7 threads at start-up (clone3, futex): cooperative guest threads.
    pytest.param(["/usr/bin/node", "-e", "console.log(6*7)"], id="node"),
]


@pytest.mark.parametrize("argv", SYSTEM_CASES)
def test_system_program(kvmserver, argv):
    if not shutil.which(argv[0]):
        pytest.skip(f"{argv[0]} not installed")
    native = run_native(argv[0], argv[1:], cwd=REPO_ROOT)
    assert native.status == 0, "native run: " + describe(native)
    guest = guest_run(kvmserver, argv[0], argv[1:])
    assert_same(native, guest)


def test_cp_needs_allow_write(kvmserver, tmp_path):
    """cp copies a file only where --allow-write allows; the copy is byte for byte."""
    source = Path(LICENSES) / "GPL-3"
    target = tmp_path / "copy"
    denied = guest_run(kvmserver, "/bin/cp", [str(source), str(target)])
    assert denied.status != 0 and not target.exists(), "guest: " + describe(denied)
    copied = guest_run(kvmserver, "/bin/cp", [str(source), str(target)],
                       options=("--allow-read", f"--allow-write={tmp_path}"))
    assert copied.status == 0, "guest: " + describe(copied)
    assert target.read_bytes() == source.read_bytes()
