"""The socket core (ecemu.core.sockets) with no TLS on it: a plain TCP socket driven through its own
interface, and the transition tables of the socket and of the host mode."""

from __future__ import annotations

import pytest

from ecemu.commands import COMMAND_SET
from ecemu.core import events as ev
from ecemu.core.lifecycle import IllegalTransition, Transitions, guarded
from ecemu.core.modem import HOST_MODES, HostMode
from ecemu.core.registry import CommandSpec, Pending, Reply
from ecemu.core.results import QiError
from ecemu.core.sockets import (
    SHOWN_STATE,
    SOCKET_LIFECYCLE,
    AccessMode,
    Connection,
    OpenFailed,
    Phase,
    Socket,
    SocketFamily,
    SocketState,
)
from tests.harness import CoreHarness
from tests.wire import OK


@pytest.fixture
def h() -> CoreHarness:
    """conftest.py's ``h`` with context 1 active, where every socket starts."""
    harness = CoreHarness()
    assert harness.command("AT+QIACT=1") == OK
    return harness


@pytest.fixture
def family(h: CoreHarness, monkeypatch) -> SocketFamily:
    """Two plain sockets, and two test commands on socket 0 as a TCP family's would be:
    AT+ZCLOSE=<timeout> closes it, AT+ZOPEN opens it in transparent mode."""
    fam = SocketFamily(h.modem, [])
    fam.clients = [Socket(fam, n) for n in range(2)]

    def close(modem, call):
        reply = fam.client(0).close(float(call.args[0].text))
        return reply if reply is not None else Pending("+ZCLOSE")

    def open_transparent(modem, call):
        fam.client(0).open(1, "example.net", 7, AccessMode.TRANSPARENT)
        return Pending("+ZOPEN")

    monkeypatch.setitem(COMMAND_SET.commands, "+ZCLOSE", CommandSpec("+ZCLOSE", close, "test"))
    monkeypatch.setitem(COMMAND_SET.commands, "+ZOPEN", CommandSpec("+ZOPEN", open_transparent, "test"))
    return fam


def open_socket(h: CoreHarness, sock: Socket, mode: AccessMode = AccessMode.BUFFER) -> int:
    sock.open(1, "example.net", 7, mode)
    (effect,) = h.take_effects()
    assert isinstance(effect, ev.OpenTcp) and (effect.host, effect.port) == ("example.net", 7)
    return effect.conn_id


def connect(h: CoreHarness, sock: Socket, mode: AccessMode = AccessMode.BUFFER) -> int:
    conn = open_socket(h, sock, mode)
    out = h.event(ev.TcpConnected(conn, "192.0.2.7", 7, 40000))
    if mode is not AccessMode.TRANSPARENT:
        assert out == b"\r\n+QIOPEN: 0,0\r\n"
    return conn


# --- the tables ----------------------------------------------------------------------------------


def test_the_socket_life_cycle_allows_only_its_table():
    assert SOCKET_LIFECYCLE.next(Phase.INITIAL, "open") is Phase.OPENING
    assert SOCKET_LIFECYCLE.next(Phase.CONNECTED, "close") is Phase.HOST_CLOSING
    with pytest.raises(IllegalTransition, match="'established' is not allowed in state INITIAL"):
        SOCKET_LIFECYCLE.next(Phase.INITIAL, "established")
    with pytest.raises(IllegalTransition):
        SOCKET_LIFECYCLE.next(Phase.PEER_CLOSED, "close")


def test_two_phases_show_as_closing():
    assert SHOWN_STATE[Phase.PEER_CLOSED] is SHOWN_STATE[Phase.HOST_CLOSING] is SocketState.CLOSING
    assert [int(SHOWN_STATE[p]) for p in (Phase.INITIAL, Phase.OPENING, Phase.CONNECTED)] == [0, 1, 2]


@pytest.mark.internal_errors_expected
def test_an_illegal_transition_raises_and_the_guard_around_it_logs_it(caplog):
    table = Transitions("door", {(HostMode.COMMAND, "open"): HostMode.ONLINE})
    with pytest.raises(IllegalTransition, match="door: 'open' is not allowed in state BUSY"):
        table.next(HostMode.BUSY, "open")
    guarded(lambda: table.next(HostMode.BUSY, "open"))  # as the modem runs handlers, timers, events
    assert "door: 'open' is not allowed in state BUSY" in caplog.text


def test_the_host_mode_table():
    assert HOST_MODES.next(HostMode.BOOTING, "booted") is HostMode.COMMAND
    assert HOST_MODES.next(HostMode.COMMAND, "wait") is HostMode.BUSY
    assert HOST_MODES.next(HostMode.ONLINE, "leave") is HostMode.COMMAND
    for mode in (HostMode.BUSY, HostMode.DATA, HostMode.ONLINE, HostMode.BOOTING):
        with pytest.raises(IllegalTransition):
            HOST_MODES.next(mode, "connect")


def test_finishing_a_command_that_does_not_wait_is_an_illegal_transition(h):
    with pytest.raises(IllegalTransition, match="host mode"):
        h.modem.host.finish_pending(Reply())
    assert h.modem.host.mode is HostMode.COMMAND
    assert h.command("AT") == OK


# --- a plain TCP socket ----------------------------------------------------------------------------


def test_open_connect_receive_read(h, family):
    sock = family.client(0)
    conn = connect(h, sock)
    assert sock.connection.shown_state is SocketState.CONNECTED and sock.connection.remote_ip == "192.0.2.7"
    assert h.event(ev.TcpData(conn, b"hello")) == b'\r\n+QIURC: "recv",0\r\n'
    assert h.event(ev.TcpData(conn, b" world")) == b""  # one "recv" until the buffer is emptied
    assert sock.read(5) == b"hello"
    assert h.event(ev.TcpData(conn, b"!")) == b""
    assert sock.read(100) == b" world!"
    assert h.event(ev.TcpData(conn, b"again")) == b'\r\n+QIURC: "recv",0\r\n'


def test_a_socket_in_use_or_without_pdp_context_refuses_to_open(h, family):
    sock = family.client(0)
    connect(h, sock)
    with pytest.raises(OpenFailed) as in_use:
        sock.open(1, "example.net", 7, AccessMode.BUFFER)
    assert in_use.value.code is QiError.SOCKET_IN_USE
    with pytest.raises(OpenFailed) as no_pdp:
        family.client(1).open(2, "example.net", 7, AccessMode.BUFFER)
    assert no_pdp.value.code is QiError.OPEN_PDP_FAILED


def test_a_failed_connect_reports_its_code_and_frees_the_socket(h, family):
    sock = family.client(1)
    conn = open_socket(h, sock)
    assert h.event(ev.TcpConnectFailed(conn, "dns")) == b"\r\n+QIOPEN: 1,565\r\n"
    assert sock.connection.phase is Phase.INITIAL and sock.connection.conn_id is None


def test_a_full_buffer_pauses_reading_until_the_host_has_read_half(h, family):
    sock = family.client(0)
    conn = connect(h, sock)
    limit = h.modem.profile.limits.recv_buffer
    h.event(ev.TcpData(conn, b"x" * limit))
    assert h.take_effects() == [ev.PauseReading(conn)] and sock.connection.gate.paused
    sock.read(limit // 2 - 1)
    assert h.take_effects() == []
    sock.read(2)
    assert h.take_effects() == [ev.ResumeReading(conn)] and not sock.connection.gate.paused


def test_direct_push_and_the_closed_urc_behind_it(h, family):
    sock = family.client(0)
    conn = connect(h, sock, AccessMode.DIRECT_PUSH)
    assert h.event(ev.TcpData(conn, b"abc")) == b'\r\n+QIURC: "recv",0,3\r\nabc\r\n'
    assert h.event(ev.TcpClosed(conn)) == b'\r\n+QIURC: "closed",0\r\n'
    assert sock.connection.shown_state is SocketState.CLOSING
    assert sock.close(10) == Reply() and sock.connection.phase is Phase.INITIAL


def test_an_orderly_close_waits_for_the_servers_fin(h, family):
    sock = family.client(0)
    conn = connect(h, sock)
    assert h.command("AT+ZCLOSE=5") == b""  # the command waits
    assert h.take_effects() == [ev.ShutdownTcp(conn)] and sock.connection.phase is Phase.HOST_CLOSING
    assert h.event(ev.TcpClosed(conn)) == OK
    assert sock.connection.phase is Phase.INITIAL and h.take_effects() == [ev.CloseTcp(conn)]
    assert h.modem.host.mode is HostMode.COMMAND


def test_an_orderly_close_gives_up_after_its_timeout(h, family):
    sock = family.client(0)
    conn = connect(h, sock)
    assert h.command("AT+ZCLOSE=2") == b""
    h.take_effects()
    assert h.advance(1.9) == b""
    assert h.advance(0.2) == OK
    assert sock.connection.phase is Phase.INITIAL
    assert ev.CloseTcp(conn, abort=True) in h.take_effects()


def test_transparent_mode_takes_the_port_and_gives_it_back_with_the_connection(h, family):
    sock = family.client(0)
    assert h.command("AT+ZOPEN") == b""  # transparent mode's open waits as its command
    (opening,) = h.take_effects()
    conn = opening.conn_id
    assert h.event(ev.TcpConnected(conn, "192.0.2.7", 7, 40000)) == b"\r\nCONNECT\r\n"
    assert h.modem.host.mode is HostMode.ONLINE and h.modem.host.online is sock.session
    assert h.send(b"to the server") == b""
    h.advance(0.2)  # AT+QICFG="transwaittm"'s default
    assert h.take_effects() == [ev.SendTcp(conn, b"to the server")]
    assert h.event(ev.TcpData(conn, b"to the host")) == b"to the host"
    assert h.event(ev.TcpClosed(conn)) == b"\r\nNO CARRIER\r\n"
    assert h.modem.host.mode is HostMode.COMMAND and sock.connection.shown_state is SocketState.CLOSING


def test_a_pdp_context_taken_down_by_the_host_closes_its_sockets(h, family):
    sock = family.client(0)
    connect(h, sock)
    out = h.command("AT+QIDEACT=1")
    assert b'+QIURC: "closed",0' in out and sock.connection.phase is Phase.INITIAL


class Holder:
    """A holder of a connection that writes down what the connection tells it: the whole of what a
    connection may say to the socket that holds it (``ConnectionOwner``)."""

    client_id = 0

    def __init__(self) -> None:
        self.heard: list[tuple] = []

    def arrived(self, data: bytes) -> None:
        self.heard.append(("arrived", data))

    def peer_gone(self) -> None:
        self.heard.append(("peer_gone",))

    def opened(self, code: QiError) -> None:
        self.heard.append(("opened", code))

    def drained(self) -> None:
        self.heard.append(("drained",))

    def host_close_done(self) -> None:
        self.heard.append(("host_close_done",))

    def released(self) -> None:
        self.heard.append(("released",))

    def when_port_idle(self) -> bool:
        return False


def test_a_connection_tells_its_holder_its_life_through_the_owner_seam_alone(h, family):
    holder = Holder()
    connection = Connection(holder, family)
    connection.open(connection.may_open(1), 1, "example.net", 7)
    (opening,) = h.take_effects()
    conn = opening.conn_id
    h.event(ev.TcpConnected(conn, "192.0.2.7", 7, 40000))
    h.event(ev.TcpData(conn, b"hello"))
    connection.send(b"hi")
    h.event(ev.TcpDrained(conn))
    h.event(ev.TcpClosed(conn))
    assert connection.close(0) == Reply() and connection.phase is Phase.INITIAL
    assert holder.heard == [("opened", QiError.OK), ("arrived", b"hello"), ("drained",), ("peer_gone",),
                            ("released",)]
    assert h.take_output() == b""  # the holder, not the connection, speaks to the host

