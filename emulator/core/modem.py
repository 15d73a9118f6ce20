"""The modem: the sans-IO state machine the shell drives.

Inputs are bytes from the host (``receive_from_host``), network events (``handle_event``), the
DTR line (``set_dtr``) and the passing of time (``tick``); each takes the current monotonic time.
Outputs are collected and taken by the shell: bytes for the host (``take_host_bytes``) and
effects for the network (``take_effects``). ``next_deadline`` tells the shell when to call
``tick`` next. Nothing here reads a clock, a file descriptor or a socket.

The host side is in one of six modes, changed only through ``HOST_MODES``:

- ``BOOTING``: before ``RDY``; bytes the host sends wait until the module is up.
- ``COMMAND``: the line editor (``LineEditor``) collects a command line; ``CommandLineRunner`` runs it.
- ``BUSY``: a command is waiting for an event (``Pending``); host bytes wait, in order.
- ``DATA``: raw bytes go to a data sink (``DataEntry``: the ``>`` prompt, AT+QFUPL's CONNECT).
- ``ONLINE``: transparent transmission; bytes go to the connection (``online`` session).
- ``OFF``: powered down (AT+QPOWD) until a reboot; host bytes are lost.

The modem wires the parts together: the timers (``TimerHeap``), URCs held while they would cut into
an answer (``HeldUrcs``), the families' state (``families``, built from the ``CommandSet`` it is
given) and the connections' events (``new_conn_id``).
"""

from __future__ import annotations

import enum
import itertools
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from emulator.core import events as ev
from emulator.core.clock import ModuleClock
from emulator.core.command_line import CommandLineRunner
from emulator.core.data_entry import DataEntry
from emulator.core.lifecycle import Transitions
from emulator.core.line_editor import REJECTED, LineEditor
from emulator.core.registry import (
    AwaitData,
    CommandFailed,
    CommandSet,
    FamilyState,
    OnlineSession,
    Outcome,
    Pending,
    Reply,
)
from emulator.core.results import ERROR, CmeError, FinalResult
from emulator.core.timers import Timer, TimerHeap
from emulator.core.ufs import FileStore
from emulator.core.urcs import HeldUrcs, frame_block, frame_result
from emulator.profile import Profile

log = logging.getLogger(__name__)

# The S-registers and their power-on values: S0 0 and S3 13 seen (REFERENCE.md, AT&V); S4 10, S5 8,
# S6 2 and S8 2 are V.250's defaults; S7 0 and S10 15 are the Quectel EC2x AT manual's (doc). S3 ends
# a command line, S4 follows S3 in every header and trailer, S5 erases (V.250 6.2.1 - 6.2.3).
S_REGISTER_DEFAULTS = {0: 0, 3: 13, 4: 10, 5: 8, 6: 2, 7: 0, 8: 2, 10: 15}


class HostMode(enum.Enum):
    BOOTING = "booting"
    COMMAND = "command"
    BUSY = "busy"
    DATA = "data"
    ONLINE = "online"
    OFF = "off"  # powered down (AT+QPOWD) until reboot(): nothing answers, host bytes are lost


# Every change of host mode; a power cycle starts again at BOOTING.
HOST_MODES = Transitions("host mode", {
    (HostMode.BOOTING, "booted"): HostMode.COMMAND,  # RDY is out
    (HostMode.COMMAND, "line_done"): HostMode.COMMAND,  # a final result
    (HostMode.COMMAND, "wait"): HostMode.BUSY,  # a handler returned Pending
    (HostMode.COMMAND, "take_data"): HostMode.DATA,  # a handler returned AwaitData
    (HostMode.COMMAND, "connect"): HostMode.ONLINE,  # CONNECT with a session
    (HostMode.BUSY, "resume"): HostMode.COMMAND,  # finish_pending, or the wait timed out
    (HostMode.DATA, "resume"): HostMode.COMMAND,  # the data is complete, or timed out
    (HostMode.ONLINE, "leave"): HostMode.COMMAND,  # +++, DTR, or the connection ended
    **{(mode, "power_off"): HostMode.OFF for mode in HostMode},  # AT+QPOWD, from anywhere
})


@dataclass
class Settings:
    """The V.250 / 27.007 settings that ATZ and AT&F restore."""

    echo: bool
    verbose: bool
    cmee: int
    dtr_mode: int
    urc_port: str
    registration_report: dict[str, int] = field(default_factory=lambda: {"+CREG": 0, "+CGREG": 0, "+CEREG": 0})
    quiet: bool = False  # ATQ1: no result codes (V.250 6.2.5); Q0 is the default (REFERENCE.md AT&V)
    result_codes: int = 4  # ATX (REFERENCE.md AT&V: X4)
    dcd_mode: int = 1  # AT&C (REFERENCE.md AT&V: &C1)
    s_registers: dict[int, int] = field(default_factory=lambda: dict(S_REGISTER_DEFAULTS))
    baud_rate: int = 115200  # AT+IPR; kept and reported, the port ignores it
    flow_control: tuple[int, int] = (0, 0)  # AT+IFC
    char_framing: tuple[int, int] = (3, 3)  # AT+ICF

    @classmethod
    def factory(cls, profile: Profile) -> "Settings":
        d = profile.defaults
        return cls(echo=d.echo, verbose=d.verbose, cmee=d.cmee, dtr_mode=d.dtr_mode, urc_port=d.urc_port)


class Modem:
    """One emulated module. See the module docstring for the contract with the shell."""

    def __init__(self, profile: Profile, files: FileStore, *, commands: CommandSet, now: float,
                 wall_clock: datetime | None = None, escape_guard: float = 1.0):
        self.profile = profile
        self.files = files  # the UFS store; its backing is the shell's business
        self.commands = commands  # the command table and the families, handed in by the assembler
        self.escape_guard = escape_guard
        self.now = now
        self._wall_clock_at_boot = wall_clock or datetime(2000, 1, 1, tzinfo=timezone.utc)
        self._created_at = now
        self._host_out = bytearray()
        self._effects: list[ev.Effect] = []
        # Told of every command line, final result and URC (the session trace); pure notification.
        self.observer: Callable[[str, dict], None] | None = None
        # Given each TLS key log line (NSS key log format) when the shell was asked to keep them.
        self.keylog: Callable[[bytes], None] | None = None
        self.timers = TimerHeap()
        self._conn_ids = itertools.count(1)
        self._event_handlers: dict[int, Callable[[ev.NetworkEvent], None]] = {}
        self.dtr = True  # the host's DTR line (set_dtr): the host's, so a power cycle keeps it
        self.boot_count = 0
        self._fresh_state()

    # --- state -----------------------------------------------------------------------------

    def _fresh_state(self) -> None:
        """Everything a power cycle forgets (SSL settings included: REFERENCE.md)."""
        self.mode = HostMode.BOOTING
        self.booted = False  # every boot URC is out
        self.settings = Settings.factory(self.profile)
        self.functionality = 1
        self.signal: tuple[int, int] = self.profile.network.csq  # AT+CSQ; fault injection changes it
        # The module keeps its own time across a reboot (the network's time update sets it again
        # on a real one): the clock reads the wall clock given at creation, moved on since then.
        self.clock = ModuleClock(self._wall_clock_at_boot + timedelta(seconds=self.now - self._created_at), self.now)
        self.last_qi_error = 0
        self.online: OnlineSession | None = None
        self.editor = LineEditor(self.profile.limits.line_length, self.write_host, self.observe)
        self._input = bytearray()
        self._processing = False
        self.line = CommandLineRunner(self)
        self.data_entry: DataEntry | None = None  # while the mode is DATA
        self._pending: Pending | None = None
        self._pending_timer: Timer | None = None
        self._held_urcs = HeldUrcs()
        # Per-family state (PDP contexts, SSL contexts and clients), built anew at every power cycle.
        self.families: dict[str, FamilyState] = {}
        self.families = self.commands.build_states(self)
        # The families that wait for an idle port (direct push data is a URC, and URCs never cut
        # into a command's answer): only those that override the hook, as it runs after every line.
        self._idle_hooks = [state.port_idle for state in self.families.values()
                            if type(state).port_idle is not FamilyState.port_idle]

    def power_on(self, now: float) -> None:
        """Start the boot sequence: the profile's boot URCs at their times, RDY first."""
        self.now = now
        self.boot_count += 1
        boot = self.boot_count
        urcs = sorted(self.profile.boot_urcs, key=lambda u: u.after_ms)
        if not urcs:
            self._booted()
            self.booted = True
            return
        last_index = len(urcs) - 1
        for index, urc in enumerate(urcs):
            def fire(text: str = urc.text, first: bool = index == 0, last: bool = index == last_index) -> None:
                if boot != self.boot_count:
                    return
                if first:
                    self._mode_event("booted")
                self.emit_urc(text)  # RDY goes out before anything the host sent while booting
                if last:
                    self.booted = True
                if first:
                    self._process_input()
            self.call_at(now + urc.after_ms / 1000.0, fire)

    def power_off(self) -> None:
        """Powered down (AT+QPOWD): connections dropped, timers gone, and until ``reboot()`` every
        host byte is lost unanswered, as on a module without power."""
        for state in list(self.families.values()):
            self._guarded(state.power_off)
        self.timers.clear()
        self._event_handlers.clear()
        self._input.clear()
        self.boot_count += 1  # boot URCs still to come are not said
        self._mode_event("power_off")

    def _booted(self) -> None:
        self._mode_event("booted")
        self._process_input()

    def reboot(self) -> None:
        """A power cycle: every connection dropped, every setting back to its default, boot again."""
        for state in list(self.families.values()):
            self._guarded(state.power_off)
        self.timers.clear()
        self._event_handlers.clear()
        pending_input = bytes(self._input)
        self._fresh_state()
        self._input.extend(pending_input)
        self.power_on(self.now)

    def _mode_event(self, event: str) -> None:
        self.mode = HOST_MODES.next(self.mode, event)

    # --- output ------------------------------------------------------------------------------

    def write_host(self, data: bytes | bytearray) -> None:
        self._host_out += data

    def take_host_bytes(self) -> bytes:
        out = bytes(self._host_out)
        self._host_out.clear()
        return out

    def effect(self, effect: ev.Effect) -> None:
        self._effects.append(effect)

    def take_effects(self) -> list[ev.Effect]:
        out, self._effects = self._effects, []
        return out

    def block(self, lines: list[bytes]) -> bytes:
        return frame_block(self.settings, lines)

    def result_bytes(self, final: FinalResult) -> bytes:
        return frame_result(self.settings, final)

    def observe(self, kind: str, **details: Any) -> None:
        if self.observer is not None:
            self.observer(kind, details)

    def emit_urc(self, *lines: str | bytes) -> None:
        """An unsolicited result code; held while a command runs or data mode owns the port."""
        encoded = [l.encode("latin-1") if isinstance(l, str) else l for l in lines]
        self.observe("urc", lines=encoded)
        if self.settings.quiet:
            return  # ATQ1 suppresses unsolicited result codes too (V.250 6.2.5)
        data = self.block(encoded)
        if self.idle:
            self.write_host(data)
        else:
            self._held_urcs.hold(data)

    def _flush_urcs(self) -> None:
        if self.mode is not HostMode.COMMAND:
            return
        if self._held_urcs:
            self._held_urcs.release(self.write_host)
        for hook in self._idle_hooks:
            self._guarded(hook)

    @property
    def idle(self) -> bool:
        """In command mode, no command running and no URC held: a URC written now reaches the
        host at once, never inside a command's answer."""
        return self.mode is HostMode.COMMAND and not self.line.running and not self._held_urcs

    # --- time --------------------------------------------------------------------------------

    def call_at(self, deadline: float, callback: Callable[[], None]) -> Timer:
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
            self._guarded(timer.callback)
            timer = due(now)

    def _guarded(self, fn: Callable[[], None]) -> None:
        """Run ``fn``; a bug in one handler is logged and never stops the modem."""
        try:
            fn()
        except Exception:
            log.exception("internal error")

    # --- network -----------------------------------------------------------------------------

    def new_conn_id(self, on_event: Callable[[ev.NetworkEvent], None]) -> int:
        conn_id = next(self._conn_ids)
        self._event_handlers[conn_id] = on_event
        return conn_id

    def forget_conn(self, conn_id: int) -> None:
        self._event_handlers.pop(conn_id, None)

    def handle_event(self, event: ev.NetworkEvent, now: float) -> None:
        self.tick(now)
        handler = self._event_handlers.get(event.conn_id)
        if handler is None:
            log.debug("event for a forgotten connection: %r", event)
            return
        self._guarded(lambda: handler(event))

    # --- DTR ---------------------------------------------------------------------------------

    def set_dtr(self, active: bool, now: float) -> None:
        """The host's DTR line. In transparent mode a drop with AT&D1 leaves for command mode and
        keeps the connection (SSL note 1.4); with AT&D2 it also closes the connection, as V.250
        defines &D2 (chosen: the note names only &D1); with AT&D0 it does nothing. While DTR is
        low (no host has the port) direct push data waits in the module (see the SSL family)."""
        self.tick(now)
        self.dtr = active
        if active or self.mode is not HostMode.ONLINE or self.online is None:
            return
        session = self.online
        if self.settings.dtr_mode == 1:
            self._guarded(lambda: session.leave(self))
        elif self.settings.dtr_mode == 2:
            self._guarded(lambda: session.hang_up(self))

    # --- host input --------------------------------------------------------------------------

    def receive_from_host(self, data: bytes, now: float) -> None:
        self.tick(now)
        self._input += data
        self._process_input()

    @property
    def input_backlog(self) -> int:
        """Host bytes received and not yet consumed; the shell stops reading the port when high."""
        return len(self._input)

    def resume_input(self) -> None:
        """Go on with waiting host bytes (a connection in transparent mode can take more)."""
        self._process_input()

    def take_input(self) -> bytes:
        """Take every host byte received and not yet consumed. Transparent mode takes them as it
        ends: what flow control held back was sent as data for the connection and must never be
        read as command lines afterwards."""
        data = bytes(self._input)
        self._input.clear()
        return data

    def _process_input(self) -> None:
        if self._processing:
            return  # the outer loop goes on with whatever is left
        self._processing = True
        try:
            self._consume_input()
        finally:
            self._processing = False

    def _consume_input(self) -> None:
        while self._input:
            if self.editor.line_end_open:
                self._take_line_end_lf()
                continue
            mode = self.mode
            if mode in (HostMode.BOOTING, HostMode.BUSY):
                return
            if mode is HostMode.OFF:
                self._input.clear()
                return
            if mode is HostMode.ONLINE:
                session = self.online
                if session is None:
                    self._input.clear()  # cannot happen: ONLINE always has a session
                    return
                if not session.ready_for_host():
                    return  # flow control: the bytes wait here, in order
                data = bytes(self._input)
                self._input.clear()
                self._guarded(lambda: session.feed_host(self, data))
                continue
            if mode is HostMode.DATA:
                self._feed_sink()
                continue
            self._edit_line()

    def _edit_line(self) -> None:
        """The command-line editor takes bytes until a line completes or input runs out."""
        # Timers already due (AT+CFUN=1,1's reboot) run before the next line is read, as they would
        # have had the host sent that line in a later write: the output never depends on how the
        # host's bytes were split (chosen).
        self.tick(self.now)
        if self.mode is not HostMode.COMMAND:
            return
        data = self._input
        consumed, edited = self.editor.edit(data, self.settings, self.mode)
        del data[:consumed]
        if edited is REJECTED:
            self.finish_line(ERROR)
        elif isinstance(edited, bytes):
            self.line.execute(edited)

    def _take_line_end_lf(self) -> None:
        mode = self.mode
        # Echoed only where the port echoes now: never into transparent mode's stream or after
        # AT+QFUPL's CONNECT, whose data is not echoed either.
        entry = self.data_entry
        echoing = mode in (HostMode.COMMAND, HostMode.BUSY) or (entry is not None and entry.echo)
        self.editor.take_line_end_lf(self._input, mode, mode is HostMode.COMMAND,
                                     self.settings.echo and echoing)

    def take_data(self, outcome: AwaitData) -> None:
        """Data mode: the prompt, then the host's bytes go to the command's sink."""
        self.write_host(outcome.prompt)
        self._mode_event("take_data")
        self.data_entry = DataEntry(outcome.sink, outcome.echo, self.call_at, self._data_expired)

    def wait(self, pending: Pending) -> None:
        """The running command waits for an event (``finish_pending``) or its deadline."""
        self._mode_event("wait")
        self._pending = pending
        if pending.deadline is not None:
            self._pending_timer = self.call_at(pending.deadline, self._pending_expired)

    def finish_line(self, final: FinalResult | CmeError, online: OnlineSession | None = None) -> None:
        """Write the line's final result; with ``online`` the port then enters transparent mode."""
        if isinstance(final, CmeError):
            final = final.as_final(self.settings.cmee)
        self.observe("result", text=final.text)
        self.write_host(self.result_bytes(final))
        line = self.line
        line.running = False
        line.current = None
        if online is not None:
            self.online = online
            self._mode_event("connect")
            self._guarded(lambda: online.entered(self))
            return
        if self.mode is not HostMode.COMMAND:
            self._mode_event("line_done")  # COMMAND to COMMAND, the common case, needs no lookup
        self._flush_urcs()

    def finish_pending(self, outcome: Outcome | CommandFailed) -> None:
        """Complete the command that returned ``Pending``; the rest of its line runs after it. A
        ``CommandFailed`` ends it (and its line) as a failure of its family, as if raised. Only
        while a command waits: anything else is an illegal transition."""
        if not HOST_MODES.allows(self.mode, "resume") or self._pending is None:
            HOST_MODES.next(self.mode, "finish_pending")  # raises in strict mode, else logs
            return
        self._pending = None
        if self._pending_timer:
            self._pending_timer.cancel()
            self._pending_timer = None
        self._resume(outcome)

    def _resume(self, outcome: Outcome | CommandFailed) -> None:
        """The running command goes on after a wait or its data: with its outcome, or failed."""
        self._mode_event("resume")
        self.line.resume(outcome)
        self._process_input()

    def _pending_expired(self) -> None:
        pending = self._pending
        if pending is None or self.mode is not HostMode.BUSY:
            return
        self._pending_timer = None
        outcome = pending.on_timeout(self) if pending.on_timeout else Reply(final=ERROR)
        self.finish_pending(outcome)

    def _feed_sink(self) -> None:
        entry = self.data_entry
        assert entry is not None  # DATA mode always has one
        outcome = entry.feed(self, self._input, self.settings.echo, self.write_host)
        if outcome is not None:
            self.data_entry = None
            self._resume(outcome)

    def _data_expired(self) -> None:
        entry = self.data_entry
        if self.mode is not HostMode.DATA or entry is None:
            return
        self.data_entry = None
        self._resume(entry.expire(self))

    # --- transparent mode hooks --------------------------------------------------------------

    def leave_online(self, result: FinalResult) -> None:
        """Back to command mode with ``result`` (OK after +++, NO CARRIER when the peer closed)."""
        self.online = None
        self._mode_event("leave")
        self.write_host(self.result_bytes(result))
        self._flush_urcs()
        self._process_input()
