"""The modem: the sans-IO state machine the shell drives, and the coordinator of its parts.

Inputs are bytes from the host (``receive_from_host``), network events (``handle_event``), the
DTR line (``set_dtr``) and the passing of time (``tick``); each takes the current monotonic time.
Outputs are collected and taken by the shell: bytes for the host (``take_host_bytes``) and
effects for the network (``take_effects``). ``next_deadline`` tells the shell when to call
``tick`` next. Nothing here reads a clock, a file descriptor or a socket.

The modem wires the parts together and owns what is the module's: its power (``Power``), the
channels (``channel.py``: the port's, and one per CMUX DLC, each with its host modes, line editor,
command line runner, settings and held URCs), the timers (``TimerHeap``), the control lines
(``ControlLines``), the families' state (``families``, built from the ``CommandSet`` it is given)
and the connections' events (``new_conn_id``). Each part reaches the modem through a Protocol of
its own (``host_modes.ModuleSide``, ``channel.ChannelModule``, ``channel.MuxModule``,
``control_lines.LinesModule``) and never imports this module. A power cycle builds every part but
the timers and the control lines anew.
"""

from __future__ import annotations

import enum
import itertools
import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from . import events as ev
from .channel import PORT, Channel, MuxSession
from .clock import ModuleClock
from .control_lines import ControlLines
from .host_modes import HOST_MODES as HOST_MODES  # noqa: F401 (re-exported)
from .host_modes import COMMAND, HostMode
from .lifecycle import Transitions, guarded
from .registry import CommandSet, FamilyState
from .results import FinalResult, QiError
from .settings import Settings
from .timers import Timer, TimerHeap
from .uart import DropInput, LineFormat, PortChange
from .ufs import FileStore
from .urcs import frame_block, frame_result
from ..profile import Profile

__all__ = ["HOST_MODES", "POWER", "HostMode", "Modem", "Power", "Settings"]

log = logging.getLogger(__name__)


class Power(enum.Enum):
    OFF = "off"  # before ``power_on``, and after AT+QPOWD until a reboot
    BOOTING = "booting"  # the boot URCs are on their way (the port reads commands from RDY on)
    UP = "up"  # every boot URC is out


POWER = Transitions("power", {
    (Power.OFF, "power_on"): Power.BOOTING,
    (Power.BOOTING, "booted"): Power.UP,
    **{(state, "power_off"): Power.OFF for state in Power},  # AT+QPOWD, or a reboot's first half
})


class Modem:
    """One emulated module. See the module docstring for the contract with the shell."""

    def __init__(self, profile: Profile, files: FileStore, *, commands: CommandSet, now: float,
                 wall_clock: datetime | None = None, escape_guard: float = 1.0, baud_rate: int = 115200):
        self.profile = profile
        self.files = files  # the UFS store; its backing is the shell's business
        self.commands = commands  # the command table and the families, handed in by the assembler
        self.escape_guard = escape_guard
        self.now = now
        self._wall_clock_at_boot = wall_clock or datetime(2000, 1, 1, tzinfo=timezone.utc)
        self._created_at = now
        self.effects: list[ev.Effect] = []  # for the network, in order; the shell takes them (take_effects)
        self.port_changes: list[PortChange] = []  # for the shell's port (``core/uart.py``)
        # Told of every command line, final result and URC (the session trace); pure notification.
        self.observer: Callable[[str, dict], None] | None = None
        # Given each TLS key log line (NSS key log format) when the shell was asked to keep them.
        self.keylog: Callable[[bytes], None] | None = None
        self.timers = TimerHeap()
        self._conn_ids = itertools.count(1)
        self._event_handlers: dict[int, Callable[[ev.NetworkEvent], None]] = {}
        self.dtr = True  # the host's DTR line (set_dtr): the host's, so a power cycle keeps it
        self.rts = True  # the host's RTS line (set_rts), likewise
        # The host does not take what the module says (``set_output_blocked``, the shell's output
        # past its mark): URCs wait, direct push data and MQTT messages stay in their sockets.
        self.output_blocked = False
        self.boot_count = 0
        # The UART's rate at every power-on (AT+IPR's value kept by the module: ``ecemu run
        # --baud``), and the format the port was last told of.
        self.baud_rate_at_power_on = baud_rate
        self.line_format = LineFormat(baud_rate)
        self.power = Power.OFF  # changed only through POWER
        self.lines = ControlLines(self)  # RI, DCD, CTS, DSR; DTR and RTS are ``dtr``, ``rts``
        self._fresh_state(bytearray())

    # --- the power cycle ---------------------------------------------------------------------

    def _fresh_state(self, port_out: bytearray) -> None:
        """Everything a power cycle forgets (SSL settings included: REFERENCE.md). ``port_out``:
        what the module said before and the host has not taken yet, still the host's."""
        # The port's AT channel; AT+CMUX adds one per DLC the host opens (``channels``). What the
        # modem reads as host, line, settings and output is the channel in hand's.
        self.port = Channel(self, PORT, Settings.factory(self.profile), port_out)
        self.channels: dict[int, Channel] = {}  # the DLCs' channels while the multiplexer runs
        self.multiplexed = False  # timers and connections remember their channel only then
        self.mux: MuxSession | None = None  # AT+CMUX's multiplexer on the port
        self._take_channel(self.port)
        self.port.settings.baud_rate = self.baud_rate_at_power_on
        self.line_settings_changed()
        self.functionality = 1
        self.signal: tuple[int, int] = self.profile.network.csq  # AT+CSQ; fault injection changes it
        # The module keeps its own time across a reboot (the network's time update sets it again
        # on a real one): the clock reads the wall clock given at creation, moved on since then.
        self.clock = ModuleClock(self._wall_clock_at_boot + timedelta(seconds=self.now - self._created_at), self.now)
        self.last_qi_error = QiError.OK
        # What waits for the port to be idle (a socket's inbox with data to push or a closed URC
        # behind it), put here by itself (``mark_idle_waiting``): the hooks run only then, since
        # asking every family after every command line was a fifth of an AT round trip's work.
        self.idle_waiting: dict[object, None] = {}
        # Per-family state (PDP contexts, SSL contexts and clients), built anew at every power cycle.
        self.families: dict[str, FamilyState] = {}
        self.commands.build_states(self, self.families)
        # The families that wait for an idle port (direct push data is a URC, and URCs never cut
        # into a command's answer): only those that override the hook.
        self._idle_hooks = [state.port_idle for state in self.families.values()
                            if type(state).port_idle is not FamilyState.port_idle]

    def power_on(self, now: float) -> None:
        """Start the boot sequence: the profile's boot URCs at their times, RDY first; the port
        reads the host's bytes from RDY on (until then they wait)."""
        self.now = now
        self.power = POWER.next(self.power, "power_on")
        self.boot_count += 1
        self.lines.power_on()
        host = self.port.host
        urcs = sorted(self.profile.boot_urcs, key=lambda u: u.after_ms)
        if not urcs:
            host.booted()
            host.process_input()
            self.power = POWER.next(self.power, "booted")
            return
        last_index = len(urcs) - 1
        for index, urc in enumerate(urcs):
            # A power cycle clears the timers: these fire in this one only.
            def fire(text: str = urc.text, first: bool = index == 0, last: bool = index == last_index) -> None:
                if first:
                    host.booted()
                self.emit_urc(text)  # RDY goes out before anything the host sent while booting
                if last:
                    self.power = POWER.next(self.power, "booted")
                if first:
                    host.process_input()
            self.call_at(now + urc.after_ms / 1000.0, fire)

    def _lose_multiplexer(self) -> None:
        """A power cycle or a power-down under CMUX: what the channels said so far goes into
        frames on the port (AT+CFUN=1,1's OK on a DLC is the host's still), then the multiplexer
        reads no more frames."""
        if self.mux is not None:
            self.mux.power_lost()

    def _drop_everything(self) -> None:
        for state in list(self.families.values()):
            guarded(state.power_off)
        self.timers.clear()
        self._event_handlers.clear()

    def power_off(self) -> None:
        """Powered down (AT+QPOWD): connections dropped, timers gone, and until ``reboot()`` every
        host byte is lost unanswered, as on a module without power; under CMUX on every channel,
        the multiplexer silent with them."""
        self._lose_multiplexer()
        self._drop_everything()
        self.boot_count += 1  # host bytes on their way are lost (``receive_from_host``)
        self.power = POWER.next(self.power, "power_off")
        for channel in self.channels.values():
            channel.host.power_off()
        self.port.host.power_off()
        self.lines.power_off()
        self.port_change(DropInput())

    def reboot(self) -> None:
        """A power cycle: every connection dropped, every setting back to its default, boot again.
        What the host sent that the module had not read yet is lost with the rest, as a module
        that reboots loses what was in its UART: the host's later input starts clean."""
        self._lose_multiplexer()
        self._drop_everything()
        self.lines.power_off()
        for channel in [self.port, *self.channels.values()]:
            # Every channel's machine ends, the one whose line is running included: its input is
            # lost, and whatever of it still runs (a timer, the rest of a write) finds it OFF.
            channel.host.power_off()
        self.power = POWER.next(self.power, "power_off")
        self._fresh_state(self.port.out)
        self.port_change(DropInput())
        self.power_on(self.now)

    @property
    def booted(self) -> bool:
        """Every boot URC of this power cycle is out."""
        return self.power is Power.UP

    # --- the channels (channel.py) -------------------------------------------------------------

    def _take_channel(self, channel: Channel) -> None:
        # The channel in hand and, for the per-line paths, its parts (the channel owns them).
        self.channel = channel
        self.host = channel.host
        self.line = channel.line
        self._host_out = channel.out
        self._held_urcs = channel.held_urcs

    @property
    def settings(self) -> Settings:
        """The settings of the channel in hand (ATZ and AT&F put new ones in place)."""
        return self.channel.settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        self.channel.settings = settings

    def on_channel(self, channel: Channel, work: Callable[[], Any]) -> Any:
        """Run ``work`` with ``channel`` in hand: its bytes, settings and answers."""
        previous = self.channel
        if channel is previous:
            return work()
        port = self.port
        self._take_channel(channel)
        try:
            return work()
        finally:
            # After a power cycle (AT+CFUN=1,1 on a channel) only the new port's channel is left.
            self._take_channel(previous if self.port is port else self.port)

    def _bound(self, callback: Callable[..., None]) -> Callable[..., None]:
        """``callback`` runs on the channel in hand now, whichever is in hand when it is called."""
        channel = self.channel
        return lambda *args: self.on_channel(channel, lambda: callback(*args))

    @property
    def uart_settings(self) -> Settings:
        """The UART's rate, framing and flow control (AT+IPR, AT+ICF, AT+IFC) and the AT&C and AT&D
        of its control lines: the bare port channel's settings, whichever channel is in hand
        (REFERENCE.md "CMUX")."""
        return self.port.settings

    def open_channel(self, number: int, on_signals: Callable[[Channel], None]) -> Channel:
        """DLC ``number`` is open (``MuxSession``): a new AT channel for it, its V.24 signals
        told to ``on_signals``."""
        channel = self.channels[number] = Channel(self, number, Settings.factory(self.profile),
                                                  on_signals=on_signals)
        return channel

    def close_channel(self, number: int) -> None:
        """DLC ``number`` is closed: its channel is gone, what it had for its host with it."""
        channel = self.channels.pop(number, None)
        if channel is not None:
            channel.out.clear()

    def multiplexer_started(self, session: MuxSession) -> None:
        """AT+CMUX's CONNECT: the port carries ``session``'s frames; timers and connections made
        from now on remember their channel."""
        self.multiplexed = True
        self.mux = session

    def multiplexer_ended(self) -> None:
        self.multiplexed = False
        self.mux = None

    def flush_every_channel(self) -> None:
        """Held URCs out on every channel that can take them (the module woke up)."""
        for channel in [self.port, *self.channels.values()]:
            self.on_channel(channel, self.flush_urcs)

    def urc_channel(self) -> Channel:
        """Where URCs go: the port, or under CMUX the lowest DLC open (chosen: REFERENCE.md "CMUX")."""
        for number in sorted(self.channels):
            return self.channels[number]
        return self.port

    # --- output ------------------------------------------------------------------------------

    def write_host(self, data: bytes | bytearray) -> None:
        self._host_out += data

    def take_host_bytes(self) -> bytes:
        """The port's bytes for the host; under CMUX every channel's output framed first."""
        if self.mux is not None:
            self.mux.frame_output()
        port_out = self.port.out
        out = bytes(port_out)
        port_out.clear()
        return out

    def effect(self, effect: ev.Effect) -> None:
        self.effects.append(effect)

    def port_change(self, change: PortChange) -> None:
        self.port_changes.append(change)

    def line_settings_changed(self) -> None:
        """AT+IPR or AT+ICF (or a power cycle) set the UART: the port hears of a new format."""
        settings = self.uart_settings
        line_format = LineFormat.of(settings.baud_rate, settings.char_framing)
        if line_format != self.line_format:
            self.line_format = line_format
            self.port_change(line_format)

    def take_port_changes(self) -> list[PortChange]:
        """What the shell must do to the port (``core/uart.py``), in order; usually nothing."""
        out, self.port_changes = self.port_changes, []
        return out

    def take_effects(self) -> list[ev.Effect]:
        out, self.effects = self.effects, []
        return out

    def block(self, lines: list[bytes]) -> bytes:
        return frame_block(self.settings, lines)

    def result_bytes(self, final: FinalResult) -> bytes:
        return frame_result(self.settings, final)

    def observe(self, kind: str, **details: Any) -> None:
        if self.observer is not None:
            if self.multiplexed:
                details.setdefault("channel", self.channel.number)  # the DLC it happened on
            self.observer(kind, details)

    def emit_urc(self, *lines: str | bytes) -> None:
        """An unsolicited result code; held while a command runs or data mode owns the port."""
        encoded = [l.encode("latin-1") if isinstance(l, str) else l for l in lines]
        if self.multiplexed:
            target = self.urc_channel()
            if target is not self.channel:
                self.on_channel(target, lambda: self._emit_block(encoded))
                return
        self._emit_block(encoded)

    def _emit_block(self, encoded: list[bytes]) -> None:
        self.observe("urc", lines=encoded)
        # RI (and the DLC's IC under CMUX), even for a URC held or quiet
        self.lines.urc_presented(encoded[0] if encoded else b"", self.channel)
        if self.settings.quiet:
            return  # ATQ1 suppresses unsolicited result codes too (V.250 6.2.5)
        data = self.block(encoded)
        if self.idle and not self.output_blocked:
            self.write_host(data)
        elif self._held_urcs.hold(data):
            channel = self.channel
            if channel.typing():
                channel.release_urcs_after_partial_line()
        else:
            dropped = self._held_urcs.dropped
            if dropped == 1 or dropped % 1000 == 0:
                log.warning("the host does not read: %d URCs dropped so far (more than %d bytes waited)",
                            dropped, self._held_urcs.limit)
            self.observe("urc_dropped", lines=encoded, dropped=dropped)

    def urc_fits(self, size: int) -> bool:
        """A URC of about ``size`` bytes carrying data (an MQTT message) would reach the host now
        or wait in the held URCs with room to spare, so that it is never dropped: otherwise its
        producer keeps it and stops reading (the held URCs keep half their room for the others)."""
        if self.idle and not self.output_blocked:
            return True
        held = self._held_urcs
        return held.size + size + 8 <= held.limit // 2

    def set_output_blocked(self, blocked: bool) -> None:
        """The shell's output for the host is past its high mark (True) or back under its low
        mark (False); what waited for the host goes out once it is back."""
        if blocked == self.output_blocked:
            return
        self.output_blocked = blocked
        if not blocked:
            self.flush_every_channel()

    def flush_urcs(self) -> None:
        """The port is back in command mode: held URCs out, then what the families held for it."""
        if self.host.mode is not COMMAND or self.output_blocked or self.lines.asleep:
            return
        if self._held_urcs:
            self._held_urcs.release(self.write_host)
        if self.lines.sleep_enabled and not self.dtr:
            self.lines.maybe_sleep()  # AT+QSCLK=1 with DTR off: asleep once idle
        if not self.idle_waiting:
            return  # the common case, after every command line
        for hook in self._idle_hooks:
            guarded(hook)

    def mark_idle_waiting(self, waiter: object) -> None:
        """``waiter`` has something for the port's next idle moment: the families' ``port_idle``
        hooks run then, and take it off ``idle_waiting`` once it has nothing more. A missed call
        would leave data or a URC waiting unseen."""
        self.idle_waiting[waiter] = None

    @property
    def idle(self) -> bool:
        """In command mode, no command running, no command line half typed and no URC held: a URC
        written now reaches the host at once, never inside a command's answer or the echo of a
        line the host is typing."""
        return (self.host.mode is COMMAND and not self.line.running and not self._held_urcs
                and not self.lines.asleep and not self.channel.typing())

    @property
    def module_idle(self) -> bool:
        """Nothing to do on any channel (AT+QSCLK's sleep waits for it): the port's, or under CMUX
        every DLC's (the port carries the multiplexer)."""
        channels = self.channels.values() if self.mux is not None else (self.port,)
        return all(channel.host.mode is COMMAND and not channel.line.running and not channel.held_urcs
                   for channel in channels)

    # --- time --------------------------------------------------------------------------------

    def call_at(self, deadline: float, callback: Callable[[], None]) -> Timer:
        if self.multiplexed:
            callback = self._bound(callback)
        return self.timers.call_at(deadline, callback)

    def next_deadline(self) -> float | None:
        return self.timers.next_deadline()

    def tick(self, now: float) -> None:
        self.now = now
        heap = self.timers.heap
        if not heap or heap[0][0] > now:
            return  # the common case, on every host write: nothing due
        due = self.timers.pop_due
        timer = due(now)
        while timer is not None:
            guarded(timer.callback)
            timer = due(now)

    # --- network -----------------------------------------------------------------------------

    def new_conn_id(self, on_event: Callable[[ev.NetworkEvent], None]) -> int:
        conn_id = next(self._conn_ids)
        self._event_handlers[conn_id] = self._bound(on_event) if self.multiplexed else on_event
        return conn_id

    def forget_conn(self, conn_id: int) -> None:
        self._event_handlers.pop(conn_id, None)

    @property
    def handled_conn_ids(self) -> tuple[int, ...]:
        """The connections whose events have a handler, in order (none once every one is closed)."""
        return tuple(sorted(self._event_handlers))

    def handle_event(self, event: ev.NetworkEvent, now: float) -> None:
        self.tick(now)
        handler = self._event_handlers.get(event.conn_id)
        if handler is None:
            log.debug("event for a forgotten connection: %r", event)
            return
        guarded(lambda: handler(event))

    # --- the host: its line and its bytes (host_modes.py) --------------------------------------

    def set_dtr(self, active: bool, now: float) -> None:
        """The host's DTR line (``HostModes.dtr_dropped``: what a drop does in transparent mode).
        While DTR is low (no host has the port) direct push data waits in the module."""
        self.tick(now)
        if active == self.dtr:
            return
        self.dtr = active
        if not active:
            port = self.port  # the serial line's DTR: the port's AT&D (under CMUX: the multiplexer)
            self.on_channel(port, port.host.dtr_dropped)
        self.lines.dtr_changed(active)

    def set_rts(self, active: bool, now: float) -> None:
        """The host's RTS line: with AT+IFC=2,2 the module sends nothing while it is off."""
        self.tick(now)
        if active != self.rts:
            self.rts = active
            self.lines.rts_changed(active)

    def set_input_full(self, full: bool, now: float) -> None:
        """The shell's view of the module's input buffer: full, the host must wait (CTS off with
        AT+IFC=2,2)."""
        self.tick(now)
        self.lines.set_input_full(full)

    def host_lost(self, now: float) -> None:
        """The host went away (its port closed, its connection dropped): ``HostModes.host_lost``."""
        self.tick(now)
        port = self.port
        self.on_channel(port, port.host.host_lost)

    def receive_from_host(self, data: bytes, now: float) -> None:
        """The host's bytes reached the port (``input_wanted`` says how many to give at once)."""
        boot = self.boot_count
        self.tick(now)
        if boot != self.boot_count:
            return  # the module power-cycled as these bytes came: they were in the UART it lost
        lines = self.lines
        if lines.asleep:
            lines.lose_input(len(data))
            return
        try:
            self.port.host.receive(data)
        except Exception:  # as ``guarded`` does, without a function made for every write
            log.exception("internal error")

    def input_wanted(self, data: bytes | bytearray) -> int:
        """How many of the host's bytes ``data`` the shell should give the port at once: in command
        mode up to the end of the first command line (``HostModes.input_wanted``), so that the
        answers to a flood of lines come one line at a time; otherwise all of them."""
        return self.port.host.input_wanted(data)

    @property
    def input_backlog(self) -> int:
        """Host bytes received and not yet consumed; the shell stops reading the port when high."""
        return len(self.port.host.input)
