"""The basic commands (emulator/commands/basic.py) through the sans-IO core, byte for byte, every
answer taken from the module profile: identity, SIM and network status, AT+CFUN (and the reboot of
AT+CFUN=1,1), AT+QURCCFG and the V.250 settings (AT&D, AT&F, ATZ, AT&V, AT&W). AT+CCLK is in
test_clock.py, ATE/ATV/AT+CMEE framing in test_interpreter.py, ATQ/ATX/AT&C/ATH, the S-registers and
AT+IPR/AT+IFC/AT+ICF in test_v250_basics.py.
"""

from __future__ import annotations

import pytest

from ecemu.profile import available_profiles, load_profile
from tests.harness import CoreHarness
from tests.wire import CME_50, ERROR, OK

PROFILES = available_profiles()
PROFILE = load_profile("EC200M-CN")
NET = PROFILE.network
CSQ = "+CSQ: {},{}".format(*NET.csq)


def info(*lines: str) -> bytes:
    return b"".join(b"\r\n" + line.encode("latin-1") + b"\r\n" for line in lines) + OK


def urc(*texts: str) -> bytes:
    return b"".join(b"\r\n" + t.encode("latin-1") + b"\r\n" for t in texts)


def boot_urcs(profile) -> bytes:
    return urc(*(u.text for u in sorted(profile.boot_urcs, key=lambda u: u.after_ms)))


def amp_v(echo: int, verbose: int, dtr: int) -> str:
    return f"&C1 &D{dtr} &F0 &W0 E{echo} Q0 V{verbose} X4 Z0 S0:0 S3:13 S4:10 S5:8 S6:2 S7:0 S8:2 S10:15"


def test_the_profiles_are_the_four_modules_and_the_eg800k():
    # EG800K-CN: the family's module whose real logs the emulator replays (REFERENCE.md).
    assert PROFILES == ["EC200M-CN", "EC200N-CN", "EC800M-CN", "EC800N-CN", "EG800K-CN"]


# --- identity, for every module -------------------------------------------------------------------


@pytest.fixture(params=PROFILES)
def hp(request) -> CoreHarness:
    return CoreHarness(profile=request.param)


def test_ati_three_lines_from_the_profile(hp):
    ident = hp.modem.profile.identity
    expected = b"\r\n" + f"{ident.manufacturer}\r\n{ident.model}\r\nRevision: {ident.revision}".encode() + b"\r\n" + OK
    assert hp.command("ATI") == expected
    assert hp.command("ATI0") == expected
    assert hp.command("ati") == expected


def test_ati_is_the_readme_example_for_the_default_module():
    h = CoreHarness()
    assert h.command("ATI") == b"\r\nQuectel\r\nEC200M\r\nRevision: EC200MCNLAR02A02M16\r\n" + OK


@pytest.mark.parametrize("names,field", [
    (("+GMI", "+CGMI"), "manufacturer"),
    (("+GMM", "+CGMM"), "model"),
    (("+GMR", "+CGMR"), "revision"),
    (("+GSN",), "imei"),
])
def test_identity_commands(hp, names, field):
    value = getattr(hp.modem.profile.identity, field)
    for name in names:
        assert hp.command(f"AT{name}") == info(value)
        assert hp.command(f"AT{name}=?") == OK
        assert hp.command(f"AT{name}?") == ERROR
        assert hp.command(f"AT{name}=1") == ERROR


def test_identity_differs_per_module():
    seen = {name: CoreHarness(profile=name).command("ATI") for name in PROFILES}
    assert len(set(seen.values())) == len(PROFILES)
    for name, answer in seen.items():
        assert load_profile(name).identity.model.encode() in answer


def test_the_imei_is_fifteen_digits_with_a_valid_luhn_check(hp):
    imei = hp.modem.profile.identity.imei
    assert len(imei) == 15 and imei.isascii() and imei.isdigit()
    digits = [int(d) for d in imei]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(digits))
    assert total % 10 == 0


@pytest.mark.parametrize("line", ["ATI1", "ATI?", "ATI=?"])
def test_ati_other_forms_answer_error(h, line):
    assert h.command(line) == ERROR  # chosen: only ATI / ATI0


# --- SIM and signal --------------------------------------------------------------------------------


def test_cpin(h):
    assert h.command("AT+CPIN?") == info("+CPIN: READY")
    assert h.command("AT+CPIN=?") == OK
    assert h.command("AT+CPIN") == ERROR
    # No PIN is wanted: +CME ERROR: 3, as a real module (REFERENCE.md, seen); AT+CGSN in
    # test_startup_commands.py.
    assert h.command('AT+CPIN="1234"') == b"\r\n+CME ERROR: 3\r\n"


def test_csq_from_the_profile(hp):
    rssi, ber = hp.modem.profile.network.csq
    assert hp.command("AT+CSQ") == info(f"+CSQ: {rssi},{ber}")
    assert hp.command("AT+CSQ=?") == info("+CSQ: (0-31,99),(0-7,99)")
    assert hp.command("AT+CSQ?") == ERROR


def test_csq_follows_the_signal_fault(h):
    h.modem.signal = (3, 99)
    assert h.command("AT+CSQ") == info("+CSQ: 3,99")


# --- registration -----------------------------------------------------------------------------------

REGISTRATION = ["+CREG", "+CGREG", "+CEREG"]


@pytest.mark.parametrize("name", REGISTRATION)
def test_registration_read_and_n(hp, name):
    net = hp.modem.profile.network
    stat = net.registration
    assert hp.command(f"AT{name}?") == info(f"{name}: 0,{stat}")
    assert hp.command(f"AT{name}=?") == info(f"{name}: (0-2)")
    assert hp.command(f"AT{name}=1") == OK
    assert hp.command(f"AT{name}?") == info(f"{name}: 1,{stat}")
    assert hp.command(f"AT{name}=2") == OK
    location = f',"{net.tac}","{net.cell_id}",{net.access_technology}' if stat in (1, 5) else ""
    assert hp.command(f"AT{name}?") == info(f"{name}: 2,{stat}{location}")
    assert hp.command(f"AT{name}=0") == OK
    assert hp.command(f"AT{name}?") == info(f"{name}: 0,{stat}")


@pytest.mark.parametrize("name", REGISTRATION)
@pytest.mark.parametrize("bad", ["3", "", "a", '"1"', "1,1", "-1"])
def test_registration_bad_n_is_refused_and_changes_nothing(h, name, bad):
    assert h.command(f"AT{name}=1") == OK
    assert h.command(f"AT{name}={bad}") == CME_50
    assert h.command(f"AT{name}?") == info(f"{name}: 1,{NET.registration}")
    assert h.command(f"AT{name}") == ERROR


def test_registration_settings_are_independent(h):
    assert h.command("AT+CREG=2;+CEREG=1") == OK
    assert h.command("AT+CREG?;+CGREG?;+CEREG?") == info(
        f'+CREG: 2,{NET.registration},"{NET.tac}","{NET.cell_id}",{NET.access_technology}',
        f"+CGREG: 0,{NET.registration}", f"+CEREG: 1,{NET.registration}")


@pytest.mark.parametrize("fun", [0, 4])
def test_registration_urcs_when_the_radio_goes_off_and_on(h, fun):
    # 27.007 7.2: with <n> 1 or 2 the module reports each change of <stat>; the URCs come after
    # the OK (ARCHITECTURE.md: URCs are held while a command runs). <n> 0 reports nothing.
    assert h.command("AT+CREG=2;+CEREG=1") == OK
    assert h.command(f"AT+CFUN={fun}") == OK + urc("+CREG: 0", "+CEREG: 0")
    assert h.command(f"AT+CFUN={4 - fun}") == OK  # still off: no change, no URC
    assert h.command("AT+CFUN=1") == OK + urc(
        f'+CREG: {NET.registration},"{NET.tac}","{NET.cell_id}",{NET.access_technology}',
        f"+CEREG: {NET.registration}")
    assert h.command("AT+CFUN=1") == OK


def test_no_registration_urcs_by_default(h):
    assert h.command("AT+CFUN=0") == OK
    assert h.command("AT+CFUN=1") == OK


# --- operator, attach ----------------------------------------------------------------------------


def test_cops(hp):
    net = hp.modem.profile.network
    assert hp.command("AT+COPS?") == info(f'+COPS: 0,0,"{net.operator}",{net.access_technology}')
    assert hp.command("AT+COPS=0") == OK
    assert hp.command("AT+COPS=5") == CME_50
    assert hp.command("AT+COPS=0,0,\"x\",7,1") == CME_50
    assert hp.command("AT+COPS") == ERROR
    assert hp.command("AT+COPS=?").startswith(f'\r\n+COPS: (2,"{net.operator}"'.encode())


def test_cgatt(h):
    assert h.command("AT+CGATT?") == info("+CGATT: 1")
    assert h.command("AT+CGATT=?") == info("+CGATT: (0,1)")
    assert h.command("AT+CGATT=2") == CME_50


# --- AT+CFUN ----------------------------------------------------------------------------------------


def test_cfun_read_and_test(h):
    assert h.command("AT+CFUN?") == info("+CFUN: 1")
    assert h.command("AT+CFUN=?") == info("+CFUN: (0,1,4),(0,1)")
    assert h.command("AT+CFUN") == ERROR


@pytest.mark.parametrize("fun", [0, 4])
def test_cfun_radio_off_and_back(h, fun):
    assert h.command(f"AT+CFUN={fun}") == OK
    assert h.command("AT+CFUN?") == info(f"+CFUN: {fun}")
    assert h.command("AT+CSQ") == info("+CSQ: 99,99")
    assert h.command("AT+CREG?;+CGREG?;+CEREG?") == info("+CREG: 0,0", "+CGREG: 0,0", "+CEREG: 0,0")
    assert h.command("AT+CEREG=2;+CEREG?") == info("+CEREG: 2,0")
    assert h.command("AT+COPS?") == info("+COPS: 0")
    assert h.command("AT+CGATT?") == info("+CGATT: 0")
    assert h.command("AT+CPIN?") == info("+CPIN: READY")  # README: +CPIN: READY stays
    assert h.command("AT+CFUN=1") == OK + urc(
        f'+CEREG: {NET.registration},"{NET.tac}","{NET.cell_id}",{NET.access_technology}')
    assert h.command("AT+CFUN?") == info("+CFUN: 1")
    assert h.command("AT+CSQ") == info(CSQ)
    assert h.command("AT+CREG?") == info(f"+CREG: 0,{NET.registration}")
    assert h.command("AT+COPS?") == info(f'+COPS: 0,0,"{NET.operator}",{NET.access_technology}')


@pytest.mark.parametrize("bad", ["7", "2", "3", "5", "a", '"1"', "1,2", "1,1,1", "", ",1", "-1"])
def test_cfun_bad_values_are_refused_and_change_nothing(h, bad):
    assert h.command(f"AT+CFUN={bad}") == CME_50
    assert h.command("AT+CFUN?") == info("+CFUN: 1")
    assert h.advance(1.0) == b""  # no reboot either


def test_cfun_with_rst_0_does_not_reboot(h):
    assert h.command("AT+CFUN=1,0") == OK
    assert h.advance(1.0) == b""
    assert h.command("AT") == OK  # echo still off


def test_cfun_1_1_answers_ok_then_boots_again(h):
    assert h.command("AT+CFUN=1,1") == OK
    assert h.advance(5.0) == boot_urcs(PROFILE)
    assert h.modem.booted
    assert h.modem.boot_count == 2


def test_cfun_1_1_forgets_every_setting(h):
    setup = ["ATV1", "AT+CMEE=2", "AT&D0", "AT+CREG=2", "AT+CEREG=1", 'AT+QURCCFG="urcport","uart1"', "AT+CFUN=4"]
    for line in setup:
        h.command(line)
    assert h.command("ATV0") == b"0\r"
    assert h.command("AT+CFUN=1,1") == b"0\r"  # answered in the old settings
    h.advance(5.0)
    # Echo and verbose are back on: the power-on defaults of the profile.
    assert h.command("AT") == b"AT\r" + OK
    assert h.command("ATE0") == b"ATE0\r" + OK
    assert h.command("AT+CMEE?") == info(f"+CMEE: {PROFILE.defaults.cmee}")
    assert h.command("AT&V") == info(amp_v(0, 1, PROFILE.defaults.dtr_mode))
    assert h.command("AT+CREG?;+CEREG?") == info(f"+CREG: 0,{NET.registration}", f"+CEREG: 0,{NET.registration}")
    assert h.command('AT+QURCCFG="urcport"') == info(f'+QURCCFG: "urcport","{PROFILE.defaults.urc_port}"')
    assert h.command("AT+CFUN?") == info("+CFUN: 1")
    assert h.command("AT+CPIN?") == info("+CPIN: READY")
    assert h.command("AT+CSQ") == info(CSQ)


def test_cfun_1_1_forgets_the_last_line_for_a_slash():
    h = CoreHarness(echo=True)
    assert h.command("AT+CFUN=1,1") == b"AT+CFUN=1,1\r" + OK
    h.advance(5.0)
    assert h.send(b"A/") == b"A/" + ERROR


def test_a_line_pipelined_after_cfun_1_1_is_lost_with_the_uart(h):
    """A module that reboots loses what its UART had received and not read: a line the host sent
    with AT+CFUN=1,1 is never answered, and the host's next line starts clean."""
    assert h.command("AT+CMEE=2") == OK
    out = h.send(b"AT+CFUN=1,1\rAT+CMEE?\r") + h.advance(5.0)
    assert out.startswith(OK + b"\r\nRDY\r\n") and b"+CMEE" not in out
    assert h.modem.booted and h.modem.input_backlog == 0
    # Echo is on again and AT+CMEE is back to its default: the settings of the new power cycle.
    assert h.command("AT+CMEE?") == b"AT+CMEE?\r" + info(f"+CMEE: {PROFILE.defaults.cmee}")


def test_a_pipelined_reboot_gives_the_same_output_as_a_later_line():
    whole, split = CoreHarness(), CoreHarness()
    data = b"AT+CFUN=1,1\rAT+CMEE?\r"
    a = whole.send(data) + whole.advance(5.0)
    b = split.send(data[:12]) + split.send(data[12:]) + split.advance(5.0)
    assert a == b
    assert b.startswith(OK + b"\r\nRDY\r\n") and b"+CMEE" not in b


def test_cfun_1_1_while_the_radio_is_off_comes_back_on(h):
    assert h.command("AT+CFUN=0") == OK
    assert h.command("AT+CFUN=1,1") == OK
    h.advance(5.0)
    assert h.command("ATE0") == b"ATE0\r" + OK
    assert h.command("AT+CFUN?") == info("+CFUN: 1")


# --- AT+QURCCFG ------------------------------------------------------------------------------------


def test_qurccfg_reads_the_profile_default(hp):
    port = hp.modem.profile.defaults.urc_port
    assert hp.command('AT+QURCCFG="urcport"') == info(f'+QURCCFG: "urcport","{port}"')
    assert hp.command("AT+QURCCFG=?") == info('+QURCCFG: "urcport",("usbat","usbmodem","uart1")')


@pytest.mark.parametrize("port", ["usbat", "usbmodem", "uart1"])
def test_qurccfg_sets_the_port(h, port):
    assert h.command(f'AT+QURCCFG="urcport","{port}"') == OK
    assert h.command('AT+QURCCFG="urcport"') == info(f'+QURCCFG: "urcport","{port}"')
    assert h.command('AT+QURCCFG="URCPORT"') == info(f'+QURCCFG: "urcport","{port}"')


@pytest.mark.parametrize("args", ['"urcport","UART1"', '"urcport","com1"', '"urcport",uart1', '"urcport","uart1",1',
                                  '"nope","uart1"', "urcport", '"urcport",', '""', ""])
def test_qurccfg_bad_values_are_refused_and_change_nothing(h, args):
    assert h.command(f"AT+QURCCFG={args}") == CME_50
    assert h.command('AT+QURCCFG="urcport"') == info(f'+QURCCFG: "urcport","{PROFILE.defaults.urc_port}"')


@pytest.mark.parametrize("line", ["AT+QURCCFG?", "AT+QURCCFG"])
def test_qurccfg_other_forms_answer_error(h, line):
    assert h.command(line) == ERROR


# --- V.250 settings: AT&D, AT&V, AT&F, ATZ, AT&W ------------------------------------------------------


def test_amp_v_shows_the_profile_defaults(hp):
    d = hp.modem.profile.defaults
    assert hp.command("AT&V") == info(amp_v(0, int(d.verbose), d.dtr_mode))  # the harness sent ATE0


def test_amp_v_at_power_on():
    h = CoreHarness(echo=True)
    d = PROFILE.defaults
    assert h.command("AT&V") == b"AT&V\r" + info(amp_v(int(d.echo), int(d.verbose), d.dtr_mode))


@pytest.mark.parametrize("n", [0, 1, 2])
def test_amp_d_sets_the_dtr_mode(h, n):
    assert h.command(f"AT&D{n}") == OK
    assert h.modem.settings.dtr_mode == n
    assert h.command("AT&V") == info(amp_v(0, 1, n))


def test_amp_d_without_a_number_is_0_and_bad_values_change_nothing(h):
    assert h.command("AT&D") == OK
    assert h.modem.settings.dtr_mode == 0
    assert h.command("AT&D1") == OK
    for bad in ["AT&D3", "AT&D?", "AT&D=1", "AT&D12"]:
        assert h.command(bad) == ERROR
    assert h.modem.settings.dtr_mode == 1


def test_amp_v_in_v0(h):
    assert h.command("ATV0") == b"0\r"
    assert h.command("AT&V") == amp_v(0, 0, PROFILE.defaults.dtr_mode).encode() + b"\r\n0\r"


@pytest.mark.parametrize("line", ["ATZ", "AT&F", "ATZ0", "AT&F0", "atz", "at&f"])
def test_z_and_amp_f_restore_the_profile_defaults(h, line):
    d = PROFILE.defaults
    for setup in ["AT&D0", "AT+CMEE=2", "AT+CREG=2", 'AT+QURCCFG="urcport","uart1"', "ATE1"]:
        h.command(setup)
    assert h.command("ATV0") == b"ATV0\r0\r"
    # The result comes in the restored format (V1), as ATV's own result does.
    assert h.command(line) == line.encode() + b"\r" + OK
    assert h.command("AT&V") == b"AT&V\r" + info(amp_v(int(d.echo), int(d.verbose), d.dtr_mode))
    assert h.command("AT+CMEE?") == b"AT+CMEE?\r" + info(f"+CMEE: {d.cmee}")
    assert h.command("AT+CREG?") == b"AT+CREG?\r" + info(f"+CREG: 0,{NET.registration}")
    # chosen: AT+QURCCFG's port is one of the settings ATZ and AT&F restore.
    assert h.command('AT+QURCCFG="urcport"') == b'AT+QURCCFG="urcport"\r' + info(
        f'+QURCCFG: "urcport","{d.urc_port}"')


@pytest.mark.parametrize("line", ["ATZ1", "AT&F1", "ATZ?", "AT&F?"])
def test_z_and_amp_f_with_a_number_answer_error_and_change_nothing(h, line):
    assert h.command("AT+CMEE=2") == OK
    assert h.command(line) == ERROR
    assert h.command("AT+CMEE?") == info("+CMEE: 2")


def test_z_does_not_touch_the_radio_or_reboot(h):
    assert h.command("AT+CFUN=4") == OK
    assert h.command("ATZ") == OK  # typed with echo off; echo is on afterwards
    assert h.advance(1.0) == b""
    assert h.command("AT+CFUN?") == b"AT+CFUN?\r" + info("+CFUN: 4")


def test_amp_w_is_accepted_and_keeps_nothing(h):
    assert h.command("AT+CMEE=2") == OK
    assert h.command("AT&W") == OK
    assert h.command("AT&W0") == OK
    assert h.command("AT&W1") == ERROR
    assert h.command("AT+CFUN=1,1") == OK
    h.advance(5.0)
    assert h.command("AT+CMEE?") == b"AT+CMEE?\r" + info(f"+CMEE: {PROFILE.defaults.cmee}")


def test_ato_without_a_connection_answers_no_carrier(h):
    assert h.command("ATO") == b"\r\nNO CARRIER\r\n"
    assert h.command("ATO0") == b"\r\nNO CARRIER\r\n"
    assert h.command("ATO1") == ERROR
