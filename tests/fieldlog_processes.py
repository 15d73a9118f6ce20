"""``ecemu record`` and ``ecemu replay`` as real processes for the field-log tests, and waiting
for a session file being written to show something."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ecemu.sessionlog import read_bytes
from tests.processes import START_TIMEOUT, read_announcement



class Running:
    """``python -m ecemu COMMAND ARGS`` with its announcements (``key: value`` lines)."""

    def __init__(self, command: str, *args: str, wanted: tuple[str, ...] = ("port",)):
        self.errors = tempfile.NamedTemporaryFile(prefix=f"ecemu-{command}-", suffix=".txt")
        self.process = subprocess.Popen([sys.executable, "-m", "ecemu", command, *args], stdout=subprocess.PIPE,
                                        stderr=self.errors, stdin=subprocess.DEVNULL)
        self.announced: dict[str, str] = {}
        deadline = time.monotonic() + START_TIMEOUT
        while not set(wanted) <= self.announced.keys():
            line = self._readline(deadline)
            key, _, value = line.partition(": ")
            self.announced[key] = value

    def _readline(self, deadline: float) -> str:
        return read_announcement(self.process, deadline, self.kill, lambda: f"stderr: {self.stderr()!r}")

    def stderr(self) -> str:
        with open(self.errors.name, errors="replace") as handle:
            return handle.read()

    def wait(self, timeout: float = 20.0) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self.process.stdout.close()

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


def wait_for_log(path: Path, predicate, timeout: float = 10.0):
    """The records of a session file being written, once ``predicate(records)`` holds."""
    deadline = time.monotonic() + timeout
    records = []
    while time.monotonic() < deadline:
        if path.exists():
            data = path.read_bytes()
            complete = data[:data.rfind(b"\n") + 1]
            if complete:
                _, records = read_bytes(complete)
                if predicate(records):
                    return records
        time.sleep(0.02)
    raise TimeoutError(f"the log never showed it; it has {records!r}")


def events(records) -> list[str]:
    return [record.data.decode().split(" ")[0] for record in records if record.direction == "!"]
