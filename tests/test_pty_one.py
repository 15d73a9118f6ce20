"""Without a link the port is one pty for all hosts (``Emulator(link=False)``, ``ecemu run`` without
``--link``). Whether a host holds it is told by the pty's master hanging up when the last descriptor
of its slave closes, not by counting inotify's opens and closes: the kernel folds an event into the
one before it when both are the same and the first is unread, so two opens (or two closes) back to
back can arrive as one."""

from __future__ import annotations

import errno
import os
import termios
import threading
import time

import pytest

from ecemu.api import Emulator
from tests.processes import read_until
from tests.test_pty_link import OWN_ANSWER, WAIT, answer_to_a_new_host, ask, open_port, upload_left_waiting

# A command and all a host gets back for it with echo on (the default): the echo, then the result
# with its line ends (V.250; the AT+CSQ line as the module prints it, REFERENCE.md).
CSQ_ANSWER = b"AT+CSQ\r\r\n+CSQ: 20,99\r\n\r\nOK\r\n"


def until(emulator: Emulator, condition) -> None:
    """Ask the emulator's loop until ``condition(runner)`` holds (each ask is a turn of its loop)."""
    deadline = time.monotonic() + WAIT
    while not emulator.call(condition):
        assert time.monotonic() < deadline, "the emulator never got there"


@pytest.fixture
def emulator(tmp_path):
    with Emulator(link=False, ufs=tmp_path / "ufs", boot="at-start") as running:
        fd = open_port(running.port)  # the boot URCs wait in the pty for the first host: read them
        try:
            read_until(fd, b"+QIND: PB DONE\r\n", timeout=WAIT)
        finally:
            os.close(fd)
        until(running, lambda runner: not runner.has_host)
        yield running


def test_of_two_descriptors_opened_together_the_one_that_stays_gets_the_answer(emulator):
    """``cat /dev/pts/N & printf 'AT+CSQ\\r' > /dev/pts/N``: two opens before the emulator looks
    give one inotify event; the writer closing is not the host leaving, and the reader gets the
    answer to what the writer wrote, byte for byte, and keeps a working port."""

    def open_twice(runner) -> tuple[int, int]:  # on the emulator's thread: it cannot look between
        return open_port(emulator.port), open_port(emulator.port)

    reader, writer = emulator.call(open_twice)
    try:
        os.write(writer, b"AT+CSQ\r")
        os.close(writer)
        writer = -1
        assert read_until(reader, b"OK\r\n", timeout=WAIT) == CSQ_ANSWER
        assert ask(reader) == OWN_ANSWER
    finally:
        for fd in (reader, writer):
            if fd >= 0:
                os.close(fd)


def test_two_descriptors_closed_together_are_a_host_leaving(emulator):
    """A host holding the port twice closes both at once: one folded close event, and still the
    module sees the host leave: the file upload it left waiting for data ends, and the next host
    starts a session of its own, answered in command mode."""
    first = upload_left_waiting(emulator.port)
    second = open_port(emulator.port)
    emulator.call(lambda runner: (os.close(first), os.close(second)))
    # Seen before the next host opens: a close folded into another, then an open, both before
    # the emulator looks, cannot be told from a second descriptor closing (robustness.md).
    until(emulator, lambda runner: not runner.has_host)
    assert answer_to_a_new_host(emulator.port) == OWN_ANSWER


def test_a_host_whose_whole_session_falls_between_two_looks_is_a_session(emulator):
    """A host that opens the port, writes and closes it before the emulator looks: what it wrote
    is executed (echo turned off), its answer goes to nobody, and the next host gets only its own."""
    taken = emulator.call(lambda runner: runner.bytes_from_host)

    def come_and_go(runner) -> None:  # on the emulator's thread: it cannot look meanwhile
        fd = open_port(emulator.port)
        os.write(fd, b"ATE0\r")
        os.close(fd)

    emulator.call(come_and_go)
    until(emulator, lambda runner: runner.bytes_from_host == taken + 5 and not runner.has_host)
    # No echo: ATE0 was executed; nothing else waited.
    assert answer_to_a_new_host(emulator.port) == b"\r\nOK\r\n"


def test_a_host_leaving_and_the_next_opening_before_the_module_looks(emulator):
    """The next host opens the pty the one before has just closed, before the emulator looks:
    still a host leaving (the upload the first left waiting for data ends) and a new one coming."""
    first = upload_left_waiting(emulator.port)

    def leave_and_come(runner) -> int:  # on the emulator's thread: it cannot look between
        os.close(first)
        return open_port(emulator.port)

    nxt = emulator.call(leave_and_come)
    try:
        assert ask(nxt) == OWN_ANSWER
    finally:
        os.close(nxt)


def loop_cpu_over_a_window(emulator: Emulator) -> float:
    """CPU seconds the emulator's loop thread takes over one second with nothing to do."""
    loop_thread = time.pthread_getcpuclockid(emulator.call(lambda runner: threading.get_ident()))
    before = time.clock_gettime(loop_thread)
    threading.Event().wait(1.0)  # a window to measure the loop's CPU in, not a wait for anything
    return time.clock_gettime(loop_thread) - before


def test_output_before_the_first_host_waits_for_it_with_the_loop_idle(tmp_path):
    """Before the first host opens the pty nobody holds its slave, and a master nobody holds reads
    as writable even when full: more output than the pty takes waits in the emulator, whose loop
    stays idle meanwhile, and the first host gets all of it after the boot URCs, in order."""
    urcs = [b"+QIURC: \"recv\",%d,%s" % (i, b"x" * 80) for i in range(400)]  # 36 kB, twice what a pty takes
    with Emulator(link=False, ufs=tmp_path / "ufs", boot="at-start") as emulator:
        emulator.wait_for_boot()

        def say(runner) -> None:
            for urc in urcs:
                runner.modem.emit_urc(urc.decode())
            runner.pump()

        emulator.call(say)
        assert loop_cpu_over_a_window(emulator) < 0.1  # spinning, it takes all a core gives
        fd = open_port(emulator.port)
        try:
            got = read_until(fd, urcs[-1] + b"\r\n", timeout=WAIT)
        finally:
            os.close(fd)
    assert got.startswith(b"\r\nRDY\r\n")
    assert got.endswith(b"".join(b"\r\n" + urc + b"\r\n" for urc in urcs))


def test_the_loop_stays_idle_once_the_last_host_has_left(emulator):
    """Nobody holds the pty after its host left: its master hangs up and would read as ready for
    ever, yet the loop does not spin, and the next host is answered."""
    fd = open_port(emulator.port)
    assert ask(fd) == OWN_ANSWER
    os.close(fd)
    until(emulator, lambda runner: not runner.has_host)
    assert loop_cpu_over_a_window(emulator) < 0.1
    assert answer_to_a_new_host(emulator.port) == OWN_ANSWER


def test_each_new_host_finds_the_pty_raw(emulator):
    """The pty keeps its raw settings while nobody holds its slave: each host that opens it finds
    no line editing, echo, signals, CR/NL translation or flow control (cfmakeraw, termios(3))."""
    for _ in range(3):
        fd = open_port(emulator.port)
        try:
            iflag, oflag, _cflag, lflag, *_ = termios.tcgetattr(fd)
        finally:
            os.close(fd)
        assert iflag & (termios.ICRNL | termios.INLCR | termios.IGNCR | termios.IXON | termios.ISTRIP) == 0
        assert oflag & termios.OPOST == 0
        assert lflag & (termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN) == 0
        until(emulator, lambda runner: not runner.has_host)


def test_without_inotify_a_host_is_seen_leaving_once_it_has_written(tmp_path, monkeypatch):
    """Where opens cannot be watched a host's first byte counts as its open; from then on the pty's
    hangup tells when it leaves: the upload it left waiting for data ends, the next host is answered
    in command mode, and the loop stays idle in between."""
    import ecemu.shell.opens as opens

    def no_instance(loop):
        raise OSError(errno.EMFILE, "inotify_init1")  # the user's instances are all taken

    monkeypatch.setattr(opens, "_SharedInstance", no_instance)
    with Emulator(link=False, ufs=tmp_path / "ufs", boot="at-start") as emulator:
        emulator.wait_for_boot()
        first = open_port(emulator.port)
        try:
            os.write(first, b'AT+QFUPL="left.bin",100\r')
            assert read_until(first, b"CONNECT\r\n", timeout=WAIT).endswith(b"CONNECT\r\n")
        finally:
            os.close(first)
        until(emulator, lambda runner: not runner.has_host)
        assert loop_cpu_over_a_window(emulator) < 0.1
        assert answer_to_a_new_host(emulator.port) == OWN_ANSWER


def test_a_host_opening_in_the_instant_of_a_flush_is_seen(emulator, monkeypatch):
    """The emulator drops what a host that left had not read by opening the pty's slave for a
    moment; a host that opens the port in that moment has its open folded into the emulator's own
    (the same event, unread): it is still seen, and answered."""
    from ecemu.shell.pty_port import PtyPort

    came: list[int] = []

    def flush_while_a_host_opens(port) -> bool:  # PtyPort.discard_unread, a host opening midway
        own = os.open(port.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            if not came:
                came.append(open_port(port.path))
            termios.tcflush(own, termios.TCIFLUSH)
        finally:
            os.close(own)
        return True

    monkeypatch.setattr(PtyPort, "discard_unread", flush_while_a_host_opens)
    first = open_port(emulator.port)
    try:
        assert ask(first) == OWN_ANSWER
    finally:
        os.close(first)
    until(emulator, lambda runner: bool(came))
    try:
        assert ask(came[0]) == OWN_ANSWER
    finally:
        os.close(came[0])
