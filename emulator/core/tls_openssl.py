"""The OpenSSL engine (pyOpenSSL over memory BIOs): TLS 1.0 to 1.2 with the suites of table 3
that OpenSSL still has, its ClientHello shaped like Mbed TLS 2.28's.

Certificates are not OpenSSL's to judge: ``ecemu.core.tls`` checks them, by Mbed TLS's rules,
before this engine sees the server's flight, so the context verifies nothing itself.
"""

from __future__ import annotations

import functools
from typing import Callable

from cryptography import x509
from OpenSSL import SSL

# What Mbed TLS 2.28 offers (measured from its ClientHello): signature algorithms ECDSA and RSA
# PKCS#1 with SHA-512 down to SHA-224, no RSA-PSS and no EdDSA ...
SIGNATURE_ALGORITHMS = b"ECDSA+SHA512:RSA+SHA512:ECDSA+SHA384:RSA+SHA384:ECDSA+SHA256:RSA+SHA256:ECDSA+SHA224:RSA+SHA224"
# ... and every curve it has, brainpool among them, in its order (X25519 and X448 last).
GROUPS = ("secp521r1", "brainpoolP512r1", "secp384r1", "brainpoolP384r1", "prime256v1", "secp256k1",
          "brainpoolP256r1", "secp224r1", "secp224k1", "secp192r1", "secp192k1", "X25519", "X448")

PROTOCOLS = {(3, 1): SSL.TLS1_VERSION, (3, 2): SSL.TLS1_1_VERSION, (3, 3): SSL.TLS1_2_VERSION}


@functools.cache
def knows_cipher(name: str) -> bool:
    try:
        SSL.Context(SSL.TLS_METHOD).set_cipher_list(f"{name}:@SECLEVEL=0".encode())
    except SSL.Error:
        return False
    return True


@functools.cache
def usable_groups() -> bytes:
    """The groups of GROUPS this OpenSSL can offer, in that order."""
    from OpenSSL._util import lib  # pyOpenSSL has no public call for the group list

    usable = [name for name in GROUPS
              if lib.SSL_CTX_set1_curves_list(SSL.Context(SSL.TLS_METHOD)._context, name.encode()) == 1]
    return ":".join(usable).encode()


def build(lowest: tuple[int, int], highest: tuple[int, int], cipher_names: list[str],
          client_chain: list[x509.Certificate] | None, client_key,
          keylog: Callable[[bytes], None] | None) -> SSL.Context:
    from OpenSSL._util import lib

    context = SSL.Context(SSL.TLS_METHOD)
    context.set_min_proto_version(PROTOCOLS[lowest])
    context.set_max_proto_version(PROTOCOLS[highest])
    # @SECLEVEL=0: TLS 1.0/1.1 and the module's old suites are refused at OpenSSL's default level.
    context.set_cipher_list((":".join(cipher_names) + ":@SECLEVEL=0").encode())
    lib.SSL_CTX_set1_sigalgs_list(context._context, SIGNATURE_ALGORITHMS)
    lib.SSL_CTX_set1_curves_list(context._context, usable_groups())
    context.set_verify(SSL.VERIFY_NONE)
    if client_chain:
        context.use_certificate(client_chain[0])
        for extra in client_chain[1:]:
            context.add_extra_chain_cert(extra)
        context.use_privatekey(client_key)
        context.check_privatekey()
    # OpenSSL's own client cache would keep every session ever made; the module keeps one per
    # server and SSL context, and only with session_cache 1 (the SSL family's store does that).
    context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    if keylog is not None:
        context.set_keylog_callback(lambda _conn, line: keylog(line))
    return context


class OpenSslConnection:
    """One client connection on an OpenSSL context, over memory BIOs."""

    def __init__(self, context: SSL.Context, sni: str | None, session: object):
        self._conn = SSL.Connection(context, None)
        self._conn.set_connect_state()
        if sni:
            self._conn.set_tlsext_host_name(sni.encode("idna"))
        if isinstance(session, SSL.Session):  # one this context made: resumed
            self._conn.set_session(session)

    def handshake(self, ciphertext: bytes) -> tuple[bool, bytes, str | None]:
        """(finished, outgoing, failure)."""
        if ciphertext:
            self._conn.bio_write(ciphertext)
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            return False, self._drain(), None
        except SSL.Error as exc:
            return False, self._drain(), f"handshake failed: {_describe(exc)}"
        return True, self._drain(), None

    def receive(self, ciphertext: bytes) -> tuple[bytes, bool, str | None, bytes]:
        """(plaintext, peer_closed, failure, outgoing)."""
        if ciphertext:
            self._conn.bio_write(ciphertext)
        chunks, closed, failure = [], False, None
        while True:
            try:
                chunks.append(self._conn.recv(65536))
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                closed = True
                break
            except SSL.Error as exc:
                failure = f"TLS error: {_describe(exc)}"
                break
        return b"".join(chunks), closed, failure, self._drain()

    def send(self, plaintext: bytes, record_size: int) -> bytes:
        view = memoryview(plaintext)
        while view:
            written = self._conn.send(view[:record_size])
            view = view[written:]
        return self._drain()

    def close_notify(self) -> bytes:
        try:
            self._conn.shutdown()
        except SSL.Error:
            pass
        return self._drain()

    def session(self) -> SSL.Session | None:
        return self._conn.get_session()

    def describe(self) -> str:
        return f"{self._conn.get_protocol_version_name()} {self._conn.get_cipher_name()}"

    def _drain(self) -> bytes:
        out = []
        while True:
            try:
                out.append(self._conn.bio_read(65536))
            except SSL.WantReadError:
                return b"".join(out)


def _describe(exc: SSL.Error) -> str:
    parts = [item[2] or item[1] for item in exc.args[0]] if exc.args and isinstance(exc.args[0], list) else []
    return "; ".join(p for p in parts if p) or repr(exc)

