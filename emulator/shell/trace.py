"""The session trace: one JSON line per event, and its rendering as a timed transcript.

Bytes are stored as latin-1 text, so JSON's escapes keep every byte and the file reads as text.
Each entry has ``t`` (seconds since start), ``modem`` (its index with ``--count``) and ``kind``:
``host_in``/``host_out`` (``data``), ``command`` (``line``), ``result`` (``text``), ``urc``
(``lines``), ``tls`` and ``socket`` (``client``, ``event``, ``detail``: a TLS connection's
events, a plain one's), ``received`` (``client``, ``size``),
``net_effect``/``net_event`` (``effect``/``event`` and the record's fields), ``fault`` (``name``,
``args``), ``line_format`` (``baud``, ``framing``), ``line`` (``name``, ``active``, ``by``:
``module`` or ``host``), ``urc_dropped`` (``lines``, ``dropped``: so far; the host did not read and
the held URCs were full), ``datagram_dropped`` (``client``, ``size``, ``dropped``: so far; the
receive buffer was full); under AT+CMUX ``mux_*`` entries and a ``channel`` on the others (the DLC),
for data calls ``ppp_*`` entries (``ARROWS`` names them all). ``ecemu.coverage`` sums a trace up,
``ecemu.trace_html`` draws it.

Every run of a modem starts with a ``session`` entry (``t`` 0, ``started``: the wall-clock time,
UTC, ISO 8601; ``pid``), so that sessions appended to one file stay apart: each one's ``t``
counts from its own start. ``--trace -`` (``STDOUT``) writes no JSON: the transcript ``ecemu
trace`` would print, live, one line per entry, on standard output.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from .private_files import open_private_file

STDOUT = "-"  # the trace "file" that is the live transcript on standard output


class Tracer:
    def __init__(self, path: Path, start: float, modem_index: int = 0):
        self.live = str(path) == STDOUT
        # Private (docs/reference/robustness.md "Private files"): no link followed, 0600, never another user's file.
        self._file: IO[str] | None = None if self.live else open_private_file(path, "a", encoding="utf-8")
        self.start = start
        self.modem_index = modem_index
        self.record(start, "session", started=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                    pid=os.getpid())

    def record(self, now: float, kind: str, **details: Any) -> None:
        entry = {"t": round(now - self.start, 6), "modem": self.modem_index, "kind": kind}
        for key, value in details.items():
            if isinstance(value, (bytes, bytearray)):
                value = bytes(value).decode("latin-1")
            elif isinstance(value, list):
                value = [v.decode("latin-1") if isinstance(v, (bytes, bytearray)) else v for v in value]
            entry[key] = value
        if self.live:
            self._print(render_entry(entry))
            return
        assert self._file is not None
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()

    def _print(self, line: str) -> None:
        if not self.live:
            return
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except (OSError, ValueError):
            self.live = False  # the reader went away (a closed pipe): the run goes on without it

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def visible(text: str) -> str:
    """Bytes (as latin-1 text) as a person reads them: printable as is, CR and LF as ``\\r`` and
    ``\\n``, Ctrl+Z (the end of AT+QSSLSEND data) as ``^Z``, other bytes as ``\\xNN``."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\r":
            out.append("\\r")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\\":
            out.append("\\\\")
        elif code == 0x1A:
            out.append("^Z")
        elif 32 <= code < 127:
            out.append(ch)
        else:
            out.append(f"\\x{code:02x}")
    return "".join(out)


ARROWS = {
    "host_in": "host → module",
    "host_out": "module → host",
    "command": "command",
    "result": "result",
    "urc": "URC",
    "net_effect": "network ←",
    "net_event": "network →",
    "fault": "FAULT",
    "tls": "TLS",
    "socket": "socket",  # a plain (TCP or UDP) connection's event
    "received": "received",
    "line_end": "line end",  # where the module took the LF of a CR LF line end
    "unknown": "not implemented",  # a command the emulator does not have (answered ERROR)
    "mux": "CMUX",  # the multiplexer started or ended
    "mux_frame": "CMUX frame",  # dlci, type, direction, size (or discarded: why)
    "mux_channel": "CMUX channel",  # a DLC opened or closed
    "mux_control": "CMUX control",  # a control channel message (MSC, FCon ...)
    "ppp_call": "PPP call",  # a data call dialled or ended
    "ppp_phase": "PPP phase",
    "ppp_state": "PPP state",  # LCP or IPCP: its automaton's state and the event
    "ppp_ip": "PPP IPCP",  # the address and DNS servers the host was given
    "ppp_flow": "PPP flow",  # a TCP or UDP flow of the host: opened, ended, reset
    "ppp_dns": "PPP DNS",  # a query of the host answered by the module's resolver
    "line_format": "line format",  # AT+IPR / AT+ICF took effect on the port
    "line": "control line",  # RI, DCD, CTS, DSR (the module's) or DTR, RTS (the host's) changed
    "urc_dropped": "URC dropped",
    "datagram_dropped": "dropped",
}


def read_entries(lines: Iterable[str]) -> Iterator[dict]:
    """The trace's entries; a line that is not a JSON object with a kind (a truncated last line,
    a file that is not a trace) is skipped, and ``t`` is a number (0 when it is not)."""
    for raw in lines:
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str):
            continue
        t = entry.get("t")
        if not isinstance(t, (int, float)) or isinstance(t, bool) or t != t or abs(t) == float("inf"):
            entry["t"] = 0.0
        yield entry


def render(lines: Iterable[str]) -> Iterable[str]:
    """The trace as ``seconds  modem  what  detail`` lines, a rule at the start of each session."""
    for entry in read_entries(lines):
        yield render_entry(entry)


def session_start(entry: dict) -> str:
    """The wall-clock start of a ``session`` entry, as written (text), or ``?``."""
    started = entry.get("started")
    return started if isinstance(started, str) else "?"


def render_entry(entry: dict) -> str:
    """One entry (``read_entries``) as one line of the transcript."""
    entry = dict(entry)
    kind = entry.pop("kind")
    t = entry.pop("t")
    modem = entry.pop("modem", 0)
    if kind == "session":
        return f"---------- #{modem}  session started {visible(session_start(entry))}  pid={visible(str(entry.get('pid', '?')))}"
    label = ARROWS.get(kind, kind)
    if "data" in entry:
        detail = visible(str(entry.pop("data")))
    elif "line" in entry:
        detail = visible(str(entry.pop("line")))
    elif "lines" in entry:
        entry_lines = entry.pop("lines")
        if not isinstance(entry_lines, list):
            entry_lines = [entry_lines]
        detail = " | ".join(visible(str(line)) for line in entry_lines)
    elif "text" in entry:
        detail = visible(str(entry.pop("text")))
    elif "event" in entry:
        detail = " ".join(str(part) for part in (entry.pop("event"), entry.pop("detail", "")) if part)
    else:
        detail = ""
    rest = " ".join(f"{k}={v}" for k, v in entry.items())
    return f"{t:10.3f}  #{modem}  {label:<14} {detail}{('  ' + rest) if rest else ''}".rstrip()
