"""Command families, one module each. Importing this package registers every handler.

A family that keeps state (PDP contexts, SSL contexts and clients) adds a factory to
``STATE_FACTORIES``; the modem builds the state anew at every power cycle and keeps it in
``modem.network[<family>]``. A state object may implement ``radio_off()`` (AT+CFUN=0/4),
``radio_on()`` (AT+CFUN=1 after 0/4) and ``resume_online()`` (ATO); the modem's ``reset_hooks`` run
before a reboot and at power-down (AT+QPOWD).
"""

from __future__ import annotations

from typing import Any, Callable

STATE_FACTORIES: dict[str, Callable[[Any], Any]] = {}

from emulator.commands import basic  # noqa: E402,F401
from emulator.commands import pdp  # noqa: E402,F401
from emulator.commands import files  # noqa: E402,F401
from emulator.commands import ssl  # noqa: E402,F401  (after pdp: it listens to PDP contexts)
from emulator.commands import identity  # noqa: E402,F401
from emulator.commands import radio  # noqa: E402,F401
from emulator.commands import device  # noqa: E402,F401
