"""Backpressure and fairness in the sans-IO core, the network played by the test: a socket's buffer
never shows more than its size, a server that does not read what the module answers pauses the
socket, an application stack works through a flood a bounded step at a time with its timers on
time, and a host that does not read holds back URCs (bounded, drops counted), direct push data and
MQTT messages (kept, the socket paused)."""

from __future__ import annotations

import random
import re

from ecemu.commands import mqtt_codec as codec
from ecemu.commands.app_sockets import NEXT_TURN, STEP
from ecemu.core import events as ev
from ecemu.core.urcs import HeldUrcs
from tests.harness import CoreHarness, no_internal_errors
from tests.wire import OK

BUFFER = 65536  # the EC200M-CN profile's recv_buffer
SEND_BUFFER = 16384  # and its send_buffer


def kinds(effects: list) -> list[str]:
    return [type(effect).__name__ for effect in effects if isinstance(effect, (ev.PauseReading, ev.ResumeReading))]


def open_tcp(h: CoreHarness, mode: int = 0) -> int:
    assert h.command("AT+QIACT=1") == OK
    assert h.command(f'AT+QIOPEN=1,0,"TCP","192.0.2.7",8009,0,{mode}') == OK
    [opening] = h.take_effects()
    assert h.event(ev.TcpConnected(opening.conn_id, "192.0.2.7", 8009, 40000)) == b"\r\n+QIOPEN: 0,0\r\n"
    return opening.conn_id


def totals(h: CoreHarness) -> tuple[int, int, int]:
    found = re.fullmatch(rb"\r\n\+QIRD: (\d+),(\d+),(\d+)\r\n\r\nOK\r\n", h.command("AT+QIRD=0,0"))
    assert found is not None
    return int(found[1]), int(found[2]), int(found[3])


def test_a_delivery_past_the_buffer_waits_outside_it_and_is_read_whole_in_order():
    """The network delivers 200 KiB at once (a read the shell made before the pause took effect):
    AT+QIRD=0,0 shows the buffer full and never more, and every byte is read, in order."""
    with no_internal_errors():
        h = CoreHarness()
        conn = open_tcp(h)
        data = random.Random(5).randbytes(200 * 1024)
        assert h.event(ev.TcpData(conn, data)) == b'\r\n+QIURC: "recv",0\r\n'
        assert kinds(h.take_effects()) == ["PauseReading"]
        assert totals(h) == (BUFFER, 0, BUFFER)
        got = bytearray()
        while len(got) < len(data):
            answer = h.command("AT+QIRD=0,1500")
            size = int(re.match(rb"\r\n\+QIRD: (\d+)\r\n", answer)[1])
            got += answer[len(f"\r\n+QIRD: {size}\r\n"):][:size]
            total, read, unread = totals(h)
            assert unread <= BUFFER and total == read + unread
            effects = kinds(h.take_effects())
            if len(data) - len(got) >= BUFFER // 2:
                assert effects == []  # still above half the buffer: not read from the server
        assert bytes(got) == data
        assert totals(h) == (len(data), len(data), 0)
        assert h.command("AT+QIRD=0,1500") == b"\r\n+QIRD: 0\r\n" + OK


def test_resume_comes_once_below_half_the_buffer_backlog_included():
    with no_internal_errors():
        h = CoreHarness()
        conn = open_tcp(h)
        h.event(ev.TcpData(conn, b"x" * (BUFFER + 10000)))
        assert kinds(h.take_effects()) == ["PauseReading"]
        effects: list[str] = []
        read = 0
        while not effects:
            h.command("AT+QIRD=0,1500")
            read += 1500
            effects = kinds(h.take_effects())
        assert effects == ["ResumeReading"]
        assert BUFFER + 10000 - read < BUFFER // 2 <= BUFFER + 10000 - read + 1500


def mqtt_connected(h: CoreHarness, *config: str) -> int:
    assert h.command("AT+QIACT=1") == OK
    for line in config:
        assert h.command(line) == OK
    assert h.command('AT+QMTOPEN=0,"broker.example",1883') == OK
    [opening] = h.take_effects()
    assert h.event(ev.TcpConnected(opening.conn_id, "10.0.0.1", 1883, 40000)) == b"\r\n+QMTOPEN: 0,0\r\n"
    assert h.command('AT+QMTCONN=0,"dev"') == OK
    assert h.event(ev.TcpData(opening.conn_id, b"\x20\x02\x00\x00")) == b"\r\n+QMTCONN: 0,0,0\r\n"
    h.take_effects()
    h.event(ev.TcpDrained(opening.conn_id))
    return opening.conn_id


def test_a_flood_is_handled_a_step_at_a_time_the_socket_paused_between_steps():
    """1000 PUBREL in one delivery: STEP of them per turn (each turn a timer a moment later), the
    socket not read until the last is handled; every PUBCOMP goes out, in order."""
    with no_internal_errors():
        h = CoreHarness()
        conn = mqtt_connected(h)
        count = 1000
        h.event(ev.TcpData(conn, b"".join(codec.encode_ack(codec.PUBREL, 1 + i) for i in range(count))))
        sends: list[bytes] = []
        steps = 0
        pauses: list[str] = []
        while True:
            effects = h.take_effects()
            pauses += kinds(effects)
            sends += [effect.data for effect in effects if isinstance(effect, ev.SendTcp)]
            h.event(ev.TcpDrained(conn))  # the broker reads: only the steps hold the socket
            pauses += kinds(h.take_effects())
            if len(sends) == count:
                break
            assert len(sends) == STEP * (steps + 1)
            steps += 1
            h.advance(NEXT_TURN)  # the loop's next turn: one more step
        assert steps == count // STEP
        assert sends == [codec.encode_ack(codec.PUBCOMP, 1 + i) for i in range(count)]
        assert pauses == ["PauseReading", "ResumeReading"]


def test_a_broker_that_does_not_read_the_answers_pauses_the_socket_and_the_host_s_publish_fails():
    """PUBREL after PUBREL, the broker never reading the PUBCOMPs: once twice the send buffer
    waits, the socket is not read; a publish then fails (+QMTPUB: <idx>,<msgid>,2); once the
    network has taken it all, reading resumes and a publish goes."""
    with no_internal_errors():
        h = CoreHarness()
        conn = mqtt_connected(h)
        needed = 2 * SEND_BUFFER // 4 + 1  # PUBCOMPs of 4 bytes past twice the send buffer
        h.event(ev.TcpData(conn, b"".join(codec.encode_ack(codec.PUBREL, 1 + i % 60000) for i in range(needed))))
        for _ in range(needed // STEP + 1):
            h.advance(0.001)
        effects = h.take_effects()
        assert sum(isinstance(e, ev.SendTcp) for e in effects) == needed
        assert kinds(effects) == ["PauseReading"]  # the steps', then the send buffer's: one pause
        assert h.command('AT+QMTPUB=0,0,0,0,"t",5') == b"\r\n> "
        assert h.send(b"hello") == b"\r\nOK\r\n\r\n+QMTPUB: 0,0,2\r\n"
        assert not any(isinstance(e, ev.SendTcp) for e in h.take_effects())
        h.event(ev.TcpDrained(conn))
        assert kinds(h.take_effects()) == ["ResumeReading"]
        assert h.command('AT+QMTPUB=0,0,0,0,"t",5') == b"\r\n> "
        assert h.send(b"hello") == b"\r\nOK\r\n\r\n+QMTPUB: 0,0,0\r\n"


def test_mqtt_messages_wait_in_the_client_while_the_host_does_not_read_and_come_in_order():
    with no_internal_errors():
        h = CoreHarness()
        conn = mqtt_connected(h)
        h.modem.set_output_blocked(True)
        count = 2000
        h.event(ev.TcpData(conn, b"".join(codec.encode_publish(f"t{i}", b"p" * 20) for i in range(count))))
        for _ in range(count // STEP + 2):
            h.advance(0.001)
        assert h.take_output() == b""
        assert kinds(h.take_effects()) == ["PauseReading"]
        held = h.modem.channel.held_urcs
        assert held.size <= held.limit // 2 and held.dropped == 0  # messages never take the others' room
        h.modem.set_output_blocked(False)
        out = h.take_output()
        for _ in range(count // STEP + 2):
            out += h.advance(0.001)
        assert re.findall(rb'\+QMTRECV: 0,0,"t(\d+)"', out) == [b"%d" % i for i in range(count)]
        assert kinds(h.take_effects()) == ["ResumeReading"]


def test_urcs_past_the_hold_are_dropped_and_counted_and_the_rest_come_in_order():
    with no_internal_errors():
        h = CoreHarness()
        seen: list[tuple[str, dict]] = []
        h.modem.observer = lambda kind, details: seen.append((kind, details))
        h.modem.set_output_blocked(True)
        line = "+QIURC: \"incoming full\""
        framed = len(f"\r\n{line}\r\n")
        for _ in range(5000):
            h.modem.emit_urc(line)
        assert h.take_output() == b""
        kept = HeldUrcs().limit // framed
        drops = [details["dropped"] for kind, details in seen if kind == "urc_dropped"]
        assert drops == list(range(1, 5000 - kept + 1))
        h.modem.set_output_blocked(False)
        assert h.take_output() == f"\r\n{line}\r\n".encode() * kept


def test_direct_push_waits_while_the_host_does_not_read_and_fills_the_buffer():
    with no_internal_errors():
        h = CoreHarness()
        conn = open_tcp(h, mode=1)
        h.modem.set_output_blocked(True)
        data = random.Random(9).randbytes(BUFFER + 5000)
        assert h.event(ev.TcpData(conn, data)) == b""
        assert kinds(h.take_effects()) == ["PauseReading"]
        h.modem.set_output_blocked(False)
        out = h.take_output()
        pushed = b""
        for header in re.finditer(rb'\+QIURC: "recv",0,(\d+)\r\n', out):
            pushed += out[header.end():header.end() + int(header[1])]
        assert pushed == data


def test_held_urcs_keep_their_order_up_to_the_limit():
    held = HeldUrcs(limit=10)
    assert held.hold(b"12345") and held.hold(b"6789")
    assert not held.hold(b"ab") and held.dropped == 1
    assert held.hold(b"0")
    out = bytearray()
    held.release(out.extend)
    assert out == b"1234567890" and not held and held.size == 0
