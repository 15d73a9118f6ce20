"""Matching what a host sends against the host records of a log, placeholders included.

The host's bytes arrive in whatever pieces it writes them; the log's host records are matched
as one stream, record after record. A placeholder (``\\{name}`` in the session format) takes the
bytes up to the next byte the log has after it (``"`` in ``"\\{host}"``, ``,`` in ``\\{port},``,
CR at the end of a line), at most PLACEHOLDER_LIMIT of them. A name seen before must come again
with the same bytes; ``\\{*}`` binds nothing. Module records use the bound values in their place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .format import ANY, Record

PLACEHOLDER_LIMIT = 4096
_CR = 0x0D


@dataclass
class Divergence:
    """Where the host departed from the log: the record expected (None when the log has no
    more host records), the bytes of it already matched, and what came instead."""

    expected: Record | None
    matched: bytes
    came: bytes
    reason: str = ""

    def report(self, source: str = "") -> str:
        where = f" ({source})" if source else ""
        if self.expected is None:
            return (f"the host sent more than the log holds{where}: the log has no more host lines.\n"
                    f"  came:     {_shown(self.came)}")
        record = self.expected
        lines = [f"the host departed from the log at line {record.line}{where}:",
                 f"  expected: {record.shown()}"]
        if self.matched:
            lines.append(f"  matched:  {_shown(self.matched)}")
        lines.append(f"  came:     {_shown(self.matched + self.came)}")
        if self.reason:
            lines.append(f"  ({self.reason})")
        return "\n".join(lines)


def _shown(data: bytes) -> str:
    from .format import escape

    text = escape(data)
    return text if len(text) <= 200 else text[:197] + "..."


@dataclass
class HostMatcher:
    """Matches host bytes against one host record at a time (``begin``), keeping the bindings
    of placeholders across records."""

    bindings: dict[str, bytes] = field(default_factory=dict)
    record: Record | None = None
    _parts: list[bytes | str] = field(default_factory=list)
    _index: int = 0
    _offset: int = 0
    _capture: bytearray = field(default_factory=bytearray)
    _matched: bytearray = field(default_factory=bytearray)
    next_literal: int | None = None  # the first byte of the next record, for a placeholder at the end

    def begin(self, record: Record, next_record: Record | None = None) -> None:
        self.record = record
        self._parts = [self.bindings.get(part, part) if isinstance(part, str) and part != ANY else part
                       for part in (record.parts or (record.data,))]
        self._parts = [part for part in self._parts if part != b""]
        self._index = 0
        self._offset = 0
        self._capture.clear()
        self._matched.clear()
        self.next_literal = _first_literal(next_record)

    @property
    def done(self) -> bool:
        return self._index >= len(self._parts)

    def feed(self, data: bytes) -> tuple[int, Divergence | None]:
        """Take bytes of ``data`` for the current record; returns (bytes taken, divergence).
        The record is complete when ``done``; bytes not taken belong to the next record."""
        taken = 0
        size = len(data)
        while taken < size and not self.done:
            part = self._parts[self._index]
            if isinstance(part, bytes):
                want = part[self._offset:]
                piece = data[taken:taken + len(want)]
                if want[:len(piece)] != piece:
                    common = 0
                    while common < len(piece) and piece[common] == want[common]:
                        common += 1
                    self._matched += piece[:common]
                    return taken + common, Divergence(self.record, bytes(self._matched), data[taken + common:])
                self._matched += piece
                taken += len(piece)
                self._offset += len(piece)
                if self._offset == len(part):
                    self._index += 1
                    self._offset = 0
                continue
            # A placeholder: bytes up to the terminator.
            terminator = self._terminator()
            stop = data.find(bytes([terminator]), taken) if terminator is not None else -1
            end = stop if stop >= 0 else size
            self._capture += data[taken:end]
            self._matched += data[taken:end]
            taken = end
            if len(self._capture) > PLACEHOLDER_LIMIT:
                return taken, Divergence(self.record, bytes(self._matched), b"",
                                         f"\\{{{part}}} took more than {PLACEHOLDER_LIMIT} bytes")
            if stop >= 0 or terminator is None:
                if part != ANY:
                    self.bindings[part] = bytes(self._capture)
                self._capture.clear()
                self._index += 1
                if terminator is None:
                    break
        return taken, None

    def _terminator(self) -> int | None:
        for part in self._parts[self._index + 1:]:
            if isinstance(part, bytes) and part:
                return part[0]
        if self.next_literal is not None:
            return self.next_literal
        return _CR

    def substitute(self, record: Record) -> bytes:
        """A module record's bytes, with the values the host sent for its placeholders."""
        if not record.has_placeholders:
            return record.data
        return b"".join(part if isinstance(part, bytes) else self.bindings.get(part, b"") for part in record.parts)


def _first_literal(record: Record | None) -> int | None:
    if record is None:
        return None
    parts = record.parts or (record.data,)
    first = parts[0] if parts else b""
    if isinstance(first, bytes) and first:
        return first[0]
    return None
