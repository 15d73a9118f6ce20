"""TLS servers on 127.0.0.1 that record what they see, for the end-to-end SSL tests.

Each accepted connection is served on its own thread with OpenSSL (Python's ``ssl``) and leaves a
``Seen`` record: SNI, version, cipher, the suites the client offered (``shared_ciphers`` against
a server that enables everything), whether the session was resumed, the client certificate, and
every byte received. What the server does with a connection is a ``behaviour`` function; the
usual ones are below. Every wait is bounded; ``stop`` ends everything.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ecemu.pki import generate_test_pki

IO_TIMEOUT = 0.2  # how often loops look at the stop flag
WAIT = 10.0


@dataclass
class Seen:
    sni: str | None = None
    version: str | None = None
    cipher: str | None = None
    offered: list[str] = field(default_factory=list)
    resumed: bool = False
    client_cert: dict | None = None
    received: bytearray = field(default_factory=bytearray)
    handshake_error: str | None = None
    closed_by_client: bool = False
    handshake_over: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


class TlsServer:
    """``TlsServer(cert="server-rsa", behaviour=echo)``: serves that PKI leaf (with its chain)."""

    def __init__(self, cert: str = "server-rsa", behaviour: Callable[["TlsServer", ssl.SSLSocket, Seen], None] | None = None,
                 chain: bool = True, client_ca: bool = False, min_version=ssl.TLSVersion.MINIMUM_SUPPORTED,
                 max_version=ssl.TLSVersion.TLSv1_2, ciphers: str = "ALL:@SECLEVEL=0"):
        pki = generate_test_pki()
        self.pki = pki
        self.behaviour = behaviour or echo
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = min_version
        context.maximum_version = max_version
        context.set_ciphers(ciphers)
        with tempfile.TemporaryDirectory() as folder:
            cert_path, key_path = Path(folder, "cert.pem"), Path(folder, "key.pem")
            cert_path.write_bytes(pki[f"{cert}-chain.pem" if chain else f"{cert}.pem"])
            key_path.write_bytes(pki[f"{cert}.key"])
            context.load_cert_chain(cert_path, key_path)
        if client_ca:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cadata=pki["ca.pem"].decode())
        context.sni_callback = self._sni
        self.context = context
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(IO_TIMEOUT)
        self.port = self.listener.getsockname()[1]
        self.seen: list[Seen] = []
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sni_by_socket: dict[int, str] = {}
        self._arrivals = threading.Condition()

    def _sni(self, sock: ssl.SSLObject, name: str | None, _context) -> None:
        self._sni_by_socket[id(sock)] = name

    def start(self) -> "TlsServer":
        thread = threading.Thread(target=self._accept_loop, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                raw, _ = self.listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            seen = Seen()
            with self._arrivals:
                self.seen.append(seen)
                self._arrivals.notify_all()
            thread = threading.Thread(target=self._serve, args=(raw, seen), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, raw: socket.socket, seen: Seen) -> None:
        raw.settimeout(WAIT)
        try:
            try:
                tls = self.context.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                seen.handshake_error = str(exc)
                seen.handshake_over.set()
                raw.close()
                return
            seen.sni = self._sni_by_socket.get(id(tls))
            seen.version = tls.version()
            seen.cipher = tls.cipher()[0]
            seen.offered = [c[0] for c in (tls.shared_ciphers() or [])]
            seen.resumed = tls.session_reused
            seen.client_cert = tls.getpeercert() or None
            seen.handshake_over.set()
            tls.settimeout(IO_TIMEOUT)
            try:
                self.behaviour(self, tls, seen)
            except (ssl.SSLError, OSError):
                pass
            finally:
                tls.close()
        finally:
            seen.handshake_over.set()
            seen.done.set()

    def recv_some(self, tls: ssl.SSLSocket, seen: Seen) -> bytes | None:
        """Bytes, b"" when the client closed, None when nothing came for a moment."""
        try:
            data = tls.recv(65536)
        except (TimeoutError, socket.timeout, ssl.SSLWantReadError):
            return None
        if not data:
            seen.closed_by_client = True
            return b""
        seen.received += data
        return data

    def connection(self, index: int = 0, timeout: float = WAIT) -> Seen:
        """The record of the index-th connection once its handshake is over (or failed)."""
        with self._arrivals:
            if not self._arrivals.wait_for(lambda: len(self.seen) > index, timeout):
                raise TimeoutError(f"no connection {index} within {timeout} s")
        seen = self.seen[index]
        if not seen.handshake_over.wait(timeout):
            raise TimeoutError(f"connection {index}: handshake not over within {timeout} s")
        return seen

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()
        for thread in self._threads:
            thread.join(WAIT)

    def __enter__(self) -> "TlsServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


# Behaviours ----------------------------------------------------------------------------------


def echo(server: TlsServer, tls: ssl.SSLSocket, seen: Seen) -> None:
    """Send back every byte, until the client closes."""
    while not server.stopping.is_set():
        data = server.recv_some(tls, seen)
        if data == b"":
            return
        if data:
            tls.sendall(data)


def send_then_echo(payload: bytes) -> Callable:
    """Send ``payload`` at once, then echo."""
    def behaviour(server: TlsServer, tls: ssl.SSLSocket, seen: Seen) -> None:
        tls.sendall(payload)
        echo(server, tls, seen)
    return behaviour


def send_then_close(payload: bytes) -> Callable:
    """Send ``payload`` and close the connection (close_notify and FIN)."""
    def behaviour(server: TlsServer, tls: ssl.SSLSocket, seen: Seen) -> None:
        tls.sendall(payload)
        tls.settimeout(WAIT)
        try:
            tls.unwrap()
        except (ssl.SSLError, OSError):
            pass
    return behaviour


def hold_until_client_closes(server: TlsServer, tls: ssl.SSLSocket, seen: Seen) -> None:
    """Read and keep everything, answer nothing, until the client closes."""
    while not server.stopping.is_set():
        if server.recv_some(tls, seen) == b"":
            return


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- servers in memory, for the core tests: other engines behind pyOpenSSL's Connection calls ------
#
# tests/core_network.py's SimulatedNetwork drives an OpenSSL server end (bio_write, bio_read,
# do_handshake, recv, sendall, shutdown). These ends offer the same calls over tlslite-ng (SSL 3.0,
# RC4, 3DES) and python-mbedtls (the static-ECDH suites), and say what was negotiated.

from OpenSSL import SSL  # noqa: E402

from ecemu.core.tls import CIPHER_SUITES  # noqa: E402



class _Pipe:
    def __init__(self) -> None:
        self.incoming = bytearray()
        self.outgoing = bytearray()

    def recv(self, size: int) -> bytes:
        import errno

        if not self.incoming:
            raise OSError(errno.EWOULDBLOCK, "nothing has arrived")
        data = bytes(self.incoming[:size])
        del self.incoming[:size]
        return data

    def send(self, data: bytes) -> int:
        self.outgoing += data
        return len(data)

    sendall = send

    def close(self) -> None:
        pass


class TlsliteServerEnd:
    """A tlslite-ng server end with every version and suite the module's table has for it."""

    def __init__(self, cert: str = "server-rsa", sessions=None, ask_client_cert: bool = False):
        """``sessions``: a tlslite-ng ``SessionCache`` shared by the ends that may resume."""
        from tlslite import HandshakeSettings, TLSConnection, X509CertChain, parsePEMKey

        pki = generate_test_pki()
        chain = X509CertChain()
        chain.parsePemList(pki[f"{cert}-chain.pem"].decode())
        key = parsePEMKey(pki[f"{cert}.key"].decode(), private=True)
        settings = HandshakeSettings()
        settings.minVersion, settings.maxVersion = (3, 0), (3, 3)
        settings.cipherNames = ["aes256gcm", "aes128gcm", "aes256", "aes128", "3des", "rc4"]
        settings.macNames = ["sha", "sha256", "sha384", "aead", "md5"]
        settings.keyExchangeNames = ["rsa", "ecdhe_rsa", "ecdhe_ecdsa"]
        self._pipe = _Pipe()
        self.connection = TLSConnection(self._pipe)
        self._handshaking = self.connection.handshakeServerAsync(
            certChain=chain, privateKey=key, settings=settings, sessionCache=sessions, reqCert=ask_client_cert)
        self._reading = None

    def negotiated(self) -> tuple[tuple[int, int], int]:
        return self.connection.version, self.connection.session.cipherSuite

    @property
    def resumed(self) -> bool:
        return self.connection.resumed

    @property
    def client_cert_der(self) -> bytes | None:
        chain = self.connection.session.clientCertChain
        return bytes(chain.x509List[0].bytes) if chain and chain.x509List else None

    def bio_write(self, data: bytes) -> None:
        self._pipe.incoming += data

    def bio_read(self, size: int) -> bytes:
        if not self._pipe.outgoing:
            raise SSL.WantReadError()
        data, self._pipe.outgoing = bytes(self._pipe.outgoing), bytearray()
        return data

    def do_handshake(self) -> None:
        from tlslite.errors import TLSError

        try:
            for want in self._handshaking:
                if want == 0:
                    raise SSL.WantReadError()
        except TLSError as exc:
            raise SSL.Error(str(exc)) from None

    def recv(self, size: int) -> bytes:
        from tlslite.errors import TLSRemoteAlert

        try:
            while True:
                if self._reading is None:
                    self._reading = self.connection.readAsync()
                result = next(self._reading, b"")
                if result == 0:
                    raise SSL.WantReadError()
                if result == 1:
                    continue
                self._reading = None
                if not result:
                    raise SSL.ZeroReturnError()
                return bytes(result)
        except TLSRemoteAlert:
            raise SSL.ZeroReturnError() from None

    def sendall(self, data: bytes) -> None:
        for _ in self.connection.writeAsync(data):
            pass

    def shutdown(self) -> None:
        for want in self.connection.closeAsync():
            if want == 0:
                return


class MbedTlsServerEnd:
    """A python-mbedtls server end offering the static-ECDH suites of table 3, TLS 1.0 to 1.2."""

    def __init__(self, cert: str = "server-ecdsa", ask_client_cert: bool = False):
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from mbedtls import pk, tls
        from mbedtls.x509 import CRT

        self._tls_module = tls
        pki = generate_test_pki()
        chain = [CRT.from_DER(c.public_bytes(serialization.Encoding.DER))
                 for c in x509.load_pem_x509_certificates(pki[f"{cert}-chain.pem"])]
        key = pk.ECC.from_PEM(pki[f"{cert}.key"].decode())
        names = [name.removeprefix("MBEDTLS_").replace("_", "-") for name, _ in CIPHER_SUITES.values()]
        # Mbed TLS asks for a client certificate when it validates them; the test CA makes them valid.
        trust = tls.TrustStore([CRT.from_DER(c.public_bytes(serialization.Encoding.DER))
                                for c in x509.load_pem_x509_certificates(pki["ca.pem"])])
        configuration = tls.TLSConfiguration(
            certificate_chain=(chain, key), validate_certificates=ask_client_cert, trust_store=trust,
            ciphers=[n for n in names if n in tls.ciphers_available()],
            lowest_supported_version=tls.TLSVersion.TLSv1, highest_supported_version=tls.TLSVersion.TLSv1_2)
        self._tls = tls.ServerContext(configuration).wrap_buffers()

    @property
    def client_cert_der(self) -> bytes | None:
        return self._tls.getpeercert(binary_form=True) or None

    def negotiated(self) -> tuple[tuple[int, int], int]:
        versions = {"TLSv1": (3, 1), "TLSv1_1": (3, 2), "TLSv1_2": (3, 3)}
        name, version = self.negotiated_names()
        code = next(code for code, (label, _) in CIPHER_SUITES.items()
                    if label.removeprefix("MBEDTLS_").replace("_", "-") == name)
        return versions[version], code

    def negotiated_names(self) -> tuple[str, str]:
        """Mbed TLS's names for the suite and the version: ("TLS-ECDH-ECDSA-WITH-AES-128-CBC-SHA", "TLSv1_2")."""
        return self._tls.cipher(), self._tls.negotiated_tls_version().name

    def bio_write(self, data: bytes) -> None:
        self._tls.receive_from_network(data)

    def bio_read(self, size: int) -> bytes:
        data = self._tls.peek_outgoing(1 << 20)
        if not data:
            raise SSL.WantReadError()
        self._tls.consume_outgoing(len(data))
        return data

    def do_handshake(self) -> None:
        from mbedtls.exceptions import TLSError

        tls = self._tls_module
        try:
            while self._tls._handshake_state is not tls.HandshakeStep.HANDSHAKE_OVER:
                try:
                    self._tls.do_handshake()
                except tls.WantWriteError:
                    pass
        except tls.WantReadError:
            raise SSL.WantReadError() from None
        except TLSError as exc:
            raise SSL.Error(exc.msg) from None

    def recv(self, size: int) -> bytes:
        from mbedtls.exceptions import TLSError

        try:
            data = self._tls.read(size)
        except (self._tls_module.WantReadError, self._tls_module.WantWriteError):
            raise SSL.WantReadError() from None
        except TLSError:
            raise SSL.ZeroReturnError() from None  # close_notify (MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
        if not data:
            raise SSL.WantReadError()
        return data

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self._tls.write(bytes(view[:16384])):]

    def shutdown(self) -> None:
        self._tls.shutdown()


class EngineEchoServer:
    """An echo server on 127.0.0.1 speaking through one of the ends above (``TlsliteServerEnd``,
    ``MbedTlsServerEnd``), one connection at a time; ``negotiated`` lists (version, suite) per
    handshake, as the server saw it."""

    def __init__(self, make_end: Callable[[], object]):
        self.make_end = make_end
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(IO_TIMEOUT)
        self.port = self.listener.getsockname()[1]
        self.negotiated: list[tuple[tuple[int, int], int]] = []
        self.failures: list[str] = []
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve_all, daemon=True)

    def __enter__(self) -> "EngineEchoServer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopping.set()
        self.listener.close()
        self._thread.join(WAIT)

    def _serve_all(self) -> None:
        while not self.stopping.is_set():
            try:
                raw, _ = self.listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            with raw:
                raw.settimeout(IO_TIMEOUT)
                self._serve(raw, self.make_end())

    def _serve(self, raw: socket.socket, end) -> None:
        handshaken = False
        while not self.stopping.is_set():
            try:
                data = raw.recv(65536)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            if not data:
                return
            end.bio_write(data)
            try:
                if not handshaken:
                    try:
                        end.do_handshake()
                        handshaken = True
                        self.negotiated.append(end.negotiated())
                    except SSL.WantReadError:
                        pass
                while handshaken:
                    try:
                        end.sendall(end.recv(65536))
                    except SSL.WantReadError:
                        break
            except SSL.ZeroReturnError:
                return
            except SSL.Error as exc:
                self.failures.append(str(exc))
            try:
                raw.sendall(end.bio_read(1 << 20))
            except SSL.WantReadError:
                pass
            except OSError:
                return
