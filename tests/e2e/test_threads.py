"""Guest threads: cooperative threads on the VM's one vCPU (src/linux/thread.c). Each thread
program runs natively and under `kvmserver run`; stdout and the exit status must match. Also
python3's threading module and the calls' edge cases (bad clone flags, thread limit).
"""
import shutil

import pytest

from conftest import REPO_ROOT, describe, program_path, run_guest, run_native

THREAD_PROGRAMS = ["threads_join", "threads_pingpong", "threads_sum", "threads_tls",
                   "threads_exit", "threads_events", "threads_blocking", "threads_busy_poll",
                   "threads_slices"]
VARIANTS = ["static", "pie", "musl"]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", THREAD_PROGRAMS)
def test_same_as_native(kvmserver, programs, name, variant):
    program = program_path(programs, f"{name}_{variant}")
    native = run_native(program, cwd=REPO_ROOT)
    assert native.status == 0, "native run: " + describe(native)
    guest = run_guest(kvmserver, program, cwd=REPO_ROOT)
    assert guest.stdout.decode(errors="replace") == native.stdout.decode(errors="replace"), \
        "guest " + describe(guest)
    assert guest.status == native.status, "guest " + describe(guest)


PYTHON_THREADS = """
import threading, queue
results = []
lock = threading.Lock()
def work(n):
    total = sum(range(n * 1000))
    with lock:
        results.append((n, total))
threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(sorted(results))
q = queue.Queue()
def producer():
    for i in range(100): q.put(i)
    q.put(None)
threading.Thread(target=producer).start()
got = []
while (item := q.get()) is not None: got.append(item)
print(sum(got), threading.active_count() <= 2)
ev = threading.Event()
threading.Timer(0.05, ev.set).start()
print(ev.wait(5))
"""


def test_python_threading(kvmserver):
    python = shutil.which("python3", path="/usr/bin")
    if not python:
        pytest.skip("/usr/bin/python3 not installed")
    native = run_native(python, ["-c", PYTHON_THREADS], cwd=REPO_ROOT)
    assert native.status == 0, "native run: " + describe(native)
    guest = run_guest(kvmserver, python, ["-c", PYTHON_THREADS], options=["--allow-read"],
                      cwd=REPO_ROOT)
    assert guest.stdout == native.stdout, "guest " + describe(guest)
    assert guest.status == native.status, "guest " + describe(guest)


def test_refused_clones_and_thread_limit(kvmserver, programs):
    guest = run_guest(kvmserver, program_path(programs, "threads_limits"))
    assert guest.status == 0, describe(guest)
    assert guest.stdout.decode() == (
        "clone(SIGCHLD): ENOSYS\n"
        "clone(CLONE_VM|CLONE_VFORK): ENOSYS\n"
        "clone3(size 8): EINVAL\n"
        "clone3(size 1 MiB): E2BIG\n"
        "clone3(thread + CLONE_NEWNS): EINVAL\n"
        "threads created: 63, then EAGAIN\n"
        "after joining: create ok\n"), describe(guest)


def test_deadlock_ends_the_program(kvmserver, programs):
    guest = run_guest(kvmserver, program_path(programs, "threads_deadlock"), timeout=20)
    assert guest.stdout == b"joining a thread that never ends\n", describe(guest)
    assert guest.status == 1, describe(guest)
    assert b"deadlock" in guest.stderr, describe(guest)
