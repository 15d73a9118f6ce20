"""The session trace: one JSON line per event, and its rendering as a timed transcript.

Bytes are stored as latin-1 text, so JSON's escapes keep every byte and the file reads as text.
Each entry has ``t`` (seconds since start), ``modem`` (its index with ``--count``) and ``kind``:
``host_in``/``host_out`` (``data``), ``command`` (``line``), ``result`` (``text``), ``urc``
(``lines``), ``tls`` (``client``, ``event``, ``detail``), ``received`` (``client``, ``size``),
``net_effect``/``net_event`` (``effect``/``event`` and the record's fields), ``fault`` (``name``,
``args``), ``urc_dropped`` (``lines``, ``dropped``: so far; the host did not read and the held URCs
were full), ``datagram_dropped`` (``client``, ``size``, ``dropped``: so far; the receive buffer was
full). ``ecemu.coverage`` sums a trace up, ``ecemu.trace_html`` draws it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from ecemu.shell.private_files import open_private_file


class Tracer:
    def __init__(self, path: Path, start: float, modem_index: int = 0):
        # Private (README "Private files"): no link followed, 0600, never another user's file.
        self._file: IO[str] = open_private_file(path, "a", encoding="utf-8")
        self.start = start
        self.modem_index = modem_index

    def record(self, now: float, kind: str, **details: Any) -> None:
        entry = {"t": round(now - self.start, 6), "modem": self.modem_index, "kind": kind}
        for key, value in details.items():
            if isinstance(value, (bytes, bytearray)):
                value = bytes(value).decode("latin-1")
            elif isinstance(value, list):
                value = [v.decode("latin-1") if isinstance(v, (bytes, bytearray)) else v for v in value]
            entry[key] = value
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()

    def close(self) -> None:
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
    "received": "received",
    "line_end": "line end",  # where the module took the LF of a CR LF line end
    "unknown": "not implemented",  # a command the emulator does not have (answered ERROR)
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
    """The trace as ``seconds  modem  what  detail`` lines."""
    for entry in read_entries(lines):
        kind = entry.pop("kind")
        t = entry.pop("t")
        modem = entry.pop("modem", 0)
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
        yield f"{t:10.3f}  #{modem}  {label:<14} {detail}{('  ' + rest) if rest else ''}".rstrip()
