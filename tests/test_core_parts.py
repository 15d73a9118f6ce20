"""The parts the modem is made of, each on its own: the line editor, the timer heap, URC holding and
framing, data entry, the command set."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ecemu.core.data_entry import DataEntry
from ecemu.core.line_editor import REJECTED, LineEditor
from ecemu.core.modem import HostMode
from ecemu.core.registry import CommandFailed, CommandSet, Family, Reply, command
from ecemu.core.results import (
    CME,
    ERROR,
    HTTP,
    OK,
    PLAIN,
    QIGETERROR,
    CmeCode,
    FileError,
    HttpError,
    QiError,
    Refusal,
)
from ecemu.core.timers import TIMERS_COMPACT_MIN, TimerHeap
from ecemu.core.urcs import HeldUrcs, frame_block, frame_result

# --- the line editor -------------------------------------------------------------------------------


def settings(echo: bool = True, s3: int = 13, s5: int = 8) -> SimpleNamespace:
    return SimpleNamespace(echo=echo, s_registers={3: s3, 5: s5})


class Editor:
    def __init__(self, line_length: int = 10):
        self.echo = bytearray()
        self.seen: list[tuple[str, dict]] = []
        self.editor = LineEditor(line_length, self.echo.extend, lambda kind, **d: self.seen.append((kind, d)))

    def edit(self, data: bytes, echo: bool = True) -> tuple[bytes, object]:
        """What is left of ``data`` and what the editor made of it."""
        buffer = bytearray(data)
        consumed, edited = self.editor.edit(buffer, settings(echo), HostMode.COMMAND)
        return bytes(buffer[consumed:]), edited


def test_a_line_ends_at_cr_and_what_follows_waits():
    e = Editor()
    assert e.edit(b"AT+X\rAT") == (b"AT", b"AT+X")
    assert bytes(e.echo) == b"AT+X\r"
    assert e.editor.line_end_open  # the LF of CR LF may still come


def test_the_lf_of_cr_lf_in_the_same_write_belongs_to_the_line_and_is_taken_after_it_runs():
    e = Editor()
    assert e.edit(b"at\r\nAT") == (b"\nAT", b"at")  # the line runs before the LF is taken
    assert bytes(e.echo) == b"at\r" and e.editor.line_end_open
    data = bytearray(b"\nAT")
    e.editor.take_line_end_lf(data, HostMode.DATA, in_command_mode=False, echo=False)
    assert data == b"AT" and bytes(e.echo) == b"at\r"  # the line's end even in a data mode
    assert e.seen == [("line_end", {"data": b"\r\n", "mode": "data"})]


def test_a_line_split_anywhere_is_the_same_line():
    e = Editor()
    assert e.edit(b"A") == (b"", None)
    assert e.edit(b"T+") == (b"", None)
    assert e.edit(b"Y\r") == (b"", b"AT+Y")


def test_backspace_and_delete_erase_echo_off_echoes_nothing():
    e = Editor()
    assert e.edit(b"ATXY\x08\x7fE0\r", echo=False) == (b"", b"ATE0")
    assert e.echo == b""


def test_a_over_slash_repeats_the_last_line_or_is_rejected():
    e = Editor()
    assert e.edit(b"A/") == (b"", REJECTED)
    e.edit(b"AT+Z\r")
    assert e.edit(b"a/") == (b"", b"AT+Z")


def test_empty_too_long_and_not_at_lines():
    e = Editor(line_length=4)
    assert e.edit(b"  \r") == (b"", None)  # no answer at all
    assert e.edit(b"XYZ\r") == (b"", REJECTED)
    assert e.edit(b"AT" + b"1" * 5 + b"\r") == (b"", REJECTED)  # AT plus 4 characters at most
    assert e.edit(b"AT1234\r") == (b"", b"AT1234")


def test_an_endless_line_is_taken_run_by_run():
    e = Editor()
    assert e.edit(b"A" * 100_000) == (b"", None)
    assert e.edit(b"\r") == (b"", REJECTED)


def test_an_lf_after_a_cr_in_a_later_write_ends_the_line_of_a_cr_lf_host_only():
    crlf_host = Editor()
    crlf_host.edit(b"AT\r\n")  # learnt: this host ends its lines with CR LF
    crlf_host.edit(b"AT+QSSLSEND=0\r")
    data = bytearray(b"\nhello")
    crlf_host.editor.take_line_end_lf(data, HostMode.DATA, in_command_mode=False, echo=True)
    assert data == b"hello" and crlf_host.echo.endswith(b"\r\n")
    cr_host = Editor()
    cr_host.edit(b"AT+QSSLSEND=0\r")
    data = bytearray(b"\nhello")
    cr_host.editor.take_line_end_lf(data, HostMode.DATA, in_command_mode=False, echo=True)
    assert data == b"\nhello"  # a CR-only host's LF after the prompt is data
    cr_host.editor.take_line_end_lf(data, HostMode.COMMAND, in_command_mode=True, echo=False)
    assert data == b"hello"  # in command mode it is always the line's end


@pytest.mark.parametrize(("data", "s3", "extent"), [
    (b"AT\rATI\r", 13, 3),  # up to the first CR (V.250 6.2.1: S3 ends a line)
    (b"AT\r\nATI\r\n", 13, 4),  # the LF of CR LF with it
    (b"AT+QSSLSEND=0,5", 13, 15),  # no line end yet: all of it
    (b"A/AT\r", 13, 2),  # A/ repeats the last line at its slash (V.250 5.2.4)
    (b"\nAT\r", 13, 4),  # a stray LF before a line belongs to it
    (b"AT\rAT!AT!", ord("!"), 6),  # ATS3=33: the line ends at the new S3 only
])
def test_the_editor_says_how_much_input_reaches_the_end_of_the_first_line(data, s3, extent):
    assert Editor().editor.line_extent(data, settings(s3=s3)) == extent


# --- the timer heap --------------------------------------------------------------------------------


def test_timers_run_in_deadline_order_ties_in_the_order_set():
    heap = TimerHeap()
    ran: list[str] = []
    for name, at in (("b", 2.0), ("a", 1.0), ("c", 2.0)):
        heap.call_at(at, lambda name=name: ran.append(name))
    assert heap.next_deadline() == 1.0
    while (timer := heap.pop_due(2.0)) is not None:
        timer.callback()
    assert ran == ["a", "b", "c"] and heap.next_deadline() is None


def test_cancelled_timers_never_run_and_never_pile_up():
    heap = TimerHeap()
    live = heap.call_at(1000.0, lambda: None)
    for n in range(10 * TIMERS_COMPACT_MIN):
        heap.call_at(float(n), lambda: None).cancel()
    assert len(heap) <= 2 * TIMERS_COMPACT_MIN + 1
    assert heap.pop_due(999.0) is None and heap.next_deadline() == 1000.0
    assert heap.pop_due(1000.0) is live


# --- URC holding and framing -------------------------------------------------------------------


def framing(verbose: bool = True, quiet: bool = False) -> SimpleNamespace:
    return SimpleNamespace(verbose=verbose, quiet=quiet, s_registers={3: 13, 4: 10})


def test_framing_follows_atv_and_atq():
    assert frame_block(framing(), [b"+X: 1", b"+X: 2"]) == b"\r\n+X: 1\r\n+X: 2\r\n"
    assert frame_block(framing(verbose=False), [b"+X: 1"]) == b"+X: 1\r\n"
    assert frame_result(framing(), OK) == b"\r\nOK\r\n"
    assert frame_result(framing(verbose=False), ERROR) == b"4\r"
    assert frame_result(framing(quiet=True), OK) == b""


def test_held_urcs_come_out_in_order_once():
    held = HeldUrcs()
    assert not held
    held.hold(b"1")
    held.hold(b"2")
    out = bytearray()
    held.release(out.extend)
    held.release(out.extend)
    assert out == b"12" and not held


# --- data entry --------------------------------------------------------------------------------------


class Sink:
    def __init__(self, size: int, deadline: float | None = 5.0):
        self.size, self._deadline, self.data = size, deadline, bytearray()

    def feed(self, modem, data: bytes):
        take = data[: self.size - len(self.data)]
        self.data += take
        self._deadline = 10.0 + len(self.data)
        return len(take), (Reply() if len(self.data) == self.size else None)

    def deadline(self):
        return self._deadline

    def expire(self, modem):
        return CommandFailed(QiError.TIMEOUT)


def test_data_entry_gives_the_sink_its_bytes_echoes_them_and_moves_its_timer():
    timers = TimerHeap()
    expired: list[bool] = []
    entry = DataEntry(Sink(3), True, timers.call_at, lambda: expired.append(True))
    assert timers.next_deadline() == 5.0
    echo = bytearray()
    data = bytearray(b"ab")
    assert entry.feed(None, data, True, echo.extend) is None and data == b""
    assert timers.next_deadline() == 12.0  # the sink's deadline moved with its data
    data = bytearray(b"cAT")
    assert entry.feed(None, data, True, echo.extend) == Reply() and data == b"AT"
    assert echo == b"abc" and timers.next_deadline() is None and expired == []


def test_data_entry_expires_with_the_sinks_outcome():
    timers = TimerHeap()
    outcomes: list[object] = []
    entry = DataEntry(Sink(3, deadline=1.0), False, timers.call_at, lambda: outcomes.append(entry.expire(None)))
    assert timers.pop_due(0.9) is None
    timer = timers.pop_due(1.0)
    assert timer is not None
    timer.callback()
    (failure,) = outcomes
    assert isinstance(failure, CommandFailed) and failure.code is QiError.TIMEOUT
    assert timers.next_deadline() is None


# --- codes and the command set -----------------------------------------------------------------------


def test_one_code_per_failure_shown_the_familys_way():
    store = SimpleNamespace(last_qi_error=0)
    assert QIGETERROR.failed(store, QiError.DNS_FAILED) is ERROR and store.last_qi_error == 565
    assert QIGETERROR.failed(store, Refusal.PARAMETER) is ERROR and store.last_qi_error == 552
    assert QIGETERROR.failed(store, Refusal.FORM) is ERROR and store.last_qi_error == 552
    assert QIGETERROR.failed(store, Refusal.INTERNAL) is ERROR and store.last_qi_error == 550
    QIGETERROR.succeeded(store)
    assert store.last_qi_error == 0
    assert CME.failed(store, Refusal.PARAMETER).as_final(1).text == "+CME ERROR: 50"
    assert CME.failed(store, FileError.FILE_NOT_FOUND).as_final(1).text == "+CME ERROR: 405"
    assert CME.failed(store, CmeCode.NO_NETWORK_SERVICE).as_final(2).text == "+CME ERROR: no network service"
    assert CME.failed(store, Refusal.FORM) is ERROR and store.last_qi_error == 0
    assert CME.failed(store, Refusal.PLAIN) is ERROR
    # HTTP(S): the note's 7xx as numbers whatever AT+CMEE=2 asks; a parameter refused is 730
    assert HTTP.failed(store, Refusal.PARAMETER).as_final(2).text == "+CME ERROR: 730"
    assert HTTP.failed(store, HttpError.SOCKET_CONNECT_ERROR).as_final(2).text == "+CME ERROR: 716"
    assert HTTP.failed(store, FileError.INVALID_FILE_NAME).as_final(2).text == "+CME ERROR: invalid file name"
    assert HTTP.failed(store, Refusal.FORM) is ERROR
    # MQTT: plain ERROR whatever went wrong
    assert all(PLAIN.failed(store, refusal) is ERROR for refusal in Refusal)


def test_the_command_set_takes_what_the_listed_modules_declare():
    module = SimpleNamespace(__name__="tests.test_core_parts_family")

    def handler(modem, call):
        return Reply()

    handler.__module__ = module.__name__
    command("+ZA", "+ZB", family="zz")(handler)
    module.ZZ = Family("zz", errors=QIGETERROR)
    commands = CommandSet.collect([module])  # type: ignore[list-item]
    assert sorted(commands.commands) == ["+ZA", "+ZB"]
    assert commands.family("zz").errors is QIGETERROR
    assert commands.family("undeclared").errors is CME
    with pytest.raises(ValueError, match="declared twice"):
        CommandSet.collect([module, module])  # type: ignore[list-item]


# --- the command line runner ---------------------------------------------------------------------


def test_a_line_seen_before_answers_as_the_first_time_and_the_table_of_parsed_lines_stays_small():
    from ecemu.core.command_line import PARSED_LINES_KEPT
    from tests.harness import CoreHarness

    h = CoreHarness()
    first = [h.command(line) for line in ("ATS0=2", "ATS0?", "AT+CMEE=2;+CMEE?", "AT+QSSLSTATE=1", "AT+BOGUS")]
    assert first[1] == b"\r\n002\r\n\r\nOK\r\n" and first[4] == b"\r\nERROR\r\n"
    for line in (f"ATS0={n % 256}" for n in range(PARSED_LINES_KEPT * 3)):
        assert h.command(line) == b"\r\nOK\r\n"
        assert h.modem.line.parsed_lines_kept <= PARSED_LINES_KEPT
    assert h.command("ATS0=2") == b"\r\nOK\r\n"
    assert [h.command(line) for line in ("ATS0=2", "ATS0?", "AT+CMEE=2;+CMEE?", "AT+QSSLSTATE=1", "AT+BOGUS")] == first
