"""Reading the logs users have: the session format, ecemu's own trace, plain transcripts as
firmware and terminal programs print them, and raw two-direction captures (``socat -x``/``-v``,
interceptty).

``open_log(path)`` finds the format from the first lines and gives a ``SessionLog``: its
``info`` (format, headers, warnings) and ``records()``, read as they are needed, so a log of any
size is read in bounded memory. A line a reader cannot place is never dropped silently: the
session format and the captures refuse it (``LogError`` with its line number), a transcript keeps
a warning with its line number (firmware logs mix the modem's lines with their own), and
``strict=True`` makes those errors too.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from datetime import date
from itertools import chain
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator, Protocol

from .format import (
    EVENT, HOST, MODULE, SIGNATURE, LineReader, LogError, Record, SessionInfo, parse_records, read_headers,
)

FORMATS = ("auto", "session", "trace", "transcript", "capture")
# Days are counted from 2000 so that a date and a time of day, as seconds, keep their microseconds.
_EPOCH = date(2000, 1, 1).toordinal()
SAMPLE_LINES = 2000  # lines read ahead to choose a format and a transcript's markers


@dataclass
class ReadOptions:
    """How to read a transcript or a capture when its own lines cannot say.

    ``host_marker``/``module_marker``: the text before what the host sent / the module said
    (``TX:``, ``>>``, ``Sent command:``); by default both are found in the log. ``host_line_end``:
    what ends the host's lines when the transcript does not show it (``\\r`` or ``\\r\\n``).
    ``capture_host``: the sign of the host's bytes in a capture (socat writes ``>`` for what
    goes from its first address to its second; interceptty ``<`` for what the program sent)."""

    host_marker: str | None = None
    module_marker: str | None = None
    host_line_end: bytes = b"\r"
    capture_host: str | None = None
    strict: bool = False
    format: str = "auto"  # the format when the caller of open_log names none


class _Reader(Protocol):
    def records(self, lines: Iterator[tuple[int, bytes]]) -> Iterator[Record]: ...


class SessionLog:
    """A log being read: ``info`` at once, ``records()`` as they are read."""

    def __init__(self, stream: IO[bytes], source: str = "", format: str = "auto",
                 options: ReadOptions | None = None, owns_stream: bool = False):
        self.options = options or ReadOptions()
        if format == "auto":
            format = self.options.format
        if format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
        self.stream = stream
        self.source = source
        self._owns = owns_stream
        self._lines = LineReader(stream, source)
        lines = iter(self._lines)
        sample: list[tuple[int, bytes]] = []
        for item in lines:
            sample.append(item)
            if len(sample) >= SAMPLE_LINES:
                break
        self._rest: Iterator[tuple[int, bytes]] = chain(sample, lines)
        chosen = format if format != "auto" else detect(sample)
        self.info = SessionInfo(chosen)
        self._reader: _Reader = _READERS[chosen](self, sample)
        self._started = False

    def records(self) -> Iterator[Record]:
        """The records, once (the log is read as they are taken)."""
        if self._started:
            raise RuntimeError("a SessionLog's records are read once")
        self._started = True
        try:
            yield from self._reader.records(self._rest)
            if self._lines.unterminated is not None:
                self.warn(self._lines.unterminated, "the last line has no line end: the log may be cut short")
        finally:
            self.close()

    def warn(self, line: int, message: str) -> None:
        if self.options.strict:
            raise LogError(line, message, self.source)
        self.info.warn(line, message)

    def close(self) -> None:
        if self._owns:
            self.stream.close()

    def __enter__(self) -> "SessionLog":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def open_log(path: str | Path, format: str = "auto", options: ReadOptions | None = None) -> SessionLog:
    """Open a log file (``-`` is standard input) and read what it is."""
    if str(path) == "-":
        import sys

        return SessionLog(sys.stdin.buffer, "<stdin>", format, options)
    stream = open(path, "rb")
    try:
        return SessionLog(stream, str(path), format, options, owns_stream=True)
    except BaseException:
        stream.close()
        raise


def validate(path: str | Path, options: ReadOptions | None = None) -> SessionInfo:
    """Read a whole log once, to refuse a bad one before it is used (LogError with the line);
    its info, warnings included. Bounded memory, whatever its size."""
    with open_log(path, options=options) as log:
        for _ in log.records():
            pass
        return log.info


def read_bytes(data: bytes, format: str = "auto", options: ReadOptions | None = None,
               source: str = "<log>") -> tuple[SessionInfo, list[Record]]:
    """A whole small log from memory: its info and records (tests, the corpus)."""
    log = SessionLog(io.BytesIO(data), source, format, options)
    records = list(log.records())
    return log.info, records


# --- choosing the format ----------------------------------------------------------------------

_SOCAT_HEADER = re.compile(r"([<>]) (\d{4})/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d)\.(\d+)\s+length=(\d+) from=(\d+) to=(\d+)\s*\Z")
# interceptty: one line per byte (``< 0x41 (A)``; ``> \t0x0d ([CR])`` for what the device sent), or
# with -e a line of bytes up to the line end (``< 41(A):54(T):0d([CR])``); with -T each buffer's
# first line starts with its time (``[12:34 56.123456]``) and its other lines with spaces.
_INTERCEPTTY = re.compile(r"(?:\[(\d\d):(\d\d) (\d\d)\.(\d{6})\]| {10,})?([<>]) \t?"
                          r"(?P<bytes>0x[0-9a-fA-F]{2}(?: \((?:\[[A-Z]+\]|' '|.)\))?|"
                          r"[0-9a-fA-F]{2}(?:\((?:\[[A-Z]+\]|' '|.)\))?(?::[0-9a-fA-F]{2}(?:\((?:\[[A-Z]+\]|' '|.)\))?)*)"
                          r"\s*\Z")
_INTERCEPTTY_BYTE = re.compile(r"(?:0x)?([0-9a-fA-F]{2})(?:\((?:\[[A-Z]+\]|' '|.)\)| \((?:\[[A-Z]+\]|' '|.)\))?")


def detect(sample: list[tuple[int, bytes]]) -> str:
    texts = [raw.decode("latin-1").strip() for _, raw in sample]
    texts = [text for text in texts if text]
    if not texts:
        return "transcript"
    if texts[0] == SIGNATURE:
        return "session"
    first = texts[0]
    if first.startswith("{"):
        try:
            entry = json.loads(first)
        except ValueError:
            entry = None
        if isinstance(entry, dict) and "kind" in entry and "t" in entry:
            return "trace"
    if _SOCAT_HEADER.match(first):
        return "capture"
    captured = sum(1 for text in texts[:200] if _INTERCEPTTY.match(text))
    if captured * 2 > min(len(texts), 200):
        return "capture"
    return "transcript"


# --- the session format -----------------------------------------------------------------------

class _SessionReader:
    def __init__(self, log: SessionLog, sample: list[tuple[int, bytes]]):
        self.log = log
        rest = iter(log._rest)
        self._after = read_headers(rest, log.info, log.source)
        log._rest = rest

    def records(self, lines: Iterator[tuple[int, bytes]]) -> Iterator[Record]:
        return parse_records(lines, self.log.source, self._after)


# --- ecemu's trace ----------------------------------------------------------------------------

class _TraceReader:
    """``ecemu run --trace``: ``host_in`` is what the host sent, ``host_out`` what the module
    said; the modem index is the channel; faults and the modem-control lines become events. The
    other kinds (commands, results, network, TLS, the line's rate) describe the same bytes and
    are skipped. Runs appended to one file (each starts with a ``session`` entry and its own
    clock) follow one another on one time line."""

    KNOWN = {"command", "result", "urc", "net_effect", "net_event", "tls", "received", "line_end", "unknown",
             "line_format"}

    def __init__(self, log: SessionLog, sample: list[tuple[int, bytes]]):
        self.log = log
        log.info.headers.update({"line-ends": "exact", "timing": "real"})

    def records(self, lines: Iterator[tuple[int, bytes]]) -> Iterator[Record]:
        previous = 0.0
        offset = 0.0  # where the current run's clock starts on the log's time line
        runs = 0
        for number, raw in lines:
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
            except ValueError:
                self.log.warn(number, "not a JSON line of a trace (cut short?)")
                continue
            if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str):
                self.log.warn(number, "a JSON line without a kind: not a trace entry")
                continue
            t = entry.get("t")
            if not isinstance(t, (int, float)) or isinstance(t, bool) or t != t or t < 0:
                self.log.warn(number, f"trace entry without a valid time: {t!r}")
                t = previous
            kind = entry["kind"]
            if kind == "session":
                runs += 1
                if runs > 1:
                    offset = previous
            previous = max(previous, offset + float(t))
            channel = entry.get("modem", 0) if isinstance(entry.get("modem"), int) else 0
            if kind in ("host_in", "host_out"):
                data = entry.get("data")
                if not isinstance(data, str):
                    self.log.warn(number, f"{kind} without data")
                    continue
                try:
                    payload = data.encode("latin-1")
                except UnicodeEncodeError:
                    self.log.warn(number, f"{kind} data is not bytes (a character above U+00FF)")
                    continue
                yield Record(previous, HOST if kind == "host_in" else MODULE, payload, channel, number)
            elif kind == "fault":
                detail = f"fault {entry.get('name', '')} {json.dumps(entry.get('args', {}), sort_keys=True)}"
                yield Record(previous, EVENT, detail.encode(), channel, number)
            elif kind == "line" and isinstance(entry.get("name"), str):
                state = "on" if entry.get("active") else "off"
                by = entry.get("by")
                detail = f"line {entry['name']} {state}" + (f" by {by}" if isinstance(by, str) and by else "")
                yield Record(previous, EVENT, detail.encode(), channel, number)
            elif kind not in self.KNOWN and kind != "session":
                self.log.warn(number, f"unknown trace entry kind {kind!r}")


# --- raw captures: socat -x / -v, interceptty -------------------------------------------------

_HEX_LINE = re.compile(r" ((?:[0-9a-f]{2} )*[0-9a-f]{2})(?: {2,}.*)?\Z")


class _CaptureReader:
    def __init__(self, log: SessionLog, sample: list[tuple[int, bytes]]):
        self.log = log
        texts = [raw.decode("latin-1").strip() for _, raw in sample if raw.strip()]
        self.socat = bool(texts) and _SOCAT_HEADER.match(texts[0]) is not None
        default_host = ">" if self.socat else "<"
        self.host_sign = log.options.capture_host or default_host
        if self.host_sign not in "<>" or len(self.host_sign) != 1:
            raise LogError(0, f"the capture's host sign is < or >, not {self.host_sign!r}")
        stamped = self.socat or (bool(texts) and texts[0].startswith("["))  # interceptty -T
        log.info.headers.update({"line-ends": "exact", "timing": "real" if stamped else "none",
                                 "capture": "socat" if self.socat else "interceptty"})

    def _direction(self, sign: str) -> str:
        return HOST if sign == self.host_sign else MODULE

    def records(self, lines: Iterator[tuple[int, bytes]]) -> Iterator[Record]:
        return self._socat(lines) if self.socat else self._interceptty(lines)

    def _socat(self, lines: Iterator[tuple[int, bytes]]) -> Iterator[Record]:
        start: float | None = None
        header: re.Match | None = None
        header_line = 0
        data = bytearray()
        text_lines: list[str] = []
        hex_seen = False

        def finish() -> Record | None:
            nonlocal header, data, text_lines, hex_seen
            if header is None:
                return None
            payload = bytes(data) if hex_seen else _socat_text("\n".join(text_lines))
            if not hex_seen and text_lines and len(payload) == int(header.group(9)) - 1:
                payload += b"\n"  # the text form ends a chunk that ends in LF with its line break
            length = int(header.group(9))
            if len(payload) != length:
                raise LogError(header_line, f"the chunk says length={length} but holds {len(payload)} bytes "
                                            f"(a capture cut short or edited?)", self.log.source)
            record = Record(round(stamp - (start or 0.0), 6), self._direction(header.group(1)), payload, 0, header_line)
            header, data, text_lines, hex_seen = None, bytearray(), [], False
            return record

        stamp = 0.0
        for number, raw in lines:
            text = raw.decode("latin-1")
            match = _SOCAT_HEADER.match(text)
            if match:
                record = finish()
                if record is not None:
                    yield record
                header, header_line = match, number
                stamp = _socat_time(match)
                if start is None:
                    start = stamp
                continue
            if text == "--":
                record = finish()
                if record is not None:
                    yield record
                continue
            if header is None:
                if text.strip():
                    self.log.warn(number, f"not part of a socat chunk: {text[:60]!r}")
                continue
            hexed = _HEX_LINE.match(text)
            if hexed and not text_lines:
                hex_seen = True
                data += bytes.fromhex(hexed.group(1))
            elif hex_seen:
                raise LogError(number, f"not a hex line inside a socat -x chunk: {text[:60]!r}", self.log.source)
            else:
                text_lines.append(text)
        record = finish()
        if record is not None:
            yield record

    def _interceptty(self, lines: Iterator[tuple[int, bytes]]) -> Iterator[Record]:
        direction: str | None = None
        data = bytearray()
        first_line = 0
        stamp: float | None = None
        start: float | None = None
        record_time: float | None = None
        for number, raw in lines:
            text = raw.decode("latin-1").rstrip()
            if not text.strip():
                continue
            match = _INTERCEPTTY.match(text)
            if match is None:
                raise LogError(number, f"not an interceptty line (< or >, then the byte as 0xNN): {text[:60]!r}",
                               self.log.source)
            if match.group(1) is not None:
                hours, minutes, seconds, micro = (int(match.group(i)) for i in range(1, 5))
                stamp = hours * 3600 + minutes * 60 + seconds + micro / 1e6
                if start is None:
                    start = stamp
            this = self._direction(match.group(5))
            new_buffer = match.group(1) is not None
            if data and (this != direction or new_buffer):
                assert direction is not None
                yield Record(record_time, direction, bytes(data), 0, first_line)
                data = bytearray()
            if not data:
                first_line = number
                record_time = None if stamp is None or start is None else round(stamp - start, 6)
            direction = this
            data += bytes(int(item.group(1), 16) for item in _INTERCEPTTY_BYTE.finditer(match.group("bytes")))
        if data and direction is not None:
            yield Record(record_time, direction, bytes(data), 0, first_line)


def _socat_time(match: re.Match) -> float:
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(2, 8))
    fraction = match.group(8)
    # socat 1.7 prints the microseconds padded to nine digits ("000849539" is .849539 s).
    if len(fraction) == 9 and fraction.startswith("000"):
        value = int(fraction) / 1e6
    else:
        value = int(fraction) / 10 ** len(fraction)
    days = date(year, month, day).toordinal() - _EPOCH
    return days * 86400 + hour * 3600 + minute * 60 + second + value


def _socat_text(text: str) -> bytes:
    """socat -v's text: a CR is shown as ``\\r`` and LF is the line break."""
    return text.replace("\\r", "\r").encode("latin-1")


# --- transcripts ------------------------------------------------------------------------------

FINAL_RESULTS = re.compile(r"(OK|ERROR|\+CME ERROR:.*|\+CMS ERROR:.*|NO CARRIER|NO ANSWER|NO DIALTONE|BUSY|"
                           r"CONNECT(?: \d+)?|SEND OK|SEND FAIL)\Z")
_AT_LINE = re.compile(r"(?:AT|at|At|aT)(?:[+&%$^#*]|[A-Za-z]|\d|\?|=|\Z)|A/\Z")
_URC_WORDS = re.compile(r"(RDY|NO CARRIER|POWERED DOWN|NORMAL POWER DOWN|\+[A-Z][A-Z0-9]*:?.*|\^[A-Z]+:.*|"
                        r"APP RDY|SMS DONE|PB DONE)\Z")

_CLOCK = r"(?:(?P<date>\d{4}[-/.]\d{1,2}[-/.]\d{1,2})[ T_])?(?P<clock>\d{1,2}:\d\d:\d\d(?:[.,:]\d{1,9})?)"
_STAMPS = [
    re.compile(r"\[" + _CLOCK + r"\]\s?"),                          # [14:13:00.296] (SSCOM), [2024-01-01 12:00:00]
    re.compile(r"\[(?P<zephyr>\d\d:\d\d:\d\d\.\d{3},\d{3})\]\s?"),  # [00:00:12.532,000] (Zephyr)
    re.compile(r"\[(?P<ticks>\d+(?:\.\d+)?)(?P<unit>ms|s)?\]\s?"),  # [836384183] ticks, [12.345], [1606200996742ms]
    re.compile(r"[IWEDV] \((?P<esp>\d+)\)\s"),                       # I (829) TAG: ... (ESP-IDF)
    re.compile(_CLOCK + r"\s+(?:-\s+)?"),                            # 12:00:00.123 ..., 2024-01-01 12:00:00,123 - ...
]
_TRAILING_TICKS = re.compile(r"\s\((?P<ms>\d+)\)\Z")  # "-> OK (20736)"

# Markers whose words say the direction; a tag before them (a logger's name and a colon) is skipped.
_WORD_MARKERS = [
    (HOST, r"(?:AT\s+)?(?:TX|Tx|tx)(?:\s*\(\s*\d+\s*\))?\s*[:=]|\[(?:TX|Tx|tx|SEND|Send)\]|"
           r"(?:SEND|Send|send|SENT|Sent|sent|Sending|sending|sendline|Write|write|Cmd|CMD|Command|command)"
           r"(?:\s+(?:command|cmd|data|line|AT))?\s*(?:\(\s*\d+\s*\))?\s*[:=]|发→◇|发送[:：]?|→◇"),
    (MODULE, r"(?:AT\s+)?(?:RX|Rx|rx)(?:\s*\(\s*\d+\s*\))?\s*[:=]|\[(?:RX|Rx|rx|RECV|Recv)\]|"
             r"(?:RECV|Recv|recv|recvline|Received|received|Receive|receive|Reply|reply|Response|response|Resp|resp|"
             r"Read|read)(?:\s+(?:response|data|line))?\s*(?:\(\s*\d+\s*\))?\s*[:=]|收←◆|接收[:：]?|←◆"),
]
_SYMBOLS = ["-->", "<--", ">>>", "<<<", ">>", "<<", "->", "<-", "=>", "<=", ">", "<"]
_TAG = r"(?:[\[A-Za-z_][\w.\-\[\]]*:\s+)?"
_SHOWN_ENDS = re.compile(r"\\r|\\n|<cr>|<lf>|<ln>|<CR>|<LF>|\[CR\]|\[LF\]|␍|␊")
_SHOWN_VALUES = {"\\r": b"\r", "\\n": b"\n", "<cr>": b"\r", "<lf>": b"\n", "<ln>": b"\n", "<CR>": b"\r",
                 "<LF>": b"\n", "[CR]": b"\r", "[LF]": b"\n", "␍": b"\r", "␊": b"\n"}
_BINARY = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x19\x1b-\x1f\x7f]")
_BOX = "\u25a1"  # SSCOM shows the line end it sent as a white square


@dataclass
class _Line:
    number: int
    time: float | None
    marker: str | None  # HOST, MODULE, or None (no marker)
    text: str
    symbol: str | None = None  # the arrow-like marker, before its direction is known
    original: str = ""  # the whole line, as the log has it (for warnings)


class _TranscriptReader:
    """A transcript: lines, each perhaps with a time and a direction marker.

    The markers are found in the log: words (``TX:``/``RX:``, ``Sent:``/``Received:``,
    ``sendline:``/``recvline:``, SSCOM's ``发→◇``/``收←◆``) say their direction; for arrows
    (``>``/``<``, ``-->``/``<--``, ``->``/``<-``, ``>>``/``<<``) the one whose lines are mostly AT
    commands is the host's. Without markers, a line starting with AT is the host's, and the
    same line again right after it is the module's echo. Lines after a marked line without a
    marker of their own continue the module's answer until its final result code.

    When the log shows CR and LF (``\\r\\n``, ``<cr><lf>``, ``[CR]``), the records are those bytes
    (``line-ends: exact``). Otherwise the line ends are put back by V.250's rule (``line-ends:
    inferred``): a host line ends with ``host_line_end``, its echo too; an answer's first line and
    every URC and final result code are framed CR LF ... CR LF, further lines of the same answer
    end with CR LF; blank lines carry nothing (some logs show them, some do not)."""

    def __init__(self, log: SessionLog, sample: list[tuple[int, bytes]]):
        self.log = log
        options = log.options
        self.symbol_directions: dict[str, str] = {}
        self.host_pattern = re.compile(re.escape(options.host_marker)) if options.host_marker else None
        self.module_pattern = re.compile(re.escape(options.module_marker)) if options.module_marker else None
        parsed = [self._parse(number, raw, probe=True) for number, raw in sample]
        lines = [line for line in parsed if line is not None]
        self.shown = any(_SHOWN_ENDS.search(line.text) for line in lines)
        self._choose_symbols(lines)
        self.marked = any(line.marker is not None or line.symbol in self.symbol_directions for line in lines) \
            or bool(self.host_pattern or self.module_pattern)
        timed = any(line.time is not None for line in lines)
        log.info.headers.update({
            "line-ends": "exact" if self.shown else "inferred",
            "timing": "real" if timed else "none",
            "host-line-end": "crlf" if options.host_line_end == b"\r\n" else "cr",
        })
        self.start: float | None = None
        self.last_time: float | None = None
        self.day_offset = 0.0

    # -- one line ------------------------------------------------------------------------

    def _parse(self, number: int, raw: bytes, probe: bool = False) -> _Line | None:
        binary = _BINARY.search(raw)
        if binary is not None:
            if probe:
                return None
            raise LogError(number, f"binary data (byte 0x{raw[binary.start()]:02x}) at column {binary.start() + 1}: "
                                   f"a transcript is text; record binary sessions with `ecemu record` or a hex "
                                   f"capture", self.log.source)
        text = _decode_text(raw).rstrip("\r")
        original = text.strip()
        time, text = self._time(text)
        marker: str | None = None
        symbol: str | None = None
        for direction, pattern in ((HOST, self.host_pattern), (MODULE, self.module_pattern)):
            if pattern is not None:
                match = re.match(_TAG + r"\s*" + pattern.pattern + r"\s?", text)
                if match:
                    return _Line(number, time, direction, text[match.end():], original=original)
        if self.host_pattern is None and self.module_pattern is None:
            for direction, words in _WORD_MARKERS:
                match = re.match(_TAG + r"\s*(?:" + words + r")\s?", text)
                if match:
                    return _Line(number, time, direction, text[match.end():], original=original)
            for candidate in _SYMBOLS:
                if text.startswith(candidate + " ") or text == candidate:
                    symbol = candidate
                    text = text[len(candidate) + 1:]
                    break
        return _Line(number, time, marker, text, symbol, original)

    def _time(self, text: str) -> tuple[float | None, str]:
        for pattern in _STAMPS:
            match = pattern.match(text)
            if match:
                return _stamp_seconds(match), text[match.end():]
        match = _TRAILING_TICKS.search(text)
        if match:
            return int(match.group("ms")) / 1000.0, text[:match.start()]
        return None, text

    def _choose_symbols(self, lines: list[_Line]) -> None:
        """Which arrow is the host's: the one whose lines are most often AT commands."""
        counts: dict[str, list[int]] = {}
        for line in lines:
            if line.symbol is not None:
                tally = counts.setdefault(line.symbol, [0, 0])
                tally[0] += 1
                tally[1] += bool(_AT_LINE.match(line.text.strip()))
        if len(counts) < 2:
            return  # one arrow alone (a prompt, a quote) is not a marker pair
        ranked = sorted(counts, key=lambda s: (counts[s][1] / counts[s][0], counts[s][0]), reverse=True)
        host = ranked[0]
        if counts[host][1] == 0:
            return
        self.symbol_directions[host] = HOST
        for other in ranked[1:]:
            self.symbol_directions[other] = MODULE

    def _relative(self, time: float | None) -> float | None:
        if time is None:
            return self.last_time
        if self.start is None:
            self.start = time
        value = round(time - self.start + self.day_offset, 6)
        if self.last_time is not None and value < self.last_time - 43200:
            self.day_offset += 86400  # a clock time that passed midnight
            value += 86400
        if self.last_time is not None and value < self.last_time:
            value = self.last_time  # times of a line that came late in the log: kept in order
        self.last_time = value
        return value

    # -- the records ---------------------------------------------------------------------

    def records(self, lines: Iterator[tuple[int, bytes]]) -> Iterator[Record]:
        state = _Framing(self.log.options.host_line_end)
        for number, raw in lines:
            line = self._parse(number, raw)
            assert line is not None
            if line.symbol is not None:
                if line.symbol in self.symbol_directions:
                    line.marker = self.symbol_directions[line.symbol]
                else:
                    line.text = line.symbol + (" " + line.text if line.text or raw.rstrip().endswith(b" ") else "")
            text = line.text
            if text.strip() == _BOX:
                continue  # SSCOM's picture of the line end it sent
            text = text.rstrip(_BOX)
            if self.shown:
                yield from self._shown(line, text, state)
            else:
                yield from self._inferred(line, text, state)

    def _shown(self, line: _Line, text: str, state: "_Framing") -> Iterator[Record]:
        direction = line.marker
        if direction is None:
            if self.marked:
                # Every chunk of a log that shows line ends has its marker; a line without one
                # is the firmware's own printing.
                if text.strip():
                    self.log.warn(line.number, f"a line without a direction: {line.original[:80]!r}")
                return
            direction = HOST if _AT_LINE.match(text.strip()) else MODULE
        data = _shown_bytes(text)
        if not data:
            return
        state.last_direction = direction
        yield Record(self._relative(line.time), direction, data, 0, line.number)

    def _inferred(self, line: _Line, text: str, state: "_Framing") -> Iterator[Record]:
        stripped = text.strip()
        if not stripped:
            return  # blank lines carry nothing when line ends are put back by rule
        direction = line.marker
        if direction is None:
            direction = self._unmarked_direction(stripped, state)
            if direction is None:
                self.log.warn(line.number, f"not a line of the modem's dialogue: {line.original[:80]!r}")
                return
        time = self._relative(line.time)
        if direction == HOST:
            if state.data_mode:
                # Data after a prompt or CONNECT: the host's bytes as the log shows them, no line
                # end (a transcript does not say whether one was sent).
                state.data_mode = False
                yield Record(time, HOST, stripped.encode("utf-8"), 0, line.number)
                return
            yield Record(time, HOST, stripped.encode("utf-8") + state.host_line_end, 0, line.number)
            state.host_said(stripped)
            return
        yield from (Record(time, MODULE, data, 0, line.number) for data in state.module_said(stripped))

    def _unmarked_direction(self, stripped: str, state: "_Framing") -> str | None:
        if self.marked:
            # Unmarked lines continue the module's answer; after its final result they are the
            # firmware's own printing, unless they are URCs.
            if state.in_response and state.last_direction == MODULE:
                return MODULE
            return MODULE if _URC_WORDS.match(stripped) else None
        if state.echo_pending == stripped:
            return MODULE
        if state.data_mode:
            return HOST
        if _AT_LINE.match(stripped):
            return HOST
        if state.in_response or _URC_WORDS.match(stripped) or FINAL_RESULTS.match(stripped):
            return MODULE
        return None


class _Framing:
    """V.250's framing, put back line by line (see _TranscriptReader)."""

    def __init__(self, host_line_end: bytes):
        self.host_line_end = host_line_end
        self.in_response = False
        self.answer_lines = 0  # information lines of the current answer so far
        self.echo_pending: str | None = None
        self.data_mode = False
        self.last_direction: str | None = None

    def host_said(self, text: str) -> None:
        self.in_response = True
        self.answer_lines = 0
        self.echo_pending = text
        self.data_mode = False
        self.last_direction = HOST

    def module_said(self, text: str) -> Iterable[bytes]:
        self.last_direction = MODULE
        payload = text.encode("utf-8")
        if self.echo_pending is not None and text == self.echo_pending:
            self.echo_pending = None
            return [payload + self.host_line_end]
        self.echo_pending = None
        if text in (">", "> "):
            self.data_mode = True
            return [b"\r\n> "]
        if FINAL_RESULTS.match(text):
            self.in_response = False
            self.answer_lines = 0
            # CONNECT opens the data the host sends next (AT+QFUPL, AT+QHTTPURL...): raw bytes.
            self.data_mode = text.startswith("CONNECT")
            return [b"\r\n" + payload + b"\r\n"]
        if self.in_response:
            self.answer_lines += 1
            if self.answer_lines > 1:
                return [payload + b"\r\n"]
        return [b"\r\n" + payload + b"\r\n"]


def _decode_text(raw: bytes) -> str:
    for encoding in ("utf-8", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def _shown_bytes(text: str) -> bytes:
    out = bytearray()
    position = 0
    for match in _SHOWN_ENDS.finditer(text):
        out += text[position:match.start()].encode("utf-8")
        out += _SHOWN_VALUES[match.group(0)]
        position = match.end()
    out += text[position:].encode("utf-8")
    return bytes(out)


def _stamp_seconds(match: re.Match) -> float:
    groups = match.groupdict()
    if groups.get("clock"):
        parts = re.split(r"[:.,]", groups["clock"])
        hours, minutes, seconds = int(parts[0]), int(parts[1]), int(parts[2])
        fraction = parts[3] if len(parts) > 3 else "0"
        value = hours * 3600 + minutes * 60 + seconds + int(fraction) / 10 ** len(fraction)
        if groups.get("date"):
            year, month, day = (int(x) for x in re.split(r"[-/.]", groups["date"]))
            try:
                value += (date(year, month, day).toordinal() - _EPOCH) * 86400
            except ValueError:
                pass
        return value
    if groups.get("zephyr"):
        clock, micro = groups["zephyr"].split(",")
        hours, minutes, rest = clock.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(rest) + int(micro) / 1e6
    if groups.get("esp"):
        return int(groups["esp"]) / 1000.0
    ticks = groups["ticks"]
    if groups.get("unit") == "s" or "." in ticks:
        return float(ticks)
    return int(ticks) / 1000.0


_READERS: dict[str, Callable[[SessionLog, list[tuple[int, bytes]]], _Reader]] = {
    "session": _SessionReader,
    "trace": _TraceReader,
    "capture": _CaptureReader,
    "transcript": _TranscriptReader,
}
