"""Serial-side misbehaviour on cue: responses delayed, split into chunks, a URC pushed into the
middle of a response. Sits between the modem's output and the host link."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FINAL_RESULT = re.compile(rb"\r\n(OK|ERROR|\+CME ERROR: [^\r]*|SEND OK|SEND FAIL|CONNECT|NO CARRIER)\r\n")


@dataclass
class OutputShaper:
    delay: float = 0.0  # seconds every byte is held
    chunk_size: int = 0  # 0: no splitting
    chunk_gap: float = 0.02
    urc_to_insert: bytes | None = None  # goes between the information text and the final result
    burst_before_final: tuple[bytes, int] | None = None  # (URC, copies) before the next final result
    _next_free: float = field(default=0.0, repr=False)

    @property
    def active(self) -> bool:
        return bool(self.delay or self.chunk_size or self.urc_to_insert or self.burst_before_final)

    def shape(self, data: bytes, now: float) -> list[tuple[float, bytes]]:
        """When (absolute) each piece of ``data`` may go to the host, in order."""
        if self.urc_to_insert is not None:
            # The first response with information text gets the URC after that text, just
            # before its final result: where a driver waiting for OK meets it unprepared.
            boundary = data.find(b"\r\n\r\n")
            if boundary >= 0:
                cut = boundary + 2
                data = data[:cut] + b"\r\n" + self.urc_to_insert + b"\r\n" + data[cut:]
                self.urc_to_insert = None
        if self.burst_before_final is not None:
            # Where a driver waiting for SEND OK (or OK) meets a crowd of URCs first.
            final = FINAL_RESULT.search(data)
            if final is not None:
                text, copies = self.burst_before_final
                data = data[:final.start()] + (b"\r\n" + text + b"\r\n") * copies + data[final.start():]
                self.burst_before_final = None
        pieces = [data]
        if self.chunk_size:
            pieces = [data[i:i + self.chunk_size] for i in range(0, len(data), self.chunk_size)]
        out = []
        when = max(now + self.delay, self._next_free)
        for piece in pieces:
            out.append((when, piece))
            self._next_free = when
            if self.chunk_size:
                when += self.chunk_gap
                self._next_free = when
        return out
