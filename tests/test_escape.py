"""+++ recognition with guard times (SSL note 1.4), without I/O: time is given explicitly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ecemu.core.escape import EscapeDetector

GUARD = 1.0


def test_plus_framed_by_silence_escapes_and_is_never_data():
    d = EscapeDetector(GUARD, now=0.0)
    assert d.feed(b"hello", 0.0) == b"hello"
    assert d.feed(b"+++", 1.0) == b""
    assert d.deadline() == 2.0
    assert d.poll(1.999) == (b"", False)
    assert d.poll(2.0) == (b"", True)


def test_plus_typed_one_by_one_within_the_guard_time_escapes():
    d = EscapeDetector(GUARD, now=0.0)
    assert d.feed(b"+", 5.0) + d.feed(b"+", 5.4) + d.feed(b"+", 5.9) == b""
    assert d.poll(6.9) == (b"", True)


def test_too_little_silence_before_makes_it_data():
    d = EscapeDetector(GUARD, now=0.0)
    assert d.feed(b"x", 0.5) == b"x"
    assert d.feed(b"+++", 1.2) == b"+++"


def test_a_byte_after_the_plus_within_the_guard_makes_them_data_in_order():
    d = EscapeDetector(GUARD, now=0.0)
    assert d.feed(b"+++", 2.0) == b""
    assert d.feed(b"a", 2.5) == b"+++a"
    assert d.poll(10.0) == (b"", False)


def test_plus_too_slow_becomes_data_when_its_window_passes():
    d = EscapeDetector(GUARD, now=0.0)
    assert d.feed(b"++", 2.0) == b""
    assert d.deadline() == 3.0
    assert d.poll(3.01) == (b"++", False)
    assert d.feed(b"x", 3.02) == b"x"


def test_four_plus_are_data():
    d = EscapeDetector(GUARD, now=0.0)
    assert d.feed(b"++++", 2.0) == b"++++"
    assert d.poll(5.0) == (b"", False)


def test_plus_inside_a_stream_is_data():
    d = EscapeDetector(GUARD, now=0.0)
    assert d.feed(b"a+++b", 2.0) == b"a+++b"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=0, max_size=6).map(lambda b: b.replace(b"\x00", b"+")),
                          st.floats(min_value=0.0, max_value=2.5)), max_size=25))
def test_every_byte_is_delivered_once_in_order_unless_it_was_the_escape(chunks):
    """Whatever the timing, the data out is the data in, less exactly the +++ of escapes."""
    d = EscapeDetector(GUARD, now=0.0)
    now = 0.0
    sent = bytearray()
    out = bytearray()
    escapes = 0
    for data, gap in chunks:
        target = now + gap
        while (deadline := d.deadline()) is not None and deadline <= target:
            released, escaped = d.poll(deadline)
            out += released
            escapes += escaped
        now = target
        sent += data
        out += d.feed(data, now)
    out += d.flush()
    assert len(out) == len(sent) - 3 * escapes
    # Removing escapes only ever removes "+++" runs: the output is the input with some of them cut.
    assert bytes(out).replace(b"+", b"") == bytes(sent).replace(b"+", b"")


class OneByteAtATime(EscapeDetector):
    """The detector's rules applied one byte at a time, with no shortcut: the reference."""

    def feed(self, data: bytes, now: float) -> bytes:
        out = bytearray(self._expire(now))
        for byte in data:
            if self._held:
                if byte == ord("+") and len(self._held) < 3 and now - self._held_since < self.guard:
                    self._held.append(byte)
                else:
                    out += self._held
                    self._held.clear()
                    out.append(byte)
            elif byte == ord("+") and now - self._last_byte >= self.guard:
                self._held.append(byte)
                self._held_since = now
            else:
                out.append(byte)
            self._last_byte = now
        return bytes(out)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=0, max_size=8).map(lambda b: b.replace(b"\x00", b"+")),
                          st.floats(min_value=0.0, max_value=2.5)), max_size=25),
       st.sampled_from([0.0, GUARD]))
def test_taking_the_rest_of_a_batch_at_once_changes_nothing(chunks, guard):
    """feed() takes the bytes after the first of a batch whole when none can start an escape: the
    same output, deadlines and escapes as the rules applied byte by byte."""
    fast, slow = EscapeDetector(guard, now=0.0), OneByteAtATime(guard, now=0.0)
    now = 0.0
    for data, gap in chunks:
        target = now + gap
        while (deadline := slow.deadline()) is not None and deadline <= target:
            assert fast.deadline() == deadline
            assert fast.poll(deadline) == slow.poll(deadline)
        now = target
        assert fast.feed(data, now) == slow.feed(data, now)
        assert fast.deadline() == slow.deadline()
    assert fast.flush() == slow.flush()
