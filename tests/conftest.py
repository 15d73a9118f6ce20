"""Shared test plumbing, and the fixtures that start a modem
(docs/development/testing.md "The shared fixtures and the bytes")."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

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
    config.addinivalue_line("markers", "internal_errors_expected: the test provokes an error the emulator logs")
    config.addinivalue_line("markers", "needs(*parts): external parts the test needs (tests/parts.py); "
                                       "missing, it skips, and fails where CI=true")


def pytest_runtest_setup(item: pytest.Item) -> None:
    from tests.parts import missing, PARTS

    for marker in item.iter_markers("needs"):
        for part in marker.args:
            if PARTS[part].find() is None:
                missing(part)


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


class _ErrorRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def no_logged_internal_errors(request: pytest.FixtureRequest):
    """Fail a test during which the emulator logged an error: a handler or a timer that raised
    (the modem catches and logs it), or an exception in an asyncio task or callback that nobody
    retrieved (the runner's loop exception handler logs those)."""
    catch = _ErrorRecords()
    logger = logging.getLogger("ecemu")
    logger.addHandler(catch)
    try:
        yield
    finally:
        logger.removeHandler(catch)
    if catch.records and request.node.get_closest_marker("internal_errors_expected") is None:
        pytest.fail("the emulator logged errors:\n" + "\n".join(
            f"{r.name}: {r.getMessage()}" + (f" ({r.exc_info[1]!r})" if r.exc_info else "") for r in catch.records))


# --- the core alone ------------------------------------------------------------------------------


@pytest.fixture
def h():
    """A CoreHarness (tests/harness.py): the EC200M-CN's core, booted, echo off (the harness sends
    ATE0), fed bytes, events and time by the test."""
    from tests.harness import CoreHarness

    return CoreHarness()


# --- modems on a pty with a host on the port ---------------------------------------------------------


class ModemStarter:
    """Starts booted emulators with an ``AtHost`` on each port and stops them all at ``close``."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.started: list[Any] = []
        self.hosts: list[Any] = []

    def __call__(self, *, echo: bool = True, active: bool = False, timeout: float = 15.0, host: bool = True,
                 **options: Any) -> tuple[Any, Any]:
        from ecemu.api import Emulator
        from tests.host import AtHost
        from tests.wire import OK

        options.setdefault("ufs", self.folder / f"ufs{len(self.started)}")
        emulator = Emulator(**options).start()
        self.started.append(emulator)
        emulator.wait_for_boot()
        if not host:
            return emulator, None
        at = AtHost(emulator.port, timeout=timeout)  # opening flushes the boot URCs, as pyserial does
        self.hosts.append(at)
        if not echo:
            assert at.ask("ATE0").endswith(OK)
        if active:
            assert at.ask("AT+QIACT=1") == (b"AT+QIACT=1\r" if echo else b"") + OK
        return emulator, at

    def close(self) -> None:
        for at in self.hosts:
            at.close()
        for emulator in self.started:
            emulator.stop()


@pytest.fixture
def start_modem(tmp_path: Path):
    """``start_modem(echo=True, active=False, timeout=15.0, host=True, **options)``: an
    ``ecemu.Emulator(**options)`` (its UFS under tmp_path unless ``ufs`` is given), booted, with an
    ``AtHost`` on its port waiting ``timeout`` seconds at most for an answer; echo turned off with
    ATE0 unless ``echo``, context 1 activated if ``active``. Returns (emulator, host), host None
    when ``host=False``; every modem started is stopped after the test."""
    starter = ModemStarter(tmp_path)
    yield starter
    starter.close()


@pytest.fixture(scope="module")
def start_shared_modem(tmp_path_factory: pytest.TempPathFactory):
    """``start_modem`` for a module of tests that share one modem (each test leaves it as it found
    it, as the file's own fixture says)."""
    starter = ModemStarter(tmp_path_factory.mktemp("shared"))
    yield starter
    starter.close()


@pytest.fixture
def modem(start_modem):
    """(emulator, host): the EC200M-CN as after power-on, echo on, no context active."""
    return start_modem()


@pytest.fixture
def online(start_modem):
    """(emulator, host): echo off (ATE0) and context 1 active (AT+QIACT=1), where the socket,
    SSL, HTTP and MQTT tests start."""
    return start_modem(echo=False, active=True)
