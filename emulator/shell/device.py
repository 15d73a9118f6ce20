"""The module on an existing serial device: a USB-serial adapter wired to a board, or the pty that
QEMU, Renode or Zephyr's native simulator made for its UART (``ecemu run --device PATH``).

The device is opened exclusively (an advisory lock, as pyserial's ``exclusive`` and picocom take
one, and TIOCEXCL), in raw mode, at the module's rate and framing (AT+IPR, AT+ICF; ``--baud`` at
start). The board is attached from the start: the module boots at once unless told to wait for
the board's first byte. A device that goes away (a USB replug, a simulator that restarts) is a
host that left; it is opened again when it is back, and the module keeps everything it holds.

On a device with modem-control pins (a real adapter) the module's lines go through them, wired
as a null-modem cable does (the pin map of docs/reference/serial-line.md, ``PIN_MAP``): the adapter's DTR output carries
RI, its RTS output DCD; its DSR input carries the board's DTR, its CTS input the board's RTS. A
pty has no such pins: the lines are then only the control interface's.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import struct
import termios
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.uart import LineFormat
from .host_link import QuietLink
from .pty_port import discard_available

if TYPE_CHECKING:
    from .runner import ModemRunner

log = logging.getLogger(__name__)

CMSPAR = 0o10000000000  # Linux's "stick" parity (mark/space); Python's termios does not name it
# How often the device's modem-control inputs are read (TIOCMGET; TIOCMIWAIT blocks a thread and
# not every adapter's driver supports it). A change shorter than this can be missed.
PIN_POLL = 0.01
# How often a device that went away is looked for.
REOPEN_POLL = 0.2
# Waiting for the device's output queue to empty before a new rate applies: at most this long
# beyond what the queued bytes need at the old rate.
DRAIN_SLACK = 0.5

# The null-modem wiring: the module's lines on the adapter's pins (module line -> adapter pin).
PIN_MAP = {
    "ri": termios.TIOCM_DTR,   # adapter DTR out  -> board RI in
    "dcd": termios.TIOCM_RTS,  # adapter RTS out  -> board DCD in
    "dtr": termios.TIOCM_DSR,  # board DTR out    -> adapter DSR in (DCD in may be tied to it)
    "rts": termios.TIOCM_CTS,  # board RTS out    -> adapter CTS in
}


class DeviceError(OSError):
    """The device cannot be used; the message says why and what to do."""


def open_device(path: Path) -> int:
    """Open ``path`` for the module: non-blocking, exclusive, a terminal; DeviceError otherwise."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise DeviceError(f"{path}: no such device (is it plugged in, is the simulator running?)") from None
    except PermissionError:
        raise DeviceError(f"{path}: permission denied (the device's group, often dialout, must include you)") from None
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            raise DeviceError(f"{path}: busy, another program holds it exclusively") from None
        raise DeviceError(f"{path}: {exc.strerror or exc}") from None
    try:
        if not os.isatty(fd):
            raise DeviceError(f"{path}: not a serial device (a terminal)")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DeviceError(f"{path}: busy, another program has it open and locked") from None
        fcntl.ioctl(fd, termios.TIOCEXCL)  # nobody else opens it while the module is on it
    except BaseException:
        os.close(fd)
        raise
    return fd


def set_line(fd: int, line_format: LineFormat, path: Path) -> None:
    """The device in raw mode at ``line_format``. A pty takes no parity and only 8 data bits (the
    kernel keeps CS8 without PARENB): there the rate and stop bits are set, and a log line says so."""
    try:
        termios.tcsetattr(fd, termios.TCSANOW, raw_attributes(termios.tcgetattr(fd), line_format))
    except termios.error:
        if line_format.parity == "none" and line_format.data_bits == 8:
            raise
        plain = LineFormat(line_format.baud, 8, "none", line_format.stop_bits)
        termios.tcsetattr(fd, termios.TCSANOW, raw_attributes(termios.tcgetattr(fd), plain))
        log.info("%s takes no parity or 7-bit characters (a pty): set to %s instead of %s",
                 path, plain.describe(), line_format.describe())


def raw_attributes(attrs: list, line_format: LineFormat) -> list:
    """``attrs`` (from tcgetattr) made raw, at ``line_format``'s rate and framing, ignoring the
    modem-control lines for open and hang-up (CLOCAL) and keeping them up at close (no HUPCL)."""
    iflag, oflag, cflag, lflag, _ispeed, _ospeed, cc = attrs
    iflag &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP | termios.INLCR
               | termios.IGNCR | termios.ICRNL | termios.IXON | termios.IXOFF | termios.IXANY | termios.INPCK)
    oflag &= ~termios.OPOST
    lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    cflag &= ~(termios.CSIZE | termios.PARENB | termios.PARODD | CMSPAR | termios.CSTOPB | termios.HUPCL
               | termios.CRTSCTS)
    cflag |= termios.CREAD | termios.CLOCAL | (termios.CS8 if line_format.data_bits == 8 else termios.CS7)
    parity = line_format.parity
    if parity != "none":
        cflag |= termios.PARENB
        if parity in ("odd", "mark"):
            cflag |= termios.PARODD
        if parity in ("mark", "space"):
            cflag |= CMSPAR
    if line_format.stop_bits == 2:
        cflag |= termios.CSTOPB
    speed = getattr(termios, f"B{line_format.baud}")
    cc = list(cc)
    cc[termios.VMIN] = 1
    cc[termios.VTIME] = 0
    return [iflag, oflag, cflag, lflag, speed, speed, cc]


class DeviceHost(QuietLink):
    """The board behind an existing serial device (see the module docstring)."""

    open_settle = 0.0  # with boot on open, the board's first byte powers the module on at once

    def __init__(self, path: Path, line_format: LineFormat | None = None):
        self.path = Path(path)
        self.format = line_format or LineFormat()
        self.fd: int | None = None
        self.runner: ModemRunner  # from start()
        self._pins: bool | None = None  # the device has modem-control pins (None: not asked yet)
        self._module_lines = {"ri": False, "dcd": False}  # until power-on
        self._host_lines = {"dtr": True, "rts": True}
        self._poll: asyncio.TimerHandle | None = None  # the pin or reopen timer
        self._reading_paused = False
        self._wants_writable = False
        self._format_timer: asyncio.TimerHandle | None = None
        self._closed = False
        self.attached = False

    @property
    def address(self) -> str:
        return str(self.path)

    def start(self, runner: "ModemRunner") -> None:
        self.runner = runner
        self._open()  # DeviceError: the caller says why and exits
        if runner.boot == "at-start":
            self._attach()

    def _open(self) -> None:
        fd = open_device(self.path)
        try:
            set_line(fd, self.format, self.path)
        except (termios.error, OSError) as exc:
            os.close(fd)
            raise DeviceError(f"{self.path}: cannot set {self.format.describe()}: {exc}") from None
        self.fd = fd
        loop = self.runner.loop
        if not self._reading_paused:
            loop.add_reader(fd, self._on_readable)
        if self._wants_writable:
            loop.add_writer(fd, self._on_writable)
        self._pins = self._pins_answer(fd)
        if self._pins:
            for line, active in self._module_lines.items():
                self._set_pin(line, active)
            self._poll = loop.call_later(PIN_POLL, self._read_pins)
        log.info("%s: opened at %s%s", self.path, self.format.describe(),
                 "" if self._pins else " (no modem-control pins: the lines are ecemu ctl's only)")

    @staticmethod
    def _pins_answer(fd: int) -> bool:
        try:
            fcntl.ioctl(fd, termios.TIOCMGET, struct.pack("I", 0))
            return True
        except OSError:
            return False  # a pty: ENOTTY

    def _attach(self) -> None:
        if not self.attached:
            self.attached = True
            self.runner.host_attached()
            if self._pins:
                self._read_pins(rearm=False)

    # --- bytes -------------------------------------------------------------------------------

    def _on_readable(self) -> None:
        fd = self.fd
        if fd is None:
            return
        chunks = []
        try:
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise OSError(errno.EIO, "end of file")  # a pty whose other side closed
                chunks.append(chunk)
                if len(chunk) < 4095:
                    break
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            data = b"".join(chunks)
            if data:
                self._received(data)
            self._vanished(exc)
            return
        self._received(b"".join(chunks))

    def _received(self, data: bytes) -> None:
        if not data:
            return
        if not self.attached:
            self._attach()  # boot on open: the board's first byte is its coming
        self.runner.host_data(data)

    def write(self, data: bytes) -> int:
        fd = self.fd
        if fd is None:
            return len(data)  # gone: for nobody, as on a cut wire
        try:
            return os.write(fd, data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            self._vanished(exc)
            return len(data)

    def want_writable(self, on: bool) -> None:
        self._wants_writable = on
        if self.fd is None:
            return
        if on:
            self.runner.loop.add_writer(self.fd, self._on_writable)
        else:
            self.runner.loop.remove_writer(self.fd)

    def _on_writable(self) -> None:
        self.runner.host_writable()

    def discard_unread(self) -> None:
        if self.fd is not None:
            termios.tcflush(self.fd, termios.TCOFLUSH)

    def discard_input(self) -> None:
        if self.fd is not None:
            dropped = discard_available(self.fd)
            if dropped:
                log.info("the module rebooted: %d bytes the board had sent were lost with its UART", dropped)

    def pause_reading(self, paused: bool) -> None:
        self._reading_paused = paused
        if self.fd is None:
            return
        if paused:
            self.runner.loop.remove_reader(self.fd)
        else:
            self.runner.loop.add_reader(self.fd, self._on_readable)

    # --- the line's format -------------------------------------------------------------------

    def set_format(self, line_format: LineFormat) -> None:
        """Applied once the bytes already in the device's output queue have left at the old rate
        (the module answers AT+IPR at the old rate), without blocking the loop."""
        old, self.format = self.format, line_format
        if self._format_timer is not None:
            self._format_timer.cancel()
        deadline = self.runner.loop.time() + self._queued() * old.seconds_per_byte + DRAIN_SLACK
        self._apply_format_when_drained(deadline)

    def _queued(self) -> int:
        if self.fd is None:
            return 0
        try:
            return struct.unpack("i", fcntl.ioctl(self.fd, termios.TIOCOUTQ, struct.pack("i", 0)))[0]
        except OSError:
            return 0

    def _apply_format_when_drained(self, deadline: float) -> None:
        self._format_timer = None
        fd = self.fd
        if fd is None:
            return  # applied when the device is opened again
        loop = self.runner.loop
        if self._queued() and loop.time() < deadline:
            self._format_timer = loop.call_later(0.005, self._apply_format_when_drained, deadline)
            return
        try:
            set_line(fd, self.format, self.path)
            log.info("%s: now at %s", self.path, self.format.describe())
        except (termios.error, OSError) as exc:
            log.warning("%s: cannot set %s: %s", self.path, self.format.describe(), exc)

    # --- modem-control pins ------------------------------------------------------------------

    def set_module_line(self, line: str, active: bool) -> None:
        if line in self._module_lines:
            self._module_lines[line] = active
            if self._pins and self.fd is not None:
                self._set_pin(line, active)

    def _set_pin(self, line: str, active: bool) -> None:
        assert self.fd is not None
        request = termios.TIOCMBIS if active else termios.TIOCMBIC
        try:
            fcntl.ioctl(self.fd, request, struct.pack("I", PIN_MAP[line]))
        except OSError as exc:
            log.warning("%s: cannot set the %s pin: %s", self.path, line, exc)

    def _read_pins(self, rearm: bool = True) -> None:
        fd = self.fd
        if fd is None or not self._pins:
            return
        try:
            status = struct.unpack("I", fcntl.ioctl(fd, termios.TIOCMGET, struct.pack("I", 0)))[0]
        except OSError as exc:
            self._vanished(exc)
            return
        for line in ("dtr", "rts"):
            active = bool(status & PIN_MAP[line])
            if active != self._host_lines[line]:
                self._host_lines[line] = active
                if self.attached:
                    (self.runner.set_dtr if line == "dtr" else self.runner.set_rts)(active)
        if rearm:
            self._poll = self.runner.loop.call_later(PIN_POLL, self._read_pins)

    # --- going away and coming back ----------------------------------------------------------

    def _vanished(self, exc: OSError) -> None:
        """The device went away (EIO, end of file): the board is gone until it is back. The module
        keeps everything; what it says meanwhile goes nowhere, as on a cut wire."""
        if self.fd is None:
            return
        log.warning("%s went away (%s); waiting for it to come back", self.path, exc.strerror or exc)
        self._close_fd()
        if self.attached:
            self.attached = False
            self.runner.host_left()
        if not self._closed:
            self._poll = self.runner.loop.call_later(REOPEN_POLL, self._try_reopen)

    def _try_reopen(self) -> None:
        if self._closed:
            return
        try:
            self._open()
        except DeviceError as exc:
            log.debug("%s", exc)
            self._poll = self.runner.loop.call_later(REOPEN_POLL, self._try_reopen)
            return
        log.warning("%s is back", self.path)
        self._attach()

    def _close_fd(self) -> None:
        fd, self.fd = self.fd, None
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None
        if self._format_timer is not None:
            self._format_timer.cancel()
            self._format_timer = None
        if fd is None:
            return
        loop = self.runner.loop
        loop.remove_reader(fd)
        loop.remove_writer(fd)
        try:
            os.close(fd)  # the lock and TIOCEXCL go with it
        except OSError:
            pass

    def close(self) -> None:
        self._closed = True
        if getattr(self, "runner", None) is not None:
            self._close_fd()
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None
