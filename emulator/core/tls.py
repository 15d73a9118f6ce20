"""TLS for the SSL commands, on memory buffers, so the core stays sans-IO.

The core hands ciphertext to and from the shell (``SendTcp`` / ``TcpData``); this module turns it
into plaintext and back, as the module's own stack (Mbed TLS 2.x) would. What the module's SSL
settings mean is decided here:

- the versions of SSL note table 2 and ``sslversion`` (``4`` is every version the module has, so
  never TLS 1.3);
- the cipher suites of SSL note table 3 by their codes, offered exactly as configured; ``0XFFFF``
  in Mbed TLS's default preference. A suite no engine here can speak fails the connection with a
  log line saying so, and is never silently replaced by another;
- certificate checks (SSL note 1.5 and 2.2.1) by Mbed TLS's rules (``ecemu.core.tls_verify``),
  at the module's clock, read from the server's flight before any engine answers it
  (``ecemu.core.tls_handshake``), for every engine alike.

The engine that speaks a connection is OpenSSL (``tls_openssl``) wherever it can.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol

from .lifecycle import Transitions
from .tls_handshake import ServerFlight, alert_record

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

    from .tls_verify import VerifyPolicy

# cryptography, pyOpenSSL and the certificate checks (tls_openssl, tls_verify) are imported by the
# functions that use them, when a host first opens or asks about a TLS connection: together they
# are most of what `ecemu run` would import before its ports are ready.

RECORD_PLAINTEXT_MAX = 16384  # the longest TLSPlaintext fragment (RFC 5246 6.2.1, RFC 8446 5.1)

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

# Mbed TLS 2.28's default preference (its ciphersuite_preference list) among the suites of table 3:
# what "all cipher suites" offers, in this order. Servers that follow the client's order pick the
# first they share: ECDHE-RSA with AES-256-GCM before anything else.
MBEDTLS_PREFERENCE = (
    0xC030, 0xC024, 0xC028, 0xC00A, 0xC014,  # ephemeral AES-256
    0xC02F, 0xC023, 0xC027, 0xC009, 0xC013,  # ephemeral AES-128
    0xC008, 0xC012,  # ephemeral 3DES
    0x003D, 0x0035, 0xC02A, 0xC00F, 0xC026, 0xC005,  # AES-256
    0x002F, 0xC029, 0xC00E, 0xC025, 0xC004,  # AES-128
    0x000A, 0xC00D, 0xC003,  # 3DES
    0xC007, 0xC011, 0x0005, 0x0004, 0xC00C, 0xC002,  # RC4
)

# <SSL_version> of SSL note 2.2.1 -> (lowest, highest) protocol version as (major, minor).
SSL3 = 0
VERSION_RANGES: dict[int, tuple[tuple[int, int], tuple[int, int]]] = {
    SSL3: ((3, 0), (3, 0)),
    1: ((3, 1), (3, 1)),
    2: ((3, 2), (3, 2)),
    3: ((3, 3), (3, 3)),
    # "All": SSL 3.0 to TLS 1.2 on the module, never TLS 1.3 (REFERENCE.md "TLS engines").
    4: ((3, 0), (3, 3)),
}
VERSION_NAMES = {0: "SSL 3.0", 1: "TLS 1.0", 2: "TLS 1.1", 3: "TLS 1.2", 4: "SSL 3.0-TLS 1.2"}
TLS12_ONLY = frozenset({0x003D, 0xC023, 0xC024, 0xC025, 0xC026, 0xC027, 0xC028, 0xC029, 0xC02A,
                        0xC02F, 0xC030})


class TlsUnavailable(Exception):
    """The settings ask for something no engine here can speak; the message says what."""


def key_exchange(code: int) -> str:
    """``RSA``, ``ECDHE_RSA``, ``ECDH_ECDSA`` ... of a table 3 suite."""
    name = CIPHER_SUITES[code][0].removeprefix("MBEDTLS_")
    return name.removeprefix("TLS_").split("_WITH_")[0]


def is_elliptic(code: int) -> bool:
    return key_exchange(code) != "RSA"


def usable_cipher_suites() -> list[int]:
    """The codes of table 3 OpenSSL can offer, in the table's order."""
    from . import tls_openssl
    return [code for code in CIPHER_SUITES if tls_openssl.knows_cipher(CIPHER_SUITES[code][1])]


def suite_label(code: int) -> str:
    return f"0X{code:04X} {CIPHER_SUITES[code][0]}" if code in CIPHER_SUITES else f"0X{code:04X}"


@dataclass(frozen=True)
class ContextSettings:
    """Everything that shapes a client context: one per SSL context ID and these settings, so
    that sessions can be resumed (OpenSSL resumes only on the context that made the session)."""

    version: int
    cipher_suite: int
    verify_peer: bool
    ca_pem: bytes | None = None
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None


class EngineConnection(Protocol):
    """One client connection on an engine (``OpenSslConnection``, ``LegacyConnection``,
    ``MbedTlsConnection``), on memory buffers."""

    def handshake(self, ciphertext: bytes) -> tuple[bool, bytes, str | None]:
        """(finished, outgoing, failure)."""

    def receive(self, ciphertext: bytes) -> tuple[bytes, bool, str | None, bytes]:
        """(plaintext, peer_closed, failure, outgoing)."""

    def send(self, plaintext: bytes, record_size: int) -> bytes:
        """Ciphertext carrying ``plaintext`` in records of ``record_size`` bytes (the last shorter)."""

    def close_notify(self) -> bytes: ...

    def session(self) -> object:
        """What resumes this session on the same context later (None where the engine cannot)."""

    def describe(self) -> str: ...


@dataclass
class ClientContext:
    """What every connection of one SSL context shares: the engine's context (bound into
    ``connect``: (sni, session to resume) -> a connection on it) and the trust anchors."""

    anchors: list[x509.Certificate]
    connect: Callable[[str | None, object], EngineConnection]


def build_context(settings: ContextSettings, keylog: Callable[[bytes], None] | None = None) -> ClientContext:
    """The client context for ``settings``; TlsUnavailable when no engine here can speak it."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from . import tls_openssl
    lowest, highest = VERSION_RANGES[settings.version]
    suites = _offered_suites(settings.cipher_suite, lowest, highest)
    if not suites:
        raise TlsUnavailable(_why_not(settings))
    anchors = _load_certificates(settings.ca_pem, "CA certificate") if settings.ca_pem is not None else []
    client_chain = client_key = None
    if settings.client_cert_pem is not None and settings.client_key_pem is not None:
        client_chain = _load_certificates(settings.client_cert_pem, "client certificate")
        try:
            client_key = load_pem_private_key(settings.client_key_pem, password=None)
        except (ValueError, TypeError) as exc:
            raise TlsUnavailable(f"client key cannot be read: {exc}") from None
        if client_key.public_key() != client_chain[0].public_key():
            raise TlsUnavailable("client key does not match the client certificate")
    # OpenSSL wherever it can (fast, keylog, sessions); tlslite-ng where SSL 3.0, RC4 or 3DES are
    # asked for; Mbed TLS itself for the static-ECDH suites (docs/reference/tls.md "Versions and suites").
    openssl_suites = [code for code in suites if tls_openssl.knows_cipher(CIPHER_SUITES[code][1])]
    if openssl_suites and highest >= (3, 1) and (settings.cipher_suite == ALL_CIPHER_SUITES or openssl_suites == suites):
        engine = tls_openssl.build(max(lowest, (3, 1)), highest, [CIPHER_SUITES[code][1] for code in openssl_suites],
                                   client_chain, client_key, keylog)
        return ClientContext(anchors, functools.partial(tls_openssl.OpenSslConnection, engine))
    context = _legacy_context(settings, suites, anchors, keylog)
    if context is None and settings.cipher_suite != ALL_CIPHER_SUITES and highest >= (3, 1):
        context = _mbedtls_context(settings, suites, anchors, client_chain, client_key)
    if context is not None:
        return context
    raise TlsUnavailable(_why_not(settings))


def _legacy_context(settings: ContextSettings, suites: list[int], anchors: list[x509.Certificate],
                    keylog: Callable[[bytes], None] | None) -> ClientContext | None:
    """tlslite-ng's context, where it speaks every suite offered (SSL 3.0, RC4, 3DES)."""
    from . import tls_legacy

    lowest, highest = VERSION_RANGES[settings.version]
    if not all(code in tls_legacy.SUITES for code in suites):
        return None
    engine = tls_legacy.LegacyContext(lowest, highest, suites, settings.client_cert_pem,
                                      settings.client_key_pem, keylog)
    return ClientContext(anchors, functools.partial(tls_legacy.LegacyConnection, engine))


def _mbedtls_context(settings: ContextSettings, suites: list[int], anchors: list[x509.Certificate],
                     client_chain: list[x509.Certificate] | None,
                     client_key: PrivateKeyTypes | None) -> ClientContext | None:
    """Mbed TLS's context, where it speaks the one suite asked for (the static-ECDH AES suites);
    TlsUnavailable saying so where it would and python-mbedtls cannot be imported here."""
    try:
        from . import tls_mbedtls
    except ImportError as exc:  # python-mbedtls has wheels for few platforms; without it, no static ECDH
        if not _MBEDTLS_MISSING:
            _MBEDTLS_MISSING.append(str(exc))
            log.warning("python-mbedtls cannot be imported (%s): the static-ECDH suites of table 3 fail with 566", exc)
        if settings.cipher_suite in STATIC_ECDH_AES:
            raise TlsUnavailable(f"{_why_not(settings)}: the Mbed TLS engine speaks it, and python-mbedtls is "
                                 f"not installed ({_MBEDTLS_MISSING[0]}; docs/explanation/tls-engines.md)") from None
        return None
    lowest, highest = VERSION_RANGES[settings.version]
    names = [_mbedtls_name(code) for code in suites]
    if not all(map(tls_mbedtls.speaks, names)):
        return None
    engine = tls_mbedtls.MbedTlsContext(lowest, highest, names, client_chain, client_key)
    return ClientContext(anchors, functools.partial(tls_mbedtls.MbedTlsConnection, engine))


# The suites only the Mbed TLS engine speaks: static ECDH with AES (with RC4 or 3DES, none does).
STATIC_ECDH_AES = frozenset(code for code in CIPHER_SUITES
                            if key_exchange(code).startswith("ECDH_") and "_WITH_AES_" in CIPHER_SUITES[code][0])
_MBEDTLS_MISSING: list[str] = []  # why python-mbedtls could not be imported, once it was tried

# tlslite-ng's and Mbed TLS's engines (``tls_legacy``, ``tls_mbedtls``) are imported where a context
# first needs one (``_legacy_context``, ``_mbedtls_context``): together they are a third of
# ``ecemu run``'s start-up, and most hosts never ask for what OpenSSL cannot speak.


def _mbedtls_name(code: int) -> str:
    return CIPHER_SUITES[code][0].removeprefix("MBEDTLS_").replace("_", "-")


def _offered_suites(code: int, lowest: tuple[int, int], highest: tuple[int, int]) -> list[int]:
    if code == ALL_CIPHER_SUITES:
        suites = list(MBEDTLS_PREFERENCE)
    elif code in CIPHER_SUITES:
        suites = [code]
    else:
        raise TlsUnavailable(f"cipher suite 0X{code:04X} is not one of the module's")
    # A TLS 1.2 suite needs TLS 1.2, an elliptic-curve suite TLS 1.0 (RFC 4492 has no SSL 3.0).
    return [c for c in suites if (c not in TLS12_ONLY or highest >= (3, 3))
            and (not is_elliptic(c) or highest >= (3, 1))]


def _why_not(settings: ContextSettings) -> str:
    what = VERSION_NAMES[settings.version]
    if settings.cipher_suite == ALL_CIPHER_SUITES:
        return f"no suite of table 3 can be offered with {what} here"
    return (f"cipher suite {suite_label(settings.cipher_suite)} cannot be offered with {what} here"
            " (see docs/reference/tls.md)")


def _load_certificates(pem: bytes, what: str) -> list[x509.Certificate]:
    from cryptography import x509
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise TlsUnavailable(f"{what} cannot be read: {exc}") from None
    return certs


@dataclass
class TlsStep:
    """What one batch of ciphertext from the server produced."""

    plaintext: bytes = b""
    outgoing: bytes = b""  # ciphertext to send to the server
    established: bool = False  # the handshake completed in this step
    peer_closed: bool = False  # the server sent close_notify
    failure: str | None = None  # the connection is dead; why, for the log


class TlsState(enum.Enum):
    """A TLS connection's life, as the client sees it."""

    HANDSHAKING = "handshaking"
    ESTABLISHED = "established"
    PEER_CLOSED = "the server's close_notify came"
    DEAD = "a failure ended it: nothing more is said on it"


TLS_STATES = Transitions("TLS", {
    (TlsState.HANDSHAKING, "finished"): TlsState.ESTABLISHED,
    (TlsState.HANDSHAKING, "failed"): TlsState.DEAD,
    (TlsState.ESTABLISHED, "close_notify"): TlsState.PEER_CLOSED,
    (TlsState.ESTABLISHED, "failed"): TlsState.DEAD,
    (TlsState.PEER_CLOSED, "failed"): TlsState.DEAD,
})


@dataclass
class TlsClient:
    """One TLS client connection: the engine's, with the module's certificate checks in front."""

    context: ClientContext
    policy: VerifyPolicy | None  # None: no verification (secllevel 0)
    sni: str | None = None
    session: object = None
    forgiven: list[str] = field(default_factory=list)
    state: TlsState = TlsState.HANDSHAKING  # changed through TLS_STATES only

    def __post_init__(self) -> None:
        self._engine = self.context.connect(self.sni, self.session)
        # The server's flight, read until its certificates can be checked; None: nothing to check.
        self._flight = ServerFlight() if self.policy is not None else None

    @property
    def peer_closed(self) -> bool:
        """The server's close_notify has come, and nothing broke since."""
        return self.state is TlsState.PEER_CLOSED

    def _to(self, event: str) -> None:
        self.state = TLS_STATES.next(self.state, event)

    def start(self) -> TlsStep:
        """Begin the handshake: the ClientHello to send, or the failure that stops it."""
        return self.feed(b"")

    def feed(self, ciphertext: bytes) -> TlsStep:
        step = TlsStep()
        if self.state is TlsState.DEAD:
            return step
        if self.state is TlsState.HANDSHAKING:
            if self._flight is not None and ciphertext:
                refusal = self._check_server(ciphertext)
                if refusal is not None:
                    self._to("failed")
                    return refusal
            finished, step.outgoing, step.failure = self._engine.handshake(ciphertext)
            if step.failure is not None:
                self._to("failed")
                return step
            if not finished:
                return step
            self._to("finished")
            step.established = True
            self.session = self._engine.session()
            ciphertext = b""
        step.plaintext, step.peer_closed, step.failure, outgoing = self._engine.receive(ciphertext)
        step.outgoing += outgoing
        if step.failure is not None:
            self._to("failed")
        elif step.peer_closed and self.state is TlsState.ESTABLISHED:
            self._to("close_notify")
        return step

    def _check_server(self, ciphertext: bytes) -> TlsStep | None:
        """The server's certificate, once it has arrived, by the module's rules; a step with the
        alert when it fails."""
        flight, policy = self._flight, self.policy
        assert flight is not None and policy is not None  # (feed checks only while both are)
        flight.feed(ciphertext)
        certificates = flight.certificates
        if certificates is None:
            return None
        self._flight = None  # checked once; a resumed session shows no certificate at all
        from .tls_verify import VerifyPolicy, verify_server
        if policy.server_name is not None and is_ip_literal(policy.server_name):
            policy = VerifyPolicy(None, policy.at, policy.check_time, policy.forgive_chain,
                                  policy.forgive_signature)
        suite = flight.cipher_suite
        exchange = key_exchange(suite) if suite in CIPHER_SUITES else None
        verdict = verify_server(certificates, self.context.anchors, policy, exchange)
        self.forgiven.extend(verdict.forgiven)
        if verdict.ok:
            return None
        return TlsStep(outgoing=alert_record(flight.version, verdict.alert),
                       failure="certificate verification failed: " + "; ".join(verdict.problems))

    def send(self, plaintext: bytes, record_size: int = RECORD_PLAINTEXT_MAX) -> bytes:
        """Ciphertext carrying ``plaintext`` in records of ``record_size`` bytes at most (transparent
        mode's packets: one record each); a memory buffer takes every record at once."""
        return self._engine.send(plaintext, record_size)

    def close_notify(self) -> bytes:
        return b"" if self.state is TlsState.DEAD else self._engine.close_notify()

    def describe(self) -> str:
        """``TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256``, for the log."""
        return self._engine.describe()


def is_ip_literal(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
        return True
    except ValueError:
        return False
