"""pytest plugin (registered by entry point): a fresh emulated modem per test and a local TLS
echo server, so host-side tests need no code of their own to get a modem and a server.

    def test_my_driver(ecemu_modem, ecemu_tls_server):
        port = serial.Serial(ecemu_modem.port, 115200, timeout=5)
        ...  # upload ecemu_tls_server.ca_pem, AT+QSSLOPEN to 127.0.0.1:ecemu_tls_server.port

Choose the module with ``@pytest.mark.ecemu_profile("EC800N-CN")``, ``--ecemu-profile`` or the
ini option ``ecemu_profile``, and the certificate the server presents with
``@pytest.mark.ecemu_cert("expired")`` or, for several,
``@pytest.mark.parametrize("ecemu_tls_server", ["expired", "selfsigned"], indirect=True)``.
``ecemu_modem_factory`` makes as many modems as a test wants. The network of every modem follows
the options (or ini values) ``ecemu_resolve``, ``ecemu_hosts_file``, ``ecemu_local_ntp``,
``ecemu_local_only`` and ``ecemu_allow``: ``ecemu run``'s ``--resolve`` ... (README, "In CI").

Every modem records a trace; when a test fails, the report carries the end of each of its modems'
transcripts (section ``ecemu modem N transcript``). The terminal summary shows the coverage
table of every modem, under pytest-xdist too (each worker hands its table to the controller).

Put the modem on an existing serial device (a USB-serial adapter, QEMU's pty) with
``@pytest.mark.ecemu_device("/dev/ttyUSB0")`` or ``--ecemu-device``, at ``--ecemu-baud``; give
its bytes a UART's timing with ``@pytest.mark.ecemu_line("uart")`` or ``--ecemu-line=uart``.

``@pytest.mark.ecemu_replay("field.log")`` makes ``ecemu_modem`` a replay of a recorded session
(``ecemu.replay``; the path is relative to the test's file): the module answers as the log's did,
and the test fails with the report when the host departs from the log, or stops before the log's
last host line (``complete=False`` allows that). ``on_divergence="emulate"`` carries on as the
emulated module instead of failing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import pytest

from .profile import DEFAULT_PROFILE

TRANSCRIPT_LINES = 200  # of a modem's transcript attached to a failing test's report: the end
_COVERAGE_KEY = "ecemu_coverage"  # in a pytest-xdist worker's output


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ecemu")
    group.addoption("--ecemu-profile", default=None,
                    help=f"module profile (name or TOML file) for the fixtures' modems (default {DEFAULT_PROFILE}; "
                         f"ini: ecemu_profile)")
    group.addoption("--ecemu-resolve", action="append", default=[], metavar="NAME=ADDR[:PORT]",
                    help="resolve NAME to ADDR (and PORT) for the modems; repeatable (ini: ecemu_resolve)")
    group.addoption("--ecemu-hosts-file", default=None, metavar="FILE",
                    help="more names, hosts(5) style (ini: ecemu_hosts_file)")
    group.addoption("--ecemu-local-ntp", action="append", default=[], metavar="NAME",
                    help="answer AT+QNTP to NAME from the module clock; '*' for all (ini: ecemu_local_ntp)")
    group.addoption("--ecemu-local-only", action="store_true", default=None,
                    help="refuse every address outside loopback and the allowed networks (ini: ecemu_local_only)")
    group.addoption("--ecemu-allow", action="append", default=[], metavar="NET",
                    help="with local only, also allow this network (ini: ecemu_allow)")
    parser.addini("ecemu_profile", "module profile (name or TOML file) of the fixtures' modems", default=DEFAULT_PROFILE)
    parser.addini("ecemu_resolve", "NAME=ADDR[:PORT] lines: names the modems resolve without DNS", type="linelist")
    parser.addini("ecemu_hosts_file", "a hosts(5) file of names the modems resolve without DNS", default="")
    parser.addini("ecemu_local_ntp", "names whose AT+QNTP the emulator answers itself ('*': all)", type="args")
    parser.addini("ecemu_local_only", "refuse every address outside loopback and ecemu_allow", type="bool",
                  default=False)
    parser.addini("ecemu_allow", "networks allowed besides loopback with ecemu_local_only", type="args")
    group.addoption("--ecemu-device", default=None, metavar="PATH",
                    help="put the ecemu_modem fixture's module on this serial device (ecemu run --device)")
    group.addoption("--ecemu-baud", default=115200, type=int, metavar="RATE",
                    help="the module's UART rate at power-on (AT+IPR; ecemu run --baud), default 115200")
    group.addoption("--ecemu-line", default="usb", choices=("usb", "uart"),
                    help="usb (default): bytes at memory speed; uart: each byte takes its time at AT+IPR's rate")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ecemu_profile(name): the module profile ecemu_modem emulates")
    config.addinivalue_line("markers", "ecemu_cert(name): the certificate ecemu_tls_server presents "
                                       "(rsa, ecdsa, expired, notyet, wronghost, badsig, otherca, selfsigned)")
    config.addinivalue_line("markers", "ecemu_replay(log, on_divergence='stop', complete=True, profile=None): "
                                       "ecemu_modem replays a recorded session (the path relative to the test file)")
    config.addinivalue_line("markers", "ecemu_device(path): the serial device ecemu_modem's module is on")
    config.addinivalue_line("markers", "ecemu_line(kind): usb or uart, how ecemu_modem's port moves bytes")


def _settings(config: pytest.Config) -> dict[str, Any]:
    """The Emulator arguments the options and ini values ask for (an option wins over its ini value;
    lists add up)."""
    hosts_file = config.getoption("--ecemu-hosts-file") or config.getini("ecemu_hosts_file") or None
    if hosts_file is not None and not os.path.isabs(hosts_file) and config.getoption("--ecemu-hosts-file") is None:
        hosts_file = str(config.rootpath / hosts_file)  # an ini path is the ini file's
    local_only = config.getoption("--ecemu-local-only")
    return {
        "resolve": list(config.getini("ecemu_resolve")) + config.getoption("--ecemu-resolve"),
        "hosts_file": hosts_file,
        "local_ntp": list(config.getini("ecemu_local_ntp")) + config.getoption("--ecemu-local-ntp"),
        "local_only": bool(config.getini("ecemu_local_only") if local_only is None else local_only),
        "allow": list(config.getini("ecemu_allow")) + config.getoption("--ecemu-allow"),
    }


_MODEMS = pytest.StashKey[list]()  # on an item: (Emulator, trace path) of the modems its fixtures made
_COVERAGES = pytest.StashKey[list]()


def _observe(config: pytest.Config, emulator) -> None:
    """Count what the tests' host code uses of this modem (the coverage summary)."""
    from .coverage import Coverage

    coverage = Coverage()
    emulator.call(lambda runner: coverage.attach(runner.modem))
    config.stash.setdefault(_COVERAGES, []).append(coverage)


@pytest.fixture
def ecemu_modem_factory(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Makes running, booted emulators (``ecemu.api.Emulator``), all stopped after the test:
    ``make(profile=None, **arguments)`` takes ``Emulator``'s arguments; the profile defaults to the
    marker's, the option's or the ini's, the network to the options'.

        def test_two_modems(ecemu_modem_factory):
            first, second = ecemu_modem_factory(), ecemu_modem_factory(profile="EC800N-CN")
    """
    from .api import Emulator

    marker = request.node.get_closest_marker("ecemu_profile")
    config = request.config
    default_profile = marker.args[0] if marker else (config.getoption("--ecemu-profile") or config.getini("ecemu_profile"))
    made: list = []
    modems = request.node.stash.setdefault(_MODEMS, [])

    def make(profile: str | None = None, **arguments: Any):
        index = len(made)
        folder = tmp_path_factory.mktemp(f"ecemu-modem{index}")
        settings = {**_settings(config), "ufs": folder / "ufs", "trace": folder / "trace.jsonl", **arguments}
        (folder / "ufs").mkdir(exist_ok=True)
        emulator = Emulator(profile=profile or default_profile, **settings)
        emulator.start()
        made.append(emulator)
        modems.append((emulator, emulator.trace))
        emulator.wait_for_boot()
        _observe(config, emulator)
        return emulator

    try:
        yield make
    finally:
        for emulator in reversed(made):
            emulator.stop()


@pytest.fixture
def ecemu_modem(request: pytest.FixtureRequest, ecemu_modem_factory: Callable):
    """A running emulator (``ecemu.api.Emulator``) with its own UFS, booted, stopped after the test.

    ``.port`` is the path to open; ``.control`` injects faults; ``.ufs`` is its file storage. Its
    port is a link in a private temporary folder with a fresh pty behind it for each host that
    opens it (a host that reopens never reads what was meant for the one before), or the serial device of ``@pytest.mark.ecemu_device(PATH)`` or
    ``--ecemu-device`` (at ``--ecemu-baud``); ``@pytest.mark.ecemu_line("uart")`` or
    ``--ecemu-line=uart`` gives its bytes a UART's timing. Under ``@pytest.mark.ecemu_replay(LOG)``
    it is a replay of that log (``ecemu.replay.Replay``) instead.
    """
    replay = request.node.get_closest_marker("ecemu_replay")
    if replay is not None:
        yield from _replayed_modem(request, replay)
        return
    config = request.config
    device_marker = request.node.get_closest_marker("ecemu_device")
    device = device_marker.args[0] if device_marker else config.getoption("--ecemu-device")
    line_marker = request.node.get_closest_marker("ecemu_line")
    line = line_marker.args[0] if line_marker else config.getoption("--ecemu-line")
    yield ecemu_modem_factory(device=device, baud=config.getoption("--ecemu-baud"), line=line)


def _replayed_modem(request: pytest.FixtureRequest, marker: pytest.Mark):
    """``ecemu_modem`` under ``@pytest.mark.ecemu_replay(LOG, ...)``: the log's module side."""
    from pathlib import Path

    from .replay import DIVERGENCE_MODES, Replay
    from .sessionlog import LogError

    if not marker.args:
        pytest.fail("ecemu_replay needs the log's path: @pytest.mark.ecemu_replay('field.log')", pytrace=False)
    unknown = set(marker.kwargs) - {"on_divergence", "complete", "profile"}
    if unknown:
        pytest.fail(f"ecemu_replay: unknown arguments {', '.join(sorted(unknown))}", pytrace=False)
    on_divergence = marker.kwargs.get("on_divergence", "stop")
    if on_divergence not in DIVERGENCE_MODES:
        pytest.fail(f"ecemu_replay: on_divergence is one of {', '.join(DIVERGENCE_MODES)}", pytrace=False)
    path = Path(marker.args[0])
    if not path.is_absolute():
        path = Path(request.path).parent / path
    if not path.is_file():
        pytest.fail(f"ecemu_replay: no log at {path}", pytrace=False)
    try:  # a private link, as Emulator's: a fresh pty behind it for each opener
        module = Replay(path, on_divergence=on_divergence, profile=marker.kwargs.get("profile")).start()
    except (LogError, ValueError) as exc:
        pytest.fail(f"ecemu_replay: {exc}", pytrace=False)
    try:
        module.wait_for_boot()
        yield module
    finally:
        module.stop()
    if module.report is not None and on_divergence == "stop":
        pytest.fail(f"ecemu_replay: {module.report}", pytrace=False)
    left = module.host_line_left()
    if left is not None and marker.kwargs.get("complete", True) and module.report is None:
        pytest.fail(f"ecemu_replay: the test ended before the log's host line {left.line} "
                    f"({path.name}): {left.shown()}", pytrace=False)


@pytest.fixture
def ecemu_tls_server(request: pytest.FixtureRequest):
    """A TLS echo server on 127.0.0.1 with the test PKI: ``.port``, ``.ca_pem`` (the CA to upload
    as cacert.pem), ``.cert`` (the certificate it presents), stopped after the test.

    It presents the good ``rsa`` certificate unless ``@pytest.mark.ecemu_cert(NAME)`` or an
    indirect parametrisation names another; ``.ca_pem`` stays the CA to trust, so a broken
    certificate is refused for its own defect.
    """
    from .echo_server import SERVER_CERTIFICATES, TlsEchoServer

    marker = request.node.get_closest_marker("ecemu_cert")
    cert = getattr(request, "param", None) or (marker.args[0] if marker else "rsa")
    if cert not in SERVER_CERTIFICATES:
        pytest.fail(f"ecemu_tls_server: no certificate {cert!r}; known: {', '.join(SERVER_CERTIFICATES)}",
                    pytrace=False)
    with TlsEchoServer(cert=cert) as server:
        yield server


# --- what a failing test's report carries: the modems' transcripts -------------------------------

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed:
        modems: list = item.stash[_MODEMS] if _MODEMS in item.stash else []
        for index, (_, trace) in enumerate(modems):
            report.sections.append((f"ecemu modem {index} transcript", _transcript_tail(trace)))
    return report


def _transcript_tail(trace: Path | None) -> str:
    from .shell.trace import render

    if trace is None:
        return "(no trace)"
    try:
        with open(trace, encoding="utf-8", errors="replace") as file:
            lines = list(render(file))
    except OSError as exc:
        return f"(cannot read {trace}: {exc.strerror or exc})"
    earlier = len(lines) - TRANSCRIPT_LINES
    head = [f"({earlier} earlier lines: ecemu trace {trace})"] if earlier > 0 else []
    return "\n".join(head + lines[-TRANSCRIPT_LINES:])


# --- the coverage summary: what the tests' host code used of the modems the fixtures made ----

def pytest_sessionfinish(session: pytest.Session) -> None:
    """In a pytest-xdist worker: hand the worker's table to the controller, which prints it."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        from .coverage import Coverage

        coverages: list = session.config.stash[_COVERAGES] if _COVERAGES in session.config.stash else []
        workeroutput[_COVERAGE_KEY] = Coverage.merged(coverages).to_json()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """pytest-xdist's controller: a worker finished; its table joins the summary."""
    data = getattr(node, "workeroutput", {}).get(_COVERAGE_KEY)
    if data:
        from .coverage import Coverage

        node.config.stash.setdefault(_COVERAGES, []).append(Coverage.from_json(data))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """The coverage table (see ``ecemu.coverage``), when the fixtures' modems saw a command."""
    from .coverage import Coverage

    coverages: list[Coverage] = config.stash.get(_COVERAGES, [])
    total = Coverage.merged(coverages)
    if not total.seen:
        return
    terminalreporter.write_sep("=", "ecemu coverage")
    for line in total.render(title="commands the tests sent"):
        terminalreporter.write_line(line)

# --- local HTTP(S) and MQTT(S) endpoints for AT+QHTTP* and AT+QMT* -------------------------------


@pytest.fixture
def ecemu_http_server():
    """A plain HTTP server on 127.0.0.1 (``ecemu.http_server.HttpTestServer``): ``.url``,
    ``.requests`` (what it received); GET /bytes/<n> serves ``body_bytes(n)``, POST echoes."""
    from .http_server import HttpTestServer

    with HttpTestServer() as server:
        yield server


@pytest.fixture
def ecemu_https_server():
    """The same over TLS with the test PKI: ``.url`` (https://127.0.0.1:<port>), ``.ca_pem`` (the CA
    to upload for seclevel 1; the certificate names localhost and 127.0.0.1)."""
    from .http_server import HttpTestServer

    with HttpTestServer(tls=True) as server:
        yield server


@pytest.fixture
def ecemu_mqtt_broker():
    """A Mosquitto broker on 127.0.0.1 (``ecemu.mqtt_broker.MqttBroker``): ``.port`` (MQTT),
    ``.tls_port`` (MQTT over TLS, test PKI), ``.ca_pem``; the test skips without mosquitto, and
    fails instead where ``CI`` is set to true (a CI job must not pass without what it claims to test)."""
    from .mqtt_broker import BrokerUnavailable, MqttBroker

    try:
        broker = MqttBroker().start()
    except BrokerUnavailable as exc:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"{exc} (CI is set: a missing part fails)", pytrace=False)
        pytest.skip(str(exc))
    try:
        yield broker
    finally:
        broker.close()
