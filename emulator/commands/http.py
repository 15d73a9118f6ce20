"""The HTTP(S) commands: AT+QHTTPCFG, AT+QHTTPURL, AT+QHTTPGET, AT+QHTTPGETEX, AT+QHTTPPOST,
AT+QHTTPPOSTFILE, AT+QHTTPREAD, AT+QHTTPREADFILE, AT+QHTTPSTOP.

Source: Quectel's "EC2x&EG9x&EM05 HTTP(S) AT Commands Manual" V1.0 ("HTTP note": chapter 2 the
commands, chapter 3 the examples, then the error codes); no EC200x/EC800x HTTP(S) note was found
and the command set is the same. Status: the note's example chapter (GET and AT+QHTTPREAD, GET and
AT+QHTTPREADFILE, POST ``Message=HelloQuectel`` with AT+QHTTPPOST=20,80,80, AT+QHTTPPOSTFILE,
HTTPS on an SSL context) runs verbatim through the pty against a local server, byte for byte, with
TLS verification on (tests/test_http_note_examples.py). A command that cannot start answers
``+CME ERROR: <err>`` with the note's code, and so does one whose request fails before it leaves;
what happens after that comes as the command's URC (``+QHTTPGET: <err>[,<httprspcode>
[,<content_length>]]`` ...): the rule and its sources are in ``ecemu.commands.http_state``, which
does the work. AT+QHTTPGETEX is the EC200x/EG800K HTTP(S) note's ranged GET.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .files import ufs_name
from .http_state import CONTENT_TYPES, BodyLost, BodyToFile, HttpConfig, HttpFamily, Request, Target
from ..core.parser import CommandCall, Form
from ..core.registry import (
    AwaitData,
    CommandFailed,
    Family,
    Outcome,
    Pending,
    Reply,
    command,
    family_state,
    int_arg,
    ok,
    require_form,
    str_arg,
)
from ..core.results import CONNECT, HTTP, FileError, HttpError, Refusal

if TYPE_CHECKING:
    from ..core.modem import Modem

FAMILY = "http"
MAX_URL = 2048  # <URL_length> 1-2048 (chosen: the newer notes' figure)
MAX_POST = 1_048_576  # chosen: the largest body AT+QHTTPPOST takes
DEFAULT_WAIT = 60  # <rsptime>, <input_time>, <wait_time>, <timeout> default: 60 s (HTTP note)


HTTP_FAMILY = Family(FAMILY, errors=HTTP, state=HttpFamily, needs=("pdp", "ssl"))


def _family(modem: "Modem") -> HttpFamily:
    return family_state(modem, FAMILY, HttpFamily)


def _given(call: CommandCall, index: int) -> bool:
    return index < len(call.args) and call.args[index] is not None


def _connect_prompt(modem: "Modem") -> bytes:
    return modem.result_bytes(CONNECT)


# --- AT+QHTTPCFG (HTTP note 2.3.1) ----------------------------------------------------------------

NUMBERS = {"contextid": (1, 16), "requestheader": (0, 1), "responseheader": (0, 1), "sslctxid": (0, 5),
           "contenttype": (0, len(CONTENT_TYPES) - 1)}


MAX_EXTRA_HEADERS = 20  # chosen: the "reqheader/add" fields a module keeps


def _request_header(config: HttpConfig, call: CommandCall) -> Reply:
    """"reqheader/add"[,"<name>"[,"<value>"]] and "reqheader/remove","<name>" (HTTP(S) note of the
    EC200x/EG800K series, AT+QHTTPCFG): a header field of the host's own in every request the
    module builds, as public host code for the EC800M adds Content-Type (REFERENCE.md "HTTP(S) and
    MQTT"). The query lists them, one ``+QHTTPCFG: "reqheader/add","<name>","<value>"``
    each (chosen form)."""
    kind = str_arg(call, 0).lower()
    headers = config.extra_headers
    if kind == "reqheader/remove":
        if len(call.args) != 2:
            raise CommandFailed(Refusal.FORM)
        name = str_arg(call, 1).lower()
        if not any(known.lower() == name for known, _ in headers):
            raise CommandFailed(Refusal.PARAMETER)  # chosen: nothing of that name was added
        headers[:] = [(known, value) for known, value in headers if known.lower() != name]
        return ok()
    if len(call.args) == 1:
        return ok(*(f'+QHTTPCFG: "reqheader/add","{name}","{value}"' for name, value in headers))
    if len(call.args) != 3:
        raise CommandFailed(Refusal.FORM)
    name, value = str_arg(call, 1), str_arg(call, 2)
    if not name or any(c in name for c in ":\r\n") or any(c in value for c in "\r\n"):
        raise CommandFailed(Refusal.PARAMETER)
    kept = [(known, old) for known, old in headers if known.lower() != name.lower()]
    if len(kept) >= MAX_EXTRA_HEADERS:
        raise CommandFailed(Refusal.PARAMETER)
    headers[:] = kept + [(name, value)]
    return ok()


@command("+QHTTPCFG", family=FAMILY)
def http_config(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QHTTPCFG="<name>"[,<value>] (HTTP note 2.3.1): query or set one setting; also the newer
    notes' "reqheader/add" and "reqheader/remove" (``_request_header``)."""
    config = _family(modem).config
    if call.form is Form.TEST:
        return ok(*(f'+QHTTPCFG: "{name}",({low}-{high})' for name, (low, high) in NUMBERS.items()),
                  '+QHTTPCFG: "auth","<username>:<password>"',
                  '+QHTTPCFG: "reqheader/add","<header_name>","<header_value>"',
                  '+QHTTPCFG: "reqheader/remove","<header_name>"')
    require_form(call, Form.WRITE)
    name = str_arg(call, 0, refusal=Refusal.PLAIN).lower()
    if name in ("reqheader/add", "reqheader/remove"):
        return _request_header(config, call)
    if len(call.args) > 2:
        raise CommandFailed(Refusal.FORM)
    if name == "auth":
        if len(call.args) == 1:
            return ok(f'+QHTTPCFG: "auth","{config.auth}"')
        config.auth = str_arg(call, 1)
        return ok()
    if name not in NUMBERS:
        raise CommandFailed(Refusal.FORM)
    if len(call.args) == 1:
        return ok(f'+QHTTPCFG: "{name}",{getattr(config, name)}')
    low, high = NUMBERS[name]
    if name == "contextid":
        high = modem.profile.limits.pdp_contexts
    setattr(config, name, int_arg(call, 1, low, high))
    return ok()


# --- AT+QHTTPURL (HTTP note 2.3.2) ----------------------------------------------------------------


class FixedSink:
    """Exactly ``length`` bytes after CONNECT, within ``seconds`` (then <err> 726, input timeout);
    what the host sent past them is dropped (the length rule, core/data_entry.py)."""

    counted = True

    def __init__(self, modem: "Modem", length: int, seconds: int, done):
        self.length = length
        self.data = bytearray()
        self.until = modem.now + seconds
        self.done = done

    def feed(self, modem: "Modem", data: bytes) -> tuple[int, Outcome | CommandFailed | None]:
        take = data[: self.length - len(self.data)]
        self.data += take
        if len(self.data) == self.length:
            return len(take), self.done(bytes(self.data))
        return len(take), None

    def deadline(self) -> float | None:
        return self.until

    def expire(self, modem: "Modem") -> Outcome | CommandFailed:
        return self.done(None)


@command("+QHTTPURL", family=FAMILY)
def http_url(modem: "Modem", call: CommandCall) -> Outcome:
    """AT+QHTTPURL=<URL_length>[,<timeout>] (HTTP note 2.3.2): CONNECT, the URL, OK."""
    family = _family(modem)
    if call.form is Form.TEST:
        return ok(f"+QHTTPURL: (1-{MAX_URL}),(1-65535)")
    if call.form is Form.READ:
        # The URL as it is, unquoted: +QHTTPURL: http://www.example.com/ on an EG800K (REFERENCE.md
        # "HTTP(S) and MQTT", seen; a BG96 guide shows the same).
        return ok(f"+QHTTPURL: {family.url}") if family.url else ok()
    require_form(call, Form.WRITE)
    if len(call.args) > 2:
        raise CommandFailed(Refusal.FORM)
    length = int_arg(call, 0, 1, MAX_URL)
    seconds = int_arg(call, 1, 1, 65535, default=DEFAULT_WAIT)
    if family.busy:
        raise CommandFailed(HttpError.BUSY)

    def done(data: bytes | None) -> Outcome | CommandFailed:
        if data is None:
            return CommandFailed(HttpError.INPUT_TIMEOUT)
        family.url = data.decode("latin-1")
        return Reply()

    return AwaitData(_connect_prompt(modem), FixedSink(modem, length, seconds, done), echo=False)


# --- AT+QHTTPGET, AT+QHTTPPOST, AT+QHTTPPOSTFILE (HTTP note 2.3.3 - 2.3.5) -------------------------


def _target(family: HttpFamily) -> Target:
    if family.busy:
        raise CommandFailed(HttpError.BUSY)
    if not family.url:
        raise CommandFailed(HttpError.EMPTY_URL)
    return Target(family.url)  # CommandFailed(HttpError.URL_ERROR) when it is not one


def _with_body_from_host(modem: "Modem", family: HttpFamily, request: Request, length: int,
                         input_time: int, as_raw: bool) -> Outcome:
    """Connect first, then CONNECT and ``length`` bytes from the host, then the request goes."""

    def body_done(data: bytes | None) -> Outcome | CommandFailed:
        if data is None:
            family.stop()
            return CommandFailed(HttpError.INPUT_TIMEOUT)
        stage = request.stage
        if isinstance(stage, BodyLost):
            return CommandFailed(stage.code)
        request.to("body_taken")
        if as_raw:
            request.raw = data
        else:
            request.body = data
        family.send_request()
        return Reply()

    def connected() -> None:
        modem.host.finish_pending(AwaitData(_connect_prompt(modem), FixedSink(modem, length, input_time, body_done),
                                       echo=False))

    request.on_connected = connected
    request.to("wait_to_connect")
    family.start(request)
    return Pending(request.urc)


def _until_answered(family: HttpFamily, request: Request) -> Pending:
    """The command holds its final result until the server answers (``http_state``'s docstring):
    ``+CME ERROR`` for what fails before the request left, else OK and the URC."""
    request.to("wait_for_answer")
    family.start(request)  # CommandFailed at once when it cannot even start (no context, no TLS)
    return Pending(request.urc)


@command("+QHTTPGET", family=FAMILY)
def http_get(modem: "Modem", call: CommandCall) -> Outcome:
    """AT+QHTTPGET[=<rsptime>[,<data_length>[,<input_time>]]] (HTTP note 2.3.3): once the server
    has answered, OK and ``+QHTTPGET: 0,<httprspcode>[,<content_length>]``; ``+CME ERROR: <err>``
    for what fails before the request left, OK and ``+QHTTPGET: <err>`` for a request that left
    and got no answer (REFERENCE.md "HTTP(S) failures"). An absolute Location is followed. With
    AT+QHTTPCFG="requestheader",1 and <data_length>: CONNECT, the host's whole request, OK, then
    the URC."""
    family = _family(modem)
    if call.form is Form.TEST:
        return ok("+QHTTPGET: (1-65535),(1-2048),(1-65535)")
    require_form(call, Form.EXEC, Form.WRITE)
    if len(call.args) > 3:
        raise CommandFailed(Refusal.FORM)
    rsptime = int_arg(call, 0, 1, 65535, default=DEFAULT_WAIT)
    target = _target(family)
    if _given(call, 1):
        length = int_arg(call, 1, 1, MAX_POST)
        input_time = int_arg(call, 2, 1, 65535, default=DEFAULT_WAIT)
        if not family.config.requestheader:
            raise CommandFailed(Refusal.PARAMETER)
        request = Request("+QHTTPGET", "GET", target, rsptime=rsptime)
        return _with_body_from_host(modem, family, request, length, input_time, as_raw=True)
    return _until_answered(family, Request("+QHTTPGET", "GET", target, rsptime=rsptime, follows_redirects=True))


MAX_RANGE = 2**31 - 1  # chosen: <start_position> and <read_len> as the note's 32-bit integers


@command("+QHTTPGETEX", family=FAMILY)
def http_get_ex(modem: "Modem", call: CommandCall) -> Outcome:
    """AT+QHTTPGETEX=<rsptime>,<start_position>,<read_len> (HTTP(S) application note of the
    EC200x/EG800K series, AT+QHTTPGETEX): a GET of <read_len> bytes from <start_position>, asked
    with a Range header; as AT+QHTTPGET, then ``+QHTTPGET: 0,206,<n>`` from a server that honours
    the range (an EG800K read 206 and 8 bytes twice, for 0,8 and 8,8; a server that does not
    answers 200 and the whole body, seen). Only with AT+QHTTPCFG="requestheader",0 (the note);
    otherwise, as for a range that is not a number in range: ``+CME ERROR: 730`` (chosen)."""
    family = _family(modem)
    if call.form is Form.TEST:
        return ok(f"+QHTTPGETEX: (1-65535),(0-{MAX_RANGE}),(1-{MAX_RANGE})")
    require_form(call, Form.WRITE)
    if len(call.args) != 3:
        raise CommandFailed(Refusal.FORM)
    rsptime = int_arg(call, 0, 1, 65535)
    first = int_arg(call, 1, 0, MAX_RANGE)
    count = int_arg(call, 2, 1, MAX_RANGE)
    if family.config.requestheader:
        raise CommandFailed(Refusal.PARAMETER)
    request = Request("+QHTTPGET", "GET", _target(family), rsptime=rsptime, byte_range=(first, count),
                      follows_redirects=True)
    return _until_answered(family, request)


@command("+QHTTPPOST", family=FAMILY)
def http_post(modem: "Modem", call: CommandCall) -> Outcome:
    """AT+QHTTPPOST=<data_length>[,<input_time>[,<rsptime>]] (HTTP note 2.3.4): once connected,
    CONNECT; the body (the whole request with AT+QHTTPCFG="requestheader",1); OK; then
    ``+QHTTPPOST: <err>[,<httprspcode>[,<content_length>]]``."""
    family = _family(modem)
    if call.form is Form.TEST:
        return ok(f"+QHTTPPOST: (1-{MAX_POST}),(1-65535),(1-65535)")
    require_form(call, Form.WRITE)
    if len(call.args) > 3:
        raise CommandFailed(Refusal.FORM)
    length = int_arg(call, 0, 1, MAX_POST)
    input_time = int_arg(call, 1, 1, 65535, default=DEFAULT_WAIT)
    rsptime = int_arg(call, 2, 1, 65535, default=DEFAULT_WAIT)
    request = Request("+QHTTPPOST", "POST", _target(family), rsptime=rsptime)
    return _with_body_from_host(modem, family, request, length, input_time,
                                as_raw=bool(family.config.requestheader))


@command("+QHTTPPOSTFILE", family=FAMILY)
def http_post_file(modem: "Modem", call: CommandCall) -> Outcome:
    """AT+QHTTPPOSTFILE="<file_name>"[,<rsptime>] (HTTP note 2.3.5): the file from UFS as the body
    (the whole request with "requestheader" 1); once answered, OK and ``+QHTTPPOSTFILE: <err>
    [,<httprspcode>[,<content_length>]]``, failures told as AT+QHTTPGET tells them; a redirect is
    not followed (chosen: the body would have to go again)."""
    family = _family(modem)
    if call.form is Form.TEST:
        return ok('+QHTTPPOSTFILE: "<file_name>",(1-65535)')
    require_form(call, Form.WRITE)
    if len(call.args) > 3:
        raise CommandFailed(Refusal.FORM)
    name = ufs_name(modem, str_arg(call, 0))
    rsptime = int_arg(call, 1, 1, 65535, default=DEFAULT_WAIT)
    target = _target(family)
    try:
        data = modem.files.read(name)
    except (FileNotFoundError, OSError):
        raise CommandFailed(FileError.FILE_NOT_FOUND) from None
    request = Request("+QHTTPPOSTFILE", "POST", target, rsptime=rsptime)
    if family.config.requestheader:
        request.raw = data
    else:
        request.body = data
    return _until_answered(family, request)


# --- AT+QHTTPREAD, AT+QHTTPREADFILE (HTTP note 2.3.6, 2.3.7) --------------------------------------


def _response_to_read(family: HttpFamily):
    response = family.response
    if response is None:
        raise CommandFailed(HttpError.BUSY if family.busy else HttpError.NO_REQUEST)
    return response


class BodyToHost:
    """AT+QHTTPREAD at work: the body goes to the host as it arrives; at its end ``finished``
    tells how it ended and the command's OK follows."""

    def __init__(self, modem: "Modem", family: HttpFamily, finished: Callable[[HttpError], None]):
        self.modem = modem
        self.family = family
        self.finished = finished

    def more(self) -> None:
        family = self.family
        self.modem.write_host(family.take_body())
        outcome = family.outcome
        if outcome is not None:
            self.finished(outcome)
            self.modem.host.finish_pending(Reply())

    def abandon(self) -> None:
        pass  # AT+QHTTPSTOP: the command's wait runs out (+QHTTPREAD: 702)


@command("+QHTTPREAD", family=FAMILY)
def http_read(modem: "Modem", call: CommandCall) -> Outcome:
    """AT+QHTTPREAD[=<wait_time>] (HTTP note 2.3.6): CONNECT, the response body (after its header
    with AT+QHTTPCFG="responseheader",1) as it arrives, OK, then ``+QHTTPREAD: <err>``."""
    family = _family(modem)
    if call.form is Form.TEST:
        return ok("+QHTTPREAD: (1-65535)")
    require_form(call, Form.EXEC, Form.WRITE)
    if len(call.args) > 1:
        raise CommandFailed(Refusal.FORM)
    wait = int_arg(call, 0, 1, 65535, default=DEFAULT_WAIT)
    response = _response_to_read(family)
    head = response.head if family.config.responseheader else b""
    modem.write_host(_connect_prompt(modem) + head + family.take_body())

    def finished(code: HttpError) -> None:
        family.read_over()  # read once (chosen): a second AT+QHTTPREAD answers 705
        modem.emit_urc(f"+QHTTPREAD: {int(code)}")

    if family.outcome is not None:
        finished(family.outcome)
        return Reply()

    def timed_out(_modem: "Modem") -> Outcome:
        family.stop()
        modem.emit_urc(f"+QHTTPREAD: {int(HttpError.READ_TIMEOUT)}")
        return Reply()

    family.read_by(BodyToHost(modem, family, finished))
    return Pending("+QHTTPREAD", deadline=modem.now + wait, on_timeout=timed_out)


@command("+QHTTPREADFILE", family=FAMILY)
def http_read_file(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QHTTPREADFILE="<file_name>"[,<wait_time>] (HTTP note 2.3.7): OK; the body goes to the UFS
    file as it arrives (``BodyToFile``); then ``+QHTTPREADFILE: <err>``. The name follows
    AT+QFUPL's rules (406); a body UFS has no room for ends with 729."""
    family = _family(modem)
    if call.form is Form.TEST:
        return ok('+QHTTPREADFILE: "<file_name>",(1-65535)')
    require_form(call, Form.WRITE)
    if len(call.args) > 3:
        raise CommandFailed(Refusal.FORM)
    name = ufs_name(modem, str_arg(call, 0))
    wait = int_arg(call, 1, 1, 65535, default=DEFAULT_WAIT)
    response = _response_to_read(family)
    BodyToFile(family, name, wait, response.head if family.config.responseheader else b"")
    return ok()


# --- AT+QHTTPSTOP (HTTP note 2.3.8) ---------------------------------------------------------------


@command("+QHTTPSTOP", family=FAMILY)
def http_stop(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QHTTPSTOP (HTTP note 2.3.8): the request running, if any, ends; OK."""
    if call.form is Form.TEST:
        return ok()
    require_form(call, Form.EXEC)
    _family(modem).stop()
    return ok()


__all__ = ["HTTP_FAMILY", "HttpConfig"]
