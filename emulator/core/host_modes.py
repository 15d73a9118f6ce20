"""The host side of one channel: its bytes and the mode that decides where they go.

The host side is in one of six modes, changed only through ``HOST_MODES``:

- ``BOOTING``: before ``RDY``; bytes the host sends wait until the module is up.
- ``COMMAND``: the line editor (``LineEditor``) collects a command line; ``CommandLineRunner`` runs it.
- ``BUSY``: a command is waiting for an event (``Pending``); host bytes wait, in order.
- ``DATA``: raw bytes go to a data sink (``DataEntry``: the ``>`` prompt, AT+QFUPL's CONNECT).
- ``ONLINE``: transparent transmission; bytes go to the connection's session.
- ``OFF``: powered down (AT+QPOWD) or power-cycled (a reboot makes new channels); host bytes are lost.

``HostModes`` holds the state (``state``: the mode with what that mode holds, the waiting command,
the data entry or the transparent session) and the host's bytes not yet consumed, and acts on
what stopped a command line (``command_line.Stop``). It reaches its channel's editor, runner,
settings and output through ``HostChannel``, and the module around it (timers, URCs, the
control lines, the trace) through ``ModuleSide``, both implemented in ``channel.py`` and
``modem.py``; it imports neither.
"""

from __future__ import annotations

import enum
from typing import Any, Callable, Protocol

from .command_line import CommandLineRunner, LineEnd, Stop
from .data_entry import DataEntry
from .lifecycle import Transitions, guarded
from .line_editor import LF, LineEditor
from .registry import AwaitData, CommandFailed, OnlineSession, Outcome, Pending, Reply
from .results import ERROR, CmeError, FinalResult
from .settings import Settings
from .timers import Scheduler, Timer
from .urcs import frame_result


class HostMode(enum.Enum):
    BOOTING = "booting"
    COMMAND = "command"
    BUSY = "busy"
    DATA = "data"
    ONLINE = "online"
    OFF = "off"  # powered down (AT+QPOWD) or power-cycled: nothing answers, host bytes are lost


# The modes as the paths run for every command line read them: on Python 3.11 reading a member
# through its class goes through the enum type's __getattr__ hook, a dozen times per line.
COMMAND, ONLINE, DATA, BUSY = HostMode.COMMAND, HostMode.ONLINE, HostMode.DATA, HostMode.BUSY
BOOTING, OFF = HostMode.BOOTING, HostMode.OFF


# Every change of host mode; a power cycle ends every channel's machine in OFF and starts new ones.
HOST_MODES = Transitions("host mode", {
    (HostMode.BOOTING, "booted"): HostMode.COMMAND,  # RDY is out (a DLC: opened)
    (HostMode.COMMAND, "line_done"): HostMode.COMMAND,  # a final result
    (HostMode.COMMAND, "wait"): HostMode.BUSY,  # a handler returned Pending
    (HostMode.COMMAND, "take_data"): HostMode.DATA,  # a handler returned AwaitData
    (HostMode.COMMAND, "connect"): HostMode.ONLINE,  # CONNECT with a session
    (HostMode.BUSY, "resume"): HostMode.COMMAND,  # finish_pending, or the wait timed out
    (HostMode.DATA, "resume"): HostMode.COMMAND,  # the data is complete, or timed out
    (HostMode.ONLINE, "leave"): HostMode.COMMAND,  # +++, DTR, or the connection ended
    **{(mode, "power_off"): HostMode.OFF for mode in HostMode},  # AT+QPOWD or a reboot, from anywhere
})
# The changes after which DCD may show something else (AT&C1 follows the data connection).
CARRIER_EVENTS = frozenset({"connect", "leave", "power_off"})


# --- the states: each mode with what it holds ------------------------------------------------------


class Plain:
    """BOOTING, COMMAND and OFF: the mode alone."""

    __slots__ = ("mode",)

    def __init__(self, mode: HostMode):
        self.mode = mode


BOOTING_STATE, COMMAND_STATE, OFF_STATE = Plain(BOOTING), Plain(COMMAND), Plain(OFF)


class Waiting:
    """BUSY: the command that returned ``Pending``, and the timer of its deadline."""

    __slots__ = ("pending", "timer")
    mode = BUSY

    def __init__(self, pending: Pending):
        self.pending = pending
        self.timer: Timer | None = None


class TakingData:
    """DATA: the data entry that gives the host's bytes to the command's sink."""

    __slots__ = ("entry",)
    mode = DATA

    def __init__(self, entry: DataEntry):
        self.entry = entry


class Online:
    """ONLINE: the session the host's bytes go to (a socket's transparent mode, a PPP call, the
    multiplexer on the port)."""

    __slots__ = ("session",)
    mode = ONLINE

    def __init__(self, session: OnlineSession):
        self.session = session


HostState = Plain | Waiting | TakingData | Online


# --- the seams -------------------------------------------------------------------------------------


class CarrierWatch(Protocol):
    def refresh(self) -> None:
        """The data state changed: DCD (and a DLC's DV) may show something else."""


class ModuleSide(Scheduler, Protocol):
    """What the host modes need of the module around them (``Modem``, which has their channel in
    hand whenever they run). Online sessions and data sinks receive it as the modem."""

    @property
    def lines(self) -> CarrierWatch: ...

    def tick(self, now: float) -> None:
        """Run the timers due by ``now``."""

    def observe(self, kind: str, **details: Any) -> None: ...

    def flush_urcs(self) -> None:
        """The channel may be idle again: held URCs out."""


class HostChannel(Protocol):
    """The channel whose host side this is (``channel.Channel``)."""

    @property
    def editor(self) -> LineEditor: ...

    @property
    def line(self) -> CommandLineRunner: ...

    @property
    def settings(self) -> Settings: ...

    def write(self, data: bytes | bytearray) -> None:
        """Bytes for this channel's host."""

    def line_typed(self) -> None:
        """The host added to (or emptied) a command line it has not ended."""


class HostModes:
    """The host mode machine of one channel, for one power cycle."""

    def __init__(self, channel: HostChannel, module: ModuleSide):
        self.channel = channel
        self.module = module
        self.state: HostState = BOOTING_STATE
        # ``state.mode``, kept beside it for the per-line paths; ``_enter`` alone writes either.
        self.mode = BOOTING
        self._line_wait_timer: Timer | None = None  # while the runner holds a line (``_answer_apart``)
        self.input = bytearray()  # host bytes received and not yet consumed
        self._processing = False
        # Told every run of bytes the command-line editor takes, in order: the bytes that were
        # command lines, never data after ``>`` or CONNECT (a recorder for tests and tools).
        self.on_command_bytes: Callable[[bytes], None] | None = None

    def _enter(self, event: str, state: HostState) -> None:
        """The transition ``event`` (``IllegalTransition`` when the table does not allow it) into
        ``state``, which holds what its mode needs."""
        mode = HOST_MODES.next(self.mode, event)
        assert state.mode is mode, (event, state)
        self.state = state
        self.mode = mode
        if event in CARRIER_EVENTS:
            self.module.lines.refresh()

    @property
    def online(self) -> OnlineSession | None:
        """The session the port belongs to while ONLINE; None in any other mode."""
        state = self.state
        return state.session if isinstance(state, Online) else None

    # --- BOOTING and OFF ---------------------------------------------------------------------

    def booted(self) -> None:
        """The module is up (RDY is out; a DLC is open): host bytes are read from now on
        (``process_input``, once whatever must come first has gone out)."""
        self._enter("booted", COMMAND_STATE)

    def power_off(self) -> None:
        """AT+QPOWD or a power cycle: every host byte is lost from now on; a timer of this
        machine that still fires finds it OFF and does nothing."""
        self.input.clear()
        self._enter("power_off", OFF_STATE)

    # --- host input --------------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        self.input += data
        self.process_input()

    def take_input(self) -> bytes:
        data = bytes(self.input)
        self.input.clear()
        return data

    def give_back(self, data: bytes) -> None:
        """Bytes a session took that are the host's again (what followed a multiplexer's close
        down), ahead of any that came after them."""
        self.input[:0] = data

    def input_wanted(self, data: bytes | bytearray) -> int:
        """How many of ``data``'s bytes to hand over at once: in command mode up to the end of the
        first command line among them (the line editor knows where lines end), so that a flood
        of lines is answered a line at a time; in any other mode all of them."""
        if self.mode is COMMAND:
            channel = self.channel
            return channel.editor.line_extent(data, channel.settings)
        return len(data)

    def process_input(self) -> None:
        if self._processing:
            return  # the outer loop goes on with whatever is left
        self._processing = True
        try:
            self._consume_input()
        finally:
            self._processing = False

    def _consume_input(self) -> None:
        data = self.input
        editor = self.channel.editor
        while data:
            mode = self.mode
            if mode is COMMAND and not editor.line_end_open:
                self._edit_line()  # the common case first
            elif mode is BUSY or mode is BOOTING:
                # The parser takes nothing, not even a line end's LF, until the running command
                # has answered (REFERENCE.md "Line ends"): the bytes wait, in order.
                return
            elif mode is OFF:
                data.clear()
                return
            elif editor.line_end_open:
                self._take_line_end()
            else:
                state = self.state
                if isinstance(state, Online):
                    if not self._feed_online(state.session):
                        return
                elif isinstance(state, TakingData):
                    self._feed_sink(state.entry)

    def _edit_line(self) -> None:
        """The command-line editor takes bytes until a line completes or input runs out."""
        module = self.module
        # Timers already due (AT+CFUN=1,1's reboot) run before the next line is read, as they would
        # have had the host sent that line in a later write: the output never depends on how the
        # host's bytes were split (chosen).
        module.tick(module.now)
        if self.mode is not COMMAND:
            return  # a timer changed the mode (a reboot left this channel OFF)
        channel = self.channel
        editor = channel.editor
        settings = channel.settings
        data = self.input
        consumed, edited = editor.edit(data, settings, COMMAND)
        if self.on_command_bytes is not None and consumed:
            self.on_command_bytes(bytes(data[:consumed]))
        del data[:consumed]
        if edited is None:
            if consumed:
                channel.line_typed()  # a line begun and not ended holds URCs back (Modem.idle)
            return
        if not isinstance(edited, bytes):  # REJECTED
            self.finish_line(ERROR)
            return
        runner = channel.line
        if editor.line_end_open and settings.echo:
            after = runner.answered_after(edited)
            if after is not None and self._answer_apart(edited, after):
                return
        self._after(runner.execute(edited))

    def _after(self, stop: Stop) -> None:
        """What stopped a run of the line's commands: its end, a wait or data."""
        if isinstance(stop, LineEnd):
            self.finish_line(stop.final, stop.online)
        elif isinstance(stop, AwaitData):
            self._take_data(stop)
        else:
            self._wait(stop)

    # --- the byte after a line's CR (REFERENCE.md "Line ends") --------------------------------

    def _take_line_end(self) -> None:
        """The first host byte after a line's CR, once the line has answered (or, for an empty
        line, at once): the LF of a CR LF line end is taken there, echoed only after an empty
        line, since the module's answer to any other line has begun by then; never data, never
        into transparent mode's stream."""
        channel = self.channel
        if channel.line.held is not None:
            self._run_held_line()
            return
        editor = channel.editor
        if self.input[0] != LF:
            editor.next_line_began()  # the common case for a host ending lines with CR alone
            return
        mode = self.mode
        editor.take_line_end_lf(self.input, mode, mode is COMMAND, channel.settings.echo and editor.ended_empty)

    def _answer_apart(self, line: bytes, after: float) -> bool:
        """``line`` starts with a command the module answers apart from its parser, ``after``
        seconds after the CR; the parser takes the next byte meanwhile. An LF there is echoed
        before the answer. When that byte has not come yet and this host ends its lines with
        CR LF, the runner holds the line for it until its answer would be ready; True then."""
        channel = self.channel
        editor = channel.editor
        data = self.input
        if data:
            if data[0] == LF:
                editor.take_line_end_lf(data, self.mode, True, echo=True)
            return False  # another byte: the host ends this line with CR alone
        if not editor.host_ends_lines_with_lf:
            return False
        module = self.module
        channel.line.hold(line)  # URCs wait for the answer, as while the line runs
        self._line_wait_timer = module.call_at(module.now + after, self._run_held_line)
        return True

    def _run_held_line(self) -> None:
        """The line held for its LF runs: the LF came first (echoed, if it is one), or the
        answer is ready and a later LF will be taken after it."""
        if self.mode is not COMMAND:
            return  # powered off meanwhile
        channel = self.channel
        runner = channel.line
        line = runner.take_held()
        if line is None:
            return
        if self._line_wait_timer is not None:
            self._line_wait_timer.cancel()
            self._line_wait_timer = None
        editor = channel.editor
        if self.input and editor.line_end_open:
            if self.input[0] == LF:
                editor.take_line_end_lf(self.input, self.mode, True, echo=channel.settings.echo)
            else:
                editor.next_line_began()
        self._after(runner.execute(line))
        self.process_input()

    # --- COMMAND: a line's end ---------------------------------------------------------------

    def finish_line(self, final: FinalResult | CmeError, online: OnlineSession | None = None) -> None:
        """Write the line's final result; with ``online`` the port then enters transparent mode."""
        channel = self.channel
        settings = channel.settings
        if isinstance(final, CmeError):
            final = final.as_final(settings.cmee)
        module = self.module
        module.observe("result", text=final.text)
        channel.write(frame_result(settings, final))
        if online is not None:
            self._enter("connect", Online(online))
            guarded(lambda: online.entered(module))
            return
        if self.mode is not COMMAND:
            self._enter("line_done", COMMAND_STATE)  # COMMAND to COMMAND, the common case, needs no lookup
        module.flush_urcs()

    def _resume(self, outcome: Outcome | CommandFailed) -> None:
        """The running command goes on after a wait or its data: with its outcome, or failed."""
        self._enter("resume", COMMAND_STATE)
        self._after(self.channel.line.resume(outcome))
        self.process_input()

    # --- BUSY --------------------------------------------------------------------------------

    def _wait(self, pending: Pending) -> None:
        """The running command waits for an event (``finish_pending``) or its deadline."""
        state = Waiting(pending)
        self._enter("wait", state)
        if pending.deadline is not None:
            state.timer = self.module.call_at(pending.deadline, lambda: self._pending_expired(state))

    def finish_pending(self, outcome: Outcome | CommandFailed) -> None:
        """Complete the command that returned ``Pending``; the rest of its line runs after it. A
        ``CommandFailed`` ends it (and its line) as a failure of its family, as if raised. Only
        while a command waits: anything else is an illegal transition."""
        state = self.state
        if not isinstance(state, Waiting):
            HOST_MODES.refuse(self.mode, "finish_pending")
        if state.timer is not None:
            state.timer.cancel()
        self._resume(outcome)

    def _pending_expired(self, state: Waiting) -> None:
        if self.state is not state:
            return  # finished meanwhile
        state.timer = None
        pending = state.pending
        outcome = pending.on_timeout(self.module) if pending.on_timeout else Reply(final=ERROR)
        self.finish_pending(outcome)

    # --- DATA --------------------------------------------------------------------------------

    def _take_data(self, outcome: AwaitData) -> None:
        """Data mode: the prompt, then the host's bytes go to the command's sink."""
        self.channel.write(outcome.prompt)
        self._enter("take_data", TakingData(DataEntry(outcome.sink, outcome.echo, self.module.call_at,
                                                      self._data_expired)))

    def _feed_sink(self, entry: DataEntry) -> None:
        channel = self.channel
        outcome = entry.feed(self.module, self.input, channel.settings.echo, channel.write)
        if outcome is not None:
            self._resume(outcome)

    def _data_expired(self) -> None:
        state = self.state
        if isinstance(state, TakingData):
            self._resume(state.entry.expire(self.module))

    # --- ONLINE ------------------------------------------------------------------------------

    def _feed_online(self, session: OnlineSession) -> bool:
        """The waiting bytes to the connection; False while flow control holds them here."""
        if not session.ready_for_host():
            return False  # flow control: the bytes wait here, in order
        data = self.take_input()
        module = self.module
        guarded(lambda: session.feed_host(module, data))
        return True

    def leave_online(self, result: FinalResult | None) -> None:
        """Back to command mode with ``result`` (OK after +++, NO CARRIER when the peer closed;
        none when a multiplexer closes down)."""
        self._enter("leave", COMMAND_STATE)
        if result is not None:
            channel = self.channel
            channel.write(frame_result(channel.settings, result))
        self.module.flush_urcs()
        self.process_input()

    def dtr_dropped(self) -> None:
        """In transparent mode a drop with AT&D1 leaves for command mode and keeps the connection
        (SSL note 1.4); with AT&D2 it also closes the connection, as V.250 defines &D2 (chosen:
        the note names only &D1); with AT&D0 it does nothing."""
        state = self.state
        if not isinstance(state, Online):
            return
        session = state.session
        module = self.module
        dtr_mode = self.channel.settings.dtr_mode
        if dtr_mode == 1:
            guarded(lambda: session.leave(module))
        elif dtr_mode == 2:
            guarded(lambda: session.hang_up(module))

    def host_lost(self, channel_closed: bool = False) -> None:
        """The host went away, which drops DTR (a serial driver's hang-up). With AT&D1 or AT&D2 the
        next host starts in command mode: a data mode the host left waiting ends as when its time
        runs out (chosen; the answer goes to nobody): the bytes after AT+QSSLSEND's ``>`` are
        dropped unsent, those of AT+QFUPL kept as the file; transparent mode, already left by the
        drop, is left as with AT&D1 otherwise. With AT&D0 the module ignores DTR (V.250 6.2.9):
        a host that goes changes nothing, and the data entry or transparent mode goes on. A CMUX
        channel the host closed (``channel_closed``) is gone whatever AT&D says."""
        if self.channel.settings.dtr_mode == 0 and not channel_closed:
            return
        state = self.state
        if isinstance(state, TakingData):
            state.entry.end()  # its timer will not fire
            self._data_expired()
        elif isinstance(state, Online):
            session = state.session
            module = self.module
            guarded(lambda: session.leave(module))
