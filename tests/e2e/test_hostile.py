"""Hostile guests and hostile inputs: the guest may do anything; kvmserver must turn it into a
guest crash report or an error code, exit with the guest's status, and never die itself
(run_guest asserts kvmserver was not killed by a signal).
"""
import struct
import time

import pytest

from conftest import (REPO_ROOT, assert_crash_report, describe, program_path, run_guest,
                      run_native, run_process)

SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV = 4, 5, 7, 8, 11

WILD_MODES = [
    "read-deadbeef", "write-deadbeef", "read-gdt", "write-gdt", "write-tss", "read-idt",
    "write-idt", "read-kcode", "write-kcode", "call-kcode", "write-uentry", "write-clock-page",
    "write-vdso", "read-kstack", "write-kstack", "read-noncanonical", "write-noncanonical",
    "read-kernel-half", "write-kernel-half", "call-deadbeef", "exec-data", "exec-stack",
    "exec-mmap-rw",
    "after-munmap",
    "prot-none", "write-readonly", "mprotect-gdt",
    "mmap-fixed-idt",
]

# Natively all of these raise #GP (SIGSEGV); so must the guest.
PRIVILEGED_MODES = [
    "hlt", "cli", "sti", "in", "out-syscall-port", "out-exception-port", "out-dx", "read-cr3",
    "write-cr3", "write-cr0", "rdmsr", "wrmsr-lstar", "wrmsr-efer", "lgdt", "lidt", "ltr",
    "invlpg", "wbinvd", "swapgs", "xsetbv", "int-dpl0-gate", "iret-ring0", "ljmp-ring0",
]
# Hypercalls: what user mode gets depends on the hypervisor (KVM answers a CPL-3 vmcall with an
# error in rax, so natively under nested KVM it even survives). Any clean outcome will do.
HYPERCALL_MODES = ["vmcall", "vmmcall"]

# mode -> expected exit status
FAULT_MODES = {
    "ud2": 128 + SIGILL,
    "int3": 128 + SIGTRAP,
    "div0": 128 + SIGFPE,
    "divmin": 128 + SIGFPE,
    "stack-overflow": 128 + SIGSEGV,
    "trap-flag": 128 + SIGTRAP,
    "fault-bad-rsp": 128 + SIGILL,
    "syscall-bad-rsp": 7,
    "syscall-noncanonical-rsp": 7,
    "syscall-garbage-regs": 9,
}


def is_crash_status(status):
    return 128 < status < 160


@pytest.mark.parametrize("mode", WILD_MODES)
def test_wild_access_crashes_cleanly(kvmserver, programs, mode):
    guest = run_guest(kvmserver, program_path(programs, "hostile_wild"), [mode])
    assert b"survived" not in guest.stdout, describe(guest)
    assert guest.stdout.startswith(f"mode {mode}\n".encode()), describe(guest)
    assert_crash_report(guest, SIGSEGV)


@pytest.mark.parametrize("mode", PRIVILEGED_MODES)
def test_privileged_instruction_crashes_cleanly(kvmserver, programs, mode):
    guest = run_guest(kvmserver, program_path(programs, "hostile_priv"), [mode])
    assert guest.stdout == f"mode {mode}\n".encode(), describe(guest)
    assert_crash_report(guest, SIGSEGV)


@pytest.mark.parametrize("mode", HYPERCALL_MODES)
def test_hypercall_from_user_mode_is_harmless(kvmserver, programs, mode):
    guest = run_guest(kvmserver, program_path(programs, "hostile_priv"), [mode])
    if guest.status == 0:
        assert guest.stdout == f"mode {mode}\nsurvived\n".encode(), describe(guest)
    else:
        assert is_crash_status(guest.status), describe(guest)
        assert_crash_report(guest, guest.status - 128)


@pytest.mark.parametrize("mode", sorted(FAULT_MODES))
def test_cpu_exception(kvmserver, programs, mode):
    program = program_path(programs, "hostile_fault")
    expected = FAULT_MODES[mode]
    native = run_native(program, [mode])
    assert native.status == expected, "native run: " + describe(native)
    guest = run_guest(kvmserver, program, [mode])
    assert guest.stdout == native.stdout, describe(guest)
    if is_crash_status(expected):
        assert_crash_report(guest, expected - 128)
    else:
        assert guest.status == expected, describe(guest)


def test_alignment_check(kvmserver, programs):
    """EFLAGS.AC from user mode: Linux sets CR0.AM and delivers SIGBUS; a guest without CR0.AM
    ignores it. Either is acceptable; a host failure is not."""
    guest = run_guest(kvmserver, program_path(programs, "hostile_fault"), ["alignment-check"])
    if guest.status == 0:
        assert guest.stdout.endswith(b"survived\n"), describe(guest)
    else:
        assert_crash_report(guest, SIGBUS)


def test_infinite_loop_hits_boot_deadline(kvmserver, programs):
    started = time.monotonic()
    guest = run_guest(kvmserver, program_path(programs, "hostile_fault"), ["loop"],
                      options=["--max-boot-time", "2"], timeout=30)
    elapsed = time.monotonic() - started
    assert guest.status != 0, describe(guest)
    assert elapsed < 6, f"took {elapsed:.1f} s for a 2 s deadline"
    assert elapsed >= 1.5, f"stopped after {elapsed:.1f} s, before the 2 s deadline"
    assert b"time" in guest.stderr.lower(), "no timeout message: " + describe(guest)


def test_hostile_syscall_arguments(kvmserver, programs):
    """Wild pointers, wrapping ranges, unknown numbers, bad descriptors: every call fails the
    Linux way and the program carries on. The program checks itself (exit = failures)."""
    program = program_path(programs, "hostile_syscall")
    stdin = b"0123456789abcdef" * 256
    native = run_native(program, stdin=stdin)
    assert native.status == 0, "native run: " + describe(native)
    guest = run_guest(kvmserver, program, stdin=stdin)
    bad = [line for line in guest.stdout.decode(errors="replace").splitlines()
           if not line.endswith(": ok") and not line.startswith("failures=")]
    assert guest.status == 0 and not bad, "\n".join(bad) + "\n" + describe(guest)
    assert guest.stdout == native.stdout


def test_memory_hog_is_contained(kvmserver, programs):
    """Under a 256 MiB limit, taking 4 GiB ends with ENOMEM from mmap in the guest (README:
    --max-main-memory, "ENOMEM past it"), which the program reports before it exits 0."""
    guest = run_guest(kvmserver, program_path(programs, "hostile_memhog"), ["4096"],
                      options=["--max-main-memory", "256"], timeout=120)
    assert guest.status == 0, describe(guest)
    assert guest.stdout == b"mmap refused: stopped cleanly\n", describe(guest)


# --- command line ---------------------------------------------------------------------------

def test_unknown_option_exits_2(kvmserver):
    outcome = run_process([kvmserver, "--no-such-option", "run", "/bin/true"])
    assert outcome.raw_returncode == 2, describe(outcome)
    assert b"unknown option '--no-such-option'" in outcome.stderr, describe(outcome)


def test_nonexistent_program_is_reported(kvmserver, tmp_path):
    missing = tmp_path / "no-such-program"
    outcome = run_guest(kvmserver, missing)
    assert outcome.status != 0, describe(outcome)
    assert not is_crash_status(outcome.status), describe(outcome)
    assert str(missing).encode() in outcome.stderr, "error does not name the path: " + describe(outcome)


# --- malformed executables ------------------------------------------------------------------
# Each is derived from a real static program by corrupting one thing. kvmserver must refuse it
# with an error (or, where the image is loadable but jumps somewhere wild, report a crash).

def read_elf(path):
    data = bytearray(path.read_bytes())
    assert data[:4] == b"\x7fELF"
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads = [phoff + i * phentsize for i in range(phnum)
             if struct.unpack_from("<I", data, phoff + i * phentsize)[0] == 1]  # PT_LOAD
    return data, loads


def corrupt(data, loads, how):
    """Returns the corrupted image for `how`, a name from MALFORMED."""
    first = loads[0]
    if how == "empty":
        return b""
    if how == "not-elf":
        return b"#!/bin/sh\necho not an ELF file\n"
    if how == "truncated-header":
        return bytes(data[:40])
    if how == "truncated-phdrs":
        return bytes(data[:0x40 + 20])
    if how == "truncated-half":
        return bytes(data[:len(data) // 2])
    if how == "class-32":
        data[4] = 1
    elif how == "big-endian":
        data[5] = 2
    elif how == "machine-arm64":
        struct.pack_into("<H", data, 0x12, 183)
    elif how == "type-rel":
        struct.pack_into("<H", data, 0x10, 1)
    elif how == "phoff-huge":
        struct.pack_into("<Q", data, 0x20, 0xFFFFFFFFFFFFFF00)
    elif how == "phnum-huge":
        struct.pack_into("<H", data, 0x38, 0xFFFF)
    elif how == "phentsize-wrong":
        struct.pack_into("<H", data, 0x36, 7)
    elif how == "load-offset-past-end":
        struct.pack_into("<Q", data, first + 8, len(data) + 0x100000)
    elif how == "load-filesz-past-end":
        struct.pack_into("<Q", data, first + 32, len(data) * 4)
    elif how == "load-filesz-gt-memsz":
        memsz, = struct.unpack_from("<Q", data, first + 40)
        struct.pack_into("<Q", data, first + 32, memsz + 0x1000)
    elif how == "load-memsz-wraps":
        struct.pack_into("<Q", data, first + 40, 0xFFFFFFFFFFFF0000)
    elif how == "load-vaddr-system-area":
        struct.pack_into("<Q", data, first + 16, 0x1000)
        struct.pack_into("<Q", data, first + 24, 0x1000)
    elif how == "load-vaddr-kernel-half":
        struct.pack_into("<Q", data, first + 16, 0xFFFF800000000000)
        struct.pack_into("<Q", data, first + 24, 0xFFFF800000000000)
    elif how == "load-vaddr-wraps":
        struct.pack_into("<Q", data, first + 16, 0xFFFFFFFFFFFFF000)
        struct.pack_into("<Q", data, first + 24, 0xFFFFFFFFFFFFF000)
    elif how == "entry-zero":
        struct.pack_into("<Q", data, 0x18, 0)
    elif how == "entry-noncanonical":
        struct.pack_into("<Q", data, 0x18, 0x8000000000000000)
    else:
        raise ValueError(how)
    return bytes(data)


MALFORMED = [
    "empty", "not-elf", "truncated-header", "truncated-phdrs", "truncated-half", "class-32",
    "big-endian", "machine-arm64", "type-rel", "phoff-huge", "phnum-huge", "phentsize-wrong",
    "load-offset-past-end", "load-filesz-past-end", "load-filesz-gt-memsz", "load-memsz-wraps",
    "load-vaddr-system-area", "load-vaddr-kernel-half", "load-vaddr-wraps", "entry-zero", "entry-noncanonical",
]
# Loadable images whose entry point is wild: refusing them or reporting a crash are both fine.
MAY_CRASH = {"entry-zero", "entry-noncanonical"}
# Linux's loader never looks at EI_CLASS/EI_DATA and runs these unchanged images; running them
# exactly as natively is as good as refusing them.
LINUX_RUNS = {"class-32", "big-endian"}


@pytest.mark.parametrize("how", MALFORMED)
def test_malformed_executable(kvmserver, programs, tmp_path, how):
    data, loads = read_elf(program_path(programs, "exitcode_static"))
    target = tmp_path / f"malformed-{how}"
    target.write_bytes(corrupt(data, loads, how))
    target.chmod(0o755)
    outcome = run_guest(kvmserver, target, ["exit", "0"], timeout=30)
    if how in LINUX_RUNS and outcome.status == 0:
        assert outcome.stdout == b"mode=exit status=0\nbuffered lineatexit handler ran\n", \
            describe(outcome)
        return
    assert outcome.status != 0, "corrupt image ran to success: " + describe(outcome)
    if how in MAY_CRASH and is_crash_status(outcome.status):
        assert_crash_report(outcome, outcome.status - 128)
        return
    assert outcome.status == 1, "expected a load error: " + describe(outcome)
    assert f"kvmserver: {target}: not a loadable".encode() in outcome.stderr, (
        "the error does not name the program: " + describe(outcome))


def test_program_is_a_directory(kvmserver):
    outcome = run_guest(kvmserver, REPO_ROOT)
    assert outcome.status == 1, describe(outcome)
    assert f"kvmserver: {REPO_ROOT}: not a regular file".encode() in outcome.stderr, (
        describe(outcome))
