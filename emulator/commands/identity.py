"""The SIM and the module's identity beyond ATI: AT+QCCID, AT+CCID, AT+CIMI, AT+QGMR, AT+QINISTAT,
AT+QSIMSTAT, AT+QSIMDET, AT+CLCK and AT+CPWD.

Sources: Quectel's EC200x/EC800x AT commands manual (the Q commands) and 3GPP TS 27.007 (the rest);
REFERENCE.md "Start-up commands" for what was seen. The emulated SIM is always
present, needs no PIN and never changes; its ICCID and IMSI come from the profile.

AT+CPIN and AT+CGSN stay with the basic commands (emulator/commands/basic.py).
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

FAMILY = "identity"


# AT+QINISTAT's bits and the boot URC that marks each one done (Quectel AT manual: 1 CPIN READY,
# 2 SMS DONE, 4 PB DONE; 7 all initialised).
INIT_STEPS = ((1, "+CPIN: READY"), (2, "+QIND: SMS DONE"), (4, "+QIND: PB DONE"))
# The facilities AT+CLCK knows (27.007 7.4; Quectel AT manual): the SIM PIN, call barrings, fixed
# dialling, the personalisations.
LOCK_FACILITIES = ("SC", "AO", "OI", "OX", "AI", "IR", "AB", "AG", "AC", "FD", "PF", "PN", "PU", "PP", "PC")
# AT+CPWD's facilities and the longest password of each (Quectel AT manual's test form).
PASSWORD_FACILITIES = (("AB", 4), ("AC", 4), ("AG", 4), ("AI", 4), ("AO", 4), ("IR", 4), ("OI", 4),
                       ("OX", 4), ("SC", 8), ("P2", 8))


@dataclass
class SimSettings(FamilyState):
    """What the host sets about SIM reporting; a power cycle restores the defaults (chosen)."""

    boot_time: float
    insert_report: int = 0  # AT+QSIMSTAT=<enable>
    hot_plug: tuple[int, int] = (0, 0)  # AT+QSIMDET=<enable>,<insert_level>; seen: AT+QSIMDET=0,0 OK


def _sim_settings(modem: "Modem") -> SimSettings:
    return SimSettings(boot_time=modem.now)


SIM_FAMILY = Family("sim", state=_sim_settings)


def _sim(modem: "Modem") -> SimSettings:
    return family_state(modem, "sim", SimSettings)


def _exec_only(call: CommandCall, line: str) -> Reply:
    """A read-only execution command: the test form answers OK, every other form ERROR."""
    if call.form is Form.TEST:
        return ok()
    require_form(call, Form.EXEC)
    return ok(line)


@command("+QCCID", family=FAMILY)
def sim_iccid(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QCCID: the SIM's ICCID, ``+QCCID: <ICCID>`` (Quectel AT manual)."""
    return _exec_only(call, f"+QCCID: {modem.profile.identity.iccid}")


@command("+CCID", family=FAMILY)
def sim_iccid_3gpp_style(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CCID: the ICCID as ``+CCID: <ICCID>`` (chosen: the same value as AT+QCCID, in the form
    generic drivers read it)."""
    return _exec_only(call, f"+CCID: {modem.profile.identity.iccid}")


@command("+CIMI", family=FAMILY)
def subscriber_identity(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CIMI: the IMSI, bare, on one line (27.007 5.6)."""
    return _exec_only(call, modem.profile.identity.imsi)


@command("+QGMR", family=FAMILY)
def full_revision(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QGMR: the revision with its build number, ``<revision>_<build>`` (Quectel AT manual)."""
    ident = modem.profile.identity
    return _exec_only(call, f"{ident.revision}_{ident.build}")


@command("+QINISTAT", family=FAMILY)
def sim_init_status(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QINISTAT: ``+QINISTAT: <status>``, the sum of 1 (CPIN READY), 2 (SMS DONE) and 4 (PB DONE)
    (Quectel AT manual). Each step counts once the boot URC that announces it is due, so a host
    polling during boot sees 0, 1, 3, then 7; a step whose URC the profile does not list counts from
    power-on (chosen)."""
    if call.form is Form.TEST:
        return ok("+QINISTAT: (0-7)")
    require_form(call, Form.EXEC)
    boot_time = _sim(modem).boot_time
    # The same sum as the boot URC's timer (Modem.power_on), so both agree to the last bit.
    due = {urc.text: boot_time + urc.after_ms / 1000.0 for urc in modem.profile.boot_urcs}
    status = sum(bit for bit, text in INIT_STEPS if due.get(text, boot_time) <= modem.now)
    return ok(f"+QINISTAT: {status}")


@command("+QSIMSTAT", family=FAMILY)
def sim_inserted_status(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QSIMSTAT=<enable> / AT+QSIMSTAT?: ``+QSIMSTAT: <enable>,<inserted_status>`` (Quectel AT
    manual). The SIM is always inserted (1); the emulated SIM is never pulled, so the report that
    <enable> 1 asks for never comes."""
    sim = _sim(modem)
    if call.form is Form.READ:
        return ok(f"+QSIMSTAT: {sim.insert_report},1")
    reply, sim.insert_report = number_setting(call, "+QSIMSTAT", sim.insert_report, 0, 1, "(0,1)")
    return reply


@command("+QSIMDET", family=FAMILY)
def sim_hot_plug(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QSIMDET=<enable>,<insert_level> / AT+QSIMDET?: SIM hot-plug detection (Quectel AT manual;
    ``AT+QSIMDET=0,0`` answers OK on an EC200T, REFERENCE.md "Start-up commands"). Kept and reported; off by default
    (chosen)."""
    sim = _sim(modem)
    if call.form is Form.TEST:
        return ok("+QSIMDET: (0,1),(0,1)")
    if call.form is Form.READ:
        return ok("+QSIMDET: {},{}".format(*sim.hot_plug))
    require_form(call, Form.WRITE)
    if len(call.args) != 2:
        raise CommandFailed(Refusal.PARAMETER)
    sim.hot_plug = (int_arg(call, 0, 0, 1), int_arg(call, 1, 0, 1))
    return ok()


@command("+CLCK", family=FAMILY)
def facility_lock(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CLCK=<fac>,<mode>[,<passwd>[,<class>]] (27.007 7.4). <mode> 2 queries: every lock of the
    emulated SIM is off, ``+CLCK: 0``. Locking or unlocking answers ``+CME ERROR: 3`` (chosen: the
    emulated SIM's locks cannot be changed, as a SIM without a known PIN would refuse)."""
    if call.form is Form.TEST:
        return ok("+CLCK: (" + ",".join(f'"{f}"' for f in LOCK_FACILITIES) + ")")
    require_form(call, Form.WRITE)
    if not 2 <= len(call.args) <= 4:
        raise CommandFailed(Refusal.PARAMETER)
    facility = str_arg(call, 0).upper()
    mode = int_arg(call, 1, 0, 2)
    if facility not in LOCK_FACILITIES:
        raise CommandFailed(Refusal.PARAMETER)
    if mode == 2:
        return ok("+CLCK: 0")
    str_arg(call, 2)
    raise CommandFailed(CmeCode.NOT_ALLOWED)


@command("+CPWD", family=FAMILY)
def change_password(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CPWD=<fac>,<oldpwd>,<newpwd> (27.007 7.5): the test form lists the facilities with their
    longest password; changing one answers ``+CME ERROR: 3`` (chosen, as AT+CLCK)."""
    if call.form is Form.TEST:
        return ok("+CPWD: " + ",".join(f'("{f}",{n})' for f, n in PASSWORD_FACILITIES))
    require_form(call, Form.WRITE)
    if len(call.args) != 3:
        raise CommandFailed(Refusal.PARAMETER)
    if str_arg(call, 0).upper() not in dict(PASSWORD_FACILITIES):
        raise CommandFailed(Refusal.PARAMETER)
    str_arg(call, 1)
    str_arg(call, 2)
    raise CommandFailed(CmeCode.NOT_ALLOWED)
