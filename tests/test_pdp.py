"""The PDP family: AT+QICSGP, AT+QIACT, AT+QIDEACT, AT+QIDNSCFG, AT+QIGETERROR and the state the
SSL family uses. Through the core (CoreHarness) byte for byte, then end to end through a real pty.
"""

from __future__ import annotations

import asyncio
import copy
import socket
import struct
import subprocess
import sys

import pytest
import serial
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecemu.core.results import QiError
from ecemu.core.parser import SyntaxProblem, parse_command_line
from ecemu.profile import available_profiles, load_profile
from ecemu.shell.dns import resolve_a
from tests.harness import CoreHarness
from tests.processes import RunningEmulator

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
LIMIT = load_profile("EC200M-CN").limits.pdp_contexts


def info(*lines: str) -> bytes:
    """An information block followed by OK, as the module frames it with ATV1."""
    return b"\r\n" + b"\r\n".join(line.encode() for line in lines) + b"\r\n" + OK


def qi_error(h: CoreHarness) -> bytes:
    return h.command("AT+QIGETERROR")


# AT+QIGETERROR's texts: the SSL note's chapter 5 table in lower case, as the module prints them;
# 0 and 552 as a real module reads them (REFERENCE.md "Boot and basics").
QI_TEXTS = {
    0: "operate successfully", 550: "unknown error", 551: "operation blocked", 552: "invalid parameters",
    553: "memory not enough", 554: "create socket failed", 555: "operation not supported",
    556: "socket bind failed", 557: "socket listen failed", 558: "socket write failed",
    559: "socket read failed", 560: "socket accept failed", 561: "open pdp context failed",
    562: "close pdp context failed", 563: "socket identity has been used", 564: "dns busy",
    565: "dns parse failed", 566: "socket connection failed", 567: "socket has been closed",
    568: "operation busy", 569: "operation timeout", 570: "pdp context break down", 571: "cancel send",
    572: "operation not allowed", 573: "apn not configured", 574: "port busy",
}


def qi_error_is(code: int) -> bytes:
    return info(f"+QIGETERROR: {code},{QI_TEXTS[code]}")


@pytest.fixture
def h() -> CoreHarness:
    return CoreHarness()


def pdp(h: CoreHarness):
    return h.modem.families["pdp"]


def snapshot(h: CoreHarness):
    state = pdp(h)
    return copy.deepcopy((state.configs, state.active, state.dns))


# --- SSL note 3.1, verbatim ----------------------------------------------------------------------


def test_spec_3_1_1_configure_a_pdp_context(h):
    assert h.command('AT+QICSGP=1,1,"UNINET","","","",1') == OK
    # The seventh parameter is <auth>; the sixth, an extra string, is ignored (pdp.py docstring).
    assert h.command("AT+QICSGP=1") == info('+QICSGP: 1,"UNINET","","",1')


def test_spec_3_1_2_activate_a_pdp_context(h):
    assert h.command('AT+QICSGP=1,1,"UNINET","","","",1') == OK
    assert h.command("AT+QIACT=1") == OK
    assert h.command("AT+QIACT?") == b'\r\n+QIACT: 1,1,1,"10.7.157.1"\r\n\r\nOK\r\n'


def test_spec_3_1_3_deactivate_a_pdp_context(h):
    assert h.command("AT+QIACT=1") == OK
    assert h.command("AT+QIDEACT=1") == OK
    assert h.command("AT+QIACT?") == OK
    assert not pdp(h).is_active(1)


# --- AT+QICSGP -----------------------------------------------------------------------------------


def test_qicsgp_unconfigured_context_reads_defaults(h):
    assert h.command(f"AT+QICSGP={LIMIT}") == info('+QICSGP: 1,"","","",0')


def test_qicsgp_test_form_shows_the_profile_range(h):
    assert h.command("AT+QICSGP=?") == info(f"+QICSGP: (1-{LIMIT}),(1-3),<APN>,<username>,<password>,(0-3)")


def test_qicsgp_full_write_reads_back(h):
    assert h.command('AT+QICSGP=2,3,"cmnet","User","Pass word",2') == OK
    assert h.command("AT+QICSGP=2") == info('+QICSGP: 3,"cmnet","User","Pass word",2')
    assert h.command("AT+QICSGP=1") == info('+QICSGP: 1,"","","",0')  # the others are untouched


def test_qicsgp_omitted_parameters_keep_their_values(h):
    assert h.command('AT+QICSGP=1,1,"a","u","p",3') == OK
    assert h.command('AT+QICSGP=1,2,"b"') == OK
    assert h.command("AT+QICSGP=1") == info('+QICSGP: 2,"b","u","p",3')
    assert h.command('AT+QICSGP=1,1,"c","x","y"') == OK
    assert h.command("AT+QICSGP=1") == info('+QICSGP: 1,"c","x","y",3')


def test_qicsgp_success_sets_qigeterror_to_zero(h):
    h.command("AT+QICSGP=0")
    assert qi_error(h) == qi_error_is(552)
    assert h.command('AT+QICSGP=1,1,"x"') == OK
    assert qi_error(h) == b"\r\n+QIGETERROR: 0,operate successfully\r\n\r\nOK\r\n"


# --- AT+QIACT / AT+QIDEACT -----------------------------------------------------------------------


def test_qiact_lists_active_contexts_in_order_with_their_pool_addresses(h):
    assert h.command("AT+QICSGP=7,3,\"x\"") == OK
    for cid in (7, 3, LIMIT):
        assert h.command(f"AT+QIACT={cid}") == OK
    assert h.command("AT+QIACT?") == info('+QIACT: 3,1,1,"10.7.157.3"', '+QIACT: 7,1,3,"10.7.157.7","2001:DB8:7:9D00::7"',
                                          f'+QIACT: {LIMIT},1,1,"10.7.157.{LIMIT}"')
    assert pdp(h).address(7) == "10.7.157.7" and pdp(h).address(1) is None


def test_qiact_ipv6_context_gets_an_address_from_the_ipv6_pool(h):
    assert h.command('AT+QICSGP=2,2,"ims"') == OK
    assert h.command("AT+QIACT=2") == OK
    assert h.command("AT+QIACT?") == info('+QIACT: 2,1,2,"2001:DB8:7:9D00::2"')


def test_qiact_keeps_the_type_it_was_activated_with(h):
    assert h.command("AT+QIACT=1") == OK
    assert h.command('AT+QICSGP=1,2,"later"') == OK
    assert h.command("AT+QIACT?") == info('+QIACT: 1,1,1,"10.7.157.1"')


def test_qiact_test_forms(h):
    assert h.command("AT+QIACT=?") == info(f"+QIACT: (1-{LIMIT})")
    assert h.command("AT+QIDEACT=?") == info(f"+QIDEACT: (1-{LIMIT})")


def test_qiact_on_an_active_context_answers_error_561_and_keeps_it(h):
    assert h.command("AT+QIACT=1") == OK
    assert h.command("AT+QIACT=1") == ERROR
    assert qi_error(h) == b"\r\n+QIGETERROR: 561,open pdp context failed\r\n\r\nOK\r\n"
    assert h.command("AT+QIACT?") == info('+QIACT: 1,1,1,"10.7.157.1"')


def test_qideact_on_an_inactive_context_answers_ok_and_tells_nobody(h):
    calls = []
    pdp(h).listeners.append(lambda cid, by_network: calls.append((cid, by_network)))
    assert h.command("AT+QIDEACT=2") == OK
    assert calls == []


def test_qideact_calls_listeners_not_by_network_and_emits_no_urc(h):
    calls = []
    state = pdp(h)
    state.listeners.append(lambda cid, by_network: calls.append((cid, by_network, state.is_active(cid))))
    assert h.command("AT+QIACT=1") == OK
    assert h.command("AT+QIACT=2") == OK
    assert h.command("AT+QIDEACT=1") == OK  # no +QIURC: the host asked for it
    assert calls == [(1, False, False)]
    assert h.command("AT+QIACT?") == info('+QIACT: 2,1,1,"10.7.157.2"')


@pytest.mark.internal_errors_expected
def test_failing_listener_does_not_stop_the_others(h):
    calls = []

    def broken(cid, by_network):
        raise RuntimeError("bug in another family")

    pdp(h).listeners.extend([broken, lambda cid, by_network: calls.append(cid)])
    assert h.command("AT+QIACT=3") == OK
    assert h.command("AT+QIDEACT=3") == OK
    assert calls == [3]


# --- the network drops a context -----------------------------------------------------------------


def test_network_drop_emits_pdpdeact_before_the_sockets_closed_urcs(h):
    state = pdp(h)
    calls = []

    def ssl_like(cid, by_network):
        calls.append((cid, by_network, state.is_active(cid)))
        h.modem.emit_urc('+QSSLURC: "closed",4')

    state.listeners.append(ssl_like)
    assert h.command("AT+QIACT=1") == OK
    state.network_drop(1)
    assert h.send(b"") == b'\r\n+QIURC: "pdpdeact",1\r\n\r\n+QSSLURC: "closed",4\r\n'
    assert calls == [(1, True, False)]
    assert h.command("AT+QIACT?") == OK
    assert h.command("AT+QIACT=1") == OK  # it can be activated again


def test_network_drop_of_an_inactive_context_does_nothing(h):
    calls = []
    pdp(h).listeners.append(lambda cid, by_network: calls.append(cid))
    pdp(h).network_drop(1)
    assert h.send(b"") == b"" and calls == []


# --- the radio ----------------------------------------------------------------------------------


def test_radio_off_drops_every_context_as_the_network_would(h):
    calls = []
    pdp(h).listeners.append(lambda cid, by_network: calls.append((cid, by_network)))
    for cid in (2, 1):
        assert h.command(f"AT+QIACT={cid}") == OK
    # URCs a command causes are held until its final result (ARCHITECTURE.md).
    assert h.command("AT+CFUN=4") == OK + b'\r\n+QIURC: "pdpdeact",1\r\n\r\n+QIURC: "pdpdeact",2\r\n'
    assert calls == [(1, True), (2, True)]
    assert h.command("AT+QIACT?") == OK


@pytest.mark.parametrize("fun", [0, 4])
def test_qiact_with_the_radio_off_answers_error_561(h, fun):
    assert h.command(f"AT+CFUN={fun}") == OK
    assert h.command("AT+QIACT=1") == ERROR
    assert qi_error(h) == qi_error_is(561)
    assert h.command("AT+QIACT?") == OK
    assert h.command("AT+CFUN=1") == OK
    assert h.command("AT+QIACT=1") == OK


def test_qideact_with_the_radio_off_answers_ok(h):
    assert h.command("AT+CFUN=0") == OK
    assert h.command("AT+QIDEACT=1") == OK


# --- power cycle ---------------------------------------------------------------------------------


def test_reboot_forgets_contexts_configuration_and_dns(h):
    assert h.command('AT+QICSGP=1,1,"UNINET","u","p",1') == OK
    assert h.command("AT+QIACT=1") == OK
    assert h.command('AT+QIDNSCFG=1,"1.1.1.1","9.9.9.9"') == OK
    old = pdp(h)
    old_calls = []
    listener = lambda cid, by_network: old_calls.append(cid)  # noqa: E731
    old.listeners.append(listener)
    assert h.command("AT+CFUN=1,1") == OK
    h.advance(5.0)
    assert h.command("ATE0") == b"ATE0\r\r\nOK\r\n"
    new = pdp(h)
    # A fresh state: the families register anew for the new power cycle, and a reboot is not a
    # context going down (each family forgets its own sockets at the power cycle).
    assert new is not old and listener not in new.listeners and old_calls == []
    assert h.command("AT+QIACT?") == OK
    assert h.command("AT+QICSGP=1") == info('+QICSGP: 1,"","","",0')
    assert h.command("AT+QIDNSCFG=1") == info('+QIDNSCFG: 1,"114.114.114.114","8.8.8.8"')
    assert new.dns_servers(1) == () and not new.is_active(1)
    assert qi_error(h) == qi_error_is(0)


# --- AT+QIDNSCFG ---------------------------------------------------------------------------------


def test_qidnscfg_shows_the_profile_servers_until_set_but_uses_none(h):
    assert h.command("AT+QIDNSCFG=1") == info('+QIDNSCFG: 1,"114.114.114.114","8.8.8.8"')
    assert pdp(h).dns_servers(1) == ()


def test_qidnscfg_set_both(h):
    assert h.command('AT+QIDNSCFG=3,"1.1.1.1","9.9.9.9"') == OK
    assert h.command("AT+QIDNSCFG=3") == info('+QIDNSCFG: 3,"1.1.1.1","9.9.9.9"')
    assert pdp(h).dns_servers(3) == ("1.1.1.1", "9.9.9.9")
    assert pdp(h).dns_servers(1) == ()


def test_qidnscfg_primary_only_keeps_the_secondary_shown_but_unused(h):
    assert h.command('AT+QIDNSCFG=1,"223.5.5.5"') == OK
    assert h.command("AT+QIDNSCFG=1") == info('+QIDNSCFG: 1,"223.5.5.5","8.8.8.8"')
    assert pdp(h).dns_servers(1) == ("223.5.5.5",)
    assert h.command('AT+QIDNSCFG=1,"223.5.5.6"') == OK
    assert pdp(h).dns_servers(1) == ("223.5.5.6",)


def test_qidnscfg_ipv6_servers_and_a_test_port(h):
    assert h.command('AT+QIDNSCFG=2,"2400:3200::1","127.0.0.1#5353"') == OK
    assert h.command("AT+QIDNSCFG=2") == info('+QIDNSCFG: 2,"2400:3200::1","127.0.0.1#5353"')
    assert pdp(h).dns_servers(2) == ("2400:3200::1", "127.0.0.1#5353")


def test_qidnscfg_unspecified_address_is_shown_but_not_asked(h):
    assert h.command('AT+QIDNSCFG=1,"0.0.0.0","8.8.4.4"') == OK
    assert h.command("AT+QIDNSCFG=1") == info('+QIDNSCFG: 1,"0.0.0.0","8.8.4.4"')
    assert pdp(h).dns_servers(1) == ("8.8.4.4",)


def test_qidnscfg_test_form(h):
    assert h.command("AT+QIDNSCFG=?") == info(f"+QIDNSCFG: (1-{LIMIT}),<pridnsaddr>,<secdnsaddr>")


def test_qidnscfg_survives_deactivation(h):
    assert h.command("AT+QIACT=1") == OK
    assert h.command('AT+QIDNSCFG=1,"1.2.3.4"') == OK
    assert h.command("AT+QIDEACT=1") == OK
    assert pdp(h).dns_servers(1) == ("1.2.3.4",)


def test_state_queries_for_unknown_contexts(h):
    state = pdp(h)
    for cid in (0, LIMIT + 1, -1):
        assert not state.is_active(cid) and state.address(cid) is None and state.dns_servers(cid) == ()


# --- AT+QIGETERROR -------------------------------------------------------------------------------


def test_qigeterror_after_boot_reads_zero(h):
    assert qi_error(h) == b"\r\n+QIGETERROR: 0,operate successfully\r\n\r\nOK\r\n"


def test_qigeterror_does_not_reset_the_code_nor_do_other_families(h):
    assert h.command(f"AT+QIACT={LIMIT + 1}") == ERROR
    assert qi_error(h) == b"\r\n+QIGETERROR: 552,invalid parameters\r\n\r\nOK\r\n"
    assert qi_error(h) == qi_error_is(552)  # reading it is not a command that succeeded
    assert h.command("AT+CSQ") == info("+CSQ: 20,99")
    assert qi_error(h) == qi_error_is(552)
    assert h.command("AT+QIACT?") == OK  # a TCP/IP command that succeeds clears it
    assert qi_error(h) == qi_error_is(0)


def test_qigeterror_other_forms(h):
    h.command("AT+QIACT=0")
    assert h.command("AT+QIGETERROR=?") == OK
    assert h.command("AT+QIGETERROR?") == ERROR
    assert h.command("AT+QIGETERROR=1") == ERROR
    assert qi_error(h) == qi_error_is(552)  # its own errors leave the code alone


@pytest.mark.parametrize("code", sorted(QI_TEXTS))
def test_qigeterror_reads_every_chapter_5_code(h, code):
    h.modem.last_qi_error = QiError(code)
    assert qi_error(h) == qi_error_is(code)
    assert qi_error(h) == f"\r\n+QIGETERROR: {code},{QI_TEXTS[code]}\r\n\r\nOK\r\n".encode()


def test_the_table_holds_every_chapter_5_code_and_no_other():
    assert sorted(QiError) == sorted(QI_TEXTS)


def test_pdp_error_ends_the_line_with_plain_error_whatever_cmee(h):
    for cmee in (0, 1, 2):
        assert h.command(f"AT+CMEE={cmee}") == OK
        assert h.command("AT+QIACT=0;+CSQ") == ERROR


# --- every rejected input: plain ERROR, 552, nothing changed -------------------------------------


REJECTED = [
    # AT+QICSGP
    "AT+QICSGP=0", f"AT+QICSGP={LIMIT + 1}", 'AT+QICSGP="1"', "AT+QICSGP=-1", "AT+QICSGP=x",
    "AT+QICSGP=", "AT+QICSGP", "AT+QICSGP?",
    "AT+QICSGP=1,1",  # a type without its APN
    'AT+QICSGP=1,0,"apn"', 'AT+QICSGP=1,4,"apn"', 'AT+QICSGP=1,"1","apn"', 'AT+QICSGP=1,,"apn"',
    "AT+QICSGP=1,1,apn", "AT+QICSGP=1,1,",
    'AT+QICSGP=1,1,"apn","user"',  # a user name without its password
    'AT+QICSGP=1,1,"apn",user,"p"', 'AT+QICSGP=1,1,"apn","u",p',
    'AT+QICSGP=1,1,"apn","u","p",4', 'AT+QICSGP=1,1,"apn","u","p","1"', 'AT+QICSGP=1,1,"apn","u","p",x',
    'AT+QICSGP=1,1,"apn","u","p","",4', 'AT+QICSGP=1,1,"apn","u","p",1,1', 'AT+QICSGP=1,1,"apn","u","p",,1',
    'AT+QICSGP=1,1,"apn","u","p","",1,0',  # too many
    'AT+QICSGP=1,1,"apn","u","p","",',
    # AT+QIACT
    "AT+QIACT=0", f"AT+QIACT={LIMIT + 1}", 'AT+QIACT="1"', "AT+QIACT=1,1", "AT+QIACT=", "AT+QIACT",
    "AT+QIACT=a", "AT+QIACT=1.0",
    # AT+QIDEACT
    "AT+QIDEACT=0", f"AT+QIDEACT={LIMIT + 1}", 'AT+QIDEACT="2"', "AT+QIDEACT=2,0", "AT+QIDEACT",
    "AT+QIDEACT?",
    # AT+QIDNSCFG
    "AT+QIDNSCFG=0", f"AT+QIDNSCFG={LIMIT + 1}", 'AT+QIDNSCFG="1"', "AT+QIDNSCFG", "AT+QIDNSCFG?",
    "AT+QIDNSCFG=1,8.8.8.8", 'AT+QIDNSCFG=1,"8.8.8.8",8.8.4.4', 'AT+QIDNSCFG=1,""', 'AT+QIDNSCFG=1,"8.8.8"',
    'AT+QIDNSCFG=1,"256.1.1.1"', 'AT+QIDNSCFG=1,"8.8.8.8.8"', 'AT+QIDNSCFG=1,"dns.google"',
    'AT+QIDNSCFG=1,"08.8.8.8"', 'AT+QIDNSCFG=1," 8.8.8.8"', 'AT+QIDNSCFG=1,"1.1.1.1","9.9.9.x"',
    'AT+QIDNSCFG=1,"2400:::1"', 'AT+QIDNSCFG=1,"1.1.1.1#"', 'AT+QIDNSCFG=1,"1.1.1.1#0"',
    'AT+QIDNSCFG=1,"1.1.1.1#65536"', 'AT+QIDNSCFG=1,"1.1.1.1#x"', 'AT+QIDNSCFG=1,,"8.8.8.8"',
    'AT+QIDNSCFG=1,"1.1.1.1","2.2.2.2","3.3.3.3"', 'AT+QIDNSCFG=1,"1.1.1.1",',
]


@pytest.mark.parametrize("line", REJECTED)
def test_rejected_command_answers_error_552_and_changes_nothing(h, line):
    assert h.command('AT+QICSGP=1,1,"keep","u","p",2') == OK
    assert h.command('AT+QICSGP=2,3,"also"') == OK
    assert h.command("AT+QIACT=2") == OK
    assert h.command('AT+QIDNSCFG=1,"1.2.3.4","5.6.7.8"') == OK
    before = snapshot(h)
    assert h.command(line) == ERROR
    assert snapshot(h) == before
    assert qi_error(h) == qi_error_is(552)


def test_rejected_command_in_a_line_stops_the_line(h):
    assert h.command('AT+QIACT=1;+QIACT=0;+QIACT=2') == ERROR
    assert h.command("AT+QIACT?") == info('+QIACT: 1,1,1,"10.7.157.1"')


TOKENS = st.sampled_from(["", "0", "1", "2", "3", "4", "15", "16", "-1", "x", '"', '""', '"x"', '"1"',
                          '"8.8.8.8"', "8.8.8.8", '"2400::1"', '"1.1.1.1#53"', " "])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["+QICSGP", "+QIACT", "+QIDEACT", "+QIDNSCFG"]),
       args=st.lists(TOKENS, max_size=9))
def test_any_error_changes_nothing_and_leaves_552(name, args):
    h = CoreHarness()
    before = snapshot(h)
    body = f"{name}=" + ",".join(args)
    out = h.command("AT" + body)
    if out == ERROR:
        assert snapshot(h) == before
        try:
            parse_command_line(body)
        except SyntaxProblem:
            # The line is refused before any command runs (an unterminated string): the modem
            # answers for the line, not for the TCP/IP command, and the code stays.
            assert qi_error(h) == qi_error_is(0)
            return
        assert qi_error(h) == qi_error_is(552)
    else:
        assert out.endswith(OK)
        assert qi_error(h) == qi_error_is(0)


# --- every profile -------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", available_profiles())
def test_context_range_comes_from_the_profile(profile):
    h = CoreHarness(profile)
    limit = load_profile(profile).limits.pdp_contexts
    assert h.command("AT+QIACT=?") == info(f"+QIACT: (1-{limit})")
    assert h.command(f"AT+QIACT={limit}") == OK
    assert h.command(f"AT+QIACT={limit + 1}") == ERROR
    assert h.command("AT+QIDNSCFG=1") == info('+QIDNSCFG: 1,"114.114.114.114","8.8.8.8"')


# --- shell DNS: configured servers are the ones asked --------------------------------------------


class _Responder(asyncio.DatagramProtocol):
    """A DNS server that knows one name: an A record for it, NXDOMAIN for anything else."""

    def __init__(self, name: str, address: str):
        self.name, self.address = name, address
        self.questions: list[str] = []

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        query_id, flags = struct.unpack("!HH", data[:4])
        labels, offset = [], 12
        while data[offset]:
            labels.append(data[offset + 1:offset + 1 + data[offset]].decode())
            offset += 1 + data[offset]
        question = data[12:offset + 5]
        name = ".".join(labels)
        self.questions.append(name)
        found = name == self.name
        header = struct.pack("!HHHHHH", query_id, 0x8180 if found else 0x8183, 1, int(found), 0, 0)
        answer = (b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(self.address)) if found else b""
        self.transport.sendto(header + question + answer, addr)


def _unused_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_resolve_a_asks_the_server_set_with_qidnscfg(h):
    async def scenario():
        loop = asyncio.get_running_loop()
        transport, responder = await loop.create_datagram_endpoint(
            lambda: _Responder("modem-test.invalid", "203.0.113.77"), local_addr=("127.0.0.1", 0))
        try:
            port = transport.get_extra_info("sockname")[1]
            # The first server is a closed port (refused at once); the emulator goes on to the next.
            servers = f'"127.0.0.1#{_unused_udp_port()}","127.0.0.1#{port}"'
            assert h.command(f"AT+QIDNSCFG=1,{servers}") == OK
            address = await asyncio.wait_for(resolve_a("modem-test.invalid", pdp(h).dns_servers(1)), 10)
            return address, responder.questions
        finally:
            transport.close()

    address, questions = asyncio.run(scenario())
    assert address == "203.0.113.77"
    assert questions == ["modem-test.invalid"]


# --- end to end: a real process, a real pty, pyserial --------------------------------------------


def ask(port: serial.Serial, line: bytes, final: bytes = b"OK\r\n") -> bytes:
    port.write(line + b"\r")
    answer = port.read_until(final)
    assert answer.endswith(final), answer
    return answer


@pytest.fixture
def running(tmp_path, request):
    emulator = RunningEmulator("--link", str(tmp_path / "modem"))
    emulator.wait_for_boot()
    yield emulator
    if getattr(request.node, "failed_call", False):
        print("emulator log:\n" + emulator.log_text()[-8000:])
    emulator.stop()


def test_pty_spec_3_1_verbatim_with_echo(running):
    with serial.Serial(running.port, 115200, timeout=5) as port:
        assert ask(port, b'AT+QICSGP=1,1,"UNINET","","","",1') == b'AT+QICSGP=1,1,"UNINET","","","",1\r\r\nOK\r\n'
        assert ask(port, b"AT+QIACT=1") == b"AT+QIACT=1\r\r\nOK\r\n"
        assert ask(port, b"AT+QIACT?") == b'AT+QIACT?\r\r\n+QIACT: 1,1,1,"10.7.157.1"\r\n\r\nOK\r\n'
        assert ask(port, b"AT+QIDEACT=1") == b"AT+QIDEACT=1\r\r\nOK\r\n"
        assert ask(port, b"AT+QIACT?") == b"AT+QIACT?\r\r\nOK\r\n"


def test_pty_error_then_qigeterror(running):
    with serial.Serial(running.port, 115200, timeout=5) as port:
        assert ask(port, b"ATE0") == b"ATE0\r\r\nOK\r\n"
        assert ask(port, b'AT+QIDNSCFG=1,"8.8.8"', final=b"ERROR\r\n") == b"\r\nERROR\r\n"
        assert ask(port, b"AT+QIGETERROR") == b"\r\n+QIGETERROR: 552,invalid parameters\r\n\r\nOK\r\n"


def test_pty_pdp_drop_from_ecemu_ctl_reaches_the_host(running, tmp_path):
    with serial.Serial(running.port, 115200, timeout=5) as port:
        assert ask(port, b"ATE0;+QIACT=2") == b"ATE0;+QIACT=2\r\r\nOK\r\n"
        subprocess.run([sys.executable, "-m", "ecemu", "ctl", "--link", str(tmp_path / "modem"),
                        "pdp-drop", "context=2"], check=True, timeout=30, capture_output=True)
        assert port.read_until(b'"pdpdeact",2\r\n') == b'\r\n+QIURC: "pdpdeact",2\r\n'
        assert ask(port, b"AT+QIACT?") == b"\r\nOK\r\n"


def test_a_profile_pool_too_small_for_its_contexts_is_refused():
    from ecemu.commands.pdp import _pool_addresses

    assert _pool_addresses("10.0.0.0/28", 14)[-1] == "10.0.0.14"
    with pytest.raises(ValueError, match="too small"):
        _pool_addresses("10.0.0.0/28", 15)  # .15 is the broadcast address
    with pytest.raises(ValueError, match="too small"):
        _pool_addresses("2001:db8::/125", 8)
