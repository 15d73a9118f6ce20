"""3GPP TS 27.010 basic option: the frames, the control channel's messages and the module's side of
the multiplexer (the responder), with each DLC's state in a table.

After AT+CMUX the port carries frames ``F9 <address> <control> <length> <information> <FCS> F9``
(27.010 5.2). The host (the initiator) opens DLCI 0, the control channel, then the channels it
wants, each with SABM answered UA; DISC closes one (UA), DM says a DLCI is not open. Data travels
in UIH frames whose FCS covers only the address, control and length octets (5.2.1.6). On DLCI 0
UIH frames carry the control messages (5.4.6.3): MSC (the V.24 signals), FCon/FCoff, PSC, CLD
(close down: back to AT commands on the port), Test, PN; anything else is answered NSC.

Nothing here does I/O: ``Multiplexer.receive`` takes the port's bytes, the frames for the host
collect in ``output``; channels open, close, get data and signals through ``MuxHooks``; the
module's own commands (its MSC) wait for their response through the timer the modem hands in
(T2, retried N2 times). Sources: REFERENCE.md "CMUX".
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol

from .lifecycle import Transitions
from .uart import LineFormat

if TYPE_CHECKING:
    from .timers import Timer

log = logging.getLogger(__name__)

FLAG = 0xF9
EA = 0x01  # the extension bit: this is the last octet of the field
CR = 0x02  # the command/response bit
PF = 0x10  # the poll/final bit of the control field


class Control(enum.IntEnum):
    """The frame types of the basic option (27.010 5.2.1.3, table 2), the P/F bit clear."""

    SABM = 0x2F
    UA = 0x63
    DM = 0x0F
    DISC = 0x43
    UIH = 0xEF
    UI = 0x03


class Message(enum.IntEnum):
    """The control channel's message types (27.010 5.4.6.3), EA set, C/R clear."""

    PN = 0x81  # DLC parameter negotiation
    PSC = 0x41  # power saving control
    CLD = 0xC1  # multiplexer close down
    TEST = 0x21
    FCON = 0xA1  # flow control on: the sender can take data again
    FCOFF = 0x61  # flow control off: send nothing but control
    MSC = 0xE1  # modem status command: the V.24 signals of a DLC
    NSC = 0x11  # non supported command response
    RPN = 0x91  # remote port negotiation
    RLS = 0x51  # remote line status
    SNC = 0xD1  # service negotiation


# --- the FCS (27.010 5.2.1.6, annex B) ----------------------------------------------------------


def _crc_table() -> tuple[int, ...]:
    """The reversed CRC-8 of x^8 + x^2 + x + 1, one entry per octet (27.010 annex B)."""
    table = []
    for octet in range(256):
        crc = octet
        for _ in range(8):
            crc = (crc >> 1) ^ 0xE0 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


CRC_TABLE = _crc_table()
GOOD_FCS = 0xCF  # the remainder a frame's octets and its FCS leave when none was altered (annex B)


def fcs(octets: bytes) -> int:
    """The FCS the sender puts after ``octets``: the ones complement of the CRC, started at 0xFF."""
    crc = 0xFF
    for octet in octets:
        crc = CRC_TABLE[crc ^ octet]
    return 0xFF - crc


def fcs_checks(octets: bytes, received: int) -> bool:
    crc = 0xFF
    for octet in octets:
        crc = CRC_TABLE[crc ^ octet]
    return CRC_TABLE[crc ^ received] == GOOD_FCS


# --- frames -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    dlci: int
    control: Control
    cr: bool  # the C/R bit of the address octet
    pf: bool  # the poll/final bit
    info: bytes = b""


def encode_length(length: int) -> bytes:
    """One octet up to 127, else two (27.010 5.2.1.5)."""
    if length <= 0x7F:
        return bytes(((length << 1) | EA,))
    return bytes(((length << 1) & 0xFE, length >> 7))


def encode_frame(frame: Frame) -> bytes:
    address = (frame.dlci << 2) | (CR if frame.cr else 0) | EA
    control = frame.control | (PF if frame.pf else 0)
    header = bytes((address, control)) + encode_length(len(frame.info))
    # The FCS covers the information too, except in UIH frames (5.2.1.6).
    covered = header if frame.control is Control.UIH else header + frame.info
    return bytes((FLAG,)) + header + frame.info + bytes((fcs(covered), FLAG))


class FrameError(enum.Enum):
    BAD_FCS = "bad FCS"
    TOO_LONG = "longer than N1"
    BAD_CONTROL = "unknown control field"
    TRUNCATED = "closing flag missing"


@dataclass(frozen=True)
class Discarded:
    """Octets between flags that are not a valid frame: dropped, as 27.010 5.2.1.6 and 5.2.6 say."""

    error: FrameError
    octets: bytes


class FrameDecoder:
    """Port bytes in, frames out. Octets before a flag are skipped; a frame whose FCS is wrong,
    whose length exceeds N1 or whose closing flag is missing is discarded and reported (never acted
    on); the search for the next frame goes on at the next flag."""

    def __init__(self, max_info: int):
        self.max_info = max_info
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[Frame | Discarded]:
        """Each frame (or discarded run) as it completes; what a caller stops reading at stays
        in the buffer (``rest``)."""
        buf = self._buffer
        buf += data
        while True:
            start = buf.find(FLAG)
            if start < 0:
                buf.clear()
                return
            if start:
                del buf[:start]
            # Several flags in a row: the closing flag of one frame and the opening of the next.
            while len(buf) > 1 and buf[1] == FLAG:
                del buf[0]
            if len(buf) < 4:
                return
            address, control = buf[1], buf[2]
            if not buf[3] & EA:
                if len(buf) < 5:
                    return
                length, header_size = (buf[3] >> 1) | (buf[4] << 7), 4
            else:
                length, header_size = buf[3] >> 1, 3
            if length > self.max_info:
                yield Discarded(FrameError.TOO_LONG, bytes(buf[:1 + header_size]))
                del buf[0]  # resynchronise at the next flag
                continue
            end = 1 + header_size + length  # the FCS's index
            if len(buf) < end + 2:
                return
            if buf[end + 1] != FLAG:
                yield Discarded(FrameError.TRUNCATED, bytes(buf[:end + 2]))
                del buf[0]
                continue
            header = bytes(buf[1:1 + header_size])
            info = bytes(buf[1 + header_size:end])
            received = buf[end]
            del buf[:end + 1]  # the closing flag stays: it may open the next frame
            kind = control & ~PF
            try:
                frame_type = Control(kind)
            except ValueError:
                yield Discarded(FrameError.BAD_CONTROL, header + info)
                continue
            covered = header if frame_type is Control.UIH else header + info
            if not fcs_checks(covered, received):
                yield Discarded(FrameError.BAD_FCS, header + info)
                continue
            yield Frame(address >> 2, frame_type, bool(address & CR), bool(control & PF), info)

    def power_lost(self) -> None:
        """The module lost power: no frame goes either way any more, and no timer of the
        multiplexer's resends."""
        self.closed = True

    def rest(self) -> bytes:
        """What follows the last frame read (the closing flag left out)."""
        data = bytes(self._buffer).lstrip(bytes((FLAG,)))
        self._buffer.clear()
        return data


# --- control channel messages (27.010 5.4.6) -----------------------------------------------------


@dataclass(frozen=True)
class ControlMessage:
    kind: int  # a Message value, or an unknown type as received (EA set, C/R clear)
    command: bool  # the C/R bit of the type octet: a command (True) or a response
    value: bytes = b""


def encode_message(message: ControlMessage) -> bytes:
    kind = message.kind | (CR if message.command else 0)
    return bytes((kind,)) + _encode_message_length(len(message.value)) + message.value


def _encode_message_length(length: int) -> bytes:
    out = bytearray()
    while True:
        octet = (length & 0x7F) << 1
        length >>= 7
        if not length:
            out.append(octet | EA)
            return bytes(out)
        out.append(octet)


def decode_messages(info: bytes) -> list[ControlMessage]:
    """Every message of one UIH frame on DLCI 0; a truncated one ends the list."""
    out: list[ControlMessage] = []
    i = 0
    while i < len(info):
        kind = info[i]
        i += 1
        while not kind & EA and i < len(info):  # a type longer than one octet: not in the basic set
            kind = info[i]
            i += 1
        length = shift = 0
        while i < len(info):
            octet = info[i]
            i += 1
            length |= (octet >> 1) << shift
            shift += 7
            if octet & EA:
                break
        else:
            return out
        if i + length > len(info):
            return out
        out.append(ControlMessage(kind & ~CR, bool(kind & CR), bytes(info[i:i + length])))
        i += length
    return out


@dataclass(frozen=True)
class V24Signals:
    """The signals an MSC carries (27.010 5.4.6.3.7): FC (flow control: the sender cannot take
    frames), RTC (ready to communicate: DTR from the host, DSR from the module), RTR (ready to
    receive: RTS / CTS), IC (incoming call: RI) and DV (data valid: DCD)."""

    fc: bool = False
    rtc: bool = True
    rtr: bool = True
    ic: bool = False
    dv: bool = False

    def encode(self) -> int:
        return (EA | (0x02 if self.fc else 0) | (0x04 if self.rtc else 0) | (0x08 if self.rtr else 0)
                | (0x40 if self.ic else 0) | (0x80 if self.dv else 0))

    @classmethod
    def decode(cls, octet: int) -> "V24Signals":
        return cls(fc=bool(octet & 0x02), rtc=bool(octet & 0x04), rtr=bool(octet & 0x08),
                   ic=bool(octet & 0x40), dv=bool(octet & 0x80))


def msc_value(dlci: int, signals: V24Signals) -> bytes:
    return bytes(((dlci << 2) | CR | EA, signals.encode()))


# --- the DLCs ------------------------------------------------------------------------------------


class DlcState(enum.Enum):
    CLOSED = "closed"  # disconnected mode: only SABM opens it (27.010 5.3.3)
    OPEN = "open"


DLC_STATES = Transitions("DLC", {
    (DlcState.CLOSED, "sabm"): DlcState.OPEN,  # UA
    (DlcState.OPEN, "sabm"): DlcState.OPEN,  # a host that opens it again: UA (chosen)
    (DlcState.OPEN, "disc"): DlcState.CLOSED,  # UA
    (DlcState.OPEN, "close_down"): DlcState.CLOSED,  # CLD, DISC on DLCI 0, a host gone
})


@dataclass(frozen=True)
class CmuxParameters:
    """AT+CMUX's parameters (27.007 5.7): the basic option, UIH frames; N1 the longest
    information field, T1 and T2 in tens of milliseconds, N2 the retries, T3 in seconds."""

    mode: int = 0
    subset: int = 0
    port_speed: int = 5
    n1: int = 31
    t1: int = 10
    n2: int = 3
    t2: int = 30
    t3: int = 10
    k: int = 2


# 27.010 5.4.6.3.9 (RPN), the baud rate octet's codes. A rate the table has no code for (the
# module's 460800 and 921600) is given as the highest it has (chosen: the standard stops there).
RPN_BAUD_CODES = {2400: 0, 4800: 1, 7200: 2, 9600: 3, 19200: 4, 38400: 5, 57600: 6, 115200: 7, 230400: 8}
RPN_PARITY_TYPES = {"odd": 0, "even": 1, "mark": 2, "space": 3}
XON, XOFF = 0x11, 0x13


def rpn_settings(line: LineFormat) -> bytes:
    """RPN's seven value octets after the DLCI for the port as it is (27.010 5.4.6.3.9): the rate;
    data bits (D1 D2), stop bit (1, or 1.5 for the module's 2), parity and its type; no flow
    control in the mux (AT+IFC acts on the port itself); XON, XOFF; a mask with every parameter."""
    baud = RPN_BAUD_CODES.get(line.baud, 8 if line.baud > 230400 else 7)
    framing = (line.data_bits - 5) & 0x03 | (line.stop_bits > 1) << 2
    if line.parity != "none":
        framing |= 1 << 3 | RPN_PARITY_TYPES[line.parity] << 4
    return bytes((baud, framing, 0x00, XON, XOFF, 0x7F, 0x3F))


def _rpn_accepted(asked: bytes, ours: bytes) -> bytes:
    """RPN's parameter mask for a negotiation: a bit for each parameter the host asked for (its
    own mask) whose value is the port's."""
    pm1, pm2 = asked[5], asked[6]
    accepted1 = 0
    checks = ((0x01, asked[0] == ours[0]),  # bit rate
              (0x02, asked[1] & 0x03 == ours[1] & 0x03),  # data bits
              (0x04, asked[1] & 0x04 == ours[1] & 0x04),  # stop bits
              (0x08, asked[1] & 0x08 == ours[1] & 0x08),  # parity
              (0x10, asked[1] & 0x30 == ours[1] & 0x30),  # parity type
              (0x20, asked[3] == ours[3]),  # XON
              (0x40, asked[4] == ours[4]))  # XOFF
    for bit, same in checks:
        if pm1 & bit and same:
            accepted1 |= bit
    accepted2 = 0
    for bit in range(6):  # flow control: the bits of octet 4, one for one
        if pm2 & 1 << bit and (asked[2] ^ ours[2]) & 1 << bit == 0:
            accepted2 |= 1 << bit
    return bytes((accepted1, accepted2))


class MuxHooks(Protocol):
    """What the modem does when the host opens, closes, writes to or signals a channel."""

    def channel_opened(self, dlci: int) -> None: ...

    def channel_closed(self, dlci: int) -> None: ...

    def channel_data(self, dlci: int, data: bytes) -> None: ...

    def channel_signals(self, dlci: int, signals: V24Signals) -> None: ...

    def closed_down(self) -> None:
        """CLD or DISC on DLCI 0: the port is back to AT commands."""


class Dlc:
    """One data link connection: its state, the host's signals and the module's."""

    def __init__(self, dlci: int):
        self.dlci = dlci
        self.state = DlcState.CLOSED
        self.host_signals = V24Signals()  # as the host's last MSC said
        self.module_signals = V24Signals()
        self.pending_output = bytearray()  # held while the host said FC (or FCoff)

    def to(self, event: str) -> None:
        self.state = DLC_STATES.next(self.state, event)


MAX_DLCI = 63


class Multiplexer:
    """The module's side of the multiplexer on the port. Frames for the host collect in ``output``."""

    def __init__(self, params: CmuxParameters, hooks: MuxHooks, now: Callable[[], float],
                 call_at: Callable[[float, Callable[[], None]], "Timer"],
                 observe: Callable[..., Any] = lambda kind, **details: None,
                 port_format: Callable[[], LineFormat] = LineFormat):
        self.params = params
        self._port_format = port_format  # the UART's rate and framing now (AT+IPR, AT+ICF)
        self.hooks = hooks
        self._now = now
        self._call_at = call_at
        self._observe = observe
        self.decoder = FrameDecoder(params.n1)
        self.output = bytearray()
        self.dlcs: dict[int, Dlc] = {}
        self.flow_off = False  # FCoff: nothing but the control channel goes to the host
        self.closed = False  # CLD done: the port carries AT commands again
        self.asleep = False  # PSC: until the host's next frame
        # The module's commands waiting for the host's response: (message kind, value) -> attempt
        self._awaiting: dict[tuple[int, bytes], tuple[int, "Timer"]] = {}

    # --- the host's bytes ------------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        for item in self.decoder.feed(data):
            if isinstance(item, Discarded):
                log.info("CMUX frame discarded: %s", item.error.value)
                self._observe("mux_frame", direction="in", discarded=item.error.value, data=item.octets)
                continue
            self._observe("mux_frame", direction="in", **_describe(item))
            if self.asleep:
                self.asleep = False  # any frame wakes the module (27.010 5.4.6.3.2)
            self._frame(item)
            if self.closed:
                return  # after CLD what follows is AT commands again: the caller takes it (``rest``)

    def _frame(self, frame: Frame) -> None:
        if frame.dlci > MAX_DLCI:
            return
        control = frame.control
        dlc = self.dlcs.get(frame.dlci)
        is_open = dlc is not None and dlc.state is DlcState.OPEN
        if frame.dlci != 0 and not self._control_open() and control is not Control.DISC:
            # Nothing opens before the control channel (27.010 5.8.1): disconnected mode.
            self._respond(frame.dlci, Control.DM)
            return
        if control is Control.SABM:
            self._open(frame.dlci)
        elif control is Control.DISC:
            if not is_open:
                self._respond(frame.dlci, Control.DM)  # DISC in disconnected mode (27.010 5.3.4)
            elif frame.dlci == 0:
                self._respond(0, Control.UA)
                self._close_down()  # DISC on DLCI 0 closes the multiplexer, as CLD (27.010 5.8.2)
            else:
                self._respond(frame.dlci, Control.UA)
                assert dlc is not None
                dlc.to("disc")
                self._observe("mux_channel", dlci=frame.dlci, state="closed", by="host")
                self.hooks.channel_closed(frame.dlci)
        elif control in (Control.UIH, Control.UI):
            if not is_open:
                # Data for a DLC that is not open: the station is in disconnected mode (5.3.3).
                if frame.pf or frame.cr:
                    self._respond(frame.dlci, Control.DM)
                return
            if frame.dlci == 0:
                for message in decode_messages(frame.info):
                    self._control_message(message)
            elif frame.info:
                self.hooks.channel_data(frame.dlci, frame.info)
        # UA and DM from the host answer nothing the module sent: ignored.

    def _control_open(self) -> bool:
        control = self.dlcs.get(0)
        return control is not None and control.state is DlcState.OPEN

    def _open(self, dlci: int) -> None:
        dlc = self.dlcs.get(dlci)
        again = dlc is not None and dlc.state is DlcState.OPEN
        if dlci == 0 and again:
            # The host starts the multiplexer over: every channel it had is closed first (chosen).
            self._close_channels("host restarted the multiplexer")
        if dlc is None or not again:
            # A DLC opened anew starts clean: its signals are the new channel's, not the last one's.
            fresh = Dlc(dlci)
            if dlc is not None:
                fresh.state = dlc.state
            dlc = self.dlcs[dlci] = fresh
        dlc.to("sabm")
        self._respond(dlci, Control.UA)
        if dlci and not again:
            self._observe("mux_channel", dlci=dlci, state="open")
            self.hooks.channel_opened(dlci)
            # The module tells the new channel's signals (27.010 5.4.6.3.7: sent after the DLC is up).
            self.send_signals(dlci, dlc.module_signals, force=True)
        elif dlci == 0 and not again:
            self._observe("mux_channel", dlci=0, state="open")

    # --- the control channel ---------------------------------------------------------------------

    def _control_message(self, message: ControlMessage) -> None:
        kind = message.kind
        self._observe("mux_control", message=_message_name(kind), command=message.command,
                      value=message.value.hex())
        if not message.command:
            self._response_came(kind, message.value)
            return
        value = message.value
        if kind == Message.MSC:
            if len(value) < 2:
                return
            dlci = value[0] >> 2
            self._send_control(ControlMessage(Message.MSC, False, value))
            dlc = self.dlcs.get(dlci)
            if dlc is not None and dlc.state is DlcState.OPEN:
                before = dlc.host_signals
                dlc.host_signals = V24Signals.decode(value[1])
                if before.fc and not dlc.host_signals.fc:
                    self._flush(dlc)
                self.hooks.channel_signals(dlci, dlc.host_signals)
        elif kind == Message.FCOFF:
            self.flow_off = True
            self._send_control(ControlMessage(Message.FCOFF, False))
        elif kind == Message.FCON:
            self.flow_off = False
            self._send_control(ControlMessage(Message.FCON, False))
            for dlc in list(self.dlcs.values()):
                self._flush(dlc)
        elif kind == Message.TEST:
            self._send_control(ControlMessage(Message.TEST, False, value))  # the pattern back (5.4.6.3.4)
        elif kind == Message.PSC:
            self._send_control(ControlMessage(Message.PSC, False, value))
            self.asleep = True
        elif kind == Message.CLD:
            self._send_control(ControlMessage(Message.CLD, False))
            self._close_down()
        elif kind == Message.PN:
            # The basic option with UIH frames only: the module answers with the values it uses,
            # its N1 if the host asks for more (27.010 5.4.6.3.1).
            if len(value) == 8:
                asked = value[4] | (value[5] << 8)
                n1 = min(asked, self.params.n1) if asked else self.params.n1
                answer = bytes((value[0], 0x00, value[2], value[3], n1 & 0xFF, n1 >> 8, value[6], value[7]))
                self._send_control(ControlMessage(Message.PN, False, answer))
            else:
                self._send_control(ControlMessage(Message.NSC, False, bytes((kind | CR,))))
        elif kind == Message.RPN and len(value) in (1, 8):
            # A query gets the port's settings (27.010 5.4.6.3.9). A negotiation gets them too, its
            # mask naming only what the host asked for and the port already has: the mux does not
            # change the module's UART (chosen; AT+IPR and AT+ICF do that).
            settings = rpn_settings(self._port_format())
            if len(value) == 8:
                mask = _rpn_accepted(value[1:], settings)
                settings = settings[:5] + mask
            self._send_control(ControlMessage(Message.RPN, False, value[:1] + settings))
        elif kind == Message.RLS:
            self._send_control(ControlMessage(Message.RLS, False, value))
        else:
            self._send_control(ControlMessage(Message.NSC, False, bytes((kind | CR | EA,))))

    def _send_control(self, message: ControlMessage) -> None:
        self._observe("mux_control", message=_message_name(message.kind), command=message.command,
                      value=message.value.hex(), direction="out")
        self._send_frame(Frame(0, Control.UIH, False, False, encode_message(message)))

    def send_signals(self, dlci: int, signals: V24Signals, force: bool = False) -> None:
        """The module's V.24 signals of a channel changed (DCD in a data call, RI for a ring): an
        MSC command, repeated every T2 until the host answers, N2 times at most (27.010 5.4.6)."""
        dlc = self.dlcs.get(dlci)
        if dlc is None or dlc.state is not DlcState.OPEN or self.closed:
            return
        if signals == dlc.module_signals and not force:
            return
        dlc.module_signals = signals
        value = msc_value(dlci, signals)
        for key in [key for key in self._awaiting if key[0] == Message.MSC and key[1][:1] == value[:1]]:
            self._awaiting.pop(key)[1].cancel()  # an older MSC of this channel is superseded
        self._command(ControlMessage(Message.MSC, True, value), attempt=0)

    def _command(self, message: ControlMessage, attempt: int) -> None:
        self._send_control(message)
        key = (message.kind, message.value)
        deadline = self._now() + self.params.t2 / 100.0

        def expired() -> None:
            if self._awaiting.pop(key, None) is None or self.closed:
                return
            if attempt < self.params.n2:
                self._command(message, attempt + 1)
            else:
                log.info("CMUX: no response to %s after %d tries", _message_name(message.kind), attempt + 1)

        self._awaiting[key] = (attempt, self._call_at(deadline, expired))

    def _response_came(self, kind: int, value: bytes) -> None:
        entry = self._awaiting.pop((kind, value), None)
        if entry is not None:
            entry[1].cancel()

    # --- the module's bytes ----------------------------------------------------------------------

    def send(self, dlci: int, data: bytes) -> None:
        """A channel's output, in UIH frames of at most N1 octets; held while the host said it
        cannot take more (FCoff, or FC in its MSC for the channel)."""
        dlc = self.dlcs.get(dlci)
        if dlc is None or dlc.state is not DlcState.OPEN or self.closed or not data:
            return
        if self.flow_off or dlc.host_signals.fc or dlc.pending_output:
            dlc.pending_output += data
            if self.flow_off or dlc.host_signals.fc:
                return
            data, dlc.pending_output = bytes(dlc.pending_output), bytearray()
        n1 = self.params.n1
        for start in range(0, len(data), n1):
            self._send_frame(Frame(dlci, Control.UIH, False, False, data[start:start + n1]))

    def held_for(self, dlci: int) -> int:
        dlc = self.dlcs.get(dlci)
        return len(dlc.pending_output) if dlc is not None else 0

    def _flush(self, dlc: Dlc) -> None:
        if dlc.pending_output and not self.flow_off and not dlc.host_signals.fc:
            data, dlc.pending_output = bytes(dlc.pending_output), bytearray()
            self.send(dlc.dlci, data)

    def _respond(self, dlci: int, control: Control) -> None:
        # A response from the responder has C/R set (27.010 5.2.1.2, table 1); F answers P.
        self._send_frame(Frame(dlci, control, True, True))

    def _send_frame(self, frame: Frame) -> None:
        self._observe("mux_frame", direction="out", **_describe(frame))
        self.output += encode_frame(frame)

    # --- the end ---------------------------------------------------------------------------------

    def _close_channels(self, why: str) -> None:
        for dlci, dlc in sorted(self.dlcs.items()):
            if dlci and dlc.state is DlcState.OPEN:
                dlc.to("close_down")
                self._observe("mux_channel", dlci=dlci, state="closed", by=why)
                self.hooks.channel_closed(dlci)
        for _, timer in self._awaiting.values():
            timer.cancel()
        self._awaiting.clear()

    def _close_down(self) -> None:
        self._close_channels("close down")
        control = self.dlcs.get(0)
        if control is not None and control.state is DlcState.OPEN:
            control.to("close_down")
        self.closed = True
        self._observe("mux_channel", dlci=0, state="closed", by="close down")
        self.hooks.closed_down()

    def host_gone(self) -> None:
        """The host left the port: every channel closes and the multiplexer ends (chosen: the next
        host finds AT commands on the port, as after a power cycle of the link)."""
        if not self.closed:
            self._close_down()

    def power_lost(self) -> None:
        """The module lost power: no frame goes either way any more, and no timer of the
        multiplexer's resends."""
        self.closed = True

    def rest(self) -> bytes:
        """After close down: the bytes that followed the last frame, AT commands again."""
        return self.decoder.rest()


def _message_name(kind: int) -> str:
    try:
        return Message(kind & ~CR).name
    except ValueError:
        return f"0x{kind:02x}"


def _describe(frame: Frame) -> dict:
    return {"dlci": frame.dlci, "type": frame.control.name, "pf": frame.pf, "cr": frame.cr, "size": len(frame.info)}
