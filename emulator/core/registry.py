"""The command table: each command family declares its handlers with ``@command``.

A handler is ``handler(modem, call) -> Outcome``. It reads and changes the modem's state and
returns what the host sees: a finished reply, a request for raw data (the ``>`` prompt of
AT+QSSLSEND, the ``CONNECT`` of AT+QFUPL), or a pending result that an event completes later
(AT+QSSLCLOSE waiting for the peer). Handlers raise ``CommandFailed`` for an error result.

The modem a handler, a data sink, an online session or a family state receives is
``ecemu.core.modem.Modem``, and the command families name it so. This module sits under the modem
(the modem imports it), so it cannot name that class without an import circle: here the modem is
``HandlerModem``, which the core's parts hand on and never read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Iterable, Protocol, TypeVar

from .parser import Arg, CommandCall, Form
from .results import CME, ERROR, OK, CmeError, Code, ErrorReporting, FinalResult, Refusal

# ``ecemu.core.modem.Modem`` as handlers see it (the module docstring says why it is opaque here).
HandlerModem = Any


class CommandFailed(Exception):
    """Ends the command (and the rest of its line) with an error result: the one way a handler
    fails or refuses.

    ``code`` is the one code of the failure, a member of a table in ``ecemu.core.results``
    (``CmeCode``, ``FileError``, ``QiError``, ``HttpError``) or a ``Refusal``; a parameter out of
    range or malformed is ``Refusal.PARAMETER``. The command's family says how the host sees it
    (``Family.errors``).
    """

    def __init__(self, code: Code):
        super().__init__(code)
        self.code = code


class OnlineSession(Protocol):
    """A connection in transparent transmission mode (SSL note 1.4; see the SSL family)."""

    def entered(self, modem: HandlerModem) -> None:
        """The port has just become this connection's (after CONNECT)."""

    def ready_for_host(self) -> bool:
        """False while the connection cannot take more: host bytes then wait in order."""

    def feed_host(self, modem: HandlerModem, data: bytes) -> None: ...

    def leave(self, modem: HandlerModem) -> None:
        """Back to command mode, the connection kept (+++ or a DTR drop with AT&D1)."""

    def hang_up(self, modem: HandlerModem) -> None:
        """Back to command mode, the connection closed (a DTR drop with AT&D2)."""


@dataclass
class Reply:
    """The command is finished: information lines, then the final result."""

    lines: list[bytes] = field(default_factory=list)
    final: FinalResult | CmeError = OK
    # Raw bytes sent before the final result as they are, without framing (AT+QFDWL data).
    raw: bytes = b""
    # After the final result (CONNECT), the port enters transparent mode with this session.
    online: "OnlineSession | None" = None


class DataSink(Protocol):
    """Receives the raw bytes the host sends after a prompt or CONNECT."""

    def feed(self, modem: HandlerModem, data: bytes) -> tuple[int, "Outcome | CommandFailed | None"]:
        """Take bytes; return how many were consumed and, once the data is complete, the outcome
        (a ``CommandFailed`` ends the command as if its handler had raised it)."""

    def deadline(self) -> float | None:
        """When the data entry times out (absolute, modem time), or None; read again after each
        feed, so it may move with the data."""

    def expire(self, modem: HandlerModem) -> "Outcome | CommandFailed":
        """The outcome when the deadline passes."""


@dataclass
class AwaitData:
    """Send ``prompt`` to the host and give the following bytes to ``sink``."""

    prompt: bytes
    sink: DataSink
    echo: bool = True  # whether the host's data is echoed while ATE1 is on


@dataclass
class Pending:
    """The final result comes later: something calls ``modem.host.finish_pending(outcome)``.

    Bytes the host sends meanwhile wait, in order, until the command is finished.
    """

    name: str
    deadline: float | None = None
    on_timeout: Callable[[HandlerModem], "Outcome"] | None = None


Outcome = Reply | AwaitData | Pending

Handler = Callable[[HandlerModem, CommandCall], Outcome]


@dataclass(frozen=True)
class CommandSpec:
    name: str
    handler: Handler
    family: str
    # None: the module's command parser runs the command itself and takes the host's next byte only
    # once the command has answered. A time in seconds: the module hands the command to another of
    # its parts and the parser goes on at once; the answer is ready that long after the line's CR,
    # so the LF of a CR LF line end arriving before then is echoed ahead of it (REFERENCE.md "Line ends").
    answered_after: float | None = None


# What @command recorded, by the module that defines the handler. Nothing reads it but
# ``CommandSet.collect``: importing a command module changes no table the modem uses.
_DECLARED: dict[str, list[CommandSpec]] = {}


def command(*names: str, family: str, answered_after: float | None = None) -> Callable[[Handler], Handler]:
    """Declare a handler for one or more command names (upper case, with ``+``/``&``). The
    command set is assembled from the modules listed in ``ecemu.commands``. ``answered_after``:
    the module answers the command apart from its command parser, this many seconds after the
    line's CR (``CommandSpec.answered_after``)."""

    def declare(handler: Handler) -> Handler:
        declared = _DECLARED.setdefault(handler.__module__, [])
        declared.extend(CommandSpec(name, handler, family, answered_after) for name in names)
        return handler

    return declare


class FamilyState:
    """A family's state for one power cycle (``modem.families[<name>]``). Each hook is optional;
    the modem calls the ones a family overrides."""

    def power_off(self) -> None:
        """Before a reboot or at power-down (AT+QPOWD): connections go without a word."""

    def radio_off(self) -> None:
        """AT+CFUN=0/4."""

    def radio_on(self) -> None:
        """AT+CFUN=1 after 0/4: registered again."""

    def resume_online(self) -> "Reply | None":
        """ATO: the transparent connection to go back to, if this family has one."""
        return None

    def hang_up(self) -> None:
        """ATH: the data call of the channel in hand, if this family has one, ends."""

    def port_idle(self) -> None:
        """The port is back in command mode with nothing held, and something waits for that
        (``Modem.mark_idle_waiting``): URCs waiting for it may go."""


@dataclass(frozen=True)
class Family:
    """A command family as the modem sees it: how its failures are reported, and the state it
    keeps (built at every power cycle, after the states of the families it ``needs``)."""

    name: str
    errors: ErrorReporting = CME
    state: Callable[[HandlerModem], FamilyState] | None = None
    needs: tuple[str, ...] = ()


class CommandSet:
    """The command table and the families: what the assembler hands to ``Modem``."""

    def __init__(self, commands: dict[str, CommandSpec], families: dict[str, Family]):
        self.commands = commands
        self.families = families

    @classmethod
    def collect(cls, modules: Iterable[ModuleType]) -> "CommandSet":
        """The commands declared with ``@command`` in ``modules`` and the ``Family`` objects they
        define, in the order given. A name declared twice is an error."""
        commands: dict[str, CommandSpec] = {}
        families: dict[str, Family] = {}
        for module in modules:
            for spec in _DECLARED.get(module.__name__, []):
                if spec.name in commands:
                    raise ValueError(f"command {spec.name} declared twice")
                commands[spec.name] = spec
            for value in vars(module).values():
                if isinstance(value, Family):
                    if families.get(value.name, value) is not value:
                        raise ValueError(f"family {value.name} declared twice")
                    families[value.name] = value
        return cls(commands, families)

    def family(self, name: str) -> Family:
        family = self.families.get(name)
        if family is None:
            family = self.families[name] = Family(name)  # a family with no declaration: CME, no state
        return family

    def build_states(self, modem: HandlerModem, states: dict[str, FamilyState]) -> None:
        """Every family's state into ``states`` (the modem's ``families``, handed in empty), each
        after those it needs: a family's factory finds the states it needs there."""
        building: set[str] = set()

        def build(family: Family) -> None:
            if family.name in states or family.state is None:
                return
            if family.name in building:
                raise ValueError(f"families need each other: {family.name}")
            building.add(family.name)
            for needed in family.needs:
                build(self.family(needed))
            states[family.name] = family.state(modem)

        for family in list(self.families.values()):
            build(family)


# Helpers for handlers: reading parameters ---------------------------------------------------


def int_arg(call: CommandCall, index: int, low: int, high: int, default: int | None = None,
            refusal: Refusal = Refusal.PARAMETER) -> int:
    """The integer at ``index`` within ``low..high``; ``default`` when omitted, else
    ``CommandFailed(refusal)``: ``Refusal.PLAIN`` for a V.250 command, which answers plain ERROR."""
    arg = call.args[index] if index < len(call.args) else None
    if arg is None:
        if default is None:
            raise CommandFailed(refusal)
        return default
    if arg.quoted or not (arg.text.isascii() and arg.text.isdigit()):
        raise CommandFailed(refusal)
    value = int(arg.text)
    if not low <= value <= high:
        raise CommandFailed(refusal)
    return value


StateT = TypeVar("StateT", bound="FamilyState")


def family_state(modem: HandlerModem, name: str, kind: type[StateT]) -> StateT:
    """The state of family ``name`` in ``modem.families``, as the class its family declared."""
    state = modem.families[name]
    assert isinstance(state, kind)
    return state


def number_setting(call: CommandCall, name: str, current: int, low: int, high: int, choices: str,
                   default: int | None = None) -> tuple[Reply, int]:
    """A setting of one number (27.007's pattern): ``=?`` lists ``choices``, ``?`` shows
    ``current``, ``=<n>`` sets it (with ``default``, the bare command and ``=`` set that).
    Returns the reply and the value the setting has afterwards."""
    if call.form is Form.TEST:
        return ok(f"{name}: {choices}"), current
    if call.form is Form.READ:
        return ok(f"{name}: {current}"), current
    if default is None:
        require_form(call, Form.WRITE)
    else:
        require_form(call, Form.WRITE, Form.EXEC)
    at_most(call, 1)
    return ok(), int_arg(call, 0, low, high, default=default)


def str_arg(call: CommandCall, index: int, default: str | None = None,
            refusal: Refusal = Refusal.PARAMETER) -> str:
    """The quoted string at ``index``; ``default`` when omitted, else ``CommandFailed(refusal)``."""
    arg = call.args[index] if index < len(call.args) else None
    if arg is None:
        if default is None:
            raise CommandFailed(refusal)
        return default
    if not arg.quoted:
        raise CommandFailed(refusal)
    return arg.text


def at_most(call: CommandCall, count: int) -> None:
    """More parameters than ``count`` is a parameter refused (chosen: the command defines no more)."""
    if len(call.args) > count:
        raise CommandFailed(Refusal.PARAMETER)


def arg_count(call: CommandCall) -> int:
    return len(call.args)


def require_form(call: CommandCall, *forms: Form) -> None:
    if call.form not in forms:
        raise CommandFailed(Refusal.FORM)


def ok(*lines: str | bytes) -> Reply:
    return Reply([line.encode("latin-1") if isinstance(line, str) else line for line in lines])


__all__ = [
    "Arg", "AwaitData", "CommandCall", "CommandFailed", "CommandSet", "CommandSpec", "DataSink",
    "ERROR", "Family", "FamilyState", "Form", "Outcome", "Pending", "Refusal", "Reply",
    "arg_count", "at_most", "command", "family_state", "int_arg", "number_setting", "ok", "require_form", "str_arg",
]
