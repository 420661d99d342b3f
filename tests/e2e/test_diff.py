"""Differential tests: every test program runs natively and under `kvmserver run` with the same
argv, environment and stdin; stdout and the exit status must be identical (a native death by
signal N counts as 128+N). Crashes must also leave the one-line report on kvmserver's stderr.
"""
import pytest

from conftest import (REPO_ROOT, assert_crash_report, describe, program_path, run_guest,
                      run_native)

VARIANTS = ("static", "pie")
MUSL_PROGRAMS = {"argv", "auxv", "malloc_churn", "tls", "clock", "exitcode", "crash",
                 "syscall_enosys"}

ODD_ARGS = ["one", "two words", "", "tab\there", "\u00fcn\u00efc\u00f6de", "--flag=x", "-"]
PROBE_ENV = {"KVMS_PROBE": "probe value", "B_VAR": "2", "A_VAR": "1", "EMPTY": "",
             "WITH_EQUALS": "a=b=c"}

# (case id, program, args, guest environment, stdin, expected exit status)
CASES = [
    ("argv-odd", "argv", ODD_ARGS, PROBE_ENV, b"", len(ODD_ARGS) + 1),
    ("argv-empty-env", "argv", [], {}, b"", 1),
    ("argv-many", "argv", [f"arg{i}" for i in range(300)], {}, b"", 100),
    ("argv-big-env", "argv", ["x"], {"BIG": "v" * 20000, "KVMS_PROBE": "p"}, b"", 2),
    ("auxv", "auxv", [], {}, b"", 0),
    ("malloc_churn", "malloc_churn", [], {}, b"", 0),
    ("mmap_large", "mmap_large", [], {}, b"", 0),
    ("brk", "brk", [], {}, b"", 0),
    ("tls", "tls", [], {}, b"", 0),
    ("fpsimd", "fpsimd", [], {}, b"", 0),
    ("clock", "clock", [], {}, b"", 0),
    ("getrandom", "getrandom", [], {}, b"", 0),
    ("epoll_dup", "epoll_dup", [], {}, b"", 0),
    ("strings", "strings", [], {}, b"", 0),
    ("sysinfo", "sysinfo", [str(REPO_ROOT)], {}, b"", 0),
    ("stdio", "stdio", [], {}, b"hello" + bytes(range(256)) * 40, 0),
    ("stdio-empty-stdin", "stdio", [], {}, b"", 1),
    ("exit-0", "exitcode", ["exit", "0"], {}, b"", 0),
    ("exit-1", "exitcode", ["exit", "1"], {}, b"", 1),
    ("exit-42", "exitcode", ["exit", "42"], {}, b"", 42),
    ("exit-255", "exitcode", ["exit", "255"], {}, b"", 255),
    ("exit-256", "exitcode", ["exit", "256"], {}, b"", 0),
    ("exit-minus-1", "exitcode", ["exit", "-1"], {}, b"", 255),
    ("return-7", "exitcode", ["return", "7"], {}, b"", 7),
    ("_exit-3", "exitcode", ["_exit", "3"], {}, b"", 3),
    ("crash-null-write", "crash", ["null-write"], {}, b"", 139),
    ("crash-null-read", "crash", ["null-read"], {}, b"", 139),
    ("crash-null-call", "crash", ["null-call"], {}, b"", 139),
    ("crash-rodata-write", "crash", ["rodata-write"], {}, b"", 139),
    # Undefined numbers, each twice from libc's syscall() site, whatever memory they name
    # (syscall-site rewriting must not take them as addresses: src/vm/syscall_sites.h).
    ("enosys", "syscall_enosys", [], {}, b"", 0),
]


def parametrised_cases():
    for case_id, program, args, env, stdin, status in CASES:
        variants = VARIANTS + (("musl",) if program in MUSL_PROGRAMS else ())
        for variant in variants:
            yield pytest.param(f"{program}_{variant}", args, env, stdin, status,
                               id=f"{case_id}-{variant}")


ALL_CASES = list(parametrised_cases())


def native_outcome(programs, name, args, env, stdin, expected_status):
    native = run_native(program_path(programs, name), args, env=env, stdin=stdin, cwd=REPO_ROOT)
    # The program itself must behave as designed natively, or the comparison means nothing.
    assert native.status == expected_status, "native run: " + describe(native)
    return native


@pytest.mark.parametrize("name,args,env,stdin,expected_status", ALL_CASES)
def test_native_deterministic(programs, name, args, env, stdin, expected_status):
    """The programs' output is a pure function of their input: two native runs agree."""
    first = native_outcome(programs, name, args, env, stdin, expected_status)
    second = native_outcome(programs, name, args, env, stdin, expected_status)
    assert first.stdout == second.stdout


@pytest.mark.parametrize("name,args,env,stdin,expected_status", ALL_CASES)
def test_same_as_native(kvmserver, programs, name, args, env, stdin, expected_status):
    native = native_outcome(programs, name, args, env, stdin, expected_status)
    # On kvm_pvm, once a rewritten system call has run through page 0, reads of it no longer
    # fault (its protection key is lost in the shadow page tables): NULL reads fault only
    # without rewriting (README, limitations).
    options = ["--no-syscall-rewrite"] if args == ["null-read"] else []
    guest = run_guest(kvmserver, program_path(programs, name), args, env=env, stdin=stdin,
                      cwd=REPO_ROOT, options=options)
    assert guest.stdout.decode(errors="replace") == native.stdout.decode(errors="replace"), \
        "guest " + describe(guest)
    assert guest.status == native.status, "guest " + describe(guest)
    if native.raw_returncode < 0:  # natively killed by a signal
        assert_crash_report(guest, -native.raw_returncode)
    else:
        # What the program wrote to stderr comes through (kvmserver may add its own lines).
        assert native.stderr in guest.stderr, "guest " + describe(guest)


@pytest.mark.parametrize("variant", VARIANTS)
def test_allow_env_passes_only_named_host_variables(kvmserver, programs, variant):
    name = f"argv_{variant}"
    native = run_native(program_path(programs, name), env={"KVMS_PROBE": "from host"})
    guest = run_guest(kvmserver, program_path(programs, name), options=["--allow-env=KVMS_PROBE"],
                      host_env={"KVMS_PROBE": "from host", "KVMS_SECRET": "must not leak"})
    assert guest.stdout == native.stdout, "guest " + describe(guest)
    assert guest.status == native.status == 1


def test_host_environment_does_not_leak(kvmserver, programs):
    guest = run_guest(kvmserver, program_path(programs, "argv_static"),
                      host_env={"KVMS_SECRET": "must not leak", "PATH": "/usr/bin"})
    assert b"KVMS_SECRET" not in guest.stdout and b"PATH" not in guest.stdout, describe(guest)
    assert b"envc=0\n" in guest.stdout, describe(guest)
