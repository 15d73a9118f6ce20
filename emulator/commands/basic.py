"""Basic commands: identity, V.250 settings, SIM and network status, the module clock.

Answers come from the module profile (``profiles/*.toml``). Formats follow REFERENCE.md "Boot and
basics" (seen on a real module) and 3GPP TS 27.007 where REFERENCE.md is silent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulator.commands import STATE_FACTORIES
from emulator.core.clock import parse_cclk
from emulator.core.parser import CommandCall, Form
from emulator.core.registry import (
    CommandFailed,
    ParamError,
    Reply,
    command,
    int_arg,
    ok,
    require_form,
    str_arg,
)
from emulator.core.results import NO_CARRIER

if TYPE_CHECKING:
    from emulator.core.modem import Modem

FAMILY = "basic"

URC_PORTS = ("usbat", "usbmodem", "uart1")
RADIO_OFF = (0, 4)


def _at_most(call: CommandCall, count: int) -> None:
    """More parameters than the command defines is a parameter error (chosen: +CME ERROR: 50)."""
    if len(call.args) > count:
        raise ParamError()


def _digit_setting(call: CommandCall, high: int) -> int:
    """``E``, ``V``, ``&D`` ...: a missing number means 0 (V.250 5.3.1)."""
    require_form(call, Form.EXEC)
    return int_arg(call, 0, 0, high, default=0, error=CommandFailed)


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


@command("&D", family=FAMILY)
def dtr_mode(modem: "Modem", call: CommandCall) -> Reply:
    """AT&D<n>: what a DTR drop does; 1 leaves transparent mode (SSL note 1.4). Default 2."""
    modem.settings.dtr_mode = _digit_setting(call, 2)
    return ok()


@command("Z", "&F", family=FAMILY)
def restore_defaults(modem: "Modem", call: CommandCall) -> Reply:
    """ATZ / AT&F: every V.250 setting back to the profile's factory default."""
    _digit_setting(call, 0)
    modem.settings = type(modem.settings).factory(modem.profile)
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
    return ok(f"&C1 &D{s.dtr_mode} &F0 &W0 E{int(s.echo)} Q0 V{int(s.verbose)} X4 Z0 S0:0 S3:13 S4:10 S5:8 S6:2 S7:0 S8:2 S10:15")


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


@command("+GSN", "+CGSN", family=FAMILY)
def serial_number(modem: "Modem", call: CommandCall) -> Reply:
    """AT+GSN / AT+CGSN: the IMEI, bare, on one line (27.007 5.4)."""
    return _identity_line(call, modem.profile.identity.imei)


@command("+CMEE", family=FAMILY)
def error_reporting(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CMEE=<n>: 0 plain ERROR, 1 ``+CME ERROR: <code>``, 2 ``+CME ERROR: <text>`` (27.007 9.1)."""
    if call.form is Form.TEST:
        return ok("+CMEE: (0-2)")
    if call.form is Form.READ:
        return ok(f"+CMEE: {modem.settings.cmee}")
    if call.form is Form.WRITE:
        _at_most(call, 1)
        modem.settings.cmee = int_arg(call, 0, 0, 2)
        return ok()
    return ok()


@command("+CPIN", family=FAMILY)
def pin_status(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CPIN?: the emulated SIM needs no PIN (REFERENCE.md: ``+CPIN: READY``)."""
    if call.form is Form.TEST:
        return ok()
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
            _at_most(call, 1)
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
        _at_most(call, 4)
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
        _at_most(call, 1)
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
    _at_most(call, 2)
    fun = int_arg(call, 0, 0, 4)
    if fun not in (0, 1, 4):
        raise ParamError()
    reset = int_arg(call, 1, 0, 1, default=0)
    if reset:
        modem.call_at(modem.now, modem.reboot)
        return ok()
    was_on = radio_on(modem)
    modem.functionality = fun
    if fun in RADIO_OFF:
        for state in modem.network.values():
            if hasattr(state, "radio_off"):
                state.radio_off()
    if radio_on(modem) != was_on:
        report_registration(modem)
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
        raise ParamError()
    if len(call.args) == 1:
        return ok(f'+QURCCFG: "urcport","{modem.settings.urc_port}"')
    port = str_arg(call, 1)
    if port not in URC_PORTS or len(call.args) > 2:
        raise ParamError()
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
        raise ParamError()
    try:
        local, zone = parse_cclk(str_arg(call, 0))
    except ValueError:
        raise ParamError() from None
    modem.clock.set_local(modem.now, local, zone)
    return ok()


@command("O", family=FAMILY)
def return_online(modem: "Modem", call: CommandCall) -> Reply:
    """ATO: back to transparent mode (SSL note 1.4): CONNECT, or NO CARRIER when no connection
    left transparent mode."""
    _digit_setting(call, 0)
    for state in modem.network.values():
        resume = getattr(state, "resume_online", None)
        if resume is not None:
            outcome = resume()
            if outcome is not None:
                return outcome
    return Reply(final=NO_CARRIER)
