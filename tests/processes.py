"""Starting ``ecemu run`` as a real process and talking to its port, with bounded waits only."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

START_TIMEOUT = 15.0


def read_announcement(process: subprocess.Popen, deadline: float, kill: Callable[[], None],
                      context: Callable[[], str]) -> str:
    """One line of what an ``ecemu`` process announces on its standard output, read byte by byte
    (nothing after it is taken) by ``deadline``; ``kill`` ends the process when it says nothing."""
    buf = b""
    fd = process.stdout.fileno()
    while not buf.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            kill()
            raise TimeoutError(f"no announcement from ecemu; {context()}")
        chunk = os.read(fd, 1)
        if not chunk:
            raise RuntimeError(f"ecemu exited early ({process.wait()}); {context()}")
        buf += chunk
    return buf.decode().rstrip("\n")


class RunningEmulator:
    """``python -m ecemu run ARGS`` with its announced port and link."""

    def __init__(self, *args: str, env: dict[str, str] | None = None):
        # The log goes to a file: a pipe nobody reads would block the emulator once full.
        self.log = tempfile.NamedTemporaryFile(prefix="ecemu-log-", suffix=".txt")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ecemu", "run", *args],
            stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL,
            env=None if env is None else {**os.environ, **env},
        )
        self.announced: dict[str, str] = {}
        self.stdout_lines: list[str] = []
        wanted = {"port", "control"} | ({"link"} if "--link" in args and "--tcp" not in args else set())
        deadline = time.monotonic() + START_TIMEOUT
        while not wanted <= self.announced.keys():
            line = self.readline(deadline)
            self.stdout_lines.append(line)
            key, _, value = line.partition(": ")
            self.announced[key] = value

    @classmethod
    def with_environment(cls, env: dict[str, str], *args: str) -> "RunningEmulator":
        return cls(*args, env=env)

    def readline(self, deadline: float) -> str:
        """The next line the process writes on its standard output; failing at ``deadline``."""
        return read_announcement(self.process, deadline, self.kill, lambda: f"log: {self.log_text()!r}")

    def wait_for_boot(self) -> bytes:
        return wait_for_boot(self.port)

    @property
    def port(self) -> str:
        return self.announced["port"]

    @property
    def link(self) -> Path:
        return Path(self.announced["link"])

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        finally:
            self.process.stdout.close()
            self.log.close()

    def log_text(self) -> str:
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


def read_announcements(process: subprocess.Popen, modems: int, log_text: Callable[[], str],
                       timeout: float = START_TIMEOUT) -> list[str]:
    """The lines ``ecemu run`` printed until each of its ``modems`` announced its control socket
    (a modem's last announcement); ``log_text`` says why when it does not."""
    said = b""
    fd = process.stdout.fileno()
    deadline = time.monotonic() + timeout
    while said.count(b"control: ") < modems:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError(f"ecemu did not start: {log_text()}")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise RuntimeError(f"ecemu exited: {log_text()}")
        said += chunk
    return said.decode().splitlines()


def end_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not ended within ``timeout``."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def read_until(fd: int, expected: bytes, timeout: float = 30.0) -> bytes:
    """Read a raw descriptor until ``expected`` has arrived; everything read so far is returned."""
    buf = b""
    deadline = time.monotonic() + timeout
    while expected not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError(f"waited for {expected!r}, got {buf!r}")
        buf += os.read(fd, 4096)
    return buf


def wait_for_boot(port: str, last_urc: bytes = b"+QIND: PB DONE\r\n") -> bytes:
    """Read the boot URCs up to the last one; until a host first opens the port they wait for it."""
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
    try:
        return read_until(fd, last_urc)
    finally:
        os.close(fd)
