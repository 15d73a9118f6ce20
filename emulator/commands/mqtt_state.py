"""The MQTT family's state: six MQTT clients (<client_idx> 0-5), each a socket of the socket core
(plain TCP, or TLS on an SSL context: ``ecemu.commands.app_sockets``) with an MQTT 3.1/3.1.1
session on it (``ecemu.commands.mqtt_codec``).

Quectel's MQTT application note for EC2x/EG9x/EM05 (the EC200x/EC800x note was not found; the
command set is the same) gives the commands and URCs; MQTT 3.1.1 gives the protocol: QoS 1 and 2
flows (4.3), keepalive (3.1.2.10), packet identifiers (2.3.1). Every timer runs on the module's
clock (``modem.call_at``): packet timeouts and retries (AT+QMTCFG="timeout"), PINGREQ
(AT+QMTCFG="keepalive").
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
from collections import deque
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from . import mqtt_codec as codec
from .app_sockets import STEP, AppSocket
from ..core.lifecycle import Transitions
from ..core.results import MqttDisconnectResult, MqttOpenResult, MqttResult, MqttStat, QiError
from ..core.sockets import OpenFailed, Phase, SocketFamily

if TYPE_CHECKING:
    from ..core.modem import Modem
    from ..core.timers import Timer

log = logging.getLogger(__name__)

CLIENTS = 6  # <client_idx> 0-5 (MQTT note AT+QMTOPEN)
RECV_SLOTS = 5  # buffer mode keeps up to five messages per client, <recv_id> 0-4 (AT+QMTCFG "recv/mode")
# chosen: the largest packet the module takes from a broker; a larger one closes the connection
# (+QMTSTAT: <idx>,1) rather than filling memory.
MAX_INCOMING_PACKET = 1 << 20
# chosen: the bytes of QoS 1 and 2 packets a client keeps for resending until the broker answers;
# a publish that would take it past this fails (<result> 2) instead of filling memory
# (REFERENCE.md "HTTP(S) and MQTT").
MAX_IN_FLIGHT_BYTES = 256 * 1024


# How the socket core's reasons become +QMTOPEN results (chosen where the note has no cause:
# refused, unreachable, timed out, TLS refused: "network connection error").
OPEN_RESULTS = {QiError.OK: MqttOpenResult.OK, QiError.DNS_FAILED: MqttOpenResult.DNS_FAILED,
                QiError.OPEN_PDP_FAILED: MqttOpenResult.PDP_FAILED, QiError.PDP_BROKEN: MqttOpenResult.PDP_FAILED,
                QiError.SOCKET_IN_USE: MqttOpenResult.IDENTIFIER_OCCUPIED,
                QiError.CONNECT_FAILED: MqttOpenResult.NETWORK_ERROR, QiError.TIMEOUT: MqttOpenResult.NETWORK_ERROR}


class Session(enum.IntEnum):
    """<state> of AT+QMTCONN? (MQTT note AT+QMTCONN)."""

    INITIALIZING = 1  # the network is open, no CONNECT yet
    CONNECTING = 2
    CONNECTED = 3
    DISCONNECTING = 4


# An MQTT session's life on its open connection (MQTT 3.1.1 3.1, 3.2, 3.14).
MQTT_SESSIONS = Transitions("MQTT session", {
    (Session.INITIALIZING, "connect"): Session.CONNECTING,  # CONNECT sent
    (Session.CONNECTING, "accepted"): Session.CONNECTED,  # CONNACK 0
    (Session.CONNECTING, "refused"): Session.INITIALIZING,  # CONNACK with a refusal: the network stays
    (Session.INITIALIZING, "disconnect"): Session.DISCONNECTING,
    (Session.CONNECTING, "disconnect"): Session.DISCONNECTING,
    (Session.CONNECTED, "disconnect"): Session.DISCONNECTING,
})


@dataclass
class MqttConfig:
    """One client's AT+QMTCFG values (MQTT note AT+QMTCFG); the defaults are the note's."""

    version: int = 4  # 3: MQTT 3.1, 4: MQTT 3.1.1 (chosen: 3.1.1, what brokers expect today)
    pdpcid: int = 1
    ssl_enable: int = 0
    ssl_ctx: int = 0
    keepalive: int = 120
    clean_session: int = 1
    pkt_timeout: int = 5
    retry_times: int = 3
    timeout_notice: int = 0
    will_flag: int = 0
    will_qos: int = 0
    will_retain: int = 0
    will_topic: str = ""
    will_message: str = ""
    recv_mode: int = 0  # 0: +QMTRECV carries the message; 1: it waits in the module (AT+QMTRECV)
    recv_length: int = 0  # 1: +QMTRECV shows <payload_len> too
    # "aliauth": the Alibaba Cloud device triple; set, AT+QMTCONN signs in with it (aliyun_login)
    ali_product_key: str = ""
    ali_device_name: str = ""
    ali_device_secret: str = ""


def aliyun_login(config: MqttConfig, client_id: str, secure: bool) -> tuple[str, str, str]:
    """The CONNECT's client identifier, user name and password for AT+QMTCFG="aliauth".

    chosen, from Alibaba Cloud's published MQTT sign-in rules: the client identifier is the host's
    followed by ``|securemode=<2 over TLS, 3 plain>,signmethod=hmacsha1|``, the user name is
    ``<device name>&<product key>``, the password the HMAC-SHA1 (lower-case hex) of
    ``clientId<id>deviceName<name>productKey<key>`` keyed with the device secret. The module
    takes the triple with ``OK`` (REFERENCE.md "MQTT", seen on an EC800M); how it signs is not
    in the MQTT note.
    """
    name, key = config.ali_device_name, config.ali_product_key
    text = f"clientId{client_id}deviceName{name}productKey{key}"
    password = hmac.new(config.ali_device_secret.encode("latin-1"), text.encode("latin-1"), hashlib.sha1).hexdigest()
    return f"{client_id}|securemode={2 if secure else 3},signmethod=hmacsha1|", f"{name}&{key}", password


@dataclass
class InFlight:
    """A packet waiting for the broker's answer (4.3.2, 4.3.3, 3.8, 3.10), resent on timeout."""

    urc: str  # the URC its outcome is reported with: +QMTPUB, +QMTPUBEX, +QMTSUB, +QMTUNS
    msgid: int
    packet: bytes
    expect: int  # the packet type that completes this step
    retries: int = 0
    timer: "Timer | None" = None


@dataclass
class Message:
    msgid: int
    topic: str
    payload: bytes


@dataclass
class Link:
    """The MQTT session on an open connection."""

    config: MqttConfig
    session: Session = Session.INITIALIZING
    decoder: codec.Decoder = field(default_factory=lambda: codec.Decoder(MAX_INCOMING_PACKET))
    in_flight: dict[int, InFlight] = field(default_factory=dict)
    in_flight_bytes: int = 0  # the packets of in_flight, for MAX_IN_FLIGHT_BYTES
    received_qos2: set[int] = field(default_factory=set)  # PUBREC sent, PUBREL not yet come
    connect_timer: "Timer | None" = None
    ping_timer: "Timer | None" = None  # when the next PINGREQ is due
    pong_timer: "Timer | None" = None  # how long a PINGRESP may take
    stat_code: MqttStat = MqttStat.CLOSED_BY_PEER  # what +QMTSTAT says when the connection goes

    def to(self, event: str) -> None:
        """The session's next state (``MQTT_SESSIONS``)."""
        self.session = MQTT_SESSIONS.next(self.session, event)


class MqttClient(AppSocket):
    """One <client_idx>."""

    OPEN_URC = "+QMTOPEN"
    family_name = "mqtt"
    family: "MqttFamily"

    def __init__(self, family: "MqttFamily", client_id: int):
        super().__init__(family, client_id)
        self.config = MqttConfig()  # AT+QMTCFG; kept across opens, lost at a reboot
        self.link: Link | None = None
        self.slots: list[Message | None] = [None] * RECV_SLOTS  # buffer mode (recv/mode 1)
        # Taken from the broker while the host could not take them (every slot full; or, with
        # recv/mode 0, the host not reading): the socket is not read, nor its packets handled,
        # until these are out.
        self.waiting: deque[Message] = deque()

    # --- the network (AT+QMTOPEN, AT+QMTCLOSE) ------------------------------------------------

    def open_network(self, host: str, port: int) -> None:
        """AT+QMTOPEN: OpenFailed when it cannot start, else +QMTOPEN comes later."""
        if self.connection.phase is not Phase.INITIAL:
            raise OpenFailed(QiError.SOCKET_IN_USE, f"MQTT client {self.client_id} is in use")
        config = replace(self.config)  # as it is now, at open time
        self.link = Link(config)
        self.slots = [None] * RECV_SLOTS
        self.waiting.clear()
        try:
            self.open_on(config.pdpcid, host, port, config.ssl_ctx if config.ssl_enable else None)
        except Exception:
            self.link = None
            raise

    def opened(self, code: QiError) -> None:
        result = OPEN_RESULTS.get(code, MqttOpenResult.FAILED)
        if result is not MqttOpenResult.OK and self.connection.phase is Phase.INITIAL:
            self.link = None
        self.modem.emit_urc(f"+QMTOPEN: {self.client_id},{int(result)}")

    def report_open_failure(self, failure: OpenFailed) -> None:
        """An AT+QMTOPEN that could not start: its result, as every other one, in the URC."""
        self.opened(failure.code)

    def close_network(self) -> None:
        """AT+QMTCLOSE: the connection goes at once (no DISCONNECT: the broker sends the will)."""
        self._stop_link()
        self.close(0)

    @property
    def network_open(self) -> bool:
        """AT+QMTOPEN's connection is up (a session on it or not)."""
        return self.connection.phase is Phase.CONNECTED and self.link is not None

    def in_session(self, session: Session) -> bool:
        """The network connection is open and its MQTT session is ``session``."""
        link = self.link
        return link is not None and link.session is session and self.connection.phase is Phase.CONNECTED

    # --- the session (AT+QMTCONN, AT+QMTDISC) ---------------------------------------------------

    def connect(self, client_id: str, username: str | None, password: str | None) -> None:
        link = self.link
        assert link is not None
        config = link.config
        will = None
        if config.will_flag:
            will = codec.Will(config.will_topic, config.will_message.encode("latin-1"), config.will_qos,
                              bool(config.will_retain))
        if config.ali_product_key and username is None and password is None:
            client_id, username, password = aliyun_login(config, client_id, bool(config.ssl_enable))
        packet = codec.encode_connect(client_id, config.keepalive, bool(config.clean_session), username,
                                      password, will, level=config.version)
        link.to("connect")
        self._send_packet(packet)
        link.connect_timer = self.modem.call_at(self.modem.now + config.pkt_timeout, self._connack_timed_out)

    def _connack_timed_out(self) -> None:
        link = self.link
        if link is None or link.session is not Session.CONNECTING:
            return
        link.connect_timer = None
        log.info("mqtt %d: no CONNACK within %d s", self.client_id, link.config.pkt_timeout)
        self._link_lost(MqttStat.CONNACK_FAILED)

    def disconnect(self) -> None:
        """AT+QMTDISC: DISCONNECT (3.14), then the connection closes; +QMTDISC: <idx>,0."""
        link = self.link
        if link is not None:
            link.to("disconnect")
            self._send_packet(codec.DISCONNECT_PACKET)
        self._stop_link()
        self.close(0)
        self.modem.emit_urc(f"+QMTDISC: {self.client_id},{int(MqttDisconnectResult.OK)}")

    # --- sending ----------------------------------------------------------------------------------

    def _send_packet(self, packet: bytes) -> None:
        self.send(packet)
        self._arm_keepalive()

    def _send_answer(self, packet: bytes) -> None:
        """An acknowledgement of what the broker sent: if the broker does not read them, the
        socket stops being read until they have gone (``Connection.answer``)."""
        self.connection.answer(packet)
        self._arm_keepalive()

    def _arm_keepalive(self) -> None:
        """3.1.2.10: a PINGREQ when nothing else has been sent for <keep_alive_time> seconds."""
        link = self.link
        if link is None or not link.config.keepalive:
            return
        if link.ping_timer is not None:
            link.ping_timer.cancel()
        link.ping_timer = self.modem.call_at(self.modem.now + link.config.keepalive, self._ping)

    def _ping(self) -> None:
        link = self.link
        if link is None or link.session is not Session.CONNECTED:
            return
        link.ping_timer = None
        self._send_packet(codec.PINGREQ_PACKET)
        if link.pong_timer is None:
            link.pong_timer = self.modem.call_at(self.modem.now + link.config.pkt_timeout, self._pong_missing)

    def _pong_missing(self) -> None:
        link = self.link
        if link is None:
            return
        link.pong_timer = None
        log.info("mqtt %d: no PINGRESP within %d s", self.client_id, link.config.pkt_timeout)
        self._link_lost(MqttStat.PING_FAILED)

    def packet_id_free(self, packet_id: int) -> bool:
        return self.link is not None and packet_id not in self.link.in_flight

    def publish(self, urc: str, msgid: int, qos: int, retain: bool, topic: str, payload: bytes) -> None:
        """AT+QMTPUB / AT+QMTPUBEX once the message is in (4.3): QoS 0 is done when sent."""
        packet = codec.encode_publish(topic, payload, qos, retain, packet_id=msgid)
        link = self.link
        connection = self.connection
        if link is None or connection.unsent + len(packet) > connection.outgoing_limit or \
                (qos and link.in_flight_bytes + len(packet) > MAX_IN_FLIGHT_BYTES):
            # The broker does not take what was sent (or answer it): the message is not sent
            # (REFERENCE.md "HTTP(S) and MQTT", chosen: <result> 2, failed).
            log.info("mqtt %d: message %d not sent: the broker does not keep up", self.client_id, msgid)
            self.modem.emit_urc(f"{urc}: {self.client_id},{msgid},{int(MqttResult.FAILED)}")
            return
        if qos == 0:
            self._send_packet(packet)
            self.modem.emit_urc(f"{urc}: {self.client_id},{msgid},{int(MqttResult.OK)}")
            return
        self._start(InFlight(urc, msgid, packet, codec.PUBACK if qos == 1 else codec.PUBREC))

    def subscribe(self, msgid: int, topics: list[tuple[str, int]]) -> None:
        self._start(InFlight("+QMTSUB", msgid, codec.encode_subscribe(msgid, topics), codec.SUBACK))

    def unsubscribe(self, msgid: int, topics: list[str]) -> None:
        self._start(InFlight("+QMTUNS", msgid, codec.encode_unsubscribe(msgid, topics), codec.UNSUBACK))

    def _start(self, flight: InFlight) -> None:
        link = self.link
        assert link is not None
        link.in_flight[flight.msgid] = flight
        link.in_flight_bytes += len(flight.packet)
        self._send_packet(flight.packet)
        self._arm_retry(flight)

    def _arm_retry(self, flight: InFlight) -> None:
        link = self.link
        assert link is not None
        if flight.timer is not None:
            flight.timer.cancel()
        flight.timer = self.modem.call_at(self.modem.now + link.config.pkt_timeout, lambda: self._retry(flight))

    def _retry(self, flight: InFlight) -> None:
        """<pkt_timeout> passed without the answer: resend, up to <retry_times> times (MQTT note
        AT+QMTCFG "timeout"); a PUBLISH goes again with DUP set (3.3.1.1). Then: failed."""
        link = self.link
        flight.timer = None
        if link is None or link.in_flight.get(flight.msgid) is not flight:
            return
        config = link.config
        if flight.retries >= config.retry_times:
            del link.in_flight[flight.msgid]
            link.in_flight_bytes -= len(flight.packet)
            self.modem.emit_urc(f"{flight.urc}: {self.client_id},{flight.msgid},{int(MqttResult.FAILED)}")
            return
        flight.retries += 1
        if flight.packet[0] >> 4 == codec.PUBLISH:
            flight.packet = bytes((flight.packet[0] | 0x08,)) + flight.packet[1:]
        self._send_packet(flight.packet)
        if config.timeout_notice:
            self.modem.emit_urc(f"{flight.urc}: {self.client_id},{flight.msgid},{int(MqttResult.RETRANSMITTED)},"
                                f"{flight.retries}")
        self._arm_retry(flight)

    # --- receiving ----------------------------------------------------------------------------

    def arrived(self, data: bytes) -> None:
        self.modem.observe("received", client=self.client_id, family=self.family_name, size=len(data))
        link = self.link
        if link is None:
            return
        link.decoder.add(data)
        self._digest()

    def _digest(self) -> None:
        """The packets the broker sent, ``STEP`` at a time (the rest on the event loop's next
        turn), none while messages wait for the host (``waiting``): the socket is not read until
        all are handled."""
        link = self.link
        if link is None:
            return
        for _ in range(STEP):
            if self.waiting:
                return  # the host takes those first (resume_if_room goes on from here)
            try:
                packet = link.decoder.next_packet()
            except codec.MalformedPacket as exc:
                log.warning("mqtt %d: the broker broke the protocol: %s", self.client_id, exc)
                self._link_lost(MqttStat.CLOSED_BY_PEER)
                return
            if packet is None:
                self.caught_up()
                return
            self._handle(link, packet)
            if self.link is not link:
                return  # the connection went with that packet
        self.go_on_later(self._digest)

    def _handle(self, link: Link, packet: codec.Packet) -> None:
        if isinstance(packet, codec.ConnAck):
            if link.session is not Session.CONNECTING:
                return
            if link.connect_timer is not None:
                link.connect_timer.cancel()
                link.connect_timer = None
            link.to("accepted" if packet.return_code == 0 else "refused")
            self.modem.emit_urc(f"+QMTCONN: {self.client_id},{int(MqttResult.OK)},{packet.return_code}")
        elif isinstance(packet, codec.Publish):
            self._incoming(link, packet)
        elif isinstance(packet, codec.SubAck):
            flight = self._answered(link, packet.packet_id, codec.SUBACK)
            if flight is not None:
                granted = ",".join(str(code) for code in packet.granted)
                self.modem.emit_urc(f"+QMTSUB: {self.client_id},{flight.msgid},{int(MqttResult.OK)},{granted}")
        elif isinstance(packet, codec.Ack):
            self._ack(link, packet)
        elif isinstance(packet, codec.PingResp):
            if link.pong_timer is not None:
                link.pong_timer.cancel()
                link.pong_timer = None

    def _ack(self, link: Link, packet: codec.Ack) -> None:
        if packet.kind == codec.PUBREL:
            # 4.3.3: the message was delivered at PUBLISH; PUBREL lets its identifier go.
            link.received_qos2.discard(packet.packet_id)
            self._send_answer(codec.encode_ack(codec.PUBCOMP, packet.packet_id))
            return
        flight = self._answered(link, packet.packet_id, packet.kind)
        if flight is None:
            return
        if packet.kind == codec.PUBREC:
            flight.packet = codec.encode_ack(codec.PUBREL, flight.msgid)
            flight.expect, flight.retries = codec.PUBCOMP, 0
            link.in_flight[flight.msgid] = flight
            link.in_flight_bytes += len(flight.packet)
            self._send_answer(flight.packet)
            self._arm_retry(flight)
            return
        self.modem.emit_urc(f"{flight.urc}: {self.client_id},{flight.msgid},{int(MqttResult.OK)}")

    def _answered(self, link: Link, packet_id: int, kind: int) -> InFlight | None:
        flight = link.in_flight.get(packet_id)
        if flight is None or flight.expect != kind:
            log.info("mqtt %d: an answer (type %d) for packet %d, which waits for none", self.client_id, kind,
                     packet_id)
            return None
        del link.in_flight[packet_id]
        link.in_flight_bytes -= len(flight.packet)
        if flight.timer is not None:
            flight.timer.cancel()
            flight.timer = None
        return flight

    def _incoming(self, link: Link, packet: codec.Publish) -> None:
        """4.3: QoS 1 answers PUBACK, QoS 2 PUBREC and delivers once per packet identifier."""
        if packet.qos == 1:
            self._send_answer(codec.encode_ack(codec.PUBACK, packet.packet_id))
        elif packet.qos == 2:
            duplicate = packet.packet_id in link.received_qos2
            link.received_qos2.add(packet.packet_id)
            self._send_answer(codec.encode_ack(codec.PUBREC, packet.packet_id))
            if duplicate:
                return
        self._deliver(link, Message(packet.packet_id, packet.topic, packet.payload))

    def _deliver(self, link: Link, message: Message) -> None:
        if not link.config.recv_mode:
            line = self.message_line(message, link.config)
            if self.waiting or not self.modem.urc_fits(len(line)):
                # The host does not take the module's output (or a command has held many URCs
                # already): the message waits here and the socket stops being read.
                self.waiting.append(message)
                self.pause()
                return
            self.modem.emit_urc(line)
            return
        if self.waiting or not self._store(message):
            # Every slot is full: the message waits here and the socket stops reading, so that the
            # broker holds the rest (nothing is dropped; TCP's flow control does the rest).
            self.waiting.append(message)
            self.pause()

    def _store(self, message: Message) -> bool:
        for index, slot in enumerate(self.slots):
            if slot is None:
                self.slots[index] = message
                self.modem.emit_urc(f"+QMTRECV: {self.client_id},{index}")
                return True
        return False

    def message_line(self, message: Message, config: MqttConfig) -> bytes:
        """+QMTRECV: <client_idx>,<msgid>,"<topic>"[,<payload_len>],"<payload>" (MQTT note 4.2)."""
        head = f'+QMTRECV: {self.client_id},{message.msgid},"{message.topic}",'
        if config.recv_length:
            head += f"{len(message.payload)},"
        return head.encode("utf-8") + b'"' + message.payload + b'"'

    def take_slot(self, index: int) -> Message | None:
        """AT+QMTRECV=<client_idx>,<recv_id>: the stored message, whose slot then takes one that waited."""
        message = self.slots[index]
        self.slots[index] = None
        if message is not None and self.waiting:
            self.slots[index] = self.waiting.popleft()
            self.modem.emit_urc(f"+QMTRECV: {self.client_id},{index}")
        self.resume_if_room()
        return message

    def resume_if_room(self) -> None:
        """The port is idle (or a slot was read): messages that waited for the host go out, and
        once none waits the socket is read and its packets handled again."""
        link = self.link
        waiting = self.waiting
        if link is not None and not link.config.recv_mode:
            while waiting:
                line = self.message_line(waiting[0], link.config)
                if not self.modem.urc_fits(len(line)):
                    return
                waiting.popleft()
                self.modem.emit_urc(line)
        if not waiting:
            self.resume()
            if link is not None and link.decoder.buffered:
                self._digest()

    # --- the connection going -----------------------------------------------------------------

    def peer_gone(self) -> None:
        """The broker or the network ended the connection: +QMTSTAT, and the client is free again."""
        link = self.link
        code = link.stat_code if link is not None else MqttStat.CLOSED_BY_PEER
        self._stop_link()
        self.close(0)
        self.modem.emit_urc(f"+QMTSTAT: {self.client_id},{int(code)}")

    def _link_lost(self, code: MqttStat) -> None:
        """The module gives up on the connection itself (a timeout, a broken packet)."""
        self._stop_link()
        self.close(0)
        self.modem.emit_urc(f"+QMTSTAT: {self.client_id},{int(code)}")

    def pdp_down(self, by_network: bool) -> None:
        if self.link is not None:
            self.link.stat_code = MqttStat.LINK_DOWN
        super().pdp_down(by_network)

    def _stop_link(self) -> None:
        link, self.link = self.link, None
        if link is None:
            return
        timers: list[Timer | None] = [link.connect_timer, link.ping_timer, link.pong_timer]
        timers += [flight.timer for flight in link.in_flight.values()]
        for timer in timers:
            if timer is not None:
                timer.cancel()

    def released(self) -> None:
        super().released()
        self._stop_link()


class MqttFamily(SocketFamily[MqttClient]):
    """``modem.families["mqtt"]``."""


    def __init__(self, modem: "Modem"):
        super().__init__(modem, [])
        self.clients = [MqttClient(self, index) for index in range(CLIENTS)]

    def client(self, client_id: int) -> MqttClient:
        return self.clients[client_id]

    def resume_online(self):  # no transparent mode in MQTT
        return None


__all__ = ["CLIENTS", "RECV_SLOTS", "MqttClient", "MqttConfig", "MqttFamily", "MqttOpenResult", "MqttResult", "Session",
           "MqttStat"]
