"""A TLS echo server on loopback, for the pytest plugin, the demo and users' own tests.

It serves with the test PKI's server certificate (``ecemu.pki``) unless told otherwise, speaks
TLS 1.0 to 1.2 (what the module can speak), and sends back every byte it receives. ``ca_pem`` is
the test PKI's root CA, ready for AT+QFUPL (None when given a chain of one's own).

``cert`` picks the test PKI's certificate it serves (``SERVER_CERTIFICATES``): ``rsa`` (the
default) and ``ecdsa`` verify against ``ca_pem``; the others are the broken ones a verifying client
must refuse, while ``ca_pem`` stays the CA the client trusts: ``expired`` and ``notyet`` (outside
their validity), ``wronghost`` (names only wrong.example), ``badsig`` (a corrupted signature),
``otherca`` (issued by a CA the client does not trust) and ``selfsigned``.

With ``answer`` it is the SSL note's example server instead: on each connection it sends
``answer`` once, when ``answer_after`` bytes have come, and sends nothing else.
"""

from __future__ import annotations

import socket
import ssl
import tempfile
import threading
import warnings
from pathlib import Path

from .shell.private_files import write_private


# The test PKI's server certificates by short name: server-NAME-chain.pem with server-NAME.key.
SERVER_CERTIFICATES = ("rsa", "ecdsa", "expired", "notyet", "wronghost", "badsig", "otherca", "selfsigned")


class TlsEchoServer:
    def __init__(self, cert_chain: bytes | None = None, key: bytes | None = None, host: str = "127.0.0.1",
                 port: int = 0, client_ca: bytes | None = None, answer: bytes | None = None,
                 answer_after: int = 0, cert: str = "rsa"):
        self.ca_pem: bytes | None = None
        self.cert = cert
        if cert_chain is None or key is None:
            if cert not in SERVER_CERTIFICATES:
                raise ValueError(f"cert must be one of {', '.join(SERVER_CERTIFICATES)}, not {cert!r}")
            from .pki import generate_test_pki

            pki = generate_test_pki()
            cert_chain, key = pki[f"server-{cert}-chain.pem"], pki[f"server-{cert}.key"]
            self.ca_pem = pki["ca.pem"]
        self.answer, self.answer_after = answer, answer_after
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with warnings.catch_warnings():  # TLS 1.0 is deprecated, and is what the module may speak
            warnings.simplefilter("ignore", DeprecationWarning)
            self.context.minimum_version = ssl.TLSVersion.TLSv1
        self.context.maximum_version = ssl.TLSVersion.TLSv1_2
        self.context.set_ciphers("ALL:@SECLEVEL=0")
        with tempfile.TemporaryDirectory() as folder:
            chain_path, key_path = Path(folder, "chain.pem"), Path(folder, "key.pem")
            write_private(chain_path, cert_chain)
            write_private(key_path, key)
            self.context.load_cert_chain(chain_path, key_path)
        if client_ca is not None:
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(cadata=client_ca.decode())
        self._listener = socket.create_server((host, port))
        self._listener.settimeout(0.2)
        self.host, self.port = self._listener.getsockname()[:2]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.connections = 0

    def start(self) -> "TlsEchoServer":
        thread = threading.Thread(target=self._accept_loop, name="tls-echo", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._echo, args=(sock,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _echo(self, sock: socket.socket) -> None:
        sock.settimeout(0.2)
        received, answered = 0, False
        try:
            with self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False) as tls:
                while not self._stop.is_set():
                    try:
                        tls.do_handshake()
                        break
                    except (TimeoutError, socket.timeout, ssl.SSLWantReadError):
                        continue
                while not self._stop.is_set():
                    try:
                        data = tls.recv(65536)
                    except (TimeoutError, socket.timeout, ssl.SSLWantReadError):
                        continue
                    if not data:
                        return
                    if self.answer is None:
                        tls.sendall(data)
                        continue
                    received += len(data)
                    if not answered and received >= self.answer_after:
                        tls.sendall(self.answer)
                        answered = True
        except (ssl.SSLError, OSError):
            return  # a client that failed its handshake or went away

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(2)

    def __enter__(self) -> "TlsEchoServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
