"""The command-line editor (V.250 5.2.1, 6.2.1 - 6.2.3): host bytes in, echo out, command lines out.

S3 (CR) ends a line and the LF of a CR LF line end belongs to it (REFERENCE.md "Line ends"); S5
(BS) and DEL erase; ``A/`` repeats the last line; a line longer than the profile allows is dropped
whole and answered ERROR; an empty line gets no answer; a line not starting with ``AT`` is ERROR.
Runs of plain bytes are taken whole, so the editor's time is linear in its input.

The editor stops at the CR: the line runs before the byte after it is taken, as the module's
parser runs it. That byte, the LF of a CR LF line end or the next line's first byte, is taken by
``take_line_end_lf`` once the host modes let the parser go on; whether the LF is echoed depends on
whether the module had begun to answer the line by then (REFERENCE.md "Line ends").
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any, Callable, Protocol

log = logging.getLogger(__name__)

DELETE = 0x7F  # what most terminal programs send for the backspace key; erases as S5 does (chosen)
LF = 0x0A  # the LF of a CR LF line end (or a stray one at the start of a line), unless it is S3


class Rejected:
    """A line answered ERROR without running: too long, not ``AT``, ``A/`` with no last line."""

    def __repr__(self) -> str:
        return "REJECTED"


REJECTED = Rejected()

# What a call of ``LineEditor.edit`` ended with: a line to run, a rejected one, or nothing to do
# (the input ran out, or an empty line ended).
Edited = bytes | Rejected | None


class Mode(Protocol):
    """The host mode, named in the trace's line_end entries."""

    @property
    def value(self) -> str: ...


class EditorSettings(Protocol):
    echo: bool
    s_registers: dict[int, int]


def _special(terminator: int, erase: int) -> bytes:
    """Bytes the line editor does more with than append: LF, S3, S5, DEL and the ``/`` of ``A/``."""
    return re.escape(bytes(sorted({LF, terminator, erase, DELETE, ord("/")})))


@functools.lru_cache(maxsize=None)
def _plain_run(terminator: int, erase: int) -> re.Pattern[bytes]:
    """Bytes the line editor only appends."""
    return re.compile(b"[^" + _special(terminator, erase) + b"]+")


@functools.lru_cache(maxsize=None)
def _whole_line(terminator: int, erase: int) -> re.Pattern[bytes]:
    """A line in one piece: bytes the editor only appends, then S3."""
    return re.compile(b"[^" + _special(terminator, erase) + b"]*" + re.escape(bytes((terminator,))))


class LineEditor:
    """The line being typed, the last line run (``A/``) and what the host's line ends are."""

    def __init__(self, line_length: int, write: Callable[[bytes | bytearray], None],
                 observe: Callable[..., Any]):
        self.limit = line_length + 2  # "AT" plus the body
        self._line_length = line_length
        self._write = write
        self._observe = observe
        self._line = bytearray()
        self._overflow = False
        # A CR has just ended a line and the byte after it has not been taken yet: if it is an LF
        # it belongs to that line's end, whatever mode the line led to (REFERENCE.md "Line ends").
        self.line_end_open = False
        # The byte after that CR was an LF that came with it, in the same write: it ends the line
        # even in a data mode the line led to, from a host of either habit.
        self._lf_came_with_cr = False
        # The line that CR ended was empty: nothing answers it, so its LF is echoed like its CR.
        self.ended_empty = False
        # Whether this host ends its lines with CR LF, learnt from its lines: once it has, an LF that
        # follows a line's CR in a later write is still that line's end, even after a `>` prompt or
        # CONNECT; a host that ends lines with CR alone gets such an LF as data (chosen).
        self._host_ends_lines_with_lf = False
        self.last_line: bytes | None = None

    @property
    def typing(self) -> bool:
        """A command line has begun and its S3 has not come yet."""
        return bool(self._line) or self._overflow

    @property
    def host_ends_lines_with_lf(self) -> bool:
        return self._host_ends_lines_with_lf

    def next_line_began(self) -> None:
        """The first host byte after a line's CR is not an LF: the host ends its lines with CR."""
        self.line_end_open = False
        self._host_ends_lines_with_lf = False

    def take_line_end_lf(self, data: bytearray, mode: Mode, in_command_mode: bool, echo: bool) -> None:
        """The first host byte after a line's CR (``data[0]``), taken once the line has run as far
        as the parser waits for it. An LF there ends the line, never data for the mode the line
        led to, when it came with the CR, when the port is in command mode (a line never starts
        with LF) or when the host ends its lines with CR LF; anything else leaves ``data`` as it
        is. ``echo``: whether the LF is echoed, i.e. ATE1 is on and the module had not begun to
        answer the line when it took the LF (REFERENCE.md "Line ends")."""
        self.line_end_open = False
        if data[0] != LF:
            self._host_ends_lines_with_lf = False
            return
        if self._lf_came_with_cr or in_command_mode or self._host_ends_lines_with_lf:
            del data[0]
            self._host_ends_lines_with_lf = True
            self._observe("line_end", data=b"\r\n" if self._lf_came_with_cr else b"\n", mode=mode.value)
            if echo:
                self._write(b"\n")

    def line_extent(self, data: bytes | bytearray, settings: EditorSettings) -> int:
        """How many of ``data``'s bytes reach the end of the first command line among them: its S3
        and an LF right after it, or a ``/`` (which ends an ``A/``; cut there whatever the line, the
        rest comes next); all of them when no line ends there. What a caller gives the editor at
        once so that a flood of lines is answered one line at a time."""
        end = data.find(settings.s_registers[3])
        if b"/" in data:  # seldom: where it is is looked up only then
            slash = data.find(b"/", 0, end + 1 if end >= 0 else len(data))
            if slash >= 0:
                return slash + 1
        if end < 0:
            return len(data)
        end += 1
        if end < len(data) and data[end] == LF:
            end += 1  # the LF of CR LF: taken with its CR
        return end

    def edit(self, data: bytearray, settings: EditorSettings, mode: Mode) -> tuple[int, Edited]:
        """Consume ``data`` until a line ends or it runs out: how many bytes were taken, and the
        line to run (bytes), ``REJECTED``, or None."""
        # S3 and S5 as they are when the line starts: the line that sets S3 still ends at the old
        # terminator (V.250 6.2.1).
        registers = settings.s_registers
        terminator = registers[3]
        if not self._line and not self._overflow:
            # The common case: a whole line in one piece, plain bytes up to its S3, taken with one
            # echo (the same bytes as ``_edit_bytes`` gives).
            whole = _whole_line(terminator, registers[5]).match(data)
            if whole is not None and (end := whole.end()) <= self.limit + 1:
                if settings.echo:
                    self._write(data[:end])
                return end, self._line_ended(bytes(data[:end - 1]), data, end, terminator)
        return self._edit_bytes(data, terminator, registers[5], settings.echo)

    def _edit_bytes(self, data: bytearray, terminator: int, erase: int, echo: bool) -> tuple[int, Edited]:
        """``edit`` byte by byte, runs of plain bytes at once."""
        limit = self.limit
        write = self._write
        line = self._line
        plain = _plain_run(terminator, erase)
        i = 0
        while i < len(data):
            # A run of bytes that can only extend the line is taken whole, with one echo: the
            # same bytes as one at a time, without a trip through this loop for each.
            # A run that overflows the line is still taken whole: what does not fit is echoed
            # and dropped in one step, so an endless line costs time linear in its length.
            run = plain.match(data, i)
            if run is not None:
                end = run.end()
                if echo:
                    write(data[i:end])
                if not self._overflow:
                    room = limit - len(line)
                    line += data[i:i + min(room, end - i)]
                    self._overflow = end - i > room
                i = end
                continue
            byte = data[i]
            i += 1
            if echo:
                write(bytes((byte,)))
            if byte == LF and not line and terminator != LF:
                continue  # a stray LF between lines (a line end's is take_line_end_lf's): echoed, ignored
            if byte == terminator:
                typed: bytes | None = bytes(line)
                line.clear()
                if self._overflow:
                    self._overflow = False
                    log.info("command line longer than %d characters", self._line_length)
                    typed = None
                return i, self._line_ended(typed, data, i, terminator)
            if byte in (erase, DELETE):
                if line and not self._overflow:
                    line.pop()
                continue
            if self._overflow:
                continue
            if byte == ord("/") and line in (b"A", b"a"):
                line.clear()
                return i, REJECTED if self.last_line is None else self.last_line
            if len(line) >= limit:
                self._overflow = True
                continue
            line.append(byte)
        return i, None

    def _line_ended(self, typed: bytes | None, data: bytearray, i: int, terminator: int) -> Edited:
        """S3 ended the line ``typed`` (None: it overflowed) at ``data[i - 1]``. The line runs
        before the byte after the CR is taken (``take_line_end_lf``)."""
        self.line_end_open = open_end = terminator != LF
        self._lf_came_with_cr = came = open_end and i < len(data) and data[i] == LF
        if came:
            self._host_ends_lines_with_lf = True
        completed = self._complete_line(typed)
        self.ended_empty = completed is None
        return completed

    def _complete_line(self, line: bytes | None) -> Edited:
        if line is None:
            return REJECTED
        if line[:2] in (b"AT", b"at"):
            self.last_line = line  # the common case: nothing before AT
            return line
        line = line.lstrip(b" \x00")
        # A Ctrl+Z (SUB) before AT is ignored too: multiplexer daemons and SMS drivers send one
        # first to end any text input left open (chosen); alone it is a line like any other.
        if line[:1] == b"\x1a" and line.lstrip(b"\x1a")[:2] in (b"AT", b"at"):
            line = line.lstrip(b"\x1a")
        if not line:
            return None  # an empty line gets no answer, as on the module
        if line[:2] not in (b"AT", b"at"):
            return REJECTED
        self.last_line = line
        return line
