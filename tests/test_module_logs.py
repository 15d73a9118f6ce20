"""Exchanges from published serial logs of real modules of the family, byte for byte through the
core (REFERENCE.md "Where the real-module logs come from"). The module's side is kept as the log
shows it; names and addresses that are the profile's own (model, address pools) are the
emulator's, the framing is the log's.

- EC200U, firmware EC200UCNAAR03A15M08: a QuecPython project's serial log, every line the module
  sent printed by Quectel's AT client (``at_utils.c``: ``recvline: ..`` is an empty line), echo
  off, 2026-07: start-up, a context with both addresses, AT+QIDNSGIP of an address, a TCP
  connection in direct push mode carrying TLS.
- EC600S-CN (the family's platform): a public STM32 firmware's comment holding its module's
  output for an MQTT session, echo off: AT+QMTCFG=? and a publish.
- EC800M, firmware EC800MCNGBR06A04M08: a hex dump of ATI's answer posted on Quectel's forum
  ("State machine for parsing responses from a modem"), echo off.
"""

from __future__ import annotations


from ecemu.core import events as ev
from tests.harness import CoreHarness
from tests.wire import OK


def info(*lines: bytes) -> bytes:
    return b"\r\n" + b"\r\n".join(lines) + b"\r\n" + OK


# --- the EC200U log ---------------------------------------------------------------------------


def test_ec200u_start_up_answers(h):
    assert h.command("AT+CPIN?") == info(b"+CPIN: READY")
    assert h.command("AT+CREG?") == info(b"+CREG: 0,1")
    assert h.command("AT+CEREG?") == info(b"+CEREG: 0,1")


def test_ec200u_context_with_both_addresses_writes_ipv6_in_upper_case(h):
    # The log: +QIACT: 1,1,3,"10.28.33.36","2409:8D1E:750C:DFA4::1"; the addresses here are the
    # profile's pools (10.7.157.0/24, 2001:db8:7:9d00::/64), written as the module writes them.
    assert h.command('AT+QICSGP=1,3,"cmnet"') == OK
    assert h.command("AT+QIACT=1") == OK
    assert h.command("AT+QIACT?") == info(b'+QIACT: 1,1,3,"10.7.157.1","2001:DB8:7:9D00::1"')
    assert h.command("AT+CGPADDR=1") == info(b'+CGPADDR: 1,"10.7.157.1","2001:DB8:7:9D00::1"')


def test_ec200u_dnsgip_of_an_address_gives_a_ttl_of_0(h):
    assert h.command("AT+QIACT=1") == OK
    assert h.command('AT+QIDNSGIP=1,"172.188.83.251"') == OK
    [resolve] = h.take_effects()
    assert isinstance(resolve, ev.Resolve) and resolve.host == "172.188.83.251"
    assert h.event(ev.Resolved(resolve.conn_id, ("172.188.83.251",))) == (
        b'\r\n+QIURC: "dnsgip",0,1,0\r\n\r\n+QIURC: "dnsgip","172.188.83.251"\r\n')


def test_ec200u_direct_push_tcp_session(h):
    """AT+QIOPEN in direct push mode, AT+QISEND with a length, and the server's data pushed: one
    URC of 51 bytes, and 2501 bytes as 1500 and 1001 in one block, one CR LF between them."""
    assert h.command("AT+QIACT=1") == OK
    assert h.command('AT+QIOPEN=1,0,"TCP","172.188.83.251",43719,0,1') == OK
    [opening] = h.take_effects()
    conn = opening.conn_id
    assert h.event(ev.TcpConnected(conn, "172.188.83.251", 43719, 50000)) == b"\r\n+QIOPEN: 0,0\r\n"
    # The log's reader shows "\r\n" and "> " before the data and " \r\n" (the prompt's space) and
    # "SEND OK\r\n" after it: the result code keeps its CR LF after the data.
    hello = bytes(range(147))
    assert h.command("AT+QISEND=0,147") == b"\r\n> "
    assert h.send(hello) == b"\r\nSEND OK\r\n"
    assert b"".join(e.data for e in h.take_effects() if isinstance(e, ev.SendTcp)) == hello
    flight = bytes(i % 251 for i in range(2501))
    assert h.event(ev.TcpData(conn, flight)) == (b'\r\n+QIURC: "recv",0,1500\r\n' + flight[:1500] + b"\r\n"
                                                 + b'+QIURC: "recv",0,1001\r\n' + flight[1500:] + b"\r\n")
    record = bytes(51)
    assert h.event(ev.TcpData(conn, record)) == b'\r\n+QIURC: "recv",0,51\r\n' + record + b"\r\n"


# --- the EC600S log ---------------------------------------------------------------------------

# Its AT+QMTCFG=? answer, whole.
EC600S_QMTCFG_TEST = [
    b'+QMTCFG: "version",(0-5),(3,4)',
    b'+QMTCFG: "pdpcid",(0-5),(1-15)',
    b'+QMTCFG: "ssl",(0-5),(0,1),(0-5)',
    b'+QMTCFG: "keepalive",(0-5),(0-3600)',
    b'+QMTCFG: "session",(0-5),(0,1)',
    b'+QMTCFG: "timeout",(0-5),(1-1200),(1-10),(0,1)',
    b'+QMTCFG: "will",(0-5),(0,1),(0-2),(0,1),"willtopic","willmessage"',
    b'+QMTCFG: "willex",(0-5),(0,1),(0-2),(0,1),"willtopic",(0-256)',
    b'+QMTCFG: "recv/mode",(0-5),(0,1),(0,1)',
    b'+QMTCFG: "send/mode",(0-5),(0,1)',
    b'+QMTCFG: "onenet",(0-5),"product id","access key"',
    b'+QMTCFG: "aliauth",(0-5),"product key","device name","device secret"',
    b'+QMTCFG: "hwauth",(0-5),"device id","device secret"',
    b'+QMTCFG: "hwprodid",(0-5),"product id","product secret","nodeid"',
    b'+QMTCFG: "qmtping",(0-5),(5-60)',
    b'+QMTCFG: "dataformat",(0-5),(0,1),(0,1)',
    b'+QMTCFG: "view/mode",(0-5),(0,1)',
    b'+QMTCFG: "CTWing",(0-5),"client_id","feature_string"',
    b'+QMTCFG: "edit/timeout",(0-5),(0,1),(1-180)',
]


def test_ec600s_qmtcfg_test_form_lists_its_options_as_the_module_does(h):
    """Every option the emulator has, in the module's order and words: its lines are the
    module's lines for those options (the others it does not have are left out)."""
    out = h.command("AT+QMTCFG=?")
    assert out.startswith(b"\r\n") and out.endswith(b"\r\n" + OK)
    lines = out[2:-len(b"\r\n" + OK)].split(b"\r\n")
    assert [line for line in EC600S_QMTCFG_TEST if line in lines] == lines
    assert len(lines) == 9  # version, pdpcid, ssl, keepalive, session, timeout, will, recv/mode, aliauth
    for line in ('AT+QMTCFG="pdpcid",0,15', 'AT+QMTCFG="timeout",0,1200,10,1', 'AT+QMTCFG="timeout",0,1,1,0'):
        assert h.command(line) == OK
    for line in ('AT+QMTCFG="pdpcid",0,16', 'AT+QMTCFG="timeout",0,1201,3,1', 'AT+QMTCFG="timeout",0,5,0,1'):
        assert h.command(line) == b"\r\nERROR\r\n"


def test_ec600s_publish_with_echo_off(h):
    """"> " then, after the message, OK on a line of its own and the URC."""
    assert h.command("AT+QIACT=1") == OK
    assert h.command('AT+QMTOPEN=0,"mqtt.example",1883') == OK
    [opening] = h.take_effects()
    conn = opening.conn_id
    assert h.event(ev.TcpConnected(conn, "10.0.0.1", 1883, 40000)) == b"\r\n+QMTOPEN: 0,0\r\n"
    assert h.command('AT+QMTCONN=0,"someclientID"') == OK
    h.take_effects()
    assert h.event(ev.TcpData(conn, b"\x20\x02\x00\x00")) == b"\r\n+QMTCONN: 0,0,0\r\n"
    assert h.command('AT+QMTPUBEX=0,0,0,0,"testtopic0",30') == b"\r\n> "
    assert h.send(b"This is test data, hello MQTT.") == OK + b"\r\n+QMTPUBEX: 0,0,0\r\n"


# --- the EC800M forum post ----------------------------------------------------------------------


def test_ec800m_ati_framing():
    h = CoreHarness("EC800M-CN")
    # 0d 0a "Quectel" 0d 0a "EC800M" 0d 0a "Revision: EC800MCNGBR06A04M08" 0d 0a 0d 0a "OK" 0d 0a;
    # the profile's firmware is the EC800M log's, EC800MCNGAR06A05M08 (REFERENCE.md).
    assert h.command("ATI") == b"\r\nQuectel\r\nEC800M\r\nRevision: EC800MCNGAR06A05M08\r\n\r\nOK\r\n"
