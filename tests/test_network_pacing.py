"""The simulated network's queue (``ecemu.shell.network``), on a real event loop with real sockets:
it keeps bytes in order, gives the loop back between turns, delivers nothing while the core has
paused the connection, stops reading a socket beyond its bound, and drops and counts datagrams
beyond it. Event-driven: what is checked is what ran in which turn, never how long anything took."""

from __future__ import annotations

import asyncio
import socket

from ecemu.core import events as ev
from ecemu.shell import network
from ecemu.shell.network import EOF, NETWORK_HOLD, Network, _Datagrams, _Delay


def run(coroutine) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 30))


def test_a_large_chunk_goes_out_in_order_in_pieces_and_the_loop_turns_between_them(monkeypatch):
    """Each piece costs 'time' (a clock that moves by 40 % of a turn per piece): a turn ends after
    three, and a callback scheduled meanwhile runs before the rest."""
    now = [0.0]
    monkeypatch.setattr(network.time, "perf_counter", lambda: now[0])

    async def main() -> None:
        net = Network(lambda event: None)
        got: list[bytes] = []
        log: list[str] = []

        def deliver(piece: bytes) -> None:
            got.append(piece)
            log.append("piece")
            now[0] += network.TURN * 0.4  # each piece takes 40 % of a turn: three end it

        def other() -> None:
            log.append("other")
            if delay.queue:
                asyncio.get_running_loop().call_soon(other)

        delay = _Delay(net, deliver)
        data = bytes(range(256)) * 4096  # 1 MiB
        asyncio.get_running_loop().call_soon(other)
        delay.push(data)
        delay.push(EOF)
        while delay.queue:
            await asyncio.sleep(0)
        assert b"".join(piece for piece in got if piece is not EOF) == data
        assert got[-1] is EOF
        assert len(got) > 4
        # never more than three pieces in a row: the turn ends, and the other callback runs
        runs = "".join("p" if entry == "piece" else "o" for entry in log)
        assert "pppp" not in runs and "o" in runs

    run(main())


def test_nothing_is_delivered_while_held_and_all_of_it_after_in_order():
    async def main() -> None:
        net = Network(lambda event: None)
        got: list[bytes] = []
        delay = _Delay(net, got.append)
        delay.hold(True)
        for index in range(10):
            delay.push(b"%d," % index)
        for _ in range(5):
            await asyncio.sleep(0)
        assert got == [] and delay.size == 20
        delay.hold(False)
        while delay.queue:
            await asyncio.sleep(0)
        assert b"".join(got) == b"".join(b"%d," % index for index in range(10))

    run(main())


async def connected(net: Network):
    """Connection 1 of ``net`` to a server on 127.0.0.1: (the network's connection, the server's
    socket, the listening socket)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    net.execute(ev.OpenTcp(1, "127.0.0.1", server.getsockname()[1]))
    peer, _ = await asyncio.get_running_loop().sock_accept(server)
    peer.setblocking(False)
    while 1 not in net.connections:
        await asyncio.sleep(0.01)
    conn = net.connections[1]
    assert conn.transport is not None
    return conn, peer, server


def test_a_connection_whose_latency_queue_is_full_is_not_read_until_half_of_it_has_gone():
    """A round trip of 20 s holds every byte in the queue: past NETWORK_HOLD the socket is not
    read, so the server's bytes wait in the kernel; the queue never holds more than the bound
    plus one read."""

    async def main() -> None:
        events: list = []
        net = Network(events.append)
        conn, peer, server = await connected(net)
        net.round_trip = 20.0  # connected: from now on every byte is held 10 s
        sent = 0
        chunk = b"s" * 65536
        for _ in range(200):  # as much as the kernel takes, then some turns for the emulator to read
            try:
                sent += peer.send(chunk)
            except BlockingIOError:
                await asyncio.sleep(0.01)
            if not conn.transport.is_reading():
                break
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert not conn.transport.is_reading()
        assert NETWORK_HOLD < conn.inbound.size <= NETWORK_HOLD + 256 * 1024
        assert sent > conn.inbound.size  # the rest waits in the kernel
        assert [type(event) for event in events] == [ev.TcpConnected]  # nothing reached the core yet
        net.close_all()
        peer.close()
        server.close()

    run(main())


def test_pause_reading_from_the_core_holds_what_the_queue_has_and_resume_delivers_it():
    async def main() -> None:
        events: list = []
        net = Network(events.append)
        conn, peer, server = await connected(net)
        net.execute(ev.PauseReading(1))
        conn.inbound.push(b"already on the way")  # as if the network had it before the pause
        await asyncio.get_running_loop().sock_sendall(peer, b"more")
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert [e for e in events if isinstance(e, ev.TcpData)] == []
        net.execute(ev.ResumeReading(1))
        while b"".join(e.data for e in events if isinstance(e, ev.TcpData)) != b"already on the waymore":
            await asyncio.sleep(0.01)
        net.close_all()
        peer.close()
        server.close()

    run(main())


def test_datagrams_beyond_the_hold_are_dropped_counted_and_reported_once_a_turn():
    async def main() -> None:
        events: list = []
        net = Network(events.append, round_trip=20.0)  # nothing leaves the queue during the test
        datagrams = _Datagrams(net, 7)
        for _ in range(100):
            datagrams.datagram_received(b"d" * 1000, ("127.0.0.1", 9))
        for _ in range(10):
            datagrams.send(b"o" * 10000, None)
        assert datagrams.inbound.size <= NETWORK_HOLD and datagrams.outbound.size <= NETWORK_HOLD
        assert datagrams.dropped_in == 100 - NETWORK_HOLD // 1000
        assert datagrams.dropped_out == 10 - NETWORK_HOLD // 10000
        await asyncio.sleep(0)
        assert events == [ev.UdpDropped(7, datagrams.dropped_in, datagrams.dropped_out)]
        datagrams.close()

    run(main())
