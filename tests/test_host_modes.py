"""The host mode machine (``core/host_modes.py``) on a modem driven by the core harness: the boot,
power off, the DTR line in transparent mode, data and wait modes, and the bytes held meanwhile."""

from __future__ import annotations

import pytest

from ecemu.core.host_modes import HOST_MODES, HostMode
from ecemu.core.lifecycle import IllegalTransition
from ecemu.core.results import CONNECT, NO_CARRIER, OK
from tests.harness import CoreHarness


class RecordingSession:
    """A transparent session that keeps what it is given: the OnlineSession protocol, nothing else."""

    def __init__(self, ready: bool = True):
        self.ready = ready
        self.fed: list[bytes] = []
        self.calls: list[str] = []

    def entered(self, modem) -> None:
        self.calls.append("entered")

    def ready_for_host(self) -> bool:
        return self.ready

    def feed_host(self, modem, data: bytes) -> None:
        self.fed.append(data)

    def leave(self, modem) -> None:
        self.calls.append("leave")
        modem.host.leave_online(OK)

    def hang_up(self, modem) -> None:
        self.calls.append("hang_up")
        modem.host.leave_online(NO_CARRIER)


def online(h: CoreHarness, session: RecordingSession) -> None:
    h.modem.host.finish_line(CONNECT, session)
    h.modem.take_host_bytes()
    assert h.modem.host.mode is HostMode.ONLINE and session.calls == ["entered"]


def test_power_off_is_allowed_from_every_mode_and_nothing_else_leaves_off():
    for mode in HostMode:
        assert HOST_MODES.next(mode, "power_off") is HostMode.OFF
    for event in ("booted", "line_done", "wait", "take_data", "connect", "resume", "leave"):
        with pytest.raises(IllegalTransition):
            HOST_MODES.next(HostMode.OFF, event)


def test_bytes_sent_while_booting_wait_and_run_after_rdy():
    h = CoreHarness(boot=False)
    assert h.modem.host.mode is HostMode.BOOTING and not h.modem.booted
    h.modem.host.receive(b"ATE0\rAT\r")  # before the first tick: RDY is not out yet
    assert h.modem.take_host_bytes() == b"" and h.modem.input_backlog == 8
    out = h.advance(5.0)
    assert out.startswith(b"\r\nRDY\r\nATE0\r\r\nOK\r\n\r\nOK\r\n\r\n+CPIN: READY\r\n")
    assert h.modem.host.mode is HostMode.COMMAND and h.modem.booted and h.modem.input_backlog == 0


def test_powered_off_every_host_byte_is_lost_until_the_reboot(h):
    h.modem.power_off()
    assert h.modem.host.mode is HostMode.OFF
    assert h.command("AT") == b"" and h.modem.input_backlog == 0
    h.modem.reboot()
    assert h.modem.host.mode is HostMode.BOOTING
    h.advance(5.0)
    assert h.modem.host.mode is HostMode.COMMAND and h.command("AT") == b"AT\r\r\nOK\r\n"  # echo is back on


def test_online_the_host_bytes_go_to_the_session_and_wait_for_its_flow_control(h):
    session = RecordingSession(ready=False)
    online(h, session)
    assert h.send(b"AT\r") == b"" and session.fed == [] and h.modem.input_backlog == 3
    session.ready = True
    h.modem.host.process_input()
    assert session.fed == [b"AT\r"] and h.modem.input_backlog == 0


@pytest.mark.parametrize(("dtr_mode", "call", "answer"), [
    (0, None, b""),
    (1, "leave", b"\r\nOK\r\n"),
    (2, "hang_up", b"\r\nNO CARRIER\r\n"),
])
def test_a_dtr_drop_online_does_what_at_and_d_says(h, dtr_mode, call, answer):
    assert h.command(f"AT&D{dtr_mode}") == b"\r\nOK\r\n"
    session = RecordingSession()
    online(h, session)
    h.modem.set_dtr(False, h.now)
    assert session.calls[1:] == ([call] if call else [])
    assert h.modem.take_host_bytes() == answer
    assert h.modem.host.mode is (HostMode.ONLINE if call is None else HostMode.COMMAND)


def test_a_dtr_drop_in_command_mode_changes_no_mode(h):
    h.modem.set_dtr(False, h.now)
    assert h.modem.host.mode is HostMode.COMMAND and not h.modem.dtr
    h.modem.set_dtr(True, h.now)
    assert h.command("AT") == b"\r\nOK\r\n"


def test_leaving_online_runs_the_urcs_held_meanwhile_then_the_waiting_lines(h):
    session = RecordingSession(ready=False)
    online(h, session)
    h.modem.emit_urc("+TEST: held")
    assert h.modem.take_host_bytes() == b""
    h.modem.host.take_input()  # the host's bytes of the connection go with it
    h.modem.host.leave_online(OK)
    assert h.modem.take_host_bytes() == b"\r\nOK\r\n\r\n+TEST: held\r\n"
    assert h.command("AT") == b"\r\nOK\r\n"


def test_the_port_takes_command_lines_one_at_a_time_and_data_whole(h):
    lines = b"AT\r\nATI\r\nAT+CSQ\r\n"
    assert h.modem.input_wanted(lines) == 4  # "AT" CR LF, then the next line
    assert h.command('AT+QFUPL="f.txt",12') == b"\r\nCONNECT\r\n"
    assert h.modem.input_wanted(lines) == len(lines)  # data after CONNECT: all of it
