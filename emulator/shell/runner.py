"""Drives one modem: pty bytes in and out, network effects, timers, all on one asyncio loop.

This is the only place where the core meets the clock: every call into the modem passes
``loop.time()`` (monotonic) as the current time.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from pathlib import Path

from emulator.core import events as ev
from emulator.core.modem import Modem
from emulator.core.ufs import DirectoryFileStore
from emulator.profile import Profile
from emulator.shell.network import Network
from emulator.shell.opens import OpenWatcher
from emulator.shell.pty_port import PtyPort

log = logging.getLogger(__name__)

# Bytes waiting for the host above which the sockets stop being read, and below which they resume.
HOST_QUEUE_HIGH = 256 * 1024
HOST_QUEUE_LOW = 64 * 1024


class ModemRunner:
    def __init__(self, profile: Profile, ufs: Path, link: Path | None = None, escape_guard: float = 1.0):
        self.profile = profile
        self.ufs = Path(ufs)
        self.link = link
        self.escape_guard = escape_guard
        self.port: PtyPort | None = None
        self.modem: Modem | None = None
        self.network: Network | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: float | None = None
        self._host_queue = bytearray()
        self._writer_registered = False
        self._watcher: OpenWatcher | None = None
        self.host_opens = 0  # how many descriptors hosts hold on the port now
        self.host_has_left = False  # a host closed the port and none holds it now

    def start(self) -> None:
        """Open the port and power the modem on; call on the running loop."""
        loop = self._loop = asyncio.get_running_loop()
        self.port = PtyPort(self.link)
        self.network = Network(self.on_network_event)
        self.modem = Modem(self.profile, DirectoryFileStore(self.ufs), now=loop.time(),
                           wall_clock=datetime.now(timezone.utc), escape_guard=self.escape_guard)
        loop.add_reader(self.port.master, self._on_host_readable)
        self._watcher = OpenWatcher(self.port.path)
        if self._watcher.fd is not None:
            loop.add_reader(self._watcher.fd, self._on_open_or_close)
        self.modem.power_on(loop.time())
        self.pump()

    def stop(self) -> None:
        loop = self._loop
        if self.port is not None and loop is not None:
            loop.remove_reader(self.port.master)
            if self._writer_registered:
                loop.remove_writer(self.port.master)
                self._writer_registered = False
        if self._timer is not None:
            self._timer.cancel()
        if self._watcher is not None:
            if self._watcher.fd is not None and loop is not None:
                loop.remove_reader(self._watcher.fd)
            self._watcher.close()
        if self.network is not None:
            self.network.close_all()
        if self.port is not None:
            self.port.close()
            self.port = None

    # --- into the core -----------------------------------------------------------------------

    def _on_host_readable(self) -> None:
        # Opens and closes first: a host opens the port before it writes, so this keeps the
        # order in which the two reach the emulator through separate channels.
        self._on_open_or_close()
        self._read_host()

    def _read_host(self) -> None:
        data = self.port.read()
        if data:
            self.modem.receive_from_host(data, self._loop.time())
            self.pump()

    def on_network_event(self, event: ev.NetworkEvent) -> None:
        self.modem.handle_event(event, self._loop.time())
        self.pump()

    def _apply_open_changes(self, changes: list[int]) -> tuple[bool, bool]:
        """Count opens and closes; returns (a host was attached before, someone left)."""
        was_open = self.host_opens > 0
        someone_left = False
        for change in changes:
            self.host_opens = max(0, self.host_opens + change)
            someone_left |= self.host_opens == 0
        return was_open, someone_left

    def _on_open_or_close(self) -> None:
        changes = self._watcher.read() if self._watcher is not None else []
        if not changes:
            return
        was_open, someone_left = self._apply_open_changes(changes)
        log.debug("port opens/closes %s: %d host descriptors now", changes, self.host_opens)
        if self.host_opens == 0:
            self._host_left()
        elif someone_left or not was_open:
            # A host left and another is already there: what the first was not shown is stale.
            self._discard_host_output()
            self.host_has_left = False
            if not was_open:
                self.set_dtr(True)

    def _host_left(self) -> None:
        """The last host closed the port: what it wrote is still executed (nothing received is
        dropped), but what the module says while nobody listens is lost, as on a real port, and
        closing drops DTR as a serial driver does on hang-up."""
        data = self.port.read()
        # A host opens before it writes: if nobody opened since, all of ``data`` came from the
        # host that left; otherwise part of it may be the next host's, which gets the answers.
        self._apply_open_changes(self._watcher.read())
        self.host_has_left = self.host_opens == 0
        self._discard_host_output()
        if data:
            self.modem.receive_from_host(data, self._loop.time())
            self.pump()
        if self.host_has_left:
            self.set_dtr(False)
            self._discard_host_output()
        else:
            self.set_dtr(True)

    def _discard_host_output(self) -> None:
        self._host_queue.clear()
        if self._writer_registered:
            self._loop.remove_writer(self.port.master)
            self._writer_registered = False
        self.port.discard_unread()
        self.network.set_host_backpressure(False)

    def set_dtr(self, active: bool) -> None:
        self.modem.set_dtr(active, self._loop.time())
        self.pump()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_deadline = None
        self.modem.tick(self._loop.time())
        self.pump()

    # --- out of the core ---------------------------------------------------------------------

    def pump(self) -> None:
        """Carry out whatever the modem produced, then re-arm the timer for its next deadline."""
        modem = self.modem
        # Effects may produce events synchronously (TcpDrained), which pump again; loop until quiet.
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

    def _arm_timer(self, deadline: float | None) -> None:
        if deadline == self._timer_deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_deadline = deadline
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _send_to_host(self, data: bytes) -> None:
        if self.host_has_left:
            return
        if not self._host_queue:
            written = self.port.write(data)
            if written == len(data):
                return
            data = data[written:]
        self._host_queue += data
        if not self._writer_registered:
            self._loop.add_writer(self.port.master, self._on_host_writable)
            self._writer_registered = True
        if len(self._host_queue) > HOST_QUEUE_HIGH:
            self.network.set_host_backpressure(True)

    def _on_host_writable(self) -> None:
        written = self.port.write(bytes(self._host_queue[:65536]))
        del self._host_queue[:written]
        if not self._host_queue:
            self._loop.remove_writer(self.port.master)
            self._writer_registered = False
        if len(self._host_queue) < HOST_QUEUE_LOW:
            self.network.set_host_backpressure(False)
