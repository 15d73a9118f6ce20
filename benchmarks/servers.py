"""The other ends the benchmarks measure against, each run as its own process.

    python benchmarks/servers.py tls-echo          # prints "ready: PORT"
    python benchmarks/servers.py pty-lines HEX     # prints "ready: /dev/pts/N"
    python benchmarks/servers.py pty-echo          # prints "ready: /dev/pts/N"
    python benchmarks/servers.py pty-buffer        # prints "ready: /dev/pts/N"
    python benchmarks/servers.py pty-answers PREFIX:ANSWER ...  # prints "ready: /dev/pts/N"
    python benchmarks/servers.py http-fixed SIZE   # prints "ready: PORT"

- ``tls-echo``: a TLS echo server on 127.0.0.1, one thread per connection with blocking sockets
  (Python's ``ssl``, i.e. OpenSSL, which releases the GIL while it reads, writes and encrypts), the
  test PKI's RSA server certificate, TLS 1.0 to 1.2 as the module speaks. It is the server for the
  emulator and for the direct client alike, so both paths pay for the same server.
- ``pty-lines``: the floor of an AT round trip: a pty whose other end echoes every byte and answers
  each CR with the bytes given in hex (``\\r\\nOK\\r\\n`` when omitted), on an asyncio loop, as the
  emulator's shell is built.
- ``pty-echo``: the floor of transparent mode's pty legs: a pty whose other end sends back every
  byte, on an asyncio loop that reads and writes as the emulator's shell does.

- ``pty-answers PREFIX:ANSWER ...`` (hex): the floor of an exchange such as AT+QMTPUB or
  AT+QHTTPGET: a pty answering each line (ATE0: no echo) with the bytes of the first prefix it
  starts with, as the emulator answered it in the same run.
- ``http-fixed SIZE``: an HTTP/1.1 server (the standard library's, one thread per connection)
  answering every GET with 200 and SIZE bytes.

- ``pty-buffer``: the floor of buffer access mode: the AT+QSSLSEND / AT+QSSLRECV exchange on a
  pty, answered at once from memory, with no TLS and no network behind it.

Every server stops when its standard input closes (the benchmark ended, or died) and after
``LIFETIME`` seconds at the latest.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import sys
import tempfile
import termios
import threading
import tty
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LIFETIME = 1800.0


def _stop_with_stdin() -> None:
    """Exit the process when the parent closes our standard input, or after LIFETIME."""
    def watch() -> None:
        sys.stdin.buffer.read()
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    deadline = threading.Timer(LIFETIME, lambda: os._exit(0))
    deadline.daemon = True
    deadline.start()


def tls_echo() -> None:
    from ecemu.pki import generate_test_pki

    pki = generate_test_pki()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0 is the module's, old as it is
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ALL:@SECLEVEL=0")
    with tempfile.TemporaryDirectory() as folder:
        chain, key = Path(folder, "chain.pem"), Path(folder, "key.pem")
        chain.write_bytes(pki["server-rsa-chain.pem"])
        key.write_bytes(pki["server-rsa.key"])
        context.load_cert_chain(chain, key)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve(sock: socket.socket) -> None:
        # Small records are answered at once: no Nagle delay on an echo.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            with context.wrap_socket(sock, server_side=True) as tls:
                while data := tls.recv(65536):
                    tls.sendall(data)
        except (ssl.SSLError, OSError):
            pass  # the client went away

    _serve_each(listener, serve)


def _serve_each(listener: socket.socket, serve) -> None:
    """Every connection to ``listener`` served by ``serve`` in a thread of its own; announce the port."""
    def accept() -> None:
        while True:
            sock, _ = listener.accept()
            threading.Thread(target=serve, args=(sock,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    print(f"ready: {listener.getsockname()[1]}", flush=True)


def tcp_echo() -> None:
    """A plain TCP echo server (the AT+QIOPEN rows' server), one thread per connection."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve(sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            with sock:
                while data := sock.recv(65536):
                    sock.sendall(data)
        except OSError:
            pass  # the client went away

    _serve_each(listener, serve)


def tcp_source() -> None:
    """Per connection: reads a line with a count, sends that many bytes, closes (the download rows)."""
    listener = socket.create_server(("127.0.0.1", 0))
    block = bytes(range(256)) * 256

    def serve(sock: socket.socket) -> None:
        try:
            with sock:
                line = b""
                while not line.endswith(b"\n"):
                    got = sock.recv(64)
                    if not got:
                        return
                    line += got
                left = int(line)
                while left:
                    left -= sock.send(block[:min(left, len(block))])
        except (OSError, ValueError):
            pass  # the client went away

    _serve_each(listener, serve)


def _open_pty() -> tuple[int, int, str]:
    master, slave = os.openpty()
    tty.setraw(slave, termios.TCSANOW)
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


async def pty_lines(answer: bytes) -> None:
    master, _slave, path = _open_pty()
    loop = asyncio.get_running_loop()
    line = bytearray()

    def readable() -> None:
        try:
            data = os.read(master, 65536)
        except BlockingIOError:
            return
        for byte in data:
            line.append(byte)
            if byte == 13:
                os.write(master, bytes(line) + answer)
                line.clear()

    loop.add_reader(master, readable)
    print(f"ready: {path}", flush=True)
    await asyncio.Event().wait()


async def pty_answers(answers: list[tuple[bytes, bytes]]) -> None:
    """ATE0 framing: each line (up to CR) answered with the answer of the first prefix it starts
    with, ``\r\nOK\r\n`` when none."""
    master, _slave, path = _open_pty()
    loop = asyncio.get_running_loop()
    line = bytearray()

    def readable() -> None:
        try:
            data = os.read(master, 65536)
        except BlockingIOError:
            return
        out = bytearray()
        for byte in data:
            if byte != 13:
                line.append(byte)
                continue
            out += next((answer for prefix, answer in answers if line.startswith(prefix)), b"\r\nOK\r\n")
            line.clear()
        if out:
            os.write(master, out)  # an answer or two: a pty takes them at once

    loop.add_reader(master, readable)
    print(f"ready: {path}", flush=True)
    await asyncio.Event().wait()


def http_fixed(size: int) -> None:
    """An HTTP/1.1 server answering every GET with 200 and ``size`` bytes of letters."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = bytes(97 + index % 26 for index in range(size))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"ready: {server.server_address[1]}", flush=True)


async def pty_echo() -> None:
    master, _slave, path = _open_pty()
    loop = asyncio.get_running_loop()
    queue = bytearray()

    def readable() -> None:
        while True:  # as the emulator reads: on while reads come back full (4 KiB each)
            try:
                chunk = os.read(master, 65536)
            except BlockingIOError:
                break
            queue.extend(chunk)
            if len(chunk) < 4095 or len(queue) >= 65536:
                break
        writable()

    def writable() -> None:
        try:
            written = os.write(master, queue)
        except BlockingIOError:
            written = 0
        del queue[:written]
        if queue:
            loop.add_writer(master, writable)
            if len(queue) > 256 * 1024:
                loop.remove_reader(master)  # back-pressure, as the emulator's host queue
        else:
            loop.remove_writer(master)
            loop.add_reader(master, readable)

    loop.add_reader(master, readable)
    print(f"ready: {path}", flush=True)
    await asyncio.Event().wait()


async def pty_buffer() -> None:
    """Buffer access mode's AT exchange with nothing behind it: AT+QSSLSEND=<id>,<n> (or
    AT+QISEND) answers ``> ``, takes n bytes and answers SEND OK; AT+QSSLRECV=<id>,<n> (or
    AT+QIRD) gives back what was sent on that client, as an echo server would have (ATE0 framing)."""
    master, _slave, path = _open_pty()
    loop = asyncio.get_running_loop()
    buffer, pending = bytearray(), bytearray()
    sent: dict[int, bytearray] = {}
    state = {"sending": None, "left": 0}

    def readable() -> None:
        try:
            buffer.extend(os.read(master, 65536))
        except BlockingIOError:
            return
        out = bytearray()
        while buffer:
            if state["sending"] is not None:
                take = buffer[: state["left"]]
                del buffer[: len(take)]
                sent[state["sending"]] += take
                state["left"] -= len(take)
                if state["left"]:
                    break
                state["sending"] = None
                out += b"\r\nSEND OK\r\n"
                continue
            end = buffer.find(b"\r")
            if end < 0:
                break
            line = bytes(buffer[:end])
            del buffer[: end + 1]
            client, _, size = line.partition(b"=")[2].partition(b",")
            if line.startswith((b"AT+QSSLSEND=", b"AT+QISEND=")):
                state["sending"], state["left"] = int(client), int(size)
                sent.setdefault(int(client), bytearray())
                out += b"\r\n> "
            elif line.startswith((b"AT+QSSLRECV=", b"AT+QIRD=")):
                waiting = sent.setdefault(int(client), bytearray())
                data = bytes(waiting[: int(size)])
                del waiting[: len(data)]
                name = line[2:].partition(b"=")[0]
                out += b"\r\n%s: %d\r\n%s\r\n\r\nOK\r\n" % (name, len(data), data)
            else:
                out += b"\r\nOK\r\n"
        pending.extend(out)
        writable()

    def writable() -> None:
        if pending:
            try:
                del pending[: os.write(master, pending)]
            except BlockingIOError:
                pass
        if pending:
            loop.add_writer(master, writable)
        else:
            loop.remove_writer(master)

    loop.add_reader(master, readable)
    print(f"ready: {path}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    _stop_with_stdin()
    kind = sys.argv[1]
    if kind == "tls-echo":
        tls_echo()
        threading.Event().wait()
    elif kind == "tcp-echo":
        tcp_echo()
        threading.Event().wait()
    elif kind == "tcp-source":
        tcp_source()
        threading.Event().wait()
    elif kind == "pty-lines":
        asyncio.run(pty_lines(bytes.fromhex(sys.argv[2]) if len(sys.argv) > 2 else b"\r\nOK\r\n"))
    elif kind == "pty-answers":
        pairs = [argument.split(":", 1) for argument in sys.argv[2:]]
        asyncio.run(pty_answers([(bytes.fromhex(prefix), bytes.fromhex(answer)) for prefix, answer in pairs]))
    elif kind == "http-fixed":
        http_fixed(int(sys.argv[2]))
        threading.Event().wait()
    elif kind == "pty-echo":
        asyncio.run(pty_echo())
    elif kind == "pty-buffer":
        asyncio.run(pty_buffer())
    else:
        raise SystemExit(f"unknown server {kind!r}")


if __name__ == "__main__":
    main()
