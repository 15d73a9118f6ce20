"""Host stacks nobody here wrote, through the emulator's pty: lwIP's PPPoS client (DNS, TCP, TLS) on
the bare port and inside a CMUX channel of Debian's gsm0710muxd, with AT commands on another
channel; the network faults on PPP traffic; a data call without the network engine.

The stacks are fetched and built at test time (tests/external_stacks.py). The servers are the
tests' own on 127.0.0.1; the host reaches them at the module's side of the link, which the DNS
answer for "localhost" names (REFERENCE.md "PPP").
"""

from __future__ import annotations

import logging

import pytest

from ecemu import Emulator
from ecemu.shell.trace import read_entries
from ecemu.trace_html import render_html
from tests.external_stacks import LwipRun, gsm0710muxd, lwip_ppp_client
from tests.host import AtHost
from tests.parts import require
from tests.plain_servers import DnsServer, TcpEchoServer
from tests.tls_servers import TlsServer

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def lwip():
    require("libslirp")  # the module's side of every call these tests make
    return lwip_ppp_client()


@pytest.fixture
def emulator(start_modem):
    """The emulator alone (the PPP stacks open the port themselves), booted at start, with a 200 ms
    guard time around +++."""
    return start_modem(boot="at-start", escape_guard_ms=200, host=False)[0]


def passed(run: LwipRun) -> list[str]:
    code, lines = run.finish()
    assert code == 0, lines
    return lines


def test_lwip_on_the_bare_port_dns_and_tcp(lwip, emulator):
    with TcpEchoServer() as server:
        run = LwipRun(lwip, emulator.port, server.port, message="hello over PPP on the port")
        lines = passed(run)
    assert lines[0] == "CONNECT"
    # IPCP: the context's address from the profile's pool (context 1: its first host), the module's
    # side at the pool's end, the DNS server AT+QIDNSCFG shows.
    assert lines[1] == "PPP up address 10.7.157.1 peer 10.7.157.254 dns 114.114.114.114"
    assert lines[2] == "DNS localhost 10.7.157.254"
    assert "ECHO hello over PPP on the port" in lines
    assert lines[-1] == "NO CARRIER"
    assert bytes(server.received[0]) == b"hello over PPP on the port"
    with AtHost(emulator.port) as host:  # the port is back in command mode, the context down again
        assert host.ask("AT").endswith(b"\r\nOK\r\n")
        assert host.ask("AT+QIACT?").endswith(b"\r\nOK\r\n")
        assert b"+QIACT:" not in host.ask("AT+QIACT?")


def test_lwip_tls_with_dns_from_qidnscfg(lwip, emulator, tmp_path):
    ca = tmp_path / "ca.pem"
    with TlsServer(cert="server-rsa").start() as server, DnsServer({"localhost": "127.0.0.1"}) as dns, \
            AtHost(emulator.port) as host:
        ca.write_bytes(server.pki["ca.pem"])
        assert host.ask(f'AT+QIDNSCFG=1,"127.0.0.1#{dns.port}"').endswith(b"OK\r\n")
        host.close()
        run = LwipRun(lwip, emulator.port, server.port, tls_ca=ca, message="secret over PPP")
        lines = passed(run)
        assert server.connection().received == b"secret over PPP"
        assert dns.asked == ["localhost"]  # the host's query went to the server AT+QIDNSCFG named
    # IPCP named that server by the module's side of the link (it is on this machine's loopback)
    assert lines[1].endswith("dns 10.7.157.254")
    assert "ECHO secret over PPP" in lines


def test_gsm0710muxd_channels_at_on_one_ppp_on_another(lwip, tmp_path):
    ca = tmp_path / "ca.pem"
    trace = tmp_path / "trace.jsonl"
    with Emulator(ufs=tmp_path / "ufs", boot="at-start", trace=trace) as emulator, \
            gsm0710muxd(emulator.port, channels=2) as (at_channel, data_channel), \
            TlsServer(cert="server-rsa").start() as server, AtHost(at_channel) as host:
        ca.write_bytes(server.pki["ca.pem"])
        # gsm0710muxd switched the radio off before AT+CMUX; the AT channel turns it on
        assert host.ask("AT+CFUN=1").endswith(b"\r\nOK\r\n")
        run = LwipRun(lwip, data_channel, server.port, tls_ca=ca, message="TLS inside a CMUX channel",
                      hold_seconds=1.0)
        run.wait_for("ECHO")
        # meanwhile the AT channel answers, and sees the context the call activated
        assert b'+QIACT: 1,1,1,"10.7.157.1"' in host.ask("AT+QIACT?")
        assert host.ask("AT+CSQ").startswith(b"AT+CSQ\r\r\n+CSQ: ")
        lines = passed(run)
        assert "ECHO TLS inside a CMUX channel" in lines and lines[-1] == "NO CARRIER"
        assert host.ask("AT+QIACT?") == b"AT+QIACT?\r\r\nOK\r\n"
    # The trace and its picture: a lane per DLC, the frames, LCP/IPCP states and the flow
    entries = list(read_entries(trace.read_text().splitlines()))
    kinds = {entry["kind"] for entry in entries}
    assert {"mux_frame", "mux_channel", "mux_control", "ppp_state", "ppp_ip", "ppp_flow", "ppp_dns"} <= kinds
    opened = [e["dlci"] for e in entries if e["kind"] == "mux_channel" and e["state"] == "open"]
    assert opened == [0, 1, 2]
    states = [(e["layer"], e["state"]) for e in entries if e["kind"] == "ppp_state"]
    assert ("LCP", "OPENED") in states and ("IPCP", "OPENED") in states
    assert {e["channel"] for e in entries if e["kind"] == "ppp_state"} == {2}
    # AT+CFUN=0 came on the bare port before AT+CMUX, AT+CFUN=1 on DLC 1
    assert [e.get("channel") for e in entries if e["kind"] == "command" and "CFUN" in e["line"]] == [None, 1]
    page = render_html(entries)
    assert '<span class="lane-name dlc-1">DLC 1</span>' in page and '<span class="lane-name dlc-2">DLC 2</span>' in page
    assert 'class="arrow right from-host to-dlc-2"' in page  # frames of the data channel
    assert 'class="note on-dlc-2 other"><span class="event">ppp_state</span>' in page
    assert 'class="note on-network other"><span class="event">ppp_flow</span>' in page


def test_pdp_drop_ends_the_call_with_lcp_terminate_and_no_carrier(lwip, emulator):
    with TcpEchoServer() as server:
        run = LwipRun(lwip, emulator.port, server.port, hold_seconds=30.0)
        run.wait_for("ECHO")
        emulator.control.pdp_drop(context=1)
        down = run.wait_for("PPP down")
        code, lines = run.finish()
    assert down != "PPP down 5"  # not the host's own close: the peer (the module) terminated
    assert lines[-1] == "NO CARRIER"


def test_server_reset_on_a_flow_reaches_the_host_as_a_reset(lwip, emulator):
    with TcpEchoServer(echo=False) as server:
        run = LwipRun(lwip, emulator.port, server.port, message="never echoed")
        run.wait_for("TCP connected")
        emulator.control.server_reset(client=0, family="ppp")
        line = run.wait_for("TCP error")
        code, lines = run.finish()
    assert line == "TCP error -14"  # lwIP's ERR_RST: the connection was reset
    assert lines[-1] == "NO CARRIER"


def test_latency_applies_to_ppp_traffic(lwip, emulator):
    emulator.control.latency(ms=300)
    with TcpEchoServer() as server:
        run = LwipRun(lwip, emulator.port, server.port, message="slow")
        lines = passed(run)
    timed = [line for line in lines if line.startswith("ECHO")]
    assert timed == ["ECHO slow"]
    seconds = float(next(line for line in lines if line.startswith("ROUND TRIP")).split()[2])
    # the request crosses the link one way and its echo the other: at least 2 x 300 ms
    assert seconds >= 0.6


def test_a_hermetic_network_holds_for_a_data_call(lwip, tmp_path, caplog):
    """--resolve and --local-only (``NetworkPolicy``) apply to the host's own stack as to the
    module's sockets: its DNS query is answered from the hosts map (loopback named by the module's
    side of the link), a name outside the map is not resolved, and a TCP connect to an address
    outside loopback never reaches libslirp: the host is refused with a reset at once."""
    outside = "192.0.2.7"  # TEST-NET-1 (RFC 5737): stands for an address on the internet
    trace = tmp_path / "trace.jsonl"
    caplog.set_level(logging.INFO)
    with Emulator(ufs=tmp_path / "ufs", boot="at-start", trace=trace, resolve={"service.example": "127.0.0.1"},
                  local_only=True) as emulator, TcpEchoServer() as server:
        emulator.wait_for_boot()
        mapped = passed(LwipRun(lwip, emulator.port, server.port, host="service.example", message="mapped"))
        refused = LwipRun(lwip, emulator.port, server.port, host=outside, message="never sent")
        assert refused.wait_for("TCP error") == "TCP error -14"  # lwIP's ERR_RST: the connect was refused
        code, refused_lines = refused.finish()
        unknown = LwipRun(lwip, emulator.port, server.port, host="elsewhere.example")
        assert unknown.wait_for("DNS elsewhere.example") == "DNS elsewhere.example failed"
        unknown.finish()
        assert bytes(server.received[0]) == b"mapped"
        assert len(server.received) == 1
    assert "DNS service.example 10.7.157.254" in mapped and "ECHO mapped" in mapped
    assert refused_lines[-1] == "NO CARRIER"
    logged = [record.getMessage() for record in caplog.records]
    assert any(f"{outside}:{server.port} is outside loopback (--local-only): refused" in line for line in logged)
    assert any("elsewhere.example refused" in line for line in logged)
    entries = list(read_entries(trace.read_text().splitlines()))
    flows = [e for e in entries if e["kind"] == "ppp_flow"]
    assert [e["state"] for e in flows if e.get("remote") == f"{outside}:{server.port}"] == ["refused"]
    answers = {e["name"]: (e["address"], e["rcode"]) for e in entries if e["kind"] == "ppp_dns"}
    assert answers == {"service.example": ("10.7.157.254", 0), "elsewhere.example": ("", 3)}


def test_without_the_engine_the_call_fails_as_without_network_service(emulator, monkeypatch, caplog):
    from ecemu.shell import slirp

    def missing():
        raise slirp.SlirpMissing("libslirp is not installed (test); install it: apt-get install libslirp0")

    monkeypatch.setattr(slirp, "load", missing)
    with caplog.at_level(logging.WARNING), AtHost(emulator.port) as host:
        assert host.ask("ATD*99#").endswith(b"\r\nNO CARRIER\r\n")
        assert host.ask("AT+QIACT?") == b"AT+QIACT?\r\r\nOK\r\n"  # the context the call raised is down again
    assert any("libslirp is not installed" in record.getMessage() for record in caplog.records)


def test_a_data_calls_packets_cross_the_simulated_network_whole():
    """The network's pacing cuts a byte stream into pieces sized to the time each takes (down to
    PIECE_MIN after slow deliveries); a data call's IP packets must each reach libslirp or the
    host whole, or they are lost as corrupt."""
    import asyncio

    from ecemu.shell.network import PIECE_MIN, Network, _Delay

    packet = bytes(range(256)) * 6  # 1536 bytes: longer than the smallest piece

    async def run() -> tuple[list[bytes], list[bytes]]:
        net = Network(lambda event: None)
        whole: list[bytes] = []
        cut: list[bytes] = []
        link = _Delay(net, whole.append, packets=True)
        stream = _Delay(net, cut.append)
        link.piece = stream.piece = PIECE_MIN  # as after deliveries that took long
        for delay in (link, stream):
            delay.push(packet)
            delay.push(packet)
        while link.queue or stream.queue:
            await asyncio.sleep(0)
        return whole, cut

    whole, cut = asyncio.run(run())
    assert whole == [packet, packet]
    assert b"".join(cut) == packet * 2 and len(cut) > 2  # a stream may be cut; a packet never is
