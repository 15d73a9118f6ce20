"""``ecemu check LOG``: play a log's host side against the emulator and report every difference
between what the real module answered and what the emulator answers.

The host's lines are sent as the log has them, one host turn (the host records between two of
the module's) at a time, and what the emulator says until the log's host speaks again is
compared with what the module said then, line by line:

- **bytes**: a line differs (after the normalising rules, ``ecemu.sessionlog.rules``: IMEI,
  ICCID, revision, addresses, ports, times, signal, operator, cell);
- **missing** / **extra**: a line the log has that the emulator did not say, or the other way;
- **order**: a line said before (or after) the host's next line when the log has it after (or
  before);
- **timing**: a line that came later or sooner than in the log by more than the tolerance,
  counted from the host's line (logs with times only; the boot URCs are not timed).

For a log whose line ends were shown (``line-ends: exact``: recorded sessions, captures, traces)
the lines compare with their CR and LF, echo included. For a transcript whose line ends were put
back by rule (``line-ends: inferred``), only the text of the non-empty lines compares, and echoes
of the host's lines are left out (the transcript cannot say whether echo was on).

Servers on the internet are replaced by local stand-ins, started when the log first needs them:
AT+QIOPEN's TCP and UDP by echo servers, AT+QSSLOPEN by a TLS echo server, AT+QHTTPURL's URL by
the HTTP(S) test server, AT+QMTOPEN by a Mosquitto broker (MQTT over TLS when the log configured
``AT+QMTCFG="ssl"``); the address in the host's line is rewritten (and the echo expected with it).
A command split across several host turns is sent as it is. What the stand-ins send back is
theirs, not the real server's, so data the module received from a real server differs.
"""

from __future__ import annotations

import bisect
import difflib
import os
import re
import select
import socket
import termios
import threading
import time
import tty
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .profile import load_profile
from .sessionlog import EVENT, HOST, MODULE, LogError, ReadOptions, Record, escape, open_log
from .sessionlog.modules import ModuleMismatch, model_in_answer, profile_for
from .sessionlog.rules import DEFAULT_RULES, Rule, RuleError, normalise, rule_from_header

DIFFERENCE_LIMIT = 1000  # differences kept for the report; more are counted
PRESCAN_RECORDS = 5000  # records read ahead to find which module a log is of


@dataclass
class CheckOptions:
    profile: str | None = None
    rules: list[Rule] = field(default_factory=list)
    tolerance: float = 1.0  # seconds
    timing: bool = True
    read_options: ReadOptions | None = None
    quiet: float = 0.2  # seconds of silence once the expected lines have come
    wait: float = 2.0  # seconds to wait for lines that do not come (a log without times)
    max_gap: float = 1.2  # the longest pause of the log's host reproduced before its next line


@dataclass
class Difference:
    kind: str  # bytes, missing, extra, order, timing, note
    line: int  # the log line (0 when none)
    expected: str | None = None
    got: str | None = None
    detail: str = ""
    key: str = ""  # the line after the normalising rules: what pairs a missing line with an extra one

    def render(self) -> str:
        where = f"line {self.line}" if self.line else "log"
        head = f"{where:<10} {self.kind:<8}"
        pad = " " * len(head)
        lines = []
        if self.kind == "bytes":
            lines.append(f"{head} log:      {self.expected}")
            lines.append(f"{pad} emulator: {self.got}")
        elif self.kind == "missing":
            lines.append(f"{head} log:      {self.expected}")
            lines.append(f"{pad} emulator: (nothing)")
        elif self.kind == "extra":
            lines.append(f"{head} log:      (nothing)")
            lines.append(f"{pad} emulator: {self.got}")
        else:
            lines.append(f"{head} {self.expected or self.got or ''}")
        if self.detail:
            lines.append(f"{pad} ({self.detail})")
        return "\n".join(lines)


@dataclass
class CheckReport:
    source: str
    profile: str
    module: str | None
    exact_profile: bool
    line_ends: str
    exchanges: int = 0
    differences: list[Difference] = field(default_factory=list)
    difference_count: int = 0
    notes: list[str] = field(default_factory=list)
    warnings: list[tuple[int, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.difference_count == 0

    def add(self, difference: Difference) -> None:
        self.difference_count += 1
        if len(self.differences) < DIFFERENCE_LIMIT:
            self.differences.append(difference)

    def render(self) -> list[str]:
        module = f"{self.module} ({'its profile' if self.exact_profile else 'nearest profile'})" \
            if self.module else "module not named"
        lines = [f"ecemu check {self.source}: {self.profile} for {module}, {self.exchanges} exchanges, "
                 f"line ends {self.line_ends}"]
        for number, message in self.warnings:
            lines.append(f"line {number:<5} warning  {message}")
        lines.extend(f"note: {note}" for note in self.notes)
        lines.extend(difference.render() for difference in self.differences)
        if self.difference_count > len(self.differences):
            lines.append(f"... and {self.difference_count - len(self.differences)} more")
        lines.append("no differences" if self.passed else
                     f"{self.difference_count} difference{'s' if self.difference_count != 1 else ''}")
        return lines


# --- the log, as exchanges ----------------------------------------------------------------------

@dataclass
class Exchange:
    host: list[Record]
    module: list[Record]
    events: list[Record] = field(default_factory=list)

    @property
    def host_bytes(self) -> bytes:
        return b"".join(record.data for record in self.host)

    @property
    def sent_at(self) -> float | None:
        return self.host[-1].time if self.host else None


def exchanges(records: Iterator[Record], report: CheckReport) -> Iterator[Exchange]:
    """Host turns, each with what the module said until the host's next turn."""
    current = Exchange([], [])
    skipped_channels = 0
    for record in records:
        if record.channel != 0:
            skipped_channels += 1
            continue
        if record.direction == EVENT:
            if current.host or current.module:
                yield current
                current = Exchange([], [])
            current.events.append(record)
            continue
        if record.direction == HOST:
            if record.has_placeholders:
                raise LogError(record.line, "a placeholder in a host line: check sends the host's bytes "
                                            "as they were, so the log must have them", report.source)
            if current.module:
                yield current
                current = Exchange([], [])
            current.host.append(record)
        else:
            current.module.append(record)
    if current.host or current.module or current.events:
        yield current
    if skipped_channels:
        report.notes.append(f"{skipped_channels} records of channels other than 0 were not played")


# --- tokens: the lines compared ----------------------------------------------------------------

@dataclass
class Token:
    raw: bytes
    norm: str  # the line after the rules, with its CR and LF (what compares in an exact log)
    key: str  # the line after the rules, without them (what says two lines are the same line)
    time: float | None
    line: int

    def shown(self) -> str:
        return escape(self.raw)


# A line on the wire: the CR LF that frames it, its text, and what ends it (an echo ends with
# the host's CR alone, an answer line with CR LF); CR LF left over at the end stands alone.
_WIRE_LINE = re.compile(rb"[\r\n]*[^\r\n]+(?:\r\n|\r|\n)?|[\r\n]+")
_TEXT_LINE = re.compile(rb"[^\r\n]+")


def tokens(chunks: list[tuple[bytes, float | None, int]], exact: bool, echoes: set[bytes],
           rules: list[Rule], omitted: frozenset[bytes] = frozenset()) -> list[Token]:
    """The lines of what the module said, each with the time its last byte came and the log line
    it starts in. ``omitted``: lines the log leaves out (its ``omitted`` header: a transcript
    that shows answers without their OK), left out on both sides."""
    data = b"".join(chunk for chunk, _, _ in chunks)
    ends: list[int] = []
    position = 0
    for chunk, _, _ in chunks:
        position += len(chunk)
        ends.append(position)
    out: list[Token] = []
    for match in (_WIRE_LINE if exact else _TEXT_LINE).finditer(data):
        raw = match.group(0)
        first = bisect.bisect_right(ends, match.start())
        last = bisect.bisect_left(ends, match.end())
        when = chunks[min(last, len(chunks) - 1)][1]
        line = chunks[min(first, len(chunks) - 1)][2]
        content = raw.strip(b"\r\n")
        if not exact:
            content = content.strip()
            if not content or content in echoes or content in omitted:
                continue
            raw = content
        text = normalise(content.decode("latin-1"), rules)
        if exact:
            head = raw[:len(raw) - len(raw.lstrip(b"\r\n"))].decode("latin-1")
            tail = raw[len(raw.rstrip(b"\r\n")):].decode("latin-1")
            norm = head + text + tail
        else:
            norm = text
        out.append(Token(raw, norm, text, when, line))
    return out


# --- stand-ins for the servers ------------------------------------------------------------------

class _TcpEcho:
    """Sends back every byte; one thread per connection, ended with the server."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                conn.sendall(data)

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


class _UdpEcho:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                data, sender = self.sock.recvfrom(65536)
            except (TimeoutError, OSError):
                continue
            try:
                self.sock.sendto(data, sender)
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


_QIOPEN = re.compile(r'\A(AT\+QIOPEN=\d+,\d+,"(TCP|UDP)",)"([^"]*)",(\d+)(.*)\Z', re.I | re.S)
_QSSLOPEN = re.compile(r'\A(AT\+QSSLOPEN=\d+,\d+,\d+,)"([^"]*)",(\d+)(.*)\Z', re.I | re.S)
_QMTOPEN = re.compile(r'\A(AT\+QMTOPEN=(\d+),)"([^"]*)",(\d+)(.*)\Z', re.I | re.S)
_QMTCFG_SSL = re.compile(r'\AAT\+QMTCFG="ssl",(\d+),(\d)', re.I)
_QHTTPURL = re.compile(r"\A(AT\+QHTTPURL=)(\d+)(.*)\Z", re.I | re.S)
_URL = re.compile(r"\A(https?)://([^/]*)(.*)\Z", re.I | re.S)


class StandIns:
    """The local servers a log needs, started on first use, and the rewriting of the host's
    lines that name servers."""

    def __init__(self, report: CheckReport):
        self.report = report
        self._servers: dict[str, object] = {}
        self._mqtt_tls: set[str] = set()
        self.pending_url: int | None = None  # AT+QHTTPURL's declared length, its URL still to come

    def _server(self, kind: str):
        if kind in self._servers:
            return self._servers[kind]
        server: object
        if kind == "tcp":
            server = _TcpEcho()
        elif kind == "udp":
            server = _UdpEcho()
        elif kind == "tls":
            from .echo_server import TlsEchoServer

            server = TlsEchoServer().start()
        elif kind in ("http", "https"):
            from .http_server import HttpTestServer

            server = HttpTestServer(tls=kind == "https")
            server.__enter__()
        elif kind == "mqtt":
            from .mqtt_broker import BrokerUnavailable, MqttBroker

            try:
                server = MqttBroker().start()
            except (BrokerUnavailable, RuntimeError) as exc:
                self.report.notes.append(f"no MQTT broker to stand in for the log's ({exc}): "
                                         f"AT+QMTOPEN goes to the log's own address")
                server = None
        else:
            raise ValueError(kind)
        self._servers[kind] = server
        return server

    def rewrite_line(self, line: bytes) -> bytes:
        """One command line (without its line end): where it names a server, a stand-in."""
        text = line.decode("latin-1")
        match = _QIOPEN.match(text)
        if match:
            server = self._server(match.group(2).lower())
            return f'{match.group(1)}"127.0.0.1",{server.port}{match.group(5)}'.encode("latin-1")
        match = _QSSLOPEN.match(text)
        if match:
            server = self._server("tls")
            return f'{match.group(1)}"127.0.0.1",{server.port}{match.group(4)}'.encode("latin-1")
        match = _QMTCFG_SSL.match(text)
        if match:
            (self._mqtt_tls.add if match.group(2) == "1" else self._mqtt_tls.discard)(match.group(1))
            return line
        match = _QMTOPEN.match(text)
        if match:
            broker = self._server("mqtt")
            if broker is None:
                return line
            port = broker.tls_port if match.group(2) in self._mqtt_tls else broker.port
            return f'{match.group(1)}"127.0.0.1",{port}{match.group(5)}'.encode("latin-1")
        return line

    def rewrite_url(self, url: bytes) -> bytes:
        match = _URL.match(url.decode("latin-1"))
        if match is None or _never_resolves(match.group(2)):
            return url
        server = self._server(match.group(1).lower())
        return f"{match.group(1).lower()}://127.0.0.1:{server.port}{match.group(3)}".encode("latin-1")

    def close(self) -> None:
        for server in self._servers.values():
            if server is None:
                continue
            for method in ("close", "stop"):
                if hasattr(server, method):
                    getattr(server, method)()
                    break
            else:
                server.__exit__(None, None, None)  # type: ignore[attr-defined]


def _never_resolves(authority: str) -> bool:
    """A host name under .invalid, which no resolver answers (RFC 6761): the log's failure to
    resolve it is what the emulator must show, so no stand-in takes its place."""
    host = authority.rsplit("@", 1)[-1].split(":", 1)[0].rstrip(".").lower()
    return host == "invalid" or host.endswith(".invalid")


def rewrite_turn(data: bytes, stand_ins: StandIns, following: Exchange | None,
                 url_rewrites: dict[int, tuple[bytes, bytes]]) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The host turn with server addresses rewritten; also (old line, new line) pairs, for the
    echoes the log has of them."""
    out = bytearray()
    changes: list[tuple[bytes, bytes]] = []
    for piece in re.split(rb"(\r\n|\r|\n)", data):
        if piece in (b"\r\n", b"\r", b"\n") or not piece:
            out += piece
            continue
        new = stand_ins.rewrite_line(piece)
        match = _QHTTPURL.match(piece.decode("latin-1"))
        if match and following is not None and following.host:
            url = following.host_bytes
            if len(url) == int(match.group(2)):
                new_url = stand_ins.rewrite_url(url)
                url_rewrites[id(following)] = (url, new_url)
                new = f"{match.group(1)}{len(new_url)}{match.group(3)}".encode("latin-1")
        if new != piece:
            changes.append((piece, new))
        out += new
    return bytes(out), changes


# --- the port, as a host sees it ----------------------------------------------------------------

class HostPort:
    """The emulator's pty opened as a host opens a serial port: raw, read with a deadline."""

    def __init__(self, path: str):
        self.path = path
        self.fd: int | None = None
        self.open()

    def open(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd, termios.TCSANOW)  # now, not after a flush: the boot URCs may be waiting

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def send(self, data: bytes, deadline: float) -> None:
        assert self.fd is not None
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.fd, view)
            except BlockingIOError:
                written = 0
            view = view[written:]
            if view:
                if time.monotonic() > deadline:
                    raise TimeoutError("the emulator takes no more of the host's bytes")
                select.select([], [self.fd], [], 0.05)

    def read(self, until: float) -> bytes:
        """What arrives by ``until`` (returns as soon as something came)."""
        assert self.fd is not None
        timeout = max(0.0, until - time.monotonic())
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(self.fd, 65536)
        except (BlockingIOError, OSError):
            return b""


# --- the check --------------------------------------------------------------------------------

def find_module(path: Path, read_options: ReadOptions | None) -> tuple[str | None, int]:
    """The model the log names (its ``module`` header, else an ATI or AT+CGMM answer) and the line."""
    with open_log(path, options=read_options) as log:
        if log.info.headers.get("module"):
            return log.info.headers["module"], 0
        answer: list[str] = []
        answer_line = 0
        asked = False
        typed = bytearray()
        for count, record in enumerate(log.records()):
            if count > PRESCAN_RECORDS:
                break
            if record.direction == HOST:
                typed += record.data
                if b"\r" in typed or b"\n" in typed:
                    text = re.split(rb"[\r\n]", bytes(typed))[0].decode("latin-1").strip().upper()
                    asked = text in ("ATI", "AT+CGMM", "AT+GMM") or text.endswith(("ATI", "+CGMM", "+GMM"))
                    answer = []
                    typed.clear()
                continue
            if asked and record.direction == MODULE:
                if not answer:
                    answer_line = record.line
                answer += re.split(r"[\r\n]+", record.data.decode("latin-1"))
                if any(line.strip() in ("OK", "ERROR") for line in answer):
                    model = model_in_answer([line for line in answer if line.strip() not in ("OK", "ATI")
                                             and not line.strip().upper().startswith("AT")])
                    if model:
                        return model, answer_line
                    asked = False
    return None, 0


def check_log(path: str | Path, options: CheckOptions | None = None) -> CheckReport:
    """Check a log against the emulator. Raises LogError for a log that cannot be read,
    ModuleMismatch for a log of another module, RuleError for a bad rule."""
    from .api import Emulator

    options = options or CheckOptions()
    path = Path(path)
    module, module_line = find_module(path, options.read_options)
    if options.profile:
        profile_name, exact = profile_for(options.profile)
    else:
        try:
            profile_name, exact = profile_for(module)
        except ModuleMismatch as exc:
            where = f"line {module_line}: " if module_line else ""
            raise ModuleMismatch(f"{path}: {where}{exc}") from None
    log = open_log(path, options=options.read_options)
    report = CheckReport(str(path), profile_name, module, exact, log.info.line_ends)
    rules = list(DEFAULT_RULES)
    profile_model = load_profile(profile_name).identity.model
    if module and not exact:
        rules.append(Rule("model", re.compile(r"^(?:E[CG]\d{3}[A-Z]?(?:-[A-Z]+)?)$"), "<model>"))
    for header in log.info.normalise:
        rules.append(rule_from_header(header, f"{path}: "))
    rules.extend(options.rules)
    if module and not exact:
        report.notes.append(f"the log is of a {module}; the emulator stands in with {profile_name} "
                            f"(model {profile_model}): model and revision are normalised")
    exact_bytes = log.info.line_ends == "exact"
    timed = log.info.timed and options.timing
    stand_ins = StandIns(report)
    items = _Exchanges(exchanges(log.records(), report))
    start = _how_the_log_starts(items)
    emulator = Emulator(profile=profile_name, boot="at-start" if start == "booted" else "on-open").start()
    port: HostPort | None = None
    try:
        port = HostPort(emulator.port)
        if start == "booted":
            emulator.wait_for_boot()  # its URCs wait in the port for the host: the log's first lines
        elif start == "after-boot":
            emulator.wait_for_boot()
            _drain(port, options.quiet)  # the boot URCs the log does not have
        omitted = frozenset(item.strip().encode("latin-1") for item in log.info.headers.get("omitted", "").split(",")
                            if item.strip())
        _play(items, report, port, stand_ins, rules, options, exact_bytes, timed, omitted)
    finally:
        if port is not None:
            port.close()
        emulator.stop()
        stand_ins.close()
        log.close()
    report.warnings = list(log.info.warnings)
    if log.info.warning_count > len(log.info.warnings):
        report.notes.append(f"{log.info.warning_count - len(log.info.warnings)} more warnings")
    return report


class _Exchanges:
    """The exchanges of a log, with a look ahead."""

    def __init__(self, items: Iterator[Exchange]):
        self._items = items
        self._ahead: deque[Exchange] = deque()

    def take(self) -> Exchange | None:
        if self._ahead:
            return self._ahead.popleft()
        return next(self._items, None)

    def peek(self, index: int = 0) -> Exchange | None:
        while len(self._ahead) <= index:
            following = next(self._items, None)
            if following is None:
                return None
            self._ahead.append(following)
        return self._ahead[index]


def _how_the_log_starts(items: _Exchanges) -> str:
    """``booted``: the log opens with the module's own lines (its boot URCs, said before the
    host's first line): the emulator powers on first and the host reads them. ``racing``: the
    host's first line came before the boot URCs (``RDY`` is in its answer): the host speaks as
    soon as it opens the port. ``after-boot``: the log starts after the boot, which is waited
    for and left out."""
    index = 0
    while (exchange := items.peek(index)) is not None and not exchange.host:
        if exchange.module:
            return "booted"
        index += 1
    if exchange is not None and any(b"RDY\r\n" in record.data for record in exchange.module):
        return "racing"
    return "after-boot"


def _play(items: _Exchanges, report: CheckReport, port: HostPort, stand_ins: StandIns, rules: list[Rule],
          options: CheckOptions, exact: bool, timed: bool, omitted: frozenset[bytes] = frozenset()) -> None:
    take, peek = items.take, items.peek
    last_activity = time.monotonic()
    previous_log_time: float | None = None
    url_rewrites: dict[int, tuple[bytes, bytes]] = {}
    unresolved: list[Difference] = []  # the last exchange's missing and extra lines, for the order pass
    while (exchange := take()) is not None:
        report.exchanges += 1
        for event in exchange.events:
            _event(event, port, report)
        if not exchange.host and not exchange.module:
            continue
        sent = bytes()
        changes: list[tuple[bytes, bytes]] = []
        if exchange.host:
            gap = 0.0
            first_time = exchange.host[0].time
            if timed and first_time is not None and previous_log_time is not None:
                gap = min(max(0.0, first_time - previous_log_time), options.max_gap)
            wait_until = last_activity + gap
            while time.monotonic() < wait_until:
                time.sleep(min(0.05, max(0.0, wait_until - time.monotonic())))
            data = exchange.host_bytes
            if id(exchange) in url_rewrites:
                old_url, new_url = url_rewrites.pop(id(exchange))
                data = data.replace(old_url, new_url)
                sent, changes = data, []
                # AT+QHTTPURL? reads the stand-in's URL back: it reads as the log's.
                rules.insert(0, Rule("the stand-in's URL", re.compile(re.escape(new_url.decode("latin-1"))),
                                     old_url.decode("latin-1").replace("\\", "\\\\")))
            else:
                sent, changes = rewrite_turn(data, stand_ins, peek(), url_rewrites)
            port.send(sent, time.monotonic() + 10.0)
        start = time.monotonic()
        expected_bytes = [(record.data, record.time, record.line) for record in exchange.module]
        for old, new in changes:
            expected_bytes = [(data.replace(old, new), when, line) for data, when, line in expected_bytes]
        anchor = exchange.sent_at if exchange.host else (exchange.module[0].time if exchange.module else None)
        expected_chunks = [(data, (when - anchor) if (when is not None and anchor is not None) else None, line)
                           for data, when, line in expected_bytes]
        echoes = _echo_lines(exchange.host_bytes) | _echo_lines(sent)
        expected = tokens(expected_chunks, exact, echoes, rules, omitted)
        last_offset = max((token.time for token in expected if token.time is not None), default=0.0)
        deadline = start + (max(options.wait, last_offset + options.tolerance + 0.5) if timed else options.wait)
        if not exchange.host and port.fd is None:
            report.notes.append(f"line {exchange.module[0].line}: what the module said while no host had "
                                f"the port open is not compared (nobody hears it)")
            got_chunks: list[tuple[bytes, float | None, int]] = []
            expected = []
        else:
            quiet = options.quiet
            following = peek()
            last_record = exchange.module[-1] if exchange.module else (exchange.host[-1] if exchange.host else None)
            if timed and following is not None and following.host and last_record is not None \
                    and following.host[0].time is not None and last_record.time is not None:
                # The log's host spoke again this soon: anything later is the next exchange's.
                quiet = min(quiet, max(0.0, following.host[0].time - last_record.time))
            got_chunks = _collect(port, start, deadline, expected, exact, echoes, rules, quiet, omitted)
        last_activity = time.monotonic()
        got = tokens(got_chunks, exact, echoes, rules, omitted)
        differences = _compare(expected, got, timed and bool(exchange.host), options.tolerance, exchange)
        unresolved = _order_pass(unresolved, differences, report)
        if exchange.module and exchange.module[-1].time is not None:
            previous_log_time = exchange.module[-1].time
        elif exchange.host and exchange.host[-1].time is not None:
            previous_log_time = exchange.host[-1].time
    for difference in unresolved:
        report.add(difference)


def _event(event: Record, port: HostPort, report: CheckReport) -> None:
    """The log's host closing and opening the port again (a first open is the check's own)."""
    name = event.data.decode("latin-1").split(" ", 1)[0]
    if name == "host-closed" and port.fd is not None:
        port.close()
    elif name == "host-opened" and port.fd is None:
        port.open()


def _drain(port: HostPort, quiet: float) -> None:
    """Read and forget until ``quiet`` seconds pass without a byte."""
    while port.read(time.monotonic() + quiet):
        pass


def _echo_lines(data: bytes) -> set[bytes]:
    return {line.strip() for line in re.split(rb"[\r\n]+", data) if line.strip()}


def _collect(port: HostPort, start: float, deadline: float, expected: list[Token], exact: bool,
             echoes: set[bytes], rules: list[Rule], quiet: float,
             omitted: frozenset[bytes] = frozenset()) -> list[tuple[bytes, float | None, int]]:
    """What the emulator says: until as many lines as the log has have come and then ``quiet``
    seconds passed without more, or until the deadline."""
    chunks: list[tuple[bytes, float | None, int]] = []
    wanted = len(expected)
    settle_at: float | None = None
    if port.fd is None:
        return chunks
    while True:
        now = time.monotonic()
        limit = deadline if settle_at is None else min(deadline, settle_at)
        if now >= limit:
            return chunks
        data = port.read(limit)
        if data:
            chunks.append((data, time.monotonic() - start, 0))
            if len(tokens(chunks, exact, echoes, rules, omitted)) >= wanted:
                settle_at = time.monotonic() + quiet
            continue


def _compare(expected: list[Token], got: list[Token], timed: bool, tolerance: float,
             exchange: Exchange) -> list[Difference]:
    out: list[Difference] = []
    fallback_line = exchange.host[0].line if exchange.host else (exchange.module[0].line if exchange.module else 0)
    matcher = difflib.SequenceMatcher(a=[token.key for token in expected], b=[token.key for token in got],
                                      autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for mine, theirs in zip(expected[i1:i2], got[j1:j2], strict=True):
                if mine.norm != theirs.norm:
                    out.append(Difference("bytes", mine.line or fallback_line, mine.shown(), theirs.shown(),
                                          "the same line, framed by other CR and LF", key=mine.key))
                if not timed or mine.time is None or theirs.time is None:
                    continue
                if abs(theirs.time - mine.time) > tolerance:
                    out.append(Difference("timing", mine.line or fallback_line, mine.shown(), detail=(
                        f"the emulator said it {theirs.time:.3f} s after the host's line; the log has "
                        f"{mine.time:.3f} s (tolerance {tolerance:.3f} s)")))
            continue
        pairs = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for k in range(pairs):
            mine, theirs = expected[i1 + k], got[j1 + k]
            detail = ""
            if mine.norm != mine.raw.decode("latin-1") or theirs.norm != theirs.raw.decode("latin-1"):
                detail = f"normalised: {escape(mine.norm.encode('latin-1', 'replace'))} / " \
                         f"{escape(theirs.norm.encode('latin-1', 'replace'))}"
            out.append(Difference("bytes", mine.line or fallback_line, mine.shown(), theirs.shown(), detail,
                                  key=mine.key))
        for mine in expected[i1 + pairs:i2]:
            out.append(Difference("missing", mine.line or fallback_line, mine.shown(), key=mine.key))
        for theirs in got[j1 + pairs:j2]:
            out.append(Difference("extra", fallback_line, got=theirs.shown(), key=theirs.key, detail=(
                f"{theirs.time:.3f} s after the host's line" if theirs.time is not None else "")))
    return out


def _order_pass(previous: list[Difference], current: list[Difference], report: CheckReport) -> list[Difference]:
    """A line missing from one exchange and extra in the next (or the other way) came in another
    order than in the log: one ``order`` difference instead of two."""
    carried: list[Difference] = []
    current_left = _paired_in_order(current)
    for old in previous:
        partner = None
        text = old.expected if old.kind == "missing" else old.got
        if old.kind in ("missing", "extra"):
            want_kind = "extra" if old.kind == "missing" else "missing"
            for new in current_left:
                if new.kind == want_kind and new.key == old.key:
                    partner = new
                    break
        if partner is None:
            carried.append(old)
            continue
        current_left.remove(partner)
        if old.kind == "missing":
            detail = "the emulator said it after the host's next line; the log has it before"
        else:
            detail = "the emulator said it before the host's next line; the log has it after"
        line = old.line if old.kind == "missing" else partner.line
        carried.append(Difference("order", line, text, detail=detail))
    for difference in carried:
        report.add(difference)
    return current_left


def _paired_in_order(differences: list[Difference]) -> list[Difference]:
    """Within one exchange: a line missing at one place and extra at another came in another
    order than in the log."""
    out = list(differences)
    for missing in [d for d in out if d.kind == "missing"]:
        extra = next((d for d in out if d.kind == "extra" and d.key == missing.key), None)
        if extra is None:
            continue
        out.remove(extra)
        out[out.index(missing)] = Difference("order", missing.line, missing.expected, key=missing.key, detail=(
            "the emulator said it in another place among the lines of this answer"))
    return out


def load_rules(paths: list[str | Path]) -> list[Rule]:
    from .sessionlog.rules import rules_from_file

    rules: list[Rule] = []
    for path in paths:
        rules.extend(rules_from_file(path))
    return rules


__all__ = ["CheckOptions", "CheckReport", "Difference", "ModuleMismatch", "RuleError", "check_log", "load_rules"]
