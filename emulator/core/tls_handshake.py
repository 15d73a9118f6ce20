"""The server's first flight read as it passes, before any TLS engine sees it.

Up to the server's ChangeCipherSpec a TLS 1.2-or-older handshake travels in plaintext records,
so what the verification needs (the version and suite of ServerHello, the certificates of
Certificate) can be read from the bytes themselves. That gives one verification for every engine
(``ecemu.core.tls_verify``), run before the engine has answered anything: a server whose
certificate fails gets Mbed TLS's alert instead of the client's next flight.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HANDSHAKE, CHANGE_CIPHER_SPEC, ALERT = 22, 20, 21
SERVER_HELLO, CERTIFICATE, SERVER_HELLO_DONE = 2, 11, 14
RECORD_HEADER = 5
MAX_RECORD = 16384 + 2048  # TLSCiphertext limit (RFC 5246 6.2.3)


@dataclass
class ServerFlight:
    """ServerHello and Certificate of one handshake, as far as they have arrived."""

    version: bytes | None = None  # the two bytes of ServerHello's version
    cipher_suite: int | None = None
    certificates: list[bytes] | None = None  # DER, in the server's order
    finished: bool = False  # nothing more to read: encrypted from here on, or malformed
    _records: bytearray = field(default_factory=bytearray)
    _messages: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> None:
        if self.finished:
            return
        self._records += data
        while len(self._records) >= RECORD_HEADER and not self.finished:
            length = int.from_bytes(self._records[3:5], "big")
            if length > MAX_RECORD:
                self._stop()
                return
            if len(self._records) < RECORD_HEADER + length:
                return
            kind = self._records[0]
            body = bytes(self._records[RECORD_HEADER:RECORD_HEADER + length])
            del self._records[:RECORD_HEADER + length]
            if kind == CHANGE_CIPHER_SPEC:
                self._stop()
            elif kind == HANDSHAKE:
                self._messages += body
                self._read_messages()

    def _stop(self) -> None:
        self.finished = True
        self._records.clear()
        self._messages.clear()

    def _read_messages(self) -> None:
        while len(self._messages) >= 4 and not self.finished:
            kind = self._messages[0]
            length = int.from_bytes(self._messages[1:4], "big")
            if len(self._messages) < 4 + length:
                return
            body = bytes(self._messages[4:4 + length])
            del self._messages[:4 + length]
            try:
                if kind == SERVER_HELLO:
                    self._server_hello(body)
                elif kind == CERTIFICATE:
                    self.certificates = _certificate_list(body)
                elif kind == SERVER_HELLO_DONE:
                    self._stop()
            except (IndexError, ValueError):
                self.certificates = self.certificates if self.certificates is not None else []
                self._stop()

    def _server_hello(self, body: bytes) -> None:
        session_id = body[34]
        self.version = body[0:2]
        self.cipher_suite = int.from_bytes(body[35 + session_id:37 + session_id], "big")


def _certificate_list(body: bytes) -> list[bytes]:
    total = int.from_bytes(body[0:3], "big")
    if total != len(body) - 3:
        raise ValueError("Certificate message of the wrong length")
    certificates, position = [], 3
    while position < len(body):
        length = int.from_bytes(body[position:position + 3], "big")
        position += 3
        if position + length > len(body):
            raise ValueError("certificate longer than its message")
        certificates.append(body[position:position + length])
        position += length
    return certificates


def alert_record(version: bytes | None, description: int) -> bytes:
    """A fatal alert in a plaintext record, as sent before any ChangeCipherSpec."""
    return bytes([ALERT]) + (version or b"\x03\x01") + b"\x00\x02" + bytes([2, description])
