#!/usr/bin/python3
"""Writes the hwkvm harness's differential test list: cases of the e2e suite, taken from the
test modules themselves (tests/e2e/test_diff.py, test_hostile.py, test_fs.py, test_dynamic.py,
test_signals.py, test_threads.py, test_isolation.py, test_options.py), checked inside the
QEMU guest against a native run there (guest/hw-same), their pristine answers
(guest/hw-serve) or exit counts (guest/hw-exits). Every check also asserts that kvmserver
ran on the hardware flavour.

    tests/hwkvm/diff-list.py BUILD_DIR > LIST      (then: tests/hwkvm/run.sh BUILD_DIR LIST ...)

Files the checks need (stdin, expected stdout, request steps) go to BUILD_DIR/hwkvm-diff/.
Under TCG each kvmserver run costs 0.4-2 s, so the cases are chosen by what the hardware
flavour's ring-0 path does: syscall entry and return by sysretq (argv, environment and auxv
on the initial stack, exit codes, buffers in and out, undefined numbers), page faults and
CPU exceptions through the IDT (crashes, hostile modes), the system area the guest must not
reach, signal delivery and sigreturn, FP/SSE state across entries, FS base for TLS, thread
switches, ld.so's mmap/mprotect, and the reset of request VMs.
"""
import shlex
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "e2e"))

import conftest  # noqa: E402
import isolation_endpoints  # noqa: E402
import test_diff  # noqa: E402
import test_dynamic  # noqa: E402
import test_fs  # noqa: E402
import test_hostile  # noqa: E402
import test_isolation  # noqa: E402
import test_options  # noqa: E402
import test_signals  # noqa: E402
import test_threads  # noqa: E402

# test_diff.py case id -> variants run here.
DIFF_CASES = {
    "argv-odd": ("static", "musl"),
    "argv-big-env": ("static",),
    "auxv": ("static", "pie", "musl"),
    "mmap_large": ("static",),
    "brk": ("pie",),
    "tls": ("static", "pie", "musl"),
    "fpsimd": ("static", "pie"),
    "clock": ("static", "musl"),
    "getrandom": ("static",),
    "epoll_dup": ("static",),
    "strings": ("pie",),
    "sysinfo": ("static",),
    "stdio": ("static",),
    "stdio-empty-stdin": ("pie",),
    "exit-256": ("pie",),
    "exit-minus-1": ("musl",),
    "_exit-3": ("static",),
    "crash-null-write": ("static", "musl"),
    "crash-null-read": ("static",),
    "crash-null-call": ("pie",),
    "crash-rodata-write": ("static",),
    "enosys": ("static",),
}
# test_dynamic.py case ids: glibc's ld.so and libraries, mapped through the guest's calls.
# dlopen's libm reaches the guest because dyn_libm links it (run.sh copies what ldd lists).
DYNAMIC_CASES = ("hello", "libm", "dlopen", "tls")
# Hostile modes cost 1-2 s each here (a native and a kvmserver run), so these are the ones
# aimed at what the ring-0 path relies on: the system area it maps (GDT, TSS, IDT, ring-0
# code and stack, the entry, clock and vDSO pages), non-canonical and kernel-half addresses,
# NX, and the privileged instructions that touch its exit ports, LSTAR, the IDT, swapgs,
# gates and privilege returns. All of test_hostile.FAULT_MODES run.
WILD_MODES = ["write-gdt", "write-tss", "write-idt", "write-kcode", "call-kcode",
              "write-uentry", "write-clock-page", "write-vdso", "read-kstack", "write-kstack",
              "read-noncanonical", "write-kernel-half", "exec-stack", "mprotect-gdt",
              "mmap-fixed-idt"]
PRIVILEGED_MODES = ["hlt", "out-syscall-port", "out-exception-port", "wrmsr-lstar", "lidt",
                    "swapgs", "int-dpl0-gate", "iret-ring0"]
# The e2e suite checks the wild accesses and privileged instructions against expectations
# only; natively in the QEMU guest nearly all end the same way (SIGSEGV after the same line),
# so here they are compared with a native run. The exceptions, with the guest's expected stdout:
NATIVE_DIFFERS = {
    # Root may map below mmap_min_addr natively; the guest may not map over its IDT.
    ("hostile_wild", "mmap-fixed-idt"): "mode mmap-fixed-idt\nmmap(0x2000, MAP_FIXED) failed\n",
    # Natively under TCG the faulting iretq ends in SIGKILL (exit 137), not #GP's SIGSEGV.
    ("hostile_priv", "iret-ring0"): "mode iret-ring0\n",
}
SIGNAL_VARIANTS = ("static", "musl")   # dynamic programs have their own cases
THREAD_PROGRAMS = test_threads.THREAD_PROGRAMS   # static only: the switch is the same for all
# One stub-answered call and one vDSO clock of test_options.IN_VM_CALLS (~4 s each here).
IN_VM_CALLS = ("getpid", "clock_gettime")
ISOLATION_PORT = 8010


def word(arg: str) -> str:
    """One shell word for the list's COMMAND field, which may hold no tab."""
    if "\t" not in arg:
        return shlex.quote(arg)
    assert "'" not in arg and "\\" not in arg, arg
    return "\"$(printf '%b' '" + arg.replace("\t", "\\t") + "')\""


class Writer:
    def __init__(self, build: Path):
        self.build = build
        self.files = build / "hwkvm-diff"
        self.files.mkdir(exist_ok=True)
        self.names = set()

    def file(self, name: str, data: bytes) -> str:
        """A file the guest gets, as a path relative to BUILD_DIR (run.sh copies it in)."""
        name = name.replace("/", "-")
        (self.files / name).write_bytes(data)
        return f"hwkvm-diff/{name}"

    def test(self, name: str, command: list):
        assert name not in self.names and all(c not in name for c in " \t"), name
        self.names.add(name)
        line = f"{name}\t0\t{' '.join(command)}"
        assert "\n" not in line
        print(line)

    def same(self, name, program, args=(), status=0, env=None, stdin=b"", options=(),
             tree=False, expected=None, stderr=()):
        command = ["hw-same", "-s", str(status)]
        if stdin:
            command += ["-i", self.file(f"{name}.stdin", stdin)]
        for key, value in (env or {}).items():
            command += ["-e", word(f"{key}={value}")]
        for option in options:
            command += ["-o", word(option)]
        if status - 128 in conftest.CRASH_WORDS:   # a fault: the crash report, as the e2e tests
            command += ["-r", word(conftest.CRASH_WORDS[status - 128])]
        for pattern in stderr:
            command += ["-g", word(pattern)]
        if expected is not None:
            command += ["-x", self.file(f"{name}.stdout", expected)]
        if tree:
            command.append("-d")
        command += ["--", f"tests/programs/{program}", *(word(a) for a in args)]
        self.test(name, command)


def main():
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        sys.exit("usage: diff-list.py BUILD_DIR > LIST")
    out = Writer(Path(sys.argv[1]).resolve())
    print("# Generated by tests/hwkvm/diff-list.py from the e2e test modules; do not edit.")

    cases = {case[0]: case for case in test_diff.CASES}
    assert set(DIFF_CASES) <= set(cases), set(DIFF_CASES) - set(cases)
    for case_id, variants in DIFF_CASES.items():
        _, program, args, env, stdin, status = cases[case_id]
        # sysinfo checks getcwd against its argument: the guest's working directory is /work.
        args = ["/work" if a == str(conftest.REPO_ROOT) else a for a in args]
        for variant in variants:
            out.same(f"diff/{case_id}-{variant}", f"{program}_{variant}", args, status, env,
                     stdin)

    assert set(WILD_MODES) <= set(test_hostile.WILD_MODES)
    assert set(IN_VM_CALLS) <= set(test_options.IN_VM_CALLS)
    assert set(PRIVILEGED_MODES) <= set(test_hostile.PRIVILEGED_MODES)
    for mode, status in test_hostile.FAULT_MODES.items():
        out.same(f"hostile/fault-{mode}", "hostile_fault", [mode], status)
    for program, modes in (("hostile_wild", WILD_MODES), ("hostile_priv", PRIVILEGED_MODES)):
        for mode in modes:
            expected = NATIVE_DIFFERS.get((program, mode))
            out.same(f"hostile/{program.split('_')[1]}-{mode}", program, [mode],
                     128 + test_hostile.SIGSEGV,
                     expected=expected.encode() if expected else None)
    syscall_stdin = b"0123456789abcdef" * 256   # as test_hostile_syscall_arguments
    out.same("hostile/syscall-arguments", "hostile_syscall", stdin=syscall_stdin)

    # File-system policy: test_fs.py's script natively and in the guest in identical trees;
    # then, guest only, ways out of the allowed tree (one through a symlink the guest plants)
    # are EACCES, and the denial is logged.
    out.same("fs/script-static", "fs_probe_static", test_fs.SCRIPT, 4,
             options=["--allow-read=.", "--allow-write=."], tree=True)
    escapes = ["../secret.txt", "sub/../../secret.txt", "planted", "/proc/self/cwd/../secret.txt"]
    args = ["symlink", "../secret.txt", "planted"]
    for path in escapes:
        args += ["read", path]
    expected = "symlink ../secret.txt planted: ok\n" + "".join(
        f"read {path}: error EACCES\n" for path in escapes)
    out.same("fs/escapes-denied", "fs_probe_static", args, len(escapes),
             options=["--allow-read=.", "--allow-write=."], tree=True,
             expected=expected.encode(), stderr=[r"^kvmserver: denied read of /.*/secret\.txt "])

    dynamic = {case[0]: case for case in test_dynamic.CASES}
    for case_id in DYNAMIC_CASES:
        _, program, args, env, status = dynamic[case_id]
        options = ["--allow-read"] + ([f"--allow-env={','.join(env)}"] if env else [])
        out.same(f"dynamic/{case_id}", program, args, status, env, options=options)

    for variant in SIGNAL_VARIANTS:
        out.same(f"signals/{variant}", f"signals_{variant}", status=test_signals.SIGPIPE_STATUS)
    out.same("signals/stack-overflow-altstack", "stack_overflow_static", ["altstack"])
    out.same("signals/stack-overflow", "stack_overflow_pie", status=128 + test_hostile.SIGSEGV)
    for name in THREAD_PROGRAMS:
        # The time slices' worker with fewer rounds: under TCG a round is ~25x slower.
        args = ["10000000"] if name == "threads_slices" else []
        out.same(f"threads/{name}-static", f"{name}_static", args)

    # The shared transport does not exist on hardware KVM: asked for, it falls back to exits
    # with a note (README, limitations), and the program runs the same.
    out.same("transport/shared-falls-back", "argv_static", ["x"], 2,
             options=["--syscall-transport=shared"],
             stderr=["^kvmserver: --syscall-transport=shared is not available on hardware KVM; "
                     "using VM exits$"])

    # getpid and getppid answered in the ring-0 stub, the clock through the vDSO: no exits
    # (README); getuid, answered by the host, is the control.
    for call in IN_VM_CALLS:
        out.test(f"exits/{call}", ["hw-exits", "in", "tests/programs/in_vm_calls", call,
                                   str(test_options.CALLS)])
    out.test("exits/getuid", ["hw-exits", "host", "tests/programs/in_vm_calls", "getuid",
                              str(test_options.CALLS)])

    # Server mode under -e: every isolation.c endpoint's answers are pristine (the touches
    # after their mapping step crash the request), with a reset after each connection.
    lines = []
    for endpoint in isolation_endpoints.ENDPOINTS:
        for path in test_isolation.steps_for(endpoint):
            want = isolation_endpoints.PRISTINE.get(path)
            if want == isolation_endpoints.CLOSED:
                want = "CLOSED"
            elif want is None:
                want = "="
            else:
                assert want.endswith("\n") and want.count("\n") == 1, want
                want = want[:-1]
            lines.append(f"{path}\t{want}\n")
    steps = out.file("isolation.steps", "".join(lines).encode())
    out.test("server/isolation-ephemeral",
             ["hw-serve", str(ISOLATION_PORT), steps, "--", "-e", "-t", "1", "--allow-read",
              f"--allow-listen=127.0.0.1:{ISOLATION_PORT}", "run", "tests/servers/isolation",
              str(ISOLATION_PORT)])


if __name__ == "__main__":
    main()
