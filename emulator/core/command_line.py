"""Running one command line: its commands in order, each outcome shown, one final result.

A line ``AT+A;+B`` runs ``+A`` then ``+B``; the first failure ends it (ERROR, or its family's way of
reporting, ``ecemu.core.results``), an information reply goes on, a wait (``Pending``) or data
(``AwaitData``) hands the port to the modem's mode machine, and the rest of the line runs once
that command is over (``resume``). URCs wait while a line runs.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .parser import CommandCall, Form, SyntaxProblem, parse_command_line
from .registry import AwaitData, CommandFailed, Outcome, Pending, Reply
from .results import ERROR, OK, Refusal

if TYPE_CHECKING:
    from .modem import Modem

log = logging.getLogger("ecemu.core.modem")  # the messages hosts' logs know


PARSED_LINES_KEPT = 32  # a driver polls a handful of lines; a small table keeps memory flat


class CommandLineRunner:
    """The line being run: the calls still to run and the one running."""

    def __init__(self, modem: "Modem"):
        self.modem = modem
        self.running = False  # a command line is being executed: URCs wait for its result
        self._remaining: list[CommandCall] = []
        self.current: CommandCall | None = None  # the command running; the modem clears both
        # Lines already split into calls: drivers send the same few lines again and again, and a
        # CommandCall is never changed once parsed. Bounded; emptied when full.
        self._parsed: dict[str, list[CommandCall]] = {}

    def _calls(self, line: bytes) -> list[CommandCall] | None:
        """The calls of ``line``, or None when it is not well formed."""
        body = line[2:].decode("latin-1")
        calls = self._parsed.get(body)
        if calls is None:
            try:
                calls = parse_command_line(body)
            except SyntaxProblem as problem:
                log.debug("syntax error in %r: %s", line, problem)
                return None
            if len(self._parsed) >= PARSED_LINES_KEPT:
                self._parsed.clear()
            self._parsed[body] = calls
        return calls

    def answered_after(self, line: bytes) -> float | None:
        """How long after its CR the answer to ``line`` is ready when the module answers its
        first command apart from the command parser (``CommandSpec.answered_after``); None when
        the parser runs it. A test command (``=?``) is answered by the parser (chosen)."""
        calls = self._calls(line)
        if not calls or calls[0].form is Form.TEST:
            return None
        spec = self.modem.commands.commands.get(calls[0].name)
        return spec.answered_after if spec is not None else None

    def execute(self, line: bytes) -> None:
        modem = self.modem
        modem.observe("command", line=line)
        calls = self._calls(line)
        if calls is None:
            modem.finish_line(ERROR)
            return
        self._remaining = list(calls)
        try:
            self._run_calls()
        except Exception:  # a malformed outcome: logged; the line ends in ERROR, never half-finished
            log.exception("internal error in %r", line)
            self._remaining.clear()
            modem.finish_line(ERROR)

    def resume(self, outcome: Outcome | CommandFailed) -> None:
        """The running command goes on after a wait or its data: with its outcome, or failed."""
        if isinstance(outcome, CommandFailed):
            current = self.current
            family = self.modem.commands.commands[current.name].family if current is not None else ""
            self._fail(family, outcome)
        elif self._apply(outcome):
            self._run_calls()

    def _run_calls(self) -> None:
        """Run the remaining calls of the line until one waits or fails, or all are done."""
        modem = self.modem
        commands = modem.commands
        self.running = True
        while self._remaining:
            call = self._remaining.pop(0)
            self.current = call
            spec = commands.commands.get(call.name)
            if spec is None:
                modem.observe("unknown", name=call.name)  # a command the emulator does not implement
                self._remaining.clear()
                modem.finish_line(ERROR)
                return
            try:
                outcome = spec.handler(modem, call)
            except CommandFailed as failure:
                self._fail(spec.family, failure)
                return
            except Exception:
                log.exception("internal error in %s", call.name)
                self._fail(spec.family, CommandFailed(Refusal.INTERNAL))
                return
            commands.family(spec.family).errors.succeeded(modem)
            if not self._apply(outcome):
                return
        modem.host.finish_line(OK)

    def _fail(self, family: str, failure: CommandFailed) -> None:
        """The line ends with the failure, shown as its family reports failures."""
        self._remaining.clear()
        modem = self.modem
        modem.finish_line(modem.commands.family(family).errors.failed(modem, failure.code))

    def _apply(self, outcome: Outcome) -> bool:
        """Show an outcome; True when the line may go on with its next command."""
        modem = self.modem
        if isinstance(outcome, Reply):
            if outcome.lines:
                modem.write_host(modem.block(outcome.lines))
            if outcome.raw:
                modem.write_host(outcome.raw)
            if outcome.final is not OK or outcome.online is not None:
                self._remaining.clear()
                modem.finish_line(outcome.final, outcome.online)
                return False
            return True
        if isinstance(outcome, AwaitData):
            modem.take_data(outcome)
            return False
        if isinstance(outcome, Pending):
            modem.wait(outcome)
            return False
        raise TypeError(f"unknown outcome {outcome!r}")
