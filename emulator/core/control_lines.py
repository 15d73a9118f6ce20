"""The module's control lines, as the EC200x documents and V.250 define them (REFERENCE.md
"Control lines"). Sans-IO: each change is a ``LineLevel`` record for the shell (which drives a
device's pins, RFC 2217's modem state or the control interface's view) and an observation for
the trace; times are the modem's.

Outputs, driven by the module:

- RI: inactive at rest; a URC pulses it as ``AT+QCFG="urc/ri/ring"`` (RING), ``"urc/ri/smsincoming"``
  (+CMTI, +CMT) or ``"urc/ri/other"`` (every other URC) say: ``"pulse"`` gives ``<pulsecount>``
  pulses of ``<pulseduration>`` ms, ``"always"`` keeps it active until AT+QRIR, ``"off"`` nothing.
- DCD: with AT&C0 always on; with AT&C1 on while a data connection has the port (transparent mode,
  or a PPP call until it ends).
- CTS: on; with AT+IFC=2,2 off while the module's input buffer is full (the host must wait).
- DSR: on while the module is powered.

Inputs, driven by the host: DTR (AT&D: what a drop does in data mode; AT+QSCLK=1: the module
sleeps while it is off) and RTS (with AT+IFC=2,2 the module sends nothing while it is off).

These are the port's: its channel's AT&C, AT&D and AT+IFC, whichever channel is in hand. Under
AT+CMUX each DLC has V.24 signals of its own in MSC messages (``channel.py``): its DV follows its
own AT&C and data state, and its IC pulses with RI for a URC the DLC carries; the physical DCD
shows no data connection for the multiplexer itself (REFERENCE.md "CMUX").
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from .channel import Channel
from .lifecycle import Transitions
from .settings import Settings
from .timers import Scheduler, Timer
from .uart import LineLevel, PortChange, TransmitHold

log = logging.getLogger("ecemu.core.modem")  # the messages hosts' logs know

RI_CATEGORIES = ("ring", "smsincoming", "other")
# The URCs AT+QCFG="urc/ri/smsincoming" governs (27.005 3.4.1's new message indications).
SMS_URCS = (b"+CMTI:", b"+CMT:", b"+CDS:", b"+CDSI:", b"+CBM:")


@dataclass(frozen=True)
class RiBehaviour:
    """One category's RI behaviour (AT+QCFG="urc/ri/..."): ``kind`` "off", "pulse", "always" (and
    for RING "auto" and "wave"), the pulse width and count."""

    kind: str = "pulse"
    width_ms: int = 120  # <pulseduration>: 120 ms by default (Quectel AT manual)
    count: int = 1  # <pulsecount>


def ri_category(first_line: bytes) -> str:
    if first_line.startswith(b"RING"):
        return "ring"
    if first_line.startswith(SMS_URCS):
        return "smsincoming"
    return "other"


class LinesState(enum.Enum):
    """Without power every output is off; asleep the UART is off too."""

    OFF = "off"
    AWAKE = "awake"
    ASLEEP = "asleep"  # AT+QSCLK=1, DTR off and nothing to do (``maybe_sleep``) until DTR is on again


LINES_STATES = Transitions("control lines", {
    (LinesState.OFF, "power_on"): LinesState.AWAKE,
    (LinesState.AWAKE, "sleep"): LinesState.ASLEEP,
    (LinesState.ASLEEP, "wake"): LinesState.AWAKE,
    **{(state, "power_off"): LinesState.OFF for state in LinesState},  # a power cycle from anywhere
})
OFF, AWAKE, ASLEEP = LinesState.OFF, LinesState.AWAKE, LinesState.ASLEEP


class LinesModule(Scheduler, Protocol):
    """What the control lines need of the module (``Modem``): the host's lines, the port's
    settings and data state, its channels, and where the lines' changes go."""

    @property
    def dtr(self) -> bool: ...

    @property
    def rts(self) -> bool: ...

    @property
    def multiplexed(self) -> bool: ...

    @property
    def port(self) -> Channel: ...

    @property
    def channels(self) -> Mapping[int, Channel]: ...

    @property
    def uart_settings(self) -> Settings: ...

    @property
    def module_idle(self) -> bool: ...

    @property
    def booted(self) -> bool: ...

    def observe(self, kind: str, **details: Any) -> None: ...

    def port_change(self, change: PortChange) -> None: ...

    def flush_every_channel(self) -> None: ...


class ControlLines:
    """The lines of one module, for its whole life (a power cycle resets the outputs)."""

    def __init__(self, module: LinesModule):
        self.module = module
        self.state = OFF  # changed only through LINES_STATES (``_to``)
        self.asleep = False  # ``state is ASLEEP``, read on every command line; ``_to`` writes both
        self.outputs = {"ri": False, "dcd": False, "cts": False, "dsr": False}  # not powered yet
        self.ri_behaviour = {category: RiBehaviour() for category in RI_CATEGORIES}
        self.sleep_enabled = False  # AT+QSCLK=1
        self.input_full = False  # the shell says the module's input buffer is full (``set_input_full``)
        self.transmit_held = False  # RTS off with AT+IFC=2,2: nothing goes to the host
        self.ri_pulses = 0  # RI pulses begun since start (the control interface counts on it)
        self.ri_timers: list[Timer] = []
        self.ri_channel: Channel | None = None  # the DLC whose URC RI pulses for (IC in its MSC)
        self.lost_asleep = 0  # host bytes lost while asleep, since the module last fell asleep

    def _to(self, event: str) -> None:
        self.state = LINES_STATES.next(self.state, event)
        self.asleep = self.state is ASLEEP

    # --- outputs -----------------------------------------------------------------------------

    def _set(self, line: str, active: bool) -> None:
        if self.outputs[line] == active:
            return
        self.outputs[line] = active
        self._observe(line, active, "module")
        self.module.port_change(LineLevel(line, active))

    def _observe(self, line: str, active: bool, by: str) -> None:
        module = self.module
        if module.multiplexed:
            module.observe("line", name=line, active=active, by=by, channel=module.port.number)  # the port's
        else:
            module.observe("line", name=line, active=active, by=by)

    def power_on(self) -> None:
        """The module powers on: DSR and CTS on, DCD per AT&C, RI at rest, awake."""
        self._to("power_on")
        self._stop_ri()
        self.ri_behaviour = {category: RiBehaviour() for category in RI_CATEGORIES}  # AT+QCFG's defaults
        self.sleep_enabled = False
        self.lost_asleep = 0
        self._set("dsr", True)
        self.refresh()

    def power_off(self) -> None:
        """Powered down (or about to power up again): every output off, RI at rest."""
        self._to("power_off")
        self._stop_ri()
        self.ri_channel = None
        for line in ("ri", "dcd", "cts", "dsr"):
            self._set(line, False)
        self._hold_transmit(False)

    def refresh(self) -> None:
        """DCD, CTS and the transmit hold from the port's settings and data state now (after AT&C,
        AT+IFC, ATZ/AT&F, a change of mode, the host's RTS, a full input buffer); under CMUX each
        DLC's DV from its own."""
        if self.state is OFF:
            return
        module = self.module
        settings = module.uart_settings
        self._set("dcd", settings.dcd_mode == 0 or module.port.has_carrier())
        hardware_flow = settings.flow_control == (2, 2)
        self._set("cts", not (hardware_flow and self.input_full))
        self._hold_transmit(hardware_flow and not module.rts)
        for channel in module.channels.values():
            channel.set_signals(dv=channel.settings.dcd_mode == 0 or channel.has_carrier())

    def set_input_full(self, full: bool) -> None:
        """The shell's view of the module's input buffer: full, the host must wait (CTS off with
        AT+IFC=2,2)."""
        if full != self.input_full:
            self.input_full = full
            self.refresh()

    def _hold_transmit(self, held: bool) -> None:
        if held != self.transmit_held:
            self.transmit_held = held
            self.module.port_change(TransmitHold(held))

    # --- RI ----------------------------------------------------------------------------------

    def urc_presented(self, first_line: bytes, channel: Channel | None = None) -> None:
        """A URC came (held or not) on ``channel``: RI behaves as its category's AT+QCFG setting
        says, and so does IC in the MSC of the DLC that carries it."""
        if self.state is OFF:
            return
        behaviour = self.ri_behaviour[ri_category(first_line)]
        kind = behaviour.kind
        if kind == "off":
            return
        self._stop_ri()
        if channel is not self.ri_channel:
            self._set_ic(False)  # the pulse of another DLC's URC ends there
            self.ri_channel = channel if channel is not None and channel is not self.module.port else None
        self.ri_pulses += 1
        self._set_ri(True)
        if kind in ("always", "auto"):
            return  # until AT+QRIR (there is no call to end in the emulator)
        # "pulse" (and "wave", whose square wave a RING alone would keep going): <count> pulses of
        # <width> ms, each followed by as long inactive (chosen: the manuals give no gap).
        width = behaviour.width_ms / 1000.0
        module = self.module
        now = module.now
        for index in range(behaviour.count):
            start = now + 2 * index * width
            if index:
                self.ri_timers.append(module.call_at(start, self._ri_on))
            self.ri_timers.append(module.call_at(start + width, self._ri_off))

    def _ri_on(self) -> None:
        self.ri_pulses += 1
        self._set_ri(True)

    def _ri_off(self) -> None:
        self._set_ri(False)

    def _set_ri(self, active: bool) -> None:
        self._set("ri", active)
        self._set_ic(active)

    def _set_ic(self, active: bool) -> None:
        """RI of the DLC whose URC it is, in its MSC (27.010 5.4.6.3.7: IC), while it is open; not
        raised while the module sleeps (its UART is off: the RI line alone wakes the host)."""
        channel = self.ri_channel
        if active and self.state is ASLEEP:
            return
        if channel is not None and self.module.channels.get(channel.number) is channel:
            channel.set_signals(ic=active)

    def restore_ri(self) -> None:
        """AT+QRIR: RI back to inactive, whatever it was doing."""
        self._stop_ri()
        self._set_ri(False)

    def _stop_ri(self) -> None:
        for timer in self.ri_timers:
            timer.cancel()
        self.ri_timers.clear()

    # --- DTR, sleep --------------------------------------------------------------------------

    def dtr_changed(self, active: bool) -> None:
        self._observe("dtr", active, "host")
        if active:
            self.wake()
        else:
            self.maybe_sleep()

    def rts_changed(self, active: bool) -> None:
        self._observe("rts", active, "host")
        self.refresh()

    def set_sleep_enabled(self, enabled: bool) -> None:
        """AT+QSCLK: 1 lets the module sleep while DTR is off; 0 wakes it for good."""
        self.sleep_enabled = enabled
        if enabled:
            self.maybe_sleep()
        else:
            self.wake()

    def maybe_sleep(self) -> None:
        """With AT+QSCLK=1 and DTR off, the module sleeps once it has nothing to do: in command
        mode, no command running, on every channel (the EC200x AT manual ties sleep to DTR;
        REFERENCE.md "Control lines", "CMUX")."""
        module = self.module
        if (self.state is not AWAKE or not self.sleep_enabled or module.dtr
                or not module.module_idle or not module.booted):
            return
        self._to("sleep")
        self.lost_asleep = 0
        module.observe("sleep", asleep=True)

    def wake(self) -> None:
        """DTR on (or AT+QSCLK=0): awake at once, and the URCs held while asleep go out."""
        if self.state is not ASLEEP:
            return
        self._to("wake")
        module = self.module
        module.observe("sleep", asleep=False, lost=self.lost_asleep)
        module.flush_every_channel()

    def lose_input(self, size: int) -> None:
        """A sleeping module's UART is off: what the host sends is lost (chosen: no byte wakes
        it; DTR does), and the log says why once per sleep."""
        if not self.lost_asleep:
            log.warning("the module sleeps (AT+QSCLK=1 and DTR off): what the host sends is lost "
                        "until DTR is on again")
        self.lost_asleep += size
        self.module.observe("lost", size=size, why="asleep")
