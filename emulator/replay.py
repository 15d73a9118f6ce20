"""``ecemu replay LOG``: the module's side of a recorded session, played on a pty.

When the host sends what the log's host sent next (byte for byte, or matching the log's
placeholders), the module answers with the logged bytes at the logged delays, counted from the
moment the host's line was complete, and what the module said unasked (URCs) comes at its
logged time. The log is read as it is played, so a log of any size plays in bounded memory.

Where the host departs from the log, ``on_divergence`` decides: ``stop`` (the default) reports
which log line was expected and what came, and the replay stops answering; ``emulate`` carries on
as the emulated module. For that, a real modem (the same one ``ecemu run`` drives) is fed every
byte the host sent from the start, its answers thrown away while the log plays; at the
divergence its answers go to the host from then on. It has the state the logged commands left
in the emulator, which is not always the real module's: connections the log made to servers on
the internet are made again by the emulator, and fail without a network.

The port is the shell's own pty (``ecemu.shell.pty_port``), with the same handling of hosts that
open, close and reopen it as ``ecemu run``.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import threading
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Literal

from .api import private_link, remove_private_link, run_on_loop
from .profile import load_profile
from .sessionlog import EVENT, HOST, MODULE, LogError, ReadOptions, Record, open_log
from .sessionlog.matching import Divergence, HostMatcher
from .sessionlog.modules import profile_for
from .shell.host_link import QuietLink
from .shell.pty_link import pty_host
from .shell.runner import ModemRunner

log = logging.getLogger(__name__)

DIVERGENCE_MODES = ("stop", "emulate")
START_TIMEOUT = 10.0
PREAMBLE_LIMIT = 1024 * 1024  # bytes looked through for the log's first host-opened event


class ReplayEngine:
    """The log's module side as a function of the host's bytes and the time (no I/O).

    ``host_bytes(data, now)`` and ``due(now)`` return what the module says now;
    ``next_deadline()`` is when ``due`` has something next; ``divergence`` is set once the host
    departs from the log; ``finished`` once every record has been played."""

    def __init__(self, records: Iterator[Record], source: str = "", time_scale: float = 1.0):
        self._records = records
        self.source = source
        self.time_scale = time_scale
        self._ahead: deque[Record] = deque()
        self.matcher = HostMatcher()
        self.divergence: Divergence | None = None
        self._anchor_log: float | None = None
        self._anchor_real = 0.0
        self._started = False
        self._exhausted = False
        self.host_records_matched = 0
        self.other_channels = 0
        self._last_time: float | None = None
        self.log_error: LogError | None = None
        self._opened_at: float | None = None

    # -- reading ahead ---------------------------------------------------------------------

    def _read(self) -> Record | None:
        """The log's next record; None at its end, or where a line cannot be read (the replay
        ends there, and says why)."""
        try:
            return next(self._records)
        except StopIteration:
            pass
        except LogError as exc:
            self.log_error = exc
        self._exhausted = True
        return None

    def _peek(self, index: int = 0) -> Record | None:
        while len(self._ahead) <= index and not self._exhausted:
            record = self._read()
            if record is None:
                break
            if record.direction not in (HOST, MODULE):
                continue  # events say what happened around the port; nothing to play
            if record.channel != 0:
                self.other_channels += 1
                continue
            self._ahead.append(record)
        return self._ahead[index] if index < len(self._ahead) else None

    def _advance(self) -> Record:
        record = self._ahead.popleft()
        if record.time is not None:
            self._last_time = record.time
        return record

    # -- playing ---------------------------------------------------------------------------

    def prepare(self) -> bytes:
        """What the module said before the log's host first opened the port (a recording's
        ``host-opened`` event): said at once, before any host comes, as it was then (an opener
        that flushes the port does not see it). The clock will start at that event. A log
        without the event plays everything from the moment the host opens the port."""
        held: list[Record] = []
        size = 0
        while size < PREAMBLE_LIMIT and not self._exhausted:
            record = self._read()
            if record is None:
                break
            if record.direction == EVENT:
                if record.data.startswith(b"host-opened") and record.channel == 0:
                    self._opened_at = record.time
                    return b"".join(self.matcher.substitute(r) for r in held)
                continue
            if record.channel != 0:
                self.other_channels += 1
                continue
            held.append(record)
            size += len(record.data)
            if record.direction == HOST:
                break
        self._ahead.extend(held)
        return b""

    def start(self, now: float) -> bytes:
        """The host opened the port: the clock starts, at the log's first record (or at the
        log's own first open)."""
        if self._started:
            return b""
        self._started = True
        first = self._peek()
        if self._opened_at is not None:
            self._anchor_log = self._opened_at
        else:
            self._anchor_log = first.time if first is not None and first.time is not None else 0.0
        self._anchor_real = now
        return self.due(now)

    @property
    def started(self) -> bool:
        return self._started

    def _due_time(self, record: Record) -> float:
        if record.time is None or self._anchor_log is None:
            return self._anchor_real
        return self._anchor_real + max(0.0, record.time - self._anchor_log) * self.time_scale

    def due(self, now: float) -> bytes:
        """What the module says by ``now``: module records whose time has come, up to the next
        host record (which the host must send before anything after it is said)."""
        if not self._started or self.divergence is not None:
            return b""
        out = bytearray()
        while True:
            record = self._peek()
            if record is None or record.direction == HOST:
                self._begin_host(record)
                break
            if self._due_time(record) > now:
                break
            out += self.matcher.substitute(self._advance())
        return bytes(out)

    def _begin_host(self, record: Record | None) -> None:
        if record is not None and self.matcher.record is not record:
            following = self._peek(1)
            self.matcher.begin(record, following if following is not None and following.direction == HOST else None)

    def next_deadline(self) -> float | None:
        if not self._started or self.divergence is not None:
            return None
        record = self._peek()
        if record is None or record.direction == HOST:
            return None
        return self._due_time(record)

    def host_bytes(self, data: bytes, now: float) -> bytes:
        """The host sent ``data``: match it; returns what the module says now (what was still
        to come before the host's line, then the answers due at once)."""
        if self.divergence is not None:
            return b""
        if not self._started:
            self.start(now)
        out = bytearray()
        while data:
            # What the log has the module say before the host's next line comes first.
            while (record := self._peek()) is not None and record.direction == MODULE:
                out += self.matcher.substitute(self._advance())
            record = self._peek()
            if record is None:
                self.divergence = Divergence(None, b"", data)
                return bytes(out)
            self._begin_host(record)
            taken, divergence = self.matcher.feed(data)
            if divergence is not None:
                self.divergence = divergence
                return bytes(out)
            data = data[taken:]
            if self.matcher.done:
                self._advance()
                self.host_records_matched += 1
                self._anchor_log = record.time if record.time is not None else self._last_time
                self._anchor_real = now
                self.matcher.record = None
        out += self.due(now)
        return bytes(out)

    @property
    def finished(self) -> bool:
        return self._peek() is None and self.divergence is None and self.log_error is None

    def host_line_left(self) -> Record | None:
        """The next host record the host has not sent (reading on through the log), or None."""
        if self.matcher.record is not None:
            return self.matcher.record
        index = 0
        while (record := self._peek(index)) is not None:
            if record.direction == HOST:
                return record
            if index > 1000:  # a long run of the module's own lines: drop them, they were not said
                self._ahead.clear()
                index = 0
                continue
            index += 1
        return None


class _MemoryHost(QuietLink):
    """The emulated modem's host side in ``emulate`` mode: its output is thrown away until the
    divergence, then handed to the replay's port (a pty: no line format, no pins)."""

    address = "replay"
    open_settle = 0.0

    def __init__(self, server: "ReplayServer"):
        self.server = server

    def start(self, runner: ModemRunner) -> None:
        self.runner = runner

    def write(self, data: bytes) -> int:
        return self.server.emulator_output(data)

    def want_writable(self, on: bool) -> None:
        self.server.emulator_wants_writable(on)

    def discard_unread(self) -> None:
        pass

    def pause_reading(self, paused: bool) -> None:
        self.server.pause_host(paused)

    def close(self) -> None:
        pass


class ReplayServer:
    """The replay on the running loop: the pty, the engine, and in ``emulate`` mode the modem.

    It is the runner the shell's ``PtyHost`` reports to (``host_data``, ``host_attached``,
    ``host_left``, ``host_writable``)."""

    def __init__(self, log_path: str | Path, link: Path | None = None, on_divergence: str = "stop",
                 profile: str | None = None, read_options: ReadOptions | None = None,
                 on_divergence_report: Callable[[str], None] | None = None, time_scale: float = 1.0):
        if on_divergence not in DIVERGENCE_MODES:
            raise ValueError(f"on_divergence must be one of {', '.join(DIVERGENCE_MODES)}, not {on_divergence!r}")
        self.log_path = Path(log_path)
        self.session = open_log(self.log_path, options=read_options)
        self.info = self.session.info
        self.mode = on_divergence
        self.engine = ReplayEngine(self.session.records(), str(log_path), time_scale)
        self._profile = profile  # the module emulated after a divergence: resolved only if needed
        self.profile_name: str | None = None
        self.link = link
        self.host = pty_host(link)
        self.report_divergence = on_divergence_report
        self.emulating = False
        self.emulator: ModemRunner | None = None
        self._ufs: Path | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._output = bytearray()
        self._writable_wanted = False
        self._emulator_wants_writable = False
        self.host_came = False
        self.host_present = False
        self.done = asyncio.Event()  # made on the loop in start()
        self.report: str | None = None
        self.loop: asyncio.AbstractEventLoop

    # -- starting and stopping -----------------------------------------------------------

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.done = asyncio.Event()
        if self.mode == "emulate":
            self.profile_name = profile_for(self._profile or self.info.headers.get("module"))[0]
            self._ufs = Path(tempfile.mkdtemp(prefix="ecemu-replay-ufs-"))
            # The log gave the host its boot URCs; the emulated module's are said at once, at the
            # start, where they are thrown away with everything it says until a divergence.
            profile = load_profile(self.profile_name)
            profile = replace(profile, boot_urcs=tuple(replace(urc, after_ms=0) for urc in profile.boot_urcs))
            self.emulator = ModemRunner(profile, self._ufs, host=_MemoryHost(self), boot="at-start")
            self.emulator.start()
        self.host.start(self)  # type: ignore[arg-type]  # the replay is the runner PtyHost reports to
        self._send(self.engine.prepare())

    @property
    def port(self) -> str:
        return self.host.address

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.emulator is not None:
            self.emulator.stop()
        self.host.close()
        self.session.close()
        if self._ufs is not None:
            shutil.rmtree(self._ufs, ignore_errors=True)

    # -- what PtyHost reports --------------------------------------------------------------

    def host_attached(self) -> None:
        self.host_came = True
        self.host_present = True
        if self.emulator is not None:
            self.emulator.host_attached()
        if not self.engine.started:
            # As the emulator does with boot on open: the module's first words come after the
            # opener has flushed the port.
            from .shell.runner import OPEN_SETTLE

            self.loop.call_later(OPEN_SETTLE, self._start_clock)

    def _start_clock(self) -> None:
        self._send(self.engine.start(self.loop.time()))
        self._arm()
        self._check_done()

    def host_left(self, last_words: bytes = b"") -> None:
        self.host_data(last_words)
        self.host_present = False
        if self.emulator is not None:
            self.emulator.host_left()
        self._output.clear()
        self.host.discard_unread()
        self._check_done()

    def host_data(self, data: bytes) -> None:
        if not data:
            return
        if self.emulating:
            assert self.emulator is not None
            self.emulator.host_data(data)
            return
        now = self.loop.time()
        reply = self.engine.host_bytes(data, now)
        self._send(reply)
        divergence = self.engine.divergence
        if divergence is not None:
            # The emulated module gets what matched the log (its answers thrown away, as the
            # log's were given), then, once it speaks for itself, what departed from it.
            matched = data[:len(data) - len(divergence.came)]
            if self.emulator is not None and matched:
                self.emulator.host_data(matched)
            self._diverged()
            if self.emulating and self.emulator is not None and divergence.came:
                self.emulator.host_data(divergence.came)
            return
        if self.emulator is not None:
            self.emulator.host_data(data)
        self._arm()
        self._check_done()

    def host_writable(self) -> None:
        if self._output:
            written = self.host.write(bytes(self._output[:65536]))
            del self._output[:written]
        if not self._output:
            self._want_writable(self._emulator_wants_writable)
            if self.emulating and self.emulator is not None:
                self.emulator.host_writable()

    # -- the log's side ----------------------------------------------------------------------

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.engine.next_deadline()
        if deadline is not None and not self.emulating:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._send(self.engine.due(self.loop.time()))
        self._arm()
        self._check_done()

    def _send(self, data: bytes) -> None:
        if not data or (self.host_came and not self.host_present):
            return
        if not self._output:
            written = self.host.write(data)
            data = data[written:]
        if data:
            self._output += data
            self._want_writable(True)

    def _want_writable(self, on: bool) -> None:
        if on != self._writable_wanted:
            self._writable_wanted = on
            self.host.want_writable(on)

    def _diverged(self) -> None:
        divergence = self.engine.divergence
        assert divergence is not None
        self.report = divergence.report(str(self.log_path))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.mode == "emulate" and self.emulator is not None:
            log.info("%s; the emulated module carries on", self.report)
            self.emulating = True
            if self.report_divergence is not None:
                self.report_divergence(self.report + "\n  the emulated module carries on from here.")
            self.emulator.pump()
            return
        if self.report_divergence is not None:
            self.report_divergence(self.report)
        self.done.set()

    def _check_done(self) -> None:
        error = self.engine.log_error
        if error is not None and self.report is None:
            self.report = f"the log cannot be read on: {error}"
            if self.report_divergence is not None:
                self.report_divergence(self.report)
            self.done.set()
            return
        if self.engine.finished and not self._output and self.host_came and not self.host_present \
                and not self.emulating:
            self.done.set()

    # -- the emulated module, after a divergence -------------------------------------------

    def emulator_output(self, data: bytes) -> int:
        if not self.emulating:
            return len(data)  # its answers to the logged commands: the log gave the host its own
        if not self.host_present and self.host_came:
            return len(data)
        if self._output:
            return 0
        return self.host.write(data)

    def emulator_wants_writable(self, on: bool) -> None:
        self._emulator_wants_writable = on
        if self.emulating:
            self._want_writable(on or bool(self._output))

    def pause_host(self, paused: bool) -> None:
        if self.emulating:
            self.host.pause_reading(paused)


@dataclass
class ReplayResult:
    report: str | None
    finished: bool
    host_records_matched: int
    warnings: list[tuple[int, str]]


class Replay:
    """A replay in a background thread, as ``ecemu.api.Emulator`` runs an emulator:

        with Replay("field.log") as module:
            port = serial.Serial(module.port)
            ...
        assert module.report is None, module.report

    ``port`` is where the host opens the module: as with ``Emulator``, a link with a fresh pty
    behind it for each opener, in a folder of its own only this user can enter unless ``link``
    names it (``link=False``: the one pty's own path); ``report`` the divergence report (None while
    the host followed the log); ``finished`` whether the whole log was played."""

    def __init__(self, log_path: str | Path, on_divergence: str = "stop", link: str | Path | Literal[False] | None = None,
                 profile: str | None = None, read_options: ReadOptions | None = None, time_scale: float = 1.0):
        self.log_path = Path(log_path)
        self.on_divergence = on_divergence
        self._private_link = link is None  # made at start, removed at stop
        self.link = Path(link) if link is not None and link is not False else None
        self.profile = profile
        self.read_options = read_options
        self.time_scale = time_scale
        self.server: ReplayServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._left: Record | None = None
        self.reports: list[str] = []

    @property
    def port(self) -> str:
        if self.server is None or not self._ready.is_set():
            raise RuntimeError("the replay is not running")
        return self.server.port

    @property
    def report(self) -> str | None:
        return self.reports[0] if self.reports else None

    @property
    def finished(self) -> bool:
        return self.server is not None and self.server.engine.finished

    def start(self) -> "Replay":
        if self._private_link and self.link is None:
            self.link = private_link()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="ecemu-replay", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            self.stop()
            raise RuntimeError("the replay did not start in time")
        if self._error is not None:
            self.stop()  # its folder
            raise self._error
        return self

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        try:
            server = self.server = ReplayServer(self.log_path, self.link, self.on_divergence, self.profile,
                                                self.read_options, self.reports.append, self.time_scale)
            server.start()
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            try:
                self._left = server.engine.host_line_left()
            except LogError as exc:
                self._left = None
                self.reports.append(str(exc))
            server.close()

    def wait_for_boot(self, timeout: float = 10.0) -> None:
        """Play what the log's module said before the host's first line (its boot URCs) now, as
        ``Emulator.wait_for_boot`` powers the emulator on: a host that opens the port after this
        and flushes it does not see them, as with the emulator."""
        def play(server: ReplayServer) -> None:
            if not server.engine.started:
                server._send(server.engine.start(server.loop.time()))
                server._send(server.engine.due(float("inf")))
                server._arm()
        self.call(play, timeout)

    def call(self, fn: Callable[[ReplayServer], object], timeout: float = 10.0) -> object:
        server, loop = self.server, self._loop
        if server is None or loop is None:
            raise RuntimeError("the replay is not running")
        return run_on_loop(loop, lambda: fn(server), timeout)

    def result(self) -> ReplayResult:
        server = self.server
        if server is None:
            return ReplayResult(self.report, False, 0, [])
        return ReplayResult(self.report, server.engine.finished, server.engine.host_records_matched,
                            list(server.info.warnings))

    def host_line_left(self) -> Record | None:
        """The log's next host line the host had not sent when the replay stopped, or None."""
        return self._left

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None and self._thread and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(START_TIMEOUT)
        if self._private_link and self.link is not None:
            remove_private_link(self.link)
            self.link = None

    def __enter__(self) -> "Replay":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
