"""3GPP TS 27.010 basic option, byte for byte: the frames the standard gives, an FCS computed here
bit by bit (27.010 5.2.1.6: x^8 + x^2 + x + 1, bits least significant first, register preset to
all ones, the ones complement sent), and the module's answers as the responder.

The expected frames are written out from the standard's field layout (flag 0xF9, address
``DLCI << 2 | C/R << 1 | EA``, control with P/F 0x10, a one-octet length ``len << 1 | 1``); none is
taken from the code under test.
"""

from __future__ import annotations

import pytest

from ecemu.core.cmux import (
    CmuxParameters,
    Control,
    FrameDecoder,
    Frame,
    Multiplexer,
    V24Signals,
    encode_frame,
    fcs,
)
from ecemu.core.timers import TimerHeap
from ecemu.core.uart import LineFormat

SABM, UA, DM, DISC, UIH = 0x2F, 0x63, 0x0F, 0x43, 0xEF
P = 0x10


def bitwise_fcs(octets: bytes) -> int:
    register = 0xFF
    for octet in octets:
        for bit in range(8):
            feedback = (register ^ (octet >> bit)) & 1
            register >>= 1
            if feedback:
                register ^= 0xE0  # x^8 + x^2 + x + 1, reflected
    return 0xFF - register


def frame(dlci: int, cr: int, control: int, info: bytes = b"", pf: bool = True) -> bytes:
    address = dlci << 2 | cr << 1 | 1
    header = bytes((address, control | (P if pf else 0), len(info) << 1 | 1))
    covered = header if control == UIH else header + info
    return b"\xf9" + header + info + bytes((bitwise_fcs(covered),)) + b"\xf9"


def uih(dlci: int, cr: int, info: bytes) -> bytes:
    return frame(dlci, cr, UIH, info, pf=False)


def control_message(kind: int, command: bool, value: bytes = b"") -> bytes:
    return bytes((kind | (2 if command else 0), len(value) << 1 | 1)) + value


# Frames as 27.010 hosts put them on the wire (the initiator's commands have C/R = 1).
STANDARD_FRAMES = [
    ("SABM DLCI 0", bytes.fromhex("f9033f011cf9")),
    ("UA DLCI 0", bytes.fromhex("f90373 01d7f9".replace(" ", ""))),
    ("SABM DLCI 1", bytes.fromhex("f9073f01def9")),
    ("UA DLCI 1", bytes.fromhex("f907730115f9")),
    ("DISC DLCI 0", bytes.fromhex("f9035301fdf9")),
    ("CLD command", bytes.fromhex("f903ef05c301f2f9")),
]


@pytest.mark.parametrize("name,wire", STANDARD_FRAMES, ids=[n for n, _ in STANDARD_FRAMES])
def test_the_fcs_of_the_standards_frames(name, wire):
    header = wire[1:4]
    assert bitwise_fcs(header) == wire[-2]
    assert fcs(header) == wire[-2]


def test_frames_encode_byte_for_byte():
    assert encode_frame(Frame(0, Control.SABM, True, True)) == bytes.fromhex("f9033f011cf9")
    assert encode_frame(Frame(0, Control.UA, True, True)) == bytes.fromhex("f9037301d7f9")
    assert encode_frame(Frame(1, Control.DM, True, True)) == frame(1, 1, DM)
    data = b"AT\r"
    assert encode_frame(Frame(2, Control.UIH, False, False, data)) == uih(2, 0, data)
    # UI frames: the FCS covers the information as well.
    assert encode_frame(Frame(3, Control.UI, True, False, b"x")) == frame(3, 1, 0x03, b"x", pf=False)


def test_a_length_over_127_takes_two_octets():
    info = bytes(range(200))
    wire = encode_frame(Frame(1, Control.UIH, False, False, info))
    # length 200: first octet (200 << 1) & 0xFE with EA clear, then 200 >> 7
    assert wire[3:5] == bytes(((200 << 1) & 0xFE, 1))
    assert wire[-2] == bitwise_fcs(wire[1:5])
    decoded = list(FrameDecoder(1500).feed(wire))
    assert decoded == [Frame(1, Control.UIH, False, False, info)]


def test_the_decoder_takes_bytes_split_anywhere_and_skips_noise():
    wire = b"garbage" + frame(0, 1, SABM) + uih(1, 1, b"AT\r") + frame(1, 1, DISC)
    decoder = FrameDecoder(127)
    frames = []
    for i in range(len(wire)):
        frames += decoder.feed(wire[i:i + 1])
    assert [(f.dlci, f.control) for f in frames] == [(0, Control.SABM), (1, Control.UIH), (1, Control.DISC)]
    assert frames[1].info == b"AT\r"


class Hooks:
    def __init__(self):
        self.events = []

    def channel_opened(self, dlci):
        self.events.append(("open", dlci))

    def channel_closed(self, dlci):
        self.events.append(("closed", dlci))

    def channel_data(self, dlci, data):
        self.events.append(("data", dlci, data))

    def channel_signals(self, dlci, signals):
        self.events.append(("signals", dlci, signals))

    def closed_down(self):
        self.events.append(("closed down",))


class Clock:
    def __init__(self):
        self.now = 0.0
        self.timers = TimerHeap()

    def advance(self, seconds):
        self.now += seconds
        while (timer := self.timers.pop_due(self.now)) is not None:
            timer.callback()


def make_mux(**params):
    hooks, clock = Hooks(), Clock()
    mux = Multiplexer(CmuxParameters(**params), hooks, lambda: clock.now, clock.timers.call_at)
    return mux, hooks, clock


def take(mux) -> bytes:
    out = bytes(mux.output)
    mux.output.clear()
    return out


# The module is the responder: its responses carry C/R = 1, its commands and data C/R = 0.
def msc(dlci, octet):
    return bytes((dlci << 2 | 3, octet))


DEFAULT_MODULE_SIGNALS = 0x01 | 0x04 | 0x08  # EA, RTC (DSR), RTR (CTS)


def open_channel(mux, dlci):
    mux.receive(frame(dlci, 1, SABM))
    out = take(mux)
    assert out.startswith(frame(dlci, 1, UA))
    # then the module's MSC command for the channel: its DSR and CTS on, DCD and RI off
    assert out[len(frame(dlci, 1, UA)):] == uih(0, 0, control_message(0xE1, True, msc(dlci, DEFAULT_MODULE_SIGNALS)))
    mux.receive(uih(0, 1, control_message(0xE1, False, msc(dlci, DEFAULT_MODULE_SIGNALS))))


def test_open_the_control_channel_and_a_channel():
    mux, hooks, _ = make_mux()
    mux.receive(bytes.fromhex("f9033f011cf9"))
    assert take(mux) == bytes.fromhex("f9037301d7f9")
    open_channel(mux, 1)
    assert hooks.events == [("open", 1)]
    mux.receive(uih(1, 1, b"ATI\r"))
    assert hooks.events[-1] == ("data", 1, b"ATI\r")
    mux.send(1, b"\r\nOK\r\n")
    assert take(mux) == uih(1, 0, b"\r\nOK\r\n")


def test_nothing_opens_before_the_control_channel():
    mux, hooks, _ = make_mux()
    mux.receive(frame(2, 1, SABM))
    assert take(mux) == frame(2, 1, DM)
    assert hooks.events == []


def test_data_and_disc_on_an_unopened_dlci_get_dm():
    mux, hooks, _ = make_mux()
    mux.receive(frame(0, 1, SABM))
    take(mux)
    mux.receive(frame(5, 1, UIH, b"AT\r"))
    assert take(mux) == frame(5, 1, DM)
    mux.receive(frame(5, 1, DISC))
    assert take(mux) == frame(5, 1, DM)
    assert hooks.events == []


def test_bad_fcs_and_too_long_frames_are_discarded_without_an_answer():
    mux, hooks, _ = make_mux(n1=31)
    mux.receive(frame(0, 1, SABM))
    take(mux)
    open_channel(mux, 1)
    bad = bytearray(uih(1, 1, b"AT\r"))
    bad[-2] ^= 0x55
    mux.receive(bytes(bad))
    assert take(mux) == b""
    long = uih(1, 1, b"A" * 40)  # N1 is 31
    mux.receive(long)
    assert take(mux) == b""
    assert not [e for e in hooks.events if e[0] == "data"]
    mux.receive(uih(1, 1, b"AT\r"))  # and the next good frame is taken
    assert hooks.events[-1] == ("data", 1, b"AT\r")


def test_output_is_cut_into_frames_of_n1():
    mux, _, _ = make_mux(n1=10)
    mux.receive(frame(0, 1, SABM))
    take(mux)
    open_channel(mux, 1)
    mux.send(1, b"0123456789abcdef")
    assert take(mux) == uih(1, 0, b"0123456789") + uih(1, 0, b"abcdef")


def test_msc_from_the_host_is_answered_and_its_signals_reach_the_channel():
    mux, hooks, _ = make_mux()
    mux.receive(frame(0, 1, SABM))
    take(mux)
    open_channel(mux, 1)
    # DTR (RTC) off, RTS (RTR) on
    mux.receive(uih(0, 1, control_message(0xE1, True, msc(1, 0x01 | 0x08))))
    assert take(mux) == uih(0, 0, control_message(0xE1, False, msc(1, 0x01 | 0x08)))
    assert hooks.events[-1] == ("signals", 1, V24Signals(fc=False, rtc=False, rtr=True, ic=False, dv=False))


def test_fc_in_msc_and_fcoff_hold_the_output_until_released():
    mux, _, _ = make_mux()
    mux.receive(frame(0, 1, SABM))
    take(mux)
    open_channel(mux, 1)
    mux.receive(uih(0, 1, control_message(0xE1, True, msc(1, 0x01 | 0x02 | 0x04 | 0x08))))  # FC set
    take(mux)
    mux.send(1, b"held")
    assert take(mux) == b""
    mux.receive(uih(0, 1, control_message(0xE1, True, msc(1, 0x01 | 0x04 | 0x08))))
    assert take(mux) == uih(0, 0, control_message(0xE1, False, msc(1, 0x0D))) + uih(1, 0, b"held")
    mux.receive(uih(0, 1, control_message(0x61, True)))  # FCoff
    assert take(mux) == uih(0, 0, control_message(0x61, False))
    mux.send(1, b"later")
    assert take(mux) == b""
    mux.receive(uih(0, 1, control_message(0xA1, True)))  # FCon
    assert take(mux) == uih(0, 0, control_message(0xA1, False)) + uih(1, 0, b"later")


def test_test_psc_and_unknown_commands():
    mux, _, _ = make_mux()
    mux.receive(frame(0, 1, SABM))
    take(mux)
    mux.receive(uih(0, 1, control_message(0x21, True, b"pattern")))
    assert take(mux) == uih(0, 0, control_message(0x21, False, b"pattern"))
    mux.receive(uih(0, 1, control_message(0x41, True)))
    assert take(mux) == uih(0, 0, control_message(0x41, False))
    mux.receive(uih(0, 1, control_message(0xF1, True)))  # not a type the standard defines
    assert take(mux) == uih(0, 0, control_message(0x11, False, bytes((0xF3,))))


def test_cld_closes_every_channel_and_the_multiplexer():
    mux, hooks, _ = make_mux()
    mux.receive(frame(0, 1, SABM))
    take(mux)
    open_channel(mux, 1)
    open_channel(mux, 2)
    mux.receive(bytes.fromhex("f903ef05c301f2f9") + b"AT\r")
    assert take(mux) == uih(0, 0, control_message(0xC1, False))
    assert hooks.events[-3:] == [("closed", 1), ("closed", 2), ("closed down",)]
    assert mux.closed
    assert mux.rest() == b"AT\r"


def test_disc_on_a_channel_and_on_dlci_0():
    mux, hooks, _ = make_mux()
    mux.receive(frame(0, 1, SABM))
    take(mux)
    open_channel(mux, 1)
    mux.receive(frame(1, 1, DISC))
    assert take(mux) == frame(1, 1, UA)
    assert hooks.events[-1] == ("closed", 1)
    mux.receive(frame(1, 1, UIH, b"x", pf=False))
    assert take(mux) == frame(1, 1, DM)
    mux.receive(frame(0, 1, DISC))
    assert take(mux) == frame(0, 1, UA)
    assert hooks.events[-1] == ("closed down",)


def test_a_host_that_restarts_the_multiplexer_finds_its_channels_closed():
    mux, hooks, _ = make_mux()
    mux.receive(frame(0, 1, SABM))
    take(mux)
    open_channel(mux, 1)
    mux.receive(frame(0, 1, SABM))
    assert take(mux) == frame(0, 1, UA)
    assert hooks.events[-1] == ("closed", 1)
    open_channel(mux, 1)
    assert hooks.events[-1] == ("open", 1)


def test_the_modules_msc_is_repeated_every_t2_n2_times():
    mux, _, clock = make_mux(t2=30, n2=2)
    mux.receive(frame(0, 1, SABM))
    take(mux)
    mux.receive(frame(1, 1, SABM))
    first = take(mux)
    command = uih(0, 0, control_message(0xE1, True, msc(1, DEFAULT_MODULE_SIGNALS)))
    assert first.endswith(command)
    clock.advance(0.29)
    assert take(mux) == b""
    clock.advance(0.01)
    assert take(mux) == command
    clock.advance(0.3)
    assert take(mux) == command
    clock.advance(0.3)
    assert take(mux) == b""  # N2 retries, then it gives up
    # DCD on: a new MSC; answered, it is not repeated
    mux.send_signals(1, V24Signals(dv=True))
    command = uih(0, 0, control_message(0xE1, True, msc(1, DEFAULT_MODULE_SIGNALS | 0x80)))
    assert take(mux) == command
    mux.receive(uih(0, 1, control_message(0xE1, False, msc(1, DEFAULT_MODULE_SIGNALS | 0x80))))
    clock.advance(1.0)
    assert take(mux) == b""


def rpn(dlci: int, *octets: int) -> bytes:
    return bytes((dlci << 2 | 3, *octets))


def test_rpn_answers_with_the_ports_own_rate_and_framing():
    """A query (the DLCI alone) gets the port's settings in 27.010 5.4.6.3.9's seven octets: the
    rate's code (2400 0 ... 115200 7, 230400 8), the framing (8 data bits: D1 D2 set), no flow
    control, XON 0x11, XOFF 0x13, the mask of every parameter."""
    line = LineFormat()
    hooks, clock = Hooks(), Clock()
    mux = Multiplexer(CmuxParameters(), hooks, lambda: clock.now, clock.timers.call_at, port_format=lambda: line)
    mux.receive(frame(0, 1, SABM))
    take(mux)
    mux.receive(uih(0, 1, control_message(0x91, True, rpn(1)[:1])))
    assert take(mux) == uih(0, 0, control_message(0x91, False, rpn(1, 0x07, 0x03, 0x00, 0x11, 0x13, 0x7F, 0x3F)))
    line = LineFormat(baud=9600, data_bits=7, parity="even", stop_bits=1)  # AT+IPR=9600, AT+ICF=5,1
    mux.receive(uih(0, 1, control_message(0x91, True, rpn(1)[:1])))
    assert take(mux) == uih(0, 0, control_message(0x91, False, rpn(1, 0x03, 0x1A, 0x00, 0x11, 0x13, 0x7F, 0x3F)))


def test_rpn_negotiation_accepts_only_what_the_port_already_has():
    """The host asks for 57600 8N1 with RTS/CTS: the mux does not change the UART, so the answer
    gives the port's values and a mask naming only the parameters that matched."""
    hooks, clock = Hooks(), Clock()
    mux = Multiplexer(CmuxParameters(), hooks, lambda: clock.now, clock.timers.call_at,
                      port_format=lambda: LineFormat(115200))
    mux.receive(frame(0, 1, SABM))
    take(mux)
    mux.receive(uih(0, 1, control_message(0x91, True, rpn(1, 0x06, 0x03, 0x0C, 0x11, 0x13, 0x7F, 0x3F))))
    # bit rate refused; data bits, stop bits, parity, parity type, XON, XOFF accepted (0x7E);
    # flow control bits 3 and 4 (RTS/CTS in and out) refused, the other four accepted (0x33)
    assert take(mux) == uih(0, 0, control_message(0x91, False, rpn(1, 0x07, 0x03, 0x00, 0x11, 0x13, 0x7E, 0x33)))
