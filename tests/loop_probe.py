"""``ecemu`` with a probe on its event loop: how much CPU time each turn of the loop took.

    python tests/loop_probe.py OUT.json run --count 2 ...

runs ``ecemu run --count 2 ...`` as the command line would, and when it ends writes to OUT.json
the number of turns, the longest turn, how many took more than 10 ms and the longest pass of the
garbage collector (which runs inside a turn), counted from the last
SIGUSR1 (a test sends it once the modems are set up: start-up's imports are not a turn's work). A turn is one pass of
asyncio's loop (``BaseEventLoop._run_once``): every callback that was ready, each connection's
share, each port's read, each timer. A port that becomes readable is served within the turn after
the one running, so the longest turn bounds how long any modem can be kept waiting by another's
peer. It is counted in CPU time of the loop's thread (``time.thread_time``): a machine busy with
other work makes turns slower in wall time, not in CPU time.
"""

from __future__ import annotations

import asyncio.base_events
import atexit
import gc
import json
import signal
import sys
import time

SLOW = 0.010  # a turn longer than this is counted (seconds of CPU)


def main() -> None:
    out = sys.argv[1]
    stats = {"turns": 0, "longest": 0.0, "over_10ms": 0, "gc_longest": 0.0}
    gc_started = [0.0]

    def gc_watch(phase: str, info: dict) -> None:
        # The garbage collector's passes, the longest of which runs inside some turn: a pause of
        # the whole process, whatever the peers do (it grows with the objects alive, not a flood).
        if phase == "start":
            gc_started[0] = time.thread_time()
        else:
            stats["gc_longest"] = max(stats["gc_longest"], time.thread_time() - gc_started[0])

    gc.callbacks.append(gc_watch)
    run_once = asyncio.base_events.BaseEventLoop._run_once

    def measured(loop) -> None:
        started = time.thread_time()
        run_once(loop)
        spent = time.thread_time() - started
        stats["turns"] += 1
        if spent > stats["longest"]:
            stats["longest"] = spent
        if spent > SLOW:
            stats["over_10ms"] += 1

    asyncio.base_events.BaseEventLoop._run_once = measured  # type: ignore[method-assign]

    def reset(*_) -> None:
        stats.update(turns=0, longest=0.0, over_10ms=0, gc_longest=0.0)

    signal.signal(signal.SIGUSR1, reset)

    def write() -> None:
        with open(out, "w") as f:
            json.dump(stats, f)

    atexit.register(write)
    sys.argv = ["ecemu", *sys.argv[2:]]
    from ecemu.cli import main as ecemu

    ecemu()


if __name__ == "__main__":
    main()
