"""Shared test plumbing."""

import os

import pytest

# The suite measures the emulator, not a radio network: no round trip unless a test asks for one
# (tests/test_network_timing.py). Set before any emulator starts, so child processes inherit it.
os.environ.setdefault("ECEMU_NETWORK_RTT_MS", "0")

# What one unit of --robustness-scale may take, per test (pytest-timeout's limit is scaled with it).
ROBUSTNESS_TIMEOUT_PER_SCALE = 120


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--robustness-scale", type=int, default=1, metavar="N",
        help="multiply the examples and cycles of tests/test_robustness.py by N (default 1: a few "
             "seconds each; 50 is the long run)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "robustness: a fuzzing, soak or integrity test sized by --robustness-scale")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    scale = config.getoption("--robustness-scale")
    if scale < 1:
        raise pytest.UsageError("--robustness-scale must be 1 or more")
    for item in items:
        if item.get_closest_marker("robustness") is not None and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(ROBUSTNESS_TIMEOUT_PER_SCALE * scale))


@pytest.fixture
def robustness_scale(request: pytest.FixtureRequest) -> int:
    """How many times the default examples and cycles a robustness test runs (--robustness-scale)."""
    return request.config.getoption("--robustness-scale")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Mark a test whose body failed, so that fixtures can show what they captured."""
    report = yield
    if report.when == "call" and report.failed:
        item.failed_call = True
    return report
