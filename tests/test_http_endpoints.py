"""The local HTTP(S) and MQTT(S) endpoints users get: the README's example with the pytest plugin's
fixtures, and `ecemu http-server` / `ecemu mqtt-broker` from the command line."""

from __future__ import annotations

import ssl
import subprocess
import sys
import urllib.request


from ecemu.http_server import body_bytes
from tests.mqtt_peer import Peer
from tests.parts import require
from tests.readme_blocks import example


def test_the_readme_http_mqtt_example_passes_with_only_the_plugin(pytester):
    require("mosquitto")
    pytester.makepyfile(test_from_readme=example("http-mqtt"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(passed=1)


def _announced(process: subprocess.Popen, keys: set[str]) -> dict[str, str]:
    lines: dict[str, str] = {}
    assert process.stdout is not None
    while not keys <= lines.keys():
        line = process.stdout.readline()  # bounded: the command prints at once, or dies (EOF)
        if not line:
            raise AssertionError(f"exited early: {process.stderr.read() if process.stderr else ''}")
        key, _, value = line.strip().partition(": ")
        lines[key] = value
    return lines


def _run(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ecemu", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_ecemu_http_server_serves_http_and_https(tmp_path):
    process = _run("http-server", "--port", "0", "--tls-port", "0", "--ca", str(tmp_path / "ca.pem"))
    try:
        urls = _announced(process, {"http", "https", "ca"})
        with urllib.request.urlopen(urls["http"] + "/bytes/5000", timeout=10) as answer:
            assert answer.read() == body_bytes(5000)
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        with urllib.request.urlopen(urls["https"] + "/hello", timeout=10, context=context) as answer:
            assert answer.read() == b"Hello from ecemu: /hello\n"
    finally:
        process.terminate()
        process.wait(10)


def test_ecemu_mqtt_broker_runs_mosquitto():
    require("mosquitto")
    process = _run("mqtt-broker", "--port", "0", "--tls-port", "0")
    try:
        announced = _announced(process, {"mqtt", "mqtts"})
        port = int(announced["mqtt"].rsplit(":", 1)[1])
        peer = Peer(port, "cli-check")
        peer.subscribe("x/y", 1)
        peer.publish("x/y", b"round trip", qos=1, packet_id=3)
        assert peer.messages(1)[0].payload == b"round trip"
        peer.close()
    finally:
        process.terminate()
        assert process.wait(10) == 0  # the broker went with it
