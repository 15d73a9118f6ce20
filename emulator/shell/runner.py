"""Drives one modem: host bytes in and out, network effects, timers, all on one asyncio loop.

This is the only place where the core meets the clock: every call into the modem passes
``loop.time()`` (monotonic) as the current time. The host side is a ``HostLink``
(``host_link.py``) the assembler hands in: the pty (``pty_port.PtyHost``), a serial device, RFC
2217 or raw TCP; the runner never asks which. The UFS is a ``file_store.DirectoryFileStore``.
"""

from __future__ import annotations

import asyncio
import os
import logging
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Protocol

from ..commands import COMMAND_SET
from ..core import events as ev
from ..core.host_modes import COMMAND
from ..core.modem import Modem
from ..core.uart import DropInput, LineFormat, LineLevel, PortChange, TransmitHold
from ..profile import Profile
from .file_store import DirectoryFileStore
from .host_link import HostLink
from .ip_link import IpLinks
from .network import Network
from .shaping import OutputShaper
from .trace import Tracer
from .uart_line import LINE_KINDS, UartLine

log = logging.getLogger(__name__)

# Bytes waiting for the host above which the sockets stop being read and the module takes no more
# of the host's bytes (a UART with flow control), and below which both resume. The queue never
# holds more than HOST_QUEUE_HIGH plus the answer to one command (AT+QFDWL: a whole file).
HOST_QUEUE_HIGH = 256 * 1024
HOST_QUEUE_LOW = 64 * 1024
# Host bytes the modem has not consumed yet (a transparent connection whose server is slow) above
# which the port stops being read, so that the host's own writes block, as on a real UART with
# flow control; below the low mark reading resumes.
INPUT_BACKLOG_HIGH = 256 * 1024
INPUT_BACKLOG_LOW = 64 * 1024
# With the UART line: host bytes on their way over the line above which the port stops being
# read (what a host's serial driver buffers before its write blocks), and below which it resumes.
LINE_INPUT_HIGH = 4096
LINE_INPUT_LOW = 1024
# With boot on open: how long after the first open the module powers on. Openers flush their input
# right after opening (pyserial, picocom and miniterm do, within a millisecond or so); the boot
# URCs come after that, and the profile's timing counts from then.
OPEN_SETTLE = 0.1
NOT_TEXT_EVERY = 10.0  # seconds between two log lines about a host whose bytes are not text
BOOT_MODES = ("on-open", "at-start")


class ControlInterface(Protocol):
    """The control operations on one modem (``ecemu.control.Controller``)."""

    def invoke(self, name: str, raw_args: dict[str, Any]) -> Any: ...


class CuePlayer(Protocol):
    """Fires faults on cue (``ecemu.scenario.ScenarioPlayer``)."""

    def start(self) -> None: ...

    def observe(self, kind: str, details: dict) -> None: ...

    def fire_due(self) -> None: ...


class Cues(Protocol):
    """A scenario (``ecemu.scenario.Scenario``): what plays it on a runner."""

    def player(self, runner: "ModemRunner") -> CuePlayer: ...
# Overrides every profile's network round trip, in milliseconds: 0 for fast test suites.
ROUND_TRIP_ENV = "ECEMU_NETWORK_RTT_MS"


def network_round_trip(profile: Profile) -> int:
    """The round trip in ms: the environment's override (ECEMU_NETWORK_RTT_MS), else the profile's."""
    override = os.environ.get(ROUND_TRIP_ENV, "").strip()
    if override:
        if not override.isdigit() or int(override) > 60000:
            raise ValueError(f"{ROUND_TRIP_ENV} must be 0-60000 (milliseconds), not {override!r}")
        return int(override)
    return profile.network.round_trip_ms


class ModemRunner:
    def __init__(self, profile: Profile, ufs: Path, host: HostLink, escape_guard: float = 1.0,
                 trace: Path | None = None, modem_index: int = 0,
                 scenario: Cues | None = None, control: Callable[["ModemRunner"], ControlInterface] | None = None,
                 boot: str = "on-open", baud: int = 115200, line: str = "usb"):
        if boot not in BOOT_MODES:
            raise ValueError(f"boot must be one of {', '.join(BOOT_MODES)}, not {boot!r}")
        if line not in LINE_KINDS:
            raise ValueError(f"line must be one of {', '.join(LINE_KINDS)}, not {line!r}")
        self.line_kind = line  # usb: bytes at memory speed; uart: at the line's rate (uart_line.py)
        self.line: UartLine | None = None
        self.profile = profile
        self.boot = boot  # on-open: the module powers on when the first host opens the port
        self.baud = baud  # the UART's rate at power-on (AT+IPR)
        self._pending_format: LineFormat | None = None  # applied once the output before it is out
        self.powered = False
        self._boot_settle: asyncio.TimerHandle | None = None
        self.scenario = scenario  # faults fired on cue
        self.scenario_player: CuePlayer | None = None
        self._make_controller = control
        self.controller: ControlInterface | None = None
        self.trace_path = trace
        self.modem_index = modem_index
        self.tracer: Tracer | None = None
        self.shaper = OutputShaper()
        self._frozen_until: float | None = None
        # Host bytes read and not yet given to the modem: they wait while the host's output is
        # full (and while frozen); the port is not read while any wait, so this stays small.
        self._input_waiting = bytearray()
        # How many of those bytes a host that left wrote: their answers go to nobody, even when
        # the next host has come meanwhile (what the pty's own watch does for its bytes).
        self._old_host_input = 0
        self._not_text_said = -NOT_TEXT_EVERY  # when the log last said the host's bytes were not text
        self._shaped: deque[tuple[float, bytes]] = deque()
        self._shaped_size = 0  # bytes in _shaped
        self._shaped_timer: asyncio.TimerHandle | None = None
        self.on_booted: Callable[[], None] | None = None  # called once the boot URCs are out
        self._boot_reported = False
        self.ufs = Path(ufs)
        self.host = host
        self.escape_guard = escape_guard
        # Made by start(), on the running loop; nothing reaches them before.
        self.modem: Modem
        self.network: Network
        self.loop: asyncio.AbstractEventLoop
        self._files: DirectoryFileStore | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: float | None = None
        self._host_queue = bytearray()
        self.host_queue_peak = 0  # the most bytes ever waiting for the host (tests check the bound)
        self._want_writable = False
        self._host_reading_paused = False
        self.host_has_left = False  # a host was attached and none is now: output is dropped
        self._host_came_before = False  # until the first host, output waits for it (boot URCs)
        self._output_held = False  # AT+IFC=2,2 and the host's RTS off: output waits, in order
        self._input_full = False  # the module's input buffer is full (CTS off with AT+IFC=2,2)
        # RI as the control interface sees it: when the pulse began, the last one's width, and
        # who waits for the next to end (``ecemu ctl wait-ri``).
        self._ri_since: float | None = None
        self.last_ri_pulse_ms: float | None = None
        self._ri_waiters: list[asyncio.Future] = []
        self.bytes_from_host = self.bytes_to_host = 0  # counted for the status line of `ecemu run`

    def start(self) -> None:
        """Open the host side, and power the modem on with boot at start; call on the running loop."""
        loop = self.loop = asyncio.get_running_loop()
        if loop.get_exception_handler() is None:
            loop.set_exception_handler(log_loop_exception)
        if self.trace_path is not None:
            self.tracer = Tracer(self.trace_path, loop.time(), self.modem_index)
        self.network = Network(self.on_network_event, on_effect=self._trace_effect,
                               round_trip=network_round_trip(self.profile) / 1000.0)
        # The data calls' IP links (PPP) through libslirp, a packet at a time: flows are traced, not packets.
        self.ip_links = IpLinks(self.on_network_event, self.network, self.trace)
        self._files = DirectoryFileStore(self.ufs)
        self.modem = Modem(self.profile, self._files, commands=COMMAND_SET, now=loop.time(),
                           wall_clock=datetime.now(timezone.utc), escape_guard=self.escape_guard,
                           baud_rate=self.baud)
        if self.tracer is not None or self.scenario is not None:
            self.modem.observer = self._observe  # otherwise nobody here listens: not asked per line
        if self.line_kind == "uart":
            self.line = UartLine(loop, self.modem.line_format, self._take_from_host, self._off_the_line)
        if self._make_controller is not None:
            self.controller = self._make_controller(self)
        if self.scenario is not None:
            self.scenario_player = self.scenario.player(self)
            self.scenario_player.start()
        self.host.start(self)
        if self.boot == "at-start":
            self.power_on()
        self.pump()

    def power_on(self) -> None:
        """Power the module on now (boot URCs timed from now), unless it already is."""
        if self.powered:
            return
        self.powered = True
        if self._boot_settle is not None:
            self._boot_settle.cancel()
            self._boot_settle = None
        self.modem.power_on(self.loop.time())
        self.pump()

    def host_flushed_input(self) -> None:
        """The host purged the port (an RFC 2217 client does as it opens): with boot on open,
        the module powers on now, so the boot URCs come after the purge."""
        if self._host_came_before:
            self.power_on()

    def stop(self) -> None:
        """Cancel the timers, close the connections, the host link, the trace and the UFS; each
        step runs even when one before it failed, so a stop always ends."""
        for handle in (self._boot_settle, self._timer, self._shaped_timer):
            if handle is not None:
                handle.cancel()
        if self.line is not None:
            self.line.close()
        network: Network | None = getattr(self, "network", None)  # None when start() never ran
        steps: list[Callable[[], None]] = []
        if network is not None:
            steps.append(network.close_all)
            steps.append(self.ip_links.close_all)
        steps.append(self.host.close)
        if self.tracer is not None:
            steps.append(self.tracer.close)
        if self._files is not None:
            steps.append(self._files.close)  # the UFS folder's descriptor
        for step in steps:
            try:
                step()
            except Exception:
                log.exception("while stopping")
        self.tracer = None

    # --- the trace ---------------------------------------------------------------------------

    def trace(self, kind: str, **details) -> None:
        if self.tracer is not None:
            self.tracer.record(self.loop.time(), kind, **details)

    def _observe(self, kind: str, details: dict) -> None:
        """What the core reports (commands, results, URCs, TLS): to the trace and the scenario."""
        if self.tracer is not None:
            self.trace(kind, **details)
        if self.scenario_player is not None:
            self.scenario_player.observe(kind, details)

    def _trace_effect(self, effect: ev.Effect) -> None:
        if self.tracer is not None:
            self.trace("net_effect", effect=type(effect).__name__, **_fields(effect))

    def fault(self, name: str, args: dict) -> None:
        """A fault was injected: into the trace with its arguments."""
        self.trace("fault", name=name, args=args)

    def freeze(self, seconds: float) -> None:
        """The module stops answering: host bytes wait until the freeze ends."""
        self._frozen_until = self.loop.time() + seconds
        self.loop.call_at(self._frozen_until, self._thaw)

    def _thaw(self) -> None:
        if self._frozen_until is not None and self.loop.time() >= self._frozen_until:
            self._frozen_until = None
            self._feed_modem()

    # --- into the core -----------------------------------------------------------------------

    def host_data(self, data: bytes) -> None:
        if not data:
            return
        line = self.line
        if line is not None:
            line.incoming.push(data)  # reaches the module byte by byte, at the line's rate
            self._update_reading()
            return
        self._take_from_host(data)

    def _take_from_host(self, data: bytes) -> None:
        """The host's bytes have reached the module."""
        if self.tracer is not None:
            self.trace("host_in", data=data)
        if not data.isascii() and self.modem.port.host.mode is COMMAND:
            self._not_text(data)
        self.bytes_from_host += len(data)
        self._input_waiting += data
        self._feed_modem()

    def _not_text(self, data: bytes) -> None:
        """Bytes outside ASCII where the module expects command lines: what a host at another
        rate or framing sends (or line noise). They go to the module as they are (its line editor
        answers ERROR to such a line); the log says what is likely wrong, at most every 10 s."""
        if b"AT" in data or b"at" in data:
            return  # a command line with binary data after it (AT+QFUPL's, say)
        now = self.loop.time()
        if now - self._not_text_said < NOT_TEXT_EVERY:
            return
        self._not_text_said = now
        line_format = self.modem.line_format
        log.warning("%d of %d bytes from the host are not text: is it at the module's rate and framing "
                    "(AT+IPR=%d, %s)?", sum(byte >= 0x80 for byte in data), len(data), line_format.baud,
                    line_format.describe())

    def _output_queued(self) -> int:
        """Bytes of the module's output the host has not taken yet."""
        queued = len(self._host_queue) + self._shaped_size
        if self.line is not None:
            queued += len(self.line.outgoing)
        return queued

    def _output_full(self) -> bool:
        return self._output_queued() >= HOST_QUEUE_HIGH

    def _check_output_level(self) -> None:
        """Past the high mark the host holds everything up: no socket is read and the modem keeps
        its URCs and pushed data (``Modem.set_output_blocked``); under the low mark all resumes."""
        queued = self._output_queued()
        modem = self.modem
        if queued > HOST_QUEUE_HIGH and not modem.output_blocked:
            self.network.set_host_backpressure(True)
            modem.set_output_blocked(True)
        elif queued < HOST_QUEUE_LOW and modem.output_blocked:
            self.network.set_host_backpressure(False)
            modem.set_output_blocked(False)
            self.pump()

    def _feed_modem(self) -> None:
        """Give the modem the host's bytes while the host takes the module's output, as many at a
        time as it wants (``Modem.input_wanted``: in command mode a line at a time), so that the
        answers to a flood of commands never pile up beyond one command's answer past the mark."""
        waiting = self._input_waiting
        modem = self.modem
        while waiting and self._frozen_until is None and self._output_queued() < HOST_QUEUE_HIGH:
            size = modem.input_wanted(waiting)
            if size == len(waiting):
                piece = bytes(waiting)
                waiting.clear()
            else:
                piece = bytes(waiting[:size])
                del waiting[:size]
            modem.receive_from_host(piece, self.loop.time())
            self.pump(update_reading=False)  # once below, when the loop is done
            if self._old_host_input:
                self._old_host_input = max(0, self._old_host_input - len(piece))
        self._update_reading()

    def _update_reading(self) -> None:
        """Stop taking the host's bytes while some wait to be given to the modem or the modem
        holds many (flow control both ways); take them again once both have gone down."""
        backlog = self.modem.input_backlog
        on_the_line = len(self.line.incoming) if self.line is not None else 0
        if not self._host_reading_paused and (self._input_waiting or backlog > INPUT_BACKLOG_HIGH
                                              or on_the_line > LINE_INPUT_HIGH):
            self._host_reading_paused = True
            self.host.pause_reading(True)
        elif (self._host_reading_paused and not self._input_waiting and backlog < INPUT_BACKLOG_LOW
              and on_the_line <= LINE_INPUT_LOW):
            self._host_reading_paused = False
            self.host.pause_reading(False)
        if self._host_reading_paused or self._input_full:
            # Full for a reason that lasts, not bytes passing through: CTS off with AT+IFC=2,2.
            full = self._host_reading_paused and (
                backlog > INPUT_BACKLOG_HIGH or on_the_line > LINE_INPUT_HIGH or self._frozen_until is not None
                or self._output_full())
            if full != self._input_full:
                self._input_full = full
                self.modem.set_input_full(full, self.loop.time())

    def host_attached(self) -> None:
        """A host opened the port (or connected); what the module said to an earlier one was
        dropped when it left (``host_left``). With boot on open the first one powers the module
        on, the host link's ``open_settle`` later (or as it purges, ``host_flushed_input``)."""
        self._host_came_before = True
        self.host_has_left = False
        self.set_dtr(True)
        if not self.powered and self._boot_settle is None:
            settle = getattr(self.host, "open_settle", OPEN_SETTLE)
            self._boot_settle = self.loop.call_later(settle, self.power_on)

    def host_left(self, last_words: bytes = b"") -> None:
        """The last host went: what it wrote is still executed (nothing received is dropped),
        but what the module says while nobody listens is lost, as on a real port, and leaving
        drops DTR as a serial driver does on hang-up. A data mode the host left waiting (the
        ``>`` of AT+QSSLSEND, AT+QFUPL's CONNECT, transparent mode) ends, so that the next host
        starts in command mode (see ``Modem.host_lost``)."""
        self.host_has_left = True
        self.host_data(last_words)
        self.set_dtr(False)
        self.modem.host_lost(self.loop.time())
        self.pump()
        self._old_host_input = len(self._input_waiting) + (len(self.line.incoming) if self.line is not None else 0)
        self.discard_host_output()

    def on_network_event(self, event: ev.NetworkEvent) -> None:
        if self.tracer is not None and not isinstance(event, ev.IpPacket):
            self.trace("net_event", event=type(event).__name__, **_fields(event))
        self.modem.handle_event(event, self.loop.time())
        self.pump()

    def set_dtr(self, active: bool) -> None:
        self.modem.set_dtr(active, self.loop.time())
        self.pump()

    def set_rts(self, active: bool) -> None:
        self.modem.set_rts(active, self.loop.time())
        self.pump()

    @property
    def has_host(self) -> bool:
        """A host holds the port now (opened it, connected, or is on the device)."""
        return self._host_came_before and not self.host_has_left

    # Read-only views of the flow control between the host and the module, for tests and tools.

    @property
    def reading_paused(self) -> bool:
        """The port is not being read: the host's bytes wait in the pty (or socket) until the
        module has taken what it holds (``input_held``) and its input backlog has gone down."""
        return self._host_reading_paused

    @property
    def output_full(self) -> bool:
        """The module's output the host has not taken is past the high mark: no more of the
        host's bytes go to the module until it goes down."""
        return self._output_full()

    @property
    def input_held(self) -> int:
        """Bytes read from the host and not yet given to the module (they wait while the output is
        full or the module is frozen)."""
        return len(self._input_waiting)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_deadline = None
        self.modem.tick(self.loop.time())
        self.pump()

    # --- out of the core ---------------------------------------------------------------------

    def pump(self, update_reading: bool = True) -> None:
        """Carry out whatever the modem produced, then re-arm the timer for its next deadline."""
        modem = self.modem
        while True:
            out = modem.take_host_bytes()
            if out:
                self._send_to_host(out)
            if modem.port_changes:
                self._change_port(modem.take_port_changes())
            if not modem.effects:
                break
            for effect in modem.take_effects():
                if isinstance(effect, ev.IP_LINK_EFFECTS):
                    self.ip_links.execute(effect)
                else:
                    self.network.execute(effect)
        self._arm_timer(modem.next_deadline())
        if update_reading:
            self._update_reading()
        if self.scenario_player is not None:
            self.scenario_player.fire_due()
        booted = modem.booted
        if booted != self._boot_reported:
            self._boot_reported = booted
            if booted and self.on_booted is not None:
                self.on_booted()

    def _change_port(self, changes: list[PortChange]) -> None:
        """What the module did to its port (``core/uart.py``), carried out on the host link."""
        for change in changes:
            if isinstance(change, DropInput):
                self.drop_input()
            elif isinstance(change, LineFormat):
                self._pending_format = change
                self._apply_format_when_drained()
            elif isinstance(change, LineLevel):
                self.host.set_module_line(change.line, change.active)
                if change.line == "ri":
                    self._ri_edge(change.active)
            elif isinstance(change, TransmitHold):
                self._hold_output(change.held)

    def _ri_edge(self, active: bool) -> None:
        now = self.modem.now  # when the module moved RI: its pulses are timed on its clock
        if active:
            self._ri_since = now
            return
        if self._ri_since is None:
            return
        self.last_ri_pulse_ms = round((now - self._ri_since) * 1000.0, 1)
        self._ri_since = None
        waiters, self._ri_waiters = self._ri_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result({"width_ms": self.last_ri_pulse_ms})

    def wait_for_ri_pulse(self) -> asyncio.Future:
        """A future with the next RI pulse's width once it ends (``{"width_ms": ...}``)."""
        waiter = self.loop.create_future()
        self._ri_waiters.append(waiter)
        return waiter

    def _hold_output(self, held: bool) -> None:
        """RTS off with AT+IFC=2,2: nothing more goes to the host (the byte on the wire ends);
        what the module says waits, in order, and the usual bounds stop it when much waits."""
        self._output_held = held
        if self.line is not None:
            self.line.outgoing.hold(held)
        if held:
            self._set_want_writable(False)
        elif self._host_queue:
            self._set_want_writable(True)

    def _apply_format_when_drained(self) -> None:
        """A new rate or framing applies once what the module said before it has gone to the host
        (the module answers AT+IPR at the old rate)."""
        line_format = self._pending_format
        if line_format is None or self._host_queue or self._shaped or (self.line is not None and self.line.outgoing):
            return
        self._pending_format = None
        self.trace("line_format", baud=line_format.baud, framing=line_format.describe())
        if self.line is not None:
            self.line.set_format(line_format)
        self.host.set_format(line_format)

    def drop_input(self) -> None:
        """The module lost what it had received and not read (a power cycle): the bytes waiting
        here and those still in the port; the host's later input starts clean. A module frozen
        by ``ecemu ctl freeze`` that reboots runs again."""
        self._frozen_until = None
        self._old_host_input = 0
        if self.line is not None:
            self.line.incoming.clear()
        if self._input_waiting:
            log.info("the module rebooted: %d bytes the host had sent were lost with its UART",
                     len(self._input_waiting))
            self._input_waiting.clear()
        self.host.discard_input()

    def _arm_timer(self, deadline: float | None) -> None:
        if deadline == self._timer_deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_deadline = deadline
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _send_to_host(self, data: bytes) -> None:
        if self.host_has_left or self._old_host_input:
            return
        if self.shaper.active or self._shaped:
            pieces = self.shaper.shape(data, self.loop.time())
            self._shaped.extend(pieces)
            self._shaped_size += sum(len(piece) for _, piece in pieces)
            self._release_shaped()
            return
        self._write_host(data)

    def _release_shaped(self) -> None:
        if self._shaped_timer is not None:
            self._shaped_timer.cancel()
            self._shaped_timer = None
        now = self.loop.time()
        while self._shaped and self._shaped[0][0] <= now:
            piece = self._shaped.popleft()[1]
            self._shaped_size -= len(piece)
            self._write_host(piece)
        if self._shaped:
            self._shaped_timer = self.loop.call_at(self._shaped[0][0], self._release_shaped)
        elif self._pending_format is not None:
            self._apply_format_when_drained()
        self._check_output_level()

    def _write_host(self, data: bytes) -> None:
        line = self.line
        if line is not None:
            line.outgoing.push(data)  # leaves at the line's rate: _write_host_now
            if len(line.outgoing) > HOST_QUEUE_HIGH:
                self._check_output_level()
            return
        self._write_host_now(data)

    def _write_host_now(self, data: bytes) -> None:
        if self.tracer is not None:
            self.trace("host_out", data=data)
        self.bytes_to_host += len(data)
        if not self._host_queue and not self._output_held:
            written = self.host.write(data)
            if written == len(data):
                return
            data = data[written:]
        self._host_queue += data
        self.host_queue_peak = max(self.host_queue_peak, len(self._host_queue))
        self._set_want_writable(not self._output_held)
        if len(self._host_queue) > HOST_QUEUE_HIGH:
            self._check_output_level()

    def _off_the_line(self, data: bytes) -> None:
        """The UART line handed the module's bytes to the host: then the modem may take more of
        the host's (its output is no longer full), and a new rate may apply."""
        self._write_host_now(data)
        if self._pending_format is not None:
            self._apply_format_when_drained()
        self._check_output_level()
        if self._input_waiting and not self._output_full():
            self._feed_modem()

    def host_writable(self) -> None:
        if not self._host_queue or self._output_held:
            self._set_want_writable(False)
            return
        written = self.host.write(bytes(self._host_queue[:65536]))
        del self._host_queue[:written]
        if not self._host_queue:
            self._set_want_writable(False)
            if self._pending_format is not None:
                self._apply_format_when_drained()
        if len(self._host_queue) < HOST_QUEUE_LOW:
            self._check_output_level()
            if self._input_waiting:
                self._feed_modem()

    def _set_want_writable(self, on: bool) -> None:
        if on != self._want_writable:
            self._want_writable = on
            self.host.want_writable(on)

    def discard_host_output(self) -> None:
        """Forget what the module said that no host has read."""
        self._host_queue.clear()
        self._shaped.clear()
        self._shaped_size = 0
        if self.line is not None:
            self.line.outgoing.clear()
        self._set_want_writable(False)
        self.host.discard_unread()
        self._check_output_level()
        if self._input_waiting:
            self._feed_modem()


def log_loop_exception(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """An exception no task or callback handled (asyncio's "Task exception was never retrieved"):
    a bug, logged as an error (the tests fail on it) instead of asyncio's default report."""
    exc = context.get("exception")
    log.error("unhandled in the event loop: %s", context.get("message", "error"),
              exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None)


def _fields(record) -> dict:
    return {k: v for k, v in vars(record).items()} if hasattr(record, "__dict__") else {
        name: getattr(record, name) for name in record.__dataclass_fields__}
