"""File-system calls and the permission policy (--allow-read, --allow-write, --allow-all,
--volume, --cwd) end to end, with the fs_probe and fs_proc test programs.

Differential cases run the same fs_probe script natively and under kvmserver in two identical
fresh directories and compare stdout and exit status. Policy cases run under kvmserver only and
check that nothing outside the allowed trees can be reached: not through `..`, not through a
symlink planted in an allowed directory, not through /proc magic links or /proc/self/fd.
"""
import os

import pytest

from conftest import describe, program_path, run_guest, run_native

VARIANTS = ("static", "pie")


def make_tree(top):
    """top/work/{data.txt, sub/inner.txt, rel -> data.txt}, top/secret.txt."""
    work = top / "work"
    (work / "sub").mkdir(parents=True)
    (work / "data.txt").write_text("data\n")
    (work / "sub" / "inner.txt").write_text("inner\n")
    (work / "rel").symlink_to("data.txt")
    (top / "secret.txt").write_text("secret\n")
    return work


# A script of file-system operations on relative paths, so the output is the same wherever
# the directory lives. Failures the script expects (ENOENT, ENOTEMPTY) count in the status.
SCRIPT = [
    "mkdir", "d",
    "write", "d/a", "hello",
    "append", "d/a", " world",
    "read", "d/a",
    "stat", "d/a",
    "lstat", "d",
    "symlink", "a", "d/l",
    "readlink", "d/l",
    "lstat", "d/l",
    "stat", "d/l",
    "read", "d/l",
    "rename", "d/a", "d/b",
    "list", "d",
    "link", "d/b", "d/c",
    "stat", "d/c",
    "truncate", "d/c", "5",
    "read", "d/b",
    "chmod", "d/b", "600",
    "access", "d/b", "rw",
    "access", "d/missing", "f",
    "openat", "d", "b",
    "chdir", "d",
    "read", "b",
    "unlink", "l",
    "list", ".",
    "chdir", "..",
    "read", "rel",
    "read", "sub/../data.txt",
    "rmdir", "d",
    "unlink", "d/b",
    "unlink", "d/c",
    "rmdir", "d",
    "list", ".",
    "stat", "missing",
    "read", "/dev/null",
    "read", "/dev/zero/x",
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_script_same_as_native(kvmserver, programs, tmp_path, variant):
    probe = program_path(programs, f"fs_probe_{variant}")
    native_dir = make_tree(tmp_path / "native")
    guest_dir = make_tree(tmp_path / "guest")
    native = run_native(probe, SCRIPT, cwd=native_dir)
    assert native.status == 4, "native run: " + describe(native)   # the expected failures
    guest = run_guest(kvmserver, probe, SCRIPT, cwd=guest_dir,
                      options=["--allow-read=.", "--allow-write=."])
    assert guest.stdout.decode() == native.stdout.decode(), describe(guest)
    assert guest.status == native.status
    assert sorted(os.listdir(guest_dir)) == sorted(os.listdir(native_dir))


def probe_guest(kvmserver, programs, args, options, cwd):
    return run_guest(kvmserver, program_path(programs, "fs_probe_static"), args,
                     options=options, cwd=cwd)


def lines(outcome):
    return outcome.stdout.decode().splitlines()


def test_nothing_readable_by_default(kvmserver, programs, tmp_path):
    work = make_tree(tmp_path)
    out = probe_guest(kvmserver, programs, ["read", str(work / "data.txt"), "read", "/etc/passwd",
                                            "stat", str(work)], [], tmp_path)
    assert lines(out) == [f"read {work}/data.txt: error EACCES",
                          "read /etc/passwd: error EACCES",
                          f"stat {work}: error EACCES"], describe(out)
    assert out.status == 3


def test_read_outside_allowed_denied_and_logged_once(kvmserver, programs, tmp_path):
    work = make_tree(tmp_path)
    secret = tmp_path / "secret.txt"
    out = probe_guest(kvmserver, programs,
                      ["read", "data.txt", "read", str(secret), "read", str(secret)],
                      [f"--allow-read={work}"], work)
    assert lines(out) == ["read data.txt: ok 5 bytes, sum 11a0f1f9 \"data.\"",
                          f"read {secret}: error EACCES", f"read {secret}: error EACCES"], \
        describe(out)
    log = [line for line in out.stderr.decode().splitlines() if "denied" in line]
    assert log == [f"kvmserver: denied read of {secret} (allow with --allow-read={secret})"]


@pytest.mark.parametrize("log_format", ["text", "kv"])
def test_denied_path_cannot_forge_log_lines(kvmserver, programs, tmp_path, log_format):
    # The guest names the path: a newline in it must not start a line of its own, and a quote
    # must not end the kv field it is shown in.
    work = make_tree(tmp_path)
    hostile = '/x\nkvmserver: denied read of /forged "y\\'
    out = probe_guest(kvmserver, programs, ["read", hostile],
                      [f"--allow-read={work}", "--log-format", log_format], work)
    assert out.stdout.decode() == f"read {hostile}: error EACCES\n", describe(out)
    log = [line for line in out.stderr.decode().splitlines() if "denied" in line]
    shown = "/x\\x0akvmserver: denied read of /forged \\x22y\\x5c"
    if log_format == "text":
        assert log == [f"kvmserver: denied read of {shown} (allow with --allow-read={shown})"]
    else:
        assert len(log) == 1 and f' path="{shown}" ' in log[0], log


def test_escapes_do_not_leave_the_allowed_tree(kvmserver, programs, tmp_path):
    work = make_tree(tmp_path)
    secret = tmp_path / "secret.txt"
    (work / "planted_rel").symlink_to("../secret.txt")
    (work / "planted_abs").symlink_to(secret)
    (work / "planted_dir").symlink_to(tmp_path)
    (work / "planted_root").symlink_to("/")
    (work / "planted_proc").symlink_to("/proc/self/root" + str(secret))
    depth = len(work.parts)
    (work / "planted_dots").symlink_to("../" * depth + "proc/self/cwd/../secret.txt")
    attempts = ["../secret.txt", "sub/../../secret.txt", "planted_rel", "planted_abs",
                "planted_dir/secret.txt", "planted_root" + str(secret), "planted_proc",
                "planted_dots", "/proc/self/root" + str(secret), "/proc/1/root" + str(secret),
                "/proc/self/cwd/../secret.txt", "/proc/thread-self/root" + str(secret),
                str(work) + "/../secret.txt"]
    args = []
    for path in attempts:
        args += ["read", path]
    out = probe_guest(kvmserver, programs, args, [f"--allow-read={work}"], work)
    assert lines(out) == [f"read {path}: error EACCES" for path in attempts], describe(out)
    assert out.status == len(attempts)


def test_symlink_inside_allowed_tree_works(kvmserver, programs, tmp_path):
    work = make_tree(tmp_path)
    (work / "sub" / "up").symlink_to("../data.txt")
    out = probe_guest(kvmserver, programs, ["read", "rel", "read", "sub/up",
                                            "read", "/proc/self/cwd/sub/inner.txt"],
                      [f"--allow-read={work}"], work)
    assert out.status == 0, describe(out)


def test_host_proc_never_reachable(kvmserver, programs, tmp_path):
    """Even --allow-all does not open the host's /proc: mem, environ and the host's fds."""
    args = []
    for path in ["/proc/self/mem", "/proc/self/environ", "/proc/1/environ", "/proc/self/auxv"]:
        args += ["read", path]
    for fd in range(3, 24):
        args += ["read", f"/proc/self/fd/{fd}", "readlink", f"/proc/self/fd/{fd}"]
    out = probe_guest(kvmserver, programs, args, ["--allow-all"], tmp_path)
    attempts = [f"{op} {path}" for op, path in zip(args[::2], args[1::2])]
    # One line per attempt, each an error: a missing line would be an attempt not reported.
    assert [line.split(": error ")[0] for line in lines(out)] == attempts, describe(out)
    assert all(": error " in line for line in lines(out)), describe(out)
    assert out.status == len(attempts)
    assert b"KVM" not in out.stdout and b"kvm" not in out.stdout


def test_proc_fd_does_not_upgrade_access(kvmserver, programs, tmp_path):
    work = make_tree(tmp_path)
    out = probe_guest(kvmserver, programs, ["reopen", "data.txt"], [f"--allow-read={work}"], work)
    assert lines(out) == ["reopen data.txt: error EACCES"], describe(out)
    out = probe_guest(kvmserver, programs, ["reopen", "data.txt"],
                      [f"--allow-read={work}", f"--allow-write={work}"], work)
    assert lines(out) == ["reopen data.txt: ok (writable)"], describe(out)


def test_writing_needs_allow_write(kvmserver, programs, tmp_path):
    work = make_tree(tmp_path)
    ops = ["write", "new.txt", "x", "mkdir", "newdir", "symlink", "data.txt", "l",
           "truncate", "data.txt", "2", "chmod", "data.txt", "600",
           "rename", "data.txt", "moved.txt", "unlink", "rel"]
    before = sorted(os.listdir(work))
    out = probe_guest(kvmserver, programs, ops, [f"--allow-read={work}"], work)
    assert len(lines(out)) == 7, describe(out)
    assert all(line.endswith("error EACCES") for line in lines(out)), describe(out)
    assert out.status == 7
    assert sorted(os.listdir(work)) == before
    assert (work / "data.txt").read_text() == "data\n"
    out = probe_guest(kvmserver, programs, ops, [f"--allow-read={work}", f"--allow-write={work}"],
                      work)
    assert out.status == 0, describe(out)
    assert (work / "new.txt").read_text() == "x"
    assert (work / "newdir").is_dir() and os.readlink(work / "l") == "data.txt"
    assert (work / "moved.txt").read_text() == "da"
    assert (work / "moved.txt").stat().st_mode & 0o777 == 0o600
    assert not os.path.lexists(work / "rel")


def test_write_only_tree_is_not_readable(kvmserver, programs, tmp_path):
    work = make_tree(tmp_path)
    out = probe_guest(kvmserver, programs, ["write", "out.txt", "y", "read", "out.txt"],
                      [f"--allow-write={work}"], work)
    assert lines(out) == ["write out.txt: ok", "read out.txt: error EACCES"], describe(out)


def test_volume_maps_paths(kvmserver, programs, tmp_path):
    work = make_tree(tmp_path)
    out = probe_guest(kvmserver, programs,
                      ["read", "/data/data.txt", "list", "/data", "write", "/data/new", "z",
                       "read", "/data/../secret.txt"],
                      [f"--volume={work}:/data"], tmp_path)
    assert lines(out) == ["read /data/data.txt: ok 5 bytes, sum 11a0f1f9 \"data.\"",
                          "list /data: ok data.txt rel sub",
                          "write /data/new: error EACCES",
                          "read /data/../secret.txt: error EACCES"], describe(out)
    out = probe_guest(kvmserver, programs, ["write", "/data/new", "z", "chdir", "/data/sub",
                                            "getcwd", "read", "inner.txt"],
                      [f"--volume={work}:/data:rw"], tmp_path)
    assert lines(out) == ["write /data/new: ok", "chdir /data/sub: ok", "getcwd: ok /data/sub",
                          "read inner.txt: ok 6 bytes, sum 2bba1b3b \"inner.\""], describe(out)
    assert (work / "new").read_text() == "z"


def test_volume_that_cannot_be_opened_stops_the_start(kvmserver, programs, tmp_path):
    # The policy is built before the program runs: a volume whose host path is missing is
    # reported and kvmserver exits 1 without running the program (which would print).
    missing = tmp_path / "missing"
    out = probe_guest(kvmserver, programs, ["getcwd"], [f"--volume={missing}:/data"], tmp_path)
    assert out.status == 1 and out.stdout == b"", describe(out)
    assert f"--volume {missing}:/data" in out.stderr.decode(), describe(out)


def test_cwd_option(kvmserver, programs, tmp_path):
    work = make_tree(tmp_path)
    out = probe_guest(kvmserver, programs, ["getcwd", "read", "data.txt"],
                      [f"--cwd={work}", f"--allow-read={work}"], tmp_path)
    assert lines(out) == [f"getcwd: ok {work}",
                          "read data.txt: ok 5 bytes, sum 11a0f1f9 \"data.\""], describe(out)


def test_allow_read_everything(kvmserver, programs, tmp_path):
    make_tree(tmp_path)
    out = probe_guest(kvmserver, programs, ["read", str(tmp_path / "secret.txt"),
                                            "write", str(tmp_path / "w"), "x"],
                      ["--allow-read"], tmp_path)
    assert lines(out)[0].startswith(f"read {tmp_path}/secret.txt: ok"), describe(out)
    assert lines(out)[1].endswith("error EACCES")
    out = probe_guest(kvmserver, programs, ["write", str(tmp_path / "w"), "x"], ["--allow-all"],
                      tmp_path)
    assert out.status == 0, describe(out)


@pytest.mark.parametrize("variant", VARIANTS)
def test_synthesized_proc_files(kvmserver, programs, tmp_path, variant):
    program = program_path(programs, f"fs_proc_{variant}")
    out = run_guest(kvmserver, program, [os.path.realpath(program), str(512 << 20)],
                    options=["--max-main-memory=512"], cwd=tmp_path)
    assert out.status == 0, describe(out)
