"""The module's control lines (REFERENCE.md "Control lines"): RI pulses for URCs as AT+QCFG's
"urc/ri/..." settings say, DCD per AT&C, DSR while powered, CTS and RTS per AT+IFC, DTR per AT&D
and AT+QSCLK's sleep. The core on a clock of the test's choosing first (widths exact to the
millisecond), then end to end through the control interface, RFC 2217 and the trace."""

from __future__ import annotations

import json
import threading
import time

import pytest
import serial

from ecemu.core import events as ev
from ecemu.core.uart import LineLevel, TransmitHold
from tests.harness import CoreHarness
from tests.host import AtHost, bytes_read_by_module, wait_until_read
from tests.plain_servers import TcpEchoServer
from tests.wire import OK

WAIT = 15.0
PDP_DROP = b'+QIURC: "pdpdeact",1'


def levels(h: CoreHarness) -> list[tuple[str, bool]]:
    return [(c.line, c.active) for c in h.take_port_changes() if isinstance(c, LineLevel)]


def ri_edges(h: CoreHarness, seconds: float, step: float = 0.001) -> list[tuple[int, bool]]:
    """RI's changes over ``seconds``, as (milliseconds from now, active), a millisecond at a time."""
    edges = []
    start = h.now
    for tick in range(round(seconds / step) + 1):
        h.now = start + tick * step
        h.modem.tick(h.now)
        edges += [(round((h.now - start) * 1000), active) for line, active in levels(h) if line == "ri"]
    return edges


@pytest.fixture
def h() -> CoreHarness:
    harness = CoreHarness(keep_port_changes=True)
    harness.take_port_changes()
    return harness


# --- RI ------------------------------------------------------------------------------------------


def urc(h: CoreHarness, text: bytes | str = PDP_DROP) -> None:
    """A URC now (what the host receives of it is not these tests' concern)."""
    h.modem.emit_urc(text)
    h.take_output()


def test_a_urc_pulses_ri_for_120_ms_by_default(h):
    """AT+QCFG="urc/ri/other" defaults to "pulse" with <pulseduration> 120 ms (Quectel AT manual)."""
    urc(h)
    assert ri_edges(h, 0.3) == [(0, True), (120, False)]


def test_the_boot_urcs_pulse_ri_too():
    """RDY and the other boot URCs are URCs: each pulses RI (chosen), as a host that sleeps until RI
    wakes it expects of a module that starts."""
    h = CoreHarness(boot=False, keep_port_changes=True)  # powered on now: RDY at 0 ms ... +QIND: PB DONE at 350 ms
    # A URC during a pulse starts its pulse afresh: RI stays on (chosen), 120 ms after the last.
    assert ri_edges(h, 0.6) == [(0, True), (180, False), (300, True), (470, False)]
    assert h.modem.lines.ri_pulses == 5


def test_the_pulse_width_and_count_follow_urc_ri_other(h):
    assert h.command('AT+QCFG="urc/ri/other","pulse",50,3') == OK
    before = h.modem.lines.ri_pulses
    urc(h)
    # Three pulses of 50 ms, each followed by as long inactive (chosen: no gap is documented).
    assert ri_edges(h, 0.5) == [(0, True), (50, False), (100, True), (150, False), (200, True), (250, False)]
    assert h.modem.lines.ri_pulses - before == 3


def test_off_leaves_ri_alone_and_always_holds_it_until_qrir(h):
    assert h.command('AT+QCFG="urc/ri/other","off"') == OK
    urc(h)
    assert ri_edges(h, 0.3) == []
    assert h.command('AT+QCFG="urc/ri/smsincoming","always"') == OK  # "other" has off and pulse only
    urc(h, '+CMTI: "SM",2')
    assert ri_edges(h, 2.0) == [(0, True)]
    assert h.command("AT+QRIR") == OK
    assert levels(h) == [("ri", False)]


def test_sms_urcs_follow_urc_ri_smsincoming_and_ring_follows_urc_ri_ring(h):
    assert h.command('AT+QCFG="urc/ri/smsincoming","pulse",300,1') == OK
    assert h.command('AT+QCFG="urc/ri/other","off"') == OK
    urc(h, '+CMTI: "SM",1')
    assert ri_edges(h, 0.5) == [(0, True), (300, False)]
    assert h.command('AT+QCFG="urc/ri/ring","pulse",40') == OK
    urc(h, "RING")
    assert ri_edges(h, 0.1) == [(0, True), (40, False)]


def test_a_held_urc_pulses_ri_when_it_comes_not_when_it_is_said(h):
    """The PPP note: RI changes for a URC even while data mode holds it back."""
    conn = _online(h)
    h.modem.emit_urc(PDP_DROP)
    assert ri_edges(h, 0.2) == [(0, True), (120, False)]
    assert h.take_output() == b""  # the URC itself waits for command mode
    h.event(ev.TcpClosed(conn))


def test_the_qcfg_ri_settings_read_back_and_a_reboot_restores_them(h):
    assert h.command('AT+QCFG="urc/ri/other","pulse",500,2') == OK
    assert h.command('AT+QCFG="urc/ri/other"') == b'\r\n+QCFG: "urc/ri/other","pulse",500,2\r\n' + OK
    h.modem.reboot()
    h.advance(5.0)
    h.take_port_changes()
    h.command("ATE0")
    urc(h)
    assert ri_edges(h, 0.3) == [(0, True), (120, False)]


# --- DCD, DSR, CTS, RTS ---------------------------------------------------------------------------


def _online(h: CoreHarness) -> int:
    """Transparent mode on a TCP connection (AT+QIOPEN access mode 2): the port is a data connection."""
    assert h.command("AT+QIACT=1") == OK
    assert h.command('AT+QIOPEN=1,0,"TCP","192.0.2.7",8009,0,2') == b""
    opening = next(e for e in h.take_effects() if isinstance(e, ev.OpenTcp))
    assert h.event(ev.TcpConnected(opening.conn_id, "192.0.2.7", 8009, 65344)) == b"\r\nCONNECT\r\n"
    return opening.conn_id


def test_dcd_follows_the_data_connection_with_at_and_c1_and_stays_on_with_c0(h):
    assert h.modem.lines.outputs["dcd"] is False  # &C1 (the default), command mode
    conn = _online(h)
    assert levels(h) == [("dcd", True)]
    h.event(ev.TcpClosed(conn))  # NO CARRIER: command mode again
    assert levels(h) == [("dcd", False)]
    assert h.command("AT&C0") == OK
    assert levels(h) == [("dcd", True)]
    assert h.command("AT&C1") == OK
    assert levels(h) == [("dcd", False)]


def test_dsr_and_cts_are_on_while_powered_and_off_after_qpowd(h):
    assert {k: h.modem.lines.outputs[k] for k in ("dsr", "cts")} == {"dsr": True, "cts": True}
    assert h.command("AT+QPOWD").startswith(OK)
    h.advance(1.0)
    changes = levels(h)  # POWERED DOWN pulses RI first
    assert ("dsr", False) in changes and ("cts", False) in changes
    assert not any(h.modem.lines.outputs.values())


def test_cts_drops_only_with_hardware_flow_control_when_the_input_is_full(h):
    h.modem.set_input_full(True, h.now)
    assert levels(h) == []  # AT+IFC=0,0: CTS stays on
    assert h.command("AT+IFC=2,2") == OK
    assert levels(h) == [("cts", False)]
    h.modem.set_input_full(False, h.now)
    assert levels(h) == [("cts", True)]


def test_rts_off_holds_the_modules_output_only_with_at_ifc_2_2(h):
    h.modem.set_rts(False, h.now)
    assert [c for c in h.take_port_changes() if isinstance(c, TransmitHold)] == []
    assert h.command("AT+IFC=2,2") == OK
    assert [c for c in h.take_port_changes() if isinstance(c, TransmitHold)] == [TransmitHold(True)]
    h.modem.set_rts(True, h.now)
    assert [c for c in h.take_port_changes() if isinstance(c, TransmitHold)] == [TransmitHold(False)]


# --- DTR: AT&D and the data entry ------------------------------------------------------------------


def test_with_at_and_d0_a_host_lost_at_the_prompt_leaves_the_data_entry_going(h):
    """V.250 &D0: the module ignores DTR, so a host closing the port changes nothing; the next host
    finishes the data and gets SEND OK."""
    assert h.command("AT&D0") == OK
    assert h.command("AT+QIACT=1") == OK
    assert h.command('AT+QIOPEN=1,0,"TCP","192.0.2.7",8009,0,0') == OK
    opening = next(e for e in h.take_effects() if isinstance(e, ev.OpenTcp))
    h.event(ev.TcpConnected(opening.conn_id, "192.0.2.7", 8009, 65344))
    assert h.command("AT+QISEND=0,5") == b"\r\n> "
    assert h.send(b"he") == b""
    h.modem.set_dtr(False, h.now)
    h.modem.host_lost(h.now)
    h.modem.set_dtr(True, h.now)
    assert h.send(b"llo") == b"\r\nSEND OK\r\n"
    assert [e.data for e in h.take_effects() if isinstance(e, ev.SendTcp)] == [b"hello"]


def test_with_at_and_d2_a_host_lost_at_the_prompt_ends_the_data_entry(h):
    assert h.command("AT+QIACT=1") == OK
    assert h.command('AT+QIOPEN=1,0,"TCP","192.0.2.7",8009,0,0') == OK
    opening = next(e for e in h.take_effects() if isinstance(e, ev.OpenTcp))
    h.event(ev.TcpConnected(opening.conn_id, "192.0.2.7", 8009, 65344))
    assert h.command("AT+QISEND=0,5") == b"\r\n> "
    h.send(b"he")
    h.modem.set_dtr(False, h.now)
    h.modem.host_lost(h.now)
    h.take_output()
    assert h.command("AT") == OK  # command mode for the next host
    assert [e for e in h.take_effects() if isinstance(e, ev.SendTcp)] == []


# --- AT+QSCLK ------------------------------------------------------------------------------------


def test_qsclk_1_sleeps_while_dtr_is_off_losing_input_holding_urcs(h):
    assert h.command("AT+QSCLK=1") == OK
    assert not h.modem.lines.asleep  # DTR is on
    h.modem.set_dtr(False, h.now)
    assert h.modem.lines.asleep
    assert h.command("AT") == b""  # the UART is off: lost, not answered later
    h.modem.emit_urc(PDP_DROP)
    assert h.take_output() == b""  # waits for the host
    assert [e for e in levels(h) if e[0] == "ri"] == [("ri", True)]  # RI says a URC is there
    h.modem.set_dtr(True, h.now)
    assert not h.modem.lines.asleep
    assert h.take_output() == b"\r\n" + PDP_DROP + b"\r\n"
    assert h.command("AT") == OK
    assert h.modem.input_backlog == 0


def test_qsclk_sleep_waits_until_the_module_has_nothing_to_do_and_qsclk_0_wakes(h):
    assert h.command("AT+QSCLK=1") == OK
    assert h.command("AT+QIACT=1") == OK
    assert h.command('AT+QIOPEN=1,0,"TCP","192.0.2.7",8009,0,2') == b""  # waits for the connection
    opening = next(e for e in h.take_effects() if isinstance(e, ev.OpenTcp))
    h.modem.set_dtr(False, h.now)
    assert not h.modem.lines.asleep  # a command runs
    assert h.event(ev.TcpConnected(opening.conn_id, "192.0.2.7", 8009, 65344)) == b"\r\nCONNECT\r\n"
    assert not h.modem.lines.asleep  # transparent mode
    assert h.event(ev.TcpClosed(opening.conn_id)) == b"\r\nNO CARRIER\r\n"
    assert h.modem.lines.asleep  # command mode, nothing running
    assert h.command("AT+QSCLK=0") == b""  # lost: asleep
    h.modem.set_dtr(True, h.now)
    assert h.command("AT+QSCLK=0") == OK
    h.modem.set_dtr(False, h.now)
    assert not h.modem.lines.asleep
    assert h.command("AT") == OK


def test_qsclk_0_never_sleeps(h):
    h.modem.set_dtr(False, h.now)
    assert not h.modem.lines.asleep
    assert h.command("AT") == OK


# --- end to end: the control interface, RFC 2217, the trace ---------------------------------------


@pytest.fixture
def modem(start_modem, tmp_path):
    """The emulator alone, traced: these tests open and close the port themselves."""
    return start_modem(trace=tmp_path / "trace.jsonl", host=False)[0]


def test_lines_reports_every_line_after_boot(modem):
    with AtHost(modem.port):
        deadline = time.monotonic() + WAIT
        while (lines := modem.control.lines())["ri"]:  # the last boot URC's pulse
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert lines == {"ri": False, "dcd": False, "cts": True, "dsr": True, "dtr": True, "rts": True,
                         "asleep": False, "ri_pulses": 5, "last_ri_pulse_ms": lines["last_ri_pulse_ms"]}
        assert lines["last_ri_pulse_ms"] >= 120


def test_wait_ri_returns_the_width_of_the_pulse_a_urc_gives(modem, tmp_path):
    with AtHost(modem.port) as host:
        host.ask("ATE0")
        assert host.ask('AT+QCFG="urc/ri/other","pulse",2000,1').endswith(OK)
        assert host.ask("AT+QIACT=1").endswith(OK)
        modem.control.pdp_drop(context=1)  # +QIURC: "pdpdeact",1: RI active for 2 s from now
        assert modem.control.wait_ri(seconds=WAIT)["width_ms"] >= 2000
        host.expect(PDP_DROP)
    lines = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    ri = [(e["active"], e["by"]) for e in lines if e["kind"] == "line" and e["name"] == "ri"]
    assert ri[-2:] == [(True, "module"), (False, "module")]  # after the boot URCs' pulses


def test_wait_ri_without_a_pulse_says_so(modem):
    from ecemu.control import ControlError

    with pytest.raises(ControlError, match="no RI pulse ended within 0.05 s"):
        modem.control.wait_ri(seconds=0.05)


def test_dcd_through_the_control_interface_in_transparent_mode(modem):
    with TcpEchoServer() as server, AtHost(modem.port) as host:
        host.ask("ATE0")
        host.ask("AT+QIACT=1")
        host.ask(f'AT+QIOPEN=1,0,"TCP","127.0.0.1",{server.port},0,2', final=b"CONNECT\r\n")
        assert modem.control.lines()["dcd"] is True
        modem.control.dtr(active=False)  # AT&D2 (the default): leave and close
        host.expect(b"NO CARRIER\r\n")
        assert modem.control.lines()["dcd"] is False
        modem.control.dtr(active=True)


def test_rts_off_holds_answers_and_rts_on_delivers_them_all_in_order(modem):
    with AtHost(modem.port) as host:
        host.ask("ATE0")
        assert host.ask("AT+IFC=2,2").endswith(OK)
        modem.control.rts(active=False)
        host.write(b"AT+CGMI\rAT+CGMM\r")
        # Held in the module, not lost. No AT can be answered while RTS is off, so this is a look
        # of fixed length: a leak it misses would show as the wrong order below, never as a flake.
        assert host.idle(0.3) == b""
        modem.control.rts(active=True)
        assert host.until_final() == b"\r\nQuectel\r\n" + OK
        assert host.until_final().endswith(OK)
        assert host.unasked() == b""


def test_cts_goes_off_while_a_frozen_module_s_input_is_full(modem):
    with AtHost(modem.port) as host:
        host.ask("ATE0")
        assert host.ask("AT+IFC=2,2").endswith(OK)
        modem.control.freeze(seconds=30)
        host.write(b"AT\r")
        deadline = time.monotonic() + WAIT
        while modem.control.lines()["cts"]:
            assert time.monotonic() < deadline, "CTS stayed on"
            time.sleep(0.01)
        modem.control.reboot()  # a frozen module that reboots runs again
        deadline = time.monotonic() + WAIT
        while not modem.control.lines()["cts"]:
            assert time.monotonic() < deadline, "CTS stayed off"
            time.sleep(0.01)


def test_qsclk_sleep_through_the_control_interface(modem):
    with AtHost(modem.port) as host:
        host.ask("ATE0")
        assert host.ask("AT+QSCLK=1").endswith(OK)
        modem.control.dtr(active=False)
        assert modem.control.lines()["asleep"] is True
        sent = bytes_read_by_module(modem.trace) + 3
        host.write(b"AT\r")  # lost: the UART sleeps
        wait_until_read(modem.trace, sent)
        modem.control.dtr(active=True)
        assert modem.control.lines()["asleep"] is False
        assert host.ask("AT") == OK
        assert host.unasked() == b""  # the lost AT was never answered, early or late


def test_with_at_and_d0_a_host_closing_the_pty_at_the_prompt_does_not_end_the_send(modem):
    with TcpEchoServer() as server:
        with AtHost(modem.port) as first:
            first.ask("ATE0")
            first.ask("AT&D0")
            first.ask("AT+QIACT=1")
            first.ask(f'AT+QIOPEN=1,0,"TCP","127.0.0.1",{server.port},0,1', final=b"+QIOPEN: 0,0\r\n")
            first.ask("AT+QISEND=0,5", final=b"> ")
            first.write(b"he")
            first.idle(0.2)
        with AtHost(modem.port) as second:
            second.write(b"llo")
            assert second.expect(b"SEND OK\r\n") == b"\r\nSEND OK\r\n"
            assert second.expect(b"hello\r\n").endswith(b'+QIURC: "recv",0,5\r\nhello\r\n')


def test_fast_toggling_lines_leave_the_module_answering(modem):
    """DTR and RTS flipping as fast as a host can flip them, with AT&D1, AT+IFC=2,2 and AT+QSCLK=1
    in force: the module keeps running and answers once the lines settle."""
    with AtHost(modem.port) as host:
        host.ask("ATE0")
        for line in ("AT&D1", "AT+IFC=2,2", "AT+QSCLK=1"):
            assert host.ask(line).endswith(OK)
        flips = threading.Thread(target=lambda: [
            (modem.control.dtr(active=bool(i % 2)), modem.control.rts(active=bool(i % 3))) for i in range(300)])
        flips.start()
        flips.join(WAIT * 4)
        modem.control.dtr(active=True)
        modem.control.rts(active=True)
        host.idle(0.2)
        assert host.ask("AT") == OK


def test_rfc2217_clients_hear_of_the_module_lines(tmp_path):
    from tests.processes import RunningEmulator

    running = RunningEmulator("--tcp", "127.0.0.1:0", "--ufs", str(tmp_path / "ufs"))
    try:
        port = serial.serial_for_url(running.port, timeout=WAIT)
        try:
            port.read_until(b"+QIND: PB DONE\r\n")
            deadline = time.monotonic() + WAIT
            while not (port.dsr and port.cts) or port.cd:
                assert time.monotonic() < deadline, "never told DSR and CTS on, DCD off"
                time.sleep(0.01)
            port.write(b"AT&C0\r")
            assert port.read_until(b"OK\r\n").endswith(b"OK\r\n")
            while not port.cd:
                assert time.monotonic() < deadline, "never told DCD on after AT&C0"
                time.sleep(0.01)
        finally:
            port.close()
    finally:
        assert running.stop() == 0


def test_the_trace_and_its_html_show_the_line_changes(modem, tmp_path):
    from ecemu.shell.trace import read_entries
    from ecemu.trace_html import render_html

    with AtHost(modem.port) as host:
        host.ask("AT&C0")
        modem.control.dtr(active=False)
        modem.control.dtr(active=True)
    entries = list(read_entries((tmp_path / "trace.jsonl").read_text().splitlines()))
    changes = [(e["name"], e["active"], e["by"]) for e in entries if e["kind"] == "line"]
    assert ("dcd", True, "module") in changes
    dcd_on = changes.index(("dcd", True, "module"))
    assert changes[dcd_on + 1:dcd_on + 3] == [("dtr", False, "host"), ("dtr", True, "host")]
    page = render_html(entries)
    assert "DCD on" in page and "DTR off" in page and "DTR on" in page
