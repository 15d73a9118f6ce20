"""The HTTP(S) family's state: its settings (AT+QHTTPCFG), the URL, and the one request the module
runs at a time, on a socket of the socket core (plain TCP for http://, TLS on the SSL context
AT+QHTTPCFG="sslctxid" names for https://: ``ecemu.commands.app_sockets``). HTTP/1.1 is h11's.

Quectel's HTTP(S) application note for EC2x/EG9x/EM05 ("HTTP note"; the EC200x/EC800x note was not
found, the command set is the same): chapter 2 the commands, the result codes in its error table
(``HttpError``). Each request opens its own connection and closes it once the response is over
(chosen). The response body waits in the module for AT+QHTTPREAD or AT+QHTTPREADFILE; while it
waits past the receive buffer the socket stops reading, so a large body streams at the host's pace.

When a failure is told (REFERENCE.md "HTTP(S) failures"): AT+QHTTPGET, AT+QHTTPGETEX and
AT+QHTTPPOSTFILE hold their final result until the server has answered. What fails before the
request has left (the name, the context, the connection, TLS) is the command's own
``+CME ERROR: 716``, with no OK, as an EG800K answers a name that does not resolve; a redirect the
module refuses is the command's ``+CME ERROR: 711``, as an EG800K answers a relative Location. An
answer is ``OK`` and at once ``+QHTTPGET: 0,<status>[,<length>]``; a request that left and got no
answer (rsptime, the server closing, the context dropped) is ``OK`` and ``+QHTTPGET: <err>``.
AT+QHTTPPOST (and AT+QHTTPGET with a request of the host's own) say CONNECT once connected, and
``OK`` once they have the host's bytes: after that every outcome is the URC.

Redirects (``REDIRECTS``): a GET built by the module follows an absolute ``Location`` (an EG800K
followed one to its 200 answer), at most ``MAX_REDIRECTS`` times, rsptime counting from the
command; a relative one, one to another scheme, or one too many is refused with 711.
"""

from __future__ import annotations

import base64
import enum
import itertools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol
from urllib.parse import urlsplit

from .app_sockets import STEP, AppSocket
from .files import room_for
from ..core.lifecycle import Transitions
from ..core.registry import CommandFailed, Reply
from ..core.results import HttpError, QiError
from ..core.sockets import OpenFailed, Phase, SocketFamily

if TYPE_CHECKING:
    import h11

    from ..core.modem import Modem
    from ..core.timers import Timer
    from ..core.ufs import FileWriter

log = logging.getLogger(__name__)


# How the socket core's open failures read as HTTP errors. A name that does not resolve is 716 like
# any other failed connection: an EG800K answers +CME ERROR: 716 for it, not 714 (REFERENCE.md
# "HTTP(S) failures", seen).
OPEN_ERRORS = {QiError.DNS_FAILED: HttpError.SOCKET_CONNECT_ERROR, QiError.OPEN_PDP_FAILED: HttpError.NETWORK_DEACTIVATED,
               QiError.PDP_BROKEN: HttpError.NETWORK_DEACTIVATED, QiError.CONNECT_FAILED: HttpError.SOCKET_CONNECT_ERROR,
               QiError.TIMEOUT: HttpError.SOCKET_CONNECT_ERROR}

CONTENT_TYPES = ("application/x-www-form-urlencoded", "text/plain", "application/octet-stream",
                 "multipart/form-data", "application/json", "image/jpeg")  # <content_type> 0-5
USER_AGENT = "QUECTEL_MODULE"  # what an EG800K sent (REFERENCE.md "HTTP(S) and MQTT", seen)
# The answers a module-built GET follows when they carry an absolute Location: an EG800K followed a
# 302 (seen); 301, 303, 307 and 308 likewise, and at most MAX_REDIRECTS in a row (chosen: the HTTP
# note has no switch or limit for it).
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5


@dataclass
class HttpConfig:
    """AT+QHTTPCFG (HTTP note 2.3.1); defaults as the note gives them."""

    contextid: int = 1
    requestheader: int = 0
    responseheader: int = 0
    sslctxid: int = 1
    contenttype: int = 0
    auth: str = ""  # "<username>:<password>" for Basic authorization
    # "reqheader/add": the host's own header fields, in order; each replaces the module's field
    # of that name (chosen), so a host adding Content-Type sends one Content-Type.
    extra_headers: list[tuple[str, str]] = field(default_factory=list)


class Target:
    """A URL as the module splits it: ``https`` or not, host, port, request target."""

    def __init__(self, url: str):
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:
            raise CommandFailed(HttpError.URL_ERROR) from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise CommandFailed(HttpError.URL_ERROR)
        self.secure = scheme == "https"
        self.host = parts.hostname
        self.port = port or (443 if self.secure else 80)
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        default = 443 if self.secure else 80
        self.host_header = self.host if self.port == default else f"{self.host}:{self.port}"


class Stage(enum.Enum):
    """Where the command that made a request is (module docstring)."""

    NEW = "not started"
    CONNECTING = "it waits to say CONNECT (AT+QHTTPPOST's body comes from the host once connected)"
    HOST_DATA = "the host is sending the body"
    ANSWER = "it holds its final result until the server answers"
    SENT = "the command is over: the outcome is a URC"
    BODY_LOST = "the request ended while the host still sent the body: the end of the entry tells why"


REQUEST_STAGES = Transitions("HTTP request", {
    (Stage.NEW, "wait_to_connect"): Stage.CONNECTING,
    (Stage.NEW, "wait_for_answer"): Stage.ANSWER,
    (Stage.CONNECTING, "connected"): Stage.HOST_DATA,
    (Stage.CONNECTING, "failed"): Stage.SENT,  # +CME ERROR: nothing left
    (Stage.HOST_DATA, "body_taken"): Stage.SENT,
    (Stage.HOST_DATA, "lost"): Stage.BODY_LOST,  # a BodyLost says why
    (Stage.ANSWER, "answered"): Stage.SENT,  # OK, then the URC
    (Stage.ANSWER, "failed"): Stage.SENT,
})


class BodyLost:
    """``Stage.BODY_LOST`` with what it holds: what ended the request (``code``) while the host
    still sent its body."""

    __slots__ = ("code",)

    def __init__(self, code: HttpError):
        self.code = code


@dataclass
class Request:
    """One request: what it sends and how its outcome is told."""

    urc: str  # "+QHTTPGET", "+QHTTPPOST", "+QHTTPPOSTFILE"
    method: str
    target: Target
    body: bytes = b""
    raw: bytes | None = None  # the host's whole request (AT+QHTTPCFG="requestheader",1)
    rsptime: float = 60.0
    on_connected: Callable[[], None] | None = None  # POST: the body is asked for once connected
    # Where the command that made it is (a BodyLost for Stage.BODY_LOST); changed by ``to`` and
    # ``lose`` only.
    stage: "Stage | BodyLost" = Stage.NEW
    network_lost: bool = False  # its PDP context went: a loss is told as such (NETWORK_DEACTIVATED)
    byte_range: tuple[int, int] | None = None  # AT+QHTTPGETEX: the first byte and how many
    follows_redirects: bool = False  # a GET the module built itself
    redirects: int = 0

    def to(self, event: str) -> None:
        """The command's next stage (``REQUEST_STAGES``)."""
        stage = self.stage
        self.stage = REQUEST_STAGES.next(Stage.BODY_LOST if isinstance(stage, BodyLost) else stage, event)

    def lose(self, code: HttpError) -> None:
        """The request ended (``code``) while the host still sends its body: the end of the body
        entry tells it (``Stage.BODY_LOST``)."""
        self.to("lost")
        self.stage = BodyLost(code)


class BodyReader(Protocol):
    """Who takes a response's body as it comes: AT+QHTTPREAD (to the host), AT+QHTTPREADFILE
    (``BodyToFile``)."""

    def more(self) -> None:
        """More of the body is there, or its end (``HttpFamily.outcome``)."""

    def abandon(self) -> None:
        """AT+QHTTPSTOP or a power cycle: the read ends without a word."""


class NoReader:
    """No read runs: the body waits in the module."""

    def more(self) -> None:
        pass

    def abandon(self) -> None:
        pass


NO_READER = NoReader()


@dataclass
class Response:
    status: int = 0
    reason: bytes = b""
    head: bytes = b""  # the status line and header as they were, for "responseheader"
    content_length: int | None = None
    body: bytearray = field(default_factory=bytearray)  # received, not yet read by the host
    reader: BodyReader = NO_READER


# --- the exchange: one request and its response, each step with what it holds ---------------------


class Step(enum.Enum):
    """Where the family's exchange with a server is."""

    IDLE = "no request runs and no response waits to be read"
    SENDING = "connecting, taking the host's body, or connecting again for a redirect"
    WAITING = "the request left: the answer's head is awaited"
    RECEIVING = "the head came: the body arrives"
    RECEIVED = "the body is whole, or failed: it waits to be read"


EXCHANGE_STEPS = Transitions("HTTP exchange", {
    (Step.IDLE, "start"): Step.SENDING,
    (Step.RECEIVED, "start"): Step.SENDING,  # a response nobody read is dropped
    (Step.SENDING, "sent"): Step.WAITING,
    (Step.SENDING, "failed"): Step.IDLE,
    (Step.WAITING, "head"): Step.RECEIVING,
    (Step.WAITING, "redirect"): Step.SENDING,
    (Step.WAITING, "failed"): Step.IDLE,
    (Step.RECEIVING, "ended"): Step.RECEIVED,  # the end of the body, or a failure
    (Step.RECEIVED, "read"): Step.IDLE,  # read once (chosen): a second read answers 705
    **{(step, "stop"): Step.IDLE for step in Step},  # AT+QHTTPSTOP, a failed read, a power cycle
})


class Idle:
    __slots__ = ()
    step = Step.IDLE


IDLE = Idle()


class Sending:
    """SENDING: the request, not yet on the wire."""

    __slots__ = ("request",)
    step = Step.SENDING

    def __init__(self, request: Request):
        self.request = request


class Waiting:
    """WAITING: the request, and h11's connection that sent it."""

    __slots__ = ("request", "wire")
    step = Step.WAITING

    def __init__(self, request: Request, wire: "h11.Connection"):
        self.request = request
        self.wire = wire


class Receiving:
    """RECEIVING: the request still runs; its response arrives through h11."""

    __slots__ = ("request", "wire", "response")
    step = Step.RECEIVING

    def __init__(self, request: Request, wire: "h11.Connection", response: Response):
        self.request = request
        self.wire = wire
        self.response = response


class Received:
    """RECEIVED: the response, and how it ended (``HttpError.OK`` when whole)."""

    __slots__ = ("response", "outcome")
    step = Step.RECEIVED

    def __init__(self, response: Response, outcome: HttpError):
        self.response = response
        self.outcome = outcome


Exchange = Idle | Sending | Waiting | Receiving | Received


class HttpSocket(AppSocket):
    """The one connection the HTTP stack uses."""

    OPEN_URC = "+QHTTPGET"
    family_name = "http"
    family: "HttpFamily"

    def opened(self, code: QiError) -> None:
        self.family.opened(OPEN_ERRORS.get(code, HttpError.UNKNOWN) if code is not QiError.OK else HttpError.OK)

    def arrived(self, data: bytes) -> None:
        self.modem.observe("received", client=self.client_id, family=self.family_name, size=len(data))
        self.family.from_server(data)

    def peer_gone(self) -> None:
        self.family.server_closed()

    def resume_if_room(self) -> None:
        self.family.resume_if_room()

    def pdp_down(self, by_network: bool) -> None:
        request = self.family.request
        if request is not None:
            request.network_lost = True
        super().pdp_down(by_network)


class HttpFamily(SocketFamily["HttpSocket"]):
    """``modem.families["http"]``: the settings, the URL, and the exchange (``EXCHANGE_STEPS``),
    changed by ``_enter`` only."""

    def __init__(self, modem: "Modem"):
        super().__init__(modem, [])
        self.socket = HttpSocket(self, 0)
        self.clients = [self.socket]
        self.config = HttpConfig()
        self.url = ""
        self.exchange: Exchange = IDLE
        self._response_timer: Timer | None = None

    def _enter(self, event: str, exchange: Exchange) -> None:
        """The step ``event`` (``IllegalTransition`` when ``EXCHANGE_STEPS`` does not allow it)
        into ``exchange``, which holds what its step needs."""
        step = EXCHANGE_STEPS.next(self.exchange.step, event)
        assert exchange.step is step, (event, exchange)
        self.exchange = exchange

    @property
    def request(self) -> Request | None:
        """The request running, if any."""
        exchange = self.exchange
        return None if isinstance(exchange, (Idle, Received)) else exchange.request

    @property
    def response(self) -> Response | None:
        """The response arriving or waiting to be read, if any."""
        exchange = self.exchange
        return exchange.response if isinstance(exchange, (Receiving, Received)) else None

    @property
    def outcome(self) -> HttpError | None:
        """How the response ended (``HttpError.OK``: whole); None while it still arrives."""
        exchange = self.exchange
        return exchange.outcome if isinstance(exchange, Received) else None

    @property
    def busy(self) -> bool:
        """A request is on its way or its response still arriving."""
        return self.request is not None

    # --- starting a request -----------------------------------------------------------------------

    def start(self, request: Request) -> None:
        """Connect for ``request``; ``CommandFailed`` with an HttpError when that cannot even start."""
        self._enter("start", Sending(request))
        try:
            self._connect(request)
        except OpenFailed as failure:
            self._enter("failed", IDLE)
            raise CommandFailed(OPEN_ERRORS.get(failure.code, HttpError.UNKNOWN)) from None
        self._response_timer = self.modem.call_at(self.modem.now + request.rsptime, self._response_timed_out)

    def _connect(self, request: Request) -> None:
        ssl_ctx = self.config.sslctxid if request.target.secure else None
        self.socket.open_on(self.config.contextid, request.target.host, request.target.port, ssl_ctx)

    def opened(self, code: HttpError) -> None:
        exchange = self.exchange
        if not isinstance(exchange, Sending):
            return
        if code is not HttpError.OK:
            self._fail(code)
            return
        request = exchange.request
        if request.on_connected is not None:
            request.to("connected")
            request.on_connected()  # the body comes from the host first
        else:
            self.send_request()

    def send_request(self) -> None:
        import h11  # here, not at the top: `ecemu run` is ready sooner, and most hosts never ask for HTTP

        exchange = self.exchange
        assert isinstance(exchange, Sending), exchange
        request = exchange.request
        connection = h11.Connection(h11.CLIENT)
        if request.raw is not None:
            # The host wrote the request itself: it goes as it is; h11 only learns its method, which
            # tells how the response is framed (a HEAD response has no body).
            method = request.raw.split(b" ", 1)[0] or b"GET"
            connection.send(h11.Request(method=method, target="/", headers=[("Host", request.target.host_header)]))
            connection.send(h11.EndOfMessage())
            wire = request.raw
        else:
            wire = connection.send(h11.Request(method=request.method, target=request.target.target,
                                               headers=self._headers(request)))
            if request.body:
                wire += connection.send(h11.Data(data=request.body))
            wire += connection.send(h11.EndOfMessage())
        self._enter("sent", Waiting(request, connection))
        self.socket.send(wire)

    def _headers(self, request: Request) -> list[tuple[str, str]]:
        headers = [("Host", request.target.host_header), ("Accept", "*/*"), ("User-Agent", USER_AGENT)]
        if request.byte_range is not None:
            first, count = request.byte_range
            headers.append(("Range", f"bytes={first}-{first + count - 1}"))
        if request.method == "POST":
            headers += [("Content-Type", CONTENT_TYPES[self.config.contenttype]),
                        ("Content-Length", str(len(request.body)))]
        if self.config.auth:
            token = base64.b64encode(self.config.auth.encode("latin-1")).decode()
            headers.append(("Authorization", f"Basic {token}"))
        extra = self.config.extra_headers
        if extra:
            replaced = {name.lower() for name, _ in extra}
            headers = [(name, value) for name, value in headers if name.lower() not in replaced] + extra
        return headers

    # --- the response -------------------------------------------------------------------------

    def from_server(self, data: bytes) -> None:
        exchange = self.exchange
        if not isinstance(exchange, (Waiting, Receiving)):
            return
        exchange.wire.receive_data(data)
        self._events()

    def server_closed(self) -> None:
        """The server ended the connection (or the network did): the end of a body that runs to
        the close, or a failure."""
        exchange = self.exchange
        if isinstance(exchange, (Sending, Waiting)):
            self._fail(self._cause_of_loss(HttpError.SOCKET_CLOSED))  # nothing came back
            return
        import h11  # already imported by send_request

        if isinstance(exchange, Receiving) and exchange.wire.their_state is not h11.DONE:
            exchange.wire.receive_data(b"")
            self._events(steps=None)  # all that came before the close, now: nothing follows it
        if self.socket.connection.phase is not Phase.INITIAL:
            self.socket.close(0)
        if self.request is not None:
            self._fail(self._cause_of_loss(HttpError.SOCKET_READ_ERROR))

    def _cause_of_loss(self, otherwise: HttpError) -> HttpError:
        request = self.request
        return HttpError.NETWORK_DEACTIVATED if request is not None and request.network_lost else otherwise

    def _events(self, steps: int | None = STEP) -> None:
        """What h11 makes of the response, ``steps`` events at a time: the rest (100 Continue
        answers, 1-byte chunks ...) on the event loop's next turn, the socket unread meanwhile."""
        import h11  # already imported by send_request

        exchange = self.exchange
        if not isinstance(exchange, (Waiting, Receiving)):
            return
        connection = exchange.wire
        for _ in itertools.repeat(None) if steps is None else range(steps):
            exchange = self.exchange
            if not isinstance(exchange, (Waiting, Receiving)) or exchange.wire is not connection:
                return  # the request ended, or went elsewhere (a redirect)
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError as exc:
                log.warning("http: the server's response is not HTTP/1.1: %s", exc)
                self._fail(HttpError.DATA_DECODE_ERROR if isinstance(exchange, Waiting)
                           else self._cause_of_loss(HttpError.SOCKET_READ_ERROR))
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                self.socket.caught_up()
                return
            if isinstance(event, h11.Response):
                assert isinstance(exchange, Waiting), exchange
                self._head(exchange, event)
                after = self.exchange
                if not isinstance(after, Receiving) or after.wire is not connection:
                    return  # the answer ended the request, or sent it elsewhere (a redirect)
            elif isinstance(event, h11.Data):
                assert isinstance(exchange, Receiving), exchange
                exchange.response.body += event.data
                self._body_arrived(exchange.response)
            elif isinstance(event, h11.EndOfMessage):
                assert isinstance(exchange, Receiving), exchange
                self._complete(exchange.response)
                return
            elif isinstance(event, h11.ConnectionClosed):
                return
        self.socket.go_on_later(self._events)

    def _head(self, exchange: Waiting, event: h11.Response) -> None:
        request = exchange.request
        location = next((value for name, value in event.headers if name == b"location"), None)
        if request.follows_redirects and event.status_code in REDIRECTS and location is not None:
            self._redirect(request, location.decode("latin-1"))
            return
        self._cancel_response_timer()
        length = next((int(value) for name, value in event.headers if name == b"content-length"), None)
        lines = [b"HTTP/%s %d %s" % (event.http_version, event.status_code, event.reason)]
        lines += [name + b": " + value for name, value in event.headers.raw_items()]
        response = Response(event.status_code, event.reason, b"\r\n".join(lines) + b"\r\n\r\n", length)
        self._enter("head", Receiving(request, exchange.wire, response))
        # No <content_length> when the answer has none (chunked, or to the close): an EG800K shows
        # +QHTTPGET: 0,200 then (REFERENCE.md "HTTP(S) and MQTT", seen).
        shown = f"{request.urc}: {int(HttpError.OK)},{event.status_code}" + (f",{length}" if length is not None else "")
        self.modem.emit_urc(shown)  # held while the command holds its result: it follows the OK
        if request.stage is Stage.ANSWER:
            request.to("answered")
            self.modem.host.finish_pending(Reply())

    def _redirect(self, request: Request, location: str) -> None:
        """Follow ``location`` (absolute only) on a new connection, or refuse it with 711."""
        try:
            target = Target(location)
        except CommandFailed:
            log.info("http: a redirect to %r, not an absolute http(s) URL, is refused", location)
            self._fail(HttpError.URL_ERROR)
            return
        if request.redirects >= MAX_REDIRECTS:
            log.info("http: more than %d redirects in a row", MAX_REDIRECTS)
            self._fail(HttpError.URL_ERROR)
            return
        request.redirects += 1
        request.target = target
        self._enter("redirect", Sending(request))
        self.socket.close(0)
        # The next connection starts once the answer that asked for it is handled.
        self.modem.call_at(self.modem.now, lambda: self._follow(request))

    def _follow(self, request: Request) -> None:
        if self.request is not request:
            return  # stopped meanwhile
        try:
            self._connect(request)
        except OpenFailed as failure:
            self._fail(OPEN_ERRORS.get(failure.code, HttpError.UNKNOWN))

    def _body_arrived(self, response: Response) -> None:
        response.reader.more()
        if self.response is response and len(response.body) >= self.modem.profile.limits.recv_buffer:
            self.socket.pause()

    def resume_if_room(self) -> None:
        response = self.response
        if response is None or len(response.body) < self.modem.profile.limits.recv_buffer // 2:
            self.socket.resume()

    def take_body(self) -> bytes:
        response = self.response
        if response is None:
            return b""
        data = bytes(response.body)
        response.body.clear()
        self.resume_if_room()
        return data

    def read_by(self, reader: BodyReader) -> Response:
        """``reader`` takes the body from now on (``Response.reader``)."""
        response = self.response
        assert response is not None
        response.reader = reader
        return response

    def read_over(self) -> None:
        """The response has been read to its end: a second read answers 705 (chosen)."""
        self._enter("read", IDLE)

    def _complete(self, response: Response) -> None:
        self._enter("ended", Received(response, HttpError.OK))
        self.socket.close(0)
        response.reader.more()

    def _fail(self, code: HttpError) -> None:
        """The request ends with ``code``: before the response its URC says so, after it the read does."""
        exchange = self.exchange
        self._cancel_response_timer()
        if self.socket.connection.phase is not Phase.INITIAL:
            self.socket.close(0)
        if isinstance(exchange, Receiving):
            self._enter("ended", Received(exchange.response, code))
            exchange.response.reader.more()
            return
        if not isinstance(exchange, (Sending, Waiting)):
            return
        self._enter("failed", IDLE)
        request = exchange.request
        stage = request.stage
        left = isinstance(exchange, Waiting)  # the request's bytes have gone to the server
        if stage is Stage.CONNECTING or (stage is Stage.ANSWER and (not left or code is HttpError.URL_ERROR)):
            # Before the request left (AT+QHTTPPOST still waits to say CONNECT), or a redirect the
            # module refuses: the command's own +CME ERROR (module docstring).
            request.to("failed")
            self.modem.host.finish_pending(CommandFailed(code))
        elif stage is Stage.HOST_DATA:
            request.lose(code)  # the end of the body entry says so
        else:
            self.modem.emit_urc(f"{request.urc}: {int(code)}")
            if stage is Stage.ANSWER:
                request.to("answered")
                self.modem.host.finish_pending(Reply())  # the request left: OK, then the URC

    def _response_timed_out(self) -> None:
        self._response_timer = None
        if isinstance(self.exchange, (Sending, Waiting)):
            log.info("http: no response within rsptime")
            self._fail(HttpError.TIMEOUT)

    def _cancel_response_timer(self) -> None:
        if self._response_timer is not None:
            self._response_timer.cancel()
            self._response_timer = None

    def stop(self) -> None:
        """AT+QHTTPSTOP: whatever runs ends without a word (a file being written is removed)."""
        response = self.response
        self._enter("stop", IDLE)
        if response is not None:
            reader, response.reader = response.reader, NO_READER
            reader.abandon()
        self._cancel_response_timer()
        if self.socket.connection.phase is not Phase.INITIAL:
            self.socket.close(0)

    def power_off(self) -> None:
        self.stop()
        super().power_off()

    def resume_online(self):  # HTTP has no transparent mode
        return None


class BodyToFile:
    """AT+QHTTPREADFILE at work (HTTP note 2.3.7): the response body goes into a UFS file as it
    arrives and is never held whole. It is written beside the file (``FileStore.create``) and
    becomes the file only once complete: a body that fails, times out (722), is stopped or does
    not fit leaves no file behind, and an older file of that name is kept until the new one is
    whole. What fits is what UFS has left (``room_for``); a body that will not fit ends the read
    with 729 (REFERENCE.md "HTTP(S) and MQTT"), at once when its Content-Length says so."""

    def __init__(self, family: HttpFamily, name: str, wait: float, head: bytes):
        self.family = family
        self.name = name
        modem = family.modem
        response = family.read_by(self)
        self.writer: FileWriter | None = None
        self.timer: Timer | None = None
        expected = len(head) + (response.content_length or 0)
        if expected > room_for(modem, name):
            self.finish(HttpError.MEMORY_ERROR)
            return
        try:
            self.writer = modem.files.create(name)
        except OSError:
            self.finish(HttpError.UNKNOWN)
            return
        self.timer = modem.call_at(modem.now + wait, self._timed_out)
        if self._write(head):
            self.more()

    def more(self) -> None:
        family = self.family
        if not self._reading():
            return
        if not self._write(family.take_body()):
            return
        outcome = family.outcome
        if outcome is not None:
            self.finish(outcome)

    def _reading(self) -> bool:
        response = self.family.response
        return response is not None and response.reader is self

    def _write(self, data: bytes) -> bool:
        writer = self.writer
        if not data or writer is None:
            return writer is not None
        if writer.written + len(data) > room_for(self.family.modem, self.name, writer.written):
            log.info("http: the body does not fit in UFS as %s", self.name)
            self.finish(HttpError.MEMORY_ERROR)
            return False
        try:
            writer.write(data)
        except OSError as exc:
            log.warning("http: cannot write %s: %s", self.name, exc)
            self.finish(HttpError.UNKNOWN)
            return False
        return True

    def _timed_out(self) -> None:
        self.timer = None
        if self._reading():
            self.finish(HttpError.READ_TIMEOUT)

    def finish(self, code: HttpError) -> None:
        """``+QHTTPREADFILE: <err>``; the file is there only with 0. A failure ends the request."""
        family = self.family
        reading = self._reading()
        if reading:
            family.read_by(NO_READER)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        writer, self.writer = self.writer, None
        if writer is not None:
            if code is HttpError.OK:
                try:
                    writer.commit()
                except OSError as exc:
                    log.warning("http: cannot store %s: %s", self.name, exc)
                    code = HttpError.UNKNOWN
            else:
                writer.discard()
        if code is not HttpError.OK:
            family.stop()  # what the server still sends is of no use now
        elif reading:
            family.read_over()
        family.modem.emit_urc(f"+QHTTPREADFILE: {int(code)}")

    def abandon(self) -> None:
        """AT+QHTTPSTOP or a power cycle: the file goes, nothing is said."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.discard()
