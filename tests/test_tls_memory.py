"""Opening and closing TLS connections keeps nothing behind: the module keeps one session per
server and SSL context, and only when ``session_cache`` is 1 (SSL note 2.2.1)."""

from __future__ import annotations

import gc

from tests.core_network import SimulatedNetwork
from tests.harness import CoreHarness
from tests.wire import OK_END


HANDSHAKES = 1000
# Before OpenSSL's own client session cache was turned off, every closed connection kept its
# session there: about 14 KB each, 14 MB over this loop.
ALLOWED_GROWTH = 5 * 1024 * 1024


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def open_and_close(harness: CoreHarness, network: SimulatedNetwork) -> None:
    out = harness.command('AT+QSSLOPEN=1,1,0,"127.0.0.1",4433,0') + network.run()
    assert b"+QSSLOPEN: 0,0\r\n" in out, out
    out = harness.command("AT+QSSLCLOSE=0") + network.run()
    assert out.endswith(OK_END), out
    network.servers.clear()


def test_closed_connections_leave_no_memory_behind():
    harness = CoreHarness()
    network = SimulatedNetwork(harness)
    assert harness.command("AT+QIACT=1").endswith(OK_END)
    for _ in range(100):  # allocator pools and caches reach their steady size
        open_and_close(harness, network)
    gc.collect()
    before = resident_bytes()
    for _ in range(HANDSHAKES):
        open_and_close(harness, network)
    gc.collect()
    assert resident_bytes() - before < ALLOWED_GROWTH


def test_session_cache_keeps_one_session_per_server_and_context():
    harness = CoreHarness()
    network = SimulatedNetwork(harness)
    assert harness.command("AT+QIACT=1").endswith(OK_END)
    assert harness.command('AT+QSSLCFG="session_cache",1,1').endswith(OK_END)
    family = harness.modem.families["ssl"]
    for _ in range(3):
        open_and_close(harness, network)
    assert list(family.sessions) == [(1, "127.0.0.1", 4433)]
    out = harness.command('AT+QSSLOPEN=1,2,0,"127.0.0.1",4433,0') + network.run()
    assert b"+QSSLOPEN: 0,0\r\n" in out  # context 2: session_cache 0, nothing kept
    assert list(family.sessions) == [(1, "127.0.0.1", 4433)]


def test_close_after_the_servers_close_notify_answers_it():
    harness = CoreHarness()
    network = SimulatedNetwork(harness)
    assert harness.command("AT+QIACT=1").endswith(OK_END)
    out = harness.command('AT+QSSLOPEN=1,1,0,"127.0.0.1",4433,0') + network.run()
    assert b"+QSSLOPEN: 0,0\r\n" in out
    server = network.server()
    from OpenSSL import SSL

    server.tls.shutdown()  # the server's close_notify, its TCP connection still open
    out = network.resume(server)
    assert b'+QSSLURC: "closed",0\r\n' in out
    assert not server.got_close_notify
    assert harness.command("AT+QSSLCLOSE=0").endswith(OK_END)
    network.run()
    assert server.got_close_notify or server.tls.get_shutdown() & SSL.RECEIVED_SHUTDOWN
