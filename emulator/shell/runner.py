"""Drives one modem: host bytes in and out, network effects, timers, all on one asyncio loop.

This is the only place where the core meets the clock: every call into the modem passes
``loop.time()`` (monotonic) as the current time. The host side is a ``HostLink``: the pty
(``PtyHost``) or an RFC 2217 server (``emulator.shell.rfc2217.Rfc2217Host``).
"""

from __future__ import annotations

import asyncio
import os
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Protocol

from emulator.commands import COMMAND_SET
from emulator.core import events as ev
from emulator.core.modem import Modem
from emulator.core.ufs import DirectoryFileStore
from emulator.profile import Profile
from emulator.shell.network import Network
from emulator.shell.opens import OpenWatcher
from emulator.shell.pty_port import PtyPort
from emulator.shell.shaping import OutputShaper
from emulator.shell.trace import Tracer

log = logging.getLogger(__name__)

# Bytes waiting for the host above which the sockets stop being read, and below which they resume.
HOST_QUEUE_HIGH = 256 * 1024
HOST_QUEUE_LOW = 64 * 1024
# Host bytes the modem has not consumed yet (a transparent connection whose server is slow) above
# which the port stops being read, so that the host's own writes block, as on a real UART with
# flow control; below the low mark reading resumes.
INPUT_BACKLOG_HIGH = 256 * 1024
INPUT_BACKLOG_LOW = 64 * 1024


class HostLink(Protocol):
    """Where the host is: it reports bytes and comings and goings to the runner, and takes output."""

    address: str  # what `ecemu run` announces as "port: ..."

    def start(self, runner: "ModemRunner") -> None: ...

    def write(self, data: bytes) -> int:
        """Take what can be taken now; the rest waits for ``runner.host_writable``."""

    def want_writable(self, on: bool) -> None: ...

    def discard_unread(self) -> None: ...

    def pause_reading(self, paused: bool) -> None:
        """Stop (True) or resume (False) taking bytes from the host."""

    def close(self) -> None: ...


class ControlInterface(Protocol):
    """The control operations on one modem (``emulator.control.Controller``)."""

    def invoke(self, name: str, raw_args: dict[str, Any]) -> Any: ...


class CuePlayer(Protocol):
    """Fires faults on cue (``emulator.scenario.ScenarioPlayer``)."""

    def start(self) -> None: ...

    def observe(self, kind: str, details: dict) -> None: ...

    def fire_due(self) -> None: ...


class Cues(Protocol):
    """A scenario (``emulator.scenario.Scenario``): what plays it on a runner."""

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
                 scenario: Cues | None = None, control: Callable[["ModemRunner"], ControlInterface] | None = None):
        self.profile = profile
        self.scenario = scenario  # faults fired on cue
        self.scenario_player: CuePlayer | None = None
        self._make_controller = control
        self.controller: ControlInterface | None = None
        self.trace_path = trace
        self.modem_index = modem_index
        self.tracer: Tracer | None = None
        self.shaper = OutputShaper()
        self._frozen_until: float | None = None
        self._held_input = bytearray()
        self._shaped: list[tuple[float, bytes]] = []
        self._shaped_timer: asyncio.TimerHandle | None = None
        self.on_booted: Callable[[], None] | None = None  # called once the boot URCs are out
        self._boot_reported = False
        self.ufs = Path(ufs)
        self.host = host if host is not None else PtyHost(link)
        self.escape_guard = escape_guard
        self.modem: Modem | None = None
        self.network: Network | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: float | None = None
        self._host_queue = bytearray()
        self._want_writable = False
        self._host_reading_paused = False
        self.host_has_left = False  # a host was attached and none is now: output is dropped
        self._host_came_before = False  # until the first host, output waits for it (boot URCs)
        self.bytes_from_host = self.bytes_to_host = 0  # counted for the status line of `ecemu run`

    @property
    def port(self) -> "PtyPort | None":
        return getattr(self.host, "port", None)

    def start(self) -> None:
        """Open the host side and power the modem on; call on the running loop."""
        loop = self.loop = asyncio.get_running_loop()
        if self.trace_path is not None:
            self.tracer = Tracer(self.trace_path, loop.time(), self.modem_index)
        self.network = Network(self.on_network_event, on_effect=self._trace_effect,
                               round_trip=network_round_trip(self.profile) / 1000.0)
        self.modem = Modem(self.profile, DirectoryFileStore(self.ufs), commands=COMMAND_SET, now=loop.time(),
                           wall_clock=datetime.now(timezone.utc), escape_guard=self.escape_guard)
        self.modem.observer = self._observe
        if self._make_controller is not None:
            self.controller = self._make_controller(self)
        if self.scenario is not None:
            self.scenario_player = self.scenario.player(self)
            self.scenario_player.start()
        self.host.start(self)
        self.modem.power_on(loop.time())
        self.pump()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._shaped_timer is not None:
            self._shaped_timer.cancel()
        if self.network is not None:
            self.network.close_all()
        self.host.close()
        if self.tracer is not None:
            self.tracer.close()
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
            held, self._held_input = bytes(self._held_input), bytearray()
            self.host_data(held)

    # --- into the core -----------------------------------------------------------------------

    def host_data(self, data: bytes) -> None:
        if not data:
            return
        self.trace("host_in", data=data)
        self.bytes_from_host += len(data)
        if self._frozen_until is not None:
            self._held_input += data
            return
        self.modem.receive_from_host(data, self.loop.time())
        self.pump()

    def host_attached(self) -> None:
        """A host opened the port (or connected); output left over from an earlier host is stale."""
        if self._host_came_before:
            self.discard_host_output()
        self._host_came_before = True
        self.host_has_left = False
        self.set_dtr(True)

    def host_left(self, last_words: bytes = b"") -> None:
        """The last host went: what it wrote is still executed (nothing received is dropped),
        but what the module says while nobody listens is lost, as on a real port, and leaving
        drops DTR as a serial driver does on hang-up."""
        self.host_has_left = True
        self.host_data(last_words)
        self.set_dtr(False)
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

    def pump(self) -> None:
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
        backlog = modem.input_backlog
        if not self._host_reading_paused and backlog > INPUT_BACKLOG_HIGH:
            self._host_reading_paused = True
            self.host.pause_reading(True)
        elif self._host_reading_paused and backlog < INPUT_BACKLOG_LOW:
            self._host_reading_paused = False
            self.host.pause_reading(False)
        if self.scenario_player is not None:
            self.scenario_player.fire_due()
        if modem.booted != self._boot_reported:
            self._boot_reported = modem.booted
            if modem.booted and self.on_booted is not None:
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
            self._shaped.extend(self.shaper.shape(data, self.loop.time()))
            self._release_shaped()
            return
        self._write_host(data)

    def _release_shaped(self) -> None:
        if self._shaped_timer is not None:
            self._shaped_timer.cancel()
            self._shaped_timer = None
        now = self.loop.time()
        while self._shaped and self._shaped[0][0] <= now:
            self._write_host(self._shaped.pop(0)[1])
        if self._shaped:
            self._shaped_timer = self.loop.call_at(self._shaped[0][0], self._release_shaped)

    def _write_host(self, data: bytes) -> None:
        self.trace("host_out", data=data)
        self.bytes_to_host += len(data)
        if not self._host_queue:
            written = self.host.write(data)
            if written == len(data):
                return
            data = data[written:]
        self._host_queue += data
        self._set_want_writable(True)
        if len(self._host_queue) > HOST_QUEUE_HIGH:
            self.network.set_host_backpressure(True)

    def host_writable(self) -> None:
        written = self.host.write(bytes(self._host_queue[:65536]))
        del self._host_queue[:written]
        if not self._host_queue:
            self._set_want_writable(False)
        if len(self._host_queue) < HOST_QUEUE_LOW:
            self.network.set_host_backpressure(False)

    def _set_want_writable(self, on: bool) -> None:
        if on != self._want_writable:
            self._want_writable = on
            self.host.want_writable(on)

    def discard_host_output(self) -> None:
        """Forget what the module said that no host has read."""
        self._host_queue.clear()
        self._shaped.clear()
        self._set_want_writable(False)
        self.host.discard_unread()
        self.network.set_host_backpressure(False)


def _fields(record) -> dict:
    return {k: v for k, v in vars(record).items()} if hasattr(record, "__dict__") else {
        name: getattr(record, name) for name in record.__dataclass_fields__}


class PtyHost:
    """The host behind a pseudo-terminal; inotify on its path tells when hosts come and go."""

    def __init__(self, link: Path | None = None):
        self.link = link
        self.port: PtyPort | None = None
        self.runner: ModemRunner | None = None
        self._watcher: OpenWatcher | None = None
        self.opens = 0  # descriptors hosts hold on the port now

    @property
    def address(self) -> str:
        return self.port.path

    def start(self, runner: ModemRunner) -> None:
        self.runner = runner
        self.port = PtyPort(self.link)
        loop = runner.loop
        loop.add_reader(self.port.master, self._on_readable)
        self._watcher = OpenWatcher(self.port.path)
        if self._watcher.fd is not None:
            loop.add_reader(self._watcher.fd, self._on_open_or_close)

    def write(self, data: bytes) -> int:
        return self.port.write(data)

    def want_writable(self, on: bool) -> None:
        if on:
            self.runner.loop.add_writer(self.port.master, self.runner.host_writable)
        else:
            self.runner.loop.remove_writer(self.port.master)

    def discard_unread(self) -> None:
        self.port.discard_unread()

    def pause_reading(self, paused: bool) -> None:
        if paused:
            self.runner.loop.remove_reader(self.port.master)
        else:
            self.runner.loop.add_reader(self.port.master, self._on_readable)

    def _on_readable(self) -> None:
        # Opens and closes first: a host opens the port before it writes, so this keeps the
        # order in which the two reach the emulator through separate channels.
        self._on_open_or_close()
        self.runner.host_data(self.port.read())

    def _count(self, changes: list[int]) -> tuple[bool, bool]:
        """Apply opens (+1) and closes (-1); returns (a host was there before, someone left)."""
        was_open = self.opens > 0
        someone_left = False
        for change in changes:
            self.opens = max(0, self.opens + change)
            someone_left |= self.opens == 0
        return was_open, someone_left

    def _on_open_or_close(self) -> None:
        changes = self._watcher.read() if self._watcher is not None else []
        if not changes:
            return
        was_open, someone_left = self._count(changes)
        log.debug("port opens/closes %s: %d host descriptors now", changes, self.opens)
        if self.opens == 0:
            last_words = self.port.read()
            # A host opens before it writes: if nobody opened since, all of ``last_words`` came
            # from the host that left; otherwise part may be the next host's, which gets answers.
            self._count(self._watcher.read())
            if self.opens == 0:
                self.runner.host_left(last_words)
                return
            self.runner.host_attached()
            self.runner.host_data(last_words)
        elif someone_left or not was_open:
            self.runner.host_attached()

    def close(self) -> None:
        loop = self.runner.loop if self.runner else None
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
