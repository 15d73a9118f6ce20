"""The Mbed TLS engine (python-mbedtls, Mbed TLS 2.28, on its memory buffers): the static-ECDH
AES suites of table 3, which neither OpenSSL nor tlslite-ng has and the module's own stack speaks.

What this engine cannot do and the others can: write the TLS keys to the keylog (python-mbedtls
gives no access to them) and resume sessions (it has no session handle for buffers). Certificates
are checked in front of it (``ecemu.core.tls``), as for every engine, so Mbed TLS's own check,
which would use the host's clock, stays off.
"""

from __future__ import annotations

from mbedtls import pk as mbedtls_pk
from mbedtls import tls as mbedtls_tls
from mbedtls import x509 as mbedtls_x509
from mbedtls.exceptions import TLSError

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

PEER_CLOSE_NOTIFY = 0x7880  # MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY
VERSIONS = {(3, 1): mbedtls_tls.TLSVersion.TLSv1, (3, 2): mbedtls_tls.TLSVersion.TLSv1_1,
            (3, 3): mbedtls_tls.TLSVersion.TLSv1_2}
VERSION_NAMES: dict[mbedtls_tls.TLSVersion | mbedtls_tls.DTLSVersion, str] = {
    mbedtls_tls.TLSVersion.TLSv1: "TLSv1", mbedtls_tls.TLSVersion.TLSv1_1: "TLSv1.1",
    mbedtls_tls.TLSVersion.TLSv1_2: "TLSv1.2"}


def _error_code(exc: TLSError) -> int | None:
    """Mbed TLS's error code (MBEDTLS_ERR_...); python-mbedtls's annotations leave ``err`` out."""
    code = getattr(exc, "err", None)
    return code if isinstance(code, int) else None


def speaks(mbedtls_name: str) -> bool:
    return mbedtls_name in mbedtls_tls.ciphers_available()


class MbedTlsContext:
    """One SSL context's configuration for python-mbedtls."""

    def __init__(self, lowest: tuple[int, int], highest: tuple[int, int], suite_names: list[str],
                 client_chain: list[x509.Certificate] | None, client_key: PrivateKeyTypes | None):
        certificate_chain = None
        if client_chain and client_key is not None:
            der = serialization.Encoding.DER
            key_der = client_key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            key = (mbedtls_pk.ECC if isinstance(client_key, ec.EllipticCurvePrivateKey) else mbedtls_pk.RSA).from_DER(key_der)
            chain = tuple(mbedtls_x509.CRT.from_DER(cert.public_bytes(der)) for cert in client_chain)
            certificate_chain = (chain, key)
        self.configuration = mbedtls_tls.TLSConfiguration(
            validate_certificates=False, certificate_chain=certificate_chain, ciphers=tuple(suite_names),
            lowest_supported_version=VERSIONS[max(lowest, (3, 1))],
            highest_supported_version=VERSIONS[highest])


class MbedTlsConnection:
    """One client connection on python-mbedtls's buffers."""

    def __init__(self, context: MbedTlsContext, sni: str | None, session: object):
        del session  # no resumption on this engine (module docstring)
        self._tls = mbedtls_tls.ClientContext(context.configuration).wrap_buffers(sni)

    def handshake(self, ciphertext: bytes) -> tuple[bool, bytes, str | None]:
        if ciphertext:
            self._tls.receive_from_network(ciphertext)
        try:
            while self._tls._handshake_state is not mbedtls_tls.HandshakeStep.HANDSHAKE_OVER:
                try:
                    self._tls.do_handshake()  # one step of Mbed TLS's state machine
                except mbedtls_tls.WantWriteError:
                    pass
        except mbedtls_tls.WantReadError:
            return False, self._take(), None
        except TLSError as exc:
            return False, self._take(), f"handshake failed: {exc.msg}"
        return True, self._take(), None

    def receive(self, ciphertext: bytes) -> tuple[bytes, bool, str | None, bytes]:
        if ciphertext:
            self._tls.receive_from_network(ciphertext)
        chunks, closed, failure = [], False, None
        while True:
            try:
                chunk = self._tls.read(16384)
            except (mbedtls_tls.WantReadError, mbedtls_tls.WantWriteError):
                break
            except TLSError as exc:
                if _error_code(exc) == PEER_CLOSE_NOTIFY:
                    closed = True
                else:
                    failure = f"TLS error: {exc.msg}"
                break
            if not chunk:  # nothing more for now; the server's close_notify comes as an error
                break
            chunks.append(chunk)
        return b"".join(chunks), closed, failure, self._take()

    def send(self, plaintext: bytes, record_size: int) -> bytes:
        records = []
        for start in range(0, len(plaintext), record_size):
            # One record each. python-mbedtls's write answers the bytes it put in its outgoing
            # buffer, the record's header and MAC included, not the plaintext it took: it takes it all.
            self._tls.write(plaintext[start:start + record_size])
            records.append(self._take())
        return b"".join(records)

    def close_notify(self) -> bytes:
        try:
            self._tls.shutdown()
        except TLSError:
            pass
        return self._take()

    def session(self) -> None:
        return None

    def describe(self) -> str:
        version = VERSION_NAMES.get(self._tls.negotiated_tls_version(), "TLS")
        cipher = self._tls.cipher()  # a str, though python-mbedtls's annotation says bytes
        name = cipher.decode("ascii") if isinstance(cipher, bytes) else cipher
        return f"{version} {name} (Mbed TLS)"

    def _take(self) -> bytes:
        data = self._tls.peek_outgoing(1 << 20)
        self._tls.consume_outgoing(len(data))
        return data
