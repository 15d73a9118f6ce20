"""Running one command line: its commands in order, each outcome shown, one final result.

A line ``AT+A;+B`` runs ``+A`` then ``+B``; the first failure ends it (ERROR, or its family's way of
reporting, ``ecemu.core.results``), an information reply goes on, and a wait (``Pending``) or data
(``AwaitData``) stops the run: the runner hands it to the host modes (``host_modes.py``), which own
the port's mode, and the rest of the line runs once that command is over (``resume``). Each run
ends with what stopped it (``Stop``): the line's end (``LineEnd``), or the wait or the data. URCs
wait while a line runs (``running``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from .parser import CommandCall, Form, SyntaxProblem, parse_command_line
from .registry import AwaitData, CommandFailed, CommandSet, HandlerModem, OnlineSession, Outcome, Pending, Reply
from .results import ERROR, OK, CmeError, FinalResult, Refusal
from .urcs import FramingSettings, frame_block

log = logging.getLogger("ecemu.core.modem")  # the messages hosts' logs know


PARSED_LINES_KEPT = 32  # a driver polls a handful of lines; a small table keeps memory flat


@dataclass(frozen=True, slots=True)
class LineEnd:
    """The line is over: its final result, and the session the port enters after it (CONNECT)."""

    final: FinalResult | CmeError
    online: OnlineSession | None = None


LINE_OK = LineEnd(OK)
LINE_ERROR = LineEnd(ERROR)

# What stopped a run of a line's commands: its end, or a command that waits or takes data.
Stop = LineEnd | AwaitData | Pending


class RunnerChannel(Protocol):
    """The channel whose lines the runner runs (``channel.py``): where the replies go, framed as
    its settings say."""

    @property
    def settings(self) -> FramingSettings: ...

    def write(self, data: bytes | bytearray) -> None: ...


class CommandLineRunner:
    """The line being run: the calls still to run and the one running; a line held back a moment
    before it runs (``hold``)."""

    def __init__(self, commands: CommandSet, modem: HandlerModem, channel: RunnerChannel,
                 observe: Callable[..., Any]):
        self._commands = commands
        self._modem = modem  # what the handlers receive
        self._channel = channel
        self._observe = observe
        self.running = False  # a line is being executed or held: URCs wait for its result
        self._remaining: list[CommandCall] = []
        self.current: CommandCall | None = None  # the command running
        self.held: bytes | None = None  # a line held back (``hold``)
        # Lines already split into calls: drivers send the same few lines again and again, and a
        # CommandCall is never changed once parsed. Bounded; emptied when full.
        self._parsed: dict[bytes, list[CommandCall]] = {}

    @property
    def parsed_lines_kept(self) -> int:
        """How many lines are kept already split into calls (at most ``PARSED_LINES_KEPT``)."""
        return len(self._parsed)

    def _calls(self, line: bytes) -> list[CommandCall] | None:
        """The calls of ``line``, or None when it is not well formed."""
        calls = self._parsed.get(line)
        if calls is None:
            try:
                calls = parse_command_line(line[2:].decode("latin-1"))
            except SyntaxProblem as problem:
                log.debug("syntax error in %r: %s", line, problem)
                return None
            if len(self._parsed) >= PARSED_LINES_KEPT:
                self._parsed.clear()
            self._parsed[line] = calls
        return calls

    def answered_after(self, line: bytes) -> float | None:
        """How long after its CR the answer to ``line`` is ready when the module answers its
        first command apart from the command parser (``CommandSpec.answered_after``); None when
        the parser runs it. A test command (``=?``) is answered by the parser (chosen)."""
        calls = self._calls(line)
        if not calls or calls[0].form is Form.TEST:
            return None
        spec = self._commands.commands.get(calls[0].name)
        return spec.answered_after if spec is not None else None

    # --- a line held back (host_modes.py: its LF may come first) -------------------------------

    def hold(self, line: bytes) -> None:
        """``line`` runs a moment later (``take_held``); URCs wait for it as while it runs."""
        self.held = line
        self.running = True

    def take_held(self) -> bytes | None:
        """The line held back, now to be executed; None when there is none."""
        line, self.held = self.held, None
        return line

    # --- running -----------------------------------------------------------------------------

    def execute(self, line: bytes) -> Stop:
        self._observe("command", line=line)
        calls = self._calls(line)
        if calls is None:
            return self._end(LINE_ERROR)
        self._remaining = list(calls)
        try:
            return self._run_calls()
        except Exception:  # a malformed outcome: logged; the line ends in ERROR, never half-finished
            log.exception("internal error in %r", line)
            return self._end(LINE_ERROR)

    def resume(self, outcome: Outcome | CommandFailed) -> Stop:
        """The running command goes on after a wait or its data: with its outcome, or failed."""
        current = self.current
        if isinstance(outcome, CommandFailed):
            family = self._commands.commands[current.name].family if current is not None else ""
            return self._fail(family, outcome)
        try:
            stop = self._apply(outcome)
            return stop if stop is not None else self._run_calls()
        except Exception:  # as in ``execute``
            log.exception("internal error in %r", current)
            return self._end(LINE_ERROR)

    def _run_calls(self) -> Stop:
        """Run the remaining calls of the line until one waits or fails, or all are done."""
        commands = self._commands
        modem = self._modem
        self.running = True
        while self._remaining:
            call = self._remaining.pop(0)
            self.current = call
            spec = commands.commands.get(call.name)
            if spec is None:
                self._observe("unknown", name=call.name)  # a command the emulator does not implement
                return self._end(LINE_ERROR)
            try:
                outcome = spec.handler(modem, call)
            except CommandFailed as failure:
                return self._fail(spec.family, failure)
            except Exception:
                log.exception("internal error in %s", call.name)
                return self._fail(spec.family, CommandFailed(Refusal.INTERNAL))
            commands.family(spec.family).errors.succeeded(modem)
            stop = self._apply(outcome)
            if stop is not None:
                return stop
        self.running = False  # every call ran (``_end`` less the calls left: there are none)
        self.current = None
        return LINE_OK

    def _fail(self, family: str, failure: CommandFailed) -> Stop:
        """The line ends with the failure, shown as its family reports failures."""
        return self._end(LineEnd(self._commands.family(family).errors.failed(self._modem, failure.code)))

    def _end(self, end: LineEnd) -> LineEnd:
        self._remaining.clear()
        self.running = False
        self.current = None
        return end

    def _apply(self, outcome: Outcome) -> Stop | None:
        """Show an outcome; None when the line may go on with its next command, else what stops it."""
        if isinstance(outcome, Reply):
            channel = self._channel
            if outcome.lines:
                channel.write(frame_block(channel.settings, outcome.lines))
            if outcome.raw:
                channel.write(outcome.raw)
            if outcome.final is not OK or outcome.online is not None:
                return self._end(LineEnd(outcome.final, outcome.online))
            return None
        if isinstance(outcome, (AwaitData, Pending)):
            return outcome
        raise TypeError(f"unknown outcome {outcome!r}")
