"""TLS for the SSL commands: pyOpenSSL over memory BIOs, so the core stays sans-IO.

The core hands ciphertext to and from the shell (``SendTcp`` / ``TcpData``); this module turns it
into plaintext and back. What the module's SSL settings mean for OpenSSL is decided here:

- the versions of SSL note table 2 and ``sslversion`` (``4`` is every version the module has, so
  never TLS 1.3);
- the cipher suites of SSL note table 3 by their codes, offered exactly as configured. OpenSSL
  cannot speak every suite of the table (RC4, 3DES and static ECDH are compiled out, SSL 3.0 is
  gone: TLS-NOTES.md); asking for one of those fails the connection with a log line saying so,
  and never silently offers something else;
- certificate checks (SSL note 1.5 and 2.2.1): the module's clock instead of the host's, the
  server name, and the verification errors that ``ignorelocaltime``,
  ``ignoremulticertchainverify`` and ``ignoreinvalidcertsign`` forgive.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from OpenSSL import SSL, crypto

log = logging.getLogger(__name__)

# SSL note table 3: code -> (the note's name, OpenSSL's name), in the note's order.
CIPHER_SUITES: dict[int, tuple[str, str]] = {
    0x0035: ("TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA"),
    0x002F: ("TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA"),
    0x0005: ("TLS_RSA_WITH_RC4_128_SHA", "RC4-SHA"),
    0x0004: ("TLS_RSA_WITH_RC4_128_MD5", "RC4-MD5"),
    0x000A: ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", "DES-CBC3-SHA"),
    0x003D: ("TLS_RSA_WITH_AES_256_CBC_SHA256", "AES256-SHA256"),
    0xC002: ("TLS_ECDH_ECDSA_WITH_RC4_128_SHA", "ECDH-ECDSA-RC4-SHA"),
    0xC003: ("TLS_ECDH_ECDSA_WITH_3DES_EDE_CBC_SHA", "ECDH-ECDSA-DES-CBC3-SHA"),
    0xC004: ("TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA", "ECDH-ECDSA-AES128-SHA"),
    0xC005: ("TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA", "ECDH-ECDSA-AES256-SHA"),
    0xC007: ("TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", "ECDHE-ECDSA-RC4-SHA"),
    0xC008: ("TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA", "ECDHE-ECDSA-DES-CBC3-SHA"),
    0xC009: ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA-AES128-SHA"),
    0xC00A: ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA"),
    0xC011: ("TLS_ECDHE_RSA_WITH_RC4_128_SHA", "ECDHE-RSA-RC4-SHA"),
    0xC012: ("TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", "ECDHE-RSA-DES-CBC3-SHA"),
    0xC013: ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA"),
    0xC014: ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA"),
    0xC00C: ("TLS_ECDH_RSA_WITH_RC4_128_SHA", "ECDH-RSA-RC4-SHA"),
    0xC00D: ("TLS_ECDH_RSA_WITH_3DES_EDE_CBC_SHA", "ECDH-RSA-DES-CBC3-SHA"),
    0xC00E: ("TLS_ECDH_RSA_WITH_AES_128_CBC_SHA", "ECDH-RSA-AES128-SHA"),
    0xC00F: ("TLS_ECDH_RSA_WITH_AES_256_CBC_SHA", "ECDH-RSA-AES256-SHA"),
    0xC023: ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "ECDHE-ECDSA-AES128-SHA256"),
    0xC024: ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", "ECDHE-ECDSA-AES256-SHA384"),
    0xC025: ("TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA256", "ECDH-ECDSA-AES128-SHA256"),
    0xC026: ("TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA384", "ECDH-ECDSA-AES256-SHA384"),
    0xC027: ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE-RSA-AES128-SHA256"),
    0xC028: ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", "ECDHE-RSA-AES256-SHA384"),
    0xC029: ("TLS_ECDH_RSA_WITH_AES_128_CBC_SHA256", "ECDH-RSA-AES128-SHA256"),
    0xC02A: ("TLS_ECDH_RSA_WITH_AES_256_CBC_SHA384", "ECDH-RSA-AES256-SHA384"),
    0xC02F: ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"),
    0xC030: ("MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"),
}
ALL_CIPHER_SUITES = 0xFFFF  # SSL note 2.2.1: "support all cipher suites"

# <SSL_version> of SSL note 2.2.1 -> (lowest, highest) protocol version; None: not in OpenSSL.
SSL3 = 0
VERSION_RANGES: dict[int, tuple[int, int] | None] = {
    SSL3: None,
    1: (SSL.TLS1_VERSION, SSL.TLS1_VERSION),
    2: (SSL.TLS1_1_VERSION, SSL.TLS1_1_VERSION),
    3: (SSL.TLS1_2_VERSION, SSL.TLS1_2_VERSION),
    # "All": SSL 3.0 to TLS 1.2 on the module; OpenSSL has no SSL 3.0, and TLS 1.3 is never
    # the module's (TLS-NOTES.md).
    4: (SSL.TLS1_VERSION, SSL.TLS1_2_VERSION),
}
VERSION_NAMES = {0: "SSL 3.0", 1: "TLS 1.0", 2: "TLS 1.1", 3: "TLS 1.2", 4: "TLS 1.0-1.2"}

# X509 verification errors (OpenSSL's X509_V_ERR_*) each setting forgives (TLS-NOTES.md). Validity
# is never OpenSSL's to judge: it would use the host's clock, and the module uses its own.
NOT_YET_VALID, EXPIRED = 9, 10
FORGIVEN_BY_IGNORE_CHAIN = frozenset({2, 18, 19, 20, 21, 22, 24})
FORGIVEN_BY_IGNORE_SIGNATURE = frozenset({7})


class TlsUnavailable(Exception):
    """The settings ask for something this OpenSSL cannot speak; the message says what."""


def usable_cipher_suites() -> list[int]:
    """The codes of table 3 this OpenSSL can offer, in the table's order."""
    return [code for code in CIPHER_SUITES if _openssl_knows(CIPHER_SUITES[code][1])]


@functools.cache
def _openssl_knows(name: str) -> bool:
    try:
        SSL.Context(SSL.TLS_METHOD).set_cipher_list(f"{name}:@SECLEVEL=0".encode())
    except SSL.Error:
        return False
    return True


def suite_label(code: int) -> str:
    return f"0X{code:04X} {CIPHER_SUITES[code][0]}" if code in CIPHER_SUITES else f"0X{code:04X}"


@dataclass(frozen=True)
class ContextSettings:
    """Everything that shapes an OpenSSL context: one per SSL context ID and these settings, so
    that sessions can be resumed (OpenSSL resumes only on the context that made the session)."""

    version: int
    cipher_suite: int
    verify_peer: bool
    ca_pem: bytes | None = None
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None


def build_context(settings: ContextSettings, keylog: Callable[[bytes], None] | None = None) -> SSL.Context:
    """An OpenSSL client context for ``settings``; TlsUnavailable when OpenSSL cannot do it."""
    versions = VERSION_RANGES[settings.version]
    if versions is None:
        raise TlsUnavailable("SSL 3.0 (sslversion 0) cannot be spoken: this OpenSSL has no SSL 3.0")
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_min_proto_version(versions[0])
    context.set_max_proto_version(versions[1])
    context.set_cipher_list(_cipher_string(settings.cipher_suite))
    # Every client context verifies through the callback, which knows the connection's policy.
    context.set_verify(SSL.VERIFY_PEER if settings.verify_peer else SSL.VERIFY_NONE, _verify_callback)
    if settings.ca_pem is not None:
        store = context.get_cert_store()
        for cert in _load_certificates(settings.ca_pem, "CA certificate"):
            store.add_cert(crypto.X509.from_cryptography(cert))
    if settings.client_cert_pem is not None and settings.client_key_pem is not None:
        chain = _load_certificates(settings.client_cert_pem, "client certificate")
        context.use_certificate(chain[0])
        for extra in chain[1:]:
            context.add_extra_chain_cert(extra)
        try:
            key = load_pem_private_key(settings.client_key_pem, password=None)
        except (ValueError, TypeError) as exc:
            raise TlsUnavailable(f"client key cannot be read: {exc}") from None
        context.use_privatekey(key)
        try:
            context.check_privatekey()
        except SSL.Error:
            raise TlsUnavailable("client key does not match the client certificate") from None
    # OpenSSL's own client cache would keep every session ever made; the module keeps one per
    # server and SSL context, and only with session_cache 1 (the SSL family's store does that).
    context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    if keylog is not None:
        context.set_keylog_callback(lambda _conn, line: keylog(line))
    return context


def _cipher_string(code: int) -> bytes:
    # @SECLEVEL=0: TLS 1.0/1.1 and the module's old suites are refused at OpenSSL's default level.
    if code == ALL_CIPHER_SUITES:
        names = [CIPHER_SUITES[c][1] for c in usable_cipher_suites()]
        return (":".join(names) + ":@SECLEVEL=0").encode()
    if code not in CIPHER_SUITES:
        raise TlsUnavailable(f"cipher suite 0X{code:04X} is not one of the module's")
    if not _openssl_knows(CIPHER_SUITES[code][1]):
        raise TlsUnavailable(f"cipher suite {suite_label(code)} cannot be offered: this OpenSSL has no"
                             " RC4, 3DES or static ECDH (see README, 'TLS')")
    return f"{CIPHER_SUITES[code][1]}:@SECLEVEL=0".encode()


def _load_certificates(pem: bytes, what: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise TlsUnavailable(f"{what} cannot be read: {exc}") from None
    return certs


@dataclass(frozen=True)
class VerifyPolicy:
    """How one connection checks its server (SSL note 1.5, 2.2.1 secllevel and the ignore* settings)."""

    server_name: str
    at: datetime  # the module clock (AT+CCLK), UTC and aware
    check_time: bool = True
    forgive_chain: bool = False
    forgive_signature: bool = False

    def forgives(self, errno: int) -> bool:
        return ((self.forgive_chain and errno in FORGIVEN_BY_IGNORE_CHAIN)
                or (self.forgive_signature and errno in FORGIVEN_BY_IGNORE_SIGNATURE))


def _verify_callback(conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int) -> bool:
    client: TlsClient = conn.get_app_data()
    return client._verify(cert, errno, depth, bool(ok))


@dataclass
class TlsStep:
    """What one batch of ciphertext from the server produced."""

    plaintext: bytes = b""
    outgoing: bytes = b""  # ciphertext to send to the server
    established: bool = False  # the handshake completed in this step
    peer_closed: bool = False  # the server sent close_notify
    failure: str | None = None  # the connection is dead; why, for the log


@dataclass
class TlsClient:
    """One TLS client connection over memory BIOs."""

    context: SSL.Context
    policy: VerifyPolicy | None  # None: no verification (secllevel 0)
    sni: str | None = None
    session: SSL.Session | None = None
    established: bool = False
    forgiven: list[str] = field(default_factory=list)
    _verify_failure: str | None = None

    def __post_init__(self) -> None:
        self._conn = SSL.Connection(self.context, None)
        self._conn.set_app_data(self)
        self._conn.set_connect_state()
        if self.sni:
            self._conn.set_tlsext_host_name(self.sni.encode("idna"))
        if self.session is not None:
            self._conn.set_session(self.session)

    def start(self) -> TlsStep:
        """Begin the handshake: the ClientHello to send, or the failure that stops it."""
        return self.feed(b"")

    def feed(self, ciphertext: bytes) -> TlsStep:
        step = TlsStep()
        if ciphertext:
            self._conn.bio_write(ciphertext)
        if not self.established:
            try:
                self._conn.do_handshake()
            except SSL.WantReadError:
                step.outgoing = self._drain()
                return step
            except SSL.Error as exc:
                step.failure = self._verify_failure or f"handshake failed: {_describe(exc)}"
                step.outgoing = self._drain()  # the alert, so the server knows why
                return step
            self.established = step.established = True
            self.session = self._conn.get_session()
        chunks = []
        while True:
            try:
                chunks.append(self._conn.recv(65536))
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                step.peer_closed = True
                break
            except SSL.Error as exc:
                step.failure = f"TLS error: {_describe(exc)}"
                break
        step.plaintext = b"".join(chunks)
        step.outgoing = self._drain()
        return step

    def send(self, plaintext: bytes) -> bytes:
        """Ciphertext carrying ``plaintext``; a memory BIO takes every record at once."""
        view = memoryview(plaintext)
        while view:
            written = self._conn.send(view[:16384])
            view = view[written:]
        return self._drain()

    def close_notify(self) -> bytes:
        try:
            self._conn.shutdown()
        except SSL.Error:
            pass
        return self._drain()

    def describe(self) -> str:
        """``TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256``, for the log."""
        return f"{self._conn.get_protocol_version_name()} {self._conn.get_cipher_name()}"

    def _drain(self) -> bytes:
        out = []
        while True:
            try:
                out.append(self._conn.bio_read(65536))
            except SSL.WantReadError:
                return b"".join(out)

    def _verify(self, cert: crypto.X509, errno: int, depth: int, ok: bool) -> bool:
        policy = self.policy
        if policy is None:
            return True
        if not ok:
            if errno in (NOT_YET_VALID, EXPIRED):
                # OpenSSL judged validity by the host's clock; the module's is checked below.
                return True
            text = _x509_error_text(errno)
            if policy.forgives(errno):
                self.forgiven.append(f"depth {depth}: {text}")
                return True
            self._verify_failure = f"certificate verification failed at depth {depth}: {text} ({errno})"
            return False
        # OpenSSL ends every depth with a call that says ok: the place for the module's own checks.
        certificate = cert.to_cryptography()
        if policy.check_time:
            problem = _validity_problem(certificate, policy.at)
            if problem is not None:
                self._verify_failure = f"certificate at depth {depth} {problem}"
                return False
        if depth == 0 and not _name_matches(certificate, policy.server_name):
            self._verify_failure = f"certificate does not name {policy.server_name!r}"
            return False
        return True


def _validity_problem(cert: x509.Certificate, at: datetime) -> str | None:
    """Why ``cert`` is not valid at the module's time ``at`` (SSL note 1.5), or None."""
    if at < cert.not_valid_before_utc:
        return f"is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC (module clock {at:%Y-%m-%d %H:%M:%S})"
    if at > cert.not_valid_after_utc:
        return f"expired {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC (module clock {at:%Y-%m-%d %H:%M:%S})"
    return None


def _x509_error_text(errno: int) -> str:
    from OpenSSL._util import ffi, lib  # the one place pyOpenSSL offers OpenSSL's own texts

    return ffi.string(lib.X509_verify_cert_error_string(errno)).decode()


def _describe(exc: SSL.Error) -> str:
    parts = [item[2] or item[1] for item in exc.args[0]] if exc.args and isinstance(exc.args[0], list) else []
    return "; ".join(p for p in parts if p) or repr(exc)


def _name_matches(cert: x509.Certificate, server: str) -> bool:
    """The server address against the certificate's subjectAltName (RFC 6125), as the module
    checks it: a wrong host fails like any other verification error (REFERENCE.md)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    try:
        address = ipaddress.ip_address(server)
    except ValueError:
        address = None
    if address is not None:
        return address in san.get_values_for_type(x509.IPAddress)
    wanted = server.rstrip(".").lower()
    for pattern in san.get_values_for_type(x509.DNSName):
        pattern = pattern.rstrip(".").lower()
        if pattern == wanted:
            return True
        if pattern.startswith("*.") and "." in wanted:
            head, _, rest = wanted.partition(".")
            if rest == pattern[2:] and head:
                return True
    return False


def is_ip_literal(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
        return True
    except ValueError:
        return False
