"""The V.250 basic commands host drivers send in their init strings, through the sans-IO core, byte for
byte: ATQ (result code suppression), ATX, AT&C, ATH, the S-registers (S3, S4 and S5 really change the
line editor and the framing), AT&V showing the real values, ATZ/AT&F and a power cycle restoring
them, and the serial port commands AT+IPR, AT+IFC and AT+ICF.

Rules come from V.250 (5.3.2 S-parameters, 6.2 DTE-DCE interface commands) and the Quectel AT
manuals as cited in emulator/commands/basic.py; ``chosen`` marks what the documents leave open.
"""

from __future__ import annotations

import pytest

from ecemu.profile import load_profile
from tests.harness import CoreHarness
from tests.wire import ERROR, OK

PROFILE = load_profile("EC200M-CN")
NET = PROFILE.network
CSQ = "+CSQ: {},{}".format(*NET.csq)
REGISTERS = {0: 0, 3: 13, 4: 10, 5: 8, 6: 2, 7: 0, 8: 2, 10: 15}
RANGES = {0: (0, 255), 3: (0, 127), 4: (0, 127), 5: (0, 127), 6: (2, 10), 7: (0, 255), 8: (0, 255),
          10: (1, 254)}
RATES = [9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600]


def info(*lines: str) -> bytes:
    return b"".join(b"\r\n" + line.encode("latin-1") + b"\r\n" for line in lines) + OK


def amp_v(echo=0, quiet=0, verbose=1, x=4, dcd=1, dtr=2, **registers) -> str:
    values = {**REGISTERS, **{int(k[1:]): v for k, v in registers.items()}}
    regs = " ".join(f"S{n}:{values[n]}" for n in sorted(values))
    return f"&C{dcd} &D{dtr} &F0 &W0 E{echo} Q{quiet} V{verbose} X{x} Z0 {regs}"


# --- the init strings drivers send --------------------------------------------------------------------


@pytest.mark.parametrize("line", [
    "ATE0Q0V1", "AT&C1", "ATX4", "ATH", "ATH0", "ATS0=0", "ATS7=60", "AT&W", "AT+IPR=115200", "AT+IFC=0,0",
    "AT+IFC=2,2", "ATE0Q0V1X4&C1&D2S0=0", "ATQ0 V1 E0", "AT&F;E0;+IPR=115200;+IFC=0,0;+ICF=3,3", "ath0",
])
def test_init_strings_answer_ok(h, line):
    assert h.command(line) == OK


def test_init_reads(h):
    assert h.command("ATS3?") == info("013")
    assert h.command("AT+IPR?") == info("+IPR: 115200")
    assert h.command("AT+ICF?") == info("+ICF: 3,3")
    assert h.command("AT+IFC?") == info("+IFC: 0,0")
    assert h.command("AT&V") == info(amp_v())


# --- ATQ ---------------------------------------------------------------------------------------------


def test_q1_sends_no_result_codes_but_information_text(h):
    assert h.command("ATQ1") == b""  # its own OK is already suppressed, as ATV0's OK comes as 0
    assert h.command("AT") == b""
    assert h.command("AT+CSQ") == b"\r\n" + CSQ.encode() + b"\r\n"
    assert h.command("AT+ZZZZ") == b""  # ERROR is a result code too
    assert h.command("AT+CFUN=7") == b""  # and +CME ERROR
    assert h.command("ATO") == b""  # and NO CARRIER
    assert h.command("AT&V") == b"\r\n" + amp_v(quiet=1).encode() + b"\r\n"
    assert h.command("ATQ0") == OK
    assert h.command("AT") == OK


def test_q1_in_v0(h):
    assert h.command("ATV0Q1") == b""
    assert h.command("AT+CSQ") == CSQ.encode() + b"\r\n"
    assert h.command("ATQ0") == b"0\r"


def test_q1_keeps_the_echo():
    h = CoreHarness(echo=True)
    assert h.command("ATQ1") == b"ATQ1\r"
    assert h.command("AT") == b"AT\r"
    assert h.command("ATQ") == b"ATQ\r" + OK  # no number is Q0 (V.250 5.3.1)


def test_q1_suppresses_urcs_too(h):
    # V.250 6.2.5: no part of an unsolicited result code is sent either.
    assert h.command("AT+CREG=1") == OK
    assert h.command("ATQ1") == b""
    assert h.command("AT+CFUN=4") == b""
    assert h.advance(1.0) == b""
    assert h.command("ATQ0") == OK
    assert h.command("AT+CFUN=1") == OK + f"\r\n+CREG: {NET.registration}\r\n".encode()


@pytest.mark.parametrize("line", ["ATQ2", "ATQ?", "ATQ=1", "ATQ10", "ATQ1+ZZZZ"])
def test_a_rejected_q_changes_nothing(h, line):
    if line == "ATQ1+ZZZZ":  # Q1 ran before the unknown command failed: its ERROR is not sent
        assert h.command(line) == b""
        assert h.command("ATQ0") == OK
        return
    assert h.command(line) == ERROR
    assert h.command("AT&V") == info(amp_v())


# --- ATX, AT&C, ATH ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", range(5))
def test_x_is_kept_and_shown(h, n):
    assert h.command(f"ATX{n}") == OK
    assert h.command("AT&V") == info(amp_v(x=n))


@pytest.mark.parametrize("line", ["ATX5", "ATX9", "ATX?", "ATX=4", "ATX44"])
def test_a_rejected_x_changes_nothing(h, line):
    assert h.command("ATX2") == OK
    assert h.command(line) == ERROR
    assert h.command("AT&V") == info(amp_v(x=2))


def test_x_without_a_number_is_x0(h):
    assert h.command("ATX") == OK
    assert h.command("AT&V") == info(amp_v(x=0))


@pytest.mark.parametrize("n", [0, 1])
def test_amp_c_is_kept_and_shown(h, n):
    assert h.command(f"AT&C{n}") == OK
    assert h.command("AT&V") == info(amp_v(dcd=n))


@pytest.mark.parametrize("line", ["AT&C2", "AT&C?", "AT&C=1", "AT&C10"])
def test_a_rejected_amp_c_changes_nothing(h, line):
    assert h.command("AT&C0") == OK
    assert h.command(line) == ERROR
    assert h.command("AT&V") == info(amp_v(dcd=0))
    assert h.command("AT&C") == OK  # no number is &C0
    assert h.command("AT&V") == info(amp_v(dcd=0))


@pytest.mark.parametrize("line", ["ATH1", "ATH?", "ATH=0", "ATH2"])
def test_h_takes_only_0(h, line):
    assert h.command(line) == ERROR


def test_h_changes_no_setting(h):
    assert h.command("AT+CFUN=4") == OK
    assert h.command("ATH") == OK
    assert h.command("AT+CFUN?") == info("+CFUN: 4")
    assert h.command("AT&V") == info(amp_v())


# --- S-registers -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", sorted(REGISTERS))
def test_s_register_reads_three_digits(h, n):
    # V.250 5.3.2: exactly three decimal digits with leading zeros.
    assert h.command(f"ATS{n}?") == info(f"{REGISTERS[n]:03d}")
    assert h.command(f"ats{n}?") == info(f"{REGISTERS[n]:03d}")


@pytest.mark.parametrize("n", [0, 6, 7, 8, 10])
def test_s_register_bounds_are_taken(h, n):
    low, high = RANGES[n]
    for value in (low, high):
        assert h.command(f"ATS{n}={value}") == OK
        assert h.command(f"ATS{n}?") == info(f"{value:03d}")
        assert h.command("AT&V") == info(amp_v(**{f"S{n}": value}))


@pytest.mark.parametrize("n", sorted(REGISTERS))
def test_s_register_rejected_values_change_nothing(h, n):
    low, high = RANGES[n]
    bad = [str(high + 1), "999", "99999999999999999999", "", "-1", "a", "1?", "=1", "\xb9"]
    if low > 0:
        bad += [str(low - 1), "0"]
    for value in bad:
        assert h.command(f"ATS{n}={value}") == ERROR, value
        assert h.command(f"ATS{n}?") == info(f"{REGISTERS[n]:03d}"), value
    assert h.command("AT&V") == info(amp_v())


@pytest.mark.parametrize("line", ["ATS1?", "ATS2=43", "ATS9?", "ATS12?", "ATS256?", "ATS3", "ATS", "ATS=3", "ATS?"])
def test_other_s_registers_and_forms_answer_error(h, line):
    assert h.command(line) == ERROR  # chosen: only the registers AT&V shows


def test_s_register_number_and_value_with_leading_zeros(h):
    assert h.command("ATS07=030") == OK
    assert h.command("ATS7?") == info("030")
    assert h.command("ATS0=2S8=5;S10=100") == OK
    assert h.command("ATS0?S8?S10?") == info("002", "005", "100")


def test_s_register_errors_are_plain_whatever_cmee(h):
    assert h.command("AT+CMEE=2") == OK
    assert h.command("ATS3=128") == ERROR


# --- S3: the line terminator -------------------------------------------------------------------------


def test_s3_changes_the_terminator_and_the_framing(h):
    # V.250 6.2.1: the line that sets S3 ends at the old terminator; its result uses the new one.
    assert h.send(b"ATS3=10\r") == b"\n\nOK\n\n"
    assert h.send(b"AT+CSQ\n") == b"\n\n" + CSQ.encode() + b"\n\n\n\nOK\n\n"
    assert h.send(b"AT") == b""
    assert h.send(b"\r") == b""  # CR no longer ends a line
    # chosen: the CR is then an ordinary character of the line, which is not a command.
    assert h.send(b"\n") == b"\n\nERROR\n\n"
    assert h.send(b"\n") == b""  # an empty line: no answer
    assert h.send(b"ATS3?\n") == b"\n\n010\n\n\n\nOK\n\n"
    assert h.send(b"ATS3=13\n") == OK
    assert h.command("AT") == OK


def test_s3_with_echo_and_v0():
    h = CoreHarness(echo=True)
    assert h.send(b"ATS3=35V0\r") == b"ATS3=35V0\r0#"  # 35 is "#"
    assert h.send(b"AT+CSQ#") == b"AT+CSQ#" + CSQ.encode() + b"#\n0#"
    # The LF right after S3 is that line's end, as after CR: taken after the answer, not echoed.
    assert h.send(b"\nAT#") == b"AT#0#"
    assert h.send(b"ATV1S3=13#") == b"ATV1S3=13#" + OK


def test_s3_lf_ends_a_line_and_lf_at_the_start_is_an_empty_line():
    h = CoreHarness(echo=True)
    assert h.send(b"ATS3=10\r") == b"ATS3=10\r\n\nOK\n\n"
    assert h.send(b"\n") == b""  # the LF after the CR that ended ATS3=10: that line's end, no answer
    assert h.send(b"AT\n") == b"AT\n\n\nOK\n\n"


def test_s3_line_limit_and_a_slash_still_work(h):
    assert h.send(b"ATS3=10\r") == b"\n\nOK\n\n"
    assert h.send(b"AT+CSQ\n") == b"\n\n" + CSQ.encode() + b"\n\n\n\nOK\n\n"
    assert h.send(b"A/") == b"\n\n" + CSQ.encode() + b"\n\n\n\nOK\n\n"
    too_long = b"AT" + b"1" * (PROFILE.limits.line_length + 1)
    assert h.send(too_long + b"\n") == b"\n\nERROR\n\n"


# --- S4: the response formatting character ------------------------------------------------------------


def test_s4_changes_the_framing_of_results_information_and_urcs(h):
    assert h.command("ATS4=32") == b"\r OK\r "  # the new S4 already frames this line's result
    assert h.command("AT+CSQ") == b"\r " + CSQ.encode() + b"\r \r OK\r "
    ident = PROFILE.identity
    assert h.command("ATI") == (b"\r " + f"{ident.manufacturer}\r {ident.model}\r Revision: {ident.revision}".encode()
                                + b"\r \r OK\r ")
    assert h.command("AT+CREG=1") == b"\r OK\r "
    assert h.command("AT+CFUN=4") == b"\r OK\r \r +CREG: 0\r "
    assert h.command("ATV0") == b"0\r"
    assert h.command("AT+CSQ") == b"+CSQ: 99,99\r 0\r"
    assert h.command("AT+ZZZZ") == b"4\r"
    assert h.command("AT+CMEE=1;+CFUN=7") == b"+CME ERROR: 50\r "
    assert h.command("ATV1S4=10") == OK


# --- S5: the editing character --------------------------------------------------------------------------


def test_s5_changes_the_erasing_character_and_del_still_erases():
    h = CoreHarness(echo=True)
    assert h.command("ATS5=21") == b"ATS5=21\r" + OK
    assert h.send(b"AT+CSQX\x15\r") == b"AT+CSQX\x15\r" + info(CSQ)
    assert h.send(b"AT+CSQX\x7f\r") == b"AT+CSQX\x7f\r" + info(CSQ)  # README: DEL erases too
    assert h.send(b"AT+CSQX\x08\r") == b"AT+CSQX\x08\r" + ERROR  # backspace is a character now
    assert h.command("ATS5?") == b"ATS5?\r" + info("021")
    assert h.send(b"ATS5=8\r") == b"ATS5=8\r" + OK
    assert h.send(b"AT+CSQX\x08\r") == b"AT+CSQX\x08\r" + info(CSQ)


# --- AT&V, ATZ, AT&F, a power cycle ----------------------------------------------------------------------


def test_amp_v_shows_every_current_value(h):
    assert h.command("ATQ0X3&C0&D1S0=2S6=10S7=30S8=0S10=100") == OK
    assert h.command("ATS3=13S4=10S5=127") == OK
    assert h.command("AT&V") == info(amp_v(x=3, dcd=0, dtr=1, S0=2, S5=127, S6=10, S7=30, S8=0, S10=100))


def _change_everything(h: CoreHarness) -> None:
    for line in ["ATX1&C0&D0S0=3S6=5S7=9S8=7S10=20", "AT+IPR=921600", "AT+IFC=2,2", "AT+ICF=5,1", "AT+CMEE=2"]:
        assert h.command(line) == OK, line
    assert h.send(b"ATS5=21S4=32S3=10\r") == b"\n OK\n "
    assert h.send(b"ATV0\n") == b"0\n"


@pytest.mark.parametrize("line", ["ATZ", "AT&F", "ATZ0", "AT&F0"])
def test_z_and_amp_f_restore_every_setting(h, line):
    _change_everything(h)
    # The line still ends at the S3 in force; its result comes in the restored framing; echo is
    # back on after the line was received (the profile's default).
    assert h.send(line.encode() + b"\n") == OK
    assert h.command("AT&V") == b"AT&V\r" + info(amp_v(echo=1))
    assert h.command("ATE0") == b"ATE0\r" + OK
    assert h.command("AT+IPR?;+IFC?;+ICF?;+CMEE?") == info("+IPR: 115200", "+IFC: 0,0", "+ICF: 3,3", "+CMEE: 1")


def test_z_restores_q(h):
    assert h.command("ATQ1") == b""
    assert h.command("ATZ") == OK  # already answered with Q0 restored
    assert h.command("AT") == b"AT\r" + OK


def test_a_power_cycle_forgets_every_setting(h):
    _change_everything(h)
    assert h.send(b"ATQ1\n") == b""
    assert h.send(b"AT+CFUN=1,1\n") == b""  # answered (not at all) in the old settings
    boot = h.advance(5.0)
    assert boot.startswith(b"\r\nRDY\r\n")  # the boot URCs come in the default framing
    assert h.command("ATE0") == b"ATE0\r" + OK
    assert h.command("AT&V") == info(amp_v())
    assert h.command("AT+IPR?;+IFC?;+ICF?") == info("+IPR: 115200", "+IFC: 0,0", "+ICF: 3,3")


# --- AT+IPR -----------------------------------------------------------------------------------------------


def test_ipr_test_and_read(h):
    assert h.command("AT+IPR=?") == info("+IPR: (),(9600,19200,38400,57600,115200,230400,460800,921600)")
    assert h.command("AT+IPR?") == info("+IPR: 115200")


@pytest.mark.parametrize("rate", RATES)
def test_ipr_takes_every_listed_rate(h, rate):
    assert h.command(f"AT+IPR={rate}") == OK
    assert h.command("AT+IPR?") == info(f"+IPR: {rate}")


@pytest.mark.parametrize("bad", ["0", "4800", "115201", "1000000", "3000000", "", "a", '"115200"', "115200,1",
                                 "-1", ",", "9600.0", "\xb9"])
def test_ipr_rejected_values_change_nothing(h, bad):
    assert h.command("AT+IPR=57600") == OK
    for cmee in (0, 1, 2):  # chosen: plain ERROR, as the V.250 commands answer
        assert h.command(f"AT+CMEE={cmee}") == OK
        assert h.command(f"AT+IPR={bad}") == ERROR
    assert h.command("AT+IPR?") == info("+IPR: 57600")


def test_ipr_execution_form_answers_error(h):
    assert h.command("AT+IPR") == ERROR
    assert h.command("AT+IPR?") == info("+IPR: 115200")


# --- AT+IFC -----------------------------------------------------------------------------------------------


def test_ifc(h):
    assert h.command("AT+IFC=?") == info("+IFC: (0,2),(0,2)")
    assert h.command("AT+IFC?") == info("+IFC: 0,0")
    assert h.command("AT+IFC=2,2") == OK
    assert h.command("AT+IFC?") == info("+IFC: 2,2")
    assert h.command("AT+IFC=0,0") == OK
    assert h.command("AT+IFC?") == info("+IFC: 0,0")


@pytest.mark.parametrize("bad", ["0,2", "2,0", "1,1", "3,3", "2", "", ",2", "2,", "2,2,2", "a,b", '"2","2"', "1"])
def test_ifc_rejected_values_change_nothing(h, bad):
    assert h.command("AT+IFC=2,2") == OK
    assert h.command(f"AT+IFC={bad}") == ERROR
    assert h.command("AT+IFC?") == info("+IFC: 2,2")


def test_ifc_execution_form_answers_error(h):
    assert h.command("AT+IFC") == ERROR


# --- AT+ICF -----------------------------------------------------------------------------------------------


def test_icf(h):
    assert h.command("AT+ICF=?") == info("+ICF: (1-6),(0-3)")
    assert h.command("AT+ICF?") == info("+ICF: 3,3")
    assert h.command("AT+ICF=2,1") == OK
    assert h.command("AT+ICF?") == info("+ICF: 2,1")
    assert h.command("AT+ICF=5") == OK  # chosen: the parity stays as it was
    assert h.command("AT+ICF?") == info("+ICF: 5,1")
    assert h.command("AT+ICF=3,3") == OK
    assert h.command("AT+ICF?") == info("+ICF: 3,3")


@pytest.mark.parametrize("fmt", range(1, 7))
@pytest.mark.parametrize("parity", range(4))
def test_icf_takes_every_format_and_parity(h, fmt, parity):
    assert h.command(f"AT+ICF={fmt},{parity}") == OK
    assert h.command("AT+ICF?") == info(f"+ICF: {fmt},{parity}")


@pytest.mark.parametrize("bad", ["0", "7", "3,4", "0,0", "", ",1", "a", "3,a", '"3"', "3,3,3", "-1"])
def test_icf_rejected_values_change_nothing(h, bad):
    assert h.command("AT+ICF=6,2") == OK
    assert h.command(f"AT+ICF={bad}") == ERROR
    assert h.command("AT+ICF?") == info("+ICF: 6,2")


def test_icf_execution_form_answers_error(h):
    assert h.command("AT+ICF") == ERROR
