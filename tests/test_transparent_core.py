"""Transparent transmission mode and access-mode switching through the core (SSL note 1.4, 3.5).

Time is the harness's, so the ``+++`` guard times are exact to the microsecond.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecemu.core import events as ev
from tests.core_network import SimulatedNetwork, server_context
from tests.harness import CoreHarness
from tests.wire import CONNECT, ERROR, NO_CARRIER, OK

GUARD = 1.0


def make() -> tuple[CoreHarness, SimulatedNetwork]:
    h = CoreHarness(escape_guard=GUARD)
    assert h.command("AT+QIACT=1") == OK
    return h, SimulatedNetwork(h)


@pytest.fixture
def hn():
    return make()


def go_transparent(h, net, client=4) -> bytes:
    return h.command(f'AT+QSSLOPEN=1,1,{client},"127.0.0.1",8011,2') + net.run()


def escape(h) -> bytes:
    """+++ with a full guard time of silence before and after it."""
    out = h.advance(GUARD + 0.1)
    out += h.send(b"+++")
    return out + h.advance(GUARD + 0.1)


def state_of(h, client=4) -> bytes:
    return h.command(f"AT+QSSLSTATE={client}")


def test_open_in_transparent_mode_answers_connect_after_the_handshake(hn):
    h, net = hn
    assert h.command('AT+QSSLOPEN=1,1,4,"127.0.0.1",8011,2') == b""  # waits for the handshake
    assert net.run() == CONNECT
    assert h.modem.host.mode.value == "online"


def test_data_flows_unframed_both_ways(hn):
    h, net = hn
    go_transparent(h, net)
    payload = bytes(range(256)) * 4 + b"AT\r+++\r\nOK"
    assert h.send(payload) == b""
    net.run()
    assert net.server().received == payload[:1024]  # a whole packet at once (AT+QICFG defaults)
    h.advance(0.2)  # the rest after transwaittm
    net.run()
    assert net.server().received == payload
    assert net.run() == b""
    net.server().echo = False
    assert net.server_sends(net.server(), b"from server \x00\xff") == b"from server \x00\xff"


def test_open_failure_in_transparent_mode_answers_error_with_the_code(hn):
    h, net = hn
    net.fail_next.append("dns")
    assert go_transparent(h, net) == ERROR
    assert h.command("AT+QIGETERROR") == b"\r\n+QIGETERROR: 565,dns parse failed\r\n" + OK


def test_handshake_failure_in_transparent_mode_answers_error_566():
    h, _ = make()
    net = SimulatedNetwork(h, context=server_context("server-expired"))
    h.files.write("cacert.pem", __import__("ecemu.pki", fromlist=["x"]).generate_test_pki()["ca.pem"])
    h.command('AT+QSSLCFG="secllevel",1,1')
    h.command('AT+QSSLCFG="ignorelocaltime",1,0')
    assert go_transparent(h, net) == ERROR
    assert h.command("AT+QIGETERROR") == b"\r\n+QIGETERROR: 566,socket connection failed\r\n" + OK


def test_escape_with_guard_times_leaves_for_buffer_mode(hn):
    h, net = hn
    go_transparent(h, net)
    net.server().echo = False
    assert escape(h) == OK
    assert state_of(h).split(b",")[8] == b"0"  # <access_mode> is buffer access now
    assert net.server().received == b""  # the escape never reaches the server
    assert net.server_sends(net.server(), b"later") == b'\r\n+QSSLURC: "recv",4\r\n'
    assert h.command("AT+QSSLRECV=4") == b"\r\n+QSSLRECV: 5\r\nlater\r\n" + OK


def test_escape_needs_silence_before(hn):
    h, net = hn
    go_transparent(h, net)
    h.advance(5)
    h.send(b"x")
    h.advance(GUARD * 0.9)
    assert h.send(b"+++") == b""
    assert h.advance(GUARD * 2) == b""
    net.run()
    assert net.server().received == b"x+++"


def test_escape_needs_silence_after(hn):
    h, net = hn
    go_transparent(h, net)
    h.advance(GUARD + 0.1)
    h.send(b"+++")
    h.advance(GUARD * 0.5)
    assert h.send(b"y") == b""
    assert h.advance(GUARD * 2) == b""
    net.run()
    assert net.server().received == b"+++y"


def test_plus_typed_too_slowly_is_data(hn):
    h, net = hn
    go_transparent(h, net)
    h.advance(GUARD + 0.1)
    h.send(b"+")
    h.advance(GUARD * 0.6)
    h.send(b"+")
    h.advance(GUARD * 0.6)  # the three must come within the guard time
    h.send(b"+")
    assert h.advance(GUARD * 3) == b""
    net.run()
    assert net.server().received == b"+++"


def test_plus_inside_the_stream_is_data(hn):
    h, net = hn
    go_transparent(h, net)
    h.advance(GUARD + 0.1)
    assert h.send(b"a+++b") == b""
    assert h.advance(GUARD * 2) == b""
    net.run()
    assert net.server().received == b"a+++b"


def test_ato_returns_with_waiting_data_first(hn):
    h, net = hn
    go_transparent(h, net)
    side = net.server()
    side.echo = False
    escape(h)
    assert net.server_sends(side, b"waited ") == b'\r\n+QSSLURC: "recv",4\r\n'
    assert h.command("ATO") == CONNECT + b"waited "
    assert net.server_sends(side, b"newer") == b"newer"
    assert state_of(h) == b""  # in transparent mode this is data, not a command
    h.advance(0.2)  # transwaittm
    net.run()
    assert side.received.endswith(b"AT+QSSLSTATE=4\r")


def test_ato_without_a_transparent_connection_answers_no_carrier(hn):
    h, net = hn
    assert h.command("ATO") == NO_CARRIER
    h.command('AT+QSSLOPEN=1,1,3,"127.0.0.1",8011,0')
    net.run()
    assert h.command("ATO") == NO_CARRIER  # buffer mode from the start: never transparent


def test_qiswtmd_switches_every_way(hn):
    h, net = hn
    h.command('AT+QSSLOPEN=1,1,4,"127.0.0.1",8011,0')
    net.run()
    side = net.server()
    side.echo = False
    net.server_sends(side, b"one")
    assert h.command("AT+QISWTMD=4,1") == OK + b'\r\n+QSSLURC: "recv",4,3\r\none\r\n'
    assert net.server_sends(side, b"two") == b'\r\n+QSSLURC: "recv",4,3\r\ntwo\r\n'
    assert h.command("AT+QISWTMD=4,0") == OK
    assert net.server_sends(side, b"three") == b'\r\n+QSSLURC: "recv",4\r\n'
    assert h.command("AT+QISWTMD=4,2") == CONNECT + b"three"
    assert net.server_sends(side, b"four") == b"four"
    assert escape(h) == OK
    assert h.command("AT+QISWTMD=?") == b"\r\n+QISWTMD: (0-11),(0-2)\r\n" + OK


@pytest.mark.parametrize("line", ["AT+QISWTMD=4,3", "AT+QISWTMD=12,0", "AT+QISWTMD=4", "AT+QISWTMD=5,0"])
def test_qiswtmd_refuses_bad_input(hn, line):
    h, net = hn
    h.command('AT+QSSLOPEN=1,1,4,"127.0.0.1",8011,0')
    net.run()
    assert h.command(line) == ERROR


def test_peer_closing_in_transparent_mode_gives_no_carrier(hn):
    h, net = hn
    go_transparent(h, net)
    side = net.server()
    side.echo = False
    assert net.server_sends(side, b"last") == b"last"
    assert net.server_closes(side) == NO_CARRIER
    assert h.modem.host.mode.value == "command"
    assert state_of(h).split(b",")[5] == b"4"  # closing, until the host closes it (SSL note 2.3.2)
    assert h.command("ATO") == NO_CARRIER
    assert h.command("AT+QSSLCLOSE=4") == OK
    assert state_of(h) == OK


def test_dtr_drop_with_atd1_leaves_and_keeps_the_connection(hn):
    h, net = hn
    h.command("AT&D1")
    go_transparent(h, net)
    h.modem.set_dtr(False, h.now)
    assert h.take_output() == OK
    h.modem.set_dtr(True, h.now)
    assert state_of(h).split(b",")[5] == b"2"
    assert h.command("ATO") == CONNECT


def test_dtr_drop_with_atd2_closes_the_connection(hn):
    h, net = hn
    h.command("AT&D2")
    go_transparent(h, net)
    h.modem.set_dtr(False, h.now)
    assert h.take_output() == NO_CARRIER
    assert any(isinstance(e, ev.CloseTcp) for e in h.take_effects())
    assert state_of(h) == OK


def test_dtr_drop_with_atd0_changes_nothing(hn):
    h, net = hn
    h.command("AT&D0")
    go_transparent(h, net)
    h.modem.set_dtr(False, h.now)
    assert h.take_output() == b""
    assert h.modem.host.mode.value == "online"


def test_other_clients_keep_working_and_their_urcs_wait(hn):
    h, net = hn
    h.command('AT+QSSLOPEN=1,1,1,"127.0.0.1",8011,0')
    net.run()
    other = net.server()
    other.echo = False
    go_transparent(h, net)
    assert net.server_sends(other, b"meanwhile") == b""  # the port is not the URCs' now
    assert escape(h) == OK + b'\r\n+QSSLURC: "recv",1\r\n'
    assert h.command("AT+QSSLRECV=1") == b"\r\n+QSSLRECV: 9\r\nmeanwhile\r\n" + OK


def test_a_second_transparent_open_takes_the_port_the_first_stays_buffered(hn):
    h, net = hn
    go_transparent(h, net, client=1)
    escape(h)
    assert go_transparent(h, net, client=2) == CONNECT
    escape(h)
    assert h.command("AT+QSSLSTATE") .count(b",0,\"usbmodem\"") == 2
    assert h.command("ATO") == CONNECT  # back to the one that left last
    assert h.modem.host.online.socket.client_id == 2


def test_host_bytes_wait_while_the_server_does_not_take_them(hn):
    h, net = hn
    go_transparent(h, net)
    side = net.server()
    side.echo = False
    net.unacked.add(side.conn_id)
    limit = h.modem.profile.limits.send_buffer
    h.send(b"a" * (limit + 10))
    h.send(b"b" * 100)
    net.run()
    whole = (limit + 10) // 1024 * 1024
    assert len(side.received) == whole  # whole packets at once, the rest waits for transwaittm
    assert h.modem.input_backlog == 100  # the collected bytes are in the send buffer too
    h.advance(0.2)
    net.run()
    assert len(side.received) == limit + 10  # one batch went; the next waits its turn
    assert h.modem.input_backlog == 100
    h.event(ev.TcpDrained(side.conn_id))
    h.advance(0.2)
    net.run()
    assert side.received == b"a" * (limit + 10) + b"b" * 100


# --- a random stream through random switches ----------------------------------------------------


def _read_buffer(h, expected_len) -> bytes:
    data = b""
    while len(data) < expected_len:
        answer = h.command("AT+QSSLRECV=4,1500")
        head, _, rest = answer[2:].partition(b"\r\n")
        n = int(head.split(b": ")[1])
        assert n > 0, answer
        data += rest[:n]
        assert rest[n:] == b"\r\n" + OK
    return data


def _parse_pushes(out: bytes) -> bytes:
    data = b""
    while out:
        assert out.startswith(b'\r\n+QSSLURC: "recv",4,'), out[:40]
        head_end = out.index(b"\r\n", 2)
        n = int(out[len(b'\r\n+QSSLURC: "recv",4,'):head_end])
        data += out[head_end + 2: head_end + 2 + n]
        assert out[head_end + 2 + n: head_end + 4 + n] == b"\r\n"
        # Pushes of one block share the CR LF between a chunk's data and the next URC.
        following = out[head_end + 4 + n:]
        out = following if not following.startswith(b"+QSSLURC") else b"\r\n" + following
    return data


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["buffer", "push", "transparent"]),
                          st.integers(min_value=0, max_value=5000),
                          st.integers(min_value=0, max_value=3000)), min_size=1, max_size=8),
       st.integers(min_value=0, max_value=2**32))
def test_a_random_stream_survives_any_sequence_of_switches(steps, seed):
    """Each step: switch to a mode, the server sends N bytes, the host sends M bytes; in the end
    the host has received exactly what the server sent, and the server what the host sent."""
    rng = random.Random(seed)
    h, net = make()
    h.command('AT+QSSLOPEN=1,1,4,"127.0.0.1",8011,0')
    net.run()
    side = net.server()
    side.echo = False
    mode = "buffer"
    to_host, got_by_host, to_server = b"", b"", b""
    for target, down, up in steps:
        if target != mode:
            if mode == "transparent":
                assert escape(h) == OK
                mode = "buffer"
            if target == "transparent":
                out = h.command("ATO") if h.modem.families["ssl"].last_transparent else h.command("AT+QISWTMD=4,2")
                assert out.startswith(CONNECT)
                got_by_host += out[len(CONNECT):]
            elif target != mode:
                out = h.command(f"AT+QISWTMD=4,{0 if target == 'buffer' else 1}")
                assert out.startswith(OK)
                if target == "push":
                    got_by_host += _parse_pushes(out[len(OK):])
                else:
                    assert out[len(OK):] in (b"", b'\r\n+QSSLURC: "recv",4\r\n')
            mode = target
        chunk = rng.randbytes(down)
        to_host += chunk
        out = net.server_sends(side, chunk) if chunk else b""
        upward = rng.randbytes(up).replace(b"+", b"-")
        if mode == "transparent":
            got_by_host += out
            h.send(upward)
        elif mode == "push":
            got_by_host += _parse_pushes(out)
            if upward:
                h.command(f"AT+QSSLSEND=4,{min(len(upward), 1460)}")
                upward = upward[:1460]
                assert h.send(upward) == b"\r\nSEND OK\r\n"
        else:
            if upward:
                h.command(f"AT+QSSLSEND=4,{min(len(upward), 1460)}")
                upward = upward[:1460]
                assert h.send(upward) == b"\r\nSEND OK\r\n"
            got_by_host += _read_buffer(h, len(to_host) - len(got_by_host))
        to_server += upward
        net.run()
    if mode == "transparent":
        assert escape(h) == OK
        net.run()
    if mode != "push":
        h.command("AT+QISWTMD=4,0")
    got_by_host += _read_buffer(h, len(to_host) - len(got_by_host)) if len(got_by_host) < len(to_host) else b""
    assert got_by_host == to_host
    assert bytes(side.received) == to_server
