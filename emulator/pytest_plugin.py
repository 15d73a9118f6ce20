"""pytest plugin (registered by entry point): a fresh emulated modem per test and a local TLS
echo server, so host-side tests need no code of their own to get a modem and a server.

    def test_my_driver(ecemu_modem, ecemu_tls_server):
        port = serial.Serial(ecemu_modem.port, 115200, timeout=5)
        ...  # upload ecemu_tls_server.ca_pem, AT+QSSLOPEN to 127.0.0.1:ecemu_tls_server.port

Choose the module with ``@pytest.mark.ecemu_profile("EC800N-CN")`` or ``--ecemu-profile``, and
the certificate the server presents with ``@pytest.mark.ecemu_cert("expired")`` or, for several,
``@pytest.mark.parametrize("ecemu_tls_server", ["expired", "selfsigned"], indirect=True)``.

``@pytest.mark.ecemu_replay("field.log")`` makes ``ecemu_modem`` a replay of a recorded session
(``ecemu.replay``; the path is relative to the test's file): the module answers as the log's did,
and the test fails with the report when the host departs from the log, or stops before the log's
last host line (``complete=False`` allows that). ``on_divergence="emulate"`` carries on as the
emulated module instead of failing.
"""

from __future__ import annotations

import pytest

from ecemu.profile import DEFAULT_PROFILE


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ecemu")
    group.addoption("--ecemu-profile", default=DEFAULT_PROFILE,
                    help=f"module profile for the ecemu_modem fixture (default {DEFAULT_PROFILE})")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ecemu_profile(name): the module profile ecemu_modem emulates")
    config.addinivalue_line("markers", "ecemu_cert(name): the certificate ecemu_tls_server presents "
                                       "(rsa, ecdsa, expired, notyet, wronghost, badsig, otherca, selfsigned)")
    config.addinivalue_line("markers", "ecemu_replay(log, on_divergence='stop', complete=True, profile=None): "
                                       "ecemu_modem replays a recorded session (the path relative to the test file)")


@pytest.fixture
def ecemu_modem(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A running emulator (``ecemu.api.Emulator``) with its own UFS, booted, stopped after the test.

    ``.port`` is the device path; ``.control`` injects faults; ``.ufs`` is its file storage.
    """
    from ecemu.api import Emulator

    replay = request.node.get_closest_marker("ecemu_replay")
    if replay is not None:
        yield from _replayed_modem(request, replay)
        return
    marker = request.node.get_closest_marker("ecemu_profile")
    profile = marker.args[0] if marker else request.config.getoption("--ecemu-profile")
    with Emulator(profile=profile, ufs=tmp_path_factory.mktemp("ufs")) as modem:
        modem.wait_for_boot()
        yield modem


def _replayed_modem(request: pytest.FixtureRequest, marker: pytest.Mark):
    """``ecemu_modem`` under ``@pytest.mark.ecemu_replay(LOG, ...)``: the log's module side."""
    from pathlib import Path

    from ecemu.replay import DIVERGENCE_MODES, Replay
    from ecemu.sessionlog import LogError

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
    try:
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
    from ecemu.echo_server import SERVER_CERTIFICATES, TlsEchoServer

    marker = request.node.get_closest_marker("ecemu_cert")
    cert = getattr(request, "param", None) or (marker.args[0] if marker else "rsa")
    if cert not in SERVER_CERTIFICATES:
        pytest.fail(f"ecemu_tls_server: no certificate {cert!r}; known: {', '.join(SERVER_CERTIFICATES)}",
                    pytrace=False)
    with TlsEchoServer(cert=cert) as server:
        yield server


# --- the coverage summary: what the tests' host code used of the modems the fixtures made ----

_COVERAGES = pytest.StashKey[list]()


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest):
    """Every emulator a fixture of this plugin yields is observed from then on."""
    outcome = yield
    if fixturedef.func.__module__ != __name__ or outcome.excinfo is not None:
        return
    from ecemu.api import Emulator
    from ecemu.coverage import Coverage

    value = outcome.get_result()
    for emulator in value if isinstance(value, (list, tuple)) else [value]:
        if isinstance(emulator, Emulator):
            coverage = Coverage()
            emulator.call(lambda runner: coverage.attach(runner.modem))
            request.config.stash.setdefault(_COVERAGES, []).append(coverage)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """The coverage table (see ``ecemu.coverage``), when the fixtures' modems saw a command."""
    from ecemu.coverage import Coverage

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
    from ecemu.http_server import HttpTestServer

    with HttpTestServer() as server:
        yield server


@pytest.fixture
def ecemu_https_server():
    """The same over TLS with the test PKI: ``.url`` (https://127.0.0.1:<port>), ``.ca_pem`` (the CA
    to upload for seclevel 1; the certificate names localhost and 127.0.0.1)."""
    from ecemu.http_server import HttpTestServer

    with HttpTestServer(tls=True) as server:
        yield server


@pytest.fixture
def ecemu_mqtt_broker():
    """A Mosquitto broker on 127.0.0.1 (``ecemu.mqtt_broker.MqttBroker``): ``.port`` (MQTT),
    ``.tls_port`` (MQTT over TLS, test PKI), ``.ca_pem``; the test skips without mosquitto."""
    from ecemu.mqtt_broker import BrokerUnavailable, MqttBroker

    try:
        broker = MqttBroker().start()
    except BrokerUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield broker
    finally:
        broker.close()
