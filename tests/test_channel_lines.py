"""The control lines and the UART with channels: the serial line's lines and rate are the port's,
under AT+CMUX too, and each DLC's V.24 signals travel in MSC messages (27.010 5.4.6.3.7: FC 0x02,
RTC 0x04, RTR 0x08, IC 0x40, DV 0x80 after the EA bit 0x01) consistent with them: IC pulses with
RI for a URC the DLC carries, DV follows the DLC's own AT&C and data state. A PPP call on the bare
port shows DCD from CONNECT until it ends and honours AT&D through the serial line's DTR; sleep,
a reboot's lost input and the echo of CR LF line ends hold on every channel (REFERENCE.md "CMUX",
"Control lines", "Line ends")."""

from __future__ import annotations

from ecemu.core import events as ev
from ecemu.core.uart import DropInput, LineFormat, LineLevel, TransmitHold
from tests.harness import CoreHarness
from tests.test_cmux_channels import at, channel_bytes, read_frames, start_mux
from tests.test_cmux_codec import SABM, UIH, control_message, frame, uih
from tests.test_ppp_core import dial, negotiate
from tests.wire import OK

PDP_DROP = b'\r\n+QIURC: "pdpdeact",1\r\n'
MSC = 0xE1  # the MSC type octet with EA (27.010 5.4.6.3.7)


def msc(dlci: int, *, ic: bool = False, dv: bool = False, fc: bool = False) -> tuple[int, int, bytes]:
    """The module's MSC command for ``dlci``: DSR (RTC) and CTS (RTR) on, as a frame read back."""
    signals = 0x01 | 0x04 | 0x08 | (0x02 if fc else 0) | (0x40 if ic else 0) | (0x80 if dv else 0)
    return (0, UIH, control_message(MSC, True, bytes((dlci << 2 | 0x03, signals))))


def mscs(frames) -> list[tuple[int, int, bytes]]:
    """The MSC commands among ``frames`` (C/R 0x02 set in the type octet)."""
    return [f for f in frames if f[0] == 0 and f[2][:1] == bytes((MSC | 0x02,))]


def answered(h: CoreHarness, frames) -> list[tuple[int, int, bytes]]:
    """The MSC commands among ``frames``, each answered as a host does (the same value, C/R clear),
    so that the module does not repeat them (27.010 5.4.6: T2, N2)."""
    commands = mscs(frames)
    for _, _, message in commands:
        h.send(uih(0, 1, bytes((MSC,)) + message[1:]))
    return commands


def at_long(h: CoreHarness, dlci: int, line: bytes) -> bytes:
    """A line longer than N1 (31 by default), in as many frames as it takes."""
    return b"".join(at(h, dlci, line[start:start + 31]) for start in range(0, len(line), 31))


def lines(h: CoreHarness) -> list[tuple[str, bool]]:
    return [(c.line, c.active) for c in h.take_port_changes() if isinstance(c, LineLevel)]


def muxed(*channels: int, **harness) -> CoreHarness:
    h = CoreHarness(keep_port_changes=True, **harness)
    start_mux(h, channels=channels)
    for dlci in channels:
        at(h, dlci, b"ATE0\r")
    h.take_port_changes()
    return h


# --- RI and IC -----------------------------------------------------------------------------------


def test_a_urc_on_a_dlc_pulses_ri_and_that_dlcs_ic_for_120_ms():
    h = muxed(1, 2)
    assert at(h, 2, b"AT+QIACT=1\r") == OK
    h.take_port_changes()
    h.modem.families["pdp"].network_drop(1)  # +QIURC goes to DLC 1, the lowest open
    frames = read_frames(h.take_output())
    assert channel_bytes(frames, 1) == PDP_DROP
    assert mscs(frames) == [msc(1, ic=True)]
    assert lines(h) == [("ri", True)]
    assert h.advance(0.119) == b"" and lines(h) == []
    # "urc/ri/other" defaults to one pulse of 120 ms (Quectel AT manual): both end together
    assert mscs(read_frames(h.advance(0.001))) == [msc(1, ic=False)]
    assert lines(h) == [("ri", False)]


def test_qrir_on_any_channel_ends_ri_and_ic_held_by_always():
    h = muxed(1, 2)
    assert at_long(h, 2, b'AT+QCFG="urc/ri/smsincoming","always"\r') == OK
    h.take_port_changes()
    h.modem.emit_urc('+CMTI: "SM",2')  # a new SMS (27.005 3.4.1) on DLC 1, the lowest open
    frames = read_frames(h.take_output())
    assert channel_bytes(frames, 1) == b'\r\n+CMTI: "SM",2\r\n' and answered(h, frames) == [msc(1, ic=True)]
    assert mscs(read_frames(h.advance(5.0))) == []  # "always": nothing ends it but AT+QRIR
    assert lines(h) == [("ri", True)]
    frames = read_frames(h.send(uih(2, 1, b"AT+QRIR\r")))
    assert channel_bytes(frames, 2) == OK and mscs(frames) == [msc(1, ic=False)]
    assert lines(h) == [("ri", False)]


# --- DCD and DV ----------------------------------------------------------------------------------


def test_each_dlc_shows_dcd_by_its_own_at_and_c_and_the_port_line_stays_off():
    h = muxed(1, 2)
    frames = read_frames(h.send(uih(1, 1, b"AT&C0\r")))
    assert channel_bytes(frames, 1) == OK and mscs(frames) == [msc(1, dv=True)]
    frames = read_frames(h.send(uih(1, 1, b"AT&C1\r")))
    assert mscs(frames) == [msc(1, dv=False)]
    assert mscs(read_frames(h.send(uih(2, 1, b"AT&C1\r")))) == []  # unchanged: no MSC
    # the serial line's DCD is the port's (AT&C1 there): the multiplexer is no data connection
    assert lines(h) == [] and h.modem.lines.outputs["dcd"] is False


def test_a_call_on_a_dlc_keeps_its_dv_on_until_it_ends_and_the_port_dcd_off():
    h = CoreHarness(keep_port_changes=True, escape_guard=0.5)
    start_mux(h, channels=(1, 2))
    at(h, 1, b"ATE0\r")
    at(h, 2, b"ATE0\r")
    h.take_port_changes()
    assert at(h, 2, b"ATD*99#\r") == b""
    link = [e for e in h.take_effects() if isinstance(e, ev.OpenIpLink)][0]
    assert msc(2, dv=True) in answered(h, read_frames(h.event(ev.IpLinkUp(link.conn_id))))
    h.advance(0.6)
    h.send(uih(2, 1, b"+++"))
    frames = read_frames(h.advance(0.6))
    assert channel_bytes(frames, 2) == OK and mscs(frames) == []  # left with +++: the call is up still
    frames = read_frames(h.send(uih(2, 1, b"ATH\r")))
    assert channel_bytes(frames, 2) == OK and mscs(frames) == [msc(2, dv=False)]
    assert lines(h) == []


# --- the UART: rate, framing, flow control -------------------------------------------------------


def test_the_uart_settings_are_the_ports_whichever_channel_sets_them():
    h = muxed(1, 2)
    assert at(h, 1, b"AT+IPR=921600\r") == OK
    assert [c for c in h.take_port_changes() if isinstance(c, LineFormat)] == [LineFormat(921600)]
    assert at(h, 2, b"AT+IPR?\r") == b"\r\n+IPR: 921600\r\n" + OK
    assert at(h, 2, b"AT+ICF=5,1\r") == OK  # 7 data bits, even parity, 1 stop bit (V.250 6.2.11)
    assert [c for c in h.take_port_changes() if isinstance(c, LineFormat)] == [LineFormat(921600, 7, "even", 1)]
    assert at(h, 1, b"AT+IFC=2,2\r") == OK
    h.modem.set_rts(False, h.now)  # RTS/CTS flow control is the serial line's
    assert TransmitHold(True) in h.take_port_changes()
    h.modem.set_rts(True, h.now)
    # ATZ on a DLC restores that channel's settings; the UART's stay the port's
    assert at(h, 1, b"ATZ\r") == OK
    assert at(h, 1, b"AT\r") == b"AT\r\r\nOK\r\n"  # echo is back on for DLC 1
    assert not [c for c in h.take_port_changes() if isinstance(c, LineFormat)]
    assert at(h, 2, b"AT+IFC?\r") == b"\r\n+IFC: 2,2\r\n" + OK
    # the multiplexer closes down (CLD): the bare port reads what the DLCs set, and its ATZ restores it
    h.send(uih(0, 1, control_message(0xC1, True)))
    assert h.command("AT+IPR?") == b"\r\n+IPR: 921600\r\n" + OK
    assert h.command("ATZ") == OK
    assert [c for c in h.take_port_changes() if isinstance(c, LineFormat)] == [LineFormat(115200)]


# --- DTR -----------------------------------------------------------------------------------------


def test_the_serial_lines_dtr_follows_the_ports_at_and_d_under_cmux():
    # AT&D0 on the port before AT+CMUX: the multiplexer does not hear the serial line's DTR
    h = CoreHarness(keep_port_changes=True)
    assert h.command("AT&D0") == OK
    start_mux(h, channels=(1,))
    at(h, 1, b"ATE0\r")
    h.modem.set_dtr(False, h.now)
    h.modem.set_dtr(True, h.now)
    assert at(h, 1, b"AT\r") == OK
    # AT&D2 on a DLC is that DLC's: the serial line's drop still changes nothing
    assert at(h, 1, b"AT&D2\r") == OK
    h.modem.set_dtr(False, h.now)
    h.modem.set_dtr(True, h.now)
    assert at(h, 1, b"AT\r") == OK
    # with the port's AT&D2 (the default) the drop ends the multiplexer: AT commands again
    h = muxed(1)
    h.modem.set_dtr(False, h.now)
    h.take_output()
    h.modem.set_dtr(True, h.now)
    assert h.command("AT") == OK


def test_a_ppp_call_on_the_bare_port_shows_dcd_until_it_ends_and_dtr_does_what_at_and_d_says():
    h = CoreHarness(keep_port_changes=True, escape_guard=0.5)
    assert h.command("AT&D1") == OK
    link = dial(h)
    h.take_port_changes()
    negotiate(h, link)
    assert lines(h) == [("dcd", True)]  # AT&C1: from CONNECT
    h.modem.set_dtr(False, h.now)  # &D1: command mode, the call kept, DCD still on
    assert h.take_output() == OK
    assert lines(h) == []
    h.modem.set_dtr(True, h.now)
    assert h.command("AT&D0") == OK
    assert h.command("ATO") == b"\r\nCONNECT\r\n"
    h.modem.set_dtr(False, h.now)  # &D0: ignored, the call goes on in PPP
    assert h.take_output() == b"" and h.modem.host.online is not None
    h.modem.set_dtr(True, h.now)
    h.advance(0.6)
    h.send(b"+++")
    assert h.advance(0.6) == OK
    assert h.command("AT&D2") == OK and h.command("ATO") == b"\r\nCONNECT\r\n"
    h.modem.set_dtr(False, h.now)  # &D2: the call ends
    assert h.take_output().endswith(b"\r\nNO CARRIER\r\n")
    assert ev.CloseIpLink(link.conn_id) in h.take_effects()
    assert lines(h) == [("dcd", False)]


# --- sleep, reboot, line ends on every channel ---------------------------------------------------


def test_sleep_holds_on_every_channel():
    h = CoreHarness(keep_port_changes=True)
    assert h.command("AT&D0") == OK  # the serial line's DTR leaves the multiplexer alone
    start_mux(h, channels=(1, 2))
    at(h, 1, b"ATE0\r")
    at(h, 2, b"ATE0\r")
    assert at(h, 2, b"AT+QIACT=1\r") == OK
    assert at(h, 2, b"AT+QSCLK=1\r") == OK
    h.modem.set_dtr(False, h.now)  # every channel idle: asleep
    assert h.modem.lines.asleep
    assert h.send(uih(1, 1, b"AT\r")) == b""  # the UART is off: the frame is lost
    h.take_port_changes()
    h.modem.families["pdp"].network_drop(1)
    assert h.take_output() == b""  # the URC waits; RI tells the host
    assert lines(h) == [("ri", True)]
    h.advance(0.2)
    h.modem.set_dtr(True, h.now)  # awake: the URC comes on DLC 1
    frames = read_frames(h.take_output())
    assert channel_bytes(frames, 1) == PDP_DROP
    assert at(h, 1, b"AT\r") == OK


def test_a_reboot_from_a_dlc_answers_there_then_drops_the_input_and_boots_on_the_bare_port():
    h = muxed(1)
    out = h.send(uih(1, 1, b"AT+CFUN=1,1\r") + uih(1, 1, b"AT\r"))
    # OK on DLC 1, only the first line's (the second was in the UART the reboot lost), then RDY
    # on the bare port, as at power-on
    assert out.endswith(b"\r\nRDY\r\n")
    assert channel_bytes(read_frames(out[:-len(b"\r\nRDY\r\n")]), 1) == OK
    assert DropInput() in h.take_port_changes()
    h.advance(5.0)
    assert h.command("AT") == b"AT\r\r\nOK\r\n"  # echo on, as at power-on
    start_mux(h, channels=(1,))


def test_the_echo_of_cr_lf_line_ends_holds_on_a_dlc():
    h = CoreHarness(echo=True)
    start_mux(h, channels=(1,))
    # the LF after a line the parser answered is not echoed; an empty line's CR and LF are
    assert at(h, 1, b"AT\r\n") == b"AT\r\r\nOK\r\n"
    assert at(h, 1, b"\r\n") == b"\r\n"
    # AT+QFLST is answered apart from the parser: an LF that comes in a later frame is echoed first
    assert at(h, 1, b"AT+QFLST\r") == b"AT+QFLST\r"
    assert channel_bytes(read_frames(h.advance(0.005)), 1) == b""
    assert at(h, 1, b"\n") == b"\n" + OK
    assert at(h, 1, b"AT+QFLST\r\n") == b"AT+QFLST\r\n" + OK


def test_a_new_dlc_after_sabm_on_dlci_0_again_starts_with_its_signals_clean():
    h = muxed(1)
    assert mscs(read_frames(h.send(uih(1, 1, b"AT&C0\r")))) == [msc(1, dv=True)]
    # the host starts the multiplexer over: DLC 1 is a new channel with the factory AT&C1
    h.send(frame(0, 1, SABM))
    out = read_frames(h.send(frame(1, 1, SABM)))
    assert mscs(out) == [msc(1)]


def test_qpowd_from_a_dlc_answers_there_then_every_channel_is_silent():
    h = muxed(1, 2)
    frames = read_frames(h.send(uih(1, 1, b"AT+QPOWD\r")))
    # OK, then the URC POWERED DOWN (Quectel AT manual), on the DLC that asked
    assert channel_bytes(frames, 1) == OK + b"\r\nPOWERED DOWN\r\n"
    assert h.advance(0.001) == b""  # the power goes
    assert DropInput() in h.take_port_changes()
    assert not any(h.modem.lines.outputs.values())  # DSR and CTS off with the power
    # nothing answers any more, on either channel or on the port, until a power cycle
    assert h.send(uih(2, 1, b"AT\r") + uih(1, 1, b"AT\r")) == b""
    assert h.advance(5.0) == b""
    h.modem.reboot()
    assert h.advance(5.0).startswith(b"\r\nRDY\r\n")
    assert h.command("AT") == b"AT\r\r\nOK\r\n"
