"""The control interface of a running emulator: faults to inject and state to inspect.

The same operations reach a modem from three places: the Python API (``Emulator.control``), the
command line (``ecemu ctl``) and the local control socket (``ecemu.shell.control_socket``).
Each operation is a method of ``Controller`` registered with ``@operation``; its parameters and
docstring are the whole of its interface, so the three front ends never drift apart.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Callable, get_args, get_origin

from .shell.control_socket import ControlError

if TYPE_CHECKING:
    from .shell.runner import ControlInterface, ModemRunner

__all__ = ["ControlError", "Controller", "OPERATIONS", "controller_of", "operation"]


def controller_of(runner: "ModemRunner") -> "ControlInterface":
    """The control interface the runner was made with (every front end makes it with one)."""
    if runner.controller is None:
        raise ControlError("this modem has no control interface")
    return runner.controller


@dataclass(frozen=True)
class Range:
    """The documented bounds of a number argument, both included; nothing outside is carried out."""

    low: float
    high: float
    also: tuple[float, ...] = ()  # single values allowed besides the range (AT+CSQ's 99: unknown)

    def describe(self) -> str:
        return f"{_number(self.low)} to {_number(self.high)}" + "".join(f" or {_number(v)}" for v in self.also)

    def holds(self, value: float) -> bool:
        return math.isfinite(value) and (self.low <= value <= self.high or value in self.also)


@dataclass(frozen=True)
class OneOf:
    """The documented values of a text argument, the only ones carried out."""

    values: tuple[str, ...]

    def describe(self) -> str:
        return "one of " + ", ".join(self.values)


@dataclass(frozen=True)
class MaxLength:
    """The documented longest text argument, in characters (Latin-1, as the port carries bytes)."""

    characters: int

    def describe(self) -> str:
        return f"at most {self.characters} characters"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# Every argument of every operation has a bound, so no request can make the emulator hold
# unbounded memory or time: a client id, a count, a duration, a text.
Client = Annotated[int, Range(0, 11)]  # SSL note 2.2.2: <clientID> 0-11
Seconds = Annotated[float, Range(0, 3600)]
Milliseconds = Annotated[int, Range(0, 60000)]
UrcText = Annotated[str, MaxLength(1024)]
# AT+QSSLOPEN's clients, AT+QIOPEN's sockets, AT+QMTOPEN's clients, the HTTP request
SOCKET_FAMILIES = ("ssl", "tcpip", "mqtt", "http")
FamilyName = Annotated[str, OneOf(SOCKET_FAMILIES)]  # the socket families a server-side fault reaches
# server-reset reaches one more: "ppp", a TCP flow of a PPP data call, by the number the trace gives
# it (each call numbers its flows from 0)
ResetFamilyName = Annotated[str, OneOf((*SOCKET_FAMILIES, "ppp"))]
OPEN_FAILURES = ("dns", "connect", "timeout", "handshake", "silent")


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: type  # int, float, bool or str
    bound: Range | MaxLength | OneOf | None
    default: Any  # inspect.Parameter.empty when required

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    def describe(self) -> str:
        """``name: int 0 to 11`` (with ``= default`` when it has one), as ``--list`` and the docstrings show it."""
        text = f"{self.name}: {self.kind.__name__}"
        if self.bound is not None:
            text += f" {self.bound.describe()}"
        if not self.required:
            text += f" = {self.default!r}"
        return text


@dataclass(frozen=True)
class Operation:
    name: str
    method: Callable[..., Any]
    summary: str
    doc: str
    parameters: tuple[Parameter, ...]

    @property
    def python_name(self) -> str:
        """The name of the method of ``Emulator.control``: the operation's name with ``_`` for ``-``."""
        return self.name.replace("-", "_")

    def convert(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Arguments from text (the command line) or JSON, converted to the annotated types and
        checked against their bounds."""
        known = {p.name: p for p in self.parameters}
        unknown = set(raw) - set(known)
        if unknown:
            raise ControlError(f"{self.name}: unknown argument(s) {', '.join(sorted(unknown))}")
        out = {}
        for name, param in known.items():
            if name not in raw:
                if param.required:
                    raise ControlError(f"{self.name}: missing argument {name}")
                continue
            out[name] = _convert(self.name, param, raw[name])
        return out


def _convert(op: str, param: Parameter, value: Any) -> Any:
    kind, name = param.kind, param.name
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind is int:
            if isinstance(value, float) or isinstance(value, bool):
                raise ValueError(value)
            converted: Any = int(str(value), 10)
        elif kind is float:
            if isinstance(value, bool):
                raise ValueError(value)
            converted = float(value)
        else:
            converted = str(value)
    except (TypeError, ValueError):
        raise ControlError(f"{op}: {name} must be {kind.__name__}, not {_shown(value)}") from None
    bound = param.bound
    if isinstance(bound, Range) and not bound.holds(converted):
        raise ControlError(f"{op}: {name} must be {bound.describe()}, not {_shown(value)}")
    if isinstance(bound, OneOf) and converted not in bound.values:
        raise ControlError(f"{op}: {name} must be {bound.describe()}, not {_shown(value)}")
    if isinstance(bound, MaxLength):
        if len(converted) > bound.characters:
            raise ControlError(f"{op}: {name} must be {bound.describe()}, not {len(converted)}")
        try:
            converted.encode("latin-1")
        except UnicodeEncodeError:
            raise ControlError(f"{op}: {name} must be Latin-1 text") from None
    return converted


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


OPERATIONS: dict[str, Operation] = {}
# Operations that change nothing and so are not faults in the trace.
INSPECTIONS = {"status", "listening", "lines", "wait-ri"}
KINDS = (int, float, bool, str)


def _parameter(param: inspect.Parameter, where: str) -> Parameter:
    annotation, bound = param.annotation, None
    if get_origin(annotation) is Annotated:
        annotation, *extras = get_args(annotation)
        bound = next((extra for extra in extras if isinstance(extra, (Range, MaxLength, OneOf))), None)
    if annotation not in KINDS:
        raise TypeError(f"{where}: {param.name} must be annotated with one of int, float, bool, str")
    if bound is None and annotation is not bool:
        raise TypeError(f"{where}: {param.name} needs a documented bound (Range or MaxLength)")
    return Parameter(param.name, annotation, bound, param.default)


def operation(method: Callable[..., Any]) -> Callable[..., Any]:
    """Register a ``Controller`` method as an operation named after it (``_`` becomes ``-``).

    Every parameter is annotated ``Annotated[kind, Range(...)]``, ``Annotated[str, MaxLength(...)]``
    or ``Annotated[str, OneOf(...)]``
    (bool needs no bound): the bound is checked before the method runs and is documented by
    ``ecemu ctl --list`` and the methods of ``Emulator.control``.
    """
    name = method.__name__.replace("_", "-")
    signature = inspect.signature(method, eval_str=True)
    params = tuple(_parameter(p, name) for p in tuple(signature.parameters.values())[1:])
    doc = inspect.cleandoc(method.__doc__ or "")
    summary = " ".join(doc.split("\n\n")[0].split())
    OPERATIONS[name] = Operation(name, method, summary, doc, params)
    return method


class Controller:
    """Operations on one modem; every method runs on the emulator's own loop."""

    def __init__(self, runner: "ModemRunner"):
        self.runner = runner

    def invoke(self, name: str, raw_args: dict[str, Any]) -> Any:
        op = OPERATIONS.get(name)
        if op is None:
            raise ControlError(f"unknown operation {name!r}; known: {', '.join(sorted(OPERATIONS))}")
        arguments = op.convert(raw_args)
        fault = name not in INSPECTIONS
        if fault:
            self.runner.fault(name, raw_args)  # into the trace before what it causes
            # The fault happens now on the module's clock too: what it starts (an RI pulse, a
            # timeout) is timed from now, not from the module's last input.
            self.runner.modem.tick(self.runner.loop.time())
        try:
            result = op.method(self, **arguments)
        except ControlError as exc:
            if fault:
                self.runner.trace("fault_refused", name=name, error=str(exc))
            raise
        self.runner.pump()
        return result

    @property
    def modem(self):
        return self.runner.modem

    def _state(self, family: str):
        state = self.modem.families.get(family)
        if state is None:
            raise ControlError(f"the {family} commands are not available in this build")
        return state

    # --- the module --------------------------------------------------------------------------

    @operation
    def status(self) -> dict[str, Any]:
        """What the modem looks like now: mode, settings, signal, host attachment."""
        modem = self.modem
        return {
            "profile": modem.profile.name,
            "mode": modem.port.host.mode.value,
            "echo": modem.settings.echo,
            "verbose": modem.settings.verbose,
            "cmee": modem.settings.cmee,
            "dtr_mode": modem.settings.dtr_mode,
            "functionality": modem.functionality,
            "signal": list(modem.signal),
            "boots": modem.boot_count,
            "host_attached": not self.runner.host_has_left,
            "port": self.runner.host.address,
        }

    @operation
    def reboot(self) -> None:
        """The module reboots: every connection and setting is lost, the boot URCs come again."""
        self.modem.reboot()

    @operation
    def freeze(self, seconds: Annotated[float, Range(0.001, 3600)]) -> None:
        """The module stops answering for SECONDS; what the host sends meanwhile waits, in order."""
        self.runner.freeze(seconds)

    @operation
    def signal(self, rssi: Annotated[int, Range(0, 31, also=(99,))],
               ber: Annotated[int, Range(0, 7, also=(99,))] = 99) -> None:
        """AT+CSQ reports RSSI and BER from now on (0-31 or 99, 0-7 or 99)."""
        self.modem.signal = (rssi, ber)

    # --- the control lines ---------------------------------------------------------------------

    @operation
    def dtr(self, active: bool) -> None:
        """Set the host's DTR line (a pty has none; RFC 2217 clients and a device's pins set it
        themselves): AT&D says what a drop does, AT+QSCLK=1 lets the module sleep while it is off."""
        self.runner.set_dtr(active)

    @operation
    def rts(self, active: bool) -> None:
        """Set the host's RTS line: with AT+IFC=2,2 the module sends nothing while it is off."""
        self.runner.set_rts(active)

    @operation
    def lines(self) -> dict[str, Any]:
        """The control lines now: the module's RI, DCD, CTS, DSR, the host's DTR and RTS, whether the
        module sleeps (AT+QSCLK), how many RI pulses began and the last one's width in ms."""
        modem = self.modem
        lines = modem.lines
        return {**lines.outputs, "dtr": modem.dtr, "rts": modem.rts, "asleep": lines.asleep,
                "ri_pulses": lines.ri_pulses, "last_ri_pulse_ms": self.runner.last_ri_pulse_ms}

    @operation
    def wait_ri(self, seconds: Annotated[float, Range(0.001, 3600)] = 10.0) -> Any:
        """Wait up to SECONDS for the next RI pulse to end; its width in ms on the module's clock
        (``{"width_ms": 120.0}``)."""
        runner = self.runner
        waiter = runner.wait_for_ri_pulse()

        def expired() -> None:
            if not waiter.done():
                waiter.set_exception(ControlError(f"wait-ri: no RI pulse ended within {seconds:g} s"))

        runner.loop.call_later(seconds, expired)
        return waiter

    # --- the serial side ---------------------------------------------------------------------

    @operation
    def serial_delay(self, ms: Milliseconds) -> None:
        """Hold everything the module says for MS milliseconds before the host gets it (0 ends it)."""
        self.runner.shaper.delay = ms / 1000.0

    @operation
    def serial_chunks(self, size: Annotated[int, Range(0, 65536)], gap_ms: Annotated[int, Range(0, 10000)] = 20) -> None:
        """Split what the module says into SIZE-byte pieces GAP_MS apart (size 0 ends it)."""
        self.runner.shaper.chunk_size = size
        self.runner.shaper.chunk_gap = gap_ms / 1000.0

    @operation
    def urc_in_response(self, text: UrcText) -> None:
        """The next response with information text gets the URC TEXT between that text and its OK."""
        self.runner.shaper.urc_to_insert = text.encode("latin-1")

    @operation
    def urc_burst(self, text: UrcText, count: Annotated[int, Range(1, 10000)] = 10) -> None:
        """COUNT copies of the URC TEXT come just before the next final result (OK, SEND OK ...)."""
        self.runner.shaper.burst_before_final = (text.encode("latin-1"), count)

    # --- the network -------------------------------------------------------------------------

    @operation
    def pdp_drop(self, context: Annotated[int, Range(1, 15)]) -> None:
        """The network drops PDP CONTEXT: +QIURC: "pdpdeact" and each socket's closed URC."""
        pdp = self._state("pdp")
        if not pdp.is_active(context):
            raise ControlError(f"pdp-drop: context {context} is not active")
        pdp.network_drop(context)

    def _sockets(self, family: str):
        if family not in SOCKET_FAMILIES:
            raise ControlError(f"family must be one of {', '.join(SOCKET_FAMILIES)}")
        return self._state(family)

    def _conn_of(self, client: int, family: str = "ssl") -> int:
        conn_id = self._sockets(family).conn_id_of(client)
        if conn_id is None:
            raise ControlError(f"{family} client {client} has no connection")
        return conn_id

    @operation
    def server_reset(self, client: Client, family: ResetFamilyName = "ssl") -> None:
        """The server resets CLIENT's connection (TCP RST); FAMILY: ssl (AT+QSSLOPEN), tcpip
        (AT+QIOPEN), mqtt (AT+QMTOPEN's <client_idx>), http (client 0, the request running) or ppp
        (CLIENT is the number of a TCP flow of a PPP data call, as the trace shows it)."""
        if family == "ppp":
            if not self.runner.ip_links.reset_flow(client):
                raise ControlError(f"server-reset: no open TCP flow {client} in a data call")
            return
        self.runner.network.fault_reset(self._conn_of(client, family))

    @operation
    def server_close(self, client: Client, family: FamilyName = "ssl") -> None:
        """The server closes CLIENT's connection cleanly (FAMILY as for server-reset)."""
        self.runner.network.fault_close(self._conn_of(client, family))

    @operation
    def server_stall(self, client: Client, seconds: Seconds = 0.0, family: FamilyName = "ssl") -> None:
        """No bytes move either way on CLIENT's connection, for SECONDS (0: until the connection ends;
        FAMILY as for server-reset)."""
        self.runner.network.fault_stall(self._conn_of(client, family), seconds)

    @operation
    def listening(self) -> dict[str, dict[str, int]]:
        """Where each TCP LISTENER and UDP SERVICE is reachable on 127.0.0.1, by family and connectID."""
        return {"tcpip": {str(k): v for k, v in self._state("tcpip").host_ports().items()}}

    @operation
    def fail_opens(self, count: Annotated[int, Range(0, 1000)], error: Annotated[str, OneOf(OPEN_FAILURES)],
                   seconds: Annotated[float, Range(-1, 3600)] = -1.0) -> None:
        """The next COUNT AT+QSSLOPEN fail with ERROR (AT+QIOPEN "TCP" opens too, in their URC): dns
        (565), connect (566), timeout (569, after SECONDS or the module's 150 s), handshake (the server
        resets it: 566) or silent (no answer until negotiatetime: 569)."""
        self.runner.network.fail_next_opens(count, error, None if seconds < 0 else seconds)

    @operation
    def latency(self, ms: Milliseconds) -> None:
        """Every network byte, both ways, is delayed by MS milliseconds (0 ends it)."""
        self.runner.network.latency = ms / 1000.0

    @operation
    def bandwidth(self, bytes_per_second: Annotated[int, Range(0, 1_000_000_000)]) -> None:
        """Cap each connection's throughput, each way, to BYTES_PER_SECOND (0 lifts the cap)."""
        self.runner.network.bandwidth = bytes_per_second

    @operation
    def send_buffer_full(self, client: Client, full: bool = True, family: FamilyName = "ssl") -> None:
        """CLIENT's send buffer is full (AT+QSSLSEND, AT+QISEND ... answer SEND FAIL) until set back (FAMILY as
        for server-reset)."""
        try:
            self._sockets(family).set_send_buffer_full(client, full)
        except LookupError as exc:
            raise ControlError(str(exc)) from None
