"""Basic commands: identity, V.250 settings (E, Q, V, X, &C, &D, S-registers, the serial port's
+IPR/+IFC/+ICF), SIM and network status, the module clock.

Answers come from the module profile (``profiles/*.toml``). Formats follow REFERENCE.md "Boot and
basics" (seen on a real module) and 3GPP TS 27.007 where REFERENCE.md is silent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.clock import parse_cclk
from ..core.parser import CommandCall, Form
from ..core.registry import (
    CommandFailed,
    Reply,
    at_most,
    command,
    int_arg,
    ok,
    require_form,
    str_arg,
)
from ..core.results import NO_CARRIER, CmeCode, Refusal

if TYPE_CHECKING:
    from ..core.modem import Modem

FAMILY = "basic"

URC_PORTS = ("usbat", "usbmodem", "uart1")
RADIO_OFF = (0, 4)

# Each S-register's meaning and range (V.250 6.2.1 - 6.2.3, 6.3.8 - 6.3.12). S7 also takes 0, the
# module's default (V.250: 1-255). Only S3, S4 and S5 change what the emulator does.
S_REGISTERS = {
    0: ("rings before an incoming call is answered, 0 never", 0, 255),
    3: ("the command line terminator", 0, 127),
    4: ("the response formatting character, after S3 in headers and trailers", 0, 127),
    5: ("the command line editing (erase) character", 0, 127),
    6: ("seconds to wait before blind dialling", 2, 10),
    7: ("seconds to wait for a connection to complete", 0, 255),
    8: ("seconds a comma in a dial string pauses", 0, 255),
    10: ("tenths of a second before hanging up after the carrier is lost", 1, 254),
}
# AT+IPR rates the EC200 family's UART takes (Quectel EC200x AT manual).
BAUD_RATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)
FLOW_CONTROL = ((0, 0), (2, 2))  # AT+IFC: none, or RTS/CTS both ways


def _digit_setting(call: CommandCall, high: int) -> int:
    """``E``, ``V``, ``&D`` ...: a missing number means 0 (V.250 5.3.1)."""
    require_form(call, Form.EXEC)
    return int_arg(call, 0, 0, high, default=0, refusal=Refusal.PLAIN)


@command("E", family=FAMILY)
def echo(modem: "Modem", call: CommandCall) -> Reply:
    """ATE<n>: command echo (SSL note 2.1.2; V.250 6.2.4). ATE1 is the default."""
    modem.settings.echo = bool(_digit_setting(call, 1))
    return ok()


@command("V", family=FAMILY)
def verbose(modem: "Modem", call: CommandCall) -> Reply:
    """ATV<n>: result codes as text (1) or numbers (0) (V.250 6.2.6).

    The OK of ATV0 itself already comes in the new format, as on the module.
    """
    modem.settings.verbose = bool(_digit_setting(call, 1))
    return ok()


@command("Q", family=FAMILY)
def quiet(modem: "Modem", call: CommandCall) -> Reply:
    """ATQ<n>: 0 result codes are sent, 1 none are: final, intermediate (CONNECT) or unsolicited;
    information text still is (V.250 6.2.5). Q0 is the default (REFERENCE.md AT&V, seen).

    As with ATV, the setting applies to the line's own result: ATQ1 answers nothing.
    """
    modem.settings.quiet = bool(_digit_setting(call, 1))
    return ok()


@command("X", family=FAMILY)
def result_code_selection(modem: "Modem", call: CommandCall) -> Reply:
    """ATX<n>, 0-4: which call progress result codes a call reports (V.250 6.2.7; Quectel EC2x AT
    manual: 0-4). X4 is the default (REFERENCE.md AT&V, seen). There are no calls in the emulator:
    the value is kept and shown in AT&V."""
    modem.settings.result_codes = _digit_setting(call, 4)
    return ok()


@command("&C", family=FAMILY)
def dcd_mode(modem: "Modem", call: CommandCall) -> Reply:
    """AT&C<n>: DCD always on (0) or on while a data connection has the port (1) (V.250 6.2.8;
    REFERENCE.md "Control lines"). &C1 is the default (REFERENCE.md AT&V, seen). On a CMUX channel
    it is that DLC's DCD, in its MSC (REFERENCE.md "CMUX")."""
    modem.settings.dcd_mode = _digit_setting(call, 1)
    modem.lines.refresh()
    return ok()


@command("H", family=FAMILY)
def hang_up(modem: "Modem", call: CommandCall) -> Reply:
    """ATH / ATH0: hang up the call (V.250 6.3.6): a PPP data call left with +++ on this channel ends
    (commands/ppp.py); TCP/IP and SSL connections stay as they are (chosen: they are closed by their
    own commands). OK either way."""
    _digit_setting(call, 0)
    for state in modem.families.values():
        state.hang_up()
    return ok()


def _s_register(number: int, meaning: str, low: int, high: int):
    def handler(modem: "Modem", call: CommandCall) -> Reply:
        registers = modem.settings.s_registers
        if call.form is Form.READ:
            return ok(f"{registers[number]:03d}")
        require_form(call, Form.WRITE)
        # V.250 5.3.2 lets ATSn= without a value set 0 or answer ERROR; ERROR, nothing changed (chosen).
        registers[number] = int_arg(call, 0, low, high, refusal=Refusal.PLAIN)
        return ok()

    handler.__doc__ = (f"ATS{number}? / ATS{number}=<n>, {low}-{high}, {meaning}: read as exactly three "
                       "decimal digits with leading zeros (V.250 5.3.2); a value out of range answers ERROR.")
    return handler


for _number, _spec in S_REGISTERS.items():
    command(f"S{_number}", family=FAMILY)(_s_register(_number, *_spec))


@command("&D", family=FAMILY)
def dtr_mode(modem: "Modem", call: CommandCall) -> Reply:
    """AT&D<n>: what a DTR drop does (V.250 6.2.9; REFERENCE.md "Control lines"): 0 nothing (a host
    that closes the port changes nothing either), 1 leaves transparent mode and keeps the connection
    (SSL note 1.4), 2 leaves and closes it. Default 2. On a CMUX channel: what a drop of that DLC's
    DTR (RTC in the host's MSC) does; the serial line's DTR follows the port's (REFERENCE.md "CMUX")."""
    modem.settings.dtr_mode = _digit_setting(call, 2)
    return ok()


@command("Z", "&F", family=FAMILY)
def restore_defaults(modem: "Modem", call: CommandCall) -> Reply:
    """ATZ / AT&F: every V.250 setting back to the profile's factory default, the UART's rate and
    framing included (at power-on's rate, ``--baud``): the port changes after the OK. On a CMUX
    channel the channel's own settings; the UART's are the port's and stay (REFERENCE.md "CMUX")."""
    _digit_setting(call, 0)
    fresh = type(modem.settings).factory(modem.profile)
    if modem.channel is modem.port:
        fresh.baud_rate = modem.baud_rate_at_power_on
    modem.settings = fresh
    modem.line_settings_changed()
    modem.lines.refresh()  # DCD per &C1, no flow control
    return ok()


@command("&W", family=FAMILY)
def store_settings(modem: "Modem", call: CommandCall) -> Reply:
    """AT&W: accepted; the emulator keeps no user profile across power cycles (chosen)."""
    _digit_setting(call, 0)
    return ok()


@command("&V", family=FAMILY)
def show_settings(modem: "Modem", call: CommandCall) -> Reply:
    """AT&V: the current settings on one line, in the module's style (REFERENCE.md)."""
    require_form(call, Form.EXEC)
    s = modem.settings
    registers = " ".join(f"S{n}:{s.s_registers[n]}" for n in sorted(S_REGISTERS))
    return ok(f"&C{s.dcd_mode} &D{s.dtr_mode} &F0 &W0 E{int(s.echo)} Q{int(s.quiet)} V{int(s.verbose)} "
              f"X{s.result_codes} Z0 {registers}")


@command("I", family=FAMILY)
def identify(modem: "Modem", call: CommandCall) -> Reply:
    """ATI: manufacturer, model and revision on three lines (REFERENCE.md, seen)."""
    _digit_setting(call, 0)
    ident = modem.profile.identity
    return ok(ident.manufacturer, ident.model, f"Revision: {ident.revision}")


def _identity_line(call: CommandCall, value: str) -> Reply:
    if call.form is Form.TEST:
        return ok()
    require_form(call, Form.EXEC)
    return ok(value)


def _v250_write(call: CommandCall, count: int) -> None:
    """The write form of AT+IPR, AT+IFC, AT+ICF with at most ``count`` parameters. A wrong form or
    value answers plain ERROR, as the V.250 basic commands do (chosen: these are not 3GPP commands)."""
    require_form(call, Form.WRITE)
    if not 1 <= len(call.args) <= count:
        raise CommandFailed(Refusal.PLAIN)


@command("+IPR", family=FAMILY)
def baud_rate(modem: "Modem", call: CommandCall) -> Reply:
    """AT+IPR=<rate>: the UART's fixed rate, one of 9600 ... 921600 (V.250 6.2.10; Quectel EC200x AT
    manual); 115200 by default (``ecemu run --baud`` sets the rate at power-on). The test form lists
    no auto-detected rates, then the fixed ones (chosen). The OK goes at the old rate, then the port
    changes (a serial device's termios; the UART line's pace, ``--line uart``); a power cycle
    and ATZ and AT&F return to the rate at power-on. The rate is the UART's: on a CMUX channel too
    it reads and sets the port's, as the multiplexer runs at the port's rate (REFERENCE.md "CMUX")."""
    if call.form is Form.TEST:
        return ok(f"+IPR: (),({','.join(map(str, BAUD_RATES))})")
    if call.form is Form.READ:
        return ok(f"+IPR: {modem.uart_settings.baud_rate}")
    _v250_write(call, 1)
    rate = int_arg(call, 0, BAUD_RATES[0], BAUD_RATES[-1], refusal=Refusal.PLAIN)
    if rate not in BAUD_RATES:
        raise CommandFailed(Refusal.PLAIN)
    modem.uart_settings.baud_rate = rate
    modem.line_settings_changed()
    return ok()


@command("+IFC", family=FAMILY)
def flow_control(modem: "Modem", call: CommandCall) -> Reply:
    """AT+IFC=<dce_by_dte>,<dte_by_dce>: 0,0 no flow control (the default) or 2,2 RTS/CTS (V.250
    6.2.12; Quectel EC2x AT manual: 0 none, 2 RTS/CTS). Mixed pairs answer ERROR (chosen). With 2,2
    the module sends nothing while the host's RTS is off and turns CTS off while its input buffer
    is full (REFERENCE.md "Control lines"); nothing is lost either way. The UART's, whichever channel
    sets it (REFERENCE.md "CMUX")."""
    if call.form is Form.TEST:
        return ok("+IFC: (0,2),(0,2)")
    if call.form is Form.READ:
        return ok("+IFC: {},{}".format(*modem.uart_settings.flow_control))
    _v250_write(call, 2)
    pair = (int_arg(call, 0, 0, 2, refusal=Refusal.PLAIN), int_arg(call, 1, 0, 2, refusal=Refusal.PLAIN))
    if pair not in FLOW_CONTROL:
        raise CommandFailed(Refusal.PLAIN)
    modem.uart_settings.flow_control = pair
    modem.lines.refresh()
    return ok()


@command("+ICF", family=FAMILY)
def character_framing(modem: "Modem", call: CommandCall) -> Reply:
    """AT+ICF=<format>[,<parity>]: data, parity and stop bits, format 1-6 and parity 0-3 (V.250
    6.2.11); 3,3 (8 data bits, no parity, 1 stop bit) by default (Quectel EC2x AT manual). Without
    <parity> the parity stays as it was (chosen). A serial device is set to it after the OK; with
    the UART line (``--line uart``) it changes how long each byte takes. The UART's, whichever
    channel sets it (REFERENCE.md "CMUX")."""
    if call.form is Form.TEST:
        return ok("+ICF: (1-6),(0-3)")
    if call.form is Form.READ:
        return ok("+ICF: {},{}".format(*modem.uart_settings.char_framing))
    _v250_write(call, 2)
    fmt = int_arg(call, 0, 1, 6, refusal=Refusal.PLAIN)
    uart = modem.uart_settings
    parity = int_arg(call, 1, 0, 3, default=uart.char_framing[1], refusal=Refusal.PLAIN)
    uart.char_framing = (fmt, parity)
    modem.line_settings_changed()
    return ok()


@command("+GMI", "+CGMI", family=FAMILY)
def manufacturer(modem: "Modem", call: CommandCall) -> Reply:
    """AT+GMI / AT+CGMI: the manufacturer (27.007 5.1)."""
    return _identity_line(call, modem.profile.identity.manufacturer)


@command("+GMM", "+CGMM", family=FAMILY)
def model(modem: "Modem", call: CommandCall) -> Reply:
    """AT+GMM / AT+CGMM: the model (27.007 5.2)."""
    return _identity_line(call, modem.profile.identity.model)


@command("+GMR", "+CGMR", family=FAMILY)
def revision(modem: "Modem", call: CommandCall) -> Reply:
    """AT+GMR / AT+CGMR: the firmware revision (27.007 5.3)."""
    return _identity_line(call, modem.profile.identity.revision)


@command("+GSN", family=FAMILY)
def serial_number(modem: "Modem", call: CommandCall) -> Reply:
    """AT+GSN: the IMEI, bare, on one line (V.250 6.1.6)."""
    return _identity_line(call, modem.profile.identity.imei)


@command("+CGSN", family=FAMILY)
def product_serial_number(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CGSN[=<snt>] (27.007 5.4): without <snt>, or 0, the IMEI bare on one line; 1
    ``+CGSN: "<IMEI>"``, 2 ``+CGSN: "<IMEISV>"`` (the IMEI's first 14 digits and the SVN), 3
    ``+CGSN: "<SVN>"``. chosen: the values quoted, as 27.007 types them strings."""
    ident = modem.profile.identity
    if call.form is Form.TEST:
        return ok("+CGSN: (0-3)")
    if call.form is Form.EXEC:
        return ok(ident.imei)
    require_form(call, Form.WRITE)
    at_most(call, 1)
    snt = int_arg(call, 0, 0, 3)
    values = {1: ident.imei, 2: ident.imei[:14] + ident.imei_svn, 3: ident.imei_svn}
    return ok(ident.imei) if snt == 0 else ok(f'+CGSN: "{values[snt]}"')


@command("+CMEE", family=FAMILY)
def error_reporting(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CMEE=<n>: 0 plain ERROR, 1 ``+CME ERROR: <code>``, 2 ``+CME ERROR: <text>`` (27.007 9.1)."""
    if call.form is Form.TEST:
        return ok("+CMEE: (0-2)")
    if call.form is Form.READ:
        return ok(f"+CMEE: {modem.settings.cmee}")
    if call.form is Form.WRITE:
        at_most(call, 1)
        modem.settings.cmee = int_arg(call, 0, 0, 2)
        return ok()
    return ok()




@command("+CPIN", family=FAMILY)
def pin_status(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CPIN?: the emulated SIM needs no PIN (REFERENCE.md: ``+CPIN: READY``). AT+CPIN=<pin>[,<new
    pin>] when no PIN is wanted answers ``+CME ERROR: 3`` (27.007 8.3; REFERENCE.md "Start-up
    commands", seen)."""
    if call.form is Form.TEST:
        return ok()
    if call.form is Form.WRITE:
        if not 1 <= len(call.args) <= 2:
            raise CommandFailed(Refusal.PARAMETER)
        str_arg(call, 0)
        raise CommandFailed(CmeCode.NOT_ALLOWED)
    require_form(call, Form.READ)
    return ok("+CPIN: READY")


def radio_on(modem: "Modem") -> bool:
    return modem.functionality not in RADIO_OFF


@command("+CSQ", family=FAMILY)
def signal_quality(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CSQ: ``+CSQ: <rssi>,<ber>`` from the profile; 99,99 with the radio off (27.007 8.5)."""
    if call.form is Form.TEST:
        return ok("+CSQ: (0-31,99),(0-7,99)")
    require_form(call, Form.EXEC)
    rssi, ber = modem.signal if radio_on(modem) else (99, 99)
    return ok(f"+CSQ: {rssi},{ber}")


def _registration_state(modem: "Modem", n: int) -> str:
    """``<stat>``, and with ``<n>``=2 while registered ``,"<tac>","<ci>",<AcT>`` (27.007 7.2)."""
    net = modem.profile.network
    stat = net.registration if radio_on(modem) else 0
    if n == 2 and stat in (1, 5):
        return f'{stat},"{net.tac}","{net.cell_id}",{net.access_technology}'
    return str(stat)


def report_registration(modem: "Modem") -> None:
    """The registration URCs (``+CREG: <stat>`` ...) the host asked for with ``<n>`` 1 or 2, sent
    when the registration state changes (27.007 7.2, 10.1.19); the radio switching on or off is the
    only change the emulated network makes."""
    for name, n in modem.settings.registration_report.items():
        if n:
            modem.emit_urc(f"{name}: {_registration_state(modem, n)}")


def _registration(name: str, high: int):
    def handler(modem: "Modem", call: CommandCall) -> Reply:
        report = modem.settings.registration_report
        if call.form is Form.TEST:
            return ok(f"{name}: (0-{high})")
        if call.form is Form.WRITE:
            at_most(call, 1)
            report[name] = int_arg(call, 0, 0, high)
            return ok()
        require_form(call, Form.READ)
        n = report[name]
        return ok(f"{name}: {n},{_registration_state(modem, n)}")

    handler.__doc__ = f"AT{name}: network registration, ``<n>,<stat>[,<tac>,<ci>,<AcT>]`` (27.007 7.2, 10.1.19)."
    return handler


command("+CREG", family=FAMILY)(_registration("+CREG", 2))
command("+CGREG", family=FAMILY)(_registration("+CGREG", 2))
command("+CEREG", family=FAMILY)(_registration("+CEREG", 2))


@command("+COPS", family=FAMILY)
def operator(modem: "Modem", call: CommandCall) -> Reply:
    """AT+COPS?: ``+COPS: 0,0,"<operator>",<AcT>`` (REFERENCE.md, seen); AT+COPS=0 is accepted."""
    net = modem.profile.network
    if call.form is Form.TEST:
        return ok(f'+COPS: (2,"{net.operator}","{net.operator}","46000",{net.access_technology}),,(0-4),(0-2)')
    if call.form is Form.WRITE:
        at_most(call, 4)
        int_arg(call, 0, 0, 4)
        return ok()
    require_form(call, Form.READ)
    if not radio_on(modem):
        return ok("+COPS: 0")
    return ok(f'+COPS: 0,0,"{net.operator}",{net.access_technology}')


@command("+CGATT", family=FAMILY)
def attach_status(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CGATT?: packet domain attach, 1 while the radio is on (REFERENCE.md, seen)."""
    if call.form is Form.TEST:
        return ok("+CGATT: (0,1)")
    if call.form is Form.WRITE:
        at_most(call, 1)
        int_arg(call, 0, 0, 1)
        return ok()
    require_form(call, Form.READ)
    return ok(f"+CGATT: {int(radio_on(modem))}")


@command("+CFUN", family=FAMILY)
def functionality(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CFUN=<fun>[,<rst>]: 1 full, 0 minimum, 4 radio off; ``<rst>`` 1 reboots (27.007 8.2).

    Turning the radio off takes down every PDP context (and so their connections), as the module
    does. With ``<rst>``=1 the module answers OK, then power-cycles: every setting and connection is
    lost and the boot URCs come again.
    """
    if call.form is Form.TEST:
        return ok("+CFUN: (0,1,4),(0,1)")
    if call.form is Form.READ:
        return ok(f"+CFUN: {modem.functionality}")
    require_form(call, Form.WRITE)
    at_most(call, 2)
    fun = int_arg(call, 0, 0, 4)
    if fun not in (0, 1, 4):
        raise CommandFailed(Refusal.PARAMETER)
    reset = int_arg(call, 1, 0, 1, default=0)
    if reset:
        modem.call_at(modem.now, modem.reboot)
        return ok()
    was_on = radio_on(modem)
    modem.functionality = fun
    if fun in RADIO_OFF:
        for state in modem.families.values():
            state.radio_off()
    if radio_on(modem) != was_on:
        report_registration(modem)
        if not was_on:
            # Registering again: the network sends its time (the radio family's +CTZV / +CTZE).
            for state in modem.families.values():
                state.radio_on()
    return ok()


@command("+QURCCFG", family=FAMILY)
def urc_port(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QURCCFG="urcport"[,<port>]: which port URCs go to (REFERENCE.md, seen ``"uart1"``).

    The emulator has one port, so URCs always come out of it; the setting is kept and reported.
    """
    if call.form is Form.TEST:
        return ok('+QURCCFG: "urcport",("usbat","usbmodem","uart1")')
    require_form(call, Form.WRITE)
    if str_arg(call, 0).lower() != "urcport":
        raise CommandFailed(Refusal.PARAMETER)
    if len(call.args) == 1:
        return ok(f'+QURCCFG: "urcport","{modem.settings.urc_port}"')
    port = str_arg(call, 1)
    if port not in URC_PORTS or len(call.args) > 2:
        raise CommandFailed(Refusal.PARAMETER)
    modem.settings.urc_port = port
    return ok()


@command("+CCLK", family=FAMILY)
def clock(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CCLK: the module's own clock, ``"yy/MM/dd,hh:mm:ss±zz"`` (27.007 8.15; REFERENCE.md).

    Setting it moves only the module's time; it then runs on in real time. The SSL commands check
    certificate validity against it (SSL note 1.5).
    """
    if call.form is Form.TEST:
        return ok()
    if call.form is Form.READ:
        return ok(f'+CCLK: "{modem.clock.format(modem.now)}"')
    require_form(call, Form.WRITE)
    if len(call.args) != 1:
        raise CommandFailed(Refusal.PARAMETER)
    try:
        local, zone = parse_cclk(str_arg(call, 0))
    except ValueError:
        raise CommandFailed(Refusal.PARAMETER) from None
    modem.clock.set_local(modem.now, local, zone)
    return ok()


@command("O", family=FAMILY)
def return_online(modem: "Modem", call: CommandCall) -> Reply:
    """ATO: back to transparent mode (SSL note 1.4): CONNECT, or NO CARRIER when no connection
    left transparent mode."""
    _digit_setting(call, 0)
    for state in modem.families.values():
        outcome = state.resume_online()
        if outcome is not None:
            return outcome
    return Reply(final=NO_CARRIER)
