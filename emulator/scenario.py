"""Scenario files: faults fired on cue, to reproduce a field bug the same way every run.

A scenario is a TOML file (``profiles/scenarios/*.toml``) with a description and a list of faults.
Each fault is one control operation (``ecemu ctl --list``: the same names and arguments) and one
trigger, and fires once:

    [[fault]]
    operation = "server-close"          # what happens
    args = { client = 0 }
    when = { received_bytes = 512, client = 0 }   # when it happens
    delay_ms = 0                        # optional: this long after the trigger

Triggers (``when``), exactly one kind each:

- ``{ at = 2.5 }``: seconds after the emulator started;
- ``{ command = "+QSSLSEND", count = 3 }``: the 3rd command line with that command;
- ``{ urc = "+QSSLOPEN", count = 1 }``: the 1st URC starting with that text;
- ``{ result = "CONNECT", count = 1 }``: the 1st final result with that text;
- ``{ received_bytes = 512, client = 0 }``: once the module has received that many bytes from
  the network on that client (on all clients together when ``client`` is left out).
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .control import OPERATIONS, ControlError, controller_of

if TYPE_CHECKING:
    from .shell.runner import ModemRunner

log = logging.getLogger(__name__)

TRIGGER_KINDS = ("at", "command", "urc", "result", "received_bytes")


class ScenarioError(ValueError):
    """The file is not a valid scenario; the message says where and why."""


def scenarios_dir() -> Path:
    from .profile import profiles_dir

    return profiles_dir() / "scenarios"


def available_scenarios() -> list[str]:
    return sorted(p.stem for p in scenarios_dir().glob("*.toml"))


@dataclass
class Fault:
    operation: str
    args: dict[str, Any]
    trigger: str
    value: Any
    count: int = 1
    client: int | None = None
    delay: float = 0.0
    fired: bool = False
    seen: int = 0  # occurrences of the trigger so far


@dataclass
class Scenario:
    name: str
    description: str
    faults: list[Fault] = field(default_factory=list)

    def player(self, runner: "ModemRunner") -> "ScenarioPlayer":
        return ScenarioPlayer(runner, self)


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A scenario by file path, or by name from ``profiles/scenarios``."""
    path = Path(name_or_path)
    if not path.is_file():
        candidate = scenarios_dir() / f"{name_or_path}.toml"
        if not candidate.is_file():
            known = ", ".join(available_scenarios()) or "none"
            raise ScenarioError(f"no scenario {str(name_or_path)!r} (a file, or one of: {known})")
        path = candidate
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    faults = data.get("fault", [])
    if not isinstance(faults, list) or not faults:
        raise ScenarioError(f"{path}: no [[fault]] entries")
    return Scenario(path.stem, str(data.get("description", "")),
                    [_fault(path, index, entry) for index, entry in enumerate(faults, 1)])


def _fault(path: Path, index: int, entry: dict) -> Fault:
    where = f"{path.name}, fault {index}"
    operation = entry.get("operation")
    if operation not in OPERATIONS or operation == "status":
        raise ScenarioError(f"{where}: unknown operation {operation!r}")
    args = entry.get("args", {})
    try:
        OPERATIONS[operation].convert({k.replace("-", "_"): v for k, v in args.items()})
    except ControlError as exc:
        raise ScenarioError(f"{where}: {exc}") from None
    when = entry.get("when")
    if not isinstance(when, dict):
        when = {}  # no trigger at all: refused just below
    kinds = [k for k in TRIGGER_KINDS if k in when]
    if len(kinds) != 1:
        raise ScenarioError(f"{where}: 'when' needs exactly one of {', '.join(TRIGGER_KINDS)}")
    kind = kinds[0]
    unknown = set(when) - {kind, "count", "client"}
    if unknown:
        raise ScenarioError(f"{where}: unknown trigger key(s) {', '.join(sorted(unknown))}")
    value = when[kind]
    if kind in ("at", "received_bytes") and (not isinstance(value, (int, float)) or value < 0):
        raise ScenarioError(f"{where}: {kind} must be a number >= 0")
    if kind in ("command", "urc", "result") and (not isinstance(value, str) or not value):
        raise ScenarioError(f"{where}: {kind} must be a text")
    count = when.get("count", 1)
    if not isinstance(count, int) or count < 1:
        raise ScenarioError(f"{where}: count must be an integer >= 1")
    delay = entry.get("delay_ms", 0)
    if not isinstance(delay, (int, float)) or delay < 0:
        raise ScenarioError(f"{where}: delay_ms must be >= 0")
    return Fault(operation, {k.replace("-", "_"): v for k, v in args.items()}, kind,
                 value.upper() if kind == "command" else value, count, when.get("client"), delay / 1000.0)


class ScenarioPlayer:
    """Watches one modem (through its observer) and fires the scenario's faults on their cues."""

    def __init__(self, runner: "ModemRunner", scenario: Scenario):
        self.runner = runner
        self.scenario = scenario
        self._received: dict[int | None, int] = {}
        self._due: list[Fault] = []

    def start(self) -> None:
        loop = self.runner.loop
        for fault in self.scenario.faults:
            if fault.trigger == "at":
                loop.call_later(float(fault.value) + fault.delay, self._fire, fault)

    def observe(self, kind: str, details: dict) -> None:
        for fault in self.scenario.faults:
            if fault.fired or fault.trigger == "at":
                continue
            if self._matches(fault, kind, details):
                fault.seen += 1
                if fault.seen >= fault.count:
                    self._schedule(fault)
        if kind == "received":
            size = details.get("size", 0)
            self._received[details.get("client")] = self._received.get(details.get("client"), 0) + size
            self._received[None] = self._received.get(None, 0) + size
            for fault in self.scenario.faults:
                if not fault.fired and fault.trigger == "received_bytes":
                    if self._received.get(fault.client, 0) >= fault.value:
                        self._schedule(fault)

    def _schedule(self, fault: Fault) -> None:
        fault.fired = True
        if fault.delay:
            self.runner.loop.call_later(fault.delay, self._fire, fault)
        else:
            # Never from inside the core's own call, but before anything else reaches the
            # modem: the runner fires it as soon as the call that triggered it is over.
            self._due.append(fault)

    def fire_due(self) -> None:
        while self._due:
            self._fire(self._due.pop(0))

    def _matches(self, fault: Fault, kind: str, details: dict) -> bool:
        if fault.trigger == "command" and kind == "command":
            return fault.value in details["line"].decode("latin-1").upper()
        if fault.trigger == "urc" and kind == "urc":
            return details["lines"][0].decode("latin-1").startswith(fault.value)
        if fault.trigger == "result" and kind == "result":
            return details["text"] == fault.value
        return False

    def _fire(self, fault: Fault) -> None:
        fault.fired = True
        try:
            controller_of(self.runner).invoke(fault.operation, dict(fault.args))
        except ControlError as exc:
            log.warning("scenario %s: %s did not apply: %s", self.scenario.name, fault.operation, exc)
