"""A network for tests of the core: the modem's effects carried out in memory, against real TLS.

``SimulatedNetwork`` plays the shell's part for a ``CoreHarness``: OpenTcp connects (or fails as
told), SendTcp reaches a server, and what the server answers comes back as TcpData events. The
servers are OpenSSL (pyOpenSSL, server side, on memory BIOs), so the handshake, the certificate
checks and every record are real; only the sockets are missing. Time is the harness's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from OpenSSL import SSL, crypto

from ecemu.core import events as ev
from ecemu.pki import generate_test_pki


def server_context(cert: str = "server-rsa", chain: bool = True, client_ca: bool = False) -> SSL.Context:
    pki = generate_test_pki()
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_max_proto_version(SSL.TLS1_2_VERSION)
    context.set_min_proto_version(SSL.TLS1_VERSION)
    context.set_cipher_list(b"ALL:@SECLEVEL=0")
    certs = x509.load_pem_x509_certificates(pki[f"{cert}-chain.pem" if chain else f"{cert}.pem"])
    context.use_certificate(certs[0])
    for extra in certs[1:]:
        context.add_extra_chain_cert(extra)
    context.use_privatekey(load_pem_private_key(pki[f"{cert}.key"], None))
    if client_ca:
        context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *args: args[-1])
        for ca in x509.load_pem_x509_certificates(pki["ca.pem"]):
            context.get_cert_store().add_cert(crypto.X509.from_cryptography(ca))
    return context


@dataclass
class ServerSide:
    """One accepted connection: the server's TLS end and what it has received."""

    conn_id: int
    tls: SSL.Connection
    echo: bool
    received: bytearray = field(default_factory=bytearray)
    records: list[int] = field(default_factory=list)  # each application data record's size, in order
    handshake_done: bool = False
    failed: str | None = None
    closed: bool = False  # the client closed (FIN or abort)
    got_close_notify: bool = False
    reading: bool = True  # the client wants more (PauseReading/ResumeReading)
    outbox: bytearray = field(default_factory=bytearray)  # ciphertext waiting while not reading

    def drain(self) -> bytes:
        out = []
        while True:
            try:
                out.append(self.tls.bio_read(65536))
            except SSL.WantReadError:
                return b"".join(out)


class SimulatedNetwork:
    def __init__(self, harness, context: SSL.Context | None = None, echo: bool = True):
        self.harness = harness
        self.context = context or server_context()
        self.echo = echo
        self.servers: dict[int, ServerSide] = {}
        self.fail_next: list[str] = []  # TcpConnectFailed reasons for the next opens
        self.opens: list[ev.OpenTcp] = []
        self.hold_opens = False  # leave opens unanswered (a SYN nobody answers)
        self.unacked: set[int] = set()  # connections whose sends are not drained until told

    # --- what tests call ---------------------------------------------------------------------

    def run(self) -> bytes:
        """Carry out effects and deliver events until nothing moves; what the host received."""
        out = bytearray()
        for _ in range(10000):
            effects = self.harness.take_effects()
            if not effects:
                return bytes(out)
            for effect in effects:
                out += self.execute(effect)
        raise AssertionError("the network never settled")

    def server(self, index: int = -1) -> ServerSide:
        return list(self.servers.values())[index]

    def server_sends(self, side: ServerSide, data: bytes) -> bytes:
        """The server writes ``data``; the host output it causes."""
        side.tls.sendall(data)
        return self._to_client(side) + self.run()

    def server_closes(self, side: ServerSide, notify: bool = True, reset: bool = False) -> bytes:
        if notify and not reset:
            try:
                side.tls.shutdown()
            except SSL.Error:
                pass
            out = self._to_client(side)
        else:
            out = b""
        side.closed = True
        return out + self.harness.event(ev.TcpClosed(side.conn_id, reset=reset)) + self.run()

    def resume(self, side: ServerSide) -> bytes:
        return self._to_client(side) + self.run()

    # --- effects -----------------------------------------------------------------------------

    def execute(self, effect: ev.Effect) -> bytes:
        """Carry out one of the module's effects; what the module said back. Subclasses and tests
        replace it to make other servers or hold a server's answer back."""
        h = self.harness
        if isinstance(effect, ev.OpenTcp):
            self.opens.append(effect)
            if self.hold_opens:
                return b""
            if self.fail_next:
                return h.event(ev.TcpConnectFailed(effect.conn_id, self.fail_next.pop(0)))
            tls = SSL.Connection(self.context, None)
            tls.set_accept_state()
            self.servers[effect.conn_id] = ServerSide(effect.conn_id, tls, self.echo)
            return h.event(ev.TcpConnected(effect.conn_id, "127.0.0.1", effect.port, 50000 + effect.conn_id))
        side = self.servers.get(effect.conn_id)
        if side is None:
            return b""
        if isinstance(effect, ev.SendTcp):
            out = self.from_client(side, effect.data)
            if effect.conn_id not in self.unacked:
                out += h.event(ev.TcpDrained(effect.conn_id))
            return out
        if isinstance(effect, ev.ShutdownTcp):
            # A server that closes when its client does: FIN back at once.
            if not side.closed:
                side.closed = True
                return h.event(ev.TcpClosed(effect.conn_id))
            return b""
        if isinstance(effect, ev.CloseTcp):
            side.closed = True
            return b""
        if isinstance(effect, ev.PauseReading):
            side.reading = False
            return b""
        if isinstance(effect, ev.ResumeReading):
            side.reading = True
            return self._to_client(side)
        return b""

    def from_client(self, side: ServerSide, data: bytes) -> bytes:
        """``data`` the module sent reaches the server end ``side``; what the module said back."""
        side.tls.bio_write(data)
        if not side.handshake_done:
            try:
                side.tls.do_handshake()
                side.handshake_done = True
            except SSL.WantReadError:
                pass
            except SSL.Error as exc:
                side.failed = str(exc)
        if side.handshake_done:
            while True:
                try:
                    chunk = side.tls.recv(65536)
                except SSL.WantReadError:
                    break
                except SSL.ZeroReturnError:
                    side.got_close_notify = True
                    break
                except SSL.Error as exc:
                    side.failed = str(exc)
                    break
                side.received += chunk
                side.records.append(len(chunk))  # SSL_read gives one record at most
                if side.echo:
                    side.tls.sendall(chunk)
        return self._to_client(side)

    def _to_client(self, side: ServerSide) -> bytes:
        side.outbox += side.drain()
        if not side.outbox or not side.reading or side.closed and not side.outbox:
            return b""
        data, side.outbox = bytes(side.outbox), bytearray()
        return self.harness.event(ev.TcpData(side.conn_id, data))
