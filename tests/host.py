"""A host program as tests need one: pyserial on the emulator's port, reads bounded by timeouts.

``AtHost.ask`` sends a line and returns everything up to its final result, byte for byte, so
tests compare whole answers; ``expect`` waits for bytes that arrive unasked (URCs). Bytes read
past what a call returns are kept for the next call, never lost.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import serial

SENTINEL = b"ATS3?"
SENTINEL_ANSWER = b"\r\n013\r\n\r\nOK\r\n"  # V.250 6.2.1: S3 is 13 (CR), shown as three digits
FINAL = re.compile(rb"\r\n(OK|ERROR|\+CME ERROR: [^\r]*|SEND OK|SEND FAIL|CONNECT|NO CARRIER)\r\n")


class AtHost:
    def __init__(self, port: str, timeout: float = 15.0):
        self.serial = serial.Serial(port, 115200, timeout=0.05)
        self.timeout = timeout
        self._buffer = bytearray()

    def close(self) -> None:
        self.serial.close()

    def __enter__(self) -> "AtHost":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def write(self, data: bytes) -> None:
        self.serial.write(data)

    def _fill(self, deadline: float, what: str) -> None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited for {what}; got {bytes(self._buffer)!r}")
        self._buffer += self.serial.read(max(1, self.serial.in_waiting))

    def _take(self, end: int) -> bytes:
        out = bytes(self._buffer[:end])
        del self._buffer[:end]
        return out

    def ask(self, line: str | bytes, final: bytes | None = None) -> bytes:
        """Send ``line`` + CR; read up to ``final`` (default: the first final result code)."""
        if isinstance(line, str):
            line = line.encode("latin-1")
        self.serial.write(line + b"\r")
        return self.expect(final) if final is not None else self.until_final()

    def said(self, line: str) -> bytes:
        """``ask(line)`` less the echo of the line (ATE1): the module's answer."""
        answer = self.ask(line)
        assert answer.startswith(line.encode("latin-1") + b"\r"), answer
        return answer[len(line) + 1:]

    def set_http_url(self, url: str) -> None:
        """AT+QHTTPURL=<length>,80, CONNECT, the URL (not echoed), OK."""
        line = f"AT+QHTTPURL={len(url)},80"
        assert self.ask(line, final=b"CONNECT\r\n") == line.encode() + b"\r\r\nCONNECT\r\n"
        self.write(url.encode())
        assert self.until_final() == b"\r\nOK\r\n"

    def until_final(self, timeout: float | None = None) -> bytes:
        return self.until_match(FINAL, "a final result", timeout)

    def until_match(self, pattern: re.Pattern[bytes], what: str, timeout: float | None = None) -> bytes:
        """Everything up to and including the first match of ``pattern`` (``what`` names it in
        the error when it does not come)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while (match := pattern.search(self._buffer)) is None:
            self._fill(deadline, what)
        return self._take(match.end())

    def expect(self, wanted: bytes, timeout: float | None = None) -> bytes:
        """Everything up to and including the first ``wanted``."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while (index := self._buffer.find(wanted)) < 0:
            self._fill(deadline, repr(wanted))
        return self._take(index + len(wanted))

    def read_exactly(self, count: int, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self._buffer) < count:
            self._fill(deadline, f"{count} bytes")
        return self._take(count)

    def unasked(self) -> bytes:
        """Ask ``ATS3?`` (the line end character: ``013``, an answer no test asks for otherwise) and
        return what the module wrote before answering it, less the echo of the question (ATE1):
        tests assert b"" where nothing may come. The module answers in order, so whatever it wrote
        before it read the question is caught however late it came, which a wait of fixed length
        would miss; and the answer is one no stray OK can pass for."""
        self.serial.write(SENTINEL + b"\r")
        before = self.expect(SENTINEL_ANSWER)[:-len(SENTINEL_ANSWER)]
        return before.removesuffix(SENTINEL + b"\r")

    def idle(self, seconds: float) -> bytes:
        """The host writes nothing for ``seconds`` (its own pacing: the guard time before +++, a
        pause a driver makes) and returns what came meanwhile. Not a check that nothing comes: use
        ``unasked`` for that where the module can be asked."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._buffer += self.serial.read(max(1, self.serial.in_waiting))
        return self._take(len(self._buffer))

    def upload(self, name: str, data: bytes) -> bytes:
        """AT+QFUPL the file; returns the whole answer."""
        self.serial.write(f'AT+QFUPL="{name}",{len(data)}\r'.encode())
        answer = self.expect(b"CONNECT\r\n")
        self.serial.write(data)
        return answer + self.until_final()


def bytes_read_by_module(trace: Path) -> int:
    """How many bytes the module has read from the host so far, by its trace's ``host_in`` entries."""
    if not trace.exists():
        return 0
    total = 0
    for line in trace.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry.get("kind") == "host_in":
            total += len(entry["data"])
    return total


def wait_until_read(trace: Path, count: int, timeout: float = 15.0) -> None:
    """Wait until the module has read ``count`` bytes from the host in all (its trace shows each
    read as it happens): the event a test waits on before it changes what the module does with
    input it has already been sent."""
    deadline = time.monotonic() + timeout
    while (read := bytes_read_by_module(trace)) < count:
        assert time.monotonic() < deadline, f"the module read {read} of {count} bytes"
        time.sleep(0.01)


def wait_until(condition, what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` (a state the emulator sets) until it holds: a bounded wait on the thing
    itself, the bound mattering only when it never comes."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout} s, never: {what}"
        time.sleep(0.005)
