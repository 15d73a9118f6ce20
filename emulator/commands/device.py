"""The device itself and the set-up lines drivers send at start-up: AT+QSCLK, AT+QPOWD, AT+CBC,
AT+QTEMP, AT+CSCS, the SMS settings (AT+CMGF, AT+CPMS, AT+CNMI, AT+CSMP) and AT+CLAC.

Sources: Quectel's EC200x/EC800x AT commands manual, 3GPP TS 27.005 (SMS) and 27.007; values from
the profile's ``[device]``. There is no SMS service in the emulator: the SMS settings are checked,
kept and reported so that a driver's set-up succeeds, and the message stores are always empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.parser import CommandCall, Form
from ..core.registry import (
    CommandFailed,
    Family,
    FamilyState,
    Reply,
    at_most,
    command,
    family_state,
    int_arg,
    number_setting,
    ok,
    require_form,
    str_arg,
)
from ..core.results import Refusal

if TYPE_CHECKING:
    from ..core.modem import Modem

FAMILY = "device"

CHARACTER_SETS = ("GSM", "IRA", "UCS2")  # AT+CSCS (Quectel AT manual)
MESSAGE_STORES = ("SM", "ME")  # AT+CPMS: the SIM's and the module's
# AT+CNMI's five parameters and their ranges (27.005 3.4.1, the Quectel manual's values).
CNMI_RANGES = ((0, 2), (0, 3), (0, 2), (0, 2), (0, 1))


@dataclass
class DeviceSettings(FamilyState):
    """A power cycle restores every default (chosen, as for every setting; see AT&W)."""

    sleep: int = 0  # AT+QSCLK; 0 by default (Quectel AT manual)
    character_set: str = "GSM"  # AT+CSCS (27.007 5.5: GSM by default)
    sms_text_mode: int = 0  # AT+CMGF, PDU mode by default (27.005 3.2.3)
    stores: tuple[str, ...] = ("SM", "SM", "SM")  # AT+CPMS <mem1>,<mem2>,<mem3>
    new_message_indication: tuple[int, ...] = (2, 1, 0, 0, 0)  # AT+CNMI (the Quectel manual's default)
    text_parameters: tuple[int, ...] = (17, 167, 0, 0)  # AT+CSMP (27.005 3.3.2's example)


def _device_settings(modem: "Modem") -> DeviceSettings:
    return DeviceSettings()


DEVICE_FAMILY = Family("device", state=_device_settings)


def _settings(modem: "Modem") -> DeviceSettings:
    return family_state(modem, "device", DeviceSettings)


# --- power ----------------------------------------------------------------------------------------


@command("+QSCLK", family=FAMILY)
def sleep_mode(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QSCLK=<n>: 0 never sleep, 1 sleep while DTR is off (Quectel AT manual; ``=0``, ``=1`` and
    the read seen on an EC200T, REFERENCE.md "Start-up commands"). Asleep the UART is off: what the
    host sends is lost, URCs wait (RI still pulses), DTR on wakes it (REFERENCE.md "Control lines")."""
    settings = _settings(modem)
    reply, settings.sleep = number_setting(call, "+QSCLK", settings.sleep, 0, 1, "(0,1)")
    modem.lines.set_sleep_enabled(settings.sleep == 1)
    return reply


@command("+QRIR", family=FAMILY)
def restore_ri(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QRIR: the RI line back to inactive, after the ``"always"`` behaviour of AT+QCFG="urc/ri/..."
    kept it active (Quectel EC2x AT manual)."""
    if call.form is Form.TEST:
        return ok()
    require_form(call, Form.EXEC)
    modem.lines.restore_ri()
    return ok()


@command("+QPOWD", family=FAMILY)
def power_down(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QPOWD[=<n>]: <n> 0 immediate, 1 normal power down (the default); ``OK``, then the URC
    ``POWERED DOWN`` (Quectel AT manual). Then the module is off: nothing it is sent is answered
    until it is power-cycled (``ecemu ctl reboot``). chosen: POWERED DOWN follows the line's final
    result at once (the module takes about a second)."""
    if call.form is Form.TEST:
        return ok("+QPOWD: (0,1)")
    if call.form is Form.WRITE:
        if len(call.args) != 1:
            raise CommandFailed(Refusal.PARAMETER)
        int_arg(call, 0, 0, 1)
    else:
        require_form(call, Form.EXEC)
    modem.emit_urc("POWERED DOWN")  # held until the OK is out: a URC never cuts into an answer
    boot = modem.boot_count
    modem.call_at(modem.now, lambda: modem.power_off() if modem.boot_count == boot else None)
    return ok()


@command("+CBC", family=FAMILY)
def battery_charge(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CBC: ``+CBC: <bcs>,<bcl>,<voltage>``: charge status, level in percent, voltage in mV (Quectel
    AT manual), from the profile."""
    if call.form is Form.TEST:
        return ok()
    require_form(call, Form.EXEC)
    return ok("+CBC: {},{},{}".format(*modem.profile.device.battery))


@command("+QTEMP", family=FAMILY)
def temperature(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QTEMP: ``+QTEMP: <PMIC_temp>,<XO_temp>,<PA_temp>`` in degrees Celsius (the EC2x layout of
    the Quectel AT manual, doc), from the profile."""
    if call.form is Form.TEST:
        return ok()
    require_form(call, Form.EXEC)
    return ok("+QTEMP: {},{},{}".format(*modem.profile.device.temperatures))


# --- character set and SMS set-up ---------------------------------------------------------------------


@command("+CSCS", family=FAMILY)
def character_set(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CSCS="<chset>": "GSM" (the default), "IRA" or "UCS2" (27.007 5.5; Quectel AT manual).
    Kept and reported; the emulator's answers are ASCII in every one of them."""
    settings = _settings(modem)
    if call.form is Form.TEST:
        return ok("+CSCS: (" + ",".join(f'"{c}"' for c in CHARACTER_SETS) + ")")
    if call.form is Form.READ:
        return ok(f'+CSCS: "{settings.character_set}"')
    require_form(call, Form.WRITE)
    if len(call.args) != 1:
        raise CommandFailed(Refusal.PARAMETER)
    chset = str_arg(call, 0).upper()
    if chset not in CHARACTER_SETS:
        raise CommandFailed(Refusal.PARAMETER)
    settings.character_set = chset
    return ok()


@command("+CMGF", family=FAMILY)
def message_format(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CMGF=<mode>: 0 PDU, 1 text (27.005 3.2.3). Kept and reported."""
    settings = _settings(modem)
    reply, settings.sms_text_mode = number_setting(call, "+CMGF", settings.sms_text_mode, 0, 1, "(0,1)", default=0)
    return reply


@command("+CPMS", family=FAMILY)
def message_storage(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CPMS=<mem1>[,<mem2>[,<mem3>]]: the message stores, "SM" or "ME" (27.005 3.2.2). Write:
    ``+CPMS: <used1>,<total1>,<used2>,<total2>,<used3>,<total3>``; read: each store's name with
    them. Every store is empty (no SMS service); its size is the profile's ``sms_capacity``."""
    settings = _settings(modem)
    total = modem.profile.device.sms_capacity
    if call.form is Form.TEST:
        stores = "(" + ",".join(f'"{s}"' for s in MESSAGE_STORES) + ")"
        return ok(f"+CPMS: {stores},{stores},{stores}")
    if call.form is Form.READ:
        return ok("+CPMS: " + ",".join(f'"{store}",0,{total}' for store in settings.stores))
    require_form(call, Form.WRITE)
    if not 1 <= len(call.args) <= 3:
        raise CommandFailed(Refusal.PARAMETER)
    chosen = [str_arg(call, i).upper() for i in range(len(call.args))]
    if any(store not in MESSAGE_STORES for store in chosen):
        raise CommandFailed(Refusal.PARAMETER)
    settings.stores = tuple(chosen + list(settings.stores[len(chosen):]))
    return ok("+CPMS: " + ",".join(f"0,{total}" for _ in settings.stores))


@command("+CNMI", family=FAMILY)
def new_message_indications(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CNMI=[<mode>[,<mt>[,<bm>[,<ds>[,<bfr>]]]]]: how new messages are announced (27.005 3.4.1).
    Kept and reported; no message ever arrives. Parameters left out keep their values (chosen)."""
    settings = _settings(modem)
    if call.form is Form.TEST:
        return ok("+CNMI: " + ",".join(f"({low}-{high})" for low, high in CNMI_RANGES))
    if call.form is Form.READ:
        return ok("+CNMI: " + ",".join(map(str, settings.new_message_indication)))
    require_form(call, Form.WRITE, Form.EXEC)
    at_most(call, len(CNMI_RANGES))
    old = settings.new_message_indication
    settings.new_message_indication = tuple(
        int_arg(call, i, low, high, default=old[i]) for i, (low, high) in enumerate(CNMI_RANGES))
    return ok()


@command("+CSMP", family=FAMILY)
def text_mode_parameters(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CSMP=[<fo>[,<vp>[,<pid>[,<dcs>]]]]: text mode parameters, each 0-255 (27.005 3.3.2; a
    relative <vp> only). Kept and reported; parameters left out keep their values."""
    settings = _settings(modem)
    if call.form is Form.TEST:
        return ok()
    if call.form is Form.READ:
        return ok("+CSMP: " + ",".join(map(str, settings.text_parameters)))
    require_form(call, Form.WRITE, Form.EXEC)
    at_most(call, 4)
    old = settings.text_parameters
    settings.text_parameters = tuple(int_arg(call, i, 0, 255, default=old[i]) for i in range(4))
    return ok()


# --- the command list ------------------------------------------------------------------------------


def command_listing(modem: "Modem") -> list[str]:
    """Every command the emulator implements, as a host types it: ``AT+CSQ``, ``ATE``, ``AT&D``,
    ``ATS3``; sorted."""
    return sorted(f"AT{name}" for name in modem.commands.commands)


@command("+CLAC", family=FAMILY)
def list_commands(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CLAC: one line per available command (27.007 8.37). The list is made from the command table,
    so it holds exactly the commands the emulator implements."""
    if call.form is Form.TEST:
        return ok()
    require_form(call, Form.EXEC)
    return ok(*command_listing(modem))
