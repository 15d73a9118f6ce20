"""The AT interpreter through the sans-IO core, byte for byte: the line editor (echo, CR/LF,
backspace, A/, line length), the parser (prefix, forms, parameters, quotes, several commands on a
line), result framing (ATV, AT+CMEE), URCs held while a command runs, and the boot sequence.

Rules come from the SSL note 2.1.2, V.250 and docs/reference/chosen-behaviour.md "Lines and results"
and "Line ends"; where all of them are silent the test says ``chosen`` and pins what the emulator does.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecemu.core.parser import Arg, CommandCall, Form, SyntaxProblem, parse_command_line, split_args
from ecemu.commands import COMMAND_SET
from ecemu.core.registry import CommandSpec, Pending, ok
from ecemu.core.results import (
    ERROR as ERROR_RESULT,
    OK as OK_RESULT,
    CmeCode,
    CmeError,
    FileError,
    FinalResult,
    HttpError,
    MqttCloseResult,
    MqttDisconnectResult,
    MqttOpenResult,
    MqttResult,
    MqttStat,
    encode_block,
)
from ecemu.profile import BootUrc, available_profiles, load_profile
from tests.harness import CoreHarness, complete_lines, no_internal_errors

COMMANDS = COMMAND_SET.commands  # the table the harness hands to the modem

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
CME_50 = b"\r\n+CME ERROR: 50\r\n"
PROFILE = load_profile("EC200M-CN")
LINE_LENGTH = PROFILE.limits.line_length
CSQ = "+CSQ: {},{}".format(*PROFILE.network.csq)


def info(*lines: str) -> bytes:
    """An information block then OK, framed as with ATV1."""
    return b"".join(b"\r\n" + line.encode("latin-1") + b"\r\n" for line in lines) + OK


def block(*lines: str) -> bytes:
    """One information response of several lines (ATI), then OK."""
    return b"\r\n" + b"\r\n".join(line.encode("latin-1") for line in lines) + b"\r\n" + OK


ATI = block(PROFILE.identity.manufacturer, PROFILE.identity.model, f"Revision: {PROFILE.identity.revision}")


@pytest.fixture
def h() -> CoreHarness:
    """A booted modem with echo off (the harness sends ATE0)."""
    return CoreHarness()


@pytest.fixture
def he() -> CoreHarness:
    """A booted modem as it powers on: echo on, no line yet."""
    return CoreHarness(echo=True)




@pytest.fixture
def spy(monkeypatch):
    """A test-only command, AT+ZSPY, that records every call and answers OK."""
    calls: list[CommandCall] = []

    def handler(modem, call):
        calls.append(call)
        return ok()

    monkeypatch.setitem(COMMANDS, "+ZSPY", CommandSpec("+ZSPY", handler, "test"))
    return calls


# --- the prefix -----------------------------------------------------------------------------------


@pytest.mark.parametrize("line", ["AT", "at"])
def test_at_and_at_lower_case_answer_ok(h, line):
    assert h.command(line) == OK


@pytest.mark.parametrize("line", ["aT", "At", "aT+CSQ", "At+CSQ"])
def test_mixed_case_prefix_is_not_a_command_line(h, line):
    # V.250 5.2.1 and the SSL note 2.1.2: the prefix is "AT" or "at"; README: anything else is ERROR.
    assert h.command(line) == ERROR


@pytest.mark.parametrize("line", ["at+csq", "AT+csq", "at+CsQ", "AT+Csq"])
def test_command_names_are_case_insensitive(h, line):
    assert h.command(line) == info(CSQ)


@pytest.mark.parametrize("line", ["xAT", "TA", "A", "T", "A T", "+CSQ", "OK", "\x1b[AAT"])
def test_a_line_not_starting_with_at_answers_error(h, line):
    assert h.command(line) == ERROR


@pytest.mark.parametrize("line,answer", [(b"  AT", OK), (b" at+csq", info(CSQ)), (b"\x00AT", OK),
                                         (b"\x00 \x00AT+CSQ", info(CSQ))])
def test_spaces_and_nuls_before_the_prefix_are_skipped(h, line, answer):
    # chosen: leading spaces and NULs (line noise after a power-up) do not spoil the line.
    assert h.command(line) == answer


def test_spaces_after_at_and_at_the_end_are_ignored(h):
    assert h.command("AT   ") == OK
    assert h.command("AT +CSQ") == info(CSQ)
    assert h.command("AT+CSQ   ") == info(CSQ)


# --- line ends ----------------------------------------------------------------------------------------


def test_a_line_ends_at_cr_and_not_before(h):
    assert h.send(b"AT") == b""
    assert h.send(b"+CSQ") == b""
    assert h.send(b"\r") == info(CSQ)


def test_lf_after_cr_ends_the_line_and_is_taken_after_the_answer(he):
    # REFERENCE.md "Line ends" (seen on an EC200T): `AT\r\n` in one write gives `AT\r\r\nOK\r\n`:
    # the answer follows the echoed CR and the LF, taken after it, is not echoed.
    assert he.send(b"AT\r\n") == b"AT\r" + OK
    # An LF in a later write is that line's end too, taken without an echo.
    assert he.send(b"AT\r") == b"AT\r" + OK
    assert he.send(b"\n") == b""
    assert he.send(b"AT\r\nAT\r\n") == (b"AT\r" + OK) * 2


def test_lone_lfs_between_lines_are_echoed_and_ignored(he):
    assert he.send(b"\n") == b"\n"
    assert he.send(b"\n\n\nAT\r") == b"\n\n\nAT\r" + OK
    # The first LF is the line end of AT (not echoed: its answer is out); the CR is an empty line,
    # echoed and not answered, and so is its LF.
    assert he.send(b"\n\r\n") == b"\r\n"


def test_lfs_are_never_echoed_with_ate0(h):
    assert h.send(b"AT\r\n") == OK
    assert h.send(b"\n\nAT\r") == OK
    assert h.send(b"\n") == b""


def test_lf_inside_a_line_does_not_end_it(h, he):
    # README: a line ends at CR. chosen: an LF inside a line stays in it, so LF-only line ends get no
    # answer until a CR comes, and then the line (with its LFs) is not a command.
    assert he.send(b"AT\n") == b"AT\n"
    assert he.send(b"\r") == b"\r" + ERROR
    assert h.send(b"AT\nAT\n") == b""
    assert h.send(b"\r") == ERROR
    assert h.command("AT") == OK


@pytest.mark.parametrize("data", [b"\r", b"\r\r\r", b"\r\n\r\n", b"   \r", b"\n\r", b"\x00\r"])
def test_empty_lines_get_no_answer(h, data):
    assert h.send(data) == b""
    assert h.command("AT") == OK


def test_an_empty_line_is_echoed_but_not_answered(he):
    assert he.send(b"\r") == b"\r"
    assert he.send(b"  \r") == b"  \r"


# --- echo -----------------------------------------------------------------------------------------


def test_echo_is_on_at_power_on(he):
    assert PROFILE.defaults.echo is True
    assert he.command("AT") == b"AT\r" + OK


def test_echo_repeats_each_byte_as_it_arrives(he):
    assert he.send(b"A") == b"A"
    assert he.send(b"T+") == b"T+"
    assert he.send(b"CSQ") == b"CSQ"
    assert he.send(b"\r") == b"\r" + info(CSQ)


@pytest.mark.parametrize("data", [b"ATX\x08\r", b"ATX\x7f\r", b"\x08\x7fAT\r", b"AT\xff\x08\r"])
def test_echo_includes_editing_bytes(he, data):
    assert he.send(data) == data + OK


def test_echo_repeats_garbage_verbatim(he):
    junk = bytes(range(0x01, 0x0A)) + b"\x0b\x0c" + bytes(range(0x0E, 0x20)) + b"\x80\xfe\xff"
    assert he.send(junk + b"\r") == junk + b"\r" + ERROR


def test_ate0_is_itself_echoed_then_echo_stops(he):
    assert he.command("ATE0") == b"ATE0\r" + OK
    assert he.command("AT") == OK
    assert he.command("ATE1") == OK  # typed while echo was off
    assert he.command("AT") == b"AT\r" + OK


def test_ate_without_a_number_is_ate0(he):
    # V.250 5.3.1: a missing number is 0.
    assert he.command("ATE") == b"ATE\r" + OK
    assert he.command("AT") == OK


@pytest.mark.parametrize("line", ["ATE2", "ATE9", "ATE?", "ATE=1"])
def test_ate_with_a_bad_value_answers_error_and_keeps_echo(he, line):
    assert he.command(line) == line.encode() + b"\r" + ERROR
    assert he.command("AT") == b"AT\r" + OK


def test_echo_is_not_framed_by_atv0(he):
    assert he.command("ATV0") == b"ATV0\r0\r"
    assert he.command("AT") == b"AT\r0\r"


# --- ATV: result framing ---------------------------------------------------------------------------


def test_atv0_basic_result_codes_are_numbers_and_cr(h):
    assert h.command("ATV0") == b"0\r"
    assert h.command("AT") == b"0\r"
    assert h.command("AT+ZZZZ") == b"4\r"
    assert h.command("garbage") == b"4\r"
    assert h.command("ATO") == b"3\r"  # NO CARRIER: no connection left transparent mode


def test_atv0_information_text_is_text_crlf(h):
    assert h.command("ATV0") == b"0\r"
    assert h.command("AT+CSQ") == CSQ.encode() + b"\r\n0\r"
    ident = PROFILE.identity
    assert h.command("ATI") == f"{ident.manufacturer}\r\n{ident.model}\r\nRevision: {ident.revision}\r\n0\r".encode()
    assert h.command("AT+CSQ;+CPIN?") == CSQ.encode() + b"\r\n+CPIN: READY\r\n0\r"


def test_atv0_extended_result_codes_keep_their_text(h):
    assert h.command("ATV0") == b"0\r"
    assert h.command("AT+CFUN=7") == b"+CME ERROR: 50\r\n"
    assert h.command("AT+CMEE=2") == b"0\r"
    assert h.command("AT+CFUN=7") == b"+CME ERROR: incorrect parameters\r\n"
    assert h.command("AT+CMEE=0") == b"0\r"
    assert h.command("AT+CFUN=7") == b"4\r"


def test_atv0_urcs_are_text_crlf(h):
    assert h.command("ATV0") == b"0\r"
    h.modem.emit_urc("+ZURC: 1")
    assert h.send(b"") == b"+ZURC: 1\r\n"


def test_the_result_of_atv_comes_in_the_new_format(h):
    assert h.command("ATV0") == b"0\r"
    assert h.command("ATV1") == OK
    assert h.command("ATV") == b"0\r"  # a missing number is 0 (V.250 5.3.1)
    assert h.command("ATV1V0") == b"0\r"


@pytest.mark.parametrize("line", ["ATV2", "ATV?", "ATV=0"])
def test_atv_with_a_bad_value_answers_error_and_keeps_the_format(h, line):
    assert h.command(line) == ERROR
    assert h.command("AT") == OK


def test_result_code_encoding():
    assert OK_RESULT.encode(True) == OK and OK_RESULT.encode(False) == b"0\r"
    assert ERROR_RESULT.encode(True) == ERROR and ERROR_RESULT.encode(False) == b"4\r"
    assert FinalResult("SEND OK").encode(False) == b"SEND OK\r\n"
    assert encode_block([b"a", b"b"], True) == b"\r\na\r\nb\r\n"
    assert encode_block([b"a", b"b"], False) == b"a\r\nb\r\n"


# AT+CMEE=2's texts: 27.007 9.2.1 for the 3GPP codes, the FILE note's for 4xx (407 as an EG800K
# writes it), REFERENCE.md "Files".
CME_TEXTS = {
    3: "operation not allowed", 4: "operation not supported", 10: "SIM not inserted", 13: "SIM failure",
    30: "no network service", 50: "incorrect parameters", 100: "unknown",
}
FILE_TEXTS = {
    400: "invalid input value", 401: "larger than the size of the file", 402: "read zero byte",
    403: "drive full", 405: "file not found", 406: "invalid file name", 407: "file already exist",
    409: "fail to write the file", 410: "fail to open the file", 411: "fail to read the file",
    413: "reach the max number of file allowed to be opened", 414: "the file read-only",
    416: "invalid file descriptor", 420: "no space", 421: "time out", 423: "file too large",
    425: "invalid parameter", 426: "file already opened",
}


@pytest.mark.parametrize("code", sorted(CME_TEXTS) + sorted(FILE_TEXTS))
def test_cme_error_per_cmee(code):
    member = CmeCode(code) if code in CME_TEXTS else FileError(code)
    assert CmeError(member).as_final(0) == ERROR_RESULT
    assert CmeError(member).as_final(1).text == f"+CME ERROR: {code}"
    assert CmeError(member).as_final(2).text == f"+CME ERROR: {CME_TEXTS.get(code) or FILE_TEXTS[code]}"


def test_the_cme_tables_hold_these_codes_and_no_other():
    assert sorted(CmeCode) == sorted(CME_TEXTS)
    assert sorted(FileError) == sorted(FILE_TEXTS)


# The HTTP(S) note's table of error codes (724 and 725, the voice call's, left out: no calls here)
# and the MQTT note's tables for +QMTOPEN, +QMTSTAT and the packets' <result> (REFERENCE.md
# "HTTP(S) and MQTT"). The host never sees these texts; the tables say what each number means.
HTTP_TEXTS = {
    0: "Operation successful", 701: "HTTP(S) unknown error", 702: "HTTP(S) timeout", 703: "HTTP(S) busy",
    704: "HTTP(S) UART busy", 705: "HTTP(S) no GET/POST requests", 706: "HTTP(S) network busy",
    707: "HTTP(S) network open failed", 708: "HTTP(S) network no configuration",
    709: "HTTP(S) network deactivated", 710: "HTTP(S) network error", 711: "HTTP(S) URL error",
    712: "HTTP(S) empty URL", 713: "HTTP(S) IP address error", 714: "HTTP(S) DNS error",
    715: "HTTP(S) socket create error", 716: "HTTP(S) socket connect error", 717: "HTTP(S) socket read error",
    718: "HTTP(S) socket write error", 719: "HTTP(S) socket closed", 720: "HTTP(S) data encode error",
    721: "HTTP(S) data decode error", 722: "HTTP(S) read timeout", 723: "HTTP(S) response failed",
    726: "Input timeout", 727: "Wait data timeout", 728: "Wait HTTP(S) response timeout",
    729: "Memory allocation failed", 730: "Invalid parameter",
}
MQTT_OPEN_TEXTS = {
    -1: "Failed to open network", 0: "Network opened successfully", 1: "Wrong parameter",
    2: "MQTT identifier is occupied", 3: "Failed to activate PDP", 4: "Failed to parse domain name",
    5: "Network connection error",
}
MQTT_CLOSE_TEXTS = {-1: "Failed to close network", 0: "Network closed successfully"}
MQTT_DISCONNECT_TEXTS = {-1: "Failed to close connection", 0: "Connection closed successfully"}
MQTT_STAT_CODES = [1, 2, 3, 4, 5, 6, 7]
MQTT_RESULT_TEXTS = {0: "Packet sent successfully and ACK received from server", 1: "Packet retransmission",
                     2: "Failed to send packet"}


@pytest.mark.parametrize("table, texts", [(HttpError, HTTP_TEXTS), (MqttOpenResult, MQTT_OPEN_TEXTS),
                                          (MqttCloseResult, MQTT_CLOSE_TEXTS),
                                          (MqttDisconnectResult, MQTT_DISCONNECT_TEXTS),
                                          (MqttResult, MQTT_RESULT_TEXTS)])
def test_the_http_and_mqtt_tables_are_the_notes(table, texts):
    assert {int(member): member.text for member in table} == texts


def test_the_qmtstat_table_is_the_notes():
    assert sorted(MqttStat) == MQTT_STAT_CODES
    assert MqttStat(1).text == "Connection is closed or reset by peer"
    assert MqttStat(7).text == "The link is not alive or the server is unavailable"


# --- AT+CMEE ----------------------------------------------------------------------------------------


def test_cmee_defaults_to_the_profile_value(h):
    assert PROFILE.defaults.cmee == 1  # README: AT+CMEE defaults to 1
    assert h.command("AT+CMEE?") == info(f"+CMEE: {PROFILE.defaults.cmee}")
    assert h.command("AT+CMEE=?") == info("+CMEE: (0-2)")


BAD_3GPP_PARAMETERS = [
    "AT+CFUN=7", "AT+CFUN=2", "AT+CFUN=a", 'AT+CFUN="1"', "AT+CFUN=1,2", "AT+CFUN=1,0,0", "AT+CFUN=",
    "AT+CFUN=,1", "AT+CMEE=3", "AT+CMEE=-1", "AT+CREG=3", "AT+CGREG=9", "AT+CEREG=1,1", "AT+COPS=5",
    'AT+CCLK="x"', "AT+CCLK=1", 'AT+QURCCFG="nope"', 'AT+QURCCFG="urcport","com1"',
]


@pytest.mark.parametrize("line", BAD_3GPP_PARAMETERS)
def test_a_bad_parameter_of_a_3gpp_command_answers_per_cmee(h, line):
    for cmee, answer in [(0, ERROR), (1, CME_50), (2, b"\r\n+CME ERROR: incorrect parameters\r\n")]:
        assert h.command(f"AT+CMEE={cmee}") == OK
        assert h.command(line) == answer, cmee


UNKNOWN = ["AT+ZZZZ", "AT+ZZZZ?", "AT+ZZZZ=?", "AT+ZZZZ=1", "AT+ZZZZ=\"a\"", "ATP", "ATL0", "AT&K3",
           "ATS1?", "ATS12=50", "AT+", "AT&", "AT&Q", "ATG", "AT#CSQ", "AT$X"]


@pytest.mark.parametrize("line", UNKNOWN)
def test_unknown_commands_answer_error_whatever_cmee(h, line):
    # README: unknown commands answer ERROR. chosen: ATP, ATL, AT&K and the S-registers other than
    # S0, S3-S8 and S10 are not implemented, so they are unknown too.
    for cmee in (0, 1, 2):
        assert h.command(f"AT+CMEE={cmee}") == OK
        assert h.command(line) == ERROR, cmee


@pytest.mark.parametrize("line", ["AT+CSQ?", "AT+CSQ=1", "AT+CPIN", "AT+CFUN", "AT+COPS", "AT+CREG", "AT+CGMI?"])
def test_a_form_a_command_does_not_have_answers_plain_error(h, line):
    # chosen: a form the command does not support is not a parameter error.
    for cmee in (0, 1, 2):
        assert h.command(f"AT+CMEE={cmee}") == OK
        assert h.command(line) == ERROR, cmee


def test_cmee_without_parameters_changes_nothing(h):
    assert h.command("AT+CMEE=2") == OK
    assert h.command("AT+CMEE") == OK
    assert h.command("AT+CMEE?") == info("+CMEE: 2")


def test_a_refused_cmee_keeps_the_old_value(h):
    assert h.command("AT+CMEE=2") == OK
    assert h.command("AT+CMEE=5") == b"\r\n+CME ERROR: incorrect parameters\r\n"
    assert h.command("AT+CMEE?") == info("+CMEE: 2")


# --- forms and parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize("line,form", [
    ("AT+ZSPY", Form.EXEC), ("AT+ZSPY?", Form.READ), ("AT+ZSPY=?", Form.TEST), ("AT+ZSPY=1", Form.WRITE),
    ("AT+ZSPY ?", Form.READ), ("AT+ZSPY = ?", Form.TEST), ("at+zspy=?", Form.TEST), ("AT+ZSPY=", Form.WRITE),
])
def test_the_four_forms(h, spy, line, form):
    assert h.command(line) == OK
    assert [(c.name, c.form) for c in spy] == [("+ZSPY", form)]


@pytest.mark.parametrize("text,args", [
    ("1", [Arg("1", False)]),
    ("1,2", [Arg("1", False), Arg("2", False)]),
    (" 1 , 2 ", [Arg("1", False), Arg("2", False)]),
    ('"a,b;c"', [Arg("a,b;c", True)]),
    ('"A b "', [Arg("A b ", True)]),
    ('1,"x",,3', [Arg("1", False), Arg("x", True), None, Arg("3", False)]),
    (",", [None, None]),
    ("1,", [Arg("1", False), None]),
    ('""', [Arg("", True)]),
    ('"a" , "b"', [Arg("a", True), Arg("b", True)]),
    ("", []),
])
def test_write_parameters(h, spy, text, args):
    assert h.command("AT+ZSPY=" + text) == OK
    assert spy[0].args == args
    assert spy[0].raw_args == text  # as received


def test_quoted_semicolons_and_commas_stay_in_the_string(h, spy):
    assert h.command('AT+ZSPY="a;b",1;+ZSPY="c,d;";+CSQ') == info(CSQ)
    assert [c.args for c in spy] == [[Arg("a;b", True), Arg("1", False)], [Arg("c,d;", True)]]


def test_quoted_strings_keep_case_and_bytes(h, spy):
    assert h.command(b'AT+ZSPY="MiXeD \xe9\x01"') == OK
    assert spy[0].args == [Arg("MiXeD \xe9\x01", True)]


@pytest.mark.parametrize("line", [
    'AT+ZSPY="abc', 'AT+ZSPY="a;+CSQ', 'AT+CSQ;+ZSPY="a;+CSQ', 'AT+ZSPY=1,"', 'AT+ZSPY="a"b', 'AT+ZSPY="a""b"',
])
def test_malformed_strings_reject_the_whole_line(h, spy, line):
    # The line cannot be split into commands, so none of it runs: one ERROR, whatever AT+CMEE says.
    assert h.command(line) == ERROR
    assert spy == []


def test_a_quoted_string_with_a_semicolon_in_a_real_command(h):
    # If the ";" split the line, the second half would be an unterminated string (plain ERROR).
    assert h.command('AT+QURCCFG="urcport","uart1;x"') == CME_50
    assert h.command('AT+QURCCFG="urc;port"') == CME_50
    assert h.command('AT+QURCCFG="urcport"') == info(f'+QURCCFG: "urcport","{PROFILE.defaults.urc_port}"')


def test_parser_unit():
    assert parse_command_line("") == []
    assert parse_command_line("E0V1") == [CommandCall("E", Form.EXEC, [Arg("0", False)], "0"),
                                          CommandCall("V", Form.EXEC, [Arg("1", False)], "1")]
    assert parse_command_line("&D") == [CommandCall("&D", Form.EXEC, [], "")]
    assert parse_command_line("I+CSQ") == [CommandCall("I", Form.EXEC), CommandCall("+CSQ", Form.EXEC)]
    assert parse_command_line("S0?;S7=30") == [CommandCall("S0", Form.READ),
                                               CommandCall("S7", Form.WRITE, [Arg("30", False)], "30")]
    assert [c.name for c in parse_command_line("+QSSLCFG=?;+Q_X.Y?")] == ["+QSSLCFG", "+Q_X.Y"]
    for bad in ["+", "&", "&Z", "S", "S1", "G", "+CSQ&V", "+CSQ?x", '+X="a', "\xb2"]:
        with pytest.raises(SyntaxProblem):
            parse_command_line(bad)
    assert split_args('"a",2') == [Arg("a", True), Arg("2", False)]
    with pytest.raises(SyntaxProblem):
        split_args('"a')


@pytest.mark.parametrize("line", ["ATE\xb2", "ATS\xb2?", "ATS0=\xb9", "ATI\xb3", "AT&D\xb2"])
def test_non_ascii_digits_are_not_digits(h, line):
    # Python's str.isdigit() says yes to superscripts; int() then raised out of the parser.
    with no_internal_errors():
        assert h.command(line) == ERROR
        assert h.command("AT") == OK


def test_non_ascii_digit_in_a_parameter_is_a_parameter_error(h):
    with no_internal_errors():
        assert h.command("AT+CFUN=\xb2") == CME_50


# --- several commands on a line ---------------------------------------------------------------------


def test_results_come_in_order_with_one_final_result(h):
    assert h.command("AT+CSQ;+CPIN?") == info(CSQ, "+CPIN: READY")
    assert h.command("AT+CPIN?;+CSQ") == info("+CPIN: READY", CSQ)
    assert h.command("AT+CSQ;+CSQ;+CSQ") == info(CSQ, CSQ, CSQ)
    assert h.command("AT+CPIN?;+CMEE=2;+CMEE?") == info("+CPIN: READY", "+CMEE: 2")


def test_the_line_stops_at_the_first_error(h, spy):
    assert h.command("AT+CSQ;+ZZZZ;+CPIN?") == b"\r\n" + CSQ.encode() + b"\r\n" + ERROR
    assert h.command("AT+ZSPY;+ZZZZ;+ZSPY") == ERROR
    assert len(spy) == 1
    assert h.command("AT+CMEE=2;+CFUN=7;+CMEE=0") == b"\r\n+CME ERROR: incorrect parameters\r\n"
    assert h.command("AT+CMEE?") == info("+CMEE: 2")


def test_commands_before_an_error_keep_their_effect(h):
    assert h.command("ATE1V2") == ERROR
    assert h.command("AT") == b"AT\r" + OK  # E1 ran before V2 failed


def test_empty_commands_between_semicolons(h):
    assert h.command("AT;") == OK
    assert h.command("AT;;;") == OK
    assert h.command("AT+CSQ;") == info(CSQ)
    assert h.command("AT;+CSQ") == info(CSQ)


@pytest.mark.parametrize("line", ["ATE0V1", "ATE0 V1", "ATE0;V1", "AT E0 V1", "ATE 0V 1", "ATV1E0", "ATe0v1"])
def test_basic_commands_concatenated(h, line):
    assert h.command(line) == OK
    assert h.command("AT") == OK


def test_basic_commands_concatenated_take_effect_in_order(h):
    assert h.command("ATE1V0") == b"0\r"  # typed with echo off; answered in the new format
    assert h.command("AT") == b"AT\r0\r"
    assert h.command("ATV1E0") == b"ATV1E0\r" + OK
    assert h.command("ATE0V1I") == ATI
    assert h.command("AT&D1&V").startswith(b"\r\n&C1 &D1 ")


def test_spaces_between_a_basic_command_and_its_number(h):
    # V.250 5.2.1: spaces are ignored outside numeric and string constants.
    assert h.command("ATE 1") == OK
    assert h.command("AT") == b"AT\r" + OK


def test_a_basic_command_then_an_extended_one_without_semicolon(h):
    ident = PROFILE.identity
    ati = f"\r\n{ident.manufacturer}\r\n{ident.model}\r\nRevision: {ident.revision}\r\n".encode()
    assert h.command("ATI+CGMM") == ati + info(ident.model)


def test_an_extended_name_runs_to_the_semicolon(h):
    assert h.command("AT+CSQE0") == ERROR  # "+CSQE0" is one (unknown) name
    assert h.command("AT+CSQ;E1") == info(CSQ)
    assert h.command("AT") == b"AT\r" + OK


# --- A/ -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("repeat", [b"A/", b"a/"])
def test_a_slash_without_an_earlier_line_answers_error(he, repeat):
    assert he.send(repeat) == repeat + ERROR


@pytest.mark.parametrize("repeat", [b"A/", b"a/"])
def test_a_slash_repeats_the_last_line_at_once_without_cr(h, repeat):
    assert h.command("AT+CSQ;+CPIN?") == info(CSQ, "+CPIN: READY")
    assert h.send(repeat) == info(CSQ, "+CPIN: READY")
    assert h.send(repeat) == info(CSQ, "+CPIN: READY")
    assert h.send(b"\r") == b""  # a CR after A/ is an empty line


def test_a_slash_is_echoed(he):
    assert he.command("AT") == b"AT\r" + OK
    assert he.send(b"A/") == b"A/" + OK


def test_a_slash_repeats_a_failing_line_and_lowercase_lines(h):
    assert h.command("AT+CFUN=7") == CME_50
    assert h.send(b"A/") == CME_50
    assert h.command("at+csq") == info(CSQ)
    assert h.send(b"a/") == info(CSQ)


def test_a_slash_repeats_settings_changes(h):
    assert h.command("ATE1") == OK
    assert h.command("ATE0") == b"ATE0\r" + OK
    assert h.command("AT+CMEE=2") == OK
    assert h.send(b"A/") == OK
    assert h.command("AT+CMEE?") == info("+CMEE: 2")


def test_a_slash_does_not_repeat_a_line_that_is_not_a_command(h):
    # chosen: only lines that start with AT are remembered.
    assert h.command("AT+CSQ") == info(CSQ)
    assert h.command("hello") == ERROR
    assert h.command("") == b""
    assert h.send(b"A/") == info(CSQ)


def test_a_slash_only_at_the_start_of_a_line(h):
    assert h.command("AT+CSQ") == info(CSQ)
    assert h.send(b"xA/") == b""
    assert h.send(b"\r") == ERROR
    assert h.command("AT/") == ERROR


def test_a_slash_after_editing_the_line_down_to_a(h):
    assert h.command("AT+CSQ") == info(CSQ)
    assert h.send(b"AT\x08/") == info(CSQ)


def test_a_slash_split_across_writes(h):
    assert h.command("AT+CSQ") == info(CSQ)
    assert h.send(b"A") == b""
    assert h.send(b"/") == info(CSQ)


# --- backspace and DEL ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rub", [b"\x08", b"\x7f"])
def test_backspace_and_delete_remove_the_last_character(h, rub):
    assert h.send(b"ATX" + rub + b"\r") == OK
    assert h.send(b"AT+CSX" + rub + b"Q\r") == info(CSQ)
    assert h.send(b"AT+CFUN=7" + rub + b"1\r") == OK
    assert h.send(b"XY" + rub + rub + b"AT\r") == OK


def test_backspace_on_an_empty_line_does_nothing(h):
    assert h.send(b"\x08\x7f\x08AT\r") == OK


def test_backspace_down_to_nothing_leaves_an_empty_line(h):
    assert h.send(b"AT\x08\x08\r") == b""
    assert h.send(b"AT\x7f\x7f\x7f\x7f\r") == b""


def test_backspace_across_writes(h):
    assert h.send(b"ATZZ") == b""
    assert h.send(b"\x7f") == b""
    assert h.send(b"\x08") == b""
    assert h.send(b"\r") == OK


def test_backspace_inside_a_quoted_string(h, spy):
    assert h.send(b'AT+ZSPY="abc\x08d"\r') == OK
    assert spy[0].args == [Arg("abd", True)]


# --- line length ---------------------------------------------------------------------------------------


def test_a_line_of_exactly_line_length_is_answered(h):
    body = " " * (LINE_LENGTH - len("+CSQ")) + "+CSQ"
    assert len(body) == LINE_LENGTH
    assert h.command("AT" + body) == info(CSQ)


def test_a_line_longer_than_line_length_answers_error_and_the_next_works(h):
    body = " " * (LINE_LENGTH + 1 - len("+CSQ")) + "+CSQ"
    assert len(body) == LINE_LENGTH + 1
    assert h.command("AT" + body) == ERROR
    assert h.command("AT") == OK


def test_a_long_string_parameter(h, spy):
    text = "x" * (LINE_LENGTH - len('+ZSPY=""'))
    assert h.command(f'AT+ZSPY="{text}"') == OK
    assert spy[0].args == [Arg(text, True)]
    assert h.command(f'AT+ZSPY="{text}x"') == ERROR
    assert len(spy) == 1


def test_an_overlong_line_is_echoed_in_full(he):
    line = b"AT" + b"A" * (LINE_LENGTH * 2)
    assert he.send(line + b"\r") == line + b"\r" + ERROR


def test_an_overlong_line_sent_byte_by_byte(h):
    out = b"".join(h.send(bytes((b,))) for b in b"AT" + b"+" * (LINE_LENGTH + 50) + b"\r")
    assert out == ERROR
    assert h.command("AT") == OK


def test_an_overlong_line_of_garbage_answers_one_error(h):
    assert h.send(b"\xaa" * (LINE_LENGTH * 3) + b"\r") == ERROR


def test_backspace_does_not_bring_an_overlong_line_back(h):
    # chosen: once over the limit the line is lost; rubbing characters out does not recover it.
    body = b";" * (LINE_LENGTH + 1)
    assert h.send(b"AT" + body + b"\x08" * 10 + b"\r") == ERROR


def test_an_overlong_line_is_not_remembered_for_a_slash(h):
    assert h.command("AT+CSQ") == info(CSQ)
    assert h.command("AT" + ";" * (LINE_LENGTH + 1)) == ERROR
    assert h.send(b"A/") == info(CSQ)


@pytest.mark.parametrize("name", available_profiles())
def test_line_length_comes_from_each_profile(name):
    h = CoreHarness(profile=name)
    limit = h.modem.profile.limits.line_length
    assert h.command("AT" + ";" * limit) == OK
    assert h.command("AT" + ";" * (limit + 1)) == ERROR


# --- binary garbage -------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    b"\xff\xfe\x00\x01\r", b"\x1b[A\r", b"AT\xff\r", b"AT+CSQ\x00\r", b"AT+\x80\r", b"\x03\x04AT\r", b"ATE0\x00\r",
])
def test_garbage_lines_answer_error(h, data):
    with no_internal_errors():
        assert h.send(data) == ERROR
        assert h.command("AT") == OK


def test_every_byte_but_cr_as_a_line_answers_once(h):
    with no_internal_errors():
        for b in range(256):
            if b in (0x0D,):
                continue
            out = h.send(bytes((b,)) + b"\r")
            if b in (0x0A, 0x08, 0x7F, 0x20, 0x00):
                assert out == b"", b  # nothing is left of the line
            else:
                assert out == ERROR, b
        assert h.command("AT") == OK


# --- URCs while a command runs ----------------------------------------------------------------------------


@pytest.fixture
def urc_command(monkeypatch):
    """AT+ZURC: emits a URC while it runs, then answers an information line."""

    def handler(modem, call):
        modem.emit_urc("+ZURC: during")
        return ok("+ZURC: info")

    monkeypatch.setitem(COMMANDS, "+ZURC", CommandSpec("+ZURC", handler, "test"))


@pytest.fixture
def pending_command(monkeypatch):
    """AT+ZPEND: its final result comes when the test calls finish_pending."""
    monkeypatch.setitem(COMMANDS, "+ZPEND", CommandSpec("+ZPEND", lambda modem, call: Pending("+ZPEND"), "test"))


def test_an_idle_modem_sends_a_urc_at_once(h):
    h.modem.emit_urc("+ZURC: 1")
    assert h.send(b"") == b"\r\n+ZURC: 1\r\n"


def test_a_urc_emitted_by_a_running_command_comes_after_its_final_result(h, urc_command):
    assert h.command("AT+ZURC") == info("+ZURC: info") + b"\r\n+ZURC: during\r\n"


def test_urcs_of_several_commands_come_after_the_line(h, urc_command):
    assert h.command("AT+ZURC;+CSQ;+ZURC") == info("+ZURC: info", CSQ, "+ZURC: info") + b"\r\n+ZURC: during\r\n" * 2


def test_a_urc_emitted_by_a_failing_line_comes_after_its_error(h, urc_command):
    assert h.command("AT+ZURC;+CFUN=7") == b"\r\n+ZURC: info\r\n" + CME_50 + b"\r\n+ZURC: during\r\n"


def test_urcs_while_a_command_waits_are_held_in_order(h, pending_command):
    assert h.command("AT+ZPEND") == b""
    h.modem.emit_urc("+ZURC: 1")
    h.modem.emit_urc("+ZURC: 2", "+ZURC: 3")
    assert h.send(b"") == b""
    h.modem.host.finish_pending(ok("+ZPEND: done"))
    assert h.send(b"") == info("+ZPEND: done") + b"\r\n+ZURC: 1\r\n\r\n+ZURC: 2\r\n+ZURC: 3\r\n"
    h.modem.emit_urc("+ZURC: 4")
    assert h.send(b"") == b"\r\n+ZURC: 4\r\n"


def test_host_bytes_wait_while_a_command_waits(he, pending_command):
    assert he.send(b"AT+ZPEND\rAT+CSQ\r") == b"AT+ZPEND\r"
    he.modem.host.finish_pending(ok())
    assert he.send(b"") == OK + b"AT+CSQ\r" + info(CSQ)


def test_the_rest_of_a_line_runs_after_a_waiting_command(h, pending_command):
    assert h.command("AT+ZPEND;+CSQ") == b""
    h.modem.host.finish_pending(ok("+ZPEND: done"))
    assert h.send(b"") == info("+ZPEND: done", CSQ)


def test_a_urc_emitted_after_a_waiting_command_comes_after_the_final_result(h, pending_command, urc_command):
    assert h.command("AT+ZPEND;+ZURC") == b""
    h.modem.host.finish_pending(ok())
    assert h.send(b"") == info("+ZURC: info") + b"\r\n+ZURC: during\r\n"


@pytest.mark.internal_errors_expected
def test_a_malformed_outcome_is_logged_answers_error_and_never_leaves_the_modem_busy(h, monkeypatch, caplog):
    def broken(modem, call):
        return "not an outcome"

    monkeypatch.setitem(COMMANDS, "+ZBAD", CommandSpec("+ZBAD", broken, "test"))
    assert h.command("AT+ZBAD;+CSQ") == ERROR
    assert any("internal error" in r.getMessage() for r in caplog.records)
    assert h.command("AT") == OK


@pytest.mark.internal_errors_expected
def test_a_handler_that_raises_answers_error(h, monkeypatch, caplog):
    def raises(modem, call):
        raise RuntimeError("bug")

    monkeypatch.setitem(COMMANDS, "+ZBAD", CommandSpec("+ZBAD", raises, "test"))
    assert h.command("AT+CSQ;+ZBAD;+CSQ") == b"\r\n" + CSQ.encode() + b"\r\n" + ERROR
    assert any("internal error" in r.getMessage() for r in caplog.records)
    assert h.command("AT") == OK


# --- boot ----------------------------------------------------------------------------------------------


def urc(text: str) -> bytes:
    return b"\r\n" + text.encode() + b"\r\n"


@pytest.mark.parametrize("name", available_profiles())
def test_boot_urcs_come_in_order_at_their_times(name):
    h = CoreHarness(profile=name, boot=False)
    profile = h.modem.profile
    start = h.now
    assert profile.boot_urcs, "every module prints RDY"
    assert profile.boot_urcs[0].text == "RDY"
    times = sorted({u.after_ms for u in profile.boot_urcs})
    out = bytearray()
    for ms in times:
        due = start + ms / 1000.0
        if due - 0.001 > h.now:
            assert h.advance(due - 0.001 - h.now) == b""  # nothing before its time
            assert not h.modem.booted
        got = h.advance(due + 0.0005 - h.now)
        assert got == b"".join(urc(u.text) for u in profile.boot_urcs if u.after_ms == ms)
        out += got
    assert h.modem.booted
    assert bytes(out) == b"".join(urc(u.text) for u in sorted(profile.boot_urcs, key=lambda u: u.after_ms))
    assert h.advance(60) == b""


def test_the_default_boot_is_the_readme_sequence():
    h = CoreHarness(boot=False)
    assert h.advance(1.0) == b"".join(urc(t) for t in
                                      ["RDY", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE", "+QIND: PB DONE"])


def late_boot(after_ms: int = 500) -> CoreHarness:
    """A modem whose RDY comes ``after_ms`` after power-on, the rest 100 ms later."""
    h = CoreHarness(boot=False)
    h.modem.profile = dataclasses.replace(h.modem.profile, boot_urcs=(
        BootUrc(after_ms, "RDY"), BootUrc(after_ms + 100, "+CPIN: READY")))
    h.modem.reboot()
    h.advance(0)
    return h


def test_bytes_before_rdy_get_no_echo_and_no_answer_until_boot():
    h = late_boot()
    assert h.send(b"AT\r") == b""
    assert h.send(b"AT+CSQ\r") == b""
    assert h.advance(0.4) == b""


def test_bytes_before_rdy_are_answered_after_boot_not_lost():
    h = late_boot()
    assert h.send(b"AT\rAT+CSQ\r") == b""
    out = h.advance(1.0)
    # Every byte is answered once, with echo (the power-on default), nothing lost.
    assert out.count(b"AT\r" + OK) == 1
    assert out.count(b"AT+CSQ\r" + info(CSQ)) == 1
    assert out.count(urc("RDY")) == 1 and out.count(urc("+CPIN: READY")) == 1
    assert h.command("AT") == b"AT\r" + OK


def test_bytes_before_rdy_are_answered_after_rdy():
    h = late_boot()
    assert h.send(b"AT\rAT+CSQ\r") == b""
    assert h.advance(1.0) == urc("RDY") + b"AT\r" + OK + b"AT+CSQ\r" + info(CSQ) + urc("+CPIN: READY")


def test_bytes_between_rdy_and_the_last_boot_urc_are_answered_at_once():
    h = late_boot()
    assert h.advance(0.55) == urc("RDY")
    assert h.send(b"AT\r") == b"AT\r" + OK
    assert not h.modem.booted
    assert h.advance(0.1) == urc("+CPIN: READY")
    assert h.modem.booted


def test_a_profile_without_boot_urcs_is_up_at_once():
    h = CoreHarness(boot=False)
    h.modem.profile = dataclasses.replace(h.modem.profile, boot_urcs=())
    h.modem.reboot()
    assert h.modem.booted
    assert h.command("AT") == b"AT\r" + OK


# --- properties -----------------------------------------------------------------------------------------

FINAL = re.compile(rb"^(OK|ERROR|NO CARRIER|CONNECT|\+CME ERROR: .*)$")

# Pieces that make lines the interpreter has to take apart; the random bytes between them do the rest.
COMMAND_PIECES = [
    b"AT", b"at", b"A/", b"a/", b"+CSQ", b"+CPIN?", b"+CREG?", b"+CEREG=?", b"+COPS?", b"+CGMR", b"+GSN",
    b"I", b"&V", b"+CCLK?", b"+ZZZZ", b"+CFUN=7", b"+CFUN?", b'+QURCCFG="urcport"', b"O",
    b";", b",", b'"', b"=", b"?", b"=?", b" ", b"\x00", b"\xff", b"\x08", b"\x7f", b"\n", b"/", b"A", b"1",
]
SETTING_PIECES = [
    b"E0", b"E1", b"V0", b"V1", b"Z", b"&F", b"&D1", b"+CMEE=0", b"+CMEE=2", b"+CREG=2", b"+CEREG=1",
    b"+CFUN=0", b"+CFUN=4", b"+CFUN=1", b'+CCLK="24/02/29,23:59:59-32"', b'+QURCCFG="urcport","uart1"',
]
# CR ends lines; the settings letters stay out of the random bytes of the counting property so that
# its output keeps the ATE0/ATV1/ATQ0 framing and the S3/S4/S5 characters it parses.
QUIET_BYTES = bytes(b for b in range(256) if b not in b"\rEeVvZz&QqSs")


def line_strategy(pieces: list[bytes], alphabet: bytes):
    piece = st.one_of(st.sampled_from(pieces), st.binary(min_size=1, max_size=4).map(
        lambda b: bytes(alphabet[x % len(alphabet)] for x in b)))
    return st.lists(piece, max_size=8).map(b"".join)


def expected_finals(lines: list[bytes], limit: int) -> int:
    """How many final results the README's editing rules give for ``lines`` (each sent with CR)."""
    return complete_lines(b"".join(raw + b"\r" for raw in lines), limit)


@settings(max_examples=100, deadline=None)
@given(data=line_strategy(COMMAND_PIECES + SETTING_PIECES + [b"\r", b"\r\n"], bytes(range(256))).flatmap(
    lambda d: st.tuples(st.just(d), st.lists(st.integers(0, len(d)), max_size=6))))
def test_any_bytes_split_anywhere_give_the_same_output(data):
    # AT+CFUN=1,1 stays out: see test_a_pipelined_reboot_gives_the_same_output_as_a_later_line.
    # The one split that shows is between a line's CR and its LF: the LF is echoed as it arrives,
    # after the answer (test_lf_after_cr_ends_the_line_and_is_echoed_as_it_arrives), so the echo
    # property keeps those two together and the ATE0 one below splits anywhere.
    data, cuts = data
    cuts = [cut for cut in cuts if not (0 < cut < len(data) and data[cut - 1:cut + 1] == b"\r\n")]
    whole = CoreHarness(echo=True)
    pieces = CoreHarness(echo=True)
    with no_internal_errors():
        expected = whole.send(data)
        bounds = [0, *sorted(cuts), len(data)]
        got = b"".join(pieces.send(data[a:b]) for a, b in zip(bounds, bounds[1:]))
    assert got == expected


@settings(max_examples=100, deadline=None)
@given(data=line_strategy(COMMAND_PIECES + [b"\r", b"\r\n"], QUIET_BYTES).flatmap(
    lambda d: st.tuples(st.just(d), st.lists(st.integers(0, len(d)), max_size=6))))
def test_without_echo_any_split_gives_the_same_output(data):
    data, cuts = data
    whole = CoreHarness()
    pieces = CoreHarness()
    with no_internal_errors():
        expected = whole.send(data)
        bounds = [0, *sorted(cuts), len(data)]
        got = b"".join(pieces.send(data[a:b]) for a, b in zip(bounds, bounds[1:]))
    assert got == expected


@settings(max_examples=100, deadline=None)
@given(lines=st.lists(line_strategy(COMMAND_PIECES, QUIET_BYTES), max_size=10))
def test_every_non_empty_line_gets_exactly_one_final_result(lines):
    h = CoreHarness()
    results: list[str] = []
    h.modem.observer = lambda kind, details: results.append(details["text"]) if kind == "result" else None
    with no_internal_errors():
        out = b"".join(h.send(line + b"\r") for line in lines)
        expected = expected_finals(lines, h.modem.profile.limits.line_length + 2)
        assert len(results) == expected
        assert sum(1 for token in out.split(b"\r\n") if FINAL.match(token)) == expected
        assert h.command("AT") == OK


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=200))
def test_any_bytes_then_a_fresh_line_leave_a_working_modem(data):
    h = CoreHarness(echo=True)
    with no_internal_errors():
        h.send(data)
        h.send(b"\r")  # ends whatever line the bytes left open
        h.command("ATE0V1")
        h.command("AT+CMEE=1")
        assert h.command("AT+CSQ") in (info(CSQ), info("+CSQ: 99,99"))  # the bytes may have switched the radio off


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(line_strategy(COMMAND_PIECES + SETTING_PIECES, bytes(b for b in range(256) if b != 0x0D)),
                      max_size=10))
def test_one_final_result_per_line_whatever_the_lines_change(lines):
    # Echo, ATV0, AT+CMEE and the radio may change on the way; the modem's own count of final
    # results (its observer) still matches the editing rules, and it still answers at the end.
    h = CoreHarness()
    results: list[str] = []
    h.modem.observer = lambda kind, details: results.append(details["text"]) if kind == "result" else None
    for line in lines:
        h.send(line + b"\r")
    assert len(results) == expected_finals(lines, h.modem.profile.limits.line_length + 2)
    h.command("ATE0V1Q0")
    assert h.command("AT") == OK
