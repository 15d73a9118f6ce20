"""The control interface of a running emulator: faults to inject and state to inspect.

The same operations reach a modem from three places: the Python API (``Emulator.control``), the
command line (``ecemu ctl``) and the local control socket (``emulator.shell.control_socket``).
Each operation is a method of ``Controller`` registered with ``@operation``; its parameters and
docstring are the whole of its interface, so the three front ends never drift apart.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from emulator.shell.control_socket import ControlError

if TYPE_CHECKING:
    from emulator.shell.runner import ModemRunner

__all__ = ["ControlError", "Controller", "OPERATIONS", "operation"]


@dataclass(frozen=True)
class Operation:
    name: str
    method: Callable[..., Any]
    summary: str
    parameters: tuple[inspect.Parameter, ...]

    def convert(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Arguments from text (the command line) or JSON, converted to the annotated types."""
        known = {p.name: p for p in self.parameters}
        unknown = set(raw) - set(known)
        if unknown:
            raise ControlError(f"{self.name}: unknown argument(s) {', '.join(sorted(unknown))}")
        out = {}
        for name, param in known.items():
            if name not in raw:
                if param.default is inspect.Parameter.empty:
                    raise ControlError(f"{self.name}: missing argument {name}")
                continue
            out[name] = _convert(self.name, name, raw[name], param.annotation)
        return out


def _convert(op: str, name: str, value: Any, annotation: Any) -> Any:
    kind = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    try:
        if kind.startswith("int"):
            return int(value)
        if kind.startswith("float"):
            return float(value)
        if kind.startswith("bool"):
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        return str(value)
    except (TypeError, ValueError):
        raise ControlError(f"{op}: {name} must be {kind}, not {value!r}") from None


OPERATIONS: dict[str, Operation] = {}
OPEN_FAILURES = ("dns", "connect", "timeout", "handshake", "silent")
INSPECTIONS = {"status", "listening"}
SOCKET_FAMILIES = ("ssl", "tcpip")  # the families whose sockets faults name: AT+QSSLOPEN's, AT+QIOPEN's  # operations that change nothing and so are not faults in the trace


def operation(method: Callable[..., Any]) -> Callable[..., Any]:
    name = method.__name__.replace("_", "-")
    params = tuple(inspect.signature(method).parameters.values())[1:]
    summary = (method.__doc__ or "").strip().splitlines()[0]
    OPERATIONS[name] = Operation(name, method, summary, params)
    return method


class Controller:
    """Operations on one modem; every method runs on the emulator's own loop."""

    def __init__(self, runner: "ModemRunner"):
        self.runner = runner

    def invoke(self, name: str, raw_args: dict[str, Any]) -> Any:
        op = OPERATIONS.get(name)
        if op is None:
            raise ControlError(f"unknown operation {name!r}; known: {', '.join(sorted(OPERATIONS))}")
        result = op.method(self, **op.convert(raw_args))
        if name not in INSPECTIONS:
            self.runner.fault(name, raw_args)
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
            "mode": modem.mode.value,
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
    def freeze(self, seconds: float) -> None:
        """The module stops answering for SECONDS; what the host sends meanwhile waits, in order."""
        if not 0 < seconds <= 3600:
            raise ControlError("freeze: seconds must be in (0, 3600]")
        self.runner.freeze(seconds)

    @operation
    def signal(self, rssi: int, ber: int = 99) -> None:
        """AT+CSQ reports RSSI and BER from now on (0-31 or 99, 0-7 or 99)."""
        if not (0 <= rssi <= 31 or rssi == 99) or not (0 <= ber <= 7 or ber == 99):
            raise ControlError("signal: rssi must be 0-31 or 99, ber 0-7 or 99")
        self.modem.signal = (rssi, ber)

    @operation
    def dtr(self, active: bool) -> None:
        """Set the host's DTR line (a pty has none; RFC 2217 clients set it themselves)."""
        self.runner.set_dtr(active)

    # --- the serial side ---------------------------------------------------------------------

    @operation
    def serial_delay(self, ms: int) -> None:
        """Hold everything the module says for MS milliseconds before the host gets it (0 ends it)."""
        if not 0 <= ms <= 60000:
            raise ControlError("serial-delay: ms must be 0-60000")
        self.runner.shaper.delay = ms / 1000.0

    @operation
    def serial_chunks(self, size: int, gap_ms: int = 20) -> None:
        """Split what the module says into SIZE-byte pieces GAP_MS apart (size 0 ends it)."""
        if size < 0 or not 0 <= gap_ms <= 10000:
            raise ControlError("serial-chunks: size must be >= 0, gap-ms 0-10000")
        self.runner.shaper.chunk_size = size
        self.runner.shaper.chunk_gap = gap_ms / 1000.0

    @operation
    def urc_in_response(self, text: str) -> None:
        """The next response with information text gets the URC TEXT between that text and its OK."""
        self.runner.shaper.urc_to_insert = text.encode("latin-1")

    @operation
    def urc_burst(self, text: str, count: int = 10) -> None:
        """COUNT copies of the URC TEXT come just before the next final result (OK, SEND OK ...)."""
        if not 1 <= count <= 10000:
            raise ControlError("urc-burst: count must be 1-10000")
        self.runner.shaper.burst_before_final = (text.encode("latin-1"), count)

    # --- the network -------------------------------------------------------------------------

    @operation
    def pdp_drop(self, context: int) -> None:
        """The network drops PDP CONTEXT: +QIURC: "pdpdeact" and each socket's closed URC."""
        pdp = self._state("pdp")
        if not pdp.is_active(context):
            raise ControlError(f"pdp-drop: context {context} is not active")
        pdp.network_drop(context)

    def _sockets(self, family: str):
        if family not in SOCKET_FAMILIES:
            raise ControlError(f"family must be one of {', '.join(SOCKET_FAMILIES)}")
        return self._state(family)

    def _conn_of(self, client: int, family: str) -> int:
        conn_id = self._sockets(family).conn_id_of(client)
        if conn_id is None:
            raise ControlError(f"{family} socket {client} has no connection")
        return conn_id

    @operation
    def server_reset(self, client: int, family: str = "ssl") -> None:
        """The server resets CLIENT's connection (TCP RST); FAMILY ssl (AT+QSSLOPEN) or tcpip (AT+QIOPEN)."""
        self.runner.network.fault_reset(self._conn_of(client, family))

    @operation
    def server_close(self, client: int, family: str = "ssl") -> None:
        """The server closes CLIENT's connection cleanly; FAMILY ssl or tcpip."""
        self.runner.network.fault_close(self._conn_of(client, family))

    @operation
    def server_stall(self, client: int, seconds: float = 0.0, family: str = "ssl") -> None:
        """No bytes move either way on CLIENT's connection, for SECONDS (0: until the connection ends); FAMILY ssl or tcpip."""
        self.runner.network.fault_stall(self._conn_of(client, family), seconds)

    @operation
    def listening(self) -> dict[str, dict[str, int]]:
        """Where each TCP LISTENER and UDP SERVICE is reachable on 127.0.0.1, by family and connectID."""
        return {"tcpip": {str(k): v for k, v in self._state("tcpip").host_ports().items()}}

    @operation
    def fail_opens(self, count: int, error: str, seconds: float = -1.0) -> None:
        """The next COUNT AT+QSSLOPEN / AT+QIOPEN "TCP" fail with ERROR: dns (565), connect (566), timeout (569, after
        SECONDS or the module's 150 s), handshake (the server resets it: 566) or silent (no answer
        until negotiatetime: 569)."""
        if error not in OPEN_FAILURES:
            raise ControlError(f"fail-opens: error must be one of {', '.join(OPEN_FAILURES)}")
        if count < 0:
            raise ControlError("fail-opens: count must be >= 0")
        self.runner.network.fail_next_opens(count, error, None if seconds < 0 else seconds)

    @operation
    def latency(self, ms: int) -> None:
        """Every network byte, both ways, is delayed by MS milliseconds (0 ends it)."""
        if not 0 <= ms <= 60000:
            raise ControlError("latency: ms must be 0-60000")
        self.runner.network.latency = ms / 1000.0

    @operation
    def bandwidth(self, bytes_per_second: int) -> None:
        """Cap each connection's throughput, each way, to BYTES_PER_SECOND (0 lifts the cap)."""
        if bytes_per_second < 0:
            raise ControlError("bandwidth: bytes-per-second must be >= 0")
        self.runner.network.bandwidth = bytes_per_second

    @operation
    def send_buffer_full(self, client: int, full: bool = True, family: str = "ssl") -> None:
        """CLIENT's send buffer is full (AT+QSSLSEND, AT+QISEND answer SEND FAIL) until set back; FAMILY ssl or tcpip."""
        try:
            self._sockets(family).set_send_buffer_full(client, full)
        except LookupError as exc:
            raise ControlError(str(exc)) from None
