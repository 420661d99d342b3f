"""Ephemeral resets restore the address space, not only memory: what one request mapped,
widened or unmapped is exactly as at the freeze for the next request of the same request VM
(`-t 1`), whose cached translations must not outlive the reset. The server is
tests/servers/srv_mappings.c; the expectations are what a freshly forked Linux process sees.
"""
import re

import pytest

from servers import (Response, http_get, request_outcome, server_factory, server_path,
                     servers_dir, wait_for_log)

__all__ = ["server_factory", "servers_dir"]

CRASH_LOG = re.compile(r"crash|SIGSEGV|segmentation|fault|signal", re.IGNORECASE)


def answer(server, path):
    response = http_get(server.endpoint, path)
    assert isinstance(response, Response) and response.status == 200, response
    return response.text.strip()


def assert_crashes(server, path):
    """The route touches memory it may not: the request VM faults, the connection closes
    without an answer and kvmserver logs the crash."""
    logged = server.log_line_count()
    outcome = request_outcome(server.endpoint, path)
    assert outcome == "closed", f"{path} answered {outcome!r}\n" + server.describe()
    assert wait_for_log(server, logged, CRASH_LOG.search), (
        "no crash line logged\n" + server.describe())


@pytest.fixture
def server(kvmserver, server_factory, servers_dir):
    return server_factory.kvmserver(kvmserver, server_path(servers_dir, "srv_mappings"),
                                    options=["-t", "1", "-e"])


def test_native_semantics(server_factory, servers_dir):
    """The routes themselves, natively in one process: state persists there."""
    native = server_factory.native(server_path(servers_dir, "srv_mappings"))
    assert answer(native, "/fixed-probe") == "efault efault"
    assert answer(native, "/fixed-map") == "mapped"
    assert answer(native, "/fixed-probe") == "readable readable"
    assert answer(native, "/fixed-touch-far") == "readable X"
    assert answer(native, "/fixed-touch-near") == "readable X"
    assert answer(native, "/widen-probe") == "efault R"
    assert answer(native, "/widen") == "widened"
    assert answer(native, "/widen-probe") == "writable"


@pytest.mark.parametrize("where", ["far", "near"])
def test_fixed_mapping_is_gone_after_reset(server, where):
    for _ in range(2):
        assert answer(server, "/fixed-map") == "mapped"
        assert answer(server, "/fixed-probe") == "efault efault"
        assert answer(server, "/fixed-map") == "mapped"
        assert_crashes(server, f"/fixed-touch-{where}")


def test_widened_rights_are_taken_back(server):
    for _ in range(2):
        assert answer(server, "/widen") == "widened"
        assert answer(server, "/widen-probe") == "efault R"
        assert answer(server, "/widen") == "widened"
        assert_crashes(server, "/widen-touch")
        assert answer(server, "/widen-probe") == "efault R"


def test_unmapped_frozen_memory_comes_back(server):
    for _ in range(2):
        assert answer(server, "/unmap") == "unmapped"
        assert answer(server, "/unmap-touch") == "frozen M"
