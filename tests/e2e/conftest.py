"""Fixtures for the e2e suite.

mode     parametrized over io_uring, epoll and asan (build-asan/ binaries,
         io_uring backend, ASan shim preloaded after libasan).
cluster  a pods.Cluster torn down after the test, even when it failed.
pods     (a, b): two pods joined by a veth pair, each with a running ldmeshd.

Each test's call phase is bounded by SIGALRM (TEST_TIMEOUT seconds, or the
`timeout(N)` marker); teardown is not interrupted.
"""
import os
import signal

import pytest

import pods as podlib

MODES = ["io_uring", "epoll", "asan"]
TEST_TIMEOUT = 180


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): bound on the test's call phase")


def pytest_sessionstart(session):
    if os.geteuid() == 0:
        podlib.cleanup_stale_namespaces()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    m = item.get_closest_marker("timeout")
    limit = int(m.args[0]) if m else TEST_TIMEOUT

    def on_alarm(signum, frame):
        raise TimeoutError("test exceeded its %ds limit" % limit)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(params=MODES)
def mode(request):
    if os.geteuid() != 0:
        pytest.fail("the e2e tests create network namespaces: run them as root", pytrace=False)
    m = podlib.Mode(request.param)
    m.check_built()
    return m


@pytest.fixture
def cluster(mode, tmp_path):
    c = podlib.Cluster(mode, tmp_path)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def pods(cluster):
    return cluster.pair()
