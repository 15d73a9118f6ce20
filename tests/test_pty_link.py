"""Behind ``--link`` every host that opens the link gets a pty of its own: a host that leaves takes
what it had not read with it, and the next host, however soon it opens, gets only its own answers."""

from __future__ import annotations

import errno
import os
import pty
import select
import threading
import time

import pytest
import serial

from ecemu.api import Emulator
from tests.processes import read_until
from tests.test_pty_port import _reap

# The second host's command and everything it should get back: the echo and the result (V.250).
OWN_ANSWER = b"AT\r\r\nOK\r\n"
BIG_FILE = bytes(65 + i % 26 for i in range(400_000))  # letters: nothing in it looks like an answer
WAIT = 10.0


def open_port(path) -> int:
    return os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)


def read_at_least(fd: int, count: int, timeout: float = WAIT) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while len(got) < count:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError(f"waited for {count} bytes, got {len(got)}")
        got += os.read(fd, 65536)
    return got


def ask(fd: int, line: bytes = b"AT") -> bytes:
    os.write(fd, line + b"\r")
    return read_until(fd, b"OK\r\n", timeout=WAIT)


def answer_to_a_new_host(path, line: bytes = b"AT") -> bytes:
    """What a host that opens ``path``, sends ``line`` and closes it again gets back."""
    fd = open_port(path)
    try:
        return ask(fd, line)
    finally:
        os.close(fd)


def upload_left_waiting(path) -> int:
    """A host on ``path`` starts a file upload (AT+QFUPL) and sends none of its data: its descriptor."""
    fd = open_port(path)
    os.write(fd, b'AT+QFUPL="left.bin",100\r')
    assert read_until(fd, b"CONNECT\r\n", timeout=WAIT).endswith(b"CONNECT\r\n")
    return fd


@pytest.fixture
def emulator(tmp_path):
    ufs = tmp_path / "ufs"
    ufs.mkdir()
    (ufs / "big.bin").write_bytes(BIG_FILE)
    with Emulator(link=tmp_path / "modem", ufs=ufs, boot="at-start") as running:
        fd = open_port(running.port)  # the boot URCs wait in the first pty: read them
        try:
            read_until(fd, b"+QIND: PB DONE\r\n", timeout=WAIT)
        finally:
            os.close(fd)
        yield running


def test_a_host_leaving_mid_download_leaves_nothing_for_the_next_one(emulator):
    """The download's first 4 kB read, the port closed in the middle of the file and opened again
    by the very next system call: the new host gets its own answer and not one byte more."""
    for _ in range(20):
        first = open_port(emulator.port)
        try:
            os.write(first, b'AT+QFDWL="big.bin"\r')
            assert read_at_least(first, 4096).startswith(b'AT+QFDWL="big.bin"\r\r\nCONNECT')
        finally:
            os.close(first)
        second = open_port(emulator.port)
        try:
            os.write(second, b"AT\r")
            assert read_until(second, OWN_ANSWER, timeout=WAIT) == OWN_ANSWER
        finally:
            os.close(second)


def test_the_link_is_never_missing_while_hosts_come_and_go(emulator):
    """The link is moved by renaming a new one over it: someone looking at it all the while always
    finds it (an unlink and a new link would leave a moment with none)."""
    stop, looked = threading.Event(), threading.Event()
    missing: list = []

    def look() -> None:
        while not stop.is_set():
            try:
                fd = os.open(emulator.port, os.O_PATH | os.O_NOFOLLOW)  # the link itself
                os.close(fd)
                os.readlink(emulator.port)
            except OSError as exc:
                missing.append(errno.errorcode.get(exc.errno, exc.errno))
            looked.set()

    looker = threading.Thread(target=look, daemon=True)
    looker.start()
    try:
        swaps_before = emulator.call(lambda runner: runner.host.swaps)
        for _ in range(200):
            looked.clear()
            fd = open_port(emulator.port)
            try:
                assert ask(fd) == OWN_ANSWER
            finally:
                os.close(fd)
            assert looked.wait(WAIT)  # it looked at least once during each host's turn
    finally:
        stop.set()
        looker.join(WAIT)
    assert missing == []
    assert emulator.call(lambda runner: runner.host.swaps) - swaps_before == 200  # one pty each


def test_descriptors_stay_flat_over_500_reopens(emulator):
    """Each host's pty is closed when it leaves: after 500 more hosts the process holds as many
    descriptors as before (counted at the same point: a host holding the port, answered)."""

    def descriptors_while_a_host_is_answered() -> int:
        fd = open_port(emulator.port)
        try:
            assert ask(fd) == OWN_ANSWER
            return len(os.listdir("/proc/self/fd"))
        finally:
            os.close(fd)

    before = descriptors_while_a_host_is_answered()
    for _ in range(499):
        descriptors_while_a_host_is_answered()
    assert descriptors_while_a_host_is_answered() == before


def test_a_second_opener_shares_the_session_and_its_leaving_ends_nothing(emulator):
    """``cat LINK & printf 'AT\\r' > LINK``: the host that came first gets the answers to what the
    other wrote, and keeps the port when the other closes it."""
    reader = open_port(emulator.port)
    try:
        assert ask(reader, b"ATE0") == b"ATE0\r\r\nOK\r\n"
        writer = open_port(emulator.port)
        os.write(writer, b"AT+CSQ\r")
        os.close(writer)
        assert read_until(reader, b"OK\r\n", timeout=WAIT) == b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n"
        assert ask(reader, b"AT") == b"\r\nOK\r\n"  # still its session: ATE0 holds, no DTR drop
    finally:
        os.close(reader)


def test_when_the_first_of_two_hosts_leaves_the_other_gets_only_its_own_answers(emulator):
    """Two hosts on their own ptys (the second opened the link once the first was answered, so
    after the emulator had seen the first open it): the first leaves in the middle of a download,
    the second gets the output from then on, its own answers only."""
    first = open_port(emulator.port)
    second = -1
    try:
        assert ask(first) == OWN_ANSWER
        second = open_port(emulator.port)
        os.write(first, b'AT+QFDWL="big.bin"\r')
        read_at_least(first, 4096)
        os.close(first)
        first = -1
        os.write(second, b"AT\r")
        assert read_until(second, OWN_ANSWER, timeout=WAIT) == OWN_ANSWER
    finally:
        for fd in (first, second):
            if fd >= 0:
                os.close(fd)


def test_two_hosts_opening_the_link_together_share_it_until_the_last_leaves(emulator):
    """Two opens of one pty before the emulator looks give a single inotify event (the kernel
    folds an event into the one before it when both are the same): the host that stays keeps a
    working port when the other closes."""

    def open_twice(runner) -> tuple[int, int]:  # on the emulator's thread: it cannot look between
        return open_port(emulator.port), open_port(emulator.port)

    staying, leaving = emulator.call(open_twice)
    try:
        os.close(leaving)
        for _ in range(3):
            assert ask(staying) == OWN_ANSWER
    finally:
        os.close(staying)


def test_two_descriptors_closed_together_are_a_host_leaving(emulator):
    """A host holding its pty twice (a reader and a writer) closes both at once: one folded close
    event, and still the module sees the host leave: the file upload it left waiting for data
    ends, and the next host is answered in command mode."""
    # The pty the link points to, read before anyone opens it: once the emulator sees the open it
    # moves the link on, so reading it after the open could name the next host's pty.
    pty_path = os.readlink(emulator.port)
    first = upload_left_waiting(pty_path)
    second = open_port(pty_path)  # its own /dev/pts/N: the same pty, seen as a second descriptor
    emulator.call(lambda runner: (os.close(first), os.close(second)))
    assert answer_to_a_new_host(emulator.port) == OWN_ANSWER


def test_a_host_leaving_and_the_next_opening_its_pty_before_the_module_looks(emulator):
    """The next host opens the pty the one before left (it found the link still there) before
    the emulator has looked: that is still a host leaving, so the upload the first left waiting
    for data ends and the next host is answered in command mode."""
    # The pty the link points to, read before anyone opens it: once the emulator sees the open it
    # moves the link on, so reading it after the open could name the next host's pty.
    pty_path = os.readlink(emulator.port)
    first = upload_left_waiting(pty_path)

    def leave_and_come(runner) -> int:  # on the emulator's thread: it cannot look between
        os.close(first)
        return open_port(pty_path)

    nxt = emulator.call(leave_and_come)
    try:
        assert ask(nxt) == OWN_ANSWER
    finally:
        os.close(nxt)


def test_output_before_the_first_host_waits_with_the_loop_idle(tmp_path):
    """Before the first host opens the link nobody holds its pty, and a master nobody holds reads
    as writable even when full: more output than the pty takes waits in the emulator, whose loop
    stays idle meanwhile, and the first host gets all of it, in order."""
    urcs = [b"+QIURC: \"recv\",%d,%s" % (i, b"x" * 80) for i in range(400)]  # 36 kB, twice what a pty takes
    with Emulator(link=tmp_path / "modem", ufs=tmp_path / "ufs", boot="at-start") as emulator:
        emulator.wait_for_boot()

        def say(runner) -> int:
            for urc in urcs:
                runner.modem.emit_urc(urc.decode())
            runner.pump()
            return threading.get_ident()

        loop_thread = time.pthread_getcpuclockid(emulator.call(say))
        before = time.clock_gettime(loop_thread)
        threading.Event().wait(1.0)  # a window to measure the loop's CPU in, not a wait for anything
        assert time.clock_gettime(loop_thread) - before < 0.1  # spinning, it takes all a core gives
        fd = open_port(emulator.port)
        try:
            got = read_until(fd, urcs[-1] + b"\r\n", timeout=WAIT)
        finally:
            os.close(fd)
    assert got.endswith(b"".join(b"\r\n" + urc + b"\r\n" for urc in urcs))


def test_pyserial_reopening_the_link_in_turns(emulator):
    for _ in range(5):
        with serial.Serial(emulator.port, 115200, timeout=WAIT) as port:
            port.write(b"AT+CSQ\r")
            assert port.read_until(b"OK\r\n") == b"AT+CSQ\r\r\n+CSQ: 20,99\r\n\r\nOK\r\n"


@pytest.mark.needs("picocom")
def test_picocom_opens_the_link_and_gets_ok(emulator):
    """A person's terminal program on a console of its own, typing AT and Enter."""
    pid, console = pty.fork()
    if pid == 0:  # the child: picocom on the console pty
        os.execvp("picocom", ["picocom", "-b", "115200", "--nolock", str(emulator.port)])
    try:
        read_until(console, b"Terminal ready", timeout=WAIT)  # printed once the port is open
        for ch in b"AT\r":
            os.write(console, bytes((ch,)))
        assert b"OK" in read_until(console, b"OK", timeout=WAIT)
    finally:
        os.write(console, b"\x01\x18")  # Ctrl+A Ctrl+X: picocom exits
        _reap(pid, console)


def test_without_inotify_the_link_keeps_one_pty(tmp_path, monkeypatch):
    """Where opens cannot be watched nobody can tell when to move the link: it stays on one pty,
    as without a link, and hosts still reopen it."""
    import ecemu.shell.opens as opens

    def no_instance(loop):
        raise OSError(errno.EMFILE, "inotify_init1")  # the user's instances are all taken

    monkeypatch.setattr(opens, "_SharedInstance", no_instance)
    link = tmp_path / "modem"
    with Emulator(link=link, ufs=tmp_path / "ufs", boot="at-start") as emulator:
        assert emulator.port == str(link)
        pty_path = os.readlink(link)
        for _ in range(3):
            with serial.Serial(emulator.port, 115200, timeout=WAIT) as port:
                port.write(b"AT+CSQ\r")
                assert port.read_until(b"+CSQ: 20,99\r\n\r\nOK\r\n").endswith(b"AT+CSQ\r\r\n+CSQ: 20,99\r\n\r\nOK\r\n")
        assert os.readlink(link) == pty_path


def test_when_no_fresh_pty_can_be_made_the_link_stays_and_hosts_share_the_pty(tmp_path, monkeypatch):
    """Out of ptys (or descriptors): the link is not moved and never left pointing at a closed pty."""
    import errno as errnos

    import ecemu.shell.pty_link as pty_link

    real, made = pty_link.PtyPort, []

    def scarce(link=None, **options):
        if made:
            raise OSError(errnos.EMFILE, "Too many open files")
        made.append(link)
        return real(link, **options)

    monkeypatch.setattr(pty_link, "PtyPort", scarce)
    link = tmp_path / "modem"
    with Emulator(link=link, ufs=tmp_path / "ufs", boot="at-start") as emulator:
        pty_path = os.readlink(link)
        for _ in range(3):
            fd = open_port(emulator.port)
            try:
                assert ask(fd).endswith(OWN_ANSWER)
            finally:
                os.close(fd)
        assert os.readlink(link) == pty_path
        assert emulator.call(lambda runner: runner.host.swaps) == 0


def test_a_host_that_opened_the_pty_before_the_last_one_was_seen_leaving_gets_its_answer(emulator, monkeypatch):
    """The next host found the link still on the pty of the host before, opened it and wrote its
    command just as the emulator took that host's leaving: its command is its own, answered to it,
    not taken as the last words of the host that left (a recording tap logged it before that host's
    close, and the emulator answered it to nobody)."""
    from ecemu.shell.pty_port import PtyPort

    came: list[int] = []
    read_to_hangup = PtyPort.read_to_hangup

    def a_host_opens_and_writes_first(port) -> bytes:  # PtyPort.read_to_hangup, a host coming midway
        if not came:
            came.append(open_port(port.path))
            os.write(came[0], b"AT\r")
        return read_to_hangup(port)

    first = open_port(emulator.port)
    try:
        assert ask(first, b"ATE1") == b"ATE1\r\r\nOK\r\n"
        monkeypatch.setattr(PtyPort, "read_to_hangup", a_host_opens_and_writes_first)
    finally:
        os.close(first)
    deadline = time.monotonic() + WAIT
    while not came:  # the emulator sees the first host leave
        assert time.monotonic() < deadline, "the emulator never saw the host leave"
        emulator.call(lambda runner: None)
    try:
        assert read_until(came[0], b"OK\r\n", timeout=WAIT) == OWN_ANSWER
    finally:
        os.close(came[0])
