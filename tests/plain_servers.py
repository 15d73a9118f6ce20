"""Plain TCP and UDP servers on 127.0.0.1 for the TCP/IP family's tests: real sockets, threads
that stop by themselves when the test leaves the ``with`` block."""

from __future__ import annotations

import socket
import struct
import threading
import time

WAIT = 10.0


class ThreadedTcpServer:
    """A TCP server on 127.0.0.1 serving each connection in a thread of its own with ``serve``
    (``connections[i]`` is the i-th), until the test leaves the ``with`` block or ``lifetime``
    seconds have passed."""

    def __init__(self, lifetime: float = 60.0) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._ends = time.monotonic() + lifetime

    def __enter__(self):
        thread = threading.Thread(target=self._accept_loop, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(WAIT)
        self.listener.close()
        for conn in self.connections:
            conn.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._ends:
            try:
                conn, _ = self.listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            conn.settimeout(0.1)
            index = len(self.connections)
            self.accepted(index)
            self.connections.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn, index), daemon=True)
            thread.start()
            self._threads.append(thread)

    def accepted(self, index: int) -> None:
        """Connection ``index`` is about to be served: what a subclass keeps per connection."""

    def _serve(self, conn: socket.socket, index: int) -> None:
        raise NotImplementedError


class TcpEchoServer(ThreadedTcpServer):
    """Echoes every byte back; keeps what each connection received (``received[i]``)."""

    def __init__(self, greeting: bytes = b"", echo: bool = True):
        super().__init__()
        self.greeting = greeting
        self.echo = echo
        self.received: list[bytearray] = []
        self.reads: list[list[int]] = []  # the size of each recv, per connection

    def accepted(self, index: int) -> None:
        self.received.append(bytearray())
        self.reads.append([])

    def _serve(self, conn: socket.socket, index: int) -> None:
        buffer = self.received[index]
        reads = self.reads[index]
        if self.greeting:
            conn.sendall(self.greeting)
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            if not data:
                try:
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            buffer += data
            reads.append(len(data))
            if self.echo:
                try:
                    conn.sendall(data)
                except OSError:
                    return

    def connection(self, index: int = 0, timeout: float = WAIT) -> socket.socket:
        deadline = time.monotonic() + timeout
        while len(self.connections) <= index:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no connection {index}")
            time.sleep(0.01)
        return self.connections[index]

    def wait_received(self, index: int, size: int, timeout: float = WAIT) -> bytes:
        deadline = time.monotonic() + timeout
        self.connection(index, timeout)
        while len(self.received[index]) < size:
            if time.monotonic() > deadline:
                raise TimeoutError(f"connection {index} has {len(self.received[index])} of {size} bytes")
            time.sleep(0.01)
        return bytes(self.received[index])


class UdpServer:
    """A UDP server on 127.0.0.1 in a thread: ``answer`` says what goes back to each datagram."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        self.sock.close()

    def answer(self, data: bytes, sender: tuple[str, int]) -> bytes | None:
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                data, sender = self.sock.recvfrom(65536)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            reply = self.answer(data, sender)
            if reply is not None:
                self.sock.sendto(reply, sender)


class UdpEchoServer(UdpServer):
    """Sends every datagram back to its sender; keeps (data, sender) of each."""

    def __init__(self) -> None:
        super().__init__()
        self.datagrams: list[tuple[bytes, tuple[str, int]]] = []

    def answer(self, data: bytes, sender: tuple[str, int]) -> bytes:
        self.datagrams.append((data, sender))
        return data


class SntpServer(UdpServer):
    """Answers SNTP requests (RFC 4330) with a fixed time, ``utc`` seconds since 1970."""

    def __init__(self, utc: float):
        super().__init__()
        self.utc = utc
        self.requests = 0

    def answer(self, request: bytes, sender: tuple[str, int]) -> bytes:
        self.requests += 1
        seconds = self.utc + 2208988800
        high, low = int(seconds), int((seconds % 1) * 2**32)
        originate = request[40:48]
        return struct.pack("!BBbb", (4 << 3) | 4, 1, 0, -20) + bytes(20) + originate + struct.pack(
            "!IIII", high, low, high, low)


class DnsServer(UdpServer):
    """A DNS server on 127.0.0.1 answering A queries from ``names`` (name -> address), NXDOMAIN for
    others; ``asked`` lists the names it was asked, in order. Built from RFC 1035's layout."""

    def __init__(self, names: dict[str, str]):
        super().__init__()
        self.names = {name.lower(): address for name, address in names.items()}
        self.asked: list[str] = []

    def answer(self, query: bytes, sender: tuple[str, int]) -> bytes:
        labels, i = [], 12
        while i < len(query) and query[i]:
            labels.append(query[i + 1:i + 1 + query[i]].decode("latin-1"))
            i += 1 + query[i]
        question = query[12:i + 5]
        name = ".".join(labels).lower()
        self.asked.append(name)
        address = self.names.get(name)
        header = struct.pack("!HHHHHH", struct.unpack("!H", query[:2])[0], 0x8180 if address else 0x8183,
                             1, 1 if address else 0, 0, 0)
        answer = b""
        if address:
            answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 30, 4) + socket.inet_aton(address)
        return header + question + answer
