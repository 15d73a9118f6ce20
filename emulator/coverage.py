"""What a session used: each command with its count and results, and the commands the emulator
does not implement, from the observations the modem reports (``Modem.observer(kind, details)``)
as they happen or as a trace file recorded them.

A command is counted per form (``AT+QSSLCFG=`` apart from ``AT+QSSLCFG?``); a bare ``AT`` counts
as ``AT``. A line holding several commands counts each of them, and its one final result is given
out by this rule: the line stopped at the first command the emulator does not implement when it
holds one, else at its last command; that command gets the line's result, the commands before it
count as ``OK`` (a line goes on to its next command only after one succeeded) and the commands
after it as ``not run``. A command that fails in the middle of a line of implemented commands is
therefore counted on the line's last command: the observations do not say which command ended it.

Lines the module refuses before any command runs (not starting with ``AT``, too long, ``A/`` with
nothing to repeat) count as ``(refused line)``; lines that cannot be split into commands as
``(unparsable line)``; past ``ROWS_MAX`` different commands, the rest as one row. A command whose
line had no result yet when the session ended (or when the module restarted under it) shows
``no result``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from .core.parser import CommandCall, Form, SyntaxProblem, parse_command_line
from .commands import COMMAND_SET

NOT_RUN = "not run"
NO_RESULT = "no result"
REFUSED_LINE = "(refused line)"
UNPARSABLE_LINE = "(unparsable line)"
BARE_AT = "AT"
_FORM_SUFFIX = {Form.EXEC: "", Form.READ: "?", Form.TEST: "=?", Form.WRITE: "="}
_FORM_ORDER = {"": 0, "?": 1, "=?": 2, "=": 3}
# Rows kept per table (commands; URC names, TLS events, faults each); a host sending ever new names
# would otherwise grow it without end. What comes beyond counts in one row.
ROWS_MAX = 500
MORE_ROWS = "(more, not listed)"
KNOWN_LINES_MAX = 1024  # lines remembered as split; beyond, the memory starts again
_DETAIL_WIDTH = 60  # a TLS failure's reason is cut here in the summary


def _count(counter: Counter, name: str) -> None:
    counter[name if name in counter or len(counter) < ROWS_MAX else MORE_ROWS] += 1


def _text(value: Any) -> str:
    """Observations carry bytes live and latin-1 text from a trace file; both read the same."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    return value if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Command:
    """One command as counted: ``AT+QIACT=``; ``implemented`` is False when the emulator has no
    handler for it and answers ERROR, whatever the module would do."""

    key: str
    implemented: bool


def _command_of(call: CommandCall) -> Command:
    return Command("AT" + call.name + _FORM_SUFFIX[call.form], call.name in COMMAND_SET.commands)


def commands_of_line(line: str) -> list[Command]:
    """The commands of a command line (``AT...`` as the modem reported it), in order."""
    try:
        calls = parse_command_line(line[2:])
    except SyntaxProblem:
        return [Command(UNPARSABLE_LINE, True)]
    if not calls:
        return [Command(BARE_AT, True)]
    return [_command_of(call) for call in calls]


def _sort_key(command: Command) -> tuple:
    key = command.key
    for suffix in ("=?", "?", "="):
        if key.endswith(suffix):
            return (key.startswith("("), key[: -len(suffix)], _FORM_ORDER[suffix])
    return (key.startswith("("), key, 0)


def _urc_name(lines: Any) -> str:
    """``+QSSLURC: "recv"`` for ``+QSSLURC: "recv",0,5``; ``+QIND`` for ``+QIND: PB DONE``."""
    first = _text(lines[0]) if isinstance(lines, list) and lines else _text(lines)
    name, colon, rest = first.partition(":")
    rest = rest.strip()
    if colon and rest.startswith('"'):
        end = rest.find('"', 1)
        if end > 0:
            return f"{name}: {rest[: end + 1]}"
    return name.strip()


@dataclass
class CommandUse:
    command: Command
    count: int = 0
    results: Counter = field(default_factory=Counter)

    def result_counts(self) -> list[tuple[str, int]]:
        """Results, most frequent first; ``no result`` for uses whose line never got one."""
        counts = self.results.most_common()
        missing = self.count - sum(self.results.values())
        if missing > 0:
            counts.append((NO_RESULT, missing))
        return counts


class LineTally:
    """One command line as counted: its commands' uses, the one that gets the line's result
    (``stop``; the ones before it count as OK, the ones after it as not run), and how often it came
    since that was last added to the uses (``Coverage.uses``)."""

    __slots__ = ("uses", "stop", "count")

    def __init__(self, uses: tuple[CommandUse, ...], stop: int):
        self.uses = uses
        self.stop = stop
        self.count = 0


class Coverage:
    """Aggregates one modem's observations; ``merged`` adds several up."""

    def __init__(self) -> None:
        self._uses: dict[str, CommandUse] = {}
        self.lines = 0
        self.urcs: Counter = Counter()
        self.tls: Counter = Counter()
        self.faults: Counter = Counter()
        self._open_line: LineTally | None = None  # waiting for its result
        # What each line seen holds, and where it stops: drivers send the same lines again and
        # again, and the table is kept while the module answers, so a line is split only once
        # and counted in one place; its commands' counts are added up when the table is read.
        self._known_lines: dict[bytes | str, LineTally] = {}
        self._refused: LineTally | None = None  # the lines refused before any command ran
        # How often each line got each result, in the order each pair first came (the order in
        # which a command's results are listed when their counts are equal).
        self._answers: Counter = Counter()

    @property
    def uses(self) -> dict[str, CommandUse]:
        """Each command's use, its lines' counts added up."""
        self._add_up_lines()
        return self._uses

    def _add_up_lines(self) -> None:
        tallies = list(self._known_lines.values())
        if self._refused is not None:
            tallies.append(self._refused)
        for tally in tallies:
            for use in tally.uses:
                use.count += tally.count
            tally.count = 0
        for (tally, text), times in self._answers.items():
            stop = tally.stop
            for index, use in enumerate(tally.uses):
                use.results["OK" if index < stop else text if index == stop else NOT_RUN] += times
        self._answers.clear()

    # --- taking observations -----------------------------------------------------------------

    def observe(self, kind: str, details: dict) -> None:
        if kind == "command":
            self._command_line(details.get("line", ""))
        elif kind == "result":
            text = details.get("text", "")
            self._result(text if isinstance(text, str) else _text(text))
        elif kind == "urc":
            _count(self.urcs, _urc_name(details.get("lines", "")))
        elif kind == "tls":
            event = _text(details.get("event", ""))
            if event == "failed" and details.get("detail"):
                event = f"failed: {_text(details['detail'])[:_DETAIL_WIDTH]}"
            _count(self.tls, event)
        elif kind == "fault":
            _count(self.faults, _text(details.get("name", "")))

    def attach(self, modem: Any) -> None:
        """Observe a running modem, after whatever observes it already (the trace, a scenario)."""
        previous = modem.observer
        if previous is None:
            modem.observer = self.observe  # called for every line: no wrapper when alone
            return

        def observe(kind: str, details: dict) -> None:
            if previous is not None:
                previous(kind, details)
            self.observe(kind, details)

        modem.observer = observe

    def _use(self, command: Command) -> CommandUse:
        uses = self._uses
        use = uses.get(command.key)
        if use is None:
            if len(uses) >= ROWS_MAX:
                command = Command(MORE_ROWS, True)
                use = uses.get(MORE_ROWS)
                if use is not None:
                    return use
            use = uses[command.key] = CommandUse(command)
        return use

    def _command_line(self, line: Any) -> None:
        self.lines += 1  # an earlier line still open never got its result: it keeps "no result"
        if not isinstance(line, (bytes, str)):
            line = str(line)  # a trace file may hold anything there
        known = self._known_lines.get(line)
        if known is None:
            commands = commands_of_line(_text(line))
            stop = next((i for i, c in enumerate(commands) if not c.implemented), len(commands) - 1)
            known = LineTally(tuple(self._use(command) for command in commands), stop)
            if len(self._known_lines) >= KNOWN_LINES_MAX:
                self._add_up_lines()  # their counts so far, before they are forgotten
                self._known_lines.clear()
            self._known_lines[line] = known
        known.count += 1
        self._open_line = known

    def _result(self, text: str) -> None:
        known, self._open_line = self._open_line, None
        if known is None:  # a line refused before any command ran
            known = self._refused
            if known is None:
                known = self._refused = LineTally((self._use(Command(REFUSED_LINE, True)),), 0)
            known.count += 1
            self.lines += 1
        self._answers[(known, text)] += 1

    # --- reading it --------------------------------------------------------------------------

    @property
    def seen(self) -> bool:
        """At least one command line (or refused line) came."""
        return self.lines > 0

    def rows(self) -> list[CommandUse]:
        return [self.uses[c.key] for c in sorted((u.command for u in self.uses.values()), key=_sort_key)]

    def not_implemented(self) -> list[CommandUse]:
        return [use for use in self.rows() if not use.command.implemented]

    @classmethod
    def merged(cls, parts: Iterable["Coverage"]) -> "Coverage":
        total = cls()
        for part in parts:
            total.lines += part.lines
            total.urcs.update(part.urcs)
            total.tls.update(part.tls)
            total.faults.update(part.faults)
            for use in part.uses.values():
                mine = total._use(use.command)
                mine.count += use.count
                mine.results.update(use.results)
        return total

    def to_json(self) -> dict:
        """The counts as JSON-able data (a pytest-xdist worker hands its table to the controller)."""
        return {"lines": self.lines, "urcs": dict(self.urcs), "tls": dict(self.tls), "faults": dict(self.faults),
                "uses": [[use.command.key, use.command.implemented, use.count, dict(use.results)]
                         for use in self.uses.values()]}

    @classmethod
    def from_json(cls, data: dict) -> "Coverage":
        coverage = cls()
        coverage.lines = int(data.get("lines", 0))
        for name in ("urcs", "tls", "faults"):
            getattr(coverage, name).update(data.get(name, {}))
        for key, implemented, count, results in data.get("uses", []):
            use = coverage._use(Command(str(key), bool(implemented)))
            use.count += int(count)
            use.results.update(results)
        return coverage

    def render(self, title: str = "ecemu coverage") -> list[str]:
        """The table as text lines: command, count, results, and the unimplemented ones marked."""
        if not self.seen:
            return [f"{title}: no command line"]
        rows = self.rows()
        missing = self.not_implemented()
        uses = sum(use.count for use in rows)
        out = [f"{title}: {self.lines} command line{'s' * (self.lines != 1)}, {uses} command"
               f"{'s' * (uses != 1)}, {len(missing)} not implemented by the emulator"]
        width = max([len("command")] + [len(use.command.key) for use in rows])
        out.append(f"  {'command':<{width}}  {'count':>5}  results")
        for use in rows:
            results = ", ".join(f"{text} {count}" for text, count in use.result_counts())
            mark = "" if use.command.implemented else "  << NOT IMPLEMENTED"
            out.append(f"  {use.command.key:<{width}}  {use.count:>5}  {results}{mark}")
        if missing:
            out.append("not implemented: " + ", ".join(use.command.key for use in missing))
        for label, counter in (("URCs", self.urcs), ("TLS", self.tls), ("faults", self.faults)):
            if counter:
                out.append(f"{label}: " + ", ".join(f"{name} {count}" for name, count in counter.most_common()))
        return out


def coverage_of_trace(entries: Iterable[dict]) -> Coverage:
    """The coverage of a trace file's entries (see ``ecemu.shell.trace.read_entries``), every
    modem of the file added up; each modem's lines are paired with its own results."""
    per_modem: dict[Any, Coverage] = {}
    # A line still open when a modem's session ended is not paired with a result of its next one.
    sessions: Counter = Counter()
    for entry in entries:
        name = repr(entry.get("modem", 0))  # as written: a hostile file may hold anything there
        if entry.get("kind") == "session":
            sessions[name] += 1
        modem = (sessions[name], name)
        coverage = per_modem.get(modem)
        if coverage is None:
            coverage = per_modem[modem] = Coverage()
        coverage.observe(_text(entry.get("kind", "")), entry)
    return Coverage.merged(per_modem.values())
