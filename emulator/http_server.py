"""An HTTP and HTTPS server on 127.0.0.1 for the emulator's AT+QHTTP* commands: the stdlib's threaded
http.server, wrapped in TLS 1.0 - 1.2 with the test PKI's server certificate (``ecemu.pki``)
for HTTPS. It records every request and answers:

- ``GET /bytes/<n>``: ``n`` bytes of a fixed pseudo-random stream (``body_bytes(n)``), with
  Content-Length; ``GET /chunked/<n>``: the same, chunked; ``GET /close/<n>``: the same, ended by
  closing the connection (no length);
- ``GET /range/<n>``: ``n`` letters ``abc...z`` repeated, honouring a ``Range: bytes=a-b`` header
  (206 and that part) as httpbin.org's ``/range/<n>`` does;
- ``GET /redirect-to?url=<url>[&status_code=<c>]``: 302 (or ``c``) to that absolute URL;
  ``GET /redirect/<n>``: ``n`` redirects with a relative Location, the last to ``/get``;
  ``GET /absolute-redirect/<n>``: the same with absolute ones;
- ``POST`` / ``PUT`` anything: the request body back, with the request's Content-Type;
- ``GET`` anything else: ``Hello from ecemu`` and the path, as text/plain; ``/status/<code>``
  answers with that status, ``/status/<code>/empty`` with that status and no body (as httpbin.org).

    with HttpTestServer(tls=True) as server:   # server.port, server.ca_pem, server.requests

``ecemu http-server`` runs one from the command line, the pytest plugin's ``ecemu_https_server``
fixture one per test.
"""

from __future__ import annotations

import hashlib
import re
import ssl
import tempfile
import threading
import warnings
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .shell.private_files import write_private


def body_bytes(count: int) -> bytes:
    """The first ``count`` bytes of the server's fixed stream (SHA-256 in counter mode)."""
    out = bytearray()
    block = 0
    while len(out) < count:
        out += hashlib.sha256(block.to_bytes(8, "big")).digest()
        block += 1
    return bytes(out[:count])


@dataclass
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args) -> None:  # quiet: tests read ``requests`` instead
        pass

    def _record(self, body: bytes = b"") -> None:
        self.server.owner._seen(SeenRequest(self.command, self.path, dict(self.headers.items()), body))

    def _send(self, status: int, body: bytes, content_type: str = "text/plain", length: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, status: int, location: str) -> None:
        self.send_response(status)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _range(self, count: int) -> None:
        data = bytes(97 + n % 26 for n in range(count))
        asked = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
        if asked is None:
            return self._send(200, data, "application/octet-stream")
        first = int(asked.group(1))
        last = min(int(asked.group(2)) if asked.group(2) else count - 1, count - 1)
        if first > last:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{count}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        part = data[first:last + 1]
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {first}-{last}/{count}")
        self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        self.wfile.write(part)
        return None

    def do_GET(self) -> None:
        self._record()
        split = urlsplit(self.path)
        if split.path == "/redirect-to":
            query = parse_qs(split.query)
            return self._redirect(int(query.get("status_code", ["302"])[0]), query.get("url", ["/"])[0])
        parts = self.path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "status" and parts[1].isdigit() and parts[2] == "empty":
            return self._send(int(parts[1]), b"")
        if len(parts) == 2 and parts[1].isdigit() and parts[0] in ("redirect", "absolute-redirect"):
            left = int(parts[1]) - 1
            path = f"/{parts[0]}/{left}" if left > 0 else "/get"
            if parts[0] == "absolute-redirect":
                scheme = "https" if self.server.owner.tls else "http"
                path = f"{scheme}://{self.headers.get('Host')}{path}"
            return self._redirect(302, path)
        if len(parts) == 2 and parts[1].isdigit():
            kind, count = parts[0], int(parts[1])
            if kind == "bytes":
                return self._send(200, body_bytes(count), "application/octet-stream")
            if kind == "close":
                return self._send(200, body_bytes(count), "application/octet-stream", length=False)
            if kind == "status":
                return self._send(count, f"status {count}\n".encode())
            if kind == "range":
                return self._range(count)
            if kind == "chunked":
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                data = body_bytes(count)
                for start in range(0, len(data), 4096):
                    chunk = data[start:start + 4096]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
                return None
        return self._send(200, f"Hello from ecemu: {self.path}\n".encode())

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._record(body)
        self._send(200, body, self.headers.get("Content-Type") or "application/octet-stream")

    do_PUT = do_POST


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: "HttpTestServer"


class HttpTestServer:
    """``HttpTestServer(tls=False)``; with ``tls`` it serves ``cert`` of the test PKI (its chain),
    or a chain and key of one's own; ``client_ca`` asks for client certificates."""

    def __init__(self, tls: bool = False, host: str = "127.0.0.1", port: int = 0, cert: str = "server-rsa",
                 cert_chain: bytes | None = None, key: bytes | None = None, client_ca: bytes | None = None):
        self.requests: list[SeenRequest] = []
        self._lock = threading.Lock()
        self.ca_pem: bytes | None = None
        self.tls = tls
        self.server = _Server((host, port), _Handler)
        self.server.owner = self
        if tls:
            if cert_chain is None or key is None:
                from .pki import generate_test_pki

                pki = generate_test_pki()
                cert_chain, key = pki[f"{cert}-chain.pem"], pki[f"{cert}.key"]
                self.ca_pem = pki["ca.pem"]
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            with warnings.catch_warnings():  # TLS 1.0 is deprecated, and is what the module may speak
                warnings.simplefilter("ignore", DeprecationWarning)
                context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_2
            context.set_ciphers("ALL:@SECLEVEL=0")
            with tempfile.TemporaryDirectory() as folder:
                chain_path, key_path = Path(folder, "chain.pem"), Path(folder, "key.pem")
                write_private(chain_path, cert_chain)
                write_private(key_path, key)
                context.load_cert_chain(chain_path, key_path)
            if client_ca is not None:
                context.verify_mode = ssl.CERT_REQUIRED
                context.load_verify_locations(cadata=client_ca.decode())
            # The handshake runs in the request's thread, at its first read: a client that never
            # finishes it holds up no one else.
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True,
                                                     do_handshake_on_connect=False)
        bound = self.server.server_address
        self.host: str = bound[0] if isinstance(bound[0], str) else bound[0].decode()
        self.port: int = bound[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def _seen(self, request: SeenRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def start(self) -> "HttpTestServer":
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="ecemu-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> "HttpTestServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
