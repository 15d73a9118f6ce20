"""Command families, one module each, and the command set assembled from them.

A family module declares its handlers with ``@command(..., family=NAME)`` and, when it keeps state
or reports its failures through AT+QIGETERROR, a ``Family`` (``ecemu.core.registry``): the
state's factory (built at every power cycle, after the families it ``needs``) and its error
reporting. A module takes part by being imported below; ``COMMAND_SET`` is what the assembler
(``ecemu.shell.runner``, the tests' harness) hands to ``Modem``.
"""

from __future__ import annotations

from types import ModuleType

from ..core.registry import CommandSet

from . import basic  # noqa: F401
from . import pdp  # noqa: F401
from . import files  # noqa: F401
from . import open_files  # noqa: F401
from . import ssl  # noqa: F401
from . import tcpip  # noqa: F401
from . import identity  # noqa: F401
from . import radio  # noqa: F401
from . import device  # noqa: F401
from . import mqtt  # noqa: F401
from . import http  # noqa: F401
from . import cmux  # noqa: F401
from . import ppp  # noqa: F401


def _family_modules() -> list[ModuleType]:
    """The family modules imported above, in import order (a module imported by another one, such
    as ``ssl_state``, comes along and declares nothing)."""
    prefix = __name__ + "."
    return [value for value in globals().values()
            if isinstance(value, ModuleType) and value.__name__.startswith(prefix)]


COMMAND_SET = CommandSet.collect(_family_modules())
