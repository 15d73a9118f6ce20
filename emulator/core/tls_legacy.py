"""The legacy engine (tlslite-ng, pure Python, on memory buffers): what OpenSSL no longer has and
the module's Mbed TLS still speaks: SSL 3.0, and the RC4 and 3DES suites of table 3.

tlslite-ng works on a socket; here its socket is a pair of buffers that never block on writing
and answer "would block" when nothing has arrived, and its handshake and reads run as the
generators it offers for non-blocking use (0: waiting for the peer). Certificates are checked in
front of it (``ecemu.core.tls``), as for every engine.
"""

from __future__ import annotations

import errno
import socket
from typing import Callable, Iterator

from tlslite import HandshakeSettings, Session, TLSConnection
from tlslite.errors import TLSAbruptCloseError, TLSError, TLSRemoteAlert
from tlslite.constants import AlertDescription, CipherSuite
from tlslite.utils.keyfactory import parsePEMKey
from tlslite.x509certchain import X509CertChain

# Table 3 code -> (tlslite-ng's cipher, key exchange, MAC names).
SUITES: dict[int, tuple[str, str, str]] = {
    0x0035: ("aes256", "rsa", "sha"),
    0x002F: ("aes128", "rsa", "sha"),
    0x0005: ("rc4", "rsa", "sha"),
    0x0004: ("rc4", "rsa", "md5"),
    0x000A: ("3des", "rsa", "sha"),
    0x003D: ("aes256", "rsa", "sha256"),
    0xC007: ("rc4", "ecdhe_ecdsa", "sha"),
    0xC008: ("3des", "ecdhe_ecdsa", "sha"),
    0xC009: ("aes128", "ecdhe_ecdsa", "sha"),
    0xC00A: ("aes256", "ecdhe_ecdsa", "sha"),
    0xC011: ("rc4", "ecdhe_rsa", "sha"),
    0xC012: ("3des", "ecdhe_rsa", "sha"),
    0xC013: ("aes128", "ecdhe_rsa", "sha"),
    0xC014: ("aes256", "ecdhe_rsa", "sha"),
    0xC023: ("aes128", "ecdhe_ecdsa", "sha256"),
    0xC024: ("aes256", "ecdhe_ecdsa", "sha384"),
    0xC027: ("aes128", "ecdhe_rsa", "sha256"),
    0xC028: ("aes256", "ecdhe_rsa", "sha384"),
    0xC02F: ("aes128gcm", "ecdhe_rsa", "aead"),
    0xC030: ("aes256gcm", "ecdhe_rsa", "aead"),
}
# Mbed TLS's curves and signature hashes (its ClientHello), as far as tlslite-ng has them.
CURVES = ["secp521r1", "brainpoolP512r1", "secp384r1", "brainpoolP384r1", "secp256r1", "secp256k1",
          "brainpoolP256r1", "x25519", "x448"]
SIGNATURE_HASHES = ["sha512", "sha384", "sha256", "sha224"]


class _Buffers:
    """The socket tlslite-ng reads and writes: what arrived, and what it sent."""

    def __init__(self) -> None:
        self.incoming = bytearray()
        self.outgoing = bytearray()

    def recv(self, size: int) -> bytes:
        if not self.incoming:
            raise socket.error(errno.EWOULDBLOCK, "nothing has arrived")
        data = bytes(self.incoming[:size])
        del self.incoming[:size]
        return data

    def send(self, data: bytes) -> int:
        self.outgoing += data
        return len(data)

    def sendall(self, data: bytes) -> None:
        self.outgoing += data

    def close(self) -> None:
        """tlslite-ng closes its socket when a handshake fails; the shell owns the real one."""

    def shutdown(self, how: int = 0) -> None:
        """As close."""

    def take(self) -> bytes:
        data, self.outgoing = bytes(self.outgoing), bytearray()
        return data


class LegacyContext:
    """What the connections of one SSL context share."""

    def __init__(self, lowest: tuple[int, int], highest: tuple[int, int], suites: list[int],
                 client_chain_pem: bytes | None, client_key_pem: bytes | None,
                 keylog: Callable[[bytes], None] | None):
        settings = HandshakeSettings()
        settings.minVersion, settings.maxVersion = lowest, highest
        settings.cipherNames = sorted({SUITES[code][0] for code in suites})
        settings.keyExchangeNames = sorted({SUITES[code][1] for code in suites})
        settings.macNames = sorted({SUITES[code][2] for code in suites})
        settings.eccCurves = list(CURVES)
        settings.rsaSigHashes = list(SIGNATURE_HASHES)
        settings.ecdsaSigHashes = list(SIGNATURE_HASHES)
        settings.more_sig_schemes = []
        settings.rsaSchemes = ["pkcs1"]
        settings.dhParams = None
        settings.use_heartbeat_extension = False
        settings.record_size_limit = None
        self.settings = settings.validate()
        self.suites = suites
        self.client_chain = self.client_key = None
        if client_chain_pem is not None and client_key_pem is not None:
            chain = X509CertChain()
            chain.parsePemList(client_chain_pem.decode("ascii", "replace"))
            self.client_chain = chain
            self.client_key = parsePEMKey(client_key_pem.decode("ascii", "replace"), private=True)
        self.keylog = keylog


class LegacyConnection:
    """One client connection on tlslite-ng."""

    def __init__(self, context: LegacyContext, sni: str | None, session: object):
        self._context = context
        self._buffers = _Buffers()
        self._conn = TLSConnection(self._buffers)
        self._conn.ignoreAbruptClose = True
        self._handshaking = self._conn.handshakeClientCert(
            context.client_chain, context.client_key, session=session if isinstance(session, Session) else None,
            settings=context.settings,
            serverName=sni, async_=True)
        # tlslite-ng's reading generator while a record is half read: it yields 0 or 1 while it
        # wants more, then the plaintext.
        self._reading: Iterator[int | bytes] | None = None

    def handshake(self, ciphertext: bytes) -> tuple[bool, bytes, str | None]:
        self._buffers.incoming += ciphertext
        try:
            for want in self._handshaking:
                if want == 0:
                    return False, self._buffers.take(), None
        except TLSRemoteAlert as exc:
            return False, self._buffers.take(), f"handshake failed: the server sent {exc}"
        except Exception as exc:  # noqa: BLE001 - a pure-Python stack fails in many ways; none may crash the module
            return False, self._buffers.take(), f"handshake failed: {exc or type(exc).__name__}"
        if self._context.keylog is not None:
            session = self._conn.session
            self._context.keylog(b"CLIENT_RANDOM " + bytes(self._conn._clientRandom).hex().encode()
                                 + b" " + bytes(session.masterSecret).hex().encode())
        return True, self._buffers.take(), None

    def receive(self, ciphertext: bytes) -> tuple[bytes, bool, str | None, bytes]:
        self._buffers.incoming += ciphertext
        chunks, closed, failure = [], False, None
        try:
            while True:
                if self._reading is None:
                    self._reading = self._conn.readAsync()
                result = next(self._reading, b"")
                if result == 0 or result == 1:
                    if result == 0:
                        break
                    continue
                self._reading = None
                if not result:
                    closed = self._conn.closed
                    break
                chunks.append(bytes(result))
        except TLSRemoteAlert as exc:
            if exc.description == AlertDescription.close_notify:
                closed = True
            else:
                failure = f"TLS error: the server sent {exc}"
        except TLSAbruptCloseError:
            closed = True
        except Exception as exc:  # noqa: BLE001 - as in handshake
            failure = f"TLS error: {exc or type(exc).__name__}"
        return b"".join(chunks), closed, failure, self._buffers.take()

    def send(self, plaintext: bytes, record_size: int) -> bytes:
        view = memoryview(plaintext)
        while view:
            for _ in self._conn.writeAsync(bytes(view[:record_size])):
                pass
            view = view[record_size:]
        return self._buffers.take()

    def close_notify(self) -> bytes:
        closing = self._conn.closeAsync()
        try:
            for want in closing:
                if want == 0:
                    break  # the server's close_notify is not waited for here
        except (TLSError, OSError):
            pass
        return self._buffers.take()

    def session(self) -> object:
        return self._conn.session

    def describe(self) -> str:
        names = {(3, 0): "SSLv3", (3, 1): "TLSv1", (3, 2): "TLSv1.1", (3, 3): "TLSv1.2"}
        suite = CipherSuite.ietfNames.get(self._conn.session.cipherSuite, self._conn.getCipherName())
        return f"{names.get(self._conn.version, self._conn.version)} {suite} (tlslite-ng)"
