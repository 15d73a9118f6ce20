"""The host side of the port: its bytes and the mode that decides where they go.

The host side is in one of six modes, changed only through ``HOST_MODES``:

- ``BOOTING``: before ``RDY``; bytes the host sends wait until the module is up.
- ``COMMAND``: the line editor (``LineEditor``) collects a command line; ``CommandLineRunner`` runs it.
- ``BUSY``: a command is waiting for an event (``Pending``); host bytes wait, in order.
- ``DATA``: raw bytes go to a data sink (``DataEntry``: the ``>`` prompt, AT+QFUPL's CONNECT).
- ``ONLINE``: transparent transmission; bytes go to the connection (``online`` session).
- ``OFF``: powered down (AT+QPOWD) until a reboot; host bytes are lost.

``HostModes`` holds the mode and what each mode owns (the waiting command, the data entry, the
transparent session), the host's bytes not yet consumed, the boot sequence and the DTR line's
effect on transparent mode. A power cycle starts a new one.
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING, Callable, Iterable

from .data_entry import DataEntry
from .lifecycle import Transitions
from .line_editor import LF, REJECTED
from .registry import AwaitData, CommandFailed, OnlineSession, Outcome, Pending, Reply
from .results import ERROR, CmeError, FinalResult
from .urcs import frame_result

if TYPE_CHECKING:
    from .modem import Modem
    from .timers import Timer
    from ..profile import BootUrc

log = logging.getLogger("ecemu.core.modem")  # the messages hosts' logs know


class HostMode(enum.Enum):
    BOOTING = "booting"
    COMMAND = "command"
    BUSY = "busy"
    DATA = "data"
    ONLINE = "online"
    OFF = "off"  # powered down (AT+QPOWD) until reboot(): nothing answers, host bytes are lost


# The modes as the paths run for every command line read them: on Python 3.11 reading a member
# through its class goes through the enum type's __getattr__ hook, a dozen times per line.
COMMAND, ONLINE, DATA, BUSY = HostMode.COMMAND, HostMode.ONLINE, HostMode.DATA, HostMode.BUSY
BOOTING, OFF = HostMode.BOOTING, HostMode.OFF


# Every change of host mode; a power cycle starts again at BOOTING.
HOST_MODES = Transitions("host mode", {
    (HostMode.BOOTING, "booted"): HostMode.COMMAND,  # RDY is out
    (HostMode.COMMAND, "line_done"): HostMode.COMMAND,  # a final result
    (HostMode.COMMAND, "wait"): HostMode.BUSY,  # a handler returned Pending
    (HostMode.COMMAND, "take_data"): HostMode.DATA,  # a handler returned AwaitData
    (HostMode.COMMAND, "connect"): HostMode.ONLINE,  # CONNECT with a session
    (HostMode.BUSY, "resume"): HostMode.COMMAND,  # finish_pending, or the wait timed out
    (HostMode.DATA, "resume"): HostMode.COMMAND,  # the data is complete, or timed out
    (HostMode.ONLINE, "leave"): HostMode.COMMAND,  # +++, DTR, or the connection ended
    **{(mode, "power_off"): HostMode.OFF for mode in HostMode},  # AT+QPOWD, from anywhere
})


def guarded(fn: Callable[[], None]) -> None:
    """Run ``fn``; a bug in one handler is logged and never stops the modem."""
    try:
        fn()
    except Exception:
        log.exception("internal error")


class HostModes:
    """The host mode machine of one power cycle of ``modem``."""

    def __init__(self, modem: "Modem"):
        self.modem = modem
        self.mode = HostMode.BOOTING
        self.booted = False  # every boot URC is out
        self.online: OnlineSession | None = None  # while ONLINE
        self.data_entry: DataEntry | None = None  # while DATA
        self._pending: Pending | None = None  # while BUSY
        self._pending_timer: Timer | None = None
        # A line whose first command the module answers apart from its parser, waiting a moment
        # for the LF of its line end so that the LF is echoed first (``_answer_apart``).
        self._line_waiting_for_lf: bytes | None = None
        self._line_wait_timer: Timer | None = None
        self.input = bytearray()  # host bytes received and not yet consumed
        self._processing = False

    def _to(self, event: str) -> None:
        self.mode = HOST_MODES.next(self.mode, event)
        if event in ("connect", "leave", "power_off"):
            self.modem.lines.refresh()  # DCD follows the data connection with AT&C1

    # --- BOOTING and OFF ---------------------------------------------------------------------

    def boot(self, boot_urcs: "Iterable[BootUrc]", now: float) -> None:
        """The boot URCs at their times, RDY first; host bytes wait until the first is out."""
        modem = self.modem
        boot = modem.boot_count
        urcs = sorted(boot_urcs, key=lambda u: u.after_ms)
        if not urcs:
            self._to("booted")
            self.process_input()
            self.booted = True
            return
        last_index = len(urcs) - 1
        for index, urc in enumerate(urcs):
            def fire(text: str = urc.text, first: bool = index == 0, last: bool = index == last_index) -> None:
                if boot != modem.boot_count:
                    return  # a boot URC of an earlier power cycle
                if first:
                    self._to("booted")
                modem.emit_urc(text)  # RDY goes out before anything the host sent while booting
                if last:
                    self.booted = True
                if first:
                    self.process_input()
            modem.call_at(now + urc.after_ms / 1000.0, fire)

    def power_off(self) -> None:
        """AT+QPOWD: every host byte is lost from now on, until a new power cycle."""
        self.input.clear()
        self._to("power_off")

    # --- host input --------------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        self.input += data
        self.process_input()

    def take_input(self) -> bytes:
        data = bytes(self.input)
        self.input.clear()
        return data

    def process_input(self) -> None:
        if self._processing:
            return  # the outer loop goes on with whatever is left
        self._processing = True
        try:
            self._consume_input()
        finally:
            self._processing = False

    def _consume_input(self) -> None:
        while self.input:
            mode = self.mode
            if mode is BUSY or mode is BOOTING:
                # The parser takes nothing, not even a line end's LF, until the running command
                # has answered (REFERENCE.md "Line ends"): the bytes wait, in order.
                return
            if mode is OFF:
                self.input.clear()
                return
            if self.modem.editor.line_end_open:
                self._take_line_end()
            elif mode is COMMAND:
                self._edit_line()
            elif mode is ONLINE:
                if not self._feed_online():
                    return
            else:
                self._feed_sink()

    def _edit_line(self) -> None:
        """The command-line editor takes bytes until a line completes or input runs out."""
        modem = self.modem
        # Timers already due (AT+CFUN=1,1's reboot) run before the next line is read, as they would
        # have had the host sent that line in a later write: the output never depends on how the
        # host's bytes were split (chosen).
        modem.tick(modem.now)
        if self.mode is not COMMAND or modem.host is not self:
            return
        data = self.input
        editor = modem.editor
        consumed, edited = editor.edit(data, modem.settings, self.mode)
        del data[:consumed]
        if consumed and edited is None:
            modem.line_typed()  # a line begun and not ended holds URCs back (Modem.idle)
        if edited is REJECTED:
            self.finish_line(ERROR)
        elif isinstance(edited, bytes):
            if editor.line_end_open and modem.settings.echo:
                after = modem.line.answered_after(edited)
                if after is not None and self._answer_apart(edited, after):
                    return
            modem.line.execute(edited)

    # --- the byte after a line's CR (REFERENCE.md "Line ends") --------------------------------

    def _take_line_end(self) -> None:
        """The first host byte after a line's CR, once the line has answered (or, for an empty
        line, at once): the LF of a CR LF line end is taken there, echoed only after an empty
        line, since the module's answer to any other line has begun by then; never data, never
        into transparent mode's stream."""
        if self._line_waiting_for_lf is not None:
            self._run_waiting_line()
            return
        modem = self.modem
        editor = modem.editor
        if self.input[0] != LF:
            editor.next_line_began()  # the common case for a host ending lines with CR alone
            return
        mode = self.mode
        editor.take_line_end_lf(self.input, mode, mode is COMMAND, modem.settings.echo and editor.ended_empty)

    def _answer_apart(self, line: bytes, after: float) -> bool:
        """``line`` starts with a command the module answers apart from its parser, ``after``
        seconds after the CR; the parser takes the next byte meanwhile. An LF there is echoed
        before the answer. When that byte has not come yet and this host ends its lines with
        CR LF, the line waits for it until its answer would be ready; True then."""
        editor = self.modem.editor
        data = self.input
        if data:
            if data[0] == LF:
                editor.take_line_end_lf(data, self.mode, True, echo=True)
            return False  # another byte: the host ends this line with CR alone
        if not editor.host_ends_lines_with_lf:
            return False
        modem = self.modem
        self._line_waiting_for_lf = line
        modem.line.running = True  # URCs wait for the answer, as while the line runs
        self._line_wait_timer = modem.call_at(modem.now + after, self._run_waiting_line)
        return True

    def _run_waiting_line(self) -> None:
        """The line that waited for its LF runs: the LF came first (echoed, if it is one), or
        the answer is ready and a later LF will be taken after it."""
        line = self._line_waiting_for_lf
        if line is None or self.mode is not COMMAND or self.modem.host is not self:
            return
        self._line_waiting_for_lf = None
        if self._line_wait_timer is not None:
            self._line_wait_timer.cancel()
            self._line_wait_timer = None
        modem = self.modem
        editor = modem.editor
        if self.input and editor.line_end_open:
            if self.input[0] == LF:
                editor.take_line_end_lf(self.input, self.mode, True, echo=modem.settings.echo)
            else:
                editor.next_line_began()
        modem.line.execute(line)
        self.process_input()

    # --- COMMAND: a line's end ---------------------------------------------------------------

    def finish_line(self, final: FinalResult | CmeError, online: OnlineSession | None = None) -> None:
        """Write the line's final result; with ``online`` the port then enters transparent mode."""
        modem = self.modem
        if isinstance(final, CmeError):
            final = final.as_final(modem.settings.cmee)
        modem.observe("result", text=final.text)
        modem.write_host(frame_result(modem.settings, final))
        line = modem.line
        line.running = False
        line.current = None
        if online is not None:
            self.online = online
            self._to("connect")
            guarded(lambda: online.entered(modem))
            return
        if self.mode is not COMMAND:
            self._to("line_done")  # COMMAND to COMMAND, the common case, needs no lookup
        modem.flush_urcs()

    def _resume(self, outcome: Outcome | CommandFailed) -> None:
        """The running command goes on after a wait or its data: with its outcome, or failed."""
        self._to("resume")
        self.modem.line.resume(outcome)
        self.process_input()

    # --- BUSY --------------------------------------------------------------------------------

    def wait(self, pending: Pending) -> None:
        """The running command waits for an event (``finish_pending``) or its deadline."""
        self._to("wait")
        self._pending = pending
        if pending.deadline is not None:
            self._pending_timer = self.modem.call_at(pending.deadline, self._pending_expired)

    def finish_pending(self, outcome: Outcome | CommandFailed) -> None:
        """Complete the command that returned ``Pending``; the rest of its line runs after it. A
        ``CommandFailed`` ends it (and its line) as a failure of its family, as if raised. Only
        while a command waits: anything else is an illegal transition."""
        if not HOST_MODES.allows(self.mode, "resume") or self._pending is None:
            HOST_MODES.next(self.mode, "finish_pending")  # raises in strict mode, else logs
            return
        self._pending = None
        if self._pending_timer:
            self._pending_timer.cancel()
            self._pending_timer = None
        self._resume(outcome)

    def _pending_expired(self) -> None:
        pending = self._pending
        if pending is None or self.mode is not HostMode.BUSY:
            return
        self._pending_timer = None
        outcome = pending.on_timeout(self.modem) if pending.on_timeout else Reply(final=ERROR)
        self.finish_pending(outcome)

    # --- DATA --------------------------------------------------------------------------------

    def take_data(self, outcome: AwaitData) -> None:
        """Data mode: the prompt, then the host's bytes go to the command's sink."""
        modem = self.modem
        modem.write_host(outcome.prompt)
        self._to("take_data")
        self.data_entry = DataEntry(outcome.sink, outcome.echo, modem.call_at, self._data_expired)

    def _feed_sink(self) -> None:
        entry = self.data_entry
        assert entry is not None  # DATA mode always has one
        modem = self.modem
        outcome = entry.feed(modem, self.input, modem.settings.echo, modem.write_host)
        if outcome is not None:
            self.data_entry = None
            self._resume(outcome)

    def _data_expired(self) -> None:
        entry = self.data_entry
        if self.mode is not HostMode.DATA or entry is None:
            return
        self.data_entry = None
        self._resume(entry.expire(self.modem))

    # --- ONLINE ------------------------------------------------------------------------------

    def _feed_online(self) -> bool:
        """The waiting bytes to the connection; False while flow control holds them here."""
        session = self.online
        if session is None:
            self.input.clear()  # cannot happen: ONLINE always has a session
            return False
        if not session.ready_for_host():
            return False  # flow control: the bytes wait here, in order
        data = self.take_input()
        guarded(lambda: session.feed_host(self.modem, data))
        return True

    def leave_online(self, result: FinalResult | None) -> None:
        """Back to command mode with ``result`` (OK after +++, NO CARRIER when the peer closed;
        none when a multiplexer closes down)."""
        modem = self.modem
        self.online = None
        self._to("leave")
        if result is not None:
            modem.write_host(modem.result_bytes(result))
        modem.flush_urcs()
        self.process_input()

    def dtr_dropped(self) -> None:
        """In transparent mode a drop with AT&D1 leaves for command mode and keeps the connection
        (SSL note 1.4); with AT&D2 it also closes the connection, as V.250 defines &D2 (chosen:
        the note names only &D1); with AT&D0 it does nothing."""
        session = self.online
        if self.mode is not HostMode.ONLINE or session is None:
            return
        modem = self.modem
        dtr_mode = modem.settings.dtr_mode
        if dtr_mode == 1:
            guarded(lambda: session.leave(modem))
        elif dtr_mode == 2:
            guarded(lambda: session.hang_up(modem))

    def host_lost(self, channel_closed: bool = False) -> None:
        """The host went away, which drops DTR (a serial driver's hang-up). With AT&D1 or AT&D2 the
        next host starts in command mode: a data mode the host left waiting ends as when its time
        runs out (chosen; the answer goes to nobody): the bytes after AT+QSSLSEND's ``>`` are
        dropped unsent, those of AT+QFUPL kept as the file; transparent mode, already left by the
        drop, is left as with AT&D1 otherwise. With AT&D0 the module ignores DTR (V.250 6.2.9):
        a host that goes changes nothing, and the data entry or transparent mode goes on. A CMUX
        channel the host closed (``channel_closed``) is gone whatever AT&D says."""
        if self.modem.settings.dtr_mode == 0 and not channel_closed:
            return
        entry = self.data_entry
        session = self.online
        if self.mode is HostMode.DATA and entry is not None:
            entry.end()  # its timer will not fire
            self._data_expired()
        elif self.mode is HostMode.ONLINE and session is not None:
            modem = self.modem
            guarded(lambda: session.leave(modem))
