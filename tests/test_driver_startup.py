"""Real drivers' start-up and connect sequences through the real pty, every answer byte for byte.

The command lines are the ones TinyGSM's Quectel BG96 driver and hologram-python's Quectel driver
send (learnt by reading their sources; written out here as a host would send them, CR LF line
ends as both send them), in their order; the answers are what those drivers parse. Then AT+QPOWD as
a driver's power-off sends it, and the power cycle that brings the module back.
"""

from __future__ import annotations

import json
import re

import pytest

from ecemu.api import Emulator
from tests.host import AtHost, bytes_read_by_module, wait_until_read, wait_until
from tests.wire import BOOT_URCS, EC200M, OK

# Echo is on until ATE0: the echo of a line with CR LF is the line editor's business (tested with the
# editor); here only that nothing but the echoed characters comes before the answer.
ECHOED = re.compile(rb"(?:[A-Z0-9+=\r\n]*)\r\nOK\r\n")


def info(*lines: str) -> bytes:
    return b"\r\n" + b"\r\n".join(line.encode() for line in lines) + b"\r\n" + OK


@pytest.fixture
def modem(start_modem, tmp_path):
    """Traced: a test waits until the module has read what the host sent (tests/host.py)."""
    return start_modem(profile="EC200M-CN", trace=tmp_path / "trace.jsonl")


def ask(host: AtHost, line: str, final: bytes | None = None) -> bytes:
    """Send ``line`` with CR LF, as both drivers end their lines, and read its whole answer."""
    host.write(line.encode() + b"\r\n")
    return host.expect(final) if final is not None else host.until_final()


# TinyGSM's BG96 driver (TinyGsmClientBG96.h and the common headers): init(), then what a sketch
# calls next: modem name, IMEI, IMSI, CCID, SIM status, signal, registration, gprsConnect(),
# isGprsConnected(), localIP(), operator and provider, network time, temperature, battery.
TINYGSM_AFTER_ECHO_OFF = [
    ("AT+CMEE=2", OK),
    ("AT+CGMI", info("Quectel")),
    ("AT+CGMM", info("EC200M")),
    ("AT+CTZR=0", OK),
    ("AT+CTZU=1", OK),
    ("AT+CPIN?", info("+CPIN: READY")),
    ("AT+GSN", info(EC200M.imei.decode())),
    ("AT+CIMI", info(EC200M.imsi.decode())),
    ("AT+QCCID", info(f"+QCCID: {EC200M.iccid.decode()}")),
    ("AT+CSQ", info("+CSQ: 20,99")),
    ("AT+CEREG?", info("+CEREG: 0,1")),
    # gprsConnect("CMNET"): take the context down, configure, activate, attach.
    ("AT+QIDEACT=1", OK),
    ('AT+QICSGP=1,1,"CMNET","",""', OK),
    ("AT+QIACT=1", OK),
    ("AT+CGATT=1", OK),
    # isGprsConnected(): attached, and an address that is not 0.0.0.0.
    ("AT+CGATT?", info("+CGATT: 1")),
    ("AT+CGPADDR=1", info('+CGPADDR: 1,"10.7.157.1"')),
    ("AT+COPS?", info('+COPS: 0,0,"CHINA MOBILE",7')),
    ("AT+QSPN", info('+QSPN: "CHINA MOBILE","CMCC","",0,"46000"')),
    ("AT+QTEMP", info("+QTEMP: 33,31,32")),
    ("AT+CBC", info("+CBC: 0,75,3800")),
    ("AT+QIDEACT=1", OK),
    ("AT+CGPADDR=1", info("+CGPADDR: 1")),
]


def test_tinygsm_bg96_driver_start_up_and_connect(modem):
    _, host = modem
    assert ECHOED.fullmatch(ask(host, "AT"))  # testAT()
    assert ECHOED.fullmatch(ask(host, "ATE0"))
    for line, answer in TINYGSM_AFTER_ECHO_OFF:
        assert ask(host, line) == answer, line
    # getGSMDateTime(): AT+QLTS=2 answers the local time, "yyyy/MM/dd,hh:mm:ss±zz,dst".
    assert re.fullmatch(rb'\r\n\+QLTS: "\d{4}/\d\d/\d\d,\d\d:\d\d:\d\d\+00,0"\r\n' + re.escape(OK),
                        ask(host, "AT+QLTS=2"))
    assert host.unasked() == b""


# hologram-python's Quectel driver (Modem.init_serial_commands, Quectel.set_network_registration_
# status, the identity properties, _set_up_pdp_context). It writes "AT<cmd>=" and "<value>\r\n" in
# two writes.
HOLOGRAM_AFTER_ECHO_OFF = [
    (("AT+CMEE=", "2"), OK),
    (("AT+CPIN?",), info("+CPIN: READY")),
    (("AT+CTZU=", "1"), OK),
    (("AT+CTZR=", "1"), OK),
    (("AT+CPMS=", '"ME","ME","ME"'), info("+CPMS: 0,50,0,50,0,50")),
    (("AT+CMGF=", "0"), OK),
    (("AT+CNMI=", "2,1"), OK),
    (("AT+CREG=", "2"), OK),
    (("AT+CEREG=", "2"), OK),
    (("AT+CIMI",), info(EC200M.imsi.decode())),
    (("AT+CCID",), info(f"+CCID: {EC200M.iccid.decode()}")),
    (("AT+CGMM",), info("EC200M")),
    (("AT+CSQ",), info("+CSQ: 20,99")),
    (("AT+COPS?",), info('+COPS: 0,0,"CHINA MOBILE",7')),
    (("AT+CREG?",), info('+CREG: 2,1,"5A0B","0A1B2C3D",7')),
    (("AT+QIACT?",), OK),
    (("AT+QICSGP=", '1,1,"hologram","","",1'), OK),
    (("AT+QIACT=", "1"), OK),
    (("AT+QIACT?",), info('+QIACT: 1,1,1,"10.7.157.1"')),
]


def test_hologram_quectel_driver_start_up(modem):
    _, host = modem
    assert ECHOED.fullmatch(ask(host, "ATE0"))
    for parts, answer in HOLOGRAM_AFTER_ECHO_OFF:
        if len(parts) == 2:
            host.write(parts[0].encode())
            host.write(parts[1].encode() + b"\r\n")
            got = host.until_final()
        else:
            got = ask(host, parts[0])
        assert got == answer, parts
    assert host.unasked() == b""


def test_powered_down_until_a_power_cycle(modem):
    emulator, host = modem
    assert ECHOED.fullmatch(ask(host, "ATE0"))
    # TinyGSM's poweroff(): OK first, then POWERED DOWN.
    assert ask(host, "AT+QPOWD=1", final=b"POWERED DOWN\r\n") == OK + b"\r\nPOWERED DOWN\r\n"
    # The module turns off just after POWERED DOWN; what reaches it before is lost with its UART.
    wait_until(lambda: emulator.control.status()["mode"] == "off", "the module off")
    sent = bytes_read_by_module(emulator.trace) + 4
    host.write(b"AT\r\n")
    wait_until_read(emulator.trace, sent)  # read while the module is off: never answered
    emulator.control.reboot()
    assert host.expect(b"+QIND: PB DONE\r\n") == BOOT_URCS
    assert ECHOED.fullmatch(ask(host, "AT"))
    assert host.unasked() == b""


def test_the_trace_tells_an_unknown_command_from_a_known_one_failing(tmp_path):
    trace = tmp_path / "trace.jsonl"
    with Emulator(profile="EC200M-CN", ufs=tmp_path / "ufs", trace=trace) as emulator:
        emulator.wait_for_boot()
        with AtHost(emulator.port) as host:
            assert ECHOED.fullmatch(ask(host, "ATE0"))
            assert ask(host, "AT+QGPS=1") == b"\r\nERROR\r\n"
            assert ask(host, "AT+CSQ=1") == b"\r\nERROR\r\n"
    entries = [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]
    assert [e["name"] for e in entries if e["kind"] == "unknown"] == ["+QGPS"]
    results = [e["text"] for e in entries if e["kind"] == "result"]
    assert results[-2:] == ["ERROR", "ERROR"]
