"""``ecemu record``: a transparent tap between a host and a real module.

    ecemu record --device /dev/ttyUSB2 --link /tmp/modem --out session.log
    ecemu record --device /dev/ttyUSB2 --tcp-raw 5555 --out session.log

The module's port (``--device``) is opened in raw mode; the host gets a pty (``--link``, the
shell's own port, which hosts may open, close and reopen as they like) or a raw TCP port
(``--tcp-raw``, one client at a time). Every byte each way is passed on unchanged as soon as it
is read, and then written to the session file (``ecemu.sessionlog.format``) with the time it
was read, one whole line per read.

Either side may go away and come back. A host closing the port is an event in the log
(``host-closed``); what the module says while no host has the port is logged and not passed on
(as on a real port, nobody hears it). The device going away (a module rebooting takes its USB
port with it) is logged as ``device-closed``; the path is opened again until it is back
(``device-opened``); what the host sends meanwhile is logged, and dropped (``dropped``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import termios
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from .core.uart import LineFormat
from .sessionlog import EVENT, HOST, MODULE, SessionWriter
from .shell.device import open_device, set_line
from .shell.private_files import private_opener
from .shell.pty_link import pty_host

log = logging.getLogger(__name__)

REOPEN_INTERVAL = 0.2  # seconds between attempts to open a device that went away
QUEUE_HIGH = 256 * 1024  # bytes waiting for one side above which the other side is not read
READ_SIZE = 65536

def open_raw_device(path: str | Path, baud: int = 115200) -> int:
    """The module's serial device (or a pty) as ``ecemu run --device`` opens it (exclusively,
    non-blocking, not as the controlling terminal), raw at ``baud``, 8N1."""
    if not hasattr(termios, f"B{baud}"):
        raise ValueError(f"unsupported baud rate {baud}")
    fd = open_device(Path(path))
    try:
        set_line(fd, LineFormat(baud), Path(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


class _TcpRawHost:
    """The host on a raw TCP port: one client at a time (another is refused while one is
    connected), its bytes passed on as they come."""

    def __init__(self, host: str, port: int):
        self.bind = (host, port)
        self.server: asyncio.AbstractServer | None = None
        self.transport: asyncio.Transport | None = None
        self.recorder: Recorder
        self.port = 0

    @property
    def address(self) -> str:
        return f"tcp://{self.bind[0]}:{self.port}"

    async def start_async(self, recorder: "Recorder") -> None:
        self.recorder = recorder
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _TcpRawProtocol(self), self.bind[0], self.bind[1],
                                               reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]

    def write(self, data: bytes) -> int:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
        return len(data)

    def want_writable(self, on: bool) -> None:
        pass

    def discard_unread(self) -> None:
        pass

    def pause_reading(self, paused: bool) -> None:
        if self.transport is not None and not self.transport.is_closing():
            (self.transport.pause_reading if paused else self.transport.resume_reading)()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self.server is not None:
            self.server.close()


class _TcpRawProtocol(asyncio.Protocol):
    def __init__(self, owner: _TcpRawHost):
        self.owner = owner
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if self.owner.transport is not None:
            transport.close()  # the port is taken, as a serial port would be
            return
        self.transport = self.owner.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.owner.recorder.host_attached()

    def data_received(self, data: bytes) -> None:
        if self.transport is not None:
            self.owner.recorder.host_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None and self.owner.transport is self.transport:
            self.owner.transport = None
            self.owner.recorder.host_left()

    def pause_writing(self) -> None:
        self.owner.recorder.host_full(True)

    def resume_writing(self) -> None:
        self.owner.recorder.host_full(False)


class Recorder:
    """The tap on the running loop. It is the runner the shell's ``PtyHost`` reports to."""

    def __init__(self, device: str | Path, out: Path, link: Path | None = None,
                 tcp: tuple[str, int] | None = None, baud: int = 115200, headers: dict[str, str] | None = None):
        self.device_path = str(device)
        self.baud = baud
        # The device first: when it cannot be opened, no session file is made.
        self.device_fd: int | None = open_raw_device(self.device_path, baud)
        try:
            self.out = open_session_file(out)
        except BaseException:
            os.close(self.device_fd)
            raise
        self.host = _TcpRawHost(*tcp) if tcp is not None else pty_host(link)
        self.writer = SessionWriter(self.out, {
            "recorded-by": "ecemu record",
            "device": self.device_path,
            "started": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "line-ends": "exact",
            "timing": "real",
            **(headers or {}),
        })
        self.loop: asyncio.AbstractEventLoop
        self.start_time = 0.0
        self._to_device = bytearray()
        self._to_host = bytearray()
        self._device_writer = False
        self._host_writable_wanted = False
        self._host_reading_paused = False
        self._device_reading_paused = False
        self._host_full = False
        self.host_present = False
        self.host_came = False
        self._reopen: asyncio.TimerHandle | None = None
        self.closed = False
        self.bytes_from_host = self.bytes_from_device = 0

    @property
    def address(self) -> str:
        return self.host.address

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.start_time = self.loop.time()
        if isinstance(self.host, _TcpRawHost):
            await self.host.start_async(self)
        else:
            self.host.start(self)  # type: ignore[arg-type]  # the recorder is the runner PtyHost reports to
        self._watch_device()

    def _now(self) -> float:
        return self.loop.time() - self.start_time

    def _log(self, direction: str, data: bytes) -> None:
        if not self.closed:
            self.writer.record(self._now(), direction, data)

    # -- the device ----------------------------------------------------------------------

    def _watch_device(self) -> None:
        if self.device_fd is not None:
            self.loop.add_reader(self.device_fd, self._device_readable)

    def _device_readable(self) -> None:
        fd = self.device_fd
        if fd is None:
            return
        try:
            data = os.read(fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._device_lost(exc.strerror or str(exc))
            return
        if not data:
            self._device_lost("end of file")
            return
        self._to_host_side(data)
        self.bytes_from_device += len(data)
        self._log(MODULE, data)

    def _to_host_side(self, data: bytes) -> None:
        if self.host_came and not self.host_present:
            return  # nobody has the port: as on a real port, nobody hears it (it is still logged)
        if not self._to_host:
            written = self.host.write(data)
            data = data[written:]
        if data:
            self._to_host += data
            self._set_host_writable(True)
            self._update_flow()

    def _device_lost(self, why: str) -> None:
        fd = self.device_fd
        if fd is None:
            return
        self.loop.remove_reader(fd)
        if self._device_writer:
            self.loop.remove_writer(fd)
            self._device_writer = False
        try:
            os.close(fd)
        except OSError:
            pass
        self.device_fd = None
        self._device_reading_paused = False
        self._to_device.clear()
        self._log(EVENT, f"device-closed {why}".encode())
        log.info("the device %s went away (%s); opening it again as soon as it is back", self.device_path, why)
        self._reopen = self.loop.call_later(REOPEN_INTERVAL, self._try_reopen)
        self._update_flow()

    def _try_reopen(self) -> None:
        self._reopen = None
        try:
            self.device_fd = open_raw_device(self.device_path, self.baud)
        except OSError:
            self._reopen = self.loop.call_later(REOPEN_INTERVAL, self._try_reopen)
            return
        self._log(EVENT, b"device-opened")
        self._watch_device()
        self._update_flow()

    def _device_writable(self) -> None:
        fd = self.device_fd
        if fd is None:
            return
        try:
            written = os.write(fd, self._to_device[:READ_SIZE])
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._device_lost(exc.strerror or str(exc))
            return
        del self._to_device[:written]
        if not self._to_device and self._device_writer:
            self.loop.remove_writer(fd)
            self._device_writer = False
        self._update_flow()

    # -- the host (what PtyHost and the TCP port report) -------------------------------------

    def host_data(self, data: bytes) -> None:
        if not data:
            return
        self.bytes_from_host += len(data)
        fd = self.device_fd
        if fd is None:
            self._log(HOST, data)
            self._log(EVENT, f"dropped {len(data)} bytes: no device".encode())
            return
        if not self._to_device:
            try:
                written = os.write(fd, data)
            except (BlockingIOError, InterruptedError):
                written = 0
            except OSError as exc:
                self._log(HOST, data)
                self._device_lost(exc.strerror or str(exc))
                return
            data_left = data[written:]
        else:
            data_left = data
        if data_left:
            self._to_device += data_left
            if not self._device_writer:
                self.loop.add_writer(fd, self._device_writable)
                self._device_writer = True
            self._update_flow()
        self._log(HOST, data)

    def host_attached(self) -> None:
        self.host_came = True
        self.host_present = True
        self._log(EVENT, b"host-opened")

    def host_left(self, last_words: bytes = b"") -> None:
        self.host_data(last_words)
        self.host_present = False
        self._to_host.clear()
        self._set_host_writable(False)
        self.host.discard_unread()
        self._log(EVENT, b"host-closed")
        self._update_flow()

    def host_writable(self) -> None:
        if self._to_host:
            written = self.host.write(bytes(self._to_host[:READ_SIZE]))
            del self._to_host[:written]
        if not self._to_host:
            self._set_host_writable(False)
        self._update_flow()

    def host_full(self, full: bool) -> None:
        self._host_full = full
        self._update_flow()

    def _set_host_writable(self, on: bool) -> None:
        if on != self._host_writable_wanted:
            self._host_writable_wanted = on
            self.host.want_writable(on)

    def _update_flow(self) -> None:
        """Flow control both ways: a side that does not take its bytes stops the other being read."""
        pause_host = len(self._to_device) > QUEUE_HIGH
        if pause_host != self._host_reading_paused:
            self._host_reading_paused = pause_host
            self.host.pause_reading(pause_host)
        pause_device = len(self._to_host) > QUEUE_HIGH or self._host_full
        if pause_device != self._device_reading_paused and self.device_fd is not None:
            self._device_reading_paused = pause_device
            if pause_device:
                self.loop.remove_reader(self.device_fd)
            else:
                self.loop.add_reader(self.device_fd, self._device_readable)

    def close(self) -> None:
        if self.closed:
            return
        if self._reopen is not None:
            self._reopen.cancel()
        if self.device_fd is not None:
            try:
                self.loop.remove_reader(self.device_fd)
                if self._device_writer:
                    self.loop.remove_writer(self.device_fd)
            except (ValueError, RuntimeError):
                pass
            os.close(self.device_fd)
            self.device_fd = None
        self.host.close()
        self.closed = True
        self.out.close()


def open_session_file(path: Path) -> IO[bytes]:
    """The session file, created 0600 (it holds every byte the host and the module said)."""
    return open(path, "wb", opener=private_opener)
