"""PPP on the module's side of a data call (ATD*99#): RFC 1662 HDLC-like framing, the RFC 1661
option negotiation automaton (one table, shared by LCP and IPCP), PAP and CHAP as the network
side of the link, IPCP handing out the context's address and DNS servers.

No I/O: ``PppLink.receive`` takes the host's bytes, frames for the host collect in ``output``; the
host's IP packets come out through ``send_ip`` (an effect for the shell's network engine) and the
network's packets go in with ``deliver_ip``. Restart timers run on the modem's clock through the
``call_at`` handed in. Sources: REFERENCE.md "PPP".
"""

from __future__ import annotations

import binascii
import enum
import functools
import hashlib
import logging
import os
import re
import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from .lifecycle import Transitions

if TYPE_CHECKING:
    from .timers import Timer

log = logging.getLogger(__name__)

# --- RFC 1662: framing --------------------------------------------------------------------------

FLAG = 0x7E
ESCAPE = 0x7D
ALL_STATIONS, UI = 0xFF, 0x03


# The FCS-16 (RFC 1662 C.2) is the reflected CRC-CCITT: binascii's crc_hqx computes the unreflected
# one in C, so the bytes go in with their bits reversed and the result comes out reversed back (a
# loop per byte in Python would bound a data call at a few MB/s).
_REVERSED = bytes(int(f"{byte:08b}"[::-1], 2) for byte in range(256))
FCS16_GOOD = 0xF0B8  # RFC 1662 C.2: what a frame and its FCS leave when nothing was altered


def _reverse16(value: int) -> int:
    return _REVERSED[value & 0xFF] << 8 | _REVERSED[value >> 8]


def fcs16(data: bytes, fcs: int = 0xFFFF) -> int:
    return _reverse16(binascii.crc_hqx(data.translate(_REVERSED), _reverse16(fcs)))


@functools.lru_cache(maxsize=8)
def _escaping(accm: int) -> re.Pattern[bytes]:
    """The octets to escape: the flag, the escape and the control characters ``accm`` names."""
    escaped = bytes(sorted({FLAG, ESCAPE} | {code for code in range(32) if accm >> code & 1}))
    return re.compile(b"[" + re.escape(escaped) + b"]")


def _escape_one(match: re.Match[bytes]) -> bytes:
    return bytes((ESCAPE, match[0][0] ^ 0x20))


_ESCAPED = re.compile(re.escape(bytes((ESCAPE,))) + b"(.)", re.S)


def _unescape_one(match: re.Match[bytes]) -> bytes:
    return bytes((match[1][0] ^ 0x20,))


def hdlc_encode(protocol: int, payload: bytes, accm: int) -> bytes:
    """One frame: address and control, the protocol in two octets, the FCS; every octet below 0x20
    whose bit is set in ``accm`` escaped, and always the flag and the escape (RFC 1662 4.2)."""
    body = bytes((ALL_STATIONS, UI)) + struct.pack("!H", protocol) + payload
    fcs = fcs16(body) ^ 0xFFFF
    body += bytes((fcs & 0xFF, fcs >> 8))
    return b"\x7e" + _escaping(accm).sub(_escape_one, body) + b"\x7e"


class HdlcDecoder:
    """Host bytes in, (protocol, payload) out. A frame whose FCS fails or that is too short is
    dropped silently (RFC 1662 4.3), so is one longer than ``max_frame``; the address/control and
    protocol fields may come compressed."""

    def __init__(self, max_frame: int = 1500 + 8):
        self.max_frame = max_frame
        self._buffer = bytearray()
        self.dropped = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        out = []
        buffer = self._buffer
        buffer += data
        start = 0
        while True:
            end = buffer.find(FLAG, start)
            if end < 0:
                break
            raw = bytes(buffer[start:end])
            start = end + 1
            if not raw:
                continue  # flags between frames
            if len(raw) > 2 * self.max_frame:
                self.dropped += 1
                continue
            frame = _ESCAPED.sub(_unescape_one, raw) if ESCAPE in raw else raw
            decoded = self._decode(frame) if len(frame) <= self.max_frame else None
            if decoded is None:
                self.dropped += 1
            else:
                out.append(decoded)
        del buffer[:start]
        if len(buffer) > 2 * self.max_frame:
            buffer.clear()  # no flag for longer than any frame: noise, dropped (it never ends a frame)
            self.dropped += 1
        return out

    @staticmethod
    def _decode(frame: bytes) -> tuple[int, bytes] | None:
        if len(frame) < 4 or fcs16(frame) != FCS16_GOOD:
            return None
        body = frame[:-2]
        if body[:2] == bytes((ALL_STATIONS, UI)):
            body = body[2:]
        if not body:
            return None
        if body[0] & 1:  # a compressed protocol field (RFC 1661 6.5)
            return body[0], body[1:]
        if len(body) < 2:
            return None
        return body[0] << 8 | body[1], body[2:]


# --- RFC 1661: the option negotiation automaton --------------------------------------------------

LCP, PAP, CHAP, IPCP, IPV4 = 0xC021, 0xC023, 0xC223, 0x8021, 0x0021
CONF_REQ, CONF_ACK, CONF_NAK, CONF_REJ, TERM_REQ, TERM_ACK, CODE_REJ = 1, 2, 3, 4, 5, 6, 7
PROTO_REJ, ECHO_REQ, ECHO_REPLY, DISCARD_REQ = 8, 9, 10, 11


class FsmState(enum.Enum):
    INITIAL = 0
    STARTING = 1
    CLOSED = 2
    STOPPED = 3
    CLOSING = 4
    STOPPING = 5
    REQ_SENT = 6
    ACK_RCVD = 7
    ACK_SENT = 8
    OPENED = 9


S = FsmState
# RFC 1661 4.1, the state transition table: (state, event) -> (actions, next state). The actions:
# irc/zrc init/zero the restart counter, scr/sca/scn send Configure-Request/-Ack/-Nak or -Reject,
# str/sta Terminate-Request/-Ack, scj Code-Reject, ser Echo-Reply; tlu/tld/tls/tlf this layer up,
# down, started, finished.
_TABLE: dict[tuple[FsmState, str], tuple[tuple[str, ...], FsmState]] = {
    (S.INITIAL, "up"): ((), S.CLOSED), (S.STARTING, "up"): (("irc", "scr"), S.REQ_SENT),
    (S.CLOSED, "down"): ((), S.INITIAL), (S.STOPPED, "down"): (("tls",), S.STARTING),
    (S.CLOSING, "down"): ((), S.INITIAL), (S.STOPPING, "down"): ((), S.STARTING),
    (S.REQ_SENT, "down"): ((), S.STARTING), (S.ACK_RCVD, "down"): ((), S.STARTING),
    (S.ACK_SENT, "down"): ((), S.STARTING), (S.OPENED, "down"): (("tld",), S.STARTING),
    (S.INITIAL, "open"): (("tls",), S.STARTING), (S.STARTING, "open"): ((), S.STARTING),
    (S.CLOSED, "open"): (("irc", "scr"), S.REQ_SENT), (S.STOPPED, "open"): ((), S.STOPPED),
    (S.CLOSING, "open"): ((), S.STOPPING), (S.STOPPING, "open"): ((), S.STOPPING),
    (S.REQ_SENT, "open"): ((), S.REQ_SENT), (S.ACK_RCVD, "open"): ((), S.ACK_RCVD),
    (S.ACK_SENT, "open"): ((), S.ACK_SENT), (S.OPENED, "open"): ((), S.OPENED),
    (S.INITIAL, "close"): ((), S.INITIAL), (S.STARTING, "close"): (("tlf",), S.INITIAL),
    (S.CLOSED, "close"): ((), S.CLOSED), (S.STOPPED, "close"): ((), S.CLOSED),
    (S.CLOSING, "close"): ((), S.CLOSING), (S.STOPPING, "close"): ((), S.CLOSING),
    (S.REQ_SENT, "close"): (("irc", "str"), S.CLOSING), (S.ACK_RCVD, "close"): (("irc", "str"), S.CLOSING),
    (S.ACK_SENT, "close"): (("irc", "str"), S.CLOSING), (S.OPENED, "close"): (("tld", "irc", "str"), S.CLOSING),
    (S.CLOSING, "to+"): (("str",), S.CLOSING), (S.STOPPING, "to+"): (("str",), S.STOPPING),
    (S.REQ_SENT, "to+"): (("scr",), S.REQ_SENT), (S.ACK_RCVD, "to+"): (("scr",), S.REQ_SENT),
    (S.ACK_SENT, "to+"): (("scr",), S.ACK_SENT),
    (S.CLOSING, "to-"): (("tlf",), S.CLOSED), (S.STOPPING, "to-"): (("tlf",), S.STOPPED),
    (S.REQ_SENT, "to-"): (("tlf",), S.STOPPED), (S.ACK_RCVD, "to-"): (("tlf",), S.STOPPED),
    (S.ACK_SENT, "to-"): (("tlf",), S.STOPPED),
    (S.CLOSED, "rcr+"): (("sta",), S.CLOSED), (S.STOPPED, "rcr+"): (("irc", "scr", "sca"), S.ACK_SENT),
    (S.CLOSING, "rcr+"): ((), S.CLOSING), (S.STOPPING, "rcr+"): ((), S.STOPPING),
    (S.REQ_SENT, "rcr+"): (("sca",), S.ACK_SENT), (S.ACK_RCVD, "rcr+"): (("sca", "tlu"), S.OPENED),
    (S.ACK_SENT, "rcr+"): (("sca",), S.ACK_SENT), (S.OPENED, "rcr+"): (("tld", "scr", "sca"), S.ACK_SENT),
    (S.CLOSED, "rcr-"): (("sta",), S.CLOSED), (S.STOPPED, "rcr-"): (("irc", "scr", "scn"), S.REQ_SENT),
    (S.CLOSING, "rcr-"): ((), S.CLOSING), (S.STOPPING, "rcr-"): ((), S.STOPPING),
    (S.REQ_SENT, "rcr-"): (("scn",), S.REQ_SENT), (S.ACK_RCVD, "rcr-"): (("scn",), S.ACK_RCVD),
    (S.ACK_SENT, "rcr-"): (("scn",), S.REQ_SENT), (S.OPENED, "rcr-"): (("tld", "scr", "scn"), S.REQ_SENT),
    (S.CLOSED, "rca"): (("sta",), S.CLOSED), (S.STOPPED, "rca"): (("sta",), S.STOPPED),
    (S.CLOSING, "rca"): ((), S.CLOSING), (S.STOPPING, "rca"): ((), S.STOPPING),
    (S.REQ_SENT, "rca"): (("irc",), S.ACK_RCVD), (S.ACK_RCVD, "rca"): (("scr",), S.REQ_SENT),
    (S.ACK_SENT, "rca"): (("irc", "tlu"), S.OPENED), (S.OPENED, "rca"): (("tld", "scr"), S.REQ_SENT),
    (S.CLOSED, "rcn"): (("sta",), S.CLOSED), (S.STOPPED, "rcn"): (("sta",), S.STOPPED),
    (S.CLOSING, "rcn"): ((), S.CLOSING), (S.STOPPING, "rcn"): ((), S.STOPPING),
    (S.REQ_SENT, "rcn"): (("irc", "scr"), S.REQ_SENT), (S.ACK_RCVD, "rcn"): (("scr",), S.REQ_SENT),
    (S.ACK_SENT, "rcn"): (("irc", "scr"), S.ACK_SENT), (S.OPENED, "rcn"): (("tld", "scr"), S.REQ_SENT),
    (S.CLOSED, "rtr"): (("sta",), S.CLOSED), (S.STOPPED, "rtr"): (("sta",), S.STOPPED),
    (S.CLOSING, "rtr"): (("sta",), S.CLOSING), (S.STOPPING, "rtr"): (("sta",), S.STOPPING),
    (S.REQ_SENT, "rtr"): (("sta",), S.REQ_SENT), (S.ACK_RCVD, "rtr"): (("sta",), S.REQ_SENT),
    (S.ACK_SENT, "rtr"): (("sta",), S.REQ_SENT), (S.OPENED, "rtr"): (("tld", "zrc", "sta"), S.STOPPING),
    (S.CLOSED, "rta"): ((), S.CLOSED), (S.STOPPED, "rta"): ((), S.STOPPED),
    (S.CLOSING, "rta"): (("tlf",), S.CLOSED), (S.STOPPING, "rta"): (("tlf",), S.STOPPED),
    (S.REQ_SENT, "rta"): ((), S.REQ_SENT), (S.ACK_RCVD, "rta"): ((), S.REQ_SENT),
    (S.ACK_SENT, "rta"): ((), S.ACK_SENT), (S.OPENED, "rta"): (("tld", "scr"), S.REQ_SENT),
    **{(state, "ruc"): (("scj",), state) for state in (S.CLOSED, S.STOPPED, S.CLOSING, S.STOPPING,
                                                        S.REQ_SENT, S.ACK_RCVD, S.ACK_SENT, S.OPENED)},
    **{(state, "rxj+"): ((), state) for state in (S.CLOSED, S.STOPPED, S.CLOSING, S.STOPPING,
                                                   S.ACK_SENT, S.OPENED)},
    (S.REQ_SENT, "rxj+"): ((), S.REQ_SENT), (S.ACK_RCVD, "rxj+"): ((), S.REQ_SENT),
    (S.CLOSED, "rxj-"): (("tlf",), S.CLOSED), (S.STOPPED, "rxj-"): (("tlf",), S.STOPPED),
    (S.CLOSING, "rxj-"): (("tlf",), S.CLOSED), (S.STOPPING, "rxj-"): (("tlf",), S.STOPPED),
    (S.REQ_SENT, "rxj-"): (("tlf",), S.STOPPED), (S.ACK_RCVD, "rxj-"): (("tlf",), S.STOPPED),
    (S.ACK_SENT, "rxj-"): (("tlf",), S.STOPPED), (S.OPENED, "rxj-"): (("tld", "irc", "str"), S.STOPPING),
    **{(state, "rxr"): ((), state) for state in (S.CLOSED, S.STOPPED, S.CLOSING, S.STOPPING,
                                                  S.REQ_SENT, S.ACK_RCVD, S.ACK_SENT)},
    (S.OPENED, "rxr"): (("ser",), S.OPENED),
}
ACTIONS = {key: actions for key, (actions, _) in _TABLE.items()}
FSM_STATES = Transitions("PPP automaton", {key: after for key, (_, after) in _TABLE.items()})

RESTART_SECONDS = 3.0  # RFC 1661 4.6: the restart timer's default
# After acknowledging the host's Terminate-Request the module waits this long before the link is
# over (RFC 1661 3.7 asks for at least one restart time; chosen shorter, as the host is gone already).
TERMINATE_WAIT = 1.0
MAX_CONFIGURE = 10  # Max-Configure
MAX_TERMINATE = 2  # Max-Terminate
MAX_FAILURE = 5  # Max-Failure: Configure-Naks before rejecting instead


Option = tuple[int, bytes]


def parse_options(data: bytes) -> list[Option] | None:
    out = []
    i = 0
    while i < len(data):
        if i + 2 > len(data) or data[i + 1] < 2 or i + data[i + 1] > len(data):
            return None
        out.append((data[i], bytes(data[i + 2:i + data[i + 1]])))
        i += data[i + 1]
    return out


def encode_options(options: list[Option]) -> bytes:
    return b"".join(bytes((kind, len(value) + 2)) + value for kind, value in options)


class Fsm:
    """One RFC 1661 automaton; the protocol (LCP, IPCP) supplies its options through the methods a
    subclass overrides."""

    protocol = 0
    name = ""

    def __init__(self, link: "PppLink"):
        self.link = link
        self.state = FsmState.INITIAL
        self.restart = 0
        self.failures = 0
        self._timer: Timer | None = None
        self._ident = 0
        self._request_id = -1
        self._reply: tuple[int, bytes] = (CONF_ACK, b"")

    # the events ---------------------------------------------------------------------------------

    def event(self, name: str) -> None:
        before = self.state
        actions = ACTIONS.get((before, name))
        self.state = FSM_STATES.next(before, name)
        if actions is None:
            return
        for action in actions:
            getattr(self, "_" + action)()
        if self.state is not before:
            self.link.observe("ppp_state", layer=self.name, state=self.state.name, event=name)
        if self.state not in (S.REQ_SENT, S.ACK_RCVD, S.ACK_SENT, S.CLOSING, S.STOPPING):
            self._stop_timer()

    def receive(self, code: int, ident: int, data: bytes) -> None:
        if code == CONF_REQ:
            self._reply = self.check_request(data)
            self._request_id = ident
            self.event("rcr+" if self._reply[0] == CONF_ACK else "rcr-")
        elif code == CONF_ACK:
            if ident == self._ident and data == self.request_options():
                self.event("rca")
        elif code in (CONF_NAK, CONF_REJ):
            if ident == self._ident:
                self.failures += 1
                self.peer_refused(code, parse_options(data) or [])
                self.event("rcn")
        elif code == TERM_REQ:
            self._request_id = ident
            self.event("rtr")
        elif code == TERM_ACK:
            self.event("rta")
        elif code == CODE_REJ:
            self.event("rxj+")
        else:
            self.other_code(code, ident, data)

    def other_code(self, code: int, ident: int, data: bytes) -> None:
        self._request_id = ident
        self._unknown = bytes((code, ident)) + struct.pack("!H", len(data) + 4) + data
        self.event("ruc")

    # the actions --------------------------------------------------------------------------------

    def _irc(self) -> None:
        self.restart = MAX_TERMINATE if self.state in (S.CLOSING, S.STOPPING) else MAX_CONFIGURE

    def _zrc(self) -> None:
        self.restart = 0
        self._arm(TERMINATE_WAIT)

    def _scr(self) -> None:
        self._ident = (self._ident + 1) & 0xFF
        self.send(CONF_REQ, self._ident, self.request_options())
        self.restart -= 1
        self._arm()

    def _sca(self) -> None:
        self.send(CONF_ACK, self._request_id, self._reply[1])

    def _scn(self) -> None:
        self.send(self._reply[0], self._request_id, self._reply[1])  # the Nak or the Reject

    def _str(self) -> None:
        self._ident = (self._ident + 1) & 0xFF
        self.send(TERM_REQ, self._ident, b"")
        self.restart -= 1
        self._arm()

    def _sta(self) -> None:
        self.send(TERM_ACK, self._request_id, b"")

    def _scj(self) -> None:
        self._ident = (self._ident + 1) & 0xFF
        self.send(CODE_REJ, self._ident, getattr(self, "_unknown", b""))

    def _ser(self) -> None:
        pass  # LCP answers echoes itself (Lcp.other_code)

    def _tlu(self) -> None:
        self.failures = 0
        self.this_layer_up()

    def _tld(self) -> None:
        self.this_layer_down()

    def _tls(self) -> None:
        pass

    def _tlf(self) -> None:
        self.this_layer_finished()

    def send(self, code: int, ident: int, data: bytes) -> None:
        self.link.send_frame(self.protocol, bytes((code, ident)) + struct.pack("!H", len(data) + 4) + data)

    def _arm(self, seconds: float = RESTART_SECONDS) -> None:
        self._stop_timer()
        self._timer = self.link.call_at(self.link.now() + seconds, self._timeout)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timeout(self) -> None:
        self._timer = None
        if self.state in (S.REQ_SENT, S.ACK_RCVD, S.ACK_SENT, S.CLOSING, S.STOPPING):
            self.event("to+" if self.restart > 0 else "to-")

    # what a protocol supplies -------------------------------------------------------------------

    def request_options(self) -> bytes:
        return b""

    def check_request(self, data: bytes) -> tuple[int, bytes]:
        return CONF_ACK, data

    def peer_refused(self, code: int, options: list[Option]) -> None:
        pass

    def this_layer_up(self) -> None:
        pass

    def this_layer_down(self) -> None:
        pass

    def this_layer_finished(self) -> None:
        pass


def _judge(options: list[Option], judge: Callable[[int, bytes], tuple[int, bytes]]) -> tuple[int, bytes]:
    """Configure-Ack with the request, else Configure-Reject with every option to reject, else
    Configure-Nak with the values wanted (RFC 1661 5.2-5.4)."""
    rejected, naked = [], []
    for kind, value in options:
        verdict, wanted = judge(kind, value)
        if verdict == CONF_REJ:
            rejected.append((kind, value))
        elif verdict == CONF_NAK:
            naked.append((kind, wanted))
    if rejected:
        return CONF_REJ, encode_options(rejected)
    if naked:
        return CONF_NAK, encode_options(naked)
    return CONF_ACK, encode_options(options)


# LCP options (RFC 1661 6, RFC 1662 7)
MRU, ACCM, AUTH, QUALITY, MAGIC, PFC, ACFC = 1, 2, 3, 4, 5, 7, 8
CHAP_MD5 = 5


class Lcp(Fsm):
    protocol = LCP
    name = "LCP"

    def __init__(self, link: "PppLink"):
        super().__init__(link)
        self.magic = struct.unpack("!I", os.urandom(4))[0] or 1
        self.peer_magic = 0
        self.peer_mru = 1500
        self.peer_accm = 0xFFFFFFFF  # until LCP is up every control character is escaped (RFC 1662 7.1)
        self.auth: int | None = link.auth_wanted  # CHAP (C223) or PAP (C023) the module asks for
        self.auth_naks = 0

    def request_options(self) -> bytes:
        options: list[Option] = [(ACCM, struct.pack("!I", 0))]
        if self.auth == CHAP:
            options.append((AUTH, struct.pack("!HB", CHAP, CHAP_MD5)))
        elif self.auth == PAP:
            options.append((AUTH, struct.pack("!H", PAP)))
        options.append((MAGIC, struct.pack("!I", self.magic)))
        return encode_options(options)

    def check_request(self, data: bytes) -> tuple[int, bytes]:
        options = parse_options(data)
        if options is None:
            return CONF_REJ, b""

        def judge(kind: int, value: bytes) -> tuple[int, bytes]:
            if kind == MRU and len(value) == 2:
                mru = struct.unpack("!H", value)[0]
                return (CONF_ACK, value) if mru >= 128 else (CONF_NAK, struct.pack("!H", 1500))
            if kind == ACCM and len(value) == 4:
                return CONF_ACK, value
            if kind == MAGIC and len(value) == 4:
                magic = struct.unpack("!I", value)[0]
                if magic == 0 or magic == self.magic:  # a loop back (RFC 1661 6.4)
                    return CONF_NAK, struct.pack("!I", struct.unpack("!I", os.urandom(4))[0] or 1)
                return CONF_ACK, value
            if kind in (PFC, ACFC) and not value:
                return CONF_ACK, value  # the host can take compressed frames; the module sends full ones
            return CONF_REJ, value  # the host asking the module to authenticate, quality protocols ...

        verdict = _judge(options, judge)
        if verdict[0] == CONF_ACK:
            for kind, value in options:
                if kind == MRU:
                    self.peer_mru = struct.unpack("!H", value)[0]
                elif kind == ACCM:
                    self.peer_accm = struct.unpack("!I", value)[0]
                elif kind == MAGIC:
                    self.peer_magic = struct.unpack("!I", value)[0]
        return verdict

    def peer_refused(self, code: int, options: list[Option]) -> None:
        for kind, value in options:
            if kind == AUTH:
                if code == CONF_REJ:
                    self.auth = None  # the host will not authenticate: the module goes on without (chosen)
                elif len(value) >= 2 and struct.unpack("!H", value[:2])[0] == PAP and self.auth_naks < 2:
                    self.auth = PAP
                    self.auth_naks += 1
                else:
                    self.auth = None
            elif kind == MAGIC and code == CONF_NAK:
                self.magic = struct.unpack("!I", os.urandom(4))[0] or 1

    def other_code(self, code: int, ident: int, data: bytes) -> None:
        if code == ECHO_REQ:
            if self.state is S.OPENED:
                self.send(ECHO_REPLY, ident, struct.pack("!I", self.magic) + data[4:])
                self.link.observe("ppp_echo", magic=f"{self.peer_magic:08x}")
        elif code == ECHO_REPLY:
            self.link.echo_answered(ident)
        elif code == DISCARD_REQ:
            pass
        elif code == PROTO_REJ:
            if len(data) >= 2:
                self.link.protocol_rejected(struct.unpack("!H", data[:2])[0])
        else:
            super().other_code(code, ident, data)

    def this_layer_up(self) -> None:
        self.link.lcp_up()

    def this_layer_down(self) -> None:
        self.link.lcp_down()

    def this_layer_finished(self) -> None:
        self.link.lcp_finished()


# IPCP options (RFC 1332, RFC 1877)
IP_ADDRESS, PRIMARY_DNS, SECONDARY_DNS = 3, 129, 131
IP_COMPRESSION = 2


def _ip(text: str) -> bytes:
    return socket.inet_aton(text)


class Ipcp(Fsm):
    protocol = IPCP
    name = "IPCP"

    def request_options(self) -> bytes:
        return encode_options([(IP_ADDRESS, _ip(self.link.config.gateway))])

    def check_request(self, data: bytes) -> tuple[int, bytes]:
        options = parse_options(data)
        if options is None:
            return CONF_REJ, b""
        config = self.link.config
        dns = list(config.dns) + [config.dns[0] if config.dns else "0.0.0.0"] * 2

        def judge(kind: int, value: bytes) -> tuple[int, bytes]:
            if kind == IP_ADDRESS and len(value) == 4:
                wanted = _ip(config.address)
                return (CONF_ACK, value) if value == wanted else (CONF_NAK, wanted)
            if kind in (PRIMARY_DNS, SECONDARY_DNS) and len(value) == 4 and config.dns:
                wanted = _ip(dns[0] if kind == PRIMARY_DNS else dns[1])
                return (CONF_ACK, value) if value == wanted else (CONF_NAK, wanted)
            return CONF_REJ, value  # Van Jacobson compression, NBNS, a DNS server when none is set

        return _judge(options, judge)

    def this_layer_up(self) -> None:
        self.link.ipcp_up()

    def this_layer_down(self) -> None:
        self.link.ipcp_down()


# --- the link -----------------------------------------------------------------------------------


class Phase(enum.Enum):
    ESTABLISH = "establish"
    AUTHENTICATE = "authenticate"
    NETWORK = "network"
    TERMINATE = "terminate"
    DEAD = "dead"


PHASES = Transitions("PPP phase", {
    (Phase.ESTABLISH, "lcp_up_auth"): Phase.AUTHENTICATE,
    (Phase.ESTABLISH, "lcp_up"): Phase.NETWORK,
    (Phase.AUTHENTICATE, "authenticated"): Phase.NETWORK,
    **{(phase, "lcp_down"): Phase.TERMINATE for phase in (Phase.ESTABLISH, Phase.AUTHENTICATE, Phase.NETWORK,
                                                           Phase.TERMINATE)},
    **{(phase, "finished"): Phase.DEAD for phase in Phase},
})


@dataclass(frozen=True)
class LinkConfig:
    """What IPCP hands the host: the context's address, the module's side (``gateway``) and the DNS
    servers (AT+QIDNSCFG's, else the profile's)."""

    address: str
    gateway: str
    dns: tuple[str, ...]


class PppHooks:
    """What the link tells the data call: packets for the network, the link up and over."""

    def ip_out(self, packet: bytes) -> None: ...

    def network_up(self) -> None: ...

    def link_over(self, reason: str) -> None: ...


class PppLink:
    """One PPP link: the module's side, passive in nothing: it sends its own Configure-Request as
    soon as the call is up (as modules do after CONNECT)."""

    def __init__(self, config: LinkConfig, hooks: PppHooks, now: Callable[[], float],
                 call_at: Callable[[float, Callable[[], None]], "Timer"],
                 observe: Callable[..., Any] = lambda kind, **details: None, auth: int | None = CHAP,
                 write: Callable[[bytes], None] | None = None):
        self.config = config
        self.hooks = hooks
        self.now = now
        self.call_at = call_at
        self._observe = observe
        self.auth_wanted = auth
        self.output = bytearray()  # the frames for the host, unless ``write`` takes them
        self._write = write if write is not None else self.output.extend
        self.started = False
        self.decoder = HdlcDecoder()
        self.phase = Phase.ESTABLISH
        self.lcp = Lcp(self)
        self.ipcp = Ipcp(self)
        self.peer_name = ""  # the user name the host authenticated with
        self._challenge = b""
        self.echoes_unanswered = 0
        self.end_reason = ""

    def observe(self, kind: str, **details: Any) -> None:
        self._observe(kind, **details)

    def _to(self, event: str) -> None:
        before = self.phase
        self.phase = PHASES.next(self.phase, event)
        if self.phase is not before:
            self.observe("ppp_phase", phase=self.phase.value)

    def start(self) -> None:
        self.started = True
        self.lcp.event("up")
        self.lcp.event("open")

    # host bytes ---------------------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        for protocol, payload in self.decoder.feed(data):
            self._packet(protocol, payload)

    def _packet(self, protocol: int, payload: bytes) -> None:
        if protocol == LCP:
            self._control(self.lcp, payload)
            return
        if self.lcp.state is not S.OPENED:
            return  # before LCP is up only LCP counts (RFC 1661 3.4)
        if protocol == PAP and self.phase is Phase.AUTHENTICATE:
            self._pap(payload)
        elif protocol == CHAP and self.phase is Phase.AUTHENTICATE:
            self._chap(payload)
        elif protocol == IPCP and self.phase is Phase.NETWORK:
            self._control(self.ipcp, payload)
        elif protocol == IPV4 and self.ipcp.state is S.OPENED:
            self.hooks.ip_out(payload)
        elif protocol in (PAP, CHAP, IPCP, IPV4):
            return  # not in this phase: silently discarded (RFC 1661 3.5)
        else:
            # IPV6CP, CCP ...: the module runs none of them (chosen: IPv4 only, as the context).
            self.lcp._ident = (self.lcp._ident + 1) & 0xFF
            self.lcp.send(PROTO_REJ, self.lcp._ident, struct.pack("!H", protocol) + payload[:1400])
            self.observe("ppp_protocol_reject", protocol=f"0x{protocol:04x}")

    @staticmethod
    def _control(fsm: Fsm, payload: bytes) -> None:
        if len(payload) < 4:
            return
        code, ident, length = payload[0], payload[1], struct.unpack("!H", payload[2:4])[0]
        if length < 4 or length > len(payload):
            return
        fsm.receive(code, ident, payload[4:length])

    # authentication (RFC 1334 PAP, RFC 1994 CHAP): the module accepts what the host says ---------

    def _pap(self, payload: bytes) -> None:
        if len(payload) < 6 or payload[0] != 1:
            return
        ident = payload[1]
        body = payload[4:]
        peer_len = body[0]
        self.peer_name = body[1:1 + peer_len].decode("latin-1")
        message = b"Login ok"
        self.send_frame(PAP, bytes((2, ident)) + struct.pack("!H", 5 + len(message)) + bytes((len(message),)) + message)
        self.observe("ppp_auth", protocol="PAP", name=self.peer_name)
        self._authenticated()

    def _send_challenge(self) -> None:
        self._challenge = os.urandom(16)
        name = b"ecemu"
        body = bytes((len(self._challenge),)) + self._challenge + name
        self.send_frame(CHAP, bytes((1, 1)) + struct.pack("!H", 4 + len(body)) + body)

    def _chap(self, payload: bytes) -> None:
        if len(payload) < 5 or payload[0] != 2:
            return
        ident = payload[1]
        size = payload[4]
        response = payload[5:5 + size]
        self.peer_name = payload[5 + size:].decode("latin-1")
        # The module hands the credentials to the network, which takes any (chosen): the answer is
        # checked only for its form, an MD5 digest (RFC 1994 4.1).
        good = len(response) == hashlib.md5().digest_size
        message = b"Welcome" if good else b"Bad response"
        self.send_frame(CHAP, bytes((3 if good else 4, ident)) + struct.pack("!H", 4 + len(message)) + message)
        self.observe("ppp_auth", protocol="CHAP", name=self.peer_name, accepted=good)
        if good:
            self._authenticated()
        else:
            self.close("authentication failed")

    def _authenticated(self) -> None:
        if self.phase is Phase.AUTHENTICATE:
            self._to("authenticated")
            self._network()

    def _network(self) -> None:
        self.ipcp.event("up")
        self.ipcp.event("open")

    # layer events -------------------------------------------------------------------------------

    def lcp_up(self) -> None:
        auth = self.lcp.auth
        if auth is None:
            self._to("lcp_up")
            self._network()
            return
        self._to("lcp_up_auth")
        if auth == CHAP:
            self._send_challenge()

    def lcp_down(self) -> None:
        self.ipcp.event("down")
        self._to("lcp_down")

    def lcp_finished(self) -> None:
        self._to("finished")
        self.hooks.link_over(self.end_reason or "LCP finished")

    def ipcp_up(self) -> None:
        self.observe("ppp_ip", address=self.config.address, dns=list(self.config.dns))
        self.hooks.network_up()

    def ipcp_down(self) -> None:
        pass

    def protocol_rejected(self, protocol: int) -> None:
        self.observe("ppp_protocol_rejected", protocol=f"0x{protocol:04x}")

    def echo_request(self) -> None:
        """An LCP Echo-Request of the module's own (the link check modules run)."""
        if self.lcp.state is S.OPENED:
            self.echoes_unanswered += 1
            self.lcp.send(ECHO_REQ, self.echoes_unanswered & 0xFF, struct.pack("!I", self.lcp.magic))

    def echo_answered(self, ident: int) -> None:
        self.echoes_unanswered = 0

    # the module's side --------------------------------------------------------------------------

    def deliver_ip(self, packet: bytes) -> None:
        """A packet from the network for the host."""
        if self.ipcp.state is S.OPENED:
            self.send_frame(IPV4, packet)

    def close(self, reason: str) -> None:
        """The module ends the link: LCP Terminate-Request, then the link is over when the host
        acknowledges it or the restart counter runs out (RFC 1661 3.7)."""
        if self.phase is Phase.DEAD:
            return
        self.end_reason = self.end_reason or reason
        self.lcp.event("close")
        if self.lcp.state in (S.INITIAL, S.CLOSED, S.STOPPED, S.STARTING):
            self.lcp_finished()

    def send_frame(self, protocol: int, payload: bytes) -> None:
        if protocol != IPV4:
            self.observe("ppp_frame", direction="out", protocol=_protocol_name(protocol), code=payload[0] if payload else 0)
        accm = self.lcp.peer_accm if self.lcp.state is S.OPENED else 0xFFFFFFFF
        # LCP's own packets always go with every control character escaped (RFC 1662 7.1).
        self._write(hdlc_encode(protocol, payload, 0xFFFFFFFF if protocol == LCP else accm))


def _protocol_name(protocol: int) -> str:
    return {LCP: "LCP", PAP: "PAP", CHAP: "CHAP", IPCP: "IPCP", IPV4: "IP"}.get(protocol, f"0x{protocol:04x}")
