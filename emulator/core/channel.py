"""An AT channel: the port itself, or one 27.010 DLC over it (AT+CMUX).

Each channel has what a host talks to: its host modes (command, data, online ...), its line editor,
its command line runner, its V.250 settings (echo, verbose, S-registers ...), the URCs held for it
and its output. The module behind the channels is one: PDP contexts, sockets, files and timers are
the modem's and shared by every channel.

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

from typing import TYPE_CHECKING, Callable

from .cmux import CmuxParameters, Multiplexer, V24Signals
from .command_line import CommandLineRunner
from .host_modes import HostModes, guarded
from .line_editor import LineEditor
from .settings import Settings
from .urcs import HeldUrcs

if TYPE_CHECKING:
    from .modem import Modem
    from .timers import Timer

PORT = 0  # the channel of the bare port; a DLC's channel is its DLCI (1-63)
# Bytes a DLC's host sent that its channel has not taken yet (a command running, a call's peer
# slow) above which the module says FC in an MSC for that DLC (27.010 5.4.6.3.7), and below which
# it takes it back: the host stops sending on that channel, nothing is dropped.
CHANNEL_INPUT_HIGH = 64 * 1024
CHANNEL_INPUT_LOW = 16 * 1024


class Channel:
    def __init__(self, modem: "Modem", number: int, settings: Settings):
        self.number = number
        self.out = bytearray()  # the module's bytes for this channel's host, not yet taken
        self.settings = settings
        self.held_urcs = HeldUrcs()
        self.host = HostModes(modem)
        # The editor writes to whatever channel the modem has in hand: its own, when it runs.
        self.editor = LineEditor(modem.profile.limits.line_length, modem.write_host, modem.observe)
        self.line = CommandLineRunner(modem)
        self.dtr = True  # the host's DTR (RTC in an MSC); the bare port's is the modem's
        self.signals_out = V24Signals()
        # Told when ``signals_out`` changes (the multiplexer's MSC).
        self.on_signals: Callable[["Channel"], None] | None = None
        self.call_up = False  # a PPP data call of this channel is up (in PPP, or left with +++)
        # When the host last added a byte to a command line it has not ended yet, and the timer that
        # lets held URCs go once that line has stood still (``Modem.line_typed``).
        self.typed_at = 0.0
        self.partial_line_timer: "Timer | None" = None

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
            if self.on_signals is not None:
                self.on_signals(self)

    def __repr__(self) -> str:
        return f"Channel({self.number}, {self.host.mode.value})"


class MuxSession:
    """AT+CMUX's multiplexer on the port: the port's channel is ONLINE with this session, whose
    host bytes are 27.010 frames (``Multiplexer``); each DLC the host opens is a ``Channel``. CLD,
    DISC on DLCI 0, a DTR drop (AT&D1/&D2) or the host leaving the port end it: the port is back
    to AT commands (chosen: REFERENCE.md "CMUX")."""

    def __init__(self, modem: "Modem", params: CmuxParameters):
        self.modem = modem
        self.params = params
        self.mux = Multiplexer(params, self, lambda: modem.now, modem.call_at, modem.observe)
        self.ended = False

    # OnlineSession: the port ------------------------------------------------------------------

    def entered(self, modem: "Modem") -> None:
        modem.multiplexed = True
        modem.mux = self
        modem.observe("mux", state="started", n1=self.params.n1)

    def ready_for_host(self) -> bool:
        return True

    def feed_host(self, modem: "Modem", data: bytes) -> None:
        self.mux.receive(data)

    def leave(self, modem: "Modem") -> None:
        self.mux.host_gone()

    def hang_up(self, modem: "Modem") -> None:
        self.mux.host_gone()

    # MuxHooks: the channels -------------------------------------------------------------------

    def channel_opened(self, dlci: int) -> None:
        modem = self.modem
        channel = Channel(modem, dlci, Settings.factory(modem.profile))
        channel.on_signals = self._signals_changed
        modem.channels[dlci] = channel
        # A new DLC is an AT channel in command mode at once; the module is up.
        modem.on_channel(channel, lambda: channel.host.boot((), modem.now))

    def channel_closed(self, dlci: int) -> None:
        modem = self.modem
        channel = modem.channels.get(dlci)
        if channel is None:
            return

        def close() -> None:
            online = channel.host.online
            if online is not None:
                guarded(lambda: online.hang_up(modem))  # its call or connection ends with it (chosen)
            else:
                channel.host.host_lost(channel_closed=True)

        modem.on_channel(channel, close)
        channel.out.clear()  # for nobody: the host closed the channel
        del modem.channels[dlci]

    def channel_data(self, dlci: int, data: bytes) -> None:
        channel = self.modem.channels.get(dlci)
        if channel is not None:
            self.modem.on_channel(channel, lambda: channel.host.receive(data))

    def channel_signals(self, dlci: int, signals: V24Signals) -> None:
        """The host's DTR of a channel (RTC): a drop does what AT&D says, on that channel only."""
        channel = self.modem.channels.get(dlci)
        if channel is None:
            return
        dropped = channel.dtr and not signals.rtc
        channel.dtr = signals.rtc
        if dropped:
            self.modem.on_channel(channel, channel.host.dtr_dropped)

    def closed_down(self) -> None:
        modem = self.modem
        for dlci in sorted(modem.channels):
            self.channel_closed(dlci)
        self.frame_output()
        self.ended = True
        modem.multiplexed = False
        modem.mux = None
        modem.observe("mux", state="ended")
        port = modem.port
        # What followed the close down is AT commands again, ahead of anything later.
        port.host.input[:0] = self.mux.rest()
        modem.on_channel(port, lambda: port.host.leave_online(None))

    def power_lost(self) -> None:
        """The module power-cycles or powers down: what the channels said is framed, and the
        multiplexer takes no more frames (what the host sent after them is lost with the UART)."""
        self.frame_output()
        self.mux.closed = True
        self.ended = True

    def _signals_changed(self, channel: Channel) -> None:
        self.mux.send_signals(channel.number, channel.signals_out)

    # the port's output ------------------------------------------------------------------------

    def frame_output(self) -> None:
        """Every channel's output into UIH frames, then onto the port; FC for a channel whose host
        sent more than it has taken."""
        mux = self.mux
        for dlci, channel in self.modem.channels.items():
            backlog = len(channel.host.input)
            if not channel.signals_out.fc and backlog > CHANNEL_INPUT_HIGH:
                channel.set_signals(fc=True)
            elif channel.signals_out.fc and backlog < CHANNEL_INPUT_LOW:
                channel.set_signals(fc=False)
            if channel.out:
                mux.send(dlci, bytes(channel.out))
                channel.out.clear()
        if mux.output:
            self.modem.port.out += mux.output
            mux.output.clear()
