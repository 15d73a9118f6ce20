"""The control interface: Python API, control socket and ``ecemu ctl``, and the session trace.

Faults on the network side are tested with the SSL commands; these are the module and serial ones.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

import pytest
import serial

from ecemu.shell.trace import render
from tests.processes import RunningEmulator

CSQ = b"AT+CSQ\r\r\n+CSQ: 20,99\r\n\r\nOK\r\n"


@pytest.fixture
def modem(start_modem):
    """The emulator alone: the tests read the port with plain pyserial (``port``), timing its bytes."""
    return start_modem(host=False)[0]


@pytest.fixture
def port(modem):
    with serial.Serial(modem.port, 115200, timeout=10) as opened:
        yield opened


def test_status_reports_the_modem(modem, port):
    port.write(b"ATE0\r")
    port.read_until(b"OK\r\n")
    status = modem.control.status()
    assert status["profile"] == "EC200M-CN"
    assert status["echo"] is False and status["mode"] == "command" and status["port"] == modem.port


def test_signal_changes_csq(modem, port):
    modem.control.signal(rssi=5, ber=3)
    port.write(b"AT+CSQ\r")
    assert port.read_until(b"OK\r\n") == b"AT+CSQ\r\r\n+CSQ: 5,3\r\n\r\nOK\r\n"


def test_signal_out_of_range_is_refused_and_changes_nothing(modem, port):
    from ecemu.control import ControlError

    with pytest.raises(ControlError, match="rssi"):
        modem.control.signal(rssi=40)
    port.write(b"AT+CSQ\r")
    assert port.read_until(b"OK\r\n") == CSQ


def test_reboot_forgets_settings_and_boots_again(modem, port):
    port.write(b"ATE0\r")
    assert port.read_until(b"OK\r\n") == b"ATE0\r\r\nOK\r\n"
    modem.control.reboot()
    assert port.read_until(b"+QIND: PB DONE\r\n").endswith(
        b"\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\n+QUSIM: 1\r\n\r\n+QIND: SMS DONE\r\n\r\n+QIND: PB DONE\r\n")
    port.write(b"AT\r")
    assert port.read_until(b"OK\r\n") == b"AT\r\r\nOK\r\n"  # echo is back on


def test_freeze_holds_the_answer_and_loses_nothing(modem, port):
    modem.control.freeze(seconds=0.5)
    started = time.monotonic()
    port.write(b"AT+CSQ\r")
    port.write(b"AT+CGMR\r")
    assert port.read_until(b"OK\r\n") == CSQ
    assert time.monotonic() - started >= 0.45
    assert port.read_until(b"OK\r\n") == b"AT+CGMR\r\r\nEC200MCNLAR02A02M16\r\n\r\nOK\r\n"


def test_serial_delay_and_chunks_keep_the_bytes(modem, port):
    modem.control.serial_delay(ms=300)
    started = time.monotonic()
    port.write(b"AT+CSQ\r")
    assert port.read_until(b"OK\r\n") == CSQ
    assert time.monotonic() - started >= 0.29
    modem.control.serial_delay(ms=0)
    modem.control.serial_chunks(size=4, gap_ms=30)
    started = time.monotonic()
    port.write(b"AT+CSQ\r")
    assert port.read_until(b"OK\r\n") == CSQ
    assert time.monotonic() - started >= (len(CSQ) // 4 - 1) * 0.03 * 0.9


def test_urc_lands_between_information_and_ok(modem, port):
    modem.control.urc_in_response(text='+QIURC: "pdpdeact",1')
    port.write(b"AT\r")
    assert port.read_until(b"OK\r\n") == b"AT\r\r\nOK\r\n"  # no information text: not this one
    port.write(b"AT+CSQ\r")
    assert port.read_until(b"OK\r\n") == (
        b'AT+CSQ\r\r\n+CSQ: 20,99\r\n\r\n+QIURC: "pdpdeact",1\r\n\r\nOK\r\n')


def test_unknown_operation_and_bad_arguments_are_refused(modem):
    from ecemu.control import ControlError

    with pytest.raises(AttributeError, match="no control operation 'explode'; known: bandwidth, dtr"):
        modem.control.explode()
    with pytest.raises(TypeError, match="missing a required argument: 'rssi'"):
        modem.control.signal()
    with pytest.raises(ControlError, match="must be int"):
        modem.control.signal(rssi="strong")
    with pytest.raises(ControlError, match="must be int"):
        modem.control.signal(rssi=5.0)


def test_ctl_command_over_the_owner_only_socket_and_the_trace(tmp_path):
    trace = tmp_path / "session.jsonl"
    running = RunningEmulator("--link", str(tmp_path / "modem"), "--trace", str(trace))
    try:
        running.wait_for_boot()
        control = tmp_path / "modem.ctl"
        assert running.stdout_lines[2] == f"control: {control}"
        assert stat.S_IMODE(os.stat(control).st_mode) == 0o600
        ctl = [sys.executable, "-m", "ecemu", "ctl", "--link", str(tmp_path / "modem")]
        subprocess.run(ctl + ["signal", "rssi=9"], check=True, timeout=30)
        status = json.loads(subprocess.run(ctl + ["status"], check=True, capture_output=True, text=True,
                                           timeout=30).stdout)
        assert status["signal"] == [9, 99]
        refused = subprocess.run(ctl + ["signal", "rssi=abc"], capture_output=True, text=True, timeout=30)
        assert refused.returncode == 2 and "rssi must be int" in refused.stderr
        with serial.Serial(running.port, 115200, timeout=10) as port:
            port.write(b"AT+CSQ\r")
            assert port.read_until(b"OK\r\n") == b"AT+CSQ\r\r\n+CSQ: 9,99\r\n\r\nOK\r\n"
    finally:
        assert running.stop() == 0
    assert not control.exists()
    entries = [json.loads(line) for line in trace.read_text().splitlines()]
    kinds = [(e["kind"], e.get("line") or e.get("text") or e.get("data") or e.get("name")) for e in entries]
    assert ("fault", "signal") in kinds
    assert ("host_in", "AT+CSQ\r") in kinds
    assert ("command", "AT+CSQ") in kinds
    assert ("result", "OK") in kinds
    assert ("host_out", "AT+CSQ\r\r\n+CSQ: 9,99\r\n\r\nOK\r\n") in kinds
    assert kinds.index(("fault", "signal")) < kinds.index(("command", "AT+CSQ"))
    times = [e["t"] for e in entries]
    assert times == sorted(times)
    transcript = list(render(trace.read_text().splitlines()))
    assert any("host → module" in line and "AT+CSQ\\r" in line for line in transcript)
    shown = subprocess.run([sys.executable, "-m", "ecemu", "trace", str(trace)], check=True,
                           capture_output=True, text=True, timeout=30).stdout.splitlines()
    assert shown == transcript
