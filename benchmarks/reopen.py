"""Immediate reopens on a busy machine: does the next host get any of the previous host's bytes?

Each trial: a host opens the port, asks ``AT+QFDWL`` of a 1 MB file, reads the first few kB of
the answer and closes the port in the middle of it; at once (the next system call) a second host
opens the port, sends ``AT`` and reads up to its own answer (``AT\\r\\r\\nOK\\r\\n``). Every byte it
received before that answer is a foreign byte: the previous host's download.

Two emulators take turns, trial by trial: ``ecemu run --link L`` opened through its link (a pty of
its own for every opener) and ``ecemu run`` opened at its ``/dev/pts/N`` (one pty for all hosts,
the port flushed when a host is seen leaving). A process spinning on each core keeps the machine
busy, so the emulator is scheduled late, as on a loaded CI runner.

    .venv/bin/python benchmarks/reopen.py            # 200 trials each
    .venv/bin/python benchmarks/reopen.py --trials 50 --no-burn
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.run import Emulator, Port, _die_with_parent  # noqa: E402

FILE_SIZE = 1_000_000
FILE_NAME = "big.bin"
READ_BEFORE_CLOSE = 4096  # the first host closes once it has this much of the download
OWN_ANSWER = b"AT\r\r\nOK\r\n"  # the second host's command, echoed, and its result


def trial(port_path: str) -> int:
    """One immediate reopen; the count of bytes the second host got that were not its own."""
    first = Port(port_path)
    try:
        first.write(f'AT+QFDWL="{FILE_NAME}"\r'.encode())
        while len(first.buffer) < READ_BEFORE_CLOSE:
            first.fill()
    finally:
        first.close()
    second = Port(port_path)  # the very next system call
    try:
        second.write(b"AT\r")
        received = second.until(OWN_ANSWER)
    finally:
        second.close()
    return len(received) - len(OWN_ANSWER)


def burners(count: int) -> list[subprocess.Popen]:
    """One process spinning on each core, ended with the benchmark."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=_die_with_parent)
            for _ in range(count)]


def summary(name: str, leaks: list[int]) -> str:
    leaked = [count for count in leaks if count]
    share = 100.0 * len(leaked) / len(leaks)
    sizes = (f"{min(leaked)} B to {max(leaked)} B, median {statistics.median(leaked):.0f} B, {sum(leaked)} B in all"
             if leaked else "no foreign byte")
    return f"{name}: {len(leaked)} of {len(leaks)} immediate reopens ({share:.1f} %) got foreign bytes: {sizes}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--no-burn", action="store_true", help="no busy processes (an idle machine)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ecemu-reopen-") as folder:
        ufs = Path(folder) / "ufs"
        for sub in ("linked", "shared"):
            (ufs / sub).mkdir(parents=True)
            # Letters only, so nothing in the download looks like an answer.
            (ufs / sub / FILE_NAME).write_bytes(bytes(65 + i % 26 for i in range(FILE_SIZE)))
        spinning = [] if args.no_burn else burners(os.cpu_count() or 1)
        try:
            with Emulator("--link", f"{folder}/modem", "--ufs", str(ufs / "linked")) as linked, \
                    Emulator("--ufs", str(ufs / "shared")) as shared:
                results: dict[str, list[int]] = {linked.port: [], shared.port: []}
                start = time.perf_counter()
                for number in range(args.trials):
                    for port in results:
                        try:
                            results[port].append(trial(port))
                        except TimeoutError as exc:
                            raise SystemExit(f"trial {number} on {port}: {exc}") from None
                took = time.perf_counter() - start
        finally:
            for process in spinning:
                process.kill()
                process.wait()
    load = "no busy processes" if args.no_burn else f"{len(spinning)} busy processes, one per core"
    print(f"{args.trials} trials each, taking turns, {load}, {took:.0f} s")
    print(summary("--link (a pty for each opener)", results[linked.port]))
    print(summary("/dev/pts/N (one pty for all)", results[shared.port]))


if __name__ == "__main__":
    main()
