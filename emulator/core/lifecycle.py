"""States with their transitions in one table (h11's way): every change of state names an event, and
an event the table does not allow from the current state is a bug in the emulator.

An illegal transition raises ``IllegalTransition``, in the tests and in use alike, and the state
stays as it was. The modem runs every handler, timer, network event and host write under
``guarded``, which logs the exception as an internal error and goes on: a bug never takes a
running emulator down, and the test suite fails any test during which the emulator logged one
(``tests/conftest.py``).
"""

from __future__ import annotations

import enum
import logging
from typing import Callable, Generic, NoReturn, TypeVar

log = logging.getLogger("ecemu.core.modem")  # the messages hosts' logs know

S = TypeVar("S", bound=enum.Enum)


def guarded(fn: Callable[[], None]) -> None:
    """Run ``fn``; a bug in it (an illegal transition, a handler that raised) is logged as an
    internal error and never stops the modem."""
    try:
        fn()
    except Exception:
        log.exception("internal error")


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
        """The state after ``event``; ``IllegalTransition`` when the table does not allow it."""
        after = self._by_name.get((state._name_, event))
        if after is None:
            self.refuse(state, event)
        return after

    def allows(self, state: S, event: str) -> bool:
        return (state._name_, event) in self._by_name

    def refuse(self, state: S, event: str) -> NoReturn:
        """``event`` cannot happen in ``state``: raise as an illegal transition does."""
        raise IllegalTransition(f"{self.what}: {event!r} is not allowed in state {state.name}")
