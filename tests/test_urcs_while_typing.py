"""URCs and a command line the host has begun but not ended (REFERENCE.md "Line ends").

A URC never lands inside the echo of a half-typed line: it waits for that line's answer, as it
waits for any command's, unless the line stands still for a second (then the host has left it,
and the URCs go). Expectations are written out byte for byte here.
"""

from __future__ import annotations

from tests.harness import CoreHarness
from tests.wire import OK

PDPDEACT = b'\r\n+QIURC: "pdpdeact",1\r\n'


def urc(h: CoreHarness) -> bytes:
    h.modem.emit_urc('+QIURC: "pdpdeact",1')
    return h.take_output()


def test_boot_urcs_wait_for_the_line_the_host_began_after_rdy():
    """The host's first write, "A", comes right after RDY; +CPIN: READY and +QUSIM: 1 fall due
    before the rest of its line ("T+CGMI" CR LF) and come after that line's answer."""
    h = CoreHarness(boot=False)
    assert h.advance(0.0) == b"\r\nRDY\r\n"
    assert h.send(b"A") == b"A"
    assert h.advance(0.1) == b""  # +CPIN: READY (50 ms) and +QUSIM: 1 (60 ms) wait
    assert h.send(b"T+CGMI\r\n") == (b"T+CGMI\r\r\nQuectel\r\n" + OK
                                     + b"\r\n+CPIN: READY\r\n\r\n+QUSIM: 1\r\n")


def test_a_urc_waits_for_the_answer_of_a_line_written_in_pieces():
    # TinyGSM writes "AT", then the command, then CR LF, each on its own.
    h = CoreHarness(echo=True)
    assert h.send(b"AT") == b"AT"
    assert urc(h) == b""
    assert h.send(b"+CGMI") == b"+CGMI"
    assert h.advance(0.5) == b""
    assert h.send(b"\r\n") == b"\r\r\nQuectel\r\n" + OK + PDPDEACT
    assert urc(h) == PDPDEACT  # nothing typed: at once


def test_a_line_left_standing_lets_the_urcs_go_after_a_second():
    h = CoreHarness(echo=True)
    assert h.send(b"AT+CG") == b"AT+CG"
    assert urc(h) == b""
    assert h.advance(0.9) == b""
    assert h.send(b"M") == b"M"  # the host types on: the second counts again from here
    assert h.advance(0.9) == b""
    assert h.advance(0.2) == PDPDEACT
    assert urc(h) == PDPDEACT  # the line still stands: later URCs go at once
    assert h.send(b"I\r") == b"I\r\r\nQuectel\r\n" + OK


def test_a_line_erased_again_holds_nothing_back():
    h = CoreHarness(echo=True)
    assert h.send(b"AT") == b"AT"
    assert urc(h) == b""
    assert h.send(b"\x08\x08") == b"\x08\x08" + PDPDEACT


def test_echo_off_the_urc_still_follows_the_answer():
    h = CoreHarness()  # ATE0
    assert h.send(b"AT+CS") == b""
    assert urc(h) == b""
    assert h.send(b"Q\r") == b"\r\n+CSQ: 20,99\r\n" + OK + PDPDEACT
