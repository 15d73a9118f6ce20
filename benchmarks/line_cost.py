"""Instructions one command line costs the emulator, counted by valgrind's callgrind.

Time on a shared machine moves from run to run; the count of instructions the answering process
executes does not. ``ecemu run`` runs under callgrind twice while this process, the host, sends
the same line FEW and MANY times; the difference over MANY - FEW is the cost of one line (start-up
and the connections' handshakes cancel out). User space only: the kernel's share of a pty write is
not in it.

    .venv/bin/python benchmarks/line_cost.py                     # AT
    .venv/bin/python benchmarks/line_cost.py AT+QSSLSTATE --connections 12

Needs valgrind (Debian's package). Run by hand, never from the tests: each run takes a minute.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.run import CLIENTS, Emulator, Port, Server, open_clients  # noqa: E402

FEW, MANY = 300, 1300


def instructions(line: str, count: int, tls_port: int | None, connections: int) -> int:
    """Instructions ``ecemu run`` executed in all, answering ``line`` ``count`` times."""
    with tempfile.TemporaryDirectory(prefix="ecemu-line-cost-") as folder:
        log = Path(folder) / "callgrind.log"
        valgrind = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", f"--log-file={log}")
        with Emulator(under=valgrind) as modem:
            port = Port(modem.port)
            try:
                if tls_port is not None:
                    port.ask("AT+QIACT=1")
                    open_clients(port, tls_port, list(range(connections)))
                for _ in range(count):
                    port.ask(line)
            finally:
                port.close()
        found = re.search(r"refs:\s+([\d,]+)", log.read_text())
        if found is None:
            raise RuntimeError(f"no instruction count in valgrind's log: {log.read_text()[-500:]}")
        return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("line", nargs="?", default="AT", help="the command line, without its CR")
    parser.add_argument("--connections", type=int, default=0, choices=range(0, CLIENTS + 1), metavar="N",
                        help=f"TLS connections to open first (0-{CLIENTS})")
    args = parser.parse_args()
    os.environ.setdefault("ECEMU_NETWORK_RTT_MS", "0")
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    if args.connections:
        with Server("tls-echo") as server:
            few, many = (instructions(args.line, n, int(server.address), args.connections) for n in (FEW, MANY))
    else:
        few, many = (instructions(args.line, n, None, 0) for n in (FEW, MANY))
    with_connections = f", {args.connections} connections open" if args.connections else ""
    print(f"{args.line}{with_connections}: {(many - few) / (MANY - FEW):,.0f} instructions per line")


if __name__ == "__main__":
    main()
