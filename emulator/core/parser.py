"""Splitting a command line into commands (SSL note 2.1.2, V.250 5.2 - 5.4).

A line is everything after the ``AT`` prefix. Basic commands (``E0``, ``V1``, ``&D2``, ``I``) may
follow each other directly; extended commands (``+NAME``) end at ``;`` or at the end of the line.
Each extended command comes in one of four forms: test ``=?``, read ``?``, write ``=<args>`` and
execution (bare name). Spaces outside quoted strings are ignored, as V.250 allows.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field


class Form(enum.Enum):
    TEST = "test"
    READ = "read"
    WRITE = "write"
    EXEC = "exec"


class SyntaxProblem(Exception):
    """The line cannot be split into commands; it answers ERROR as a whole."""


@dataclass(frozen=True)
class Arg:
    """One parameter as the host wrote it: quoted strings keep their case and inner spaces."""

    text: str
    quoted: bool


@dataclass(frozen=True)
class CommandCall:
    name: str  # upper case: "+QSSLCFG", "E", "&D", "I"
    form: Form
    args: list[Arg | None] = field(default_factory=list)  # None for an omitted parameter
    raw_args: str = ""  # the write form's parameter text as received


BASIC_LETTERS = set("ABDEHILMNOPQTVXZ")
AMPERSAND_LETTERS = set("CDFVWK")
# What an extended command's name is made of after its "+": str.isalnum() characters, "_" and
# "." (\w is exactly isalnum() or "_", for every character).
_NAME_CHARS = re.compile(r"[\w.]*")
DIGITS = set("0123456789")  # not str.isdigit(): "\xb2" (superscript two) is a digit to Python


def _digits_end(text: str, i: int) -> int:
    """The index after the run of ASCII digits starting at ``i``."""
    while i < len(text) and text[i] in DIGITS:
        i += 1
    return i


def split_args(text: str) -> list[Arg | None]:
    """Split ``a,"b,c",,d`` into parameters; an unterminated quote is a syntax problem."""
    args: list[Arg | None] = []
    i, n = 0, len(text)
    if n == 0:
        return args
    while True:
        while i < n and text[i] == " ":
            i += 1
        if i < n and text[i] == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise SyntaxProblem("unterminated string")
            arg: Arg | None = Arg(text[i + 1 : end], True)
            i = end + 1
            while i < n and text[i] == " ":
                i += 1
            if i < n and text[i] != ",":
                raise SyntaxProblem("text after a quoted string")
        else:
            end = text.find(",", i)
            if end < 0:
                end = n
            token = text[i:end].strip()
            arg = Arg(token, False) if token else None
            i = end
        args.append(arg)
        if i >= n:
            return args
        i += 1  # the comma


def _strip_spaces_outside_quotes(text: str) -> str:
    if " " not in text:
        return text  # the usual line: nothing to strip, no loop over its characters
    out = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == " " and not quoted:
            continue
        out.append(ch)
    return "".join(out)


def _extended_end(body: str, start: int) -> int:
    """Index of the ``;`` that ends the extended command starting at ``start`` (or the end)."""
    semicolon, quote = body.find(";", start), body.find('"', start)
    if quote < 0 or 0 <= semicolon < quote:
        # No string before the first ";": it ends the command. Found without a Python loop over
        # the characters, since every extended command of every line passes here.
        return len(body) if semicolon < 0 else semicolon
    quoted = False
    for i in range(start, len(body)):
        ch = body[i]
        if ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            return i
    if quoted:
        raise SyntaxProblem("unterminated string")
    return len(body)


def parse_command_line(body: str) -> list[CommandCall]:
    """Split the text after ``AT`` into calls. Raises SyntaxProblem for a malformed line."""
    calls: list[CommandCall] = []
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if ch in " ;":
            i += 1
            continue
        if ch == "+":
            end = _extended_end(body, i)
            calls.append(_parse_extended(body[i:end]))
            i = end + 1
            continue
        upper = ch.upper()
        if upper == "&":
            if i + 1 >= n or body[i + 1].upper() not in AMPERSAND_LETTERS:
                raise SyntaxProblem("unknown & command")
            name = "&" + body[i + 1].upper()
            i += 2
        elif upper == "S":
            i, call = _parse_s_register(body, i + 1)
            calls.append(call)
            continue
        elif upper == "D":
            # V.250 6.3.1: the dial string runs to the ";" (a voice call) or the line's end.
            end = body.find(";", i + 1)
            end = n if end < 0 else end
            dial = body[i + 1:end]
            calls.append(CommandCall("D", Form.EXEC, [Arg(dial, False)], dial))
            i = end + 1 if end < n else n
            continue
        elif upper in BASIC_LETTERS:
            name = upper
            i += 1
        else:
            raise SyntaxProblem(f"unexpected character {ch!r}")
        while i < n and body[i] == " ":
            i += 1  # "ATE 1" is ATE1: spaces are ignored outside constants (V.250 5.2.1)
        j = _digits_end(body, i)
        digits = body[i:j]
        if j < n and body[j] == "?" and not digits:
            calls.append(CommandCall(name, Form.READ))
            i = j + 1
            continue
        args: list[Arg | None] = [Arg(digits, False)] if digits else []
        calls.append(CommandCall(name, Form.EXEC, args, digits))
        i = j
    return calls


def _parse_s_register(body: str, i: int) -> tuple[int, CommandCall]:
    j = _digits_end(body, i)
    if j == i:
        raise SyntaxProblem("S without a register number")
    name = "S" + str(int(body[i:j]))
    if j < len(body) and body[j] == "?":
        return j + 1, CommandCall(name, Form.READ)
    if j < len(body) and body[j] == "=":
        k = _digits_end(body, j + 1)
        value = body[j + 1 : k]
        return k, CommandCall(name, Form.WRITE, [Arg(value, False) if value else None], value)
    raise SyntaxProblem("S register without ? or =")


def _parse_extended(text: str) -> CommandCall:
    match = _NAME_CHARS.match(text, 1)
    assert match is not None  # the pattern matches the empty string
    j = match.end()
    name = text[:j].upper()
    if len(name) < 2:
        raise SyntaxProblem("empty extended command name")
    rest = text[j:]
    compact = _strip_spaces_outside_quotes(rest)
    if compact == "":
        return CommandCall(name, Form.EXEC)
    if compact == "?":
        return CommandCall(name, Form.READ)
    if compact == "=?":
        return CommandCall(name, Form.TEST)
    if compact.startswith("="):
        raw = rest[rest.index("=") + 1 :]
        return CommandCall(name, Form.WRITE, split_args(raw), raw)
    raise SyntaxProblem(f"malformed command {text!r}")
