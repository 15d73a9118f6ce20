"""Parameters of the families that report through AT+QIGETERROR (SSL note chapter 5; the TCP/IP
note's AT+QIGETERROR): a parameter missing, malformed or out of range answers plain ERROR and
leaves 552, "invalid parameters", for AT+QIGETERROR."""

from __future__ import annotations

from ..core.parser import CommandCall
from ..core.registry import CommandFailed, int_arg, str_arg
from ..core.results import QiError


def invalid() -> CommandFailed:
    return CommandFailed(QiError.INVALID_PARAMETER)


def number(call: CommandCall, index: int, low: int, high: int, default: int | None = None) -> int:
    return int_arg(call, index, low, high, default, error=invalid)


def text(call: CommandCall, index: int) -> str:
    return str_arg(call, index, error=invalid)


def at_most(call: CommandCall, count: int) -> None:
    if len(call.args) > count:
        raise invalid()
