"""Recognising ``+++`` in transparent mode (SSL note 1.4).

``+++`` leaves transparent mode only when framed by silence: no byte for the guard time before
the first ``+``, the three ``+`` within the guard time, and no byte for the guard time after the
third. Anything else is data. ``+`` characters that might begin an escape are held back until it
is clear which they are, so that an escape never reaches the server; held bytes are released in
order, ahead of anything that follows them.
"""

from __future__ import annotations

PLUS = 0x2B


class EscapeDetector:
    def __init__(self, guard: float, now: float):
        self.guard = guard
        self._last_byte = now  # transparent mode starts with silence
        self._held = bytearray()
        self._held_since = 0.0

    def feed(self, data: bytes, now: float) -> bytes:
        """The bytes that are data for certain; ``+`` that may be an escape are held."""
        out = bytearray(self._expire(now))
        for index, byte in enumerate(data):
            if self._held:
                if byte == PLUS and len(self._held) < 3 and now - self._held_since < self.guard:
                    self._held.append(byte)
                else:
                    out += self._held
                    self._held.clear()
                    out.append(byte)
            elif byte == PLUS and now - self._last_byte >= self.guard:
                self._held.append(byte)
                self._held_since = now
            else:
                out.append(byte)
            self._last_byte = now
            if not self._held and self.guard > 0:
                # Nothing held, and every later byte of this batch follows one that came at the
                # same instant, less than the guard time ago: none can start an escape. The rest is
                # data as it is, taken at once (a loop per byte would bound transparent mode's
                # throughput at a few MB/s).
                out += data[index + 1:]
                break
        return bytes(out)

    def deadline(self) -> float | None:
        """When ``poll`` must next be called: the escape completes or the held bytes become data.
        At that instant ``poll`` always settles them, so a caller never waits on the same time twice.
        The three ``+`` must come within [first, first + guard)."""
        if not self._held:
            return None
        if len(self._held) == 3:
            return self._last_byte + self.guard
        return self._held_since + self.guard

    def poll(self, now: float) -> tuple[bytes, bool]:
        """(bytes that turned out to be data, True when ``+++`` and its silence are complete)."""
        # Compared with the very sum deadline() returns: ``now - last >= guard`` can be false at
        # ``now == last + guard`` in floating point, and the caller would poll at that time forever.
        if len(self._held) == 3 and now >= self._last_byte + self.guard:
            self._held.clear()
            return b"", True
        return self._expire(now), False

    def _expire(self, now: float) -> bytes:
        if self._held and len(self._held) < 3 and now >= self._held_since + self.guard:  # as in poll
            held = bytes(self._held)
            self._held.clear()
            return held
        return b""

    def flush(self) -> bytes:
        """Give up whatever is held, as data (the connection is going away)."""
        held = bytes(self._held)
        self._held.clear()
        return held
