"""States with their transitions in one table (h11's way): every change of state names an event, and
an event the table does not allow from the current state is a bug in the emulator.

A bug must never take a running emulator down, so outside strict mode an illegal transition is
logged and the state stays as it was. The test suite runs in strict mode (``tests/conftest.py``):
there it raises ``IllegalTransition``.
"""

from __future__ import annotations

import enum
import logging
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

S = TypeVar("S", bound=enum.Enum)

# Raise on an illegal transition rather than log it (the tests set it).
strict = False


class IllegalTransition(RuntimeError):
    pass


class Transitions(Generic[S]):
    """``{(state, event): next_state}``; ``what`` names the machine in messages."""

    def __init__(self, what: str, table: dict[tuple[S, str], S]):
        self.what = what
        self.table = table
        # Keyed by the member's name: an enum member hashes in Python code, its name in C, and the
        # host mode changes on every command line.
        self._by_name = {(state._name_, event): after for (state, event), after in table.items()}

    def next(self, state: S, event: str) -> S:
        """The state after ``event``; an illegal one raises in strict mode, else keeps ``state``."""
        after = self._by_name.get((state._name_, event))
        if after is not None:
            return after
        message = f"{self.what}: {event!r} is not allowed in state {state.name}"
        if strict:
            raise IllegalTransition(message)
        log.warning("%s (ignored)", message)
        return state

    def allows(self, state: S, event: str) -> bool:
        return (state._name_, event) in self._by_name
