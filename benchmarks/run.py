"""Benchmarks of the emulator against the floor of the machine, measured in the same run.

Prints one table: median of each measurement, its baseline, the ratio and the target.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import serial

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from emulator.api import Emulator  # noqa: E402
from tests.processes import RunningEmulator, wait_for_boot  # noqa: E402


class BareEchoPty:
    """The floor for an AT round trip: a pty whose other end answers each CR with OK, on an
    asyncio loop in its own thread, as the emulator's shell is built."""

    def __init__(self):
        self.master, slave = os.openpty()
        import termios
        import tty

        tty.setraw(slave, termios.TCSANOW)
        self._slave = slave
        self.path = os.ttyname(slave)
        os.set_blocking(self.master, False)
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        self._ready.wait(5)

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        line = bytearray()

        def readable() -> None:
            try:
                data = os.read(self.master, 65536)
            except BlockingIOError:
                return
            for byte in data:
                line.append(byte)
                if byte == 13:
                    os.write(self.master, bytes(line) + b"\r\nOK\r\n")
                    line.clear()

        loop.add_reader(self.master, readable)
        self._ready.set()
        await self._stop.wait()

    def close(self) -> None:
        os.close(self.master)
        os.close(self._slave)


def round_trips(path: str, line: bytes, count: int, final: bytes = b"OK\r\n") -> list[float]:
    samples = []
    with serial.Serial(path, 115200, timeout=10) as port:
        for _ in range(count):
            start = time.perf_counter()
            port.write(line)
            answer = port.read_until(final)
            samples.append(time.perf_counter() - start)
            if not answer.endswith(final):
                raise RuntimeError(f"no answer: {answer!r}")
    return samples


def bench_at_round_trip(count: int) -> list[tuple]:
    bare = BareEchoPty()
    try:
        baseline = statistics.median(round_trips(bare.path, b"AT\r", count))
    finally:
        bare.close()
    with Emulator() as modem:
        wait_for_boot(modem.port)
        emulated = statistics.median(round_trips(modem.port, b"AT\r", count))
    return [("AT -> OK round trip over the pty", emulated, baseline, "<= 1.5x")]


def bench_startup(repeats: int) -> list[tuple]:
    python_start, ready = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        python_start.append(time.perf_counter() - start)
        start = time.perf_counter()
        running = RunningEmulator()
        ready.append(time.perf_counter() - start)
        running.stop()
    return [("start-up to port ready (s)", statistics.median(ready), statistics.median(python_start),
             "<= 0.5 s absolute")]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def bench_memory(count: int) -> list[tuple]:
    one = RunningEmulator()
    try:
        wait_for_boot(one.port)
        base = _rss_kib(one.process.pid)
    finally:
        one.stop()
    many = RunningEmulator("--count", str(count))
    try:
        deadline = time.monotonic() + 60
        while sum(1 for l in many.stdout_lines if l.startswith("control: ")) < count:
            many.stdout_lines.append(many._readline(deadline))
        time.sleep(1.0)  # boot URCs of all modems done; idle is what is measured
        total = _rss_kib(many.process.pid)
    finally:
        many.stop()
    per_modem = (total - base) / (count - 1) / 1024
    return [(f"memory per idle modem, --count {count} (MiB)", per_modem, base / 1024, "<= 5 MiB absolute")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    n = 200 if args.quick else 2000
    rows = []
    rows += bench_at_round_trip(n)
    rows += bench_startup(3 if args.quick else 10)
    rows += bench_memory(20 if args.quick else 100)
    print(f"{'measurement':<48} {'median':>10} {'baseline':>10} {'ratio':>7}  target")
    for name, value, baseline, target in rows:
        ratio = value / baseline if baseline else float("nan")
        print(f"{name:<48} {value:>10.6f} {baseline:>10.6f} {ratio:>7.2f}  {target}")
    print("(round trips in seconds; baselines: bare asyncio pty echo loop, `python -c pass`,"
          " RSS of a single-modem process in MiB)")


if __name__ == "__main__":
    main()
