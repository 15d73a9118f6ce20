"""Drives one modem: host bytes in and out, network effects, timers, all on one asyncio loop.

This is the only place where the core meets the clock: every call into the modem passes
``loop.time()`` (monotonic) as the current time. The host side is a ``HostLink``: the pty
(``PtyHost``) or an RFC 2217 server (``ecemu.shell.rfc2217.Rfc2217Host``).
"""

from __future__ import annotations

import asyncio
import os
import logging
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Protocol

from ecemu.commands import COMMAND_SET
from ecemu.core import events as ev
from ecemu.core.host_modes import COMMAND
from ecemu.core.modem import Modem
from ecemu.core.ufs import DirectoryFileStore
from ecemu.profile import Profile
from ecemu.shell.network import Network
from ecemu.shell.opens import OpenWatcher
from ecemu.shell.pty_port import TTY_WRITE_CHUNK, PtyPort
from ecemu.shell.shaping import OutputShaper
from ecemu.shell.trace import Tracer

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
# With boot on open: how long after the first open the module powers on. Openers flush their input
# right after opening (pyserial, picocom and miniterm do, within a millisecond or so); the boot
# URCs come after that, and the profile's timing counts from then.
OPEN_SETTLE = 0.1
BOOT_MODES = ("on-open", "at-start")


class HostLink(Protocol):
    """Where the host is: it reports bytes and comings and goings to the runner, and takes output."""

    @property
    def address(self) -> str:
        """What `ecemu run` announces as "port: ..."."""

    def start(self, runner: "ModemRunner") -> None: ...

    def write(self, data: bytes) -> int:
        """Take what can be taken now; the rest waits for ``runner.host_writable``."""

    def want_writable(self, on: bool) -> None: ...

    def discard_unread(self) -> None: ...

    def pause_reading(self, paused: bool) -> None:
        """Stop (True) or resume (False) taking bytes from the host."""

    def close(self) -> None: ...


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
    def __init__(self, profile: Profile, ufs: Path, link: Path | None = None, escape_guard: float = 1.0,
                 host: HostLink | None = None, trace: Path | None = None, modem_index: int = 0,
                 scenario: Cues | None = None, control: Callable[["ModemRunner"], ControlInterface] | None = None,
                 boot: str = "on-open"):
        if boot not in BOOT_MODES:
            raise ValueError(f"boot must be one of {', '.join(BOOT_MODES)}, not {boot!r}")
        self.profile = profile
        self.boot = boot  # on-open: the module powers on when the first host opens the port
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
        self._shaped: deque[tuple[float, bytes]] = deque()
        self._shaped_size = 0  # bytes in _shaped
        self._shaped_timer: asyncio.TimerHandle | None = None
        self.on_booted: Callable[[], None] | None = None  # called once the boot URCs are out
        self._boot_reported = False
        self.ufs = Path(ufs)
        self.host = host if host is not None else PtyHost(link)
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
        self.bytes_from_host = self.bytes_to_host = 0  # counted for the status line of `ecemu run`

    @property
    def port(self) -> "PtyPort | None":
        return getattr(self.host, "port", None)

    def start(self) -> None:
        """Open the host side, and power the modem on with boot at start; call on the running loop."""
        loop = self.loop = asyncio.get_running_loop()
        if loop.get_exception_handler() is None:
            loop.set_exception_handler(log_loop_exception)
        if self.trace_path is not None:
            self.tracer = Tracer(self.trace_path, loop.time(), self.modem_index)
        self.network = Network(self.on_network_event, on_effect=self._trace_effect,
                               round_trip=network_round_trip(self.profile) / 1000.0)
        self._files = DirectoryFileStore(self.ufs)
        self.modem = Modem(self.profile, self._files, commands=COMMAND_SET, now=loop.time(),
                           wall_clock=datetime.now(timezone.utc), escape_guard=self.escape_guard)
        if self.tracer is not None or self.scenario is not None:
            self.modem.observer = self._observe  # otherwise nobody here listens: not asked per line
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
        if self._boot_settle is not None:
            self._boot_settle.cancel()
        if self._timer is not None:
            self._timer.cancel()
        if self._shaped_timer is not None:
            self._shaped_timer.cancel()
        network: Network | None = getattr(self, "network", None)  # None when start() never ran
        if network is not None:
            network.close_all()
        self.host.close()
        if self.tracer is not None:
            self.tracer.close()
            self.tracer = None
        if self._files is not None:
            self._files.close()  # the UFS folder's descriptor

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
        if self.tracer is not None:
            self.trace("host_in", data=data)
        self.bytes_from_host += len(data)
        self._input_waiting += data
        self._feed_modem()

    def _output_full(self) -> bool:
        return len(self._host_queue) + self._shaped_size >= HOST_QUEUE_HIGH

    def _check_output_level(self) -> None:
        """Past the high mark the host holds everything up: no socket is read and the modem keeps
        its URCs and pushed data (``Modem.set_output_blocked``); under the low mark all resumes."""
        queued = len(self._host_queue) + self._shaped_size
        modem = self.modem
        if queued > HOST_QUEUE_HIGH and not modem.output_blocked:
            self.network.set_host_backpressure(True)
            modem.set_output_blocked(True)
        elif queued < HOST_QUEUE_LOW and modem.output_blocked:
            self.network.set_host_backpressure(False)
            modem.set_output_blocked(False)
            self.pump()

    def _feed_modem(self) -> None:
        """Give the modem the host's bytes while the host takes the module's output. In command
        mode a line at a time (up to S3 and the LF of a CR LF that came with it, or an ``A/``'s
        slash), so that the answers to a flood of commands never pile up beyond one command's
        answer past the mark."""
        waiting = self._input_waiting
        modem = self.modem
        while waiting and self._frozen_until is None and not self._output_full():
            size = len(waiting)
            if modem.host.mode is COMMAND:
                end = waiting.find(modem.settings.s_registers[3])
                slash = waiting.find(b"/", 0, end + 1 if end >= 0 else size)
                if slash >= 0:
                    size = slash + 1
                elif end >= 0:
                    size = end + 1
                    if waiting[size:size + 1] == b"\n":
                        size += 1  # the line end's LF: the modem takes it with its CR
            if size == len(waiting):
                piece = bytes(waiting)
                waiting.clear()
            else:
                piece = bytes(waiting[:size])
                del waiting[:size]
            modem.receive_from_host(piece, self.loop.time())
            self.pump(update_reading=False)  # once below, when the loop is done
        self._update_reading()

    def _update_reading(self) -> None:
        """Stop taking the host's bytes while some wait to be given to the modem or the modem
        holds many (flow control both ways); take them again once both have gone down."""
        backlog = self.modem.input_backlog
        if not self._host_reading_paused and (self._input_waiting or backlog > INPUT_BACKLOG_HIGH):
            self._host_reading_paused = True
            self.host.pause_reading(True)
        elif self._host_reading_paused and not self._input_waiting and backlog < INPUT_BACKLOG_LOW:
            self._host_reading_paused = False
            self.host.pause_reading(False)

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
        self.discard_host_output()

    def on_network_event(self, event: ev.NetworkEvent) -> None:
        if self.tracer is not None:
            self.trace("net_event", event=type(event).__name__, **_fields(event))
        self.modem.handle_event(event, self.loop.time())
        self.pump()

    def set_dtr(self, active: bool) -> None:
        self.modem.set_dtr(active, self.loop.time())
        self.pump()

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
            effects = modem.take_effects()
            if not effects:
                break
            for effect in effects:
                self.network.execute(effect)
        self._arm_timer(modem.next_deadline())
        if update_reading:
            self._update_reading()
        if self.scenario_player is not None:
            self.scenario_player.fire_due()
        booted = modem.host.booted
        if booted != self._boot_reported:
            self._boot_reported = booted
            if booted and self.on_booted is not None:
                self.on_booted()

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
        if self.host_has_left:
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
        self._check_output_level()

    def _write_host(self, data: bytes) -> None:
        if self.tracer is not None:
            self.trace("host_out", data=data)
        self.bytes_to_host += len(data)
        if not self._host_queue:
            written = self.host.write(data)
            if written == len(data):
                return
            data = data[written:]
        self._host_queue += data
        self.host_queue_peak = max(self.host_queue_peak, len(self._host_queue))
        self._set_want_writable(True)
        if len(self._host_queue) > HOST_QUEUE_HIGH:
            self._check_output_level()

    def host_writable(self) -> None:
        if not self._host_queue:
            self._set_want_writable(False)
            return
        written = self.host.write(bytes(self._host_queue[:65536]))
        del self._host_queue[:written]
        if not self._host_queue:
            self._set_want_writable(False)
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


class PtyHost:
    """The host behind a pseudo-terminal; inotify on its path tells when hosts come and go."""

    def __init__(self, link: Path | None = None):
        self.link = link
        self.port: PtyPort | None = None  # from start() until close()
        self.runner: ModemRunner  # from start()
        self._watcher: OpenWatcher | None = None
        self.opens = 0  # descriptors hosts hold on the port now
        self._unprocessed: list[int] = []  # opens and closes read by write(), not yet handled
        # poll_news(0): opens or closes are waiting to be read (a system call, no Python frame:
        # it is asked twice for every command line); None without a watcher.
        self._poll_news: Callable[[int], list] | None = None
        # Opens and closes were just looked for (before reading the host's bytes): the first
        # write of their answer need not look again before it, only after.
        self._just_checked = False

    @property
    def address(self) -> str:
        return self.port.path if self.port is not None else ""

    def start(self, runner: ModemRunner) -> None:
        self.runner = runner
        port = self.port = PtyPort(self.link)
        loop = runner.loop
        loop.add_reader(port.master, self._on_readable)
        self._watcher = OpenWatcher(port.path)
        if self._watcher.fd is not None:
            loop.add_reader(self._watcher.fd, self._on_open_or_close)
        self._poll_news = self._watcher.poll_news

    def write(self, data: bytes) -> int:
        """Write in pieces the kernel writes in one go, checking before and after each for a
        host that left. A bigger write is split by the kernel, which may pause between the
        pieces: the next host could open the port and flush it in the pause, and get the rest.
        Nothing is written once a host is known to have left, and what went in while it left
        is flushed at once; the runner hears of the comings and goings on the next loop turn."""
        port = self.port
        if port is None:
            return len(data)  # closed: for nobody
        written = 0
        just_checked, self._just_checked = self._just_checked, False
        while written < len(data):
            if not just_checked and self._noticed_a_leave():
                return len(data)  # for nobody: the runner drops the rest when it hears
            just_checked = False
            count = port.write(data[written:written + TTY_WRITE_CHUNK])
            written += count
            if count and self._noticed_a_leave():
                port.discard_unread()
                return len(data)
            if count < TTY_WRITE_CHUNK:
                break
        return written

    def _noticed_a_leave(self) -> bool:
        """Read opens and closes (kept for ``_on_open_or_close``); whether the last host has
        left since the runner last heard (perhaps to be replaced by the next at once)."""
        poll_news = self._poll_news
        if poll_news is None:
            return False
        if poll_news(0):
            assert self._watcher is not None  # poll_news is its
            changes = self._watcher.read()
            if changes:
                if not self._unprocessed:
                    self.runner.loop.call_soon(self._settle_comings_and_goings)
                self._unprocessed += changes
        return bool(self._unprocessed) and self._somebody_leaves(self._unprocessed)

    def _somebody_leaves(self, changes: list[int]) -> bool:
        opens = self.opens
        for change in changes:
            opens = max(0, opens + change)
            if opens == 0:
                return True
        return False

    def want_writable(self, on: bool) -> None:
        if self.port is None:
            return
        if on:
            self.runner.loop.add_writer(self.port.master, self._on_writable)
        else:
            self.runner.loop.remove_writer(self.port.master)

    def _on_writable(self) -> None:
        # Opens and closes first: when a host closed the port and the next opened it, what was
        # queued for the one that left is dropped before any of it reaches the new one.
        self._settle_comings_and_goings()
        self.runner.host_writable()

    def _settle_comings_and_goings(self) -> None:
        """Handle every open and close so far, those that happen while handling them included
        (a write or a read in the middle may notice more)."""
        self._on_open_or_close()
        while self._unprocessed:
            self._on_open_or_close()

    def discard_unread(self) -> None:
        if self.port is not None:
            self.port.discard_unread()

    def pause_reading(self, paused: bool) -> None:
        if self.port is None:
            return
        if paused:
            self.runner.loop.remove_reader(self.port.master)
        else:
            self.runner.loop.add_reader(self.port.master, self._on_readable)

    def _on_readable(self) -> None:
        # Opens and closes first: a host opens the port before it writes, so this keeps the
        # order in which the two reach the emulator through separate channels.
        poll_news = self._poll_news
        if self._unprocessed or (poll_news is not None and poll_news(0)):
            self._settle_comings_and_goings()
        data = self._read()
        # Not asked again before the answer's first write (asked after it): a host that came or
        # went in the moment since is noticed there, and what was written for the one that left
        # is flushed.
        self._just_checked = True
        try:
            self.runner.host_data(data)
        finally:
            self._just_checked = False

    def _read(self) -> bytes:
        return self.port.read() if self.port is not None else b""

    def _count(self, changes: list[int]) -> tuple[bool, bool]:
        """Apply opens (+1) and closes (-1); returns (a host was there before, someone left)."""
        was_open = self.opens > 0
        someone_left = False
        for change in changes:
            self.opens = max(0, self.opens + change)
            someone_left |= self.opens == 0
        return was_open, someone_left

    def _on_open_or_close(self) -> None:
        if self.port is None:
            return  # closed: a check scheduled by a last write comes too late
        watcher = self._watcher
        changes = self._unprocessed + (watcher.read() if watcher is not None else [])
        self._unprocessed = []
        if not changes:
            return
        was_open, someone_left = self._count(changes)
        log.debug("port opens/closes %s: %d host descriptors now", changes, self.opens)
        if self.opens == 0 or someone_left:
            last_words = self._read()
            # A host opens before it writes: if nobody opened since, all of ``last_words`` came
            # from the host that left; otherwise part may be the next host's (chosen: all of it
            # goes to the next host, after the one that left has been let go, so that no command
            # of the new host is ever taken as the old one's data or answered to nobody).
            self._count(watcher.read() if watcher is not None else [])
            if self.opens == 0:
                self.runner.host_left(last_words)
                return
            self.runner.host_left()
            self.runner.host_attached()
            self.runner.host_data(last_words)
        elif not was_open:
            self.runner.host_attached()

    def close(self) -> None:
        loop = self.runner.loop if self.port is not None else None  # started, not closed
        if self.port is not None and loop is not None:
            loop.remove_reader(self.port.master)
            loop.remove_writer(self.port.master)
        if self._watcher is not None:
            if self._watcher.fd is not None and loop is not None:
                loop.remove_reader(self._watcher.fd)
            self._watcher.close()
        if self.port is not None:
            self.port.close()
            self.port = None
