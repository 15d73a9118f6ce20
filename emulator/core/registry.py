"""The command table: each command family registers its handlers here with ``@command``.

A handler is ``handler(modem, call) -> Outcome``. It reads and changes the modem's state and
returns what the host sees: a finished reply, a request for raw data (the ``>`` prompt of
AT+QSSLSEND, the ``CONNECT`` of AT+QFUPL), or a pending result that an event completes later
(AT+QSSLCLOSE waiting for the peer). Handlers raise ``CommandFailed`` for an error result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

from emulator.core.parser import Arg, CommandCall, Form
from emulator.core.results import (
    CME_INCORRECT_PARAMETERS,
    ERROR,
    OK,
    CmeError,
    FinalResult,
)

if TYPE_CHECKING:
    from emulator.core.modem import Modem


class CommandFailed(Exception):
    """Ends the command (and the rest of its line) with an error result.

    ``cme`` picks ``+CME ERROR: <n>`` (shown per AT+CMEE); without it the result is plain ERROR.
    ``qi_error`` is the code AT+QIGETERROR reports afterwards (SSL note chapter 5).
    """

    def __init__(self, cme: int | None = None, qi_error: int | None = None, result: FinalResult | None = None):
        super().__init__(cme, qi_error)
        self.cme = cme
        self.qi_error = qi_error
        self.result = result


class ParamError(CommandFailed):
    """A parameter out of range or malformed in a 3GPP command: +CME ERROR: 50 (per AT+CMEE)."""

    def __init__(self) -> None:
        super().__init__(cme=CME_INCORRECT_PARAMETERS)


@dataclass
class Reply:
    """The command is finished: information lines, then the final result."""

    lines: list[bytes] = field(default_factory=list)
    final: FinalResult | CmeError = OK
    # Raw bytes sent before the final result as they are, without framing (AT+QFDWL data).
    raw: bytes = b""
    # After the final result (CONNECT), the port enters transparent mode with this session.
    online: Any = None


class DataSink(Protocol):
    """Receives the raw bytes the host sends after a prompt or CONNECT."""

    def feed(self, modem: "Modem", data: bytes) -> tuple[int, "Outcome | CommandFailed | None"]:
        """Take bytes; return how many were consumed and, once the data is complete, the outcome
        (a ``CommandFailed`` ends the command as if its handler had raised it)."""

    def deadline(self) -> float | None:
        """When the data entry times out (absolute, modem time), or None; read again after each
        feed, so it may move with the data."""

    def expire(self, modem: "Modem") -> "Outcome | CommandFailed":
        """The outcome when the deadline passes."""


@dataclass
class AwaitData:
    """Send ``prompt`` to the host and give the following bytes to ``sink``."""

    prompt: bytes
    sink: DataSink
    echo: bool = True  # whether the host's data is echoed while ATE1 is on


@dataclass
class Pending:
    """The final result comes later: something calls ``modem.finish_pending(outcome)``.

    Bytes the host sends meanwhile wait, in order, until the command is finished.
    """

    name: str
    deadline: float | None = None
    on_timeout: Callable[["Modem"], "Outcome"] | None = None


Outcome = Reply | AwaitData | Pending

Handler = Callable[["Modem", CommandCall], Outcome]


@dataclass
class CommandSpec:
    name: str
    handler: Handler
    family: str


COMMANDS: dict[str, CommandSpec] = {}


def command(*names: str, family: str) -> Callable[[Handler], Handler]:
    """Register a handler under one or more command names (upper case, with ``+``/``&``)."""

    def register(handler: Handler) -> Handler:
        for name in names:
            if name in COMMANDS:
                raise ValueError(f"command {name} registered twice")
            COMMANDS[name] = CommandSpec(name, handler, family)
        return handler

    return register


# Helpers for handlers: reading parameters ---------------------------------------------------


def int_arg(call: CommandCall, index: int, low: int, high: int, default: int | None = None,
            error: type[CommandFailed] | Callable[[], CommandFailed] = ParamError) -> int:
    """The integer at ``index`` within ``low..high``; ``default`` when omitted, else an error."""
    arg = call.args[index] if index < len(call.args) else None
    if arg is None:
        if default is None:
            raise error()
        return default
    if arg.quoted or not (arg.text.isascii() and arg.text.isdigit()):
        raise error()
    value = int(arg.text)
    if not low <= value <= high:
        raise error()
    return value


def str_arg(call: CommandCall, index: int, default: str | None = None,
            error: type[CommandFailed] | Callable[[], CommandFailed] = ParamError) -> str:
    """The quoted string at ``index``; ``default`` when omitted, else an error."""
    arg = call.args[index] if index < len(call.args) else None
    if arg is None:
        if default is None:
            raise error()
        return default
    if not arg.quoted:
        raise error()
    return arg.text


def arg_count(call: CommandCall) -> int:
    return len(call.args)


def require_form(call: CommandCall, *forms: Form) -> None:
    if call.form not in forms:
        raise CommandFailed()


def ok(*lines: str | bytes) -> Reply:
    return Reply([line.encode("latin-1") if isinstance(line, str) else line for line in lines])


__all__ = [
    "Arg", "AwaitData", "COMMANDS", "CommandCall", "CommandFailed", "CommandSpec", "DataSink",
    "ERROR", "Form", "Outcome", "ParamError", "Pending", "Reply", "arg_count", "command",
    "int_arg", "ok", "require_form", "str_arg",
]
