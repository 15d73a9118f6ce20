"""What ``ecemu record`` adds to a round trip: AT -> OK straight on the emulator's port, and the
same through the tap (``ecemu record --device PORT --link LINK``), taking turns in blocks.

    .venv/bin/python benchmarks/record_latency.py            # 2000 round trips each way
    .venv/bin/python benchmarks/record_latency.py --count 500

The emulator stands in for the module (``ecemu run``), as in the tests. The tap adds two pty
hops (host -> tap -> module and back), its own process's wake-ups and the session file's write:
the row to read is "added by the tap", the difference of the two medians, against the issue's
bound of 1 ms.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import ROOT, TIMEOUT, Emulator, _die_with_parent, cpu_seconds, round_trips  # noqa: E402


class Tap:
    """``ecemu record`` between a link and the emulator's port."""

    def __init__(self, device: str, folder: Path):
        self.link = folder / "tap"
        self.out = folder / "session.log"
        self.process = subprocess.Popen([sys.executable, "-m", "ecemu", "record", "--device", device, "--link",
                                         str(self.link), "--out", str(self.out)], stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, cwd=ROOT,
                                        preexec_fn=_die_with_parent)
        said, fd = b"", self.process.stdout.fileno()
        while b"out: " not in said:
            chunk = os.read(fd, 4096) if select.select([fd], [], [], TIMEOUT)[0] else b""
            if not chunk:
                raise RuntimeError("ecemu record did not start")
            said += chunk

    def close(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(10)
        self.process.stdout.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="round trips each way")
    options = parser.parse_args()
    # Two emulators: a pty has one reader, so the straight host and the tap each get their own.
    with tempfile.TemporaryDirectory(prefix="ecemu-bench-") as folder, Emulator() as straight, \
            Emulator() as behind_tap:
        tap = Tap(behind_tap.port, Path(folder))
        try:
            (direct, _), (tapped, _) = round_trips(
                [(straight.port, straight.process.pid), (str(tap.link), behind_tap.process.pid)], b"AT\r",
                options.count)
            tap_cpu_before = cpu_seconds(tap.process.pid)
            round_trips([(str(tap.link), tap.process.pid)], b"AT\r", 200)
            tap_cpu = (cpu_seconds(tap.process.pid) - tap_cpu_before) / 200
            logged = tap.out.stat().st_size
        finally:
            tap.close()
    print(f"{'measurement':<40} {'median':>10}")
    print(f"{'AT -> OK straight on the port':<40} {direct * 1e6:>8.1f} us")
    print(f"{'AT -> OK through ecemu record':<40} {tapped * 1e6:>8.1f} us")
    print(f"{'added by the tap':<40} {(tapped - direct) * 1e6:>8.1f} us   (bound: 1000 us)")
    print(f"{'CPU of the tap per round trip':<40} {tap_cpu * 1e6:>8.1f} us")
    print(f"(the session file grew to {logged} bytes; {time.strftime('%Y-%m-%d %H:%M')})")


if __name__ == "__main__":
    main()
