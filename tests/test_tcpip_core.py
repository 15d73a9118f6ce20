"""The TCP/IP commands in the core, without I/O: every form, byte for byte, with the network's
events given by the test (TCP/IP note chapter 2)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecemu.core import events as ev
from ecemu.shell.trace import render_entry
from ecemu.trace_html import render_html
from tests.harness import CoreHarness
from tests.wire import CONNECT, ERROR, OK, SEND_OK


@pytest.fixture
def h():
    """conftest.py's ``h`` with context 1 active, where every socket starts."""
    harness = CoreHarness()
    assert harness.command("AT+QIACT=1") == OK
    return harness


def only(h: CoreHarness, kind):
    effects = h.take_effects()
    assert [type(e) for e in effects] == [kind], effects
    return effects[0]


def open_tcp(h: CoreHarness, connect_id: int = 0, mode: int = 0) -> int:
    answer = h.command(f'AT+QIOPEN=1,{connect_id},"TCP","192.0.2.7",8009,0,{mode}')
    opening = only(h, ev.OpenTcp)
    assert (opening.host, opening.port, opening.dns_servers) == ("192.0.2.7", 8009, ())
    if mode == 2:
        assert answer == b""
        assert h.event(ev.TcpConnected(opening.conn_id, "192.0.2.7", 8009, 65344)) == CONNECT
    else:
        assert answer == OK
        urc = f"\r\n+QIOPEN: {connect_id},0\r\n".encode()
        assert h.event(ev.TcpConnected(opening.conn_id, "192.0.2.7", 8009, 65344)) == urc
    return opening.conn_id


def error_code(h: CoreHarness) -> bytes:
    return h.command("AT+QIGETERROR").split(b"\r\n")[1]


def test_test_forms(h):
    assert h.command("AT+QIOPEN=?") == (b'\r\n+QIOPEN: (1-15),(0-11),"TCP/UDP/TCP LISTENER/UDP SERVICE",'
                                        b'"<IP_address>/<domain_name>",<remote_port>,<local_port>,(0-2)\r\n' + OK)
    assert h.command("AT+QISEND=?") == b"\r\n+QISEND: (0-11),(0-1460)\r\n" + OK
    assert h.command("AT+QIRD=?") == b"\r\n+QIRD: (0-11),(0-1500)\r\n" + OK
    assert h.command("AT+QICLOSE=?") == b"\r\n+QICLOSE: (0-11),(0-65535)\r\n" + OK
    assert h.command("AT+QISWTMD=?") == b"\r\n+QISWTMD: (0-11),(0-2)\r\n" + OK
    assert h.command("AT+QISTATE=?") == OK


def test_buffer_access_send_read_and_their_queries(h):
    conn = open_tcp(h)
    assert h.command("AT+QISTATE=1,0") == b'\r\n+QISTATE: 0,"TCP","192.0.2.7",8009,65344,2,1,0,0,"usbmodem"\r\n' + OK
    assert h.event(ev.TcpData(conn, b"test1")) == b'\r\n+QIURC: "recv",0\r\n'
    assert h.event(ev.TcpData(conn, b"more")) == b""  # one URC until the buffer has been emptied
    assert h.command("AT+QIRD=0,5") == b"\r\n+QIRD: 5\r\ntest1\r\n" + OK
    assert h.command("AT+QIRD=0,0") == b"\r\n+QIRD: 9,5,4\r\n" + OK
    assert h.command("AT+QIRD=0") == b"\r\n+QIRD: 4\r\nmore\r\n" + OK
    assert h.command("AT+QIRD=0") == b"\r\n+QIRD: 0\r\n" + OK
    assert h.event(ev.TcpData(conn, b"x")) == b'\r\n+QIURC: "recv",0\r\n'  # emptied: a new URC
    assert h.command("AT+QISEND=0,4") == b"\r\n> "
    assert h.send(b"test") == SEND_OK
    assert only(h, ev.SendTcp).data == b"test"
    assert h.command("AT+QISEND=0,0") == b"\r\n+QISEND: 4,0,4\r\n" + OK
    h.event(ev.TcpDrained(conn))
    assert h.command("AT+QISEND=0,0") == b"\r\n+QISEND: 4,4,0\r\n" + OK
    assert h.command("AT+QISEND=0") == b"\r\n> "
    assert h.send(b"ab\x1a") == SEND_OK
    assert h.command('AT+QISENDEX=0,"3132333435"') == SEND_OK
    assert [e.data for e in h.take_effects()] == [b"ab", b"12345"]
    assert h.command("AT+QISEND=0") == b"\r\n> "
    assert h.send(b"never\x1b") == ERROR
    assert error_code(h) == b"+QIGETERROR: 571,cancel send"
    assert h.take_effects() == []


@pytest.mark.parametrize("line", [
    'AT+QIOPEN=1,12,"TCP","192.0.2.7",80', 'AT+QIOPEN=0,0,"TCP","192.0.2.7",80', 'AT+QIOPEN=1,0,"SCTP","192.0.2.7",80',
    'AT+QIOPEN=1,0,"TCP","",80', 'AT+QIOPEN=1,0,"TCP","192.0.2.7",0', 'AT+QIOPEN=1,0,"TCP","192.0.2.7",80,0,3',
    'AT+QIOPEN=1,0,"TCP INCOMING","192.0.2.7",80', "AT+QIOPEN=1,0,TCP,\"192.0.2.7\",80", 'AT+QISENDEX=0,"313"',
    'AT+QISENDEX=0,"zz"', "AT+QIRD=0,1501", "AT+QICLOSE=12", "AT+QISTATE=2,0", "AT+QISTATE=1", 'AT+QICFG="nope"',
    'AT+QICFG="transpktsize",0', 'AT+QICFG="viewmode",2', 'AT+QIDNSGIP=1,""',
])
def test_bad_parameters_answer_error_552(h, line):
    assert h.command(line) == ERROR
    assert error_code(h) == b"+QIGETERROR: 552,invalid parameters"
    assert h.take_effects() == []


def test_commands_on_a_socket_not_open(h):
    assert h.command("AT+QISEND=0,4") == ERROR
    assert h.command("AT+QIRD=0") == ERROR
    assert h.command("AT+QISEND=0,0") == ERROR
    assert h.command("AT+QICLOSE=0") == OK
    assert h.command("AT+QISTATE") == OK


def test_context_not_active_reports_561_in_the_urc(h):
    assert h.command('AT+QIOPEN=2,0,"TCP","192.0.2.7",80') == OK + b"\r\n+QIOPEN: 0,561\r\n"
    assert h.take_effects() == []


@pytest.mark.parametrize("reason, code", [("dns", 565), ("refused", 566), ("timeout", 569)])
def test_connect_failures(h, reason, code):
    assert h.command('AT+QIOPEN=1,0,"TCP","example.invalid",80') == OK
    conn = only(h, ev.OpenTcp).conn_id
    assert h.event(ev.TcpConnectFailed(conn, reason)) == f"\r\n+QIOPEN: 0,{code}\r\n".encode()
    assert h.command("AT+QISTATE") == OK


def test_transparent_open_failure_is_the_commands_error(h):
    assert h.command('AT+QIOPEN=1,0,"TCP","192.0.2.7",80,0,2') == b""
    conn = only(h, ev.OpenTcp).conn_id
    assert h.event(ev.TcpConnectFailed(conn, "refused")) == ERROR
    assert error_code(h) == b"+QIGETERROR: 566,socket connection failed"


def test_direct_push_and_the_closed_urc_behind_it(h):
    conn = open_tcp(h, 1, mode=1)
    assert h.event(ev.TcpData(conn, b"hello")) == b'\r\n+QIURC: "recv",1,5\r\nhello\r\n'
    assert h.event(ev.TcpClosed(conn)) == b'\r\n+QIURC: "closed",1\r\n'
    assert h.command("AT+QISTATE=1,1").endswith(b',4,1,1,1,"usbmodem"\r\n' + OK)
    assert h.command("AT+QISEND=1,1") == ERROR
    assert error_code(h) == b"+QIGETERROR: 567,socket has been closed"
    assert h.command("AT+QICLOSE=1") == OK
    assert only(h, ev.CloseTcp).conn_id == conn


PUSH_URC = re.compile(rb'\r\n\+QIURC: "(recv|closed)",(\d)(?:,(\d+)\r\n|\r\n)')
PUSH_STEPS = st.lists(st.one_of(
    st.tuples(st.just("data"), st.integers(0, 2), st.binary(min_size=1, max_size=40)),
    st.tuples(st.just("close"), st.integers(0, 2)),
    # AT+QISEND's ">" holds URCs back; its byte comes at once or after the steps that follow
    st.tuples(st.just("prompt"), st.integers(0, 2), st.booleans()),
    st.tuples(st.just("dtr"), st.booleans()),
), max_size=25)


@settings(max_examples=60, deadline=None)
@given(PUSH_STEPS)
def test_direct_push_reaches_the_host_whole_and_in_order_at_every_idle_moment(steps):
    """Three direct push sockets, data and closes arriving while the port is busy (at a ``>``
    prompt) or DTR is low: once the port is idle with DTR up, every byte received has been pushed,
    in order, and each closed URC has followed its socket's data."""
    h = CoreHarness()
    assert h.command("AT+QIACT=1") == OK
    conns = [open_tcp(h, n, mode=1) for n in range(3)]
    sent: list[bytes] = [b"", b"", b""]
    closed = [False, False, False]
    out = bytearray()
    at_prompt = False
    for step in steps:
        if step[0] == "data" and not closed[step[1]]:
            sent[step[1]] += step[2]
            out += h.event(ev.TcpData(conns[step[1]], step[2]))
        elif step[0] == "close" and not closed[step[1]]:
            closed[step[1]] = True
            out += h.event(ev.TcpClosed(conns[step[1]]))
        elif step[0] == "prompt" and not at_prompt and not closed[step[1]]:
            out += h.command(f"AT+QISEND={step[1]},1")
            at_prompt = True
            if step[2]:
                out += h.send(b"z")
                at_prompt = False
        elif step[0] == "dtr":
            h.modem.set_dtr(step[1], h.now)
            out += h.take_output()
    if at_prompt:
        out += h.send(b"z")
    h.modem.set_dtr(True, h.now)
    out += h.take_output() + h.command("AT")  # an idle moment with DTR up
    pushed: list[bytes] = [b"", b"", b""]
    closed_urcs = [0, 0, 0]
    position = 0
    while position < len(out):  # the URCs in order, each push's data taken by its length
        urc = PUSH_URC.match(out, position)
        if urc is None:
            position += 1
            continue
        socket, position = int(urc[2]), urc.end()
        if urc[1] == b"recv":
            pushed[socket] += out[position:position + int(urc[3])]
            position += int(urc[3])
        else:
            assert pushed[socket] == sent[socket], "closed URC before all of its data"
            closed_urcs[socket] += 1
    assert pushed == sent
    assert closed_urcs == [int(c) for c in closed]


def test_close_waits_for_the_peers_fin_or_its_timeout(h):
    conn = open_tcp(h)
    assert h.command("AT+QICLOSE=0") == b""
    assert [type(e) for e in h.take_effects()] == [ev.ShutdownTcp]
    assert h.command("AT") == b""  # waits behind the close
    assert h.event(ev.TcpClosed(conn)) == OK + OK
    assert h.take_effects() == [ev.CloseTcp(conn)]
    conn = open_tcp(h)
    assert h.command("AT+QICLOSE=0,3") == b""
    assert h.advance(2.9) == b""
    assert h.advance(0.2) == OK  # closed by force
    assert ev.CloseTcp(conn, abort=True) in h.take_effects()
    conn = open_tcp(h)
    assert h.command("AT+QICLOSE=0,0") == OK
    assert h.take_effects() == [ev.CloseTcp(conn)]


def test_state_by_context_and_by_id(h):
    open_tcp(h, 0)
    open_tcp(h, 5)
    lines = h.command("AT+QISTATE?")
    assert lines.startswith(b'\r\n+QISTATE: 0,"TCP"') and b'\r\n+QISTATE: 5,"TCP"' in lines
    assert h.command("AT+QISTATE") == lines
    assert h.command("AT+QISTATE=0,1") == lines
    assert h.command("AT+QISTATE=0,2") == OK
    assert h.command("AT+QISTATE=1,5") == b'\r\n+QISTATE: 5,"TCP","192.0.2.7",8009,65344,2,1,5,0,"usbmodem"\r\n' + OK
    assert h.command("AT+QISTATE=1,6") == OK


def test_connect_ids_and_ssl_client_ids_are_one_pool(h):
    open_tcp(h, 3)
    assert h.command('AT+QSSLOPEN=1,1,3,"192.0.2.7",443') == ERROR
    assert error_code(h) == b"+QIGETERROR: 563,socket identity has been used"
    assert h.command('AT+QSSLOPEN=1,1,4,"192.0.2.7",443') == OK
    only(h, ev.OpenTcp)
    assert h.command('AT+QIOPEN=1,4,"TCP","192.0.2.7",80') == ERROR
    assert error_code(h) == b"+QIGETERROR: 563,socket identity has been used"
    assert h.command('AT+QIOPEN=1,3,"TCP","192.0.2.7",80') == ERROR  # its own, in use


def test_qiswtmd_switches_a_tcp_socket_and_ato_returns(h):
    conn = open_tcp(h, 2)
    assert h.event(ev.TcpData(conn, b"one")) == b'\r\n+QIURC: "recv",2\r\n'
    assert h.command("AT+QISWTMD=2,1") == OK + b'\r\n+QIURC: "recv",2,3\r\none\r\n'
    assert h.command("AT+QISWTMD=2,2") == CONNECT
    assert h.event(ev.TcpData(conn, b"two")) == b"two"
    h.send(b"up")
    h.advance(0.19)
    assert not h.take_effects()  # held for transwaittm (AT+QICFG's default: 200 ms)
    h.advance(0.01)
    assert only(h, ev.SendTcp).data == b"up"
    h.advance(1.1)
    assert h.send(b"+++") == b""
    assert h.advance(1.1) == OK
    assert h.command("ATO") == CONNECT
    assert h.event(ev.TcpClosed(conn)) == b"\r\nNO CARRIER\r\n"
    assert h.command("AT+QISWTMD=2,0") == ERROR
    assert error_code(h) == b"+QIGETERROR: 567,socket has been closed"
    assert h.command("AT+QISWTMD=7,0") == ERROR
    assert error_code(h) == b"+QIGETERROR: 572,operation not allowed"


def test_pdp_drop_reports_pdpdeact_then_each_closed(h):
    open_tcp(h, 0)
    open_tcp(h, 1)
    h.modem.families["pdp"].network_drop(1)
    assert h.take_output() == b'\r\n+QIURC: "pdpdeact",1\r\n\r\n+QIURC: "closed",0\r\n\r\n+QIURC: "closed",1\r\n'
    assert h.command("AT+QICLOSE=0") == OK and h.command("AT+QICLOSE=1") == OK


def test_qideact_closes_the_sockets_without_a_closed_urc(h):
    """The TCP/IP notes: "closed" reports a close by the peer or the network (the socket then
    waits in state 4 for AT+QICLOSE); AT+QIDEACT closes every connection on the context itself.
    So the OK comes alone, each connection is closed at once and its connectID is free again."""
    first = open_tcp(h, 0)
    second = open_tcp(h, 3, mode=1)
    assert h.event(ev.TcpData(first, b"unread")) == b'\r\n+QIURC: "recv",0\r\n'
    assert h.command("AT+QIDEACT=1") == OK
    closed = [e.conn_id for e in h.take_effects() if isinstance(e, ev.CloseTcp)]
    assert sorted(closed) == sorted([first, second])
    assert h.advance(1.0) == b""  # no "closed" later either
    assert h.command("AT+QISTATE?") == OK  # nothing left open
    assert h.command("AT+QIACT=1") == OK
    open_tcp(h, 0)  # connectID 0 is free again
    # With AT+QICFG="close/mode",1 AT+QICLOSE's OK is followed by "closed"; AT+QIDEACT's is not.
    assert h.command('AT+QICFG="close/mode",1') == OK
    assert h.command("AT+QIDEACT=1") == OK
    assert h.advance(1.0) == b""


def test_the_trace_tells_a_plain_tcp_close_from_a_tls_one(h):
    """A TCP socket the server closed is a "socket" event in the trace, not "TLS"."""
    seen: list[tuple[str, dict]] = []
    h.modem.observer = lambda kind, details: seen.append((kind, details))
    conn = open_tcp(h, 0)
    assert h.event(ev.TcpClosed(conn)) == b'\r\n+QIURC: "closed",0\r\n'
    closes = [(kind, details) for kind, details in seen if details.get("event") == "closed by peer or network"]
    assert closes == [("socket", {"client": 0, "event": "closed by peer or network", "detail": ""})]
    line = render_entry({"t": 1.5, "kind": "socket", "modem": 0, **closes[0][1]})
    assert line == "     1.500  #0  socket         closed by peer or network  client=0"
    page = render_html([{"t": 1.5, "kind": "socket", "modem": 0, **closes[0][1]}])
    assert "socket 0: <span class=\"event\">closed by peer or network</span>" in page
    assert "TLS client 0" not in page


def test_udp_client_keeps_datagram_bounds(h):
    assert h.command('AT+QIOPEN=1,2,"UDP","192.0.2.9",5000,0,0') == OK
    opening = only(h, ev.OpenUdp)
    assert (opening.host, opening.port, opening.local_port) == ("192.0.2.9", 5000, 0)
    assert h.event(ev.UdpOpened(opening.conn_id, "192.0.2.9", 40001)) == b"\r\n+QIOPEN: 2,0\r\n"
    assert h.command("AT+QISEND=2,3") == b"\r\n> "
    assert h.send(b"abc") == SEND_OK
    assert only(h, ev.SendDatagram) == ev.SendDatagram(opening.conn_id, b"abc", "", 0)
    assert h.event(ev.UdpDatagram(opening.conn_id, b"first", "192.0.2.9", 5000)) == b'\r\n+QIURC: "recv",2\r\n'
    assert h.event(ev.UdpDatagram(opening.conn_id, b"second", "192.0.2.9", 5000)) == b""
    assert h.command("AT+QIRD=2,3") == b"\r\n+QIRD: 3\r\nfir\r\n" + OK
    assert h.command("AT+QIRD=2") == b"\r\n+QIRD: 2\r\nst\r\n" + OK
    assert h.command("AT+QIRD=2") == b"\r\n+QIRD: 6\r\nsecond\r\n" + OK
    assert h.command("AT+QISTATE=1,2") == b'\r\n+QISTATE: 2,"UDP","192.0.2.9",5000,40001,2,1,2,0,"usbmodem"\r\n' + OK
    assert h.command("AT+QICLOSE=2") == OK
    assert only(h, ev.CloseTcp).conn_id == opening.conn_id


def test_udp_service_names_peers_both_ways(h):
    assert h.command('AT+QIOPEN=1,4,"UDP SERVICE","127.0.0.1",0,3030,1') == OK
    opening = only(h, ev.OpenUdp)
    assert (opening.host, opening.local_port) == ("", 3030)
    assert h.event(ev.UdpOpened(opening.conn_id, "", 3030)) == b"\r\n+QIOPEN: 4,0\r\n"
    assert h.command("AT+QISTATE=1,4") == b'\r\n+QISTATE: 4,"UDP SERVICE","127.0.0.1",0,3030,3,1,4,1,"usbmodem"\r\n' + OK
    assert h.event(ev.UdpDatagram(opening.conn_id, b"hi", "10.1.2.3", 7687)) == (
        b'\r\n+QIURC: "recv",4,2,"10.1.2.3",7687\r\nhi\r\n')
    assert h.command('AT+QISEND=4,4,"10.1.2.3",7687') == b"\r\n> "
    assert h.send(b"back") == SEND_OK
    assert only(h, ev.SendDatagram) == ev.SendDatagram(opening.conn_id, b"back", "10.1.2.3", 7687)
    assert h.command("AT+QISEND=4,4") == ERROR
    assert h.command("AT+QISWTMD=4,0") == ERROR  # a server has no connection to switch
    assert h.command("AT+QICLOSE=4") == OK
    assert h.take_effects() == [ev.CloseTcp(opening.conn_id)]
    assert h.command('AT+QIOPEN=1,4,"UDP SERVICE","127.0.0.1",0,3030,0') == OK
    opening = only(h, ev.OpenUdp)
    h.event(ev.UdpOpened(opening.conn_id, "", 3030))
    h.event(ev.UdpDatagram(opening.conn_id, b"abc", "10.1.2.3", 7687))
    assert h.command("AT+QIRD=4") == b'\r\n+QIRD: 3,"10.1.2.3",7687\r\nabc\r\n' + OK


def test_listener_hands_connections_to_free_ids_then_is_full(h):
    assert h.command('AT+QIOPEN=1,11,"TCP LISTENER","127.0.0.1",0,2020,0') == OK
    listen = only(h, ev.Listen)
    assert listen.port == 2020
    assert h.event(ev.Listening(listen.conn_id, 2020)) == b"\r\n+QIOPEN: 11,0\r\n"
    assert h.command("AT+QISTATE=1,11") == (
        b'\r\n+QISTATE: 11,"TCP LISTENER","127.0.0.1",0,2020,3,1,11,0,"usbmodem"\r\n' + OK)
    open_tcp(h, 0)
    assert h.event(ev.TcpIncoming(listen.conn_id, 7, "127.0.0.1", 50111, 2020)) == (
        b'\r\n+QIURC: "incoming",1,11,"127.0.0.1",50111\r\n')
    accepted = only(h, ev.AcceptTcp)
    assert accepted.token == 7
    assert h.command("AT+QISTATE=1,1") == (
        b'\r\n+QISTATE: 1,"TCP INCOMING","127.0.0.1",50111,2020,2,1,11,0,"usbmodem"\r\n' + OK)
    assert h.event(ev.TcpData(accepted.conn_id, b"hey")) == b'\r\n+QIURC: "recv",1\r\n'
    assert h.command("AT+QIRD=1") == b"\r\n+QIRD: 3\r\nhey\r\n" + OK
    for connect_id in range(2, 11):
        h.event(ev.TcpIncoming(listen.conn_id, 100 + connect_id, "127.0.0.1", 50000 + connect_id, 2020))
        assert only(h, ev.AcceptTcp).token == 100 + connect_id
    assert h.event(ev.TcpIncoming(listen.conn_id, 999, "127.0.0.1", 50999, 2020)) == b'\r\n+QIURC: "incoming full"\r\n'
    assert h.take_effects() == [ev.RefuseTcp(999)]
    assert h.command("AT+QICLOSE=11") == OK
    assert h.take_effects() == [ev.CloseTcp(listen.conn_id)]
    assert h.command("AT+QISTATE=1,1").endswith(b',2,1,11,0,"usbmodem"\r\n' + OK)  # accepted ones stay


def test_dnsgip_reports_every_address(h):
    assert h.command('AT+QIDNSGIP=1,"example.com"') == OK
    resolve = only(h, ev.Resolve)
    assert (resolve.host, resolve.dns_servers) == ("example.com", ())
    assert h.event(ev.Resolved(resolve.conn_id, ("192.0.2.1", "192.0.2.2"))) == (
        b'\r\n+QIURC: "dnsgip",0,2,600\r\n\r\n+QIURC: "dnsgip","192.0.2.1"\r\n\r\n+QIURC: "dnsgip","192.0.2.2"\r\n')
    assert h.command('AT+QIDNSCFG=1,"192.0.2.53"') == OK
    assert h.command('AT+QIDNSGIP=1,"nowhere.invalid"') == OK
    resolve = only(h, ev.Resolve)
    assert resolve.dns_servers == ("192.0.2.53",)
    assert h.event(ev.Resolved(resolve.conn_id, ())) == b'\r\n+QIURC: "dnsgip",565\r\n'
    assert h.command('AT+QIDNSGIP=2,"example.com"') == ERROR
    assert error_code(h) == b"+QIGETERROR: 561,open pdp context failed"


def test_qicfg_sets_and_reads_back(h):
    assert h.command('AT+QICFG="transpktsize"') == b'\r\n+QICFG: "transpktsize",1024\r\n' + OK
    assert h.command('AT+QICFG="transpktsize",512') == OK
    assert h.command('AT+QICFG="transpktsize"') == b'\r\n+QICFG: "transpktsize",512\r\n' + OK
    assert h.command('AT+QICFG="dataformat",0,0') == OK
    assert h.command('AT+QICFG="tcp/keepalive",1,60,30,5') == OK
    assert h.command('AT+QICFG="tcp/keepalive"') == b'\r\n+QICFG: "tcp/keepalive",1,60,30,5\r\n' + OK
    assert h.command('AT+QICFG="tcp/keepalive",0') == OK
    assert h.command('AT+QICFG="tcp/keepalive",1') == ERROR
    assert h.command('AT+QICFG="dataformat",1,1') == OK
    assert h.command('AT+QICFG="dataformat"') == b'\r\n+QICFG: "dataformat",1,1\r\n' + OK
    assert h.command('AT+QICFG="dataformat",1') == ERROR  # both formats or none
    assert h.command('AT+QICFG="viewmode"') == b'\r\n+QICFG: "viewmode",0\r\n' + OK
    assert h.command('AT+QICFG="viewmode",1') == OK
    assert h.command('AT+QICFG="viewmode"') == b'\r\n+QICFG: "viewmode",1\r\n' + OK
    assert h.command('AT+QICFG="close/mode"') == b'\r\n+QICFG: "close/mode",0\r\n' + OK
    assert h.command('AT+QICFG="close/mode",1') == OK
    assert h.command('AT+QICFG="close/mode"') == b'\r\n+QICFG: "close/mode",1\r\n' + OK
    assert h.command('AT+QICFG="close/mode",2') == ERROR
    assert h.command('AT+QICFG="recv/buffersize"') == b'\r\n+QICFG: "recv/buffersize",65536\r\n' + OK
    assert h.command('AT+QICFG="recv/buffersize",10239') == ERROR  # an EG25-G's range: 10240-524288
    assert error_code(h) == b"+QIGETERROR: 552,invalid parameters"
    assert h.command('AT+QICFG="recv/buffersize",10240') == OK
    assert h.command('AT+QICFG="recv/buffersize"') == b'\r\n+QICFG: "recv/buffersize",10240\r\n' + OK


def test_recv_buffersize_is_what_a_socket_buffers_before_it_stops_reading(h):
    conn = open_tcp(h)
    h.take_effects()
    h.event(ev.TcpData(conn, b"x" * 10240))
    assert not any(isinstance(e, ev.PauseReading) for e in h.take_effects())  # the profile's 64 KiB
    assert h.command('AT+QICFG="recv/buffersize",10240') == OK
    h.event(ev.TcpData(conn, b"y"))
    assert [e for e in h.take_effects() if isinstance(e, ev.PauseReading)] == [ev.PauseReading(conn)]


def test_qicfg_test_form_lists_every_setting(h):
    assert h.command("AT+QICFG=?") == (
        b'\r\n+QICFG: "transpktsize",(1-1460)\r\n+QICFG: "transwaittm",(0-20)\r\n'
        b'+QICFG: "dataformat",(0-1),(0-1)\r\n+QICFG: "viewmode",(0-1)\r\n'
        b'+QICFG: "tcp/retranscfg",(3-20),(1000-6000)\r\n'
        b'+QICFG: "tcp/keepalive",(0-1),(1-120),(25-100),(3-10)\r\n+QICFG: "close/mode",(0-1)\r\n'
        b'+QICFG: "recv/buffersize",(10240-524288)\r\n' + OK)


def test_viewmode_lays_out_reads_and_pushes(h):
    conn = open_tcp(h)
    assert h.command('AT+QICFG="viewmode",1') == OK
    h.event(ev.TcpData(conn, b"a\r\nb"))
    assert h.command("AT+QIRD=0,2") == b"\r\n+QIRD: 2,a\r\r\n" + OK
    assert h.command("AT+QIRD=0") == b"\r\n+QIRD: 2,\nb\r\n" + OK
    assert h.command("AT+QIRD=0") == b"\r\n+QIRD: 0\r\n" + OK  # nothing: no comma, no data
    assert h.command("AT+QIRD=0,0") == b"\r\n+QIRD: 4,4,0\r\n" + OK  # the query is not data
    assert h.command("AT+QISWTMD=0,1") == OK
    assert h.event(ev.TcpData(conn, b"pushed")) == b'\r\n+QIURC: "recv",0,6,pushed\r\n'
    assert h.command('AT+QICFG="viewmode",0') == OK  # back: the data on its own line
    assert h.event(ev.TcpData(conn, b"x")) == b'\r\n+QIURC: "recv",0,1\r\nx\r\n'


def test_viewmode_for_a_udp_service_keeps_the_sender_in_the_header(h):
    assert h.command('AT+QICFG="viewmode",1') == OK
    assert h.command('AT+QIOPEN=1,4,"UDP SERVICE","127.0.0.1",0,3030,1') == OK
    opening = only(h, ev.OpenUdp)
    h.event(ev.UdpOpened(opening.conn_id, "", 3030))
    assert h.event(ev.UdpDatagram(opening.conn_id, b"hi", "10.1.2.3", 7687)) == (
        b'\r\n+QIURC: "recv",4,2,"10.1.2.3",7687,hi\r\n')
    assert h.command("AT+QICLOSE=4") == OK
    assert h.take_effects() == [ev.CloseTcp(opening.conn_id)]
    assert h.command('AT+QIOPEN=1,4,"UDP SERVICE","127.0.0.1",0,3030,0') == OK
    opening = only(h, ev.OpenUdp)
    h.event(ev.UdpOpened(opening.conn_id, "", 3030))
    h.event(ev.UdpDatagram(opening.conn_id, b"abc", "10.1.2.3", 7687))
    assert h.command("AT+QIRD=4") == b'\r\n+QIRD: 3,"10.1.2.3",7687,abc\r\n' + OK


def test_hex_dataformat_sends_and_receives_hex_digits(h):
    conn = open_tcp(h)
    assert h.command('AT+QICFG="dataformat",1,1') == OK
    # <send_length> counts bytes: 3 bytes are 6 digits, either case.
    assert h.command("AT+QISEND=0,3") == b"\r\n> "
    assert h.send(b"00fF1a") == SEND_OK
    assert only(h, ev.SendTcp).data == b"\x00\xff\x1a"
    assert h.command("AT+QISEND=0") == b"\r\n> "
    assert h.send(b"0D0A\x1a") == SEND_OK  # Ctrl+Z ends the digits
    assert only(h, ev.SendTcp).data == b"\r\n"
    assert h.command("AT+QISEND=0,2") == b"\r\n> "
    assert h.send(b"41zz") == ERROR  # not hex digits: nothing is sent
    assert h.take_effects() == []
    assert h.command("AT+QISEND=0,1") == b"\r\n> "
    assert h.send(b"4") == b""  # half of the byte: waits for the other digit
    assert h.send(b"1") == SEND_OK
    assert only(h, ev.SendTcp).data == b"A"
    assert h.command("AT+QISEND=0") == b"\r\n> "
    assert h.send(b"414\x1a") == ERROR  # half a byte
    assert h.command("AT+QISEND=0") == b"\r\n> "
    assert h.send(b"41\x1b") == ERROR  # ESC cancels
    assert error_code(h) == b"+QIGETERROR: 571,cancel send"
    assert h.command('AT+QISENDEX=0,"4142"') == SEND_OK  # hex already: unchanged
    assert only(h, ev.SendTcp).data == b"AB"
    assert h.command("AT+QISEND=0,0") == b"\r\n+QISEND: 8,0,8\r\n" + OK  # bytes, not digits
    # Received bytes go to the host as two upper-case digits each; the length stays in bytes.
    assert h.event(ev.TcpData(conn, b"\x00\r\n\xab")) == b'\r\n+QIURC: "recv",0\r\n'
    assert h.command("AT+QIRD=0,3") == b"\r\n+QIRD: 3\r\n000D0A\r\n" + OK
    assert h.command('AT+QICFG="viewmode",1') == OK
    assert h.command("AT+QIRD=0") == b"\r\n+QIRD: 1,AB\r\n" + OK
    assert h.command("AT+QISWTMD=0,1") == OK
    assert h.event(ev.TcpData(conn, b"\x01\x02")) == b'\r\n+QIURC: "recv",0,2,0102\r\n'
    assert h.command('AT+QICFG="dataformat",0,0') == OK  # text again, both ways
    assert h.event(ev.TcpData(conn, b"ok")) == b'\r\n+QIURC: "recv",0,2,ok\r\n'
    assert h.command("AT+QISEND=0,2") == b"\r\n> "
    assert h.send(b"41") == SEND_OK
    assert only(h, ev.SendTcp).data == b"41"


def test_hex_send_to_a_udp_service_peer(h):
    assert h.command('AT+QICFG="dataformat",1,0') == OK
    assert h.command('AT+QIOPEN=1,4,"UDP SERVICE","127.0.0.1",0,3030,1') == OK
    opening = only(h, ev.OpenUdp)
    h.event(ev.UdpOpened(opening.conn_id, "", 3030))
    assert h.command('AT+QISEND=4,2,"10.1.2.3",7687') == b"\r\n> "
    assert h.send(b"6869") == SEND_OK
    assert only(h, ev.SendDatagram) == ev.SendDatagram(opening.conn_id, b"hi", "10.1.2.3", 7687)
    assert h.event(ev.UdpDatagram(opening.conn_id, b"hi", "10.1.2.3", 7687)) == (  # text received
        b'\r\n+QIURC: "recv",4,2,"10.1.2.3",7687\r\nhi\r\n')


def test_close_mode_reports_the_hosts_close_after_its_ok(h):
    assert h.command('AT+QICFG="close/mode",1') == OK
    assert h.command("AT+QICLOSE=0") == OK  # nothing was open: nothing closed, no URC
    conn = open_tcp(h)
    assert h.command("AT+QICLOSE=0") == b""
    assert [type(e) for e in h.take_effects()] == [ev.ShutdownTcp]
    assert h.event(ev.TcpClosed(conn)) == OK + b'\r\n+QIURC: "closed",0\r\n'
    assert h.take_effects() == [ev.CloseTcp(conn)]
    conn = open_tcp(h)
    assert h.command("AT+QICLOSE=0,0") == OK + b'\r\n+QIURC: "closed",0\r\n'
    assert h.take_effects() == [ev.CloseTcp(conn)]
    conn = open_tcp(h)
    assert h.command("AT+QICLOSE=0,2") == b""
    assert h.advance(2.1) == OK + b'\r\n+QIURC: "closed",0\r\n'  # closed by force, closed all the same
    h.take_effects()
    assert h.command('AT+QICFG="close/mode",0') == OK
    conn = open_tcp(h)
    assert h.command("AT+QICLOSE=0,0") == OK


def test_cr_lf_line_end_before_the_data(h):
    open_tcp(h)
    assert h.send(b"AT+QISEND=0,3\r\n") == b"\r\n> "
    assert h.send(b"abc") == SEND_OK
    assert only(h, ev.SendTcp).data == b"abc"


def test_qping_echoes_then_the_summary(h):
    assert h.command('AT+QPING=1,"example.com",2,3') == OK
    replies = [ev.PingReply(0, "192.0.2.1", 40), ev.PingReply(0, "192.0.2.1", None, "timeout"),
               ev.PingReply(0, "192.0.2.1", 80)]
    out = b""
    for reply in replies:
        ping = only(h, ev.Ping)
        assert (ping.host, ping.timeout) == ("example.com", 2.0)
        out += h.event(ev.PingReply(ping.conn_id, reply.address, reply.milliseconds, reply.failure))
    assert h.take_effects() == []
    assert out == (b'\r\n+QPING: 0,"192.0.2.1",32,40,64\r\n\r\n+QPING: 569\r\n'
                   b'\r\n+QPING: 0,"192.0.2.1",32,80,64\r\n\r\n+QPING: 0,3,2,1,40,80,60\r\n')
    assert h.command('AT+QPING=1,"nowhere.invalid"') == OK
    ping = only(h, ev.Ping)
    assert h.event(ev.PingReply(ping.conn_id, "", None, "dns")) == b"\r\n+QPING: 565\r\n"
    assert h.command('AT+QPING=1,"example.com",0') == ERROR
    assert h.command('AT+QPING=1,"example.com",4,11') == ERROR


def test_qntp_sets_the_clock_in_the_modules_zone(h):
    # The server's UTC, then the zone: an EG800K (EG800KCNGCR07A06M04) and an EC200U in zone +32
    # answered +QNTP: 0,"2026/08/06,12:40:04+32" while AT+CCLK? read 20:40 (REFERENCE.md "Time").
    assert h.command('AT+CCLK="26/01/02,03:04:05+08"') == OK
    assert h.command('AT+QNTP=1,"ntp.example",1123') == OK
    query = only(h, ev.QueryNtp)
    assert (query.host, query.port) == ("ntp.example", 1123)
    utc = 1767225600.0  # 2026-01-01 00:00:00 UTC
    assert h.event(ev.NtpTime(query.conn_id, utc)) == b'\r\n+QNTP: 0,"2026/01/01,00:00:00+08"\r\n'
    assert h.command("AT+CCLK?") == b'\r\n+CCLK: "26/01/01,02:00:00+08"\r\n' + OK
    assert h.command('AT+QNTP=1,"ntp.example",123,0') == OK
    query = only(h, ev.QueryNtp)
    assert h.event(ev.NtpTime(query.conn_id, utc + 3600)) == b'\r\n+QNTP: 0,"2026/01/01,01:00:00+08"\r\n'
    assert h.command("AT+CCLK?") == b'\r\n+CCLK: "26/01/01,02:00:00+08"\r\n' + OK  # not set
    assert h.command('AT+QNTP=1,"ntp.example"') == OK
    query = only(h, ev.QueryNtp)
    assert h.event(ev.NtpTime(query.conn_id, None, "timeout")) == b"\r\n+QNTP: 569\r\n"
