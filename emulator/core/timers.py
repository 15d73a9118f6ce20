"""The modem's timers: callbacks due at a time the shell passes in (``now``), in deadline order.

Nothing here reads a clock. The shell asks ``next_deadline`` and calls back (``Modem.tick``) when it
has come; ``run_due`` then runs every timer due by ``now``, in deadline order, ties in the order
they were set.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Callable, Iterator, Protocol

# Timers in the heap, cancelled ones included, above which call_at drops the cancelled ones.
TIMERS_COMPACT_MIN = 64


class Timer:
    __slots__ = ("deadline", "callback", "cancelled")

    def __init__(self, deadline: float, callback: Callable[[], None]):
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Scheduler(Protocol):
    """The module's time as its parts see it (the ``Modem``): the time now, and callbacks at a
    deadline."""

    @property
    def now(self) -> float: ...

    def call_at(self, deadline: float, callback: Callable[[], None]) -> "Timer": ...


class TimerHeap:
    def __init__(self) -> None:
        # (deadline, order set, timer); read-only outside: heap[0][0] is the earliest deadline.
        self.heap: list[tuple[float, int, Timer]] = []
        self._compact_above = TIMERS_COMPACT_MIN
        self._seq = itertools.count()

    def __len__(self) -> int:
        """Timers held, cancelled ones not yet dropped included."""
        return len(self.heap)

    def __iter__(self) -> Iterator[Timer]:
        return (entry[2] for entry in self.heap)

    def call_at(self, deadline: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(deadline, callback)
        heapq.heappush(self.heap, (deadline, next(self._seq), timer))
        if len(self.heap) > self._compact_above:
            # A cancelled timer stays in the heap until it comes to the top; behind a live one (a
            # handshake waiting up to negotiatetime) every connection's cancelled timers would pile
            # up for minutes. Dropped whenever the heap has doubled: amortised O(1) per timer.
            self.heap = [entry for entry in self.heap if not entry[2].cancelled]
            heapq.heapify(self.heap)
            self._compact_above = max(TIMERS_COMPACT_MIN, 2 * len(self.heap))
        return timer

    def next_deadline(self) -> float | None:
        heap = self.heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> Timer | None:
        """The next live timer due by ``now``, taken off the heap; None when none is due."""
        heap = self.heap
        while heap and heap[0][0] <= now:
            timer = heapq.heappop(heap)[2]
            if not timer.cancelled:
                return timer
        return None

    def clear(self) -> None:
        self.heap.clear()
