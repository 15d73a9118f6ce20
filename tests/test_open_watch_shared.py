"""All the ports of one event loop share one inotify instance: a user may hold only 128 of them
(``fs.inotify.max_user_instances``, Linux's default) across all of their processes, and a fleet
of 200 modems in one process must still see every host come and go, each port its own."""

from __future__ import annotations

import asyncio
import os
import time

from ecemu.shell.pty_port import PtyHost
from tests.processes import read_until, RunningEmulator

FLEET = 200  # more modems than a user may have inotify instances by default (128)
WAIT = 10.0  # a bound on a wait for an event, never a synchronisation


def inotify_instances(pid: int | str) -> int:
    """The inotify instances a process holds: its descriptors that are one."""
    folder = f"/proc/{pid}/fd"
    count = 0
    for name in os.listdir(folder):
        try:
            count += os.readlink(f"{folder}/{name}") == "anon_inode:inotify"
        except FileNotFoundError:
            pass  # closed while listed
    return count


def test_a_fleet_of_200_modems_holds_one_inotify_instance_and_the_last_sees_a_host_leave(tmp_path):
    running = RunningEmulator("--count", str(FLEET), "--link", str(tmp_path / "modem"), "--ufs", str(tmp_path / "ufs"))
    try:
        controls = sum(line.startswith("control: ") for line in running.stdout_lines)
        while controls < FLEET:  # each modem's control socket is its last announcement
            line = running.readline(time.monotonic() + WAIT)
            controls += line.startswith("control: ")
        last = tmp_path / f"modem-{FLEET - 1}"
        first_pty = os.readlink(last)
        # A host that has talked to the modem asks for its identity and leaves without reading it.
        fd = os.open(last, os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(fd, b"AT\r")
            assert read_until(fd, b"AT\r\r\nOK\r\n", WAIT).endswith(b"AT\r\r\nOK\r\n")
            assert os.readlink(last) != first_pty  # the modem saw it open: the link moved on
            os.write(fd, b"ATI\r")
        finally:
            os.close(fd)
        # The next host (which does not flush, as pyserial would) gets only its own answer, none
        # of the identity meant for the one before.
        fd = os.open(last, os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(fd, b"AT+CSQ\r")
            assert read_until(fd, b"OK\r\n", WAIT) == b"AT+CSQ\r\r\n+CSQ: 20,99\r\n\r\nOK\r\n"
        finally:
            os.close(fd)
        assert inotify_instances(running.process.pid) == 1
        assert "cannot watch" not in running.log_text()
    finally:
        assert running.stop() == 0


class Listener:
    """Stands for a modem behind a port: what its host link tells it, in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, heard: asyncio.Event):
        self.loop = loop
        self.heard = heard
        self.told: list[str] = []

    def _tell(self, what: str) -> None:
        self.told.append(what)
        self.heard.set()

    def host_attached(self) -> None:
        self._tell("attached")

    def host_left(self, last_words: bytes = b"") -> None:
        self._tell(f"left {last_words!r}" if last_words else "left")

    def host_data(self, data: bytes) -> None:
        if data:
            self._tell(f"data {data!r}")

    def host_writable(self) -> None:
        pass


def test_two_ports_of_one_loop_each_see_exactly_their_own_opens_and_closes():
    """Opens and closes of two ports made in interleaved order, several at a time before the loop
    reads any: each port hears of its own host only, in order, whichever port read them."""

    async def scenario() -> tuple[list[str], list[str], int, int]:
        loop = asyncio.get_running_loop()
        heard = asyncio.Event()
        before = inotify_instances("self")
        first, second = PtyHost(), PtyHost()
        first_modem, second_modem = Listener(loop, heard), Listener(loop, heard)
        first.start(first_modem)  # type: ignore[arg-type]
        second.start(second_modem)  # type: ignore[arg-type]
        during = inotify_instances("self") - before

        async def until(done) -> None:
            while not done():
                heard.clear()
                await asyncio.wait_for(heard.wait(), WAIT)

        try:
            a = os.open(first.address, os.O_RDWR | os.O_NOCTTY)
            b = os.open(second.address, os.O_RDWR | os.O_NOCTTY)
            await until(lambda: first_modem.told == ["attached"] and second_modem.told == ["attached"])
            os.close(a)
            os.write(b, b"hi")
            await until(lambda: len(first_modem.told) == 2 and len(second_modem.told) == 2)
            a = os.open(first.address, os.O_RDWR | os.O_NOCTTY)
            os.close(b)
            os.write(a, b"x")  # the first port may read the second's close (its news, first)
            await until(lambda: len(first_modem.told) == 4 and len(second_modem.told) == 3)
            os.close(a)
            await until(lambda: len(first_modem.told) == 5)
        finally:
            first.close()
            second.close()
        after = inotify_instances("self") - before
        return first_modem.told, second_modem.told, during, after

    first_told, second_told, during, after = asyncio.run(scenario())
    assert first_told == ["attached", "left", "attached", "data b'x'", "left"]
    assert second_told == ["attached", "data b'hi'", "left"]
    assert (during, after) == (1, 0)  # one instance for both ports, closed with the last
