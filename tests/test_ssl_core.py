"""The SSL commands through the sans-IO core, against real TLS in memory (SSL note chapters 2-5).

The network is simulated (``tests.core_network``) but the TLS is OpenSSL on both ends, so these
tests run the real handshake and records; time is the harness's, so timeouts are exact.
"""

from __future__ import annotations

import pytest

from ecemu.core import events as ev
from ecemu.pki import generate_test_pki
from tests.core_network import SimulatedNetwork, server_context
from tests.harness import CoreHarness
from tests.ssl_table3 import TABLE_3
from tests.wire import ERROR, OK


def qierror(h: CoreHarness) -> bytes:
    answer = h.command("AT+QIGETERROR")
    return answer.split(b"\r\n")[1]


@pytest.fixture
def h() -> CoreHarness:
    harness = CoreHarness()
    harness.files.write("cacert.pem", generate_test_pki()["ca.pem"])
    assert harness.command("AT+QIACT=1") == OK
    return harness


@pytest.fixture
def net(h) -> SimulatedNetwork:
    return SimulatedNetwork(h)


def open_client(h, net, client=4, mode=0, ctx=1) -> bytes:
    answer = h.command(f'AT+QSSLOPEN=1,{ctx},{client},"127.0.0.1",8010,{mode}')
    return answer + net.run()


# --- AT+QSSLCFG -------------------------------------------------------------------------------

DEFAULTS = {
    "sslversion": "4", "ciphersuite": "0XFFFF", "cacert": '"cacert.pem"', "clientcert": '"client.pem"',
    "clientkey": '"user_key.pem"', "secllevel": "0", "seclevel": "0", "ignorelocaltime": "1",
    "negotiatetime": "300", "sni": "0", "closetimemode": "0", "ignoremulticertchainverify": "0",
    "ignoreinvalidcertsign": "0", "session_cache": "0",
}


@pytest.mark.parametrize("name,default", DEFAULTS.items())
def test_every_setting_reads_its_module_default(h, name, default):
    for ctx in (0, 5):
        assert h.command(f'AT+QSSLCFG="{name}",{ctx}') == f'\r\n+QSSLCFG: "{name}",{ctx},{default}\r\n'.encode() + OK


GOOD_VALUES = {
    "sslversion": ["0", "1", "2", "3", "4"],
    "ciphersuite": ["0X0035", "0XC030", "0xc02f", "0XFFFF"],
    "cacert": ['"UFS:ca.pem"', '"other.pem"'],
    "clientcert": ['"UFS:client.pem"'],
    "clientkey": ['"UFS:client.key"'],
    "secllevel": ["0", "1", "2"],
    "ignorelocaltime": ["0", "1"],
    "negotiatetime": ["10", "300", "77"],
    "sni": ["0", "1"],
    "closetimemode": ["0", "1"],
    "ignoremulticertchainverify": ["0", "1"],
    "ignoreinvalidcertsign": ["0", "1"],
    "session_cache": ["0", "1"],
}
BAD_VALUES = {
    "sslversion": ["5", "-1", '"1"', "x"],
    "ciphersuite": ["0X0036", "0XFFFFF", "35", "0X", "0XGGGG", "0X0000"],
    "cacert": ["cacert.pem"],
    "clientcert": ["client.pem"],
    "clientkey": ["7"],
    "secllevel": ["3", '"1"'],
    "ignorelocaltime": ["2"],
    "negotiatetime": ["9", "301", "0"],
    "sni": ["2"],
    "closetimemode": ["2"],
    "ignoremulticertchainverify": ["2"],
    "ignoreinvalidcertsign": ["2"],
    "session_cache": ["2"],
}


def _canonical(name: str, value: str) -> str:
    if name == "ciphersuite":
        return "0X" + value[2:].upper()
    return value


@pytest.mark.parametrize("name", GOOD_VALUES)
def test_each_setting_is_set_per_context_and_read_back(h, name):
    for value in GOOD_VALUES[name]:
        assert h.command(f'AT+QSSLCFG="{name}",2,{value}') == OK
        assert h.command(f'AT+QSSLCFG="{name}",2') == (
            f'\r\n+QSSLCFG: "{name}",2,{_canonical(name, value)}\r\n'.encode() + OK)
    # the other contexts keep their defaults
    assert h.command(f'AT+QSSLCFG="{name}",3') == f'\r\n+QSSLCFG: "{name}",3,{DEFAULTS[name]}\r\n'.encode() + OK


@pytest.mark.parametrize("name", BAD_VALUES)
def test_out_of_range_values_answer_error_and_change_nothing(h, name):
    before = h.command(f'AT+QSSLCFG="{name}",1')
    for value in BAD_VALUES[name]:
        assert h.command(f'AT+QSSLCFG="{name}",1,{value}') == ERROR
        assert qierror(h) == b"+QIGETERROR: 552,invalid parameters"
        assert h.command(f'AT+QSSLCFG="{name}",1') == before


@pytest.mark.parametrize("line", [
    'AT+QSSLCFG="sslversion",6,1', 'AT+QSSLCFG="sslversion",-1', 'AT+QSSLCFG="sslversion"',
    'AT+QSSLCFG="nosuch",1,1', "AT+QSSLCFG=sslversion,1,1", 'AT+QSSLCFG="sslversion",1,1,1',
    'AT+QSSLCFG="sslversion",1,', "AT+QSSLCFG?", "AT+QSSLCFG",
])
def test_malformed_qsslcfg_lines_answer_error(h, line):
    assert h.command(line) == ERROR


def test_seclevel_spelling_sets_the_same_setting(h):
    assert h.command('AT+QSSLCFG="seclevel",1,2') == OK
    assert h.command('AT+QSSLCFG="secllevel",1') == b'\r\n+QSSLCFG: "secllevel",1,2\r\n' + OK


def test_cacertex_reads_all_contexts_and_sets_the_ca_path(h):
    assert h.command('AT+QSSLCFG="cacertex",3,"UFS:root.pem"') == OK
    assert h.command('AT+QSSLCFG="cacertex"') == (
        b"\r\n" + b"\r\n".join(
            f'+QSSLCFG: "cacertex",{i},"{"UFS:root.pem" if i == 3 else "cacert.pem"}"'.encode() for i in range(6))
        + b"\r\n" + OK)
    assert h.command('AT+QSSLCFG="cacert",3') == b'\r\n+QSSLCFG: "cacert",3,"UFS:root.pem"\r\n' + OK


def test_test_form_lists_every_setting(h):
    answer = h.command("AT+QSSLCFG=?")
    lines = answer.split(b"\r\n")
    names = [line.split(b'"')[1].decode() for line in lines if line.startswith(b"+QSSLCFG:")]
    assert names == ["sslversion", "ciphersuite", "cacert", "cacertex", "clientcert", "clientkey", "secllevel",
                     "ignorelocaltime", "negotiatetime", "sni", "closetimemode", "ignoremulticertchainverify",
                     "ignoreinvalidcertsign", "session_cache"]  # the note's order (2.2.1)
    assert b'+QSSLCFG: "sslversion",(0-5),(0-4)' in lines
    assert b'+QSSLCFG: "negotiatetime",(0-5),(10-300)' in lines
    suites = [l for l in lines if l.startswith(b'+QSSLCFG: "ciphersuite"')][0]
    for code in TABLE_3:  # every suite of the note's table 3
        assert f"0X{code:04X}".encode() in suites
    assert answer.endswith(b"\r\n\r\nOK\r\n")


def test_settings_are_lost_at_a_reboot(h):
    assert h.command('AT+QSSLCFG="sni",1,1') == OK
    assert h.command("AT+CFUN=1,1") == OK
    h.advance(5)
    h.command("ATE0")
    assert h.command('AT+QSSLCFG="sni",1') == b'\r\n+QSSLCFG: "sni",1,0\r\n' + OK


# --- AT+QSSLOPEN --------------------------------------------------------------------------------


def test_open_in_buffer_mode_answers_ok_then_the_urc(h, net):
    assert h.command('AT+QSSLOPEN=1,1,4,"127.0.0.1",8010,0') == OK
    assert net.run() == b"\r\n+QSSLOPEN: 4,0\r\n"
    assert net.server().handshake_done
    assert qierror(h) == b"+QIGETERROR: 0,operate successfully"


def test_open_an_id_in_use_answers_error_563(h, net):
    open_client(h, net)
    assert h.command('AT+QSSLOPEN=1,1,4,"127.0.0.1",8010,0') == ERROR
    assert qierror(h) == b"+QIGETERROR: 563,socket identity has been used"
    assert len(net.opens) == 1


@pytest.mark.parametrize("reason,code", [("dns", 565), ("refused", 566), ("unreachable", 566), ("timeout", 569)])
def test_connection_failures_come_as_the_urc_code(h, net, reason, code):
    net.fail_next.append(reason)
    assert open_client(h, net) == OK + f"\r\n+QSSLOPEN: 4,{code}\r\n".encode()
    # REFERENCE.md (seen): AT+QSSLOPEN itself answered OK, so AT+QIGETERROR reads 0.
    assert qierror(h) == b"+QIGETERROR: 0,operate successfully"
    assert h.command("AT+QSSLSTATE") == OK  # the client ID is free again
    assert open_client(h, net) == OK + b"\r\n+QSSLOPEN: 4,0\r\n"


def test_open_on_an_inactive_pdp_context_reports_561(h, net):
    assert h.command('AT+QSSLOPEN=2,1,4,"127.0.0.1",8010,0') == OK + b"\r\n+QSSLOPEN: 4,561\r\n"
    assert net.opens == []


@pytest.mark.parametrize("line", [
    'AT+QSSLOPEN=0,1,4,"127.0.0.1",8010,0', 'AT+QSSLOPEN=16,1,4,"127.0.0.1",8010,0',
    'AT+QSSLOPEN=1,6,4,"127.0.0.1",8010,0', 'AT+QSSLOPEN=1,1,12,"127.0.0.1",8010,0',
    'AT+QSSLOPEN=1,1,4,127.0.0.1,8010,0', 'AT+QSSLOPEN=1,1,4,"127.0.0.1",0,0',
    'AT+QSSLOPEN=1,1,4,"127.0.0.1",65536,0', 'AT+QSSLOPEN=1,1,4,"127.0.0.1",8010,3',
    'AT+QSSLOPEN=1,1,4,"",8010,0', 'AT+QSSLOPEN=1,1,4,"127.0.0.1"', 'AT+QSSLOPEN=1,1,4,"a",1,0,0',
])
def test_bad_open_parameters_answer_error_552_and_open_nothing(h, net, line):
    assert h.command(line) == ERROR
    assert qierror(h) == b"+QIGETERROR: 552,invalid parameters"
    assert net.run() == b""
    assert net.opens == []


def test_open_test_form(h):
    assert h.command("AT+QSSLOPEN=?") == (
        b"\r\n+QSSLOPEN: (1-15),(0-5),(0-11),<serveraddr>,<server_port>,(0-2)\r\n" + OK)


def test_untrusted_server_fails_as_566_and_the_server_sees_the_alert(h):
    net = SimulatedNetwork(h, context=server_context("server-otherca"))
    h.command('AT+QSSLCFG="secllevel",1,1')
    assert open_client(h, net) == OK + b"\r\n+QSSLOPEN: 4,566\r\n"
    assert "unknown ca" in (net.server().failed or "").lower()


def test_missing_ca_file_fails_as_566_without_connecting(h, net):
    h.command('AT+QSSLCFG="secllevel",1,1')
    h.command('AT+QSSLCFG="cacert",1,"UFS:absent.pem"')
    assert open_client(h, net) == OK + b"\r\n+QSSLOPEN: 4,566\r\n"
    assert net.opens == []


def test_unavailable_cipher_suite_fails_as_566_without_connecting(h, net, caplog):
    h.command('AT+QSSLCFG="ciphersuite",1,0XC002')  # static ECDH with RC4: no engine here has it
    assert open_client(h, net) == OK + b"\r\n+QSSLOPEN: 4,566\r\n"
    assert net.opens == []
    assert "0XC002 TLS_ECDH_ECDSA_WITH_RC4_128_SHA cannot be offered" in caplog.text


def test_ssl3_against_a_server_without_it_fails_as_566_with_a_log_line(h, net, caplog):
    h.command('AT+QSSLCFG="sslversion",1,0')  # the server (OpenSSL) has no SSL 3.0
    assert open_client(h, net) == OK + b"\r\n+QSSLOPEN: 4,566\r\n"
    assert len(net.opens) == 1
    assert "handshake failed" in caplog.text


def test_handshake_slower_than_negotiatetime_fails_as_569(h, net):
    h.command('AT+QSSLCFG="negotiatetime",1,10')
    assert h.command('AT+QSSLOPEN=1,1,4,"127.0.0.1",8010,0') == OK
    # The server accepts the connection and never answers the ClientHello.
    effects = h.take_effects()
    assert isinstance(effects[0], ev.OpenTcp)
    conn_id = effects[0].conn_id
    assert h.event(ev.TcpConnected(conn_id, "127.0.0.1", 8010, 40000)) == b""
    assert h.advance(9.9) == b""
    assert h.advance(0.2) == b"\r\n+QSSLOPEN: 4,569\r\n"
    assert any(isinstance(e, ev.CloseTcp) and e.abort for e in h.take_effects())


def test_close_while_opening_gives_up_without_a_urc(h, net):
    net.hold_opens = True
    assert h.command('AT+QSSLOPEN=1,1,4,"127.0.0.1",8010,0') == OK
    net.run()
    assert h.command("AT+QSSLSTATE") == (
        b'\r\n+QSSLSTATE: 4,"SSLClient","127.0.0.1",8010,0,1,1,4,0,"usbmodem",1\r\n' + OK)
    assert h.command("AT+QSSLCLOSE=4") == OK
    conn_id = net.opens[0].conn_id
    assert h.event(ev.TcpConnected(conn_id, "127.0.0.1", 8010, 40000)) == b""  # too late: ignored
    assert h.command("AT+QSSLSTATE") == OK


# --- AT+QSSLSEND ---------------------------------------------------------------------------------


def test_send_variable_length_ends_at_ctrl_z(h, net):
    open_client(h, net)
    assert h.command("AT+QSSLSEND=4") == b"\r\n> "
    assert h.send(b"Test data from SSL\x1a") == b"\r\nSEND OK\r\n"
    net.run()
    assert net.server().received == b"Test data from SSL"


def test_send_fixed_length_needs_no_ctrl_z_and_takes_any_byte(h, net):
    open_client(h, net)
    payload = bytes(range(256)) * 5 + b"\x1a\x1b\r\n+++"
    assert h.command(f"AT+QSSLSEND=4,{len(payload)}") == b"\r\n> "
    assert h.send(payload[:100]) == b""
    # "AT\r" came with the last counted byte: dropped, sent nowhere (the length rule, REFERENCE.md
    # "Data after a prompt"); a command after the answer runs.
    assert h.send(payload[100:] + b"AT\r") == b"\r\nSEND OK\r\n"
    assert h.command("AT") == OK
    net.run()
    assert net.server().received == payload


def test_send_echoes_the_data_with_ate1(h, net):
    open_client(h, net)
    h.command("ATE1")
    assert h.command("AT+QSSLSEND=4,5") == b"AT+QSSLSEND=4,5\r\r\n> "
    assert h.send(b"hello") == b"hello\r\nSEND OK\r\n"


def test_esc_cancels_and_sends_nothing(h, net):
    open_client(h, net)
    assert h.command("AT+QSSLSEND=4") == b"\r\n> "
    assert h.send(b"never\x1b") == ERROR
    assert qierror(h) == b"+QIGETERROR: 571,cancel send"
    net.run()
    assert net.server().received == b""


def test_variable_length_beyond_the_limit_is_refused_and_the_rest_is_a_command(h, net):
    open_client(h, net)
    limit = h.modem.profile.limits.send_max
    assert h.command("AT+QSSLSEND=4") == b"\r\n> "
    assert h.send(b"x" * limit) == b""
    # The byte past the limit ends the send; it and what follows are the next command line.
    assert h.send(b"AT\r") == ERROR + OK
    net.run()
    assert net.server().received == b""


@pytest.mark.parametrize("line", ["AT+QSSLSEND=4,0", "AT+QSSLSEND=4,1461", "AT+QSSLSEND=12", "AT+QSSLSEND=4,1,1"])
def test_bad_send_parameters(h, net, line):
    open_client(h, net)
    assert h.command(line) == ERROR
    assert qierror(h) == b"+QIGETERROR: 552,invalid parameters"


def test_send_on_a_client_that_is_not_open(h, net):
    assert h.command("AT+QSSLSEND=3,4") == ERROR
    assert qierror(h) == b"+QIGETERROR: 572,operation not allowed"


def test_send_fail_when_the_send_buffer_is_full_and_ok_once_drained(h, net):
    open_client(h, net)
    net.unacked.add(net.server().conn_id)  # the server stops taking data: nothing drains
    limit = h.modem.profile.limits.send_buffer
    sent = 0
    answers = []
    while sent < limit + 2000:
        h.command("AT+QSSLSEND=4,1460")
        answers.append(h.send(b"y" * 1460))
        net.run()
        sent += 1460
    assert answers[0] == b"\r\nSEND OK\r\n" and answers[-1] == b"\r\nSEND FAIL\r\n"
    assert h.event(ev.TcpDrained(net.server().conn_id)) == b""
    h.command("AT+QSSLSEND=4,1460")
    assert h.send(b"z" * 1460) == b"\r\nSEND OK\r\n"


def test_send_test_form(h):
    assert h.command("AT+QSSLSEND=?") == b"\r\n+QSSLSEND: (0-11),(1-1460)\r\n" + OK


# --- AT+QSSLRECV and the "recv" URC ------------------------------------------------------------------


def test_one_recv_urc_until_everything_is_read(h, net):
    open_client(h, net)
    side = net.server()
    assert net.server_sends(side, b"first") == b'\r\n+QSSLURC: "recv",4\r\n'
    assert net.server_sends(side, b"second") == b""  # the buffer is not empty: no new URC
    assert h.command("AT+QSSLRECV=4,3") == b"\r\n+QSSLRECV: 3\r\nfir\r\n" + OK
    assert net.server_sends(side, b"third") == b""  # still not emptied
    assert h.command("AT+QSSLRECV=4,1500") == b"\r\n+QSSLRECV: 13\r\nstsecondthird\r\n" + OK
    assert net.server_sends(side, b"4") == b'\r\n+QSSLURC: "recv",4\r\n'


def test_recv_reads_at_most_readlen_and_1500_by_default(h, net):
    open_client(h, net)
    data = bytes(range(256)) * 8
    net.server_sends(net.server(), data)
    assert h.command("AT+QSSLRECV=4") == b"\r\n+QSSLRECV: 1500\r\n" + data[:1500] + b"\r\n" + OK
    assert h.command("AT+QSSLRECV=4,0") == b"\r\n+QSSLRECV: 0\r\n" + OK
    assert h.command("AT+QSSLRECV=4,1500") == b"\r\n+QSSLRECV: 548\r\n" + data[1500:] + b"\r\n" + OK


@pytest.mark.parametrize("line", ["AT+QSSLRECV=4,1501", "AT+QSSLRECV=12,1", "AT+QSSLRECV", "AT+QSSLRECV=4,1,1"])
def test_bad_recv_parameters(h, net, line):
    open_client(h, net)
    assert h.command(line) == ERROR


def test_recv_urc_waits_for_the_end_of_a_running_command(h, net):
    open_client(h, net)
    assert h.command("AT+QSSLSEND=4") == b"\r\n> "
    assert net.server_sends(net.server(), b"data") == b""  # held while the host types its data
    assert h.send(b"x\x1a") == b'\r\nSEND OK\r\n\r\n+QSSLURC: "recv",4\r\n'


def test_a_full_buffer_stops_reading_and_reading_it_resumes(h, net):
    open_client(h, net)
    side = net.server()
    limit = h.modem.profile.limits.recv_buffer
    chunk = b"r" * 16384
    for _ in range(limit // len(chunk) + 1):
        net.server_sends(side, chunk)
    assert not side.reading  # PauseReading went out
    queued = len(side.outbox)
    assert queued > 0  # what the server still sends waits on its side: nothing is lost
    total = 0
    while True:
        answer = h.command("AT+QSSLRECV=4,1500")
        n = int(answer.split(b"\r\n")[1].split(b": ")[1])
        if n == 0:
            break
        total += n
        net.run()
    assert total == (limit // len(chunk) + 1) * len(chunk)
    assert side.reading


# --- direct push -------------------------------------------------------------------------------------


def test_direct_push_data_comes_in_the_urc(h, net):
    assert open_client(h, net, mode=1) == OK + b"\r\n+QSSLOPEN: 4,0\r\n"
    assert net.server_sends(net.server(), b"Test data from SSL") == (
        b'\r\n+QSSLURC: "recv",4,18\r\nTest data from SSL\r\n')
    assert h.command("AT+QSSLRECV=4,10") == ERROR


def test_direct_push_splits_at_1500_bytes_and_waits_for_the_command_to_end(h, net):
    open_client(h, net, mode=1)
    data = bytes(range(256)) * 10
    assert h.command("AT+QSSLSEND=4") == b"\r\n> "
    assert net.server_sends(net.server(), data) == b""
    # The two URCs go as one block, one CR LF between them, as an EC200U pushes TCP data
    # (REFERENCE.md "TCP/IP").
    assert h.send(b"\x1a") == (b"\r\nSEND OK\r\n"
                               b'\r\n+QSSLURC: "recv",4,1500\r\n' + data[:1500] + b"\r\n"
                               b'+QSSLURC: "recv",4,1060\r\n' + data[1500:] + b"\r\n")


def test_closed_urc_follows_the_pushed_data(h, net):
    open_client(h, net, mode=1)
    pushing = net.server()
    open_client(h, net, client=5)
    h.command("AT+QSSLSEND=5")  # the port is busy with client 5's data while client 4's server...
    net.server_sends(pushing, b"last words")
    assert net.server_closes(pushing) == b""  # ...sends its last words and closes
    assert h.send(b"\x1a") == (b'\r\nSEND OK\r\n\r\n+QSSLURC: "recv",4,10\r\nlast words\r\n'
                               b'\r\n+QSSLURC: "closed",4\r\n')


def test_send_answers_error_when_the_connection_closed_during_the_prompt(h, net):
    open_client(h, net)
    h.command("AT+QSSLSEND=4")
    net.server_closes(net.server())
    assert h.send(b"late\x1a") == ERROR + b'\r\n+QSSLURC: "closed",4\r\n'
    assert qierror(h) == b"+QIGETERROR: 567,socket has been closed"


# --- closing ------------------------------------------------------------------------------------------


def test_peer_close_gives_closed_urc_data_stays_readable_then_error(h, net):
    open_client(h, net)
    side = net.server()
    assert net.server_sends(side, b"bye") == b'\r\n+QSSLURC: "recv",4\r\n'
    assert net.server_closes(side) == b'\r\n+QSSLURC: "closed",4\r\n'
    assert h.command("AT+QSSLSTATE=4") == (
        b'\r\n+QSSLSTATE: 4,"SSLClient","127.0.0.1",8010,50001,4,1,4,0,"usbmodem",1\r\n' + OK)
    assert h.command("AT+QSSLRECV=4,1500") == b"\r\n+QSSLRECV: 3\r\nbye\r\n" + OK
    assert h.command("AT+QSSLRECV=4,1500") == ERROR
    assert qierror(h) == b"+QIGETERROR: 567,socket has been closed"
    assert h.command("AT+QSSLSEND=4,1") == ERROR
    assert h.command("AT+QSSLCLOSE=4") == OK
    assert h.command("AT+QSSLSTATE") == OK


def test_peer_reset_is_a_close_too(h, net):
    open_client(h, net)
    assert net.server_closes(net.server(), reset=True) == b'\r\n+QSSLURC: "closed",4\r\n'


def test_close_sends_close_notify_and_waits_for_the_servers_fin(h, net):
    open_client(h, net)
    side = net.server()
    assert h.command("AT+QSSLCLOSE=4") == b""
    effects = h.take_effects()
    assert [type(e) for e in effects] == [ev.SendTcp, ev.ShutdownTcp]
    net.from_client(side, effects[0].data)
    assert side.got_close_notify
    assert h.command("AT+QSSLSTATE") == b""  # waits, in order, behind the close
    assert h.event(ev.TcpClosed(side.conn_id)) == OK + OK


def test_close_timeout_in_seconds_and_milliseconds(h, net):
    for mode, timeout, wait in ((0, 3, 3.0), (1, 250, 0.25)):
        h.command(f'AT+QSSLCFG="closetimemode",1,{mode}')
        open_client(h, net)
        assert h.command(f"AT+QSSLCLOSE=4,{timeout}") == b""
        h.take_effects()  # the server never answers the FIN
        assert h.advance(wait * 0.9) == b""
        assert h.advance(wait * 0.2) == OK
        assert any(isinstance(e, ev.CloseTcp) and e.abort for e in h.take_effects())
        assert h.command("AT+QSSLSTATE") == OK


def test_close_timeout_zero_closes_at_once(h, net):
    open_client(h, net)
    assert h.command("AT+QSSLCLOSE=4,0") == OK
    assert [type(e) for e in h.take_effects()] == [ev.SendTcp, ev.CloseTcp]


def test_close_of_an_unused_client_is_ok(h):
    assert h.command("AT+QSSLCLOSE=7") == OK


@pytest.mark.parametrize("line", ["AT+QSSLCLOSE=12", "AT+QSSLCLOSE=1,65536", "AT+QSSLCLOSE", "AT+QSSLCLOSE=1,1,1"])
def test_bad_close_parameters(h, line):
    assert h.command(line) == ERROR


# --- AT+QSSLSTATE ---------------------------------------------------------------------------------------


def test_state_lists_every_client_in_use_in_order(h, net):
    for client, mode in ((7, 1), (2, 0)):
        open_client(h, net, client=client, mode=mode, ctx=client % 6)
    assert h.command("AT+QSSLSTATE") == (
        b'\r\n+QSSLSTATE: 2,"SSLClient","127.0.0.1",8010,50002,2,1,2,0,"usbmodem",2\r\n'
        b'+QSSLSTATE: 7,"SSLClient","127.0.0.1",8010,50001,2,1,7,1,"usbmodem",1\r\n' + OK)
    assert h.command("AT+QSSLSTATE=2") == (
        b'\r\n+QSSLSTATE: 2,"SSLClient","127.0.0.1",8010,50002,2,1,2,0,"usbmodem",2\r\n' + OK)
    assert h.command("AT+QSSLSTATE=5") == OK
    assert h.command("AT+QSSLSTATE=12") == ERROR
    assert h.command("AT+QSSLSTATE=?") == OK


def test_all_twelve_clients_on_six_contexts(h, net):
    for client in range(12):
        assert open_client(h, net, client=client, ctx=client % 6) == OK + f"\r\n+QSSLOPEN: {client},0\r\n".encode()
    for client in range(12):
        h.command(f"AT+QSSLSEND={client},2")
        assert h.send(f"{client:02d}".encode()) == b"\r\nSEND OK\r\n"
    net.run()
    assert sorted(bytes(s.received) for s in net.servers.values()) == [f"{c:02d}".encode() for c in range(12)]


# --- PDP context going down ----------------------------------------------------------------------------


def test_network_dropping_the_pdp_context(h, net):
    open_client(h, net)
    open_client(h, net, client=5, mode=1)
    net.server_sends(net.server(0), b"kept")
    h.modem.families["pdp"].network_drop(1)
    out = h.send(b"")
    assert out == (b'\r\n+QIURC: "pdpdeact",1\r\n\r\n+QSSLURC: "closed",4\r\n\r\n+QSSLURC: "closed",5\r\n')
    assert h.command("AT+QSSLRECV=4") == b"\r\n+QSSLRECV: 4\r\nkept\r\n" + OK
    assert b",4,1,4,0," in h.command("AT+QSSLSTATE=4")
    assert h.command("AT+QSSLCLOSE=4") == OK


def test_qideact_closes_the_contexts_sockets(h, net):
    open_client(h, net)
    assert h.command("AT+QIDEACT=1") == OK + b'\r\n+QSSLURC: "closed",4\r\n'
    assert h.command("AT+QSSLSTATE") == OK


def test_reboot_drops_every_connection_silently(h, net):
    open_client(h, net)
    assert h.command("AT+CFUN=1,1") == OK
    boot = h.advance(5)
    assert b"QSSLURC" not in boot
    assert any(isinstance(e, ev.CloseTcp) and e.abort for e in h.take_effects())
