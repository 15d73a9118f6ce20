"""The radio and the network it is registered on: AT+QNWINFO, AT+QCSQ, AT+CESQ, AT+QSPN,
AT+QENG="servingcell", AT+CEER, AT+QLTS, AT+CTZR, AT+CTZU (and the +CTZV / +CTZE URCs), AT+CPSMS,
AT+CEDRXS and AT+QCFG.

Sources: Quectel's EC200x/EC800x AT commands manual for the Q commands, 3GPP TS 27.007 for the
rest; where both are silent the formats of the sibling EC2x modules (doc) or a choice, marked.
Every value comes from the profile's ``[network]``; with the radio off (AT+CFUN=0/4) the module
reports no service. CSQ-derived values follow ``modem.signal``, so the ``signal`` fault moves them.

The network's time: the emulated network sends its time (NITZ) when the module registers, that is
when AT+CFUN=1 turns the radio back on (chosen: the only registration the emulated network makes
after boot; at boot AT+CTZR is still 0, so nothing is shown). The time is the module clock's, in
its zone: the clock is set as a network time update would set it (README).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from .basic import radio_on
from .pdp import PdpState
from ..core.control_lines import RiBehaviour
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
from ..core.results import CmeCode, Refusal

if TYPE_CHECKING:
    from ..core.modem import Modem

FAMILY = "radio"

REGISTERED = (1, 5)
EUTRAN_ACT_TYPE = 4  # 27.007 +CEDRXS <AcT-type>: E-UTRAN (WB-S1 mode)
TIMER_BITS = re.compile(r"[01]{8}")
EDRX_BITS = re.compile(r"[01]{4}")


# --- AT+QCFG settings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class QcfgKey:
    """One AT+QCFG setting: its test-form ranges and a check for each value it takes."""

    ranges: str  # as the test form lists them, after the key
    values: tuple  # one checker per value: a (low, high) range, a tuple of strings, or "hex"/"digits"
    effect: bool = False  # takes a trailing <effect> 0/1 (applied at once or after a reboot)


def _int(low: int, high: int):
    return ("int", low, high)


QCFG_KEYS: dict[str, QcfgKey] = {
    # Quectel AT manual (EC2x/EC200x); the test-form ranges are the EC2x ones (doc, seen on an EG25-G),
    # trimmed to LTE; "band" has the EC200T's two masks (GSM, LTE), its ranges chosen.
    "nwscanmode": QcfgKey("(0-3),(0,1)", (_int(0, 3),), effect=True),
    "nwscanseq": QcfgKey("(00-0102030405),(0,1)", ("digits",), effect=True),
    "band": QcfgKey("(0-F),(0-7FFFFFFFFFFFFFFFF),(0,1)", ("hex", "hex"), effect=True),
    "roamservice": QcfgKey("(1,2,255),(0,1)", (("1", "2", "255"),), effect=True),
    "servicedomain": QcfgKey("(0,1,2),(0,1)", (_int(0, 2),), effect=True),
    "gprsattach": QcfgKey("(0,1)", (_int(0, 1),)),
    "urc/ri/ring": QcfgKey('("off","pulse","always","auto","wave"),(1-2000),(1-10000),(1-10000),("off","on"),(1-5)',
                           (("off", "pulse", "always", "auto", "wave"), _int(1, 2000), _int(1, 10000),
                            _int(1, 10000), ("off", "on"), _int(1, 5))),
    "urc/ri/smsincoming": QcfgKey('("off","pulse","always"),(1-2000),(1-5)',
                                  (("off", "pulse", "always"), _int(1, 2000), _int(1, 5))),
    "urc/ri/other": QcfgKey('("off","pulse"),(1-2000),(1-5)', (("off", "pulse"), _int(1, 2000), _int(1, 5))),
    "risignaltype": QcfgKey('("respective","physical")', (("respective", "physical"),)),
    "urc/delay": QcfgKey("(0,1)", (_int(0, 1),)),
    "urc/cache": QcfgKey("(0,1)", (_int(0, 1),)),
    "apready": QcfgKey("(0,1),(0,1),(100-3000)", (_int(0, 1), _int(0, 1), _int(100, 3000))),
}

# chosen: the factory values of the EC2x manual; "band" is the profile's.
QCFG_DEFAULTS: dict[str, tuple[str, ...]] = {
    "nwscanmode": ("0",),
    "nwscanseq": ("00",),
    "roamservice": ("255",),
    "servicedomain": ("2",),
    "gprsattach": ("1",),
    "urc/ri/ring": ('"pulse"', "120", "1000", "5000", '"off"', "1"),
    "urc/ri/smsincoming": ('"pulse"', "120", "1"),
    "urc/ri/other": ('"pulse"', "120", "1"),
    "risignaltype": ('"respective"',),
    "urc/delay": ("0",),
    "urc/cache": ("0",),
    "apready": ("0", "0", "500"),
}


def _band_defaults(modem: "Modem") -> tuple[str, str]:
    net = modem.profile.network
    lte_mask = sum(1 << (band - 1) for band in net.lte_bands)
    return (f"{net.gsm_band_mask:#x}", f"{lte_mask:#x}")


@dataclass
class RadioSettings(FamilyState):
    """What the host sets for the radio family; a power cycle restores every default (chosen, as for
    every setting: the emulator keeps nothing across power cycles, see AT&W)."""

    modem: "Modem"
    time_zone_reporting: int = 0  # AT+CTZR
    time_zone_update: int = 0  # AT+CTZU; 0 until the host sets it (the Quectel manual's example reads 0)
    psm: tuple[int, str, str, str, str] = (0, "", "", "", "")  # AT+CPSMS
    edrx: dict[int, tuple[int, str]] = field(default_factory=dict)  # AT+CEDRXS: AcT -> (mode, value)
    qcfg: dict[str, tuple[str, ...]] = field(default_factory=dict)
    time_synced: bool = False  # the network has sent its time (at registration)

    def __post_init__(self) -> None:
        self.qcfg = dict(QCFG_DEFAULTS)
        self.qcfg["band"] = _band_defaults(self.modem)
        self.time_synced = in_service(self.modem)

    def radio_off(self) -> None:
        """AT+CFUN=0/4: nothing to forget; the time stays as the network gave it."""

    def radio_on(self) -> None:
        """AT+CFUN=1 after 0/4: registered again, the network sends its time: ``+CTZV: <tz>`` with
        AT+CTZR=1, ``+CTZE: <tz>,<dst>,<time>`` with 2, e.g. ``+CTZE: "+32",0,"2017/11/04,06:51:13"``
        (27.007 8.41; Quectel AT manual: <tz> "±zz" in quarter hours, <time> the local time).
        chosen: +CTZV's <tz> quoted as in +CTZE."""
        modem = self.modem
        if not in_service(modem):
            return
        self.time_synced = True
        zone = _zone(modem.clock.zone_quarters)
        if self.time_zone_reporting == 1:
            modem.emit_urc(f'+CTZV: "{zone}"')
        elif self.time_zone_reporting == 2:
            local = modem.clock.utc(modem.now) + timedelta(minutes=15 * modem.clock.zone_quarters)
            modem.emit_urc(f'+CTZE: "{zone}",0,"{local:%Y/%m/%d,%H:%M:%S}"')


RADIO_FAMILY = Family("radio", state=RadioSettings)


def _settings(modem: "Modem") -> RadioSettings:
    return family_state(modem, "radio", RadioSettings)


def in_service(modem: "Modem") -> bool:
    return radio_on(modem) and modem.profile.network.registration in REGISTERED


def _zone(quarters: int) -> str:
    return f"{'+' if quarters >= 0 else '-'}{abs(quarters):02d}"


def _rssi_dbm(modem: "Modem") -> int:
    """The RSSI AT+CSQ reports, in dBm (27.007 8.5: 0 is -113 dBm, each step 2 dB)."""
    rssi = modem.signal[0]
    return -113 + 2 * rssi if rssi != 99 else -113


# --- network information --------------------------------------------------------------------------


@command("+QNWINFO", family=FAMILY)
def network_info(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QNWINFO: ``+QNWINFO: <AcT>,<oper>,<band>,<channel>``, e.g. ``"FDD LTE","46000","LTE BAND
    3",1650`` (Quectel AT manual); ``+QNWINFO: No Service`` without service (Quectel AT manual)."""
    if call.form is Form.TEST:
        return ok()
    require_form(call, Form.EXEC)
    net = modem.profile.network
    if not in_service(modem):
        return ok("+QNWINFO: No Service")
    return ok(f'+QNWINFO: "{net.duplex} LTE","{net.mcc_mnc}","LTE BAND {net.band}",{net.earfcn}')


@command("+QCSQ", family=FAMILY)
def extended_signal(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QCSQ: ``+QCSQ: "LTE",<rssi>,<rsrp>,<sinr>,<rsrq>`` (Quectel AT manual); <sinr> in fifths
    of a dB from -20 dB (0-250), as the manual gives it. ``+QCSQ: "NOSERVICE"`` without service."""
    if call.form is Form.TEST:
        return ok('+QCSQ: ("NOSERVICE","LTE")')
    require_form(call, Form.EXEC)
    if not in_service(modem) or modem.signal[0] == 99:
        return ok('+QCSQ: "NOSERVICE"')
    net = modem.profile.network
    sinr = max(0, min(250, (net.sinr + 20) * 5))
    return ok(f'+QCSQ: "LTE",{_rssi_dbm(modem)},{net.rsrp},{sinr},{net.rsrq}')


@command("+CESQ", family=FAMILY)
def extended_signal_quality(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CESQ: ``+CESQ: <rxlev>,<ber>,<rscp>,<ecno>,<rsrq>,<rsrp>`` (27.007 8.69). On LTE the GSM
    and UMTS values read "not known" (99, 99, 255, 255); <rsrq> 0-34 in half dB from -19.5 dB and
    <rsrp> 0-97 in dB from -140 dBm; 255 each without service."""
    if call.form is Form.TEST:
        return ok("+CESQ: (0-63,99),(0-7,99),(0-96,255),(0-49,255),(0-34,255),(0-97,255)")
    require_form(call, Form.EXEC)
    rsrq = rsrp = 255
    if in_service(modem) and modem.signal[0] != 99:
        net = modem.profile.network
        rsrq = max(0, min(34, int((net.rsrq + 19.5) * 2) + 1))
        rsrp = max(0, min(97, net.rsrp + 141))
    return ok(f"+CESQ: 99,99,255,255,{rsrq},{rsrp}")


@command("+QSPN", family=FAMILY)
def service_provider(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QSPN? (the read form of the EC2x-family AT commands manual, which TinyGSM's Quectel
    driver sends) and AT+QSPN: ``+QSPN: <FNN>,<SNN>,<SPN>,<alphabet>,<RPLMN>``: the network's
    full and short names, the SIM's provider name, 0 (GSM alphabet), the registered PLMN. Without
    service ``+CME ERROR: 30`` (chosen). The bare form answers the same (chosen: the manuals of
    the family differ on which form they list)."""
    if call.form is Form.TEST:
        return ok()
    require_form(call, Form.READ, Form.EXEC)
    if not in_service(modem):
        raise CommandFailed(CmeCode.NO_NETWORK_SERVICE)
    net = modem.profile.network
    return ok(f'+QSPN: "{net.operator}","{net.operator_short}","{net.spn}",0,"{net.mcc_mnc}"')


@command("+QENG", family=FAMILY)
def engineering_mode(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QENG="servingcell": the serving cell (Quectel AT manual), for LTE ``+QENG: "servingcell",
    <state>,"LTE",<is_tdd>,<MCC>,<MNC>,<cellID>,<PCID>,<earfcn>,<freq_band_ind>,<UL_bandwidth>,
    <DL_bandwidth>,<TAC>,<RSRP>,<RSRQ>,<RSSI>,<SINR>,<srxlev>`` with <SINR> in dB; <state>
    "CONNECT" while a PDP context is active, else "NOCONN" (chosen); ``+QENG: "servingcell","SEARCH"``
    without service (Quectel AT manual).
    AT+QENG="neighbourcell" lists none (chosen: the emulated network has one cell)."""
    if call.form is Form.TEST:
        return ok('+QENG: ("servingcell","neighbourcell")')
    require_form(call, Form.WRITE)
    if len(call.args) != 1:
        raise CommandFailed(Refusal.PARAMETER)
    kind = str_arg(call, 0).lower()
    if kind == "neighbourcell":
        return ok()
    if kind != "servingcell":
        raise CommandFailed(Refusal.PARAMETER)
    if not in_service(modem):
        return ok('+QENG: "servingcell","SEARCH"')
    net = modem.profile.network
    pdp = modem.families.get("pdp")
    state = "CONNECT" if isinstance(pdp, PdpState) and pdp.active else "NOCONN"
    mcc, mnc = net.mcc_mnc[:3], net.mcc_mnc[3:]
    cell = net.cell_id.lstrip("0") or "0"
    return ok(f'+QENG: "servingcell","{state}","LTE","{net.duplex}",{mcc},{mnc},{cell},{net.pci},'
              f"{net.earfcn},{net.band},{net.bandwidth},{net.bandwidth},{net.tac},{net.rsrp},{net.rsrq},"
              f"{_rssi_dbm(modem)},{net.sinr},{net.srxlev}")


@command("+CEER", family=FAMILY)
def extended_error_report(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CEER: the reason of the last failed call or PDP activation (27.007 6.10). The emulated
    network never fails one: ``+CEER: "No cause information available"`` (chosen text)."""
    if call.form is Form.TEST:
        return ok()
    require_form(call, Form.EXEC)
    return ok('+CEER: "No cause information available"')


# --- the network's time -----------------------------------------------------------------------------


@command("+QLTS", family=FAMILY)
def network_time(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QLTS[=<mode>]: ``+QLTS: "<yyyy/MM/dd,hh:mm:ss>±<zz>,<dst>"`` (Quectel AT manual). <mode> 0
    (the default) the time the network last sent, 1 the current UTC, 2 the current local time; the
    network's time is the module clock's (see the module docstring), so 0 and 1 read the same.
    ``+QLTS: ""`` while the network has sent no time (chosen)."""
    if call.form is Form.TEST:
        return ok("+QLTS: (0-2)")
    mode = 0
    if call.form is Form.WRITE:
        if len(call.args) != 1:
            raise CommandFailed(Refusal.PARAMETER)
        mode = int_arg(call, 0, 0, 2)
    else:
        require_form(call, Form.EXEC)
    if not _settings(modem).time_synced:
        return ok('+QLTS: ""')
    clock = modem.clock
    shown = clock.utc(modem.now)
    if mode == 2:
        shown += timedelta(minutes=15 * clock.zone_quarters)
    return ok(f'+QLTS: "{shown:%Y/%m/%d,%H:%M:%S}{_zone(clock.zone_quarters)},0"')


@command("+CTZR", family=FAMILY)
def time_zone_reporting(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CTZR=<reporting>: 0 no URC, 1 ``+CTZV``, 2 ``+CTZE`` on a time zone change (27.007 8.41;
    the Quectel manual's range 0-2)."""
    settings = _settings(modem)
    reply, settings.time_zone_reporting = number_setting(call, "+CTZR", settings.time_zone_reporting, 0, 2,
                                                         "(0-2)")
    return reply


@command("+CTZU", family=FAMILY)
def time_zone_update(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CTZU=<enable>: automatic time zone update from the network, 0 off, 1 on, 3 on and the
    local time kept in the RTC (27.007 8.40; Quectel AT manual's values and its ``+CTZU: 0`` before
    any write). Kept and reported: the module clock already keeps the network's time (README)."""
    settings = _settings(modem)
    if call.form is Form.TEST:
        return ok("+CTZU: (0,1,3)")
    if call.form is Form.READ:
        return ok(f"+CTZU: {settings.time_zone_update}")
    require_form(call, Form.WRITE)
    if len(call.args) != 1:
        raise CommandFailed(Refusal.PARAMETER)
    value = int_arg(call, 0, 0, 3)
    if value == 2:
        raise CommandFailed(Refusal.PARAMETER)
    settings.time_zone_update = value
    return ok()


# --- power saving -------------------------------------------------------------------------------------


def _optional_bits(call: CommandCall, index: int, pattern: re.Pattern[str], default: str) -> str:
    if index >= len(call.args) or call.args[index] is None:
        return default
    value = str_arg(call, index)
    if not pattern.fullmatch(value):
        raise CommandFailed(Refusal.PARAMETER)
    return value


@command("+CPSMS", family=FAMILY)
def power_saving_mode(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CPSMS=[<mode>[,<RAU>[,<GPRS-READY>[,<TAU>[,<Active-Time>]]]]] (27.007 7.38): the timers as
    8-bit strings. Read: ``+CPSMS: <mode>,[<RAU>],[<GPRS-READY>],[<TAU>],[<Active-Time>]``, the ones
    never set left empty. Kept and reported; the emulated module never sleeps. AT+CPSMS=2 disables
    and forgets the timers (27.007)."""
    settings = _settings(modem)
    if call.form is Form.TEST:
        bits = '("00000000"-"11111111")'
        return ok(f"+CPSMS: (0-2),{bits},{bits},{bits},{bits}")
    if call.form is Form.READ:
        mode, *timers = settings.psm
        return ok(f"+CPSMS: {mode}," + ",".join(f'"{t}"' if t else "" for t in timers))
    require_form(call, Form.WRITE, Form.EXEC)
    at_most(call, 5)
    mode = int_arg(call, 0, 0, 2, default=0)
    if mode == 2:
        settings.psm = (0, "", "", "", "")
        return ok()
    old = settings.psm
    new = [_optional_bits(call, i, TIMER_BITS, str(old[i])) for i in range(1, 5)]
    settings.psm = (mode, new[0], new[1], new[2], new[3])
    return ok()


@command("+CEDRXS", family=FAMILY)
def edrx_setting(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CEDRXS=[<mode>,[<AcT-type>[,<Requested_eDRX_value>]]] (27.007 7.40): <mode> 0 off, 1 on, 2
    on with the +CEDRXP URC, 3 off and back to the default; <AcT-type> 4 (E-UTRAN); the value a
    4-bit string, "0000" by default (chosen). Read: ``+CEDRXS: <AcT-type>,"<value>"`` for each AcT
    with eDRX on. Kept and reported; the emulated network never changes eDRX, so no URC comes."""
    settings = _settings(modem)
    if call.form is Form.TEST:
        return ok(f'+CEDRXS: (0-3),({EUTRAN_ACT_TYPE}),("0000"-"1111")')
    if call.form is Form.READ:
        return ok(*(f'+CEDRXS: {act},"{value}"' for act, (mode, value) in sorted(settings.edrx.items())
                    if mode in (1, 2)))
    require_form(call, Form.WRITE, Form.EXEC)
    at_most(call, 3)
    mode = int_arg(call, 0, 0, 3, default=0)
    act = int_arg(call, 1, EUTRAN_ACT_TYPE, EUTRAN_ACT_TYPE, default=EUTRAN_ACT_TYPE)
    if mode == 3:
        settings.edrx.pop(act, None)
        return ok()
    old_value = settings.edrx.get(act, (0, "0000"))[1]
    settings.edrx[act] = (mode, _optional_bits(call, 2, EDRX_BITS, old_value))
    return ok()


# --- AT+QCFG ---------------------------------------------------------------------------------------


def _qcfg_value(call: CommandCall, index: int, check) -> str:
    """One AT+QCFG value as the read form shows it (strings quoted, numbers bare, masks in hex)."""
    arg = call.args[index]
    if arg is None:
        raise CommandFailed(Refusal.PARAMETER)
    if isinstance(check, tuple) and check and check[0] == "int":
        return str(int_arg(call, index, check[1], check[2]))
    if check == "hex":
        text = arg.text.lower()
        digits = text[2:] if text.startswith("0x") else text
        if arg.quoted or not digits or any(c not in "0123456789abcdef" for c in digits) or len(digits) > 20:
            raise CommandFailed(Refusal.PARAMETER)
        return f"{int(digits, 16):#x}"
    if check == "digits":
        if not (arg.text.isascii() and arg.text.isdigit()) or len(arg.text) > 10:
            raise CommandFailed(Refusal.PARAMETER)
        return arg.text
    # a fixed set of words; strings are quoted in the read form, numbers are not
    if arg.text.lower() not in check:
        raise CommandFailed(Refusal.PARAMETER)
    return f'"{arg.text.lower()}"' if arg.quoted else arg.text


@command("+QCFG", family=FAMILY)
def extended_configuration(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QCFG="<key>"[,<value>...]: the module's extended settings (Quectel AT manual). With the key
    alone the read form ``+QCFG: "<key>",<values>``; with values, checked and kept (an optional
    trailing <effect> 0/1 is accepted where the manual has one). ``AT+QCFG="band"`` reads the
    profile's masks in hex, ``+QCFG: "band",<gsm>,<lte>`` (seen on an EC200T:
    ``+QCFG: "band",0x93,0x1a0080800c5``). A key the emulator does not know (the LPWA modules'
    "iotopmode", say) answers ERROR (chosen: as for an unknown command)."""
    settings = _settings(modem)
    if call.form is Form.TEST:
        return ok(*(f'+QCFG: "{name}",{key.ranges}' for name, key in QCFG_KEYS.items()))
    require_form(call, Form.WRITE)
    name = str_arg(call, 0, refusal=Refusal.PLAIN).lower()
    key = QCFG_KEYS.get(name)
    if key is None:
        raise CommandFailed(Refusal.PLAIN)
    values = call.args[1:]
    if not values:
        return ok(f'+QCFG: "{name}",' + ",".join(settings.qcfg[name]))
    count = len(key.values)
    if key.effect:
        if len(values) not in (count, count + 1):
            raise CommandFailed(Refusal.PARAMETER)
        if len(values) == count + 1:
            int_arg(call, 1 + count, 0, 1)
    elif len(values) > count:
        raise CommandFailed(Refusal.PARAMETER)
    # Values left out at the end keep what they were (the manual's nested brackets).
    given = tuple(_qcfg_value(call, 1 + i, check) for i, check in enumerate(key.values[:len(values)]))
    settings.qcfg[name] = given + settings.qcfg[name][len(given):]
    if name.startswith("urc/ri/"):
        _configure_ri(modem, name.removeprefix("urc/ri/"), settings.qcfg[name])
    return ok()


# Where <pulsecount> is among each "urc/ri/..." key's values (the ring key has three durations first).
_PULSE_COUNT_AT = {"ring": 5, "smsincoming": 2, "other": 2}


def _configure_ri(modem: "Modem", category: str, values: tuple[str, ...]) -> None:
    """The RI line's behaviour for a category of URCs (REFERENCE.md "Control lines"): ``"wave"``
    (RING only) pulses for its <activeduration>."""
    kind = values[0].strip('"')
    width = int(values[2] if kind == "wave" else values[1])
    modem.lines.ri_behaviour[category] = RiBehaviour(kind, width, int(values[_PULSE_COUNT_AT[category]]))
