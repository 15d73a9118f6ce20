"""An AT channel: the port itself, or one 27.010 DLC over it (AT+CMUX).

Each channel has what a host talks to: its host modes (command, data, online ...), its line editor,
its command line runner, its V.250 settings (echo, verbose, S-registers ...), the URCs held for it
and its output. The module behind the channels is one: PDP contexts, sockets, files and timers are
the modem's and shared by every channel. A channel reaches the module through ``ChannelModule``
(the ``Modem``), and the multiplexer through ``MuxModule``; it imports neither.

The modem works on one channel at a time (``Modem.channel``): the one whose bytes it is taking, or
whose timer or network event fires. Handlers keep writing to ``modem.write_host`` and reading
``modem.settings``; the modem points those at the channel in hand (``Modem.on_channel``).

The signals seam: a DLC's ``signals_out`` are the module's V.24 signals of that channel (DV: DCD
per the channel's AT&C and its data state, IC: RI for a URC it carries, FC), ``dtr`` the host's
(RTC, acted on per the channel's AT&D); they travel in MSC messages. The bare port's are the
serial line's own control lines (``control_lines.py``), with the UART's rate, framing and flow
control: those are the port channel's settings whichever channel is in hand
(``Modem.uart_settings``; REFERENCE.md "CMUX").
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol

from .cmux import CmuxParameters, Multiplexer, V24Signals
from .command_line import CommandLineRunner
from .host_modes import HostModes, ModuleSide
from .lifecycle import guarded
from .line_editor import LineEditor
from .registry import CommandSet, HandlerModem
from .settings import Settings
from .timers import Scheduler, Timer
from .uart import LineFormat
from .urcs import HeldUrcs
from ..profile import Profile

PORT = 0  # the channel of the bare port; a DLC's channel is its DLCI (1-63)
# Bytes a DLC's host sent that its channel has not taken yet (a command running, a call's peer
# slow) above which the module says FC in an MSC for that DLC (27.010 5.4.6.3.7), and below which
# it takes it back: the host stops sending on that channel, nothing is dropped.
CHANNEL_INPUT_HIGH = 64 * 1024
CHANNEL_INPUT_LOW = 16 * 1024
# How long a command line the host has begun and not ended holds URCs back after its last byte
# (chosen, REFERENCE.md "Line ends"): far longer than the gap between the writes of one line from
# any driver (TinyGSM writes "AT", each argument and CR LF apart) or between two bytes at 9600 bd,
# short enough that a line the host abandoned does not keep URCs from it for long.
PARTIAL_LINE_HOLD = 1.0


class ChannelModule(ModuleSide, Protocol):
    """What a channel needs of the module (``Modem``) besides what its host modes need."""

    @property
    def profile(self) -> Profile: ...

    @property
    def commands(self) -> CommandSet: ...


class Channel:
    def __init__(self, module: ChannelModule, number: int, settings: Settings, out: bytearray | None = None,
                 on_signals: Callable[["Channel"], None] | None = None):
        self.number = number
        self.out = bytearray() if out is None else out  # the module's bytes for this channel's host, not yet taken
        self.settings = settings  # ATZ and AT&F put new ones in place (``Modem.settings``)
        self.held_urcs = HeldUrcs()
        self._module = module
        self.editor = LineEditor(module.profile.limits.line_length, self.write, module.observe)
        handler_modem: HandlerModem = module  # the handlers' modem: the module itself
        self.line = CommandLineRunner(module.commands, handler_modem, self, module.observe)
        self.host = HostModes(self, module)
        self.dtr = True  # the host's DTR (RTC in an MSC); the bare port's is the modem's
        self.signals_out = V24Signals()
        self._on_signals = on_signals  # told when ``signals_out`` changes (the multiplexer's MSC)
        self.call_up = False  # a PPP data call of this channel is up (in PPP, or left with +++)
        # When the host last added a byte to a command line it has not ended yet, and the timer that
        # lets held URCs go once that line has stood still (``line_typed``).
        self._typed_at = 0.0
        self._partial_line_timer: Timer | None = None

    def write(self, data: bytes | bytearray) -> None:
        self.out += data

    def take_output(self) -> bytes:
        out = bytes(self.out)
        self.out.clear()
        return out

    def has_carrier(self) -> bool:
        """A data connection has this channel, what AT&C1's DCD shows: transparent mode, or a PPP
        call from its CONNECT until it ends (kept after +++: the call is still up). The
        multiplexer on the port is none: its DLCs show their own (REFERENCE.md "CMUX")."""
        online = self.host.online
        return self.call_up or (online is not None and not isinstance(online, MuxSession))

    def set_signals(self, **changes: bool) -> None:
        """The module changes its V.24 signals of this channel (``dv``: DCD, ``ic``: RI)."""
        current = self.signals_out
        updated = V24Signals(**{**vars(current), **changes})
        if updated != current:
            self.signals_out = updated
            if self._on_signals is not None:
                self._on_signals(self)

    # --- a command line being typed (REFERENCE.md "Line ends") ---------------------------------

    def line_typed(self) -> None:
        """The host added to a command line it has not ended: URCs wait for that line's answer, or
        until the line has stood still for PARTIAL_LINE_HOLD. A line the host emptied again (BS)
        holds nothing back any more."""
        if self.editor.typing:
            self._typed_at = self._module.now
        elif self.held_urcs and not self.line.running:
            self._module.flush_urcs()

    def typing(self) -> bool:
        """A command line is begun and has not stood still for PARTIAL_LINE_HOLD yet."""
        return self.editor.typing and self._module.now < self._typed_at + PARTIAL_LINE_HOLD

    def release_urcs_after_partial_line(self) -> None:
        """URCs held for a line being typed go once the line has stood still (unless it has been
        answered by then, and they went with the answer)."""
        if self._partial_line_timer is None:
            self._partial_line_timer = self._module.call_at(self._typed_at + PARTIAL_LINE_HOLD,
                                                            self._partial_line_stood)

    def _partial_line_stood(self) -> None:
        """The held URCs may go unless the host typed on (then wait for its line again)."""
        self._partial_line_timer = None
        if self.typing():
            self.release_urcs_after_partial_line()
        elif not self.line.running:
            self._module.flush_urcs()

    def __repr__(self) -> str:
        return f"Channel({self.number}, {self.host.mode.value})"


class MuxModule(Scheduler, Protocol):
    """What the multiplexer's session needs of the module (``Modem``): its channels, which the
    module makes, keeps and ends, and the channel in hand."""

    @property
    def port(self) -> Channel: ...

    @property
    def channels(self) -> Mapping[int, Channel]: ...

    def observe(self, kind: str, **details: Any) -> None: ...

    @property
    def line_format(self) -> LineFormat:
        """The port's rate and framing now (AT+IPR, AT+ICF)."""

    def on_channel(self, channel: Channel, work: Callable[[], Any]) -> Any: ...

    def open_channel(self, number: int, on_signals: Callable[[Channel], None]) -> Channel:
        """A new channel for DLC ``number``, in command mode."""

    def close_channel(self, number: int) -> None:
        """DLC ``number``'s channel is gone; what it had for its host goes to nobody."""

    def multiplexer_started(self, session: "MuxSession") -> None: ...

    def multiplexer_ended(self) -> None: ...


class MuxSession:
    """AT+CMUX's multiplexer on the port: the port's channel is ONLINE with this session, whose
    host bytes are 27.010 frames (``Multiplexer``); each DLC the host opens is a ``Channel``. CLD,
    DISC on DLCI 0, a DTR drop (AT&D1/&D2) or the host leaving the port end it: the port is back
    to AT commands (chosen: REFERENCE.md "CMUX")."""

    def __init__(self, module: MuxModule, params: CmuxParameters):
        self.module = module
        self.params = params
        self.mux = Multiplexer(params, self, lambda: module.now, module.call_at, module.observe,
                               lambda: module.line_format)

    # OnlineSession: the port ------------------------------------------------------------------

    def entered(self, modem: HandlerModem) -> None:
        self.module.multiplexer_started(self)
        self.module.observe("mux", state="started", n1=self.params.n1)

    def ready_for_host(self) -> bool:
        return True

    def feed_host(self, modem: HandlerModem, data: bytes) -> None:
        self.mux.receive(data)

    def leave(self, modem: HandlerModem) -> None:
        self.mux.host_gone()

    def hang_up(self, modem: HandlerModem) -> None:
        self.mux.host_gone()

    # MuxHooks: the channels -------------------------------------------------------------------

    def channel_opened(self, dlci: int) -> None:
        module = self.module
        channel = module.open_channel(dlci, self._signals_changed)

        def up() -> None:
            channel.host.booted()  # a new DLC is an AT channel in command mode at once; the module is up
            channel.host.process_input()

        module.on_channel(channel, up)

    def channel_closed(self, dlci: int) -> None:
        module = self.module
        channel = module.channels.get(dlci)
        if channel is None:
            return

        def close() -> None:
            online = channel.host.online
            if online is not None:
                guarded(lambda: online.hang_up(module))  # its call or connection ends with it (chosen)
            else:
                channel.host.host_lost(channel_closed=True)

        module.on_channel(channel, close)
        module.close_channel(dlci)

    def channel_data(self, dlci: int, data: bytes) -> None:
        channel = self.module.channels.get(dlci)
        if channel is not None:
            self.module.on_channel(channel, lambda: channel.host.receive(data))

    def channel_signals(self, dlci: int, signals: V24Signals) -> None:
        """The host's DTR of a channel (RTC): a drop does what AT&D says, on that channel only."""
        channel = self.module.channels.get(dlci)
        if channel is None:
            return
        dropped = channel.dtr and not signals.rtc
        channel.dtr = signals.rtc
        if dropped:
            self.module.on_channel(channel, channel.host.dtr_dropped)

    def closed_down(self) -> None:
        module = self.module
        for dlci in sorted(module.channels):
            self.channel_closed(dlci)
        self.frame_output()
        module.multiplexer_ended()
        module.observe("mux", state="ended")
        port = module.port
        # What followed the close down is AT commands again, ahead of anything later.
        port.host.give_back(self.mux.rest())
        module.on_channel(port, lambda: port.host.leave_online(None))

    def power_lost(self) -> None:
        """The module power-cycles or powers down: what the channels said is framed, and the
        multiplexer takes no more frames (what the host sent after them is lost with the UART)."""
        self.frame_output()
        self.mux.power_lost()

    def _signals_changed(self, channel: Channel) -> None:
        self.mux.send_signals(channel.number, channel.signals_out)

    # the port's output ------------------------------------------------------------------------

    def frame_output(self) -> None:
        """Every channel's output into UIH frames, then onto the port; FC for a channel whose host
        sent more than it has taken."""
        mux = self.mux
        for dlci, channel in self.module.channels.items():
            backlog = len(channel.host.input)
            if not channel.signals_out.fc and backlog > CHANNEL_INPUT_HIGH:
                channel.set_signals(fc=True)
            elif channel.signals_out.fc and backlog < CHANNEL_INPUT_LOW:
                channel.set_signals(fc=False)
            if channel.out:
                mux.send(dlci, channel.take_output())
        if mux.output:
            self.module.port.write(mux.output)
            mux.output.clear()
