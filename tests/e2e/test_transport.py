"""The syscall transports under stress: a random mix of calls served by the shared-memory
poller, calls handed back to the vCPU thread, calls answered in the guest, forced
fallbacks (a 1 us spin limit) and a guest that scribbles on the transport's page. Every
call must take effect exactly once (the program counts side effects) and the host must
survive."""
import pytest

from conftest import describe, program_path, run_guest

CASES = [
    ("exit", 100, False),
    ("shared", 100, False),
    ("shared", 1, False),       # the stub gives up almost at once: fallbacks race the poller
    ("shared", 100, True),
    ("shared", 1, True),
]


@pytest.mark.parametrize("transport,spin_us,scribble", CASES)
def test_every_call_takes_effect_once(kvmserver, programs, transport, spin_us, scribble):
    args = ["20000"] + (["scribble"] if scribble else [])
    guest = run_guest(kvmserver, program_path(programs, "transport_stress"), args,
                      options=[f"--syscall-transport={transport}",
                               f"--syscall-spin-us={spin_us}"], timeout=120)
    assert guest.status == 0 and guest.stdout == b"ok\n", describe(guest)


def test_native_run_agrees(programs):
    """The program's own check holds natively (no scribbling there: no such page)."""
    import subprocess
    result = subprocess.run([program_path(programs, "transport_stress"), "20000"],
                            capture_output=True, timeout=60)
    assert result.returncode == 0 and result.stdout == b"ok\n", result
