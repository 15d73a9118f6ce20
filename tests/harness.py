"""Drives the sans-IO modem directly: no pty, no sockets, time chosen by the test."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime, timezone

from ecemu.commands import COMMAND_SET
from ecemu.core import events as ev
from ecemu.core.modem import Modem
from ecemu.core.ufs import MemoryFileStore
from ecemu.profile import load_profile

BOOT_WALL_CLOCK = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


class CoreHarness:
    """A modem, its clock and what it has said, for tests of the core.

    ``command`` sends one line and returns everything the host received in answer; effects for
    the network pile up in ``effects`` until the test takes them.
    """

    def __init__(self, profile: str = "EC200M-CN", files=None, boot: bool = True, echo: bool = False,
                 escape_guard: float = 1.0, keep_port_changes: bool = False):
        self.now = 100.0
        # What the modem asked of its port (core/uart.py), kept only for tests that look at it:
        # thousands of RI pulses would otherwise pile up here as a shell would never let them.
        self.keep_port_changes = keep_port_changes
        self.port_changes: list = []
        self.files = files if files is not None else MemoryFileStore()
        self.modem = Modem(load_profile(profile), self.files, commands=COMMAND_SET, now=self.now,
                           wall_clock=BOOT_WALL_CLOCK, escape_guard=escape_guard)
        self.effects: list[ev.Effect] = []
        self.modem.power_on(self.now)
        if boot:
            self.boot_output = self.advance(5.0)
            if not echo:
                assert self.command("ATE0") == b"ATE0\r\r\nOK\r\n"

    def _collect(self) -> bytes:
        self.effects.extend(self.modem.take_effects())
        if self.modem.port_changes:
            changes = self.modem.take_port_changes()
            if self.keep_port_changes:
                self.port_changes += changes
        return self.modem.take_host_bytes()

    def take_port_changes(self) -> list:
        self._collect()
        out, self.port_changes = self.port_changes, []
        return out

    def send(self, data: bytes) -> bytes:
        self.modem.receive_from_host(data, self.now)
        return self._collect()

    def command(self, line: str | bytes) -> bytes:
        if isinstance(line, str):
            line = line.encode("latin-1")
        return self.send(line + b"\r")

    def advance(self, seconds: float) -> bytes:
        """Let ``seconds`` pass, firing every timer due on the way, in order."""
        end = self.now + seconds
        out = bytearray()
        while True:
            deadline = self.modem.next_deadline()
            if deadline is None or deadline > end:
                break
            self.now = max(self.now, deadline)
            self.modem.tick(self.now)
            out += self._collect()
        self.now = end
        self.modem.tick(self.now)
        out += self._collect()
        return bytes(out)

    def event(self, event: ev.NetworkEvent) -> bytes:
        self.modem.handle_event(event, self.now)
        return self._collect()

    def take_output(self) -> bytes:
        """What the host received from calls the test made on the modem directly (DTR ...)."""
        return self._collect()

    def take_effects(self) -> list[ev.Effect]:
        self._collect()
        out, self.effects = self.effects, []
        return out


@contextmanager
def no_internal_errors():
    """Fail when the emulator logs an error: a handler, a timer or the editor raised, and was caught
    (the modem never lets an exception out; this is how a test still sees one)."""
    records: list[logging.LogRecord] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    catch = Catch(level=logging.ERROR)
    logger = logging.getLogger("ecemu")
    logger.addHandler(catch)
    try:
        yield records
    finally:
        logger.removeHandler(catch)
    assert not records, [r.getMessage() for r in records]


def complete_lines(command_bytes: bytes, limit: int) -> int:
    """How many complete command lines ``command_bytes`` hold by the README's editing rules, each of
    which gets exactly one final result: CR ends a line, an LF at its start is dropped, BS/DEL erase,
    an empty line gets nothing, an overlong one ERROR, ``A/`` repeats the last line."""
    count = 0
    line = bytearray()
    overflow = False
    for b in command_bytes:
        if b == 0x0A and not line:
            continue
        if b == 0x0D:
            if overflow or bytes(line).lstrip(b" \x00"):
                count += 1
            line.clear()
            overflow = False
        elif b in (0x08, 0x7F):
            if line and not overflow:
                line.pop()
        elif overflow:
            continue
        elif b == ord("/") and line in (b"A", b"a"):
            count += 1
            line.clear()
        elif len(line) >= limit:
            overflow = True
        else:
            line.append(b)
    return count
