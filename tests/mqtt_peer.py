"""Another MQTT client on the broker, for tests: what the broker delivers to a subscriber is what
the module published, and what a publisher sends reaches the module. Blocking, bounded waits."""

from __future__ import annotations

import socket
import time

from ecemu.commands import mqtt_codec as codec
from ecemu.mqtt_broker import BrokerUnavailable, MqttBroker

WAIT = 10.0


def broker_or_skip(**kwargs) -> MqttBroker:
    """A running broker, or the test skips without mosquitto (fails in CI: tests/parts.py)."""
    from tests.parts import missing

    try:
        return MqttBroker(**kwargs).start()
    except BrokerUnavailable as exc:
        missing("mosquitto", str(exc))


class Peer:
    def __init__(self, port: int, client_id: str = "peer"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.decoder = codec.Decoder(1 << 22)
        self.packets: list[codec.Packet] = []
        self.sock.sendall(codec.encode_connect(client_id, 60, True))
        assert self.wait_for(codec.ConnAck) == codec.ConnAck(False, 0)

    def _read(self, deadline: float) -> None:
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the broker closed the connection")
        self.packets += self.decoder.feed(data)

    def wait_for(self, kind: type, deadline: float | None = None):
        deadline = deadline or time.monotonic() + WAIT
        while True:
            for index, packet in enumerate(self.packets):
                if isinstance(packet, kind):
                    return self.packets.pop(index)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {kind.__name__}; have {self.packets}")
            self._read(deadline)

    def subscribe(self, topic: str, qos: int, packet_id: int = 1) -> None:
        self.sock.sendall(codec.encode_subscribe(packet_id, [(topic, qos)]))
        assert self.wait_for(codec.SubAck).granted == (qos,)

    def publish(self, topic: str, payload: bytes, qos: int = 0, packet_id: int = 0) -> None:
        self.sock.sendall(codec.encode_publish(topic, payload, qos, packet_id=packet_id))
        if qos == 1:
            assert self.wait_for(codec.Ack) == codec.Ack(codec.PUBACK, packet_id)
        elif qos == 2:
            assert self.wait_for(codec.Ack) == codec.Ack(codec.PUBREC, packet_id)
            self.sock.sendall(codec.encode_ack(codec.PUBREL, packet_id))
            assert self.wait_for(codec.Ack) == codec.Ack(codec.PUBCOMP, packet_id)

    def messages(self, count: int, within: float = WAIT) -> list[codec.Publish]:
        """``count`` PUBLISH packets, each acknowledged as its QoS asks."""
        deadline = time.monotonic() + within
        got = []
        while len(got) < count:
            message = self.wait_for(codec.Publish, deadline)
            if message.qos == 1:
                self.sock.sendall(codec.encode_ack(codec.PUBACK, message.packet_id))
            elif message.qos == 2:
                self.sock.sendall(codec.encode_ack(codec.PUBREC, message.packet_id))
                assert self.wait_for(codec.Ack, deadline) == codec.Ack(codec.PUBREL, message.packet_id)
                self.sock.sendall(codec.encode_ack(codec.PUBCOMP, message.packet_id))
            got.append(message)
        return got

    def close(self) -> None:
        try:
            self.sock.sendall(codec.DISCONNECT_PACKET)
        except OSError:
            pass
        self.sock.close()
