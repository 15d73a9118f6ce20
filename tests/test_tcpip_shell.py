"""The shell's side of the TCP/IP family, with real sockets on 127.0.0.1 and no modem: the events
come in order, listeners take the module's port when it is free, UDP carries datagrams whole."""

from __future__ import annotations

import asyncio
import socket

from ecemu.core import events as ev
from ecemu.shell.network import Network

DEADLINE = 10.0


async def wait_for(events: list, predicate, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not predicate():
        if loop.time() > end:
            raise TimeoutError(f"{what}; events: {events}")
        await asyncio.sleep(0.005)


def test_a_servers_banner_never_overtakes_the_connect():
    """A server that speaks first (SMTP, FTP) may be read before the connect's coroutine resumes;
    the core must hear TcpConnected first, then the banner, for every connection."""

    async def main() -> None:
        async def banner(reader, writer):
            writer.write(b"220 ready\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(banner, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        events: list = []
        net = Network(events.append)
        for conn_id in range(1, 21):
            net.execute(ev.OpenTcp(conn_id, "127.0.0.1", port))
        await wait_for(events, lambda: sum(isinstance(e, ev.TcpClosed) for e in events) == 20, "20 banners")
        for conn_id in range(1, 21):
            kinds = [type(e) for e in events if e.conn_id == conn_id]
            assert kinds[0] is ev.TcpConnected and ev.TcpData in kinds and kinds[-1] is ev.TcpClosed, kinds
            assert b"".join(e.data for e in events if e.conn_id == conn_id and isinstance(e, ev.TcpData)) == (
                b"220 ready\r\n")
        net.close_all()
        server.close()

    asyncio.run(main())


def test_a_listener_takes_the_modules_port_when_free_else_another():
    async def main() -> None:
        events: list = []
        net = Network(events.append)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
        probe.close()
        taken = socket.create_server(("127.0.0.1", 0))
        busy = taken.getsockname()[1]
        net.execute(ev.Listen(1, free))
        net.execute(ev.Listen(2, busy))
        await wait_for(events, lambda: len([e for e in events if isinstance(e, ev.Listening)]) == 2, "listening")
        ports = {e.conn_id: e.host_port for e in events if isinstance(e, ev.Listening)}
        assert ports[1] == free and ports[2] not in (busy, 0)
        # A connection waits, unread, until the core takes it; what it sent meanwhile is kept.
        reader, writer = await asyncio.open_connection("127.0.0.1", ports[2])
        writer.write(b"early")
        await writer.drain()
        await wait_for(events, lambda: any(isinstance(e, ev.TcpIncoming) for e in events), "incoming")
        incoming = next(e for e in events if isinstance(e, ev.TcpIncoming))
        assert incoming.conn_id == 2 and incoming.remote_port == writer.get_extra_info("sockname")[1]
        net.execute(ev.AcceptTcp(incoming.token, 7))
        await wait_for(events, lambda: any(isinstance(e, ev.TcpData) for e in events), "data")
        assert [e.data for e in events if isinstance(e, ev.TcpData)] == [b"early"]
        assert all(e.conn_id == 7 for e in events if isinstance(e, ev.TcpData))
        net.execute(ev.SendTcp(7, b"late"))
        assert await asyncio.wait_for(reader.readexactly(4), DEADLINE) == b"late"
        # Closing the listener refuses what waits and stops accepting.
        net.execute(ev.CloseTcp(2))
        await asyncio.sleep(0)
        try:
            _, extra = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", ports[2]), DEADLINE)
        except ConnectionRefusedError:
            pass
        else:
            extra.close()
            raise AssertionError("the closed listener still accepts")
        writer.close()
        taken.close()
        net.close_all()

    asyncio.run(main())


def test_udp_datagrams_keep_their_bounds_and_senders():
    async def main() -> None:
        events: list = []
        net = Network(events.append)
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(DEADLINE)
        net.execute(ev.OpenUdp(1, "", 0, 0))  # a service: bound on 127.0.0.1 only
        await wait_for(events, lambda: any(isinstance(e, ev.UdpOpened) for e in events), "bound")
        bound = next(e for e in events if isinstance(e, ev.UdpOpened)).local_port
        for word in (b"one", b"two", b"three"):
            peer.sendto(word, ("127.0.0.1", bound))
        await wait_for(events, lambda: len([e for e in events if isinstance(e, ev.UdpDatagram)]) == 3, "3 datagrams")
        got = [(e.data, e.remote_port) for e in events if isinstance(e, ev.UdpDatagram)]
        assert got == [(w, peer.getsockname()[1]) for w in (b"one", b"two", b"three")]
        net.execute(ev.SendDatagram(1, b"back", "127.0.0.1", peer.getsockname()[1]))
        assert await asyncio.get_running_loop().run_in_executor(None, peer.recvfrom, 100) == (
            b"back", ("127.0.0.1", bound))
        net.execute(ev.CloseTcp(1))
        assert 1 not in net.datagram_sockets
        peer.close()
        net.close_all()

    asyncio.run(main())
