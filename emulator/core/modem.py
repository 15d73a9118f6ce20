"""The modem: the sans-IO state machine the shell drives.

Inputs are bytes from the host (``receive_from_host``), network events (``handle_event``), the
DTR line (``set_dtr``) and the passing of time (``tick``); each takes the current monotonic time.
Outputs are collected and taken by the shell: bytes for the host (``take_host_bytes``) and
effects for the network (``take_effects``). ``next_deadline`` tells the shell when to call
``tick`` next. Nothing here reads a clock, a file descriptor or a socket.

The host side is in one of five modes:

- ``BOOTING``: before ``RDY``; bytes the host sends wait until the module is up.
- ``COMMAND``: the line editor collects a command line (echo, backspace, ``A/``).
- ``BUSY``: a command is waiting for an event (``Pending``); host bytes wait, in order.
- ``DATA``: raw bytes go to a data sink (the ``>`` prompt, AT+QFUPL's CONNECT).
- ``ONLINE``: transparent transmission; bytes go to the connection (``online`` session).
"""

from __future__ import annotations

import enum
import functools
import heapq
import itertools
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Protocol

import emulator.commands  # noqa: F401  (registers every command family)
from emulator.core import events as ev
from emulator.core.clock import ModuleClock
from emulator.core.parser import CommandCall, SyntaxProblem, parse_command_line
from emulator.core.registry import (
    COMMANDS,
    AwaitData,
    CommandFailed,
    Outcome,
    ParamError,
    Pending,
    Reply,
)
from emulator.core.results import ERROR, OK, CmeError, FinalResult, encode_block
from emulator.profile import Profile

log = logging.getLogger(__name__)

DELETE = 0x7F  # what most terminal programs send for the backspace key; erases as S5 does (chosen)
LF = 0x0A  # the LF of a CR LF line end (or a stray one at the start of a line), unless it is S3
# The S-registers and their power-on values: S0 0 and S3 13 seen (REFERENCE.md, AT&V); S4 10, S5 8,
# S6 2 and S8 2 are V.250's defaults; S7 0 and S10 15 are the Quectel EC2x AT manual's (doc). S3 ends
# a command line, S4 follows S3 in every header and trailer, S5 erases (V.250 6.2.1 - 6.2.3).
S_REGISTER_DEFAULTS = {0: 0, 3: 13, 4: 10, 5: 8, 6: 2, 7: 0, 8: 2, 10: 15}

# Timers in the heap, cancelled ones included, above which call_at drops the cancelled ones.
TIMERS_COMPACT_MIN = 64

# Families whose commands answer plain ERROR and leave their code for AT+QIGETERROR
# (REFERENCE.md "Boot and basics": TCP/IP and SSL commands).
QI_ERROR_FAMILIES = {"pdp", "ssl"}
QI_INVALID_PARAMETER = 552
QI_UNKNOWN_ERROR = 550


@functools.lru_cache(maxsize=None)
def _plain_run(terminator: int, erase: int) -> re.Pattern[bytes]:
    """Bytes the line editor only appends: anything but LF, S3, S5, DEL and the ``/`` of ``A/``."""
    special = bytes(sorted({LF, terminator, erase, DELETE, ord("/")}))
    return re.compile(b"[^" + re.escape(special) + b"]+")


class HostMode(enum.Enum):
    BOOTING = "booting"
    COMMAND = "command"
    BUSY = "busy"
    DATA = "data"
    ONLINE = "online"
    OFF = "off"  # powered down (AT+QPOWD) until reboot(): nothing answers, host bytes are lost


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


class OnlineSession(Protocol):
    """A connection in transparent transmission mode (SSL note 1.4; see the SSL family)."""

    def entered(self, modem: "Modem") -> None:
        """The port has just become this connection's (after CONNECT)."""

    def ready_for_host(self) -> bool:
        """False while the connection cannot take more: host bytes then wait in order."""

    def feed_host(self, modem: "Modem", data: bytes) -> None: ...

    def leave(self, modem: "Modem") -> None:
        """Back to command mode, the connection kept (+++ or a DTR drop with AT&D1)."""

    def hang_up(self, modem: "Modem") -> None:
        """Back to command mode, the connection closed (a DTR drop with AT&D2)."""


class Timer:
    __slots__ = ("deadline", "callback", "cancelled")

    def __init__(self, deadline: float, callback: Callable[[], None]):
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Modem:
    """One emulated module. See the module docstring for the contract with the shell."""

    def __init__(self, profile: Profile, files: Any, *, now: float, wall_clock: datetime | None = None,
                 escape_guard: float = 1.0):
        self.profile = profile
        self.files = files  # the UFS store (emulator.core.ufs); its backing is the shell's business
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
        self._timers: list[tuple[float, int, Timer]] = []
        self._timers_compact_above = TIMERS_COMPACT_MIN
        self._timer_seq = itertools.count()
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
        self._line = bytearray()
        self._line_overflow = False
        # A CR has just ended a command line and the next host byte has not come yet: if it is an
        # LF it belongs to that line's end, whatever mode the line led to (REFERENCE.md "Line ends").
        self._line_end_open = False
        # Whether this host ends its lines with CR LF, learnt from its lines: once it has, an LF that
        # follows a line's CR in a later write is still that line's end, even after a `>` prompt or
        # CONNECT; a host that ends lines with CR alone gets such an LF as data (chosen).
        self._host_ends_lines_with_lf = False
        self._last_line: bytes | None = None
        self._input = bytearray()
        self._processing = False
        self._remaining_calls: list[CommandCall] = []
        self._current_call: CommandCall | None = None
        self._in_command = False  # a command line is being executed: URCs wait for its result
        self._sink = None
        self._sink_echo = True
        self._sink_timer: Timer | None = None
        self._pending: Pending | None = None
        self._pending_timer: Timer | None = None
        self._held_urcs: list[bytes] = []
        self.reset_hooks: list[Callable[[], None]] = []
        # Called whenever the port is back in command mode with nothing held (direct push data
        # waits for that: it is a URC, and URCs never cut into a command's answer).
        self.idle_hooks: list[Callable[[], None]] = []
        self.network: dict[str, Any] = {}
        self._make_network_state()

    def _make_network_state(self) -> None:
        """Per-family state objects (PDP contexts, SSL contexts and clients), built in the order the
        families registered, so that a family may look up the ones registered before it."""
        from emulator.commands import STATE_FACTORIES

        for name, factory in STATE_FACTORIES.items():
            self.network[name] = factory(self)

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
        for index, urc in enumerate(urcs):
            def fire(text=urc.text, first=(index == 0), last=(index == len(urcs) - 1)) -> None:
                if boot != self.boot_count:
                    return
                if first:
                    self.mode = HostMode.COMMAND
                self.emit_urc(text)  # RDY goes out before anything the host sent while booting
                if last:
                    self.booted = True
                if first:
                    self._process_input()
            self.call_at(now + urc.after_ms / 1000.0, fire)

    def power_off(self) -> None:
        """Powered down (AT+QPOWD): connections dropped, timers gone, and until ``reboot()`` every
        host byte is lost unanswered, as on a module without power."""
        for hook in list(self.reset_hooks):
            hook()
        self._timers.clear()
        self._event_handlers.clear()
        self._input.clear()
        self.boot_count += 1  # boot URCs still to come are not said
        self.mode = HostMode.OFF

    def _booted(self) -> None:
        self.mode = HostMode.COMMAND
        self._process_input()

    def reboot(self) -> None:
        """A power cycle: every connection dropped, every setting back to its default, boot again."""
        for hook in list(self.reset_hooks):
            hook()
        self._timers.clear()
        self._event_handlers.clear()
        pending_input = bytes(self._input)
        self._fresh_state()
        self._input.extend(pending_input)
        self.power_on(self.now)

    # --- output ------------------------------------------------------------------------------

    def write_host(self, data: bytes) -> None:
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
        s = self.settings
        return encode_block(lines, s.verbose, s.s_registers[3], s.s_registers[4])

    def result_bytes(self, final: FinalResult) -> bytes:
        """A result code as the host gets it: framed per ATV, S3 and S4; nothing at all with ATQ1
        (V.250 6.2.5: no part of a final, intermediate or unsolicited result code is sent)."""
        s = self.settings
        if s.quiet:
            return b""
        return final.encode(s.verbose, s.s_registers[3], s.s_registers[4])

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
            self._held_urcs.append(data)

    def _flush_urcs(self) -> None:
        if self.mode is not HostMode.COMMAND:
            return
        while self._held_urcs:
            self.write_host(self._held_urcs.pop(0))
        for hook in list(self.idle_hooks):
            self._guarded(hook)

    @property
    def idle(self) -> bool:
        """In command mode, no command running and no URC held: a URC written now reaches the
        host at once, never inside a command's answer."""
        return self.mode is HostMode.COMMAND and not self._in_command and not self._held_urcs

    # --- time --------------------------------------------------------------------------------

    def call_at(self, deadline: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(deadline, callback)
        heapq.heappush(self._timers, (deadline, next(self._timer_seq), timer))
        if len(self._timers) > self._timers_compact_above:
            # A cancelled timer stays in the heap until it comes to the top; behind a live one (a
            # handshake waiting up to negotiatetime) every connection's cancelled timers would pile
            # up for minutes. Dropped whenever the heap has doubled: amortised O(1) per timer.
            self._timers = [entry for entry in self._timers if not entry[2].cancelled]
            heapq.heapify(self._timers)
            self._timers_compact_above = max(TIMERS_COMPACT_MIN, 2 * len(self._timers))
        return timer

    def next_deadline(self) -> float | None:
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def tick(self, now: float) -> None:
        self.now = now
        while self._timers and self._timers[0][0] <= now:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                self._guarded(timer.callback)

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

    def host_lost(self, now: float) -> None:
        """The host went away (its port closed, its connection dropped): the next host starts
        in command mode. A data mode it left waiting ends as when its time runs out (chosen; the
        answer goes to nobody): the bytes after AT+QSSLSEND's ``>`` are dropped unsent, those of
        AT+QFUPL kept as the file; transparent mode still held after the DTR drop (AT&D0) is left
        as with AT&D1, the connection kept."""
        self.tick(now)
        if self.mode is HostMode.DATA and self._sink is not None:
            sink = self._sink
            self._end_sink()
            self._resume(sink.expire(self))
        elif self.mode is HostMode.ONLINE and self.online is not None:
            session = self.online
            self._guarded(lambda: session.leave(self))

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
            if self._line_end_open:
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

    def _take_line_end_lf(self) -> None:
        """The first host byte after a line's CR that came in a later write: an LF there ends the
        line (echoed with ATE1 as it arrives, as the EC200T does), not data for the mode the line
        led to, when the host ends its lines with CR LF. In command mode an LF there is always
        taken (a line never starts with LF)."""
        self._line_end_open = False
        if self._input[0] != LF:
            self._host_ends_lines_with_lf = False
            return
        mode = self.mode
        if mode is HostMode.COMMAND or self._host_ends_lines_with_lf:
            del self._input[0]
            self._host_ends_lines_with_lf = True
            self.observe("line_end", data=b"\n", mode=mode.value)
            # Echoed only where the port echoes now: never into transparent mode's stream or after
            # AT+QFUPL's CONNECT, whose data is not echoed either.
            echoing = mode in (HostMode.COMMAND, HostMode.BUSY) or (mode is HostMode.DATA and self._sink_echo)
            if self.settings.echo and echoing:
                self.write_host(b"\n")

    def _edit_line(self) -> None:
        """The command-line editor: consume bytes until a line completes or input runs out."""
        # Timers already due (AT+CFUN=1,1's reboot) run before the next line is read, as they would
        # have had the host sent that line in a later write: the output never depends on how the
        # host's bytes were split (chosen).
        self.tick(self.now)
        if self.mode is not HostMode.COMMAND:
            return
        limit = self.profile.limits.line_length + 2  # "AT" plus the body
        # S3 and S5 as they are when the line starts: the line that sets S3 still ends at the old
        # terminator (V.250 6.2.1).
        terminator, erase = self.settings.s_registers[3], self.settings.s_registers[5]
        data = self._input
        plain = _plain_run(terminator, erase)
        i = 0
        try:
            while i < len(data):
                # A run of bytes that can only extend the line is taken whole, with one echo: the
                # same bytes as one at a time, without a trip through this loop for each.
                # A run that overflows the line is still taken whole: what does not fit is echoed
                # and dropped in one step, so an endless line costs time linear in its length.
                run = plain.match(data, i)
                if run is not None:
                    end = run.end()
                    if self.settings.echo:
                        self.write_host(data[i:end])
                    if not self._line_overflow:
                        room = limit - len(self._line)
                        self._line += data[i:i + min(room, end - i)]
                        self._line_overflow = end - i > room
                    i = end
                    continue
                byte = data[i]
                i += 1
                if self.settings.echo:
                    self.write_host(bytes((byte,)))
                if byte == LF and not self._line and terminator != LF:
                    continue  # the LF of a CR LF pair, or a stray one between lines: echoed, ignored
                if byte == terminator:
                    if terminator != LF and i < len(data) and data[i] == LF:
                        # The LF of CR LF came with the CR: it ends the line before the line runs,
                        # so its echo comes before the answer and no data mode can take it.
                        i += 1
                        self._host_ends_lines_with_lf = True
                        self.observe("line_end", data=b"\r\n", mode=self.mode.value)
                        if self.settings.echo:
                            self.write_host(b"\n")
                    else:
                        self._line_end_open = terminator != LF
                    self._complete_line()
                    return
                if byte in (erase, DELETE):
                    if self._line and not self._line_overflow:
                        self._line.pop()
                    continue
                if self._line_overflow:
                    continue
                if byte == ord("/") and self._line in (b"A", b"a"):
                    self._line.clear()
                    if self._last_line is None:
                        self._finish(ERROR)
                    else:
                        self._execute_line(self._last_line)
                    return
                if len(self._line) >= limit:
                    self._line_overflow = True
                    continue
                self._line.append(byte)
        finally:
            del data[:i]

    def _complete_line(self) -> None:
        line = bytes(self._line)
        overflow = self._line_overflow
        self._line.clear()
        self._line_overflow = False
        if overflow:
            log.info("command line longer than %d characters", self.profile.limits.line_length)
            self._finish(ERROR)
            return
        line = line.lstrip(b" \x00")
        if not line:
            return  # an empty line gets no answer, as on the module
        if line[:2] not in (b"AT", b"at"):
            self._finish(ERROR)
            return
        self._last_line = line
        self._execute_line(line)

    def _execute_line(self, line: bytes) -> None:
        self.observe("command", line=line)
        body = line[2:].decode("latin-1")
        try:
            calls = parse_command_line(body)
        except SyntaxProblem as problem:
            log.debug("syntax error in %r: %s", line, problem)
            self._finish(ERROR)
            return
        self._remaining_calls = calls
        try:
            self._run_calls()
        except Exception:  # a malformed outcome: logged; the line ends in ERROR, never half-finished
            log.exception("internal error in %r", line)
            self._remaining_calls.clear()
            self._finish(ERROR)

    def _run_calls(self) -> None:
        """Run the remaining calls of the line until one waits or fails, or all are done."""
        self._in_command = True
        while self._remaining_calls:
            call = self._remaining_calls.pop(0)
            self._current_call = call
            spec = COMMANDS.get(call.name)
            if spec is None:
                self.observe("unknown", name=call.name)  # a command the emulator does not implement
                self._remaining_calls.clear()
                self._finish(ERROR)
                return
            try:
                outcome = spec.handler(self, call)
            except CommandFailed as failure:
                self._fail(spec.family, failure)
                return
            except Exception:
                log.exception("internal error in %s", call.name)
                self._fail(spec.family, CommandFailed(qi_error=QI_UNKNOWN_ERROR))
                return
            if spec.family in QI_ERROR_FAMILIES:
                self.last_qi_error = 0
            if not self._apply(outcome):
                return
        self._finish(OK)

    def _fail(self, family: str, failure: CommandFailed) -> None:
        self._remaining_calls.clear()
        if family in QI_ERROR_FAMILIES:
            if failure.qi_error is not None:
                self.last_qi_error = failure.qi_error
            elif isinstance(failure, ParamError) or failure.cme is None:
                self.last_qi_error = QI_INVALID_PARAMETER
            self._finish(failure.result or ERROR)
            return
        if failure.result is not None:
            self._finish(failure.result)
        elif failure.cme is not None:
            self._finish(CmeError(failure.cme))
        else:
            self._finish(ERROR)

    def _apply(self, outcome: Outcome) -> bool:
        """Show an outcome; True when the line may go on with its next command."""
        if isinstance(outcome, Reply):
            if outcome.lines:
                self.write_host(self.block(outcome.lines))
            if outcome.raw:
                self.write_host(outcome.raw)
            if outcome.final is not OK or outcome.online is not None:
                self._remaining_calls.clear()
                self._finish(outcome.final, outcome.online)
                return False
            return True
        if isinstance(outcome, AwaitData):
            self.write_host(outcome.prompt)
            self.mode = HostMode.DATA
            self._sink = outcome.sink
            self._sink_echo = outcome.echo
            self._arm_sink_timer(outcome.sink)
            return False
        if isinstance(outcome, Pending):
            self.mode = HostMode.BUSY
            self._pending = outcome
            if outcome.deadline is not None:
                self._pending_timer = self.call_at(outcome.deadline, self._pending_expired)
            return False
        raise TypeError(f"unknown outcome {outcome!r}")

    def _finish(self, final: FinalResult | CmeError, online: OnlineSession | None = None) -> None:
        """Write the line's final result; with ``online`` the port then enters transparent mode."""
        if isinstance(final, CmeError):
            final = final.as_final(self.settings.cmee)
        self.observe("result", text=final.text)
        self.write_host(self.result_bytes(final))
        self._current_call = None
        self._in_command = False
        if online is not None:
            self.online = online
            self.mode = HostMode.ONLINE
            self._guarded(lambda: online.entered(self))
            return
        self.mode = HostMode.COMMAND
        self._flush_urcs()

    def finish_pending(self, outcome: Outcome | CommandFailed) -> None:
        """Complete the command that returned ``Pending``; the rest of its line runs after it. A
        ``CommandFailed`` ends it (and its line) as a failure of its family, as if raised."""
        if self.mode is not HostMode.BUSY:
            return
        self._pending = None
        if self._pending_timer:
            self._pending_timer.cancel()
            self._pending_timer = None
        self._resume(outcome)

    def _resume(self, outcome: Outcome | CommandFailed) -> None:
        """The running command goes on after a wait or its data: with its outcome, or failed."""
        self.mode = HostMode.COMMAND
        if isinstance(outcome, CommandFailed):
            self._fail(COMMANDS[self._current_call.name].family, outcome)
        elif self._apply(outcome):
            self._run_calls()
        self._process_input()

    def _pending_expired(self) -> None:
        pending = self._pending
        if pending is None or self.mode is not HostMode.BUSY:
            return
        self._pending_timer = None
        outcome = pending.on_timeout(self) if pending.on_timeout else Reply(final=ERROR)
        self.finish_pending(outcome)

    def _feed_sink(self) -> None:
        sink = self._sink
        consumed, outcome = sink.feed(self, bytes(self._input))
        if consumed and self.settings.echo and self._sink_echo:
            self.write_host(bytes(self._input[:consumed]))
        del self._input[:consumed]
        if outcome is not None:
            self._end_sink()
            self._resume(outcome)
        elif consumed:
            self._arm_sink_timer(sink)  # a sink's deadline may move with its data (AT+QFUPL's does)

    def _arm_sink_timer(self, sink) -> None:
        deadline = sink.deadline()
        timer = self._sink_timer
        if timer is not None:
            if timer.deadline == deadline:
                return
            timer.cancel()
            self._sink_timer = None
        if deadline is not None:
            self._sink_timer = self.call_at(deadline, self._sink_expired)

    def _end_sink(self) -> None:
        self._sink = None
        if self._sink_timer:
            self._sink_timer.cancel()
            self._sink_timer = None

    def _sink_expired(self) -> None:
        if self.mode is not HostMode.DATA or self._sink is None:
            return
        sink = self._sink
        self._sink_timer = None
        self._end_sink()
        self._resume(sink.expire(self))

    # --- transparent mode hooks --------------------------------------------------------------

    def leave_online(self, result: FinalResult) -> None:
        """Back to command mode with ``result`` (OK after +++, NO CARRIER when the peer closed)."""
        self.online = None
        self.mode = HostMode.COMMAND
        self.write_host(self.result_bytes(result))
        self._flush_urcs()
        self._process_input()
