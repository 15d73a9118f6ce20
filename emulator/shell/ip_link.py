"""The IP links of PPP data calls: the host's packets to libslirp (``slirp.py``), slirp's back.

slirp speaks Ethernet: each of the host's IPv4 packets goes in behind an Ethernet header, and the
host's address is announced to slirp with an ARP request at the start (slirp then knows where to
send); slirp's ARP requests for the host's address are answered here. Every flow is a real
socket of this machine: the module's side of the link (the gateway address) stands for this
machine's 127.0.0.1, so the host reaches local servers there.

DNS: a query to a server IPCP named is answered here, never by slirp, as the module's own look-ups
are (``Network.resolve``): the user's hosts map first (``--resolve``, ``--hosts-file``; a port it
names does not apply, since DNS carries none), then the AT+QIDNSCFG servers or this machine's
resolver, none of the machine's with ``--local-only``; an answer of 127.x names the gateway instead.
With ``--local-only`` a flow to an address outside loopback (the gateway is this machine's
loopback) and the allowed networks never reaches slirp: a TCP connect is answered with a reset
(refused), a UDP datagram goes nowhere, and the log says so once per flow. The network faults apply to the
link's packets: ``latency`` and ``bandwidth`` as to any connection (each direction of the link
one stream), ``server-reset`` on a flow as a TCP reset both ways (the host sees the server's RST,
slirp the host's, and closes its socket).

What is read of a packet here is its IPv4, TCP and UDP headers, for DNS, the trace's flows and
the reset: the TCP/IP itself is slirp's.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
from dataclasses import dataclass
from typing import Callable

from ..core import events as ev
from .dns import NameNotFound
from .network import _Delay, Network

log = logging.getLogger(__name__)

GUEST_MAC = bytes.fromhex("525400ecee01")
ETH_IP, ETH_ARP = 0x0800, 0x0806
TCP, UDP = 6, 17
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
DNS_PORT = 53
DNS_TIMEOUT = 10.0
REFUSED_REMEMBERED = 1024  # refused flows the log has named, per call; forgotten past that (it says again)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_packet(source: str, destination: str, protocol: int, payload: bytes, ident: int = 0) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, 64, protocol, 0,
                         socket.inet_aton(source), socket.inet_aton(destination))
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + payload


def _pseudo(source: str, destination: str, protocol: int, length: int) -> bytes:
    return socket.inet_aton(source) + socket.inet_aton(destination) + struct.pack("!BBH", 0, protocol, length)


def udp_packet(source: str, sport: int, destination: str, dport: int, data: bytes) -> bytes:
    header = struct.pack("!HHHH", sport, dport, 8 + len(data), 0)
    check = _checksum(_pseudo(source, destination, UDP, 8 + len(data)) + header + data) or 0xFFFF
    return ipv4_packet(source, destination, UDP, header[:6] + struct.pack("!H", check) + data)


def tcp_reset(source: str, sport: int, destination: str, dport: int, seq: int, ack: int) -> bytes:
    header = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, RST | ACK, 0, 0, 0)
    check = _checksum(_pseudo(source, destination, TCP, 20) + header)
    return ipv4_packet(source, destination, TCP, header[:16] + struct.pack("!H", check) + header[18:])


@dataclass
class Headers:
    source: str
    destination: str
    protocol: int
    sport: int = 0
    dport: int = 0
    flags: int = 0
    seq: int = 0
    ack: int = 0
    payload: bytes = b""


def read_headers(packet: bytes) -> Headers | None:
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    total = struct.unpack("!H", packet[2:4])[0]
    protocol = packet[9]
    headers = Headers(socket.inet_ntoa(packet[12:16]), socket.inet_ntoa(packet[16:20]), protocol)
    body = packet[ihl:total]
    if protocol == UDP and len(body) >= 8:
        headers.sport, headers.dport = struct.unpack("!HH", body[:4])
        headers.payload = body[8:]
    elif protocol == TCP and len(body) >= 20:
        headers.sport, headers.dport, headers.seq, headers.ack = struct.unpack("!HHII", body[:12])
        offset = (body[12] >> 4) * 4
        headers.flags = body[13]
        headers.payload = body[offset:]
    return headers


@dataclass
class Flow:
    number: int
    protocol: str
    guest_port: int
    remote: str
    remote_port: int
    guest_next: int = 0  # the next sequence number of the host's side (TCP)
    server_next: int = 0  # the next sequence number of the server's side
    open: bool = True


# --- DNS --------------------------------------------------------------------------------------


def read_question(query: bytes) -> tuple[int, str, int, bytes] | None:
    """(id, name, type, the question's bytes) of a standard query with one question."""
    if len(query) < 17:
        return None
    ident, flags, qdcount = struct.unpack("!HHH", query[:6])
    if flags & 0x8000 or qdcount != 1:
        return None
    labels = []
    i = 12
    while i < len(query) and query[i]:
        size = query[i]
        if size & 0xC0 or i + 1 + size > len(query):
            return None
        labels.append(query[i + 1:i + 1 + size].decode("latin-1"))
        i += 1 + size
    if i + 5 > len(query):
        return None
    qtype = struct.unpack("!H", query[i + 1:i + 3])[0]
    return ident, ".".join(labels), qtype, query[12:i + 5]


def dns_answer(ident: int, question: bytes, rcode: int, address: str | None) -> bytes:
    answers = 0 if address is None else 1
    out = struct.pack("!HHHHHH", ident, 0x8180 | rcode, 1, answers, 0, 0) + question
    if address is not None:
        out += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(address)
    return out


class IpLink:
    """One data call's link: slirp on one side, the core's packets on the other."""

    def __init__(self, links: "IpLinks", effect: ev.OpenIpLink):
        self.links = links
        self.conn_id = effect.conn_id
        self.address = effect.address
        self.gateway = effect.gateway
        self.announced = set(effect.announced_dns)
        self.dns_servers = effect.dns_servers
        self.flows: dict[tuple[int, int, str, int], Flow] = {}
        self.refused: set[tuple[int, int, str, int]] = set()  # flows --local-only kept from slirp
        self._flow_numbers = 0  # each call's flows are numbered from 0 (server-reset names one)
        self.net = links.network
        self.outbound = _Delay(self.net, self._to_slirp, packets=True)
        self.inbound = _Delay(self.net, self._to_host, packets=True)
        from . import slirp  # libslirp through ctypes, loaded by the first data call

        self.engine = slirp.SlirpNetwork(effect.network, effect.gateway, self._frame_from_slirp)
        self._gateway_mac = bytes.fromhex("5255") + socket.inet_aton(effect.gateway)
        self._tasks: set[asyncio.Task] = set()
        self._ident = 1
        self._announce()

    def _announce(self) -> None:
        """An ARP request from the host's address: slirp learns where the host is."""
        arp = struct.pack("!HHBBH6s4s6s4s", 1, ETH_IP, 6, 4, 1, GUEST_MAC, socket.inet_aton(self.address),
                          b"\0" * 6, socket.inet_aton(self.gateway))
        self.engine.input(b"\xff" * 6 + GUEST_MAC + struct.pack("!H", ETH_ARP) + arp)

    # host -> network --------------------------------------------------------------------------

    def from_host(self, packet: bytes) -> None:
        self.outbound.push(packet)

    def _to_slirp(self, packet: bytes) -> None:
        headers = read_headers(packet)
        if headers is None:
            return
        if headers.protocol == UDP and headers.dport == DNS_PORT and headers.destination in self.announced:
            self._dns(headers)
            return
        if headers.protocol in (TCP, UDP):
            if self._refused(headers):
                return
            self._track(headers, from_host=True)
        self.engine.input(self._gateway_mac + GUEST_MAC + struct.pack("!H", ETH_IP) + packet)

    # network -> host --------------------------------------------------------------------------

    def _frame_from_slirp(self, frame: bytes) -> None:
        if len(frame) < 14:
            return
        kind = struct.unpack("!H", frame[12:14])[0]
        if kind == ETH_ARP:
            self._arp(frame[14:])
        elif kind == ETH_IP:
            packet = frame[14:]
            headers = read_headers(packet)
            if headers is not None and headers.protocol in (TCP, UDP):
                flow = self._track(headers, from_host=False)
                if flow is not None and not flow.open and headers.protocol == TCP and not headers.flags & RST:
                    return  # a flow reset by a fault: slirp's last words stay away from the host
            self.inbound.push(packet)

    def _arp(self, arp: bytes) -> None:
        if len(arp) < 28:
            return
        op = struct.unpack("!H", arp[6:8])[0]
        sender_mac, sender_ip, target_ip = arp[8:14], arp[14:18], arp[24:28]
        if op == 1 and target_ip == socket.inet_aton(self.address):
            reply = struct.pack("!HHBBH6s4s6s4s", 1, ETH_IP, 6, 4, 2, GUEST_MAC, target_ip, sender_mac, sender_ip)
            self.engine.input(sender_mac + GUEST_MAC + struct.pack("!H", ETH_ARP) + reply)

    def _to_host(self, packet: bytes) -> None:
        self.links.report(ev.IpPacket(self.conn_id, bytes(packet)))

    # flows ------------------------------------------------------------------------------------

    def _track(self, headers: Headers, from_host: bool) -> Flow | None:
        if from_host:
            key = (headers.protocol, headers.sport, headers.destination, headers.dport)
        else:
            key = (headers.protocol, headers.dport, headers.source, headers.sport)
        flow = self.flows.get(key)
        name = "TCP" if headers.protocol == TCP else "UDP"
        if flow is None or (not flow.open and from_host and headers.flags & SYN):
            if not from_host:
                return None
            flow = Flow(self._flow_numbers, name, key[1], key[2], key[3])
            self._flow_numbers += 1
            self.flows[key] = flow
            self.links.trace("ppp_flow", link=self.conn_id, flow=flow.number, state="open", protocol=name,
                             port=flow.guest_port, remote=f"{flow.remote}:{flow.remote_port}")
        if headers.protocol == TCP:
            length = len(headers.payload) + (1 if headers.flags & (SYN | FIN) else 0)
            if from_host:
                flow.guest_next = headers.seq + length
            else:
                flow.server_next = headers.seq + length
            if flow.open and headers.flags & (RST | FIN):
                ends = "reset" if headers.flags & RST else "fin"
                self.links.trace("ppp_flow", link=self.conn_id, flow=flow.number, state=ends,
                                 by="host" if from_host else "server")
                if headers.flags & RST:
                    flow.open = False
        return flow

    def _refused(self, headers: Headers) -> bool:
        """Whether the user's policy keeps this packet's destination off limits (``--local-only``):
        the gateway is this machine's loopback; anything else must be allowed. A TCP segment gets a
        reset back, as from a host that refuses the connection (RFC 793 3.4)."""
        destination = headers.destination
        if destination == self.gateway or self.net.policy.allows(destination):
            return False
        key = (headers.protocol, headers.sport, destination, headers.dport)
        if key not in self.refused:
            if len(self.refused) >= REFUSED_REMEMBERED:
                self.refused.clear()
            self.refused.add(key)
            name = "TCP" if headers.protocol == TCP else "UDP"
            self.net.refuses(f"data call {name} flow", destination, headers.dport,
                             "the host is refused (TCP reset)" if headers.protocol == TCP else "its datagrams dropped")
            self.links.trace("ppp_flow", link=self.conn_id, state="refused", protocol=name, port=headers.sport,
                             remote=f"{destination}:{headers.dport}")
        if headers.protocol == TCP and not headers.flags & RST:
            length = len(headers.payload) + (1 if headers.flags & (SYN | FIN) else 0)
            seq = headers.ack if headers.flags & ACK else 0
            self._to_host(tcp_reset(destination, headers.dport, self.address, headers.sport, seq, headers.seq + length))
        return True

    def reset_flow(self, number: int) -> bool:
        for flow in self.flows.values():
            if flow.number == number and flow.open and flow.protocol == "TCP":
                flow.open = False
                self.links.trace("ppp_flow", link=self.conn_id, flow=number, state="reset", by="fault")
                self._to_host(tcp_reset(flow.remote, flow.remote_port, self.address, flow.guest_port,
                                        flow.server_next, flow.guest_next))
                self.engine.input(self._gateway_mac + GUEST_MAC + struct.pack("!H", ETH_IP) + tcp_reset(
                    self.address, flow.guest_port, flow.remote, flow.remote_port, flow.guest_next, flow.server_next))
                return True
        return False

    # DNS --------------------------------------------------------------------------------------

    def _dns(self, headers: Headers) -> None:
        question = read_question(headers.payload)
        if question is None:
            return
        task = asyncio.get_running_loop().create_task(self._answer(headers, *question))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, headers: Headers, ident: int, name: str, qtype: int, question: bytes) -> None:
        rcode, address = 0, None
        if qtype == 1:
            try:
                address = await asyncio.wait_for(self._resolve(name), DNS_TIMEOUT)
                if ipaddress.ip_address(address).is_loopback:
                    address = self.gateway  # this machine, as the host reaches it
            except NameNotFound:
                rcode = 3
            except (OSError, asyncio.TimeoutError, ValueError, UnicodeError) as exc:
                log.info("DNS for %s: %s", name, exc)
                rcode = 3 if isinstance(exc, socket.gaierror) else 2
        self.links.trace("ppp_dns", link=self.conn_id, name=name, qtype=qtype, address=address or "", rcode=rcode)
        reply = dns_answer(ident, question, rcode, address)
        self.inbound.push(udp_packet(headers.destination, DNS_PORT, headers.source, headers.sport, reply))

    async def _resolve(self, name: str) -> str:
        """The module's own resolution (``Network.resolve``): the hosts map, the AT+QIDNSCFG
        servers, the local-only rules; a refused name is logged as for the module's look-ups."""
        try:
            address, _ = await self.net.resolve(name, 0, self.dns_servers)
        except NameNotFound as exc:
            self.net.cannot_resolve(f"data call DNS {self.conn_id}", name, exc)
            raise
        return address

    def close(self) -> None:
        self.outbound.cancel()
        self.inbound.cancel()
        for task in list(self._tasks):
            task.cancel()
        self.engine.close()


class IpLinks:
    """Carries out the data calls' effects; reports their packets."""

    def __init__(self, report: Callable[[ev.NetworkEvent], None], network: Network,
                 trace: Callable[..., None] = lambda kind, **details: None):
        self.report = report
        self.network = network
        self.trace = trace
        self.links: dict[int, IpLink] = {}

    def execute(self, effect: ev.Effect) -> None:
        if isinstance(effect, ev.OpenIpLink):
            from . import slirp

            try:
                self.links[effect.conn_id] = IpLink(self, effect)
            except slirp.SlirpMissing as exc:
                log.warning("data call: %s", exc)
                asyncio.get_running_loop().call_soon(self.report, ev.IpLinkFailed(effect.conn_id, str(exc)))
                return
            log.info("data call: IP link for %s through libslirp %s", effect.address, slirp.version())
            asyncio.get_running_loop().call_soon(self.report, ev.IpLinkUp(effect.conn_id))
        elif isinstance(effect, ev.SendIp):
            link = self.links.get(effect.conn_id)
            if link is not None:
                link.from_host(effect.packet)
        elif isinstance(effect, ev.CloseIpLink):
            link = self.links.pop(effect.conn_id, None)
            if link is not None:
                link.close()

    def reset_flow(self, number: int) -> bool:
        return any(link.reset_flow(number) for link in list(self.links.values()))

    def close_all(self) -> None:
        for link in self.links.values():
            link.close()
        self.links.clear()
