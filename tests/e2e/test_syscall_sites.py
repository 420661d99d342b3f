"""Syscall-site rewriting (kvm_pvm): the host turns a `syscall` it has seen, whose number
is a constant set right before it, into `call *%rax` through page 0
(src/vm/syscall_sites.h). Programs must not tell the difference: every number, from
constant and register sites and past a site's constant, a stack that cannot take the call's
push, data kept below RSP, code the program writes itself, and the program's own calls and
jumps into page 0 behave as natively. tests/programs/syscall_enosys.c (test_diff.py) makes
undefined numbers that name executable memory through libc's syscall()."""
from pathlib import Path

import pytest

from conftest import (assert_crash_report, describe, program_path, run_guest, run_native)

SITES_CASES = [("numbers", 0), ("bad-stack", 0), ("call-low", 139), ("call-past-sled", 139),
               ("jit", 0), ("page0-jump", 139), ("page0-write", 139), ("page0-pointer", 0)]


NO_KEYS_NOTE = (b"kvmserver: this CPU has no protection keys: reads of addresses below 4096 "
                b"return the rewritten system call sites' code instead of faulting")


def cpu_flags():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@pytest.fixture(scope="module")
def rewrites(kvmserver, programs):
    """Whether this KVM must rewrite sites, from the machine, not from kvmserver: kvm_pvm
    (traps every syscall) does; hardware KVM has no need to. kvmserver must agree, and say
    where the CPU has no protection keys that page 0 then reads as the sled."""
    pvm = Path("/sys/module/kvm_pvm").is_dir()
    guest = run_guest(kvmserver, program_path(programs, "exitcode_static"), ["exit", "0"],
                      options=["-v"])
    assert guest.status == 0, describe(guest)
    assert (b"syscall sites rewritten" in guest.stderr) == pvm, describe(guest)
    assert (NO_KEYS_NOTE in guest.stderr) == (pvm and "pku" not in cpu_flags()), \
        describe(guest)
    return pvm


@pytest.mark.parametrize("case,status", SITES_CASES)
def test_same_as_native(kvmserver, programs, case, status):
    program = program_path(programs, "syscall_sites")
    native = run_native(program, [case])
    assert native.status == status, "native: " + describe(native)
    guest = run_guest(kvmserver, program, [case])
    assert guest.stdout == native.stdout, "guest " + describe(guest)
    assert guest.status == native.status, "guest " + describe(guest)
    if status == 139:
        assert_crash_report(guest, 11)


@pytest.mark.parametrize("case,site", [("numbers", b"constant site"), ("bad-stack", b"site")])
def test_sites_are_rewritten(kvmserver, programs, rewrites, case, site):
    """The calls above really went through a rewritten site (else they prove nothing)."""
    program = program_path(programs, "syscall_sites")
    assert site + b": 0f 05\n" in run_native(program, [case]).stderr
    guest = run_guest(kvmserver, program, [case])
    expected = site + (b": ff d0\n" if rewrites else b": 0f 05\n")
    assert expected in guest.stderr, "guest " + describe(guest)


def test_register_numbers_keep_trapping(kvmserver, programs):
    """A site whose number comes from a register is never rewritten: the call it would
    become takes any number as an address (src/vm/syscall_sites.h)."""
    program = program_path(programs, "syscall_sites")
    guest = run_guest(kvmserver, program, ["numbers"])
    assert b"register site: 0f 05\n" in guest.stderr, "guest " + describe(guest)


def test_option_keeps_the_code(kvmserver, programs):
    program = program_path(programs, "syscall_sites")
    guest = run_guest(kvmserver, program, ["numbers"], options=["--no-syscall-rewrite"])
    assert b"constant site: 0f 05\n" in guest.stderr, "guest " + describe(guest)
    assert guest.stdout == run_native(program, ["numbers"]).stdout


def test_red_zone_survives(kvmserver, programs, rewrites):
    """A call would push onto -8(%rsp): the host sees the red zone in use and leaves the
    site as it is, so the value kept there survives every round."""
    program = program_path(programs, "syscall_redzone")
    native = run_native(program)
    assert native.status == 0 and native.stdout.count(b"0x5afe5afe") == 3, describe(native)
    guest = run_guest(kvmserver, program, options=["-v"])
    assert guest.stdout == native.stdout, "guest " + describe(guest)
    if rewrites:
        assert b"left trapping" in guest.stderr
        left = int(guest.stderr.split(b" left trapping")[0].rsplit(b" ", 1)[1])
        assert left >= 1, "guest " + describe(guest)
