"""tests/hwkvm/run-host.sh (the hwkvm lists run on this machine's own /dev/kvm) and
tests/hwkvm/bundle.sh (what running them on another machine takes)."""
import os
import subprocess

from conftest import REPO_ROOT

HWKVM = REPO_ROOT / "tests" / "hwkvm"


def run_host(build, lists, timeout=120):
    env = dict(os.environ)
    env["PATH"] = f"/bin:{env.get('PATH', '/usr/bin')}"   # Debian's busybox-static is /bin/busybox
    return subprocess.run([str(HWKVM / "run-host.sh"), str(build), *map(str, lists)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_run_host_checks_exit_status_and_stdout(kvmserver, build, tmp_path):
    (tmp_path / "hi.expected").write_text("hi\n")
    (tmp_path / "cases.list").write_text(
        "# a comment\n\n"
        "ok\t0\ttrue\n"
        "status\t3\texit 3\n"
        "stdout\t0\techo hi\thi.expected\n"
        "wrong-stdout\t0\techo ho\thi.expected\n"
        "wrong-exit\t0\texit 1\n"
        "in-build-dir\t0\ttest -x kvmserver\n")
    done = run_host(kvmserver.parent, [tmp_path / "cases.list"])
    lines = done.stdout.splitlines()
    assert lines == ["PASS hwkvm/ok", "PASS hwkvm/status", "PASS hwkvm/stdout",
                     "FAIL hwkvm/wrong-stdout (stdout differs from hi.expected)",
                     "FAIL hwkvm/wrong-exit (exit 1, expected 0)",
                     "PASS hwkvm/in-build-dir"], done.stdout + done.stderr
    assert done.returncode == 1


def test_run_host_passes_only_on_the_hardware_flavour(kvmserver, build, tmp_path):
    """The first case of tests.list, run on this machine: it passes where /dev/kvm is hardware
    KVM and must fail on kvm_pvm (every hwkvm check asserts the flavour)."""
    first = next(line for line in (HWKVM / "tests.list").read_text().splitlines()
                 if line and not line.startswith("#"))
    (tmp_path / "one.list").write_text(first + "\n")
    probe = subprocess.run([str(kvmserver), "-v", "run", str(build / "tests/programs/exitcode_static"),
                            "exit", "0"], capture_output=True, text=True, timeout=60)
    hardware = "kvmserver: platform: hardware," in probe.stderr
    done = run_host(build, [tmp_path / "one.list"])
    name = first.split("\t")[0]
    want = f"PASS hwkvm/{name}" if hardware else f"FAIL hwkvm/{name} (exit 1, expected 42)"
    assert done.stdout.splitlines() == [want], done.stdout + done.stderr
    assert done.returncode == (0 if hardware else 1)


def test_bundle_holds_every_program_the_lists_name(kvmserver, build, tmp_path):
    dest = tmp_path / "bundle"
    done = subprocess.run([str(HWKVM / "bundle.sh"), str(build), str(dest)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    assert size < 64 << 20, f"{size} bytes: over what a device call carries"
    for listed in ("tests.list", "diff.list"):
        for line in (dest / "hwkvm" / listed).read_text().splitlines():
            if not line or line.startswith("#"):
                continue
            for word in line.split():
                word = word.split("=")[-1].strip("'\"")
                if word.startswith(("tests/programs/", "tests/servers/", "examples/")):
                    assert (dest / "build" / word).is_file(), f"{listed}: {word} not bundled"
    env = dict(os.environ, LD_LIBRARY_PATH=str(dest / "lib"))
    for binary in (dest / "build" / "kvmserver", dest / "bin" / "wrk"):
        ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, env=env)
        assert "not found" not in ldd.stdout, ldd.stdout
    assert os.access(dest / "check.sh", os.X_OK)
    syntax = subprocess.run(["bash", "-n", str(dest / "check.sh")], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
