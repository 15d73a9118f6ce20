"""PPP data calls in the core: the host's side of the link is written here from the RFCs (RFC 1662
framing with a bit-by-bit FCS-16, RFC 1661 LCP, RFC 1994 CHAP, RFC 1332/1877 IPCP), the network
engine is the test (OpenIpLink answered with IpLinkUp, packets as effects and events)."""

from __future__ import annotations

import hashlib
import socket
import struct

from ecemu.core import events as ev
from tests.harness import CoreHarness

LCP, PAP, CHAP, IPCP, IP = 0xC021, 0xC023, 0xC223, 0x8021, 0x0021


def fcs16(data: bytes) -> int:
    fcs = 0xFFFF
    for byte in data:
        for bit in range(8):
            mix = (fcs ^ (byte >> bit)) & 1
            fcs >>= 1
            if mix:
                fcs ^= 0x8408  # x^16 + x^12 + x^5 + 1, reflected (RFC 1662 C.2)
    return fcs


def frame(protocol: int, payload: bytes) -> bytes:
    body = b"\xff\x03" + struct.pack("!H", protocol) + payload
    fcs = fcs16(body) ^ 0xFFFF
    body += bytes((fcs & 0xFF, fcs >> 8))
    out = bytearray(b"\x7e")
    for byte in body:
        out += bytes((0x7D, byte ^ 0x20)) if byte < 0x20 or byte in (0x7E, 0x7D) else bytes((byte,))
    return bytes(out + b"\x7e")


def frames(data: bytes) -> list[tuple[int, bytes]]:
    """(protocol, payload) of every frame, each FCS checked; text between frames is ignored."""
    out = []
    for raw in data.split(b"\x7e"):
        if not raw or b"\r\n" in raw and raw.strip(b"\r\n").isascii() and raw[:1] != b"\xff":
            continue
        body = bytearray()
        escaped = False
        for byte in raw:
            if byte == 0x7D:
                escaped = True
                continue
            body.append(byte ^ 0x20 if escaped else byte)
            escaped = False
        assert fcs16(bytes(body)) == 0xF0B8, raw
        assert body[:2] == b"\xff\x03"
        out.append((body[2] << 8 | body[3], bytes(body[4:-2])))
    return out


def control(code: int, ident: int, data: bytes = b"") -> bytes:
    return bytes((code, ident)) + struct.pack("!H", 4 + len(data)) + data


def options(*pairs: tuple[int, bytes]) -> bytes:
    return b"".join(bytes((kind, 2 + len(value))) + value for kind, value in pairs)


def parse_options(data: bytes) -> dict[int, bytes]:
    out, i = {}, 0
    while i < len(data):
        out[data[i]] = data[i + 2:i + data[i + 1]]
        i += data[i + 1]
    return out


def dial(h: CoreHarness, line: str = "ATD*99#") -> ev.OpenIpLink:
    assert h.command(line) == b""
    opened = [e for e in h.take_effects() if isinstance(e, ev.OpenIpLink)]
    assert len(opened) == 1
    return opened[0]


def up(h: CoreHarness, link: ev.OpenIpLink) -> list[tuple[int, bytes]]:
    out = h.event(ev.IpLinkUp(link.conn_id))
    assert out.startswith(b"\r\nCONNECT\r\n")
    return frames(out[len(b"\r\nCONNECT\r\n"):])


def negotiate(h: CoreHarness, link: ev.OpenIpLink) -> None:
    """The host's side up to IPCP opened, every step checked against the RFCs."""
    [(protocol, request)] = up(h, link)
    assert protocol == LCP and request[0] == 1  # the module's Configure-Request
    wanted = parse_options(request[4:])
    assert wanted[2] == b"\0\0\0\0"  # ACCM: no control character need be escaped for the module
    assert wanted[3] == struct.pack("!HB", CHAP, 5)  # CHAP with MD5
    assert len(wanted[5]) == 4  # a magic number
    host_options = options((1, struct.pack("!H", 1500)), (2, b"\0\0\0\0"), (5, b"\x12\x34\x56\x78"))
    out = frames(h.send(frame(LCP, control(1, 7, host_options))))
    assert out == [(LCP, control(2, 7, host_options))]  # Configure-Ack, the options as sent
    out = frames(h.send(frame(LCP, control(2, request[1], request[4:]))))
    # LCP is open: CHAP's Challenge (RFC 1994 4.1): value size, value, the module's name
    [(protocol, challenge)] = out
    assert protocol == CHAP and challenge[0] == 1
    size = challenge[4]
    value = challenge[5:5 + size]
    response = hashlib.md5(bytes((challenge[1],)) + b"secret" + value).digest()
    out = frames(h.send(frame(CHAP, control(2, challenge[1], bytes((16,)) + response + b"user"))))
    assert out[0][0] == CHAP and out[0][1][0] == 3  # Success
    [(protocol, ipcp_request)] = out[1:]
    assert protocol == IPCP and ipcp_request[0] == 1
    assert parse_options(ipcp_request[4:]) == {3: socket.inet_aton(link.gateway)}
    asked = options((3, b"\0" * 4), (129, b"\0" * 4), (131, b"\0" * 4))
    out = frames(h.send(frame(IPCP, control(1, 1, asked))))
    # Configure-Nak with the context's address and the DNS servers AT+QIDNSCFG shows
    assert out == [(IPCP, control(3, 1, options((3, socket.inet_aton("10.7.157.1")),
                                                 (129, socket.inet_aton("114.114.114.114")),
                                                 (131, socket.inet_aton("8.8.8.8")))))]
    final = options((3, socket.inet_aton("10.7.157.1")), (129, socket.inet_aton("114.114.114.114")),
                    (131, socket.inet_aton("8.8.8.8")))
    assert frames(h.send(frame(IPCP, control(1, 2, final)))) == [(IPCP, control(2, 2, final))]
    assert h.send(frame(IPCP, control(2, ipcp_request[1], ipcp_request[4:]))) == b""


def test_a_data_call_from_dial_to_no_carrier():
    h = CoreHarness()
    link = dial(h)
    assert (link.address, link.gateway, link.network) == ("10.7.157.1", "10.7.157.254", "10.7.157.0/24")
    assert link.announced_dns == ("114.114.114.114", "8.8.8.8") and link.dns_servers == ()
    negotiate(h, link)
    packet = bytes.fromhex("4500001c000100004011") + b"\0" * 18
    h.send(frame(IP, packet))
    assert [e for e in h.take_effects() if isinstance(e, ev.SendIp)] == [ev.SendIp(link.conn_id, packet)]
    assert frames(h.event(ev.IpPacket(link.conn_id, packet))) == [(IP, packet)]
    # LCP echo (RFC 1661 5.8): answered with the module's magic number
    out = frames(h.send(frame(LCP, control(9, 3, b"\x12\x34\x56\x78"))))
    assert out[0][0] == LCP and out[0][1][:2] == bytes((10, 3))
    # the host's Terminate-Request: acknowledged, and the call is over a restart time later
    assert frames(h.send(frame(LCP, control(5, 4)))) == [(LCP, control(6, 4))]
    assert h.advance(1.0) == b"\r\nNO CARRIER\r\n"
    assert [e for e in h.take_effects() if isinstance(e, ev.CloseIpLink)] == [ev.CloseIpLink(link.conn_id)]
    assert h.command("AT+QIACT?") == b"\r\nOK\r\n"  # the call raised context 1 and took it down


def test_plus_plus_plus_ato_and_ath():
    h = CoreHarness(escape_guard=0.5)
    assert h.command("AT+QIACT=1") == b"\r\nOK\r\n"
    link = dial(h, "ATD*99***1#")
    negotiate(h, link)
    h.advance(0.6)
    assert h.send(b"+++") == b""
    assert h.advance(0.6) == b"\r\nOK\r\n"
    assert h.command("AT+QIACT?") == b'\r\n+QIACT: 1,1,1,"10.7.157.1"\r\n\r\nOK\r\n'
    assert h.command("ATO") == b"\r\nCONNECT\r\n"
    packet = bytes.fromhex("4500001c000200004011") + b"\0" * 18
    h.send(frame(IP, packet))
    assert ev.SendIp(link.conn_id, packet) in h.take_effects()
    h.advance(0.6)
    h.send(b"+++")
    assert h.advance(0.6) == b"\r\nOK\r\n"
    assert h.command("ATH") == b"\r\nOK\r\n"
    assert ev.CloseIpLink(link.conn_id) in h.take_effects()
    assert h.command("ATO") == b"\r\nNO CARRIER\r\n"
    # the context was active before the call: it stays so
    assert h.command("AT+QIACT?") == b'\r\n+QIACT: 1,1,1,"10.7.157.1"\r\n\r\nOK\r\n'


def test_the_context_going_down_ends_the_call_with_terminate_request():
    h = CoreHarness()
    link = dial(h)
    negotiate(h, link)
    h.modem.families["pdp"].network_drop(1)
    out = h.take_output()
    [(protocol, request)] = frames(out)
    assert protocol == LCP and request[0] == 5  # Terminate-Request
    out = h.send(frame(LCP, control(6, request[1])))
    # NO CARRIER, then the URC that waited while the port was the call's
    assert out == b'\r\nNO CARRIER\r\n\r\n+QIURC: "pdpdeact",1\r\n'


def test_dtr_drop_with_d1_keeps_the_call_and_d2_ends_it():
    h = CoreHarness()
    assert h.command("AT&D1") == b"\r\nOK\r\n"
    link = dial(h)
    negotiate(h, link)
    h.modem.set_dtr(False, h.now)
    assert h.take_output() == b"\r\nOK\r\n"
    h.modem.set_dtr(True, h.now)
    assert h.command("AT&D2") == b"\r\nOK\r\n"
    assert h.command("ATO") == b"\r\nCONNECT\r\n"
    h.modem.set_dtr(False, h.now)
    out = h.take_output()
    assert out.endswith(b"\r\nNO CARRIER\r\n")
    assert ev.CloseIpLink(link.conn_id) in h.take_effects()


def test_dial_strings_and_cgdata():
    h = CoreHarness()
    h.command("AT+CMEE=1")
    assert h.command("ATD*99**3#") == b"\r\nERROR\r\n"  # an L2P that is not PPP (3: X.25)
    assert h.command("ATD*98#") == b"\r\nERROR\r\n"
    assert h.command("ATD*99***16#") == b"\r\nERROR\r\n"  # no such context
    assert h.command("ATD10086;") == b"\r\nNO CARRIER\r\n"  # a voice call
    assert h.command('AT+CGDATA="M-RAW_IP",1') == b"\r\n+CME ERROR: 4\r\n"
    assert h.command("AT+CGDATA=?") == b'\r\n+CGDATA: ("PPP")\r\n\r\nOK\r\n'
    assert h.command('AT+CGDATA="PPP",2') == b""
    link = [e for e in h.take_effects() if isinstance(e, ev.OpenIpLink)][0]
    assert link.address == "10.7.157.2"
    assert h.event(ev.IpLinkFailed(link.conn_id, "no engine")) == b"\r\nNO CARRIER\r\n"
    assert h.command("AT+CGACT?") == b"\r\n+CGACT: 1,0\r\n+CGACT: 2,0\r\n\r\nOK\r\n"


def test_without_network_service_the_dial_fails():
    h = CoreHarness()
    assert h.command("AT+CFUN=0") == b"\r\nOK\r\n"
    assert h.command("ATD*99#") == b"\r\nNO CARRIER\r\n"
    assert not [e for e in h.take_effects() if isinstance(e, ev.OpenIpLink)]


def test_frames_with_a_bad_fcs_are_dropped_and_the_link_goes_on():
    h = CoreHarness()
    link = dial(h)
    [(protocol, request)] = up(h, link)
    bad = bytearray(frame(LCP, control(1, 9, options((5, b"\1\2\3\4")))))
    bad[-3] ^= 0x01
    assert h.send(bytes(bad)) == b""
    assert frames(h.send(frame(LCP, control(1, 9, options((5, b"\1\2\3\4")))))) == [
        (LCP, control(2, 9, options((5, b"\1\2\3\4"))))]


def test_packets_from_the_network_are_dropped_while_the_host_takes_no_output():
    """A host that does not read: past the shell's high mark the module stops writing to it, and
    an IP packet arriving then is dropped, not queued without bound (a UDP flood has no window);
    once the host reads again packets flow, and TCP has the lost ones sent again."""
    h = CoreHarness()
    link = dial(h)
    negotiate(h, link)
    packet = bytes.fromhex("4500001c000100004011") + b"\0" * 18
    h.modem.set_output_blocked(True)
    assert all(h.event(ev.IpPacket(link.conn_id, packet)) == b"" for _ in range(1000))
    h.modem.set_output_blocked(False)
    assert frames(h.event(ev.IpPacket(link.conn_id, packet))) == [(IP, packet)]
