"""The session format: one line per chunk of bytes, written by ``ecemu record`` and read by
``ecemu replay`` and ``ecemu check``.

    # ecemu-session 1
    # module: EC800M-CN
    # firmware: EC800MCNGAR06A05M08
    # source: https://github.com/owner/repo/blob/0123abc/notes.md
    0.000000 < \\r\\nRDY\\r\\n
    1.250000 > AT+QIOPEN=1,0,"TCP","\\{host}",\\{port},0,1\\r
    1.250412 < AT+QIOPEN=1,0,"TCP","\\{host}",\\{port},0,1\\r\\r\\nOK\\r\\n
    1.402000 < \\r\\n+QIOPEN: 0,0\\r\\n
    7.000000 ! host-closed

The first line names the format. ``# key: value`` lines before the first record are the
session's headers; any other line starting with ``#`` is a comment, and blank lines are skipped.
A record is ``TIME DIRECTION DATA``, separated by single spaces:

- TIME: seconds since the session started (a decimal number), or ``-`` when the log has no times;
- DIRECTION: ``>`` host to module, ``<`` module to host, ``!`` an event (DATA is its name and
  details: ``host-opened``, ``host-closed``, ``device-closed``, ``device-opened``, ``dropped``,
  and from an ecemu trace ``fault NAME ARGS`` and ``line NAME on|off by SIDE``);
  a channel number may follow the sign (``<1``: modem 1 of ``ecemu run --count``, or a CMUX
  channel); channel 0 is written without one;
- DATA: the bytes, printable ASCII as is, ``\\\\`` for a backslash, ``\\r``, ``\\n``, ``\\t``, and
  ``\\xNN`` for every other byte (a space at the end of the data too, so that editors that strip
  trailing blanks keep it). Text a person adds may be UTF-8: its bytes are taken as they are.
  ``\\{name}`` is a placeholder: in a host record it matches whatever the host sends there (the
  first time a name appears; later it must be the same bytes again), and in a module record it
  stands for what the host sent for that name. ``\\{*}`` matches anything and binds nothing.

Headers the tools read: ``module`` (a profile name or a model, e.g. ``EC800M-CN`` or ``EG800K``),
``firmware``, ``source``, ``line-ends`` (``exact``: the records are the bytes on the wire;
``inferred``: the log showed lines, and CR/LF were put back by rule, so only the lines compare),
``timing`` (``real`` or ``none``), ``host-line-end`` (``cr`` or ``crlf``), ``normalise``
(``PATTERN => REPLACEMENT``, one rule per header line, for ``ecemu check``), ``omitted`` (lines a
transcript leaves out, comma-separated, e.g. ``OK`` when only the answers were pasted: ``ecemu
check`` leaves them out on both sides).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import IO, Iterator

SIGNATURE = "# ecemu-session 1"
HOST = ">"
MODULE = "<"
EVENT = "!"
DIRECTIONS = (HOST, MODULE, EVENT)
# The longest line a reader takes: a record holds one read of the port (at most 64 KiB, four
# times that escaped); anything longer is not a session line, and is refused without keeping it.
MAX_LINE = 1024 * 1024
ANY = "*"  # the placeholder that binds nothing


class LogError(ValueError):
    """A log that cannot be read: where (line number, 0 when not tied to a line) and why."""

    def __init__(self, line: int, message: str, source: str = ""):
        self.line = line
        self.message = message
        self.source = source
        where = f"{source}:" if source else ""
        super().__init__(f"{where}{line}: {message}" if line else f"{where} {message}".strip())


@dataclass(frozen=True)
class Record:
    """One chunk of a session: ``time`` in seconds since the start (None without times),
    ``direction`` HOST, MODULE or EVENT, the bytes (``parts`` keeps the placeholders: bytes and
    names, in order; ``data`` is the bytes alone), the channel and the source line."""

    time: float | None
    direction: str
    data: bytes
    channel: int = 0
    line: int = 0
    parts: tuple[bytes | str, ...] = ()

    @property
    def has_placeholders(self) -> bool:
        return any(isinstance(part, str) for part in self.parts)

    def shown(self) -> str:
        """The data as the session format writes it (placeholders included)."""
        parts = self.parts or (self.data,)
        return "".join(escape(part) if isinstance(part, bytes) else "\\{" + part + "}" for part in parts)


@dataclass
class SessionInfo:
    """What is known about a log before its records: its format, headers and warnings (lines
    a reader could not place; each with its line number, kept up to a bound and counted)."""

    format: str
    headers: dict[str, str] = field(default_factory=dict)
    normalise: list[str] = field(default_factory=list)
    warnings: list[tuple[int, str]] = field(default_factory=list)
    warning_count: int = 0

    WARNING_LIMIT = 200

    def warn(self, line: int, message: str) -> None:
        self.warning_count += 1
        if len(self.warnings) < self.WARNING_LIMIT:
            self.warnings.append((line, message))

    @property
    def line_ends(self) -> str:
        return self.headers.get("line-ends", "exact")

    @property
    def timed(self) -> bool:
        return self.headers.get("timing", "real") != "none"


# --- escaping -----------------------------------------------------------------------------

_NAMED = {0x5C: "\\\\", 0x0D: "\\r", 0x0A: "\\n", 0x09: "\\t"}
_ESCAPES = {i: _NAMED.get(i, chr(i) if 0x20 <= i < 0x7F else f"\\x{i:02x}") for i in range(256)}


def escape(data: bytes) -> str:
    """Bytes as the session format writes them (ASCII only)."""
    text = "".join(_ESCAPES[b] for b in data)
    if text.endswith(" "):
        stripped = text.rstrip(" ")
        text = stripped + "\\x20" * (len(text) - len(stripped))
    return text


_TOKEN = re.compile(r"\\(?:x([0-9a-fA-F]{2})|\{([A-Za-z0-9_*-]*)\}|(.)|$)")
_SIMPLE = {"\\": b"\\", "r": b"\r", "n": b"\n", "t": b"\t"}


def unescape(text: str, line: int = 0, placeholders: bool = True, column: int = 0) -> tuple[bytes | str, ...]:
    """The parts of an escaped DATA field: bytes, and placeholder names where ``\\{name}``
    stands. Raises LogError for a bad escape or a control character (binary data) in the text;
    columns are counted from ``column``, where the field starts in its line."""
    parts: list[bytes | str] = []
    chunk = bytearray()
    position = 0
    for match in _TOKEN.finditer(text):
        if match.start() > position:
            chunk += _text_bytes(text[position:match.start()], line, column + position)
        hex_digits, name, other = match.group(1), match.group(2), match.group(3)
        if hex_digits is not None:
            chunk.append(int(hex_digits, 16))
        elif name is not None:
            if not placeholders:
                raise LogError(line, f"placeholder \\{{{name}}} where none is allowed")
            if not name:
                raise LogError(line, "empty placeholder \\{}: give it a name, or \\{*}")
            if chunk:
                parts.append(bytes(chunk))
                chunk.clear()
            parts.append(name)
        elif other is not None and other in _SIMPLE:
            chunk += _SIMPLE[other]
        elif other is not None:
            raise LogError(line, f"unknown escape \\{other} at column {column + match.start() + 1}; "
                                 f"a backslash is written \\\\")
        else:
            raise LogError(line, "a backslash at the end of the line (truncated escape?)")
        position = match.end()
    if position < len(text):
        chunk += _text_bytes(text[position:], line, column + position)
    if chunk or not parts:
        parts.append(bytes(chunk))
    return tuple(parts)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _text_bytes(text: str, line: int, offset: int) -> bytes:
    control = _CONTROL.search(text)
    if control is not None:
        raise LogError(line, f"binary data (byte 0x{ord(control.group()):02x}) at column "
                             f"{offset + control.start() + 1}: bytes outside printable text are written \\xNN")
    return text.encode("utf-8", "surrogateescape")


# --- writing ------------------------------------------------------------------------------

class SessionWriter:
    """Writes a session, one whole line at a time (flushed, so a reader or a crash never sees
    half a record)."""

    def __init__(self, out: IO[bytes], headers: dict[str, str] | None = None, flush: bool = True):
        self.out = out
        self._flush = flush
        lines = [SIGNATURE]
        for key, value in (headers or {}).items():
            for item in value.splitlines() or [""]:
                lines.append(f"# {key}: {item}")
        self._write("\n".join(lines) + "\n")

    def record(self, time: float | None, direction: str, data: bytes, channel: int = 0) -> None:
        self._write(format_record(time, direction, data, channel))

    def write(self, record: Record) -> None:
        self._write(f"{_time(record.time)} {record.direction}{_channel(record.channel)} {record.shown()}\n")

    def comment(self, text: str) -> None:
        self._write("".join(f"# {line}\n" for line in text.splitlines()))

    def _write(self, text: str) -> None:
        self.out.write(text.encode("ascii", "backslashreplace"))
        if self._flush:
            self.out.flush()


def format_record(time: float | None, direction: str, data: bytes, channel: int = 0) -> str:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
    return f"{_time(time)} {direction}{_channel(channel)} {escape(data)}\n"


def _time(time: float | None) -> str:
    return "-" if time is None else f"{time:.6f}"


def _channel(channel: int) -> str:
    return str(channel) if channel else ""


# --- reading ------------------------------------------------------------------------------

class LineReader:
    """(number, line without its line end) for each line of a byte stream, read in bounded pieces:
    a line longer than MAX_LINE is refused with its number, without holding it. ``unterminated``
    is the number of a last line that had no newline (a log cut off while it was written?)."""

    def __init__(self, stream: IO[bytes], source: str = ""):
        self.stream = stream
        self.source = source
        self.unterminated: int | None = None
        self.number = 0

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        readline = self.stream.readline
        while True:
            line = readline(MAX_LINE + 1)
            if not line:
                return
            self.number += 1
            if line.endswith(b"\n"):
                line = line[:-1]
                if line.endswith(b"\r"):
                    line = line[:-1]
            elif len(line) > MAX_LINE:
                raise LogError(self.number, f"line longer than {MAX_LINE // 1024} KiB: not a log line "
                                            f"(a binary file, or a capture without line breaks?)", self.source)
            else:
                self.unterminated = self.number
            yield self.number, line


_RECORD = re.compile(r"(?P<time>-|\d+(?:\.\d+)?) (?P<dir>[<>!])(?P<channel>\d*) (?P<data>.*)\Z", re.S)
_HEADER = re.compile(r"#\s*([A-Za-z][A-Za-z0-9_-]*)\s*:\s?(.*)\Z")


def read_headers(lines: Iterator[tuple[int, bytes]], info: SessionInfo, source: str = "") -> list[tuple[int, bytes]]:
    """Consume the signature and header lines; returns the lines read past them (at most one)."""
    for number, raw in lines:
        text = _decode(raw, number, source)
        if number == 1:
            if text.strip() != SIGNATURE:
                raise LogError(1, f"not a session log (the first line must be {SIGNATURE!r})", source)
            continue
        match = _HEADER.match(text)
        if match:
            key, value = match.group(1).lower(), match.group(2).rstrip()
            if key == "normalise" or key == "normalize":
                info.normalise.append(value)
            elif key in info.headers:
                info.headers[key] += "\n" + value
            else:
                info.headers[key] = value
            continue
        return [(number, raw)]
    return []


def parse_records(lines: Iterator[tuple[int, bytes]], source: str = "", first: list[tuple[int, bytes]] | None = None,
                  truncated_last: bool = True) -> Iterator[Record]:
    """The records of a session's lines (after the headers)."""
    previous: float | None = None
    pending = list(first or [])

    def all_lines() -> Iterator[tuple[int, bytes]]:
        yield from pending
        yield from lines

    for number, raw in all_lines():
        text = _decode(raw, number, source)
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        match = _RECORD.match(text)
        if match is None:
            raise LogError(number, _why_not_a_record(text), source)
        stamp = match.group("time")
        time = None if stamp == "-" else float(stamp)
        if time is not None and previous is not None and time < previous:
            raise LogError(number, f"time {stamp} goes back (the line before says {previous:.6f})", source)
        if time is not None:
            previous = time
        direction = match.group("dir")
        try:
            parts = unescape(match.group("data"), number, placeholders=direction != EVENT, column=match.start("data"))
        except LogError as exc:
            raise LogError(number, exc.message, source) from None
        data = b"".join(part for part in parts if isinstance(part, bytes))
        channel = int(match.group("channel") or 0)
        yield Record(time, direction, data, channel, number, parts)


def _why_not_a_record(text: str) -> str:
    shown = text if len(text) <= 60 else text[:57] + "..."
    fields = text.split(" ", 2)
    if fields and not re.fullmatch(r"-|\d+(?:\.\d+)?", fields[0]):
        return f"not a record: {shown!r} (a record is TIME DIRECTION DATA; TIME is seconds or -)"
    if len(fields) < 2 or not re.fullmatch(r"[<>!]\d*", fields[1]):
        return f"not a record: {shown!r} (the direction is >, < or !, then one space and the data)"
    return f"not a record: {shown!r} (TIME DIRECTION DATA, separated by single spaces)"


def _decode(raw: bytes, number: int, source: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LogError(number, f"binary data (byte 0x{raw[exc.start]:02x}) at column {exc.start + 1}: "
                               f"not UTF-8 text; bytes are written \\xNN", source) from None


def write_session(records, headers: dict[str, str] | None = None) -> bytes:
    """A whole session as bytes (tests and small conversions)."""
    out = io.BytesIO()
    writer = SessionWriter(out, headers, flush=False)
    for record in records:
        writer.write(record)
    return out.getvalue()
