"""The SSL commands (SSL note chapter 2); AT+QISWTMD, shared with the TCP/IP family, is in tcpip.py.

Each handler reads and checks its parameters and hands the work to the family's state
(``ecemu.commands.ssl_state``). Errors answer plain ``ERROR`` and leave their chapter 5 code
for AT+QIGETERROR (REFERENCE.md); the codes chosen where the note names none are marked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .prompted_data import PromptedData
from .ssl_state import OpenFailed, SslClient, SslFamily
from ..core.parser import Arg, CommandCall, Form
from ..core.registry import (
    AwaitData,
    CommandFailed,
    Family,
    Outcome,
    Pending,
    Reply,
    at_most,
    command,
    family_state,
    int_arg,
    ok,
    require_form,
    str_arg,
)
from ..core.results import QIGETERROR, SEND_FAIL, SEND_OK, QiError, Refusal
from ..core.sockets import AccessMode, Phase, Socket, SocketState
from ..core.tls import ALL_CIPHER_SUITES, CIPHER_SUITES

if TYPE_CHECKING:
    from ..core.modem import Modem

FAMILY = "ssl"
SEND_PROMPT = b"> "  # after S3 S4 (<CR><LF>), as Quectel modules print it before taking data (TCP/IP notes)

# Failures go to AT+QIGETERROR; the state listens to the PDP contexts, so it is built after them.
SSL_FAMILY = Family(FAMILY, errors=QIGETERROR, state=SslFamily, needs=("pdp",))


def _family(modem: "Modem") -> SslFamily:
    return family_state(modem, "ssl", SslFamily)


def _range(count: int, first: int = 0) -> str:
    return f"({first}-{first + count - 1})"


# --- AT+QSSLCFG (SSL note 2.2.1) --------------------------------------------------------------


def _hex_suite(arg: Arg) -> int:
    """``0X0035``: a code of table 3 or 0XFFFF. Quoted or not, 0x or 0X, as hosts write it."""
    text = arg.text.strip()
    if text[:2].lower() != "0x" or not text[2:] or len(text) > 6:
        raise CommandFailed(Refusal.PARAMETER)
    try:
        code = int(text[2:], 16)
    except ValueError:
        raise CommandFailed(Refusal.PARAMETER) from None
    if code != ALL_CIPHER_SUITES and code not in CIPHER_SUITES:
        raise CommandFailed(Refusal.PARAMETER)
    return code


class Setting:
    """One <name> of AT+QSSLCFG: how its value is read, shown and offered in the test form."""

    def __init__(self, attribute: str, choices: tuple[int, ...] | None = None, low: int = 0, high: int = 0,
                 kind: str = "int"):
        self.attribute = attribute
        self.choices = choices
        self.low, self.high = (min(choices), max(choices)) if choices else (low, high)
        self.kind = kind

    def parse(self, arg: Arg) -> int | str:
        if self.kind == "path":
            if not arg.quoted:
                raise CommandFailed(Refusal.PARAMETER)
            return arg.text
        if self.kind == "suite":
            return _hex_suite(arg)
        if arg.quoted or not (arg.text.isascii() and arg.text.isdigit()):
            raise CommandFailed(Refusal.PARAMETER)
        value = int(arg.text)
        if not self.low <= value <= self.high or (self.choices and value not in self.choices):
            raise CommandFailed(Refusal.PARAMETER)
        return value

    def show(self, value: int | str) -> str:
        if self.kind == "path":
            return f'"{value}"'
        if self.kind == "suite":
            return f"0X{value:04X}"
        return str(value)

    def offered(self) -> str:
        if self.kind == "path":
            return {"cacert": "<cacertpath>", "clientcert": "<client_cert_path>",
                    "clientkey": "<client_key_path>"}[self.attribute]
        if self.kind == "suite":
            return "(" + ",".join(f"0X{code:04X}" for code in [*CIPHER_SUITES, ALL_CIPHER_SUITES]) + ")"
        if self.choices and len(self.choices) == 2:
            return "(" + ",".join(str(c) for c in self.choices) + ")"
        return f"({self.low}-{self.high})"


BINARY = (0, 1)
SETTINGS: dict[str, Setting] = {
    "sslversion": Setting("sslversion", low=0, high=4),
    "ciphersuite": Setting("ciphersuite", kind="suite"),
    "cacert": Setting("cacert", kind="path"),
    "cacertex": Setting("cacert", kind="path"),  # chosen: the same path, queried for all contexts at once
    "clientcert": Setting("clientcert", kind="path"),
    "clientkey": Setting("clientkey", kind="path"),
    "secllevel": Setting("secllevel", low=0, high=2),
    "seclevel": Setting("secllevel", low=0, high=2),  # the sibling notes' spelling (REFERENCE.md, seen)
    "ignorelocaltime": Setting("ignorelocaltime", BINARY),
    "negotiatetime": Setting("negotiatetime", low=10, high=300),
    "sni": Setting("sni", BINARY),
    "closetimemode": Setting("closetimemode", BINARY),
    "ignoremulticertchainverify": Setting("ignoremulticertchainverify", BINARY),
    "ignoreinvalidcertsign": Setting("ignoreinvalidcertsign", BINARY),
    "session_cache": Setting("session_cache", BINARY),
}
TEST_FORM_ORDER = [name for name in SETTINGS if name != "seclevel"]


@command("+QSSLCFG", family=FAMILY)
def ssl_config(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QSSLCFG="<name>",<SSL_ctxID>[,<value>] (SSL note 2.2.1): query or set one setting of
    an SSL context. Settings apply to connections opened afterwards and are lost at a reboot."""
    contexts = _family(modem).contexts
    ids = _range(len(contexts))
    if call.form is Form.TEST:
        return ok(*(f'+QSSLCFG: "{name}",{ids},{SETTINGS[name].offered()}' for name in TEST_FORM_ORDER))
    require_form(call, Form.WRITE)
    name = str_arg(call, 0).lower()
    setting = SETTINGS.get(name)
    if setting is None:
        raise CommandFailed(Refusal.PARAMETER)
    at_most(call, 3)
    if name == "cacertex" and len(call.args) == 1:
        return ok(*(f'+QSSLCFG: "{name}",{i},{setting.show(c.cacert)}' for i, c in enumerate(contexts)))
    ctx_id = int_arg(call, 1, 0, len(contexts) - 1)
    settings = contexts[ctx_id]
    value_arg = call.args[2] if len(call.args) > 2 else None
    if value_arg is None:
        if len(call.args) > 2:
            raise CommandFailed(Refusal.PARAMETER)  # a comma with nothing after it
        return ok(f'+QSSLCFG: "{name}",{ctx_id},{setting.show(getattr(settings, setting.attribute))}')
    setattr(settings, setting.attribute, setting.parse(value_arg))
    return ok()


# --- AT+QSSLOPEN (SSL note 2.2.2) -------------------------------------------------------------


@command("+QSSLOPEN", family=FAMILY)
def ssl_open(modem: "Modem", call: CommandCall) -> Outcome:
    """AT+QSSLOPEN=<PDP_ctxID>,<SSL_ctxID>,<clientID>,"<serveraddr>",<server_port>[,<access_mode>]
    (SSL note 2.2.2): OK, then ``+QSSLOPEN: <clientID>,<err>``; in transparent mode CONNECT or
    ERROR once the handshake is over."""
    family = _family(modem)
    limits = modem.profile.limits
    if call.form is Form.TEST:
        return ok(f"+QSSLOPEN: {_range(limits.pdp_contexts, 1)},{_range(limits.ssl_contexts)},"
                  f"{_range(limits.clients)},<serveraddr>,<server_port>,(0-2)")
    require_form(call, Form.WRITE)
    at_most(call, 6)
    pdp_ctx = int_arg(call, 0, 1, limits.pdp_contexts)
    ssl_ctx = int_arg(call, 1, 0, limits.ssl_contexts - 1)
    client_id = int_arg(call, 2, 0, limits.clients - 1)
    address = str_arg(call, 3).strip()
    port = int_arg(call, 4, 1, 65535)
    access_mode = int_arg(call, 5, 0, 2, default=AccessMode.BUFFER)
    if not address:
        raise CommandFailed(Refusal.PARAMETER)
    client = family.client(client_id)
    try:
        client.open_tls(pdp_ctx, ssl_ctx, address, port, AccessMode(access_mode))
    except OpenFailed as failure:
        if failure.code is QiError.SOCKET_IN_USE or access_mode == AccessMode.TRANSPARENT:
            raise CommandFailed(failure.code) from None
        # The command itself was fine: the failure comes as the URC, as every other one does.
        modem.emit_urc(f"+QSSLOPEN: {client_id},{int(failure.code)}")
        return ok()
    if access_mode == AccessMode.TRANSPARENT:
        return Pending("+QSSLOPEN")
    return ok()


# --- AT+QSSLSEND (SSL note 2.2.3) -------------------------------------------------------------


def _connected_client(modem: "Modem", call: CommandCall) -> SslClient:
    client = _family(modem).client(int_arg(call, 0, 0, modem.profile.limits.clients - 1))
    if client.connection.shown_state is SocketState.CLOSING:
        raise CommandFailed(QiError.SOCKET_CLOSED)
    if client.connection.phase is not Phase.CONNECTED:
        raise CommandFailed(QiError.NOT_ALLOWED)  # chosen: never opened, or still opening
    return client


class SendSink(PromptedData):
    """The data after ``>``: ``length`` bytes, or up to Ctrl+Z (sent) or ESC (cancelled)."""

    def __init__(self, client: Socket, length: int | None, limit: int):
        # chosen: the cancelled send answers ERROR and AT+QIGETERROR reads 571 "cancel send", the
        # chapter 5 code that exists for it; more than <sendlen>'s maximum before Ctrl+Z is refused
        # whole, the byte that overflowed starting the next command line.
        super().__init__(length, limit, cancelled=CommandFailed(QiError.CANCEL_SEND),
                         too_long=CommandFailed(Refusal.PARAMETER))
        self.client = client

    def _finish(self, modem: "Modem") -> Outcome | CommandFailed:
        client = self.client
        if client.connection.phase is not Phase.CONNECTED:
            return CommandFailed(QiError.SOCKET_CLOSED)
        if not self.data:
            return Reply(final=SEND_OK)
        if not client.connection.send_buffer_has_room(len(self.data)):
            return Reply(final=SEND_FAIL)
        client.send(bytes(self.data))
        return Reply(final=SEND_OK)


@command("+QSSLSEND", family=FAMILY)
def ssl_send(modem: "Modem", call: CommandCall) -> Outcome:
    """AT+QSSLSEND=<clientID>[,<sendlen>] (SSL note 2.2.3): ``>``, the data (fixed length, or up
    to Ctrl+Z; ESC cancels), then SEND OK, or SEND FAIL when the send buffer is full."""
    limits = modem.profile.limits
    if call.form is Form.TEST:
        return ok(f"+QSSLSEND: {_range(limits.clients)},(1-{limits.send_max})")
    require_form(call, Form.WRITE)
    at_most(call, 2)
    client = _connected_client(modem, call)
    length = int_arg(call, 1, 1, limits.send_max) if len(call.args) > 1 else None
    registers = modem.settings.s_registers
    prompt = bytes((registers[3], registers[4])) + SEND_PROMPT
    return AwaitData(prompt, SendSink(client, length, limits.send_max))


# --- AT+QSSLRECV (SSL note 2.2.4) -------------------------------------------------------------


@command("+QSSLRECV", family=FAMILY)
def ssl_receive(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QSSLRECV=<clientID>[,<readlen>] (SSL note 2.2.4): ``+QSSLRECV: <n>`` and the data, or
    ``+QSSLRECV: 0`` when the buffer is empty. Data a closed connection left is still read."""
    limits = modem.profile.limits
    if call.form is Form.TEST:
        return ok(f"+QSSLRECV: {_range(limits.clients)},(0-{limits.recv_max})")
    require_form(call, Form.WRITE)
    at_most(call, 2)
    client = _family(modem).client(int_arg(call, 0, 0, limits.clients - 1))
    length = int_arg(call, 1, 0, limits.recv_max, default=limits.recv_max)
    if client.connection.phase in (Phase.INITIAL, Phase.OPENING):
        raise CommandFailed(QiError.NOT_ALLOWED)
    if client.access_mode is not AccessMode.BUFFER:
        raise CommandFailed(QiError.NOT_ALLOWED)  # chosen: nothing is buffered in the other modes
    if client.connection.shown_state is SocketState.CLOSING and not client.received:
        # The note: ERROR once the connection is "abnormally closed"; its data is read first.
        raise CommandFailed(QiError.SOCKET_CLOSED)
    data = client.read(length)
    if not data:
        return ok("+QSSLRECV: 0")
    return ok(f"+QSSLRECV: {len(data)}".encode(), data)


# --- AT+QSSLCLOSE (SSL note 2.2.5) ------------------------------------------------------------


@command("+QSSLCLOSE", family=FAMILY)
def ssl_close(modem: "Modem", call: CommandCall) -> Outcome:
    """AT+QSSLCLOSE=<clientID>[,<close_timeout>] (SSL note 2.2.5): close_notify and FIN, then OK
    once the server has closed too or <close_timeout> (seconds, or milliseconds with
    ``closetimemode`` 1) has passed; 0 closes at once."""
    limits = modem.profile.limits
    if call.form is Form.TEST:
        return ok(f"+QSSLCLOSE: {_range(limits.clients)},(0-65535)")
    require_form(call, Form.WRITE)
    at_most(call, 2)
    family = _family(modem)
    client = family.client(int_arg(call, 0, 0, limits.clients - 1))
    timeout = int_arg(call, 1, 0, 65535, default=10)
    per_second = 1000.0 if family.contexts[client.ssl_ctx].closetimemode else 1.0
    reply = client.close(timeout / per_second)
    return reply if reply is not None else Pending("+QSSLCLOSE")


# --- AT+QSSLSTATE (SSL note 2.2.6) ------------------------------------------------------------


@command("+QSSLSTATE", family=FAMILY)
def ssl_state(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QSSLSTATE[=<clientID>] (SSL note 2.2.6): one line per client in use."""
    family = _family(modem)
    if call.form is Form.TEST:
        return ok()
    if call.form is Form.EXEC:
        return Reply(family.state_lines())  # lines are bytes
    if call.form is Form.WRITE:
        at_most(call, 1)
        client = family.client(int_arg(call, 0, 0, modem.profile.limits.clients - 1))
        return Reply([client.state_line()] if client.connection.phase is not Phase.INITIAL else [])
    raise CommandFailed(Refusal.PARAMETER)
