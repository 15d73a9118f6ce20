"""The firmware's end of the port in the transport tests: a pty master standing in for a serial
device (``UartEnd``) or a TCP connection (``TcpEnd``). Both read what comes into one buffer and
return it up to what a test waits for; bytes past it are kept for the next wait, never lost."""

from __future__ import annotations

import os
import select
import socket
import termios
import time
import tty

WAIT = 15.0  # only matters when something is wrong


class ByteEnd:
    def __init__(self) -> None:
        self.buffer = b""

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def _receive(self, deadline: float) -> bytes:
        """What has come, waiting until ``deadline``; b"" at the deadline."""
        raise NotImplementedError

    def expect(self, wanted: bytes, timeout: float = WAIT) -> bytes:
        """Everything up to and including ``wanted``."""
        deadline = time.monotonic() + timeout
        while wanted not in self.buffer:
            chunk = self._receive(deadline)
            assert chunk, f"waited for {wanted!r}, got {self.buffer!r}"
            self.buffer += chunk
        end = self.buffer.index(wanted) + len(wanted)
        out, self.buffer = self.buffer[:end], self.buffer[end:]
        return out

    def ask(self, line: bytes, final: bytes = b"OK\r\n") -> bytes:
        self.write(line + b"\r")
        return self.expect(final)


class UartEnd(ByteEnd):
    """A pty pair: the emulator opens ``path`` (the slave) as its device, the test is the master.
    The slave stays open here too (a master with no slave open reads EIO), in raw mode, as QEMU
    and Zephyr set up the pty they make."""

    def __init__(self) -> None:
        super().__init__()
        self.master, self._slave = os.openpty()
        self.path = os.ttyname(self._slave)
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + WAIT
        while view:
            select.select([], [self.master], [], max(0.0, deadline - time.monotonic()))
            try:
                view = view[os.write(self.master, view):]
            except BlockingIOError:
                pass
            assert time.monotonic() < deadline, "the device took no more bytes"

    def _receive(self, deadline: float) -> bytes:
        while select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))[0]:
            try:
                return os.read(self.master, 65536)
            except BlockingIOError:
                continue
        return b""

    def speed(self) -> int:
        """The device's termios speed (a pty's master reads its slave's termios)."""
        return termios.tcgetattr(self.master)[4]

    def close(self) -> None:
        os.close(self._slave)
        os.close(self.master)


class TcpEnd(ByteEnd):
    """A TCP connection to (or from) the module."""

    def __init__(self, sock: socket.socket):
        super().__init__()
        self.sock = sock
        sock.settimeout(WAIT)

    @classmethod
    def to(cls, address: str) -> "TcpEnd":
        host, port = address.split("://", 1)[1].rsplit(":", 1)
        return cls(socket.create_connection((host, int(port)), timeout=WAIT))

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _receive(self, deadline: float) -> bytes:
        self.sock.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return b""
        assert chunk, f"closed; got {self.buffer!r}"
        return chunk

    def close(self) -> None:
        self.sock.close()


def file_checksum(data: bytes) -> str:
    """The FILE note's checksum: the XOR of the data's 16-bit big-endian words, an odd last byte the
    high byte of its word, in lower-case hex without leading zeros."""
    value = 0
    for index in range(0, len(data), 2):
        value ^= (data[index] << 8) | (data[index + 1] if index + 1 < len(data) else 0)
    return f"{value:x}"


def upload_and_download(end: ByteEnd, name: str, data: bytes, echo: bool = True) -> None:
    """AT+QFUPL ``data`` and AT+QFDWL it back, checking both answers byte for byte: every byte value
    crosses the port both ways unchanged."""
    line = f'AT+QFUPL="{name}",{len(data)}'.encode()
    assert end.ask(line, b"CONNECT\r\n") == (line + b"\r" if echo else b"") + b"\r\nCONNECT\r\n"
    end.write(data)
    summary = f"{len(data)},{file_checksum(data)}\r\n".encode()
    # The answer follows the data with no CR LF of its own (REFERENCE.md "Data after a prompt").
    assert end.expect(b"OK\r\n") == b"+QFUPL: " + summary + b"\r\nOK\r\n"
    line = f'AT+QFDWL="{name}"'.encode()
    assert end.ask(line) == ((line + b"\r" if echo else b"") + b"\r\nCONNECT\r\n" + data + b"\r\n+QFDWL: "
                             + summary + b"\r\nOK\r\n")
