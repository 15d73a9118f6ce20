"""Normalising rules: what ``ecemu check`` replaces before comparing a real module's line with
the emulator's, because it names this unit, this SIM, this network or this moment rather than
how the module behaves (IMEI, ICCID, IMSI, firmware revision, addresses, ports, times, signal,
operator, cell). Each rule is a regular expression and its replacement, applied to the text of
one line (without its CR LF), in order.

Users add their own: ``ecemu check --rules FILE`` (a TOML file of ``[[rule]]`` tables with
``pattern`` and ``replace``, and an optional ``name``), or ``# normalise: PATTERN => REPLACEMENT``
header lines in the log itself. Theirs are applied after these.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: re.Pattern[str]
    replace: str

    def apply(self, text: str) -> str:
        return self.pattern.sub(self.replace, text)


def _rule(name: str, pattern: str, replace: str) -> Rule:
    return Rule(name, re.compile(pattern), replace)


DEFAULT_RULES: tuple[Rule, ...] = (
    # The unit and its SIM.
    _rule("IMEI or IMSI alone on a line", r"^\d{15}$", "<imei-or-imsi>"),
    _rule("IMEI", r"^(\+(?:CGSN|GSN): )\"?\d{14,17}\"?", r"\1<imei>"),
    _rule("ICCID", r"^(\+(?:QCCID|ICCID|CCID): )\"?[0-9A-Fa-f]{18,22}\"?", r"\1<iccid>"),
    _rule("ICCID alone on a line", r"^\d{18,20}[Ff]?$", "<iccid>"),
    _rule("firmware revision", r"^(Revision: ).*", r"\1<revision>"),
    _rule("firmware revision alone on a line", r"^E[CG]\d{3}[A-Z0-9]{6,}(?:_[\w.]+)?$", "<revision>"),
    _rule("AT+QGMR", r"^(\+QGMR: ).*", r"\1<revision>"),
    # The network and the radio.
    _rule("signal", r"^(\+CSQ: )\d+,\d+", r"\1<rssi>,<ber>"),
    _rule("extended signal", r"^(\+(?:CESQ|QCSQ): ).*", r"\1<signal>"),
    _rule("serving cell", r"^(\+QENG: ).*", r"\1<cell>"),
    _rule("network information", r"^(\+QNWINFO: ).*", r"\1<network>"),
    _rule("operator names", r"^(\+QSPN: ).*", r"\1<operator>"),
    _rule("operator", r"^(\+COPS: \d,\d,)\"[^\"]*\"", r'\1"<operator>"'),
    _rule("operator scan", r"^(\+COPS: )\(.*", r"\1<operators>"),
    _rule("registration", r"^(\+C(?:E|G)?REG: )(?:\d,)?\d(?:,.*)?$", r"\1<registration>"),
    _rule("band configuration", r"^(\+QCFG: \"band\",).*", r"\1<bands>"),
    # Time.
    _rule("module clock", r"^(\+CCLK: ).*", r"\1<time>"),
    _rule("network time", r"^(\+(?:QLTS|CTZE|CTZV|QNTP): ).*", r"\1<time>"),
    # Addresses, host names and ports.
    _rule("socket state", r"^(\+Q(?:I|SSL)STATE: \d+,\"[^\"]*\",)\"[^\"]*\",\d+,\d+", r'\1"<address>",<port>,<port>'),
    _rule("MQTT server", r"^(\+QMTOPEN: \d+,)\"[^\"]*\",\d+", r'\1"<host>",<port>'),
    _rule("HTTP response size", r"^(\+QHTTP(?:GET|POST|POSTFILE): \d+,\d+),\d+", r"\1,<length>"),
    _rule("IPv4 address", r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])", "<ip>"),
    _rule("IPv6 address", r"(?<![\w:])[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){7}(?![\w:])|"
                          r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){1,6}:(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,5})?(?![\w:])",
          "<ip6>"),
    _rule("host name", r"\"(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}\"", '"<host>"'),
    # The hardware around the module.
    _rule("temperatures", r"^(\+QTEMP: ).*", r"\1<temperatures>"),
    _rule("battery", r"^(\+CBC: ).*", r"\1<battery>"),
    _rule("file storage space", r"^(\+QFLDS: )\d+,\d+", r"\1<free>,<total>"),
)


class RuleError(ValueError):
    pass


def rules_from_file(path: str | Path) -> list[Rule]:
    """``[[rule]]`` tables with ``pattern``, ``replace`` and an optional ``name``."""
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise RuleError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{path}: not TOML: {exc}") from None
    tables = document.get("rule", [])
    if not isinstance(tables, list):
        raise RuleError(f"{path}: rules are [[rule]] tables")
    rules = []
    for index, table in enumerate(tables, 1):
        if not isinstance(table, dict) or not isinstance(table.get("pattern"), str) \
                or not isinstance(table.get("replace"), str):
            raise RuleError(f"{path}: rule {index} needs a pattern and a replace (strings)")
        rules.append(_compiled(str(table.get("name", f"rule {index}")), table["pattern"], table["replace"],
                               f"{path}: rule {index}"))
    return rules


def rule_from_header(text: str, where: str = "") -> Rule:
    """``PATTERN => REPLACEMENT`` from a ``# normalise:`` header."""
    pattern, arrow, replace = text.partition(" => ")
    if not arrow:
        raise RuleError(f"{where}normalise header is PATTERN => REPLACEMENT, not {text!r}")
    return _compiled(f"header: {pattern}", pattern, replace, where + "normalise header")


def _compiled(name: str, pattern: str, replace: str, where: str) -> Rule:
    try:
        rule = Rule(name, re.compile(pattern), replace)
        rule.apply("")  # a replacement naming a group the pattern lacks fails here, not mid-check
    except (re.error, IndexError) as exc:
        raise RuleError(f"{where}: {exc}") from None
    return rule


def normalise(text: str, rules: tuple[Rule, ...] | list[Rule]) -> str:
    for rule in rules:
        text = rule.apply(text)
    return text
