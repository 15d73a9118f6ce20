"""AT+CMUX and the channels over it, in the core: each DLC a full AT channel of the one module.

Frames are built here from 27.010's field layout (see test_cmux_codec.py); a small reader splits
the module's output back into (dlci, type, information) by the same layout.
"""

from __future__ import annotations

import pytest

from tests.harness import CoreHarness
from tests.test_cmux_codec import DISC, SABM, UA, UIH, bitwise_fcs, control_message, frame, uih


def read_frames(data: bytes) -> list[tuple[int, int, bytes]]:
    """(dlci, control without P/F, information) of each frame; checks each FCS."""
    out = []
    i = 0
    while i < len(data):
        assert data[i] == 0xF9, data[i:]
        address, control, length = data[i + 1], data[i + 2], data[i + 3]
        if length & 1:
            size, head = length >> 1, 4
        else:  # two length octets (27.010 5.2.1.5)
            size, head = (length >> 1) | (data[i + 4] << 7), 5
        info = data[i + head:i + head + size]
        fcs = data[i + head + size]
        covered = data[i + 1:i + head] if control & ~0x10 == UIH else data[i + 1:i + head + size]
        assert fcs == bitwise_fcs(covered)
        assert data[i + head + 1 + size] == 0xF9
        out.append((address >> 2, control & ~0x10, info))
        i += head + 2 + size
    return out


def channel_bytes(frames, dlci: int) -> bytes:
    return b"".join(info for d, kind, info in frames if d == dlci and kind == UIH)


def start_mux(h: CoreHarness, channels=(1, 2)) -> None:
    assert h.command("AT+CMUX=0").endswith(b"\r\nOK\r\n")
    out = read_frames(h.send(frame(0, 1, SABM)))
    assert out == [(0, UA, b"")]
    for dlci in channels:
        out = read_frames(h.send(frame(dlci, 1, SABM)))
        assert out[0] == (dlci, UA, b"")
        # the module's MSC for the channel, answered as a host does
        msc = out[1][2]
        assert msc[0] == 0xE3
        h.send(uih(0, 1, bytes((0xE1,)) + msc[1:]))


def at(h: CoreHarness, dlci: int, line: bytes) -> bytes:
    return channel_bytes(read_frames(h.send(uih(dlci, 1, line))), dlci)


def test_cmux_parameters_and_refusals():
    h = CoreHarness()
    assert h.command("AT+CMUX=?") == b"\r\n+CMUX: (0),(0),(1-8),(1-32768),(1-255),(0-100),(2-255),(1-255),(1-7)\r\n\r\nOK\r\n"
    assert h.command("AT+CMUX?") == b"\r\n+CMUX: 0,0,5,31,10,3,30,10,2\r\n\r\nOK\r\n"
    h.command("AT+CMEE=1")
    assert h.command("AT+CMUX=1") == b"\r\n+CME ERROR: 4\r\n"  # the advanced option
    assert h.command("AT+CMUX=0,1") == b"\r\n+CME ERROR: 4\r\n"  # UI frames
    assert h.command("AT+CMUX=0,0,9") == b"\r\n+CME ERROR: 50\r\n"
    assert h.command("AT+CMUX=0,0,5,127,30,3,30") == b"\r\n+CME ERROR: 50\r\n"  # T2 not above T1
    assert h.command("AT") == b"\r\nOK\r\n"  # still AT commands on the port


def test_each_channel_has_its_own_echo_and_line():
    h = CoreHarness(echo=True)
    start_mux(h)
    assert at(h, 1, b"ATE0\r") == b"ATE0\r\r\nOK\r\n"
    assert at(h, 1, b"AT\r") == b"\r\nOK\r\n"
    assert at(h, 2, b"AT\r") == b"AT\r\r\nOK\r\n"  # channel 2 still echoes
    # a line split over frames and channels interleaved
    assert at(h, 2, b"AT+CG") == b"AT+CG"
    assert at(h, 1, b"AT+CGMM\r") == b"\r\nEC200M\r\n\r\nOK\r\n".replace(b"EC200M", h.modem.profile.identity.model.encode())
    out = at(h, 2, b"MI\r")
    assert out == b"MI\r\r\n" + h.modem.profile.identity.manufacturer.encode() + b"\r\n\r\nOK\r\n"
    assert h.command("AT") == b""  # the port itself carries frames now: nothing answers bare text


def test_the_module_state_is_shared_and_the_settings_are_not():
    h = CoreHarness(echo=False)
    start_mux(h)
    at(h, 1, b"ATE0\r")
    at(h, 2, b"ATE0\r")
    assert at(h, 1, b"AT+QIACT=1\r") == b"\r\nOK\r\n"
    assert at(h, 2, b"AT+QIACT?\r").startswith(b'\r\n+QIACT: 1,1,1,"')
    assert at(h, 2, b"ATV0\r") == b"0\r"
    assert at(h, 1, b"AT\r") == b"\r\nOK\r\n"  # ATV0 on 2 left 1 verbose


def test_urcs_go_to_the_lowest_open_channel():
    h = CoreHarness()
    start_mux(h, channels=(2, 3))
    at(h, 2, b"ATE0\r")
    at(h, 3, b"ATE0\r")
    assert at(h, 2, b"AT+QIACT=1\r") == b"\r\nOK\r\n"
    h.modem.families["pdp"].network_drop(1)
    frames = read_frames(h.take_output())
    assert channel_bytes(frames, 2) == b'\r\n+QIURC: "pdpdeact",1\r\n'
    assert channel_bytes(frames, 3) == b""


def test_unopened_channels_and_close_down_back_to_at():
    h = CoreHarness()
    start_mux(h, channels=(1,))
    assert read_frames(h.send(uih(4, 1, b"AT\r"))) == [(4, 0x0F, b"")]  # DM
    assert read_frames(h.send(frame(1, 1, DISC))) == [(1, UA, b"")]
    assert read_frames(h.send(uih(1, 1, b"AT\r"))) == [(1, 0x0F, b"")]
    out = h.send(uih(0, 1, control_message(0xC1, True)) + b"AT\r")
    assert out.startswith(uih(0, 0, control_message(0xC1, False)))
    assert out[len(uih(0, 0, control_message(0xC1, False))):] == b"\r\nOK\r\n"
    assert h.command("AT") == b"\r\nOK\r\n"
    start_mux(h, channels=(1,))  # and it can be opened again: a new channel, echo on as at power-on
    assert at(h, 1, b"AT\r") == b"AT\r\r\nOK\r\n"


def test_a_host_that_leaves_gets_a_port_that_takes_at_again():
    h = CoreHarness()
    start_mux(h, channels=(1,))
    h.modem.set_dtr(False, h.now)
    h.modem.host_lost(h.now)
    h.take_output()
    h.modem.set_dtr(True, h.now)
    assert h.command("AT") == b"\r\nOK\r\n"
    start_mux(h, channels=(1,))


def test_dtr_of_one_channel_in_an_msc():
    h = CoreHarness()
    start_mux(h, channels=(1, 2))
    at(h, 1, b"ATE0\r")
    # DTR off on channel 1 (RTC clear): answered, and the channel goes on in command mode
    out = read_frames(h.send(uih(0, 1, control_message(0xE1, True, bytes((1 << 2 | 3, 0x01 | 0x08))))))
    assert out == [(0, UIH, control_message(0xE1, False, bytes((1 << 2 | 3, 0x09))))]
    assert at(h, 1, b"AT\r") == b"\r\nOK\r\n"


@pytest.mark.parametrize("n1", [31, 127, 300])
def test_long_answers_are_cut_to_n1(n1):
    h = CoreHarness()
    assert h.command(f"AT+CMUX=0,0,5,{n1}") == b"\r\nOK\r\n"
    h.send(frame(0, 1, SABM))
    out = read_frames(h.send(frame(1, 1, SABM)))
    h.send(uih(0, 1, bytes((0xE1,)) + out[1][2][1:]))
    frames = read_frames(h.send(uih(1, 1, b"AT+CMUX=?;+CMUX?\r")))
    assert all(len(info) <= n1 for _, _, info in frames)
    assert channel_bytes(frames, 1).endswith(b"\r\nOK\r\n")


def test_a_data_call_on_one_channel_at_on_another_dcd_in_msc():
    from ecemu.core import events as ev

    h = CoreHarness()
    start_mux(h, channels=(1, 2))
    at(h, 1, b"ATE0\r")
    at(h, 2, b"ATE0\r")
    assert at(h, 2, b"ATD*99#\r") == b""
    link = [e for e in h.take_effects() if isinstance(e, ev.OpenIpLink)][0]
    frames = read_frames(h.event(ev.IpLinkUp(link.conn_id)))
    assert channel_bytes(frames, 2).startswith(b"\r\nCONNECT\r\n~")  # then the module's LCP request
    # DCD (DV) on for channel 2 in an MSC command (27.010 5.4.6.3.7)
    assert (0, UIH, control_message(0xE1, True, bytes((2 << 2 | 3, 0x01 | 0x04 | 0x08 | 0x80)))) in frames
    assert at(h, 1, b"AT+QIACT?\r") == b'\r\n+QIACT: 1,1,1,"10.7.157.1"\r\n\r\nOK\r\n'
    # the host closes the data channel: the call ends with it, the AT channel goes on
    assert read_frames(h.send(frame(2, 1, DISC)))[0] == (2, UA, b"")
    assert ev.CloseIpLink(link.conn_id) in h.take_effects()
    assert at(h, 1, b"AT+QIACT?\r") == b"\r\nOK\r\n"


def test_a_channel_that_cannot_take_more_says_fc_and_loses_nothing():
    h = CoreHarness()
    start_mux(h, channels=(1,))
    at(h, 1, b"ATE0\r")
    # a dial waits for the network engine: the channel is busy and the host's next lines wait
    h.send(uih(1, 1, b"ATD*99#\r"))
    h.take_effects()
    flood = b"AT\r" * 30000  # 90 kB of command lines while the channel is busy
    out = b""
    for start in range(0, len(flood), 31):
        out += h.send(uih(1, 1, flood[start:start + 31]))
    fc_on = control_message(0xE1, True, bytes((1 << 2 | 3, 0x01 | 0x02 | 0x04 | 0x08)))
    assert (0, UIH, fc_on) in read_frames(out)
    # the dial gives up (no engine answered): every waiting line is answered, and FC is taken back
    frames = read_frames(h.advance(31.0))
    fc_off = control_message(0xE1, True, bytes((1 << 2 | 3, 0x01 | 0x04 | 0x08)))
    assert (0, UIH, fc_off) in frames
    answers = channel_bytes(frames, 1)
    assert answers.startswith(b"\r\nNO CARRIER\r\n") and answers.count(b"\r\nOK\r\n") == 30000


def test_a_ctrl_z_before_at_is_skipped_and_alone_is_refused():
    h = CoreHarness()
    # gsm0710muxd starts every command with a Ctrl+Z (it ends any SMS text input left open)
    assert h.send(b"\x1aAT\r\n") == b"\r\nOK\r\n"
    assert h.send(b"\x1a\r") == b"\r\nERROR\r\n"
