"""Hostile hosts, servers and local users, each attack made from outside the core: a real DNS
server answering garbage, a real pty host, a real RFC 2217 socket, a real process of another
user, a folder changed under the emulator by another thread."""

from __future__ import annotations

import os
import re
import socket
import stat
import struct
import threading
import time
from pathlib import Path

import pytest

from emulator.api import Emulator
from emulator.core.ufs import DirectoryFileStore, UnsafeFolder
from tests.host import AtHost

OK = b"\r\nOK\r\n"
ANSWER_END = re.compile(rb"\r\n(OK|ERROR|\+CME ERROR: \d+)\r\n")


def answer_of(host: AtHost, line: str, timeout: float = 10.0) -> bytes:
    """Send ``line`` and read to its final result, the bytes of a download included (whose
    CONNECT is not the end of the answer)."""
    host.write(line.encode("latin-1") + b"\r")
    deadline = time.monotonic() + timeout
    while (match := ANSWER_END.search(host._buffer)) is None:
        host._fill(deadline, f"the answer to {line}")
    return host._take(match.end())


@pytest.fixture
def modem(tmp_path):
    with Emulator(ufs=tmp_path / "ufs") as emulator, AtHost(emulator.port) as host:
        emulator.wait_for_boot()
        assert host.ask("ATE0").endswith(OK)
        yield emulator, host


# --- DNS: every failure ends in 565, nothing is left waiting -------------------------------------


def _dns_reply(query: bytes, body: bytes, flags: int = 0x8180, ancount: int = 1) -> bytes:
    """A response header for ``query`` (its id and question echoed) followed by ``body``."""
    query_id = query[:2]
    question = query[12:]
    return query_id + struct.pack("!HHHHH", flags, 1, ancount, 0, 0) + question + body


MALFORMED_ANSWERS = {
    "truncated header": lambda q: q[:2] + b"\x81\x80\x00",
    "truncated record": lambda q: _dns_reply(q, b"\xc0\x0c\x00\x01\x00"),
    "label pointer past the end": lambda q: _dns_reply(q, b"\xff\xf0" + struct.pack("!HHIH", 1, 1, 60, 4) + b"\x01\x02\x03\x04"),
    "label past the end": lambda q: _dns_reply(q, b"\x3f" + b"a" * 10),
    "record data past the end": lambda q: _dns_reply(q, b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 400) + b"\x01\x02"),
    "answer count beyond the records": lambda q: _dns_reply(q, b"", ancount=40),
    "name not found": lambda q: _dns_reply(q, b"", flags=0x8183, ancount=0),
}


class GarbageDnsServer:
    """A UDP DNS server on 127.0.0.1 that answers every query with ``make(query)``."""

    def __init__(self, make):
        self.make = make
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.queries = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                query, peer = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            self.queries += 1
            self.sock.sendto(self.make(query), peer)

    def __enter__(self) -> "GarbageDnsServer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.mark.parametrize("kind", MALFORMED_ANSWERS)
def test_a_malformed_dns_answer_ends_the_open_with_565(modem, kind):
    _emulator, host = modem
    with GarbageDnsServer(MALFORMED_ANSWERS[kind]) as dns:
        assert host.ask("AT+QIACT=1") == OK
        assert host.ask(f'AT+QIDNSCFG=1,"127.0.0.1#{dns.port}"') == OK
        assert host.ask('AT+QSSLOPEN=1,1,0,"modem-test.invalid",443,0') == OK
        assert host.expect(b"+QSSLOPEN: 0,", timeout=10) + host.expect(b"\r\n") == b"\r\n+QSSLOPEN: 0,565\r\n"
        assert dns.queries >= 1
        assert host.ask("AT+QSSLSTATE=0") == OK  # the client is gone: nothing left opening


# --- UFS: no link followed, private modes, partial writes cleaned --------------------------------


def test_a_link_swapped_in_during_thousands_of_downloads_never_yields_outside_content(modem, tmp_path):
    emulator, host = modem
    ufs = emulator.ufs
    inside, secret = b"inside content\n", b"OUTSIDE SECRET\n"
    (tmp_path / "secret.pem").write_bytes(secret)
    (ufs / "key.pem").write_bytes(inside)
    stop = threading.Event()
    swaps = [0]

    def swap() -> None:
        # Renames are atomic: "key.pem" is at every moment either our file or a link to the secret.
        while not stop.is_set():
            os.symlink(tmp_path / "secret.pem", ufs / ".swap-link")
            os.replace(ufs / ".swap-link", ufs / "key.pem")
            (ufs / ".swap-file").write_bytes(inside)
            os.replace(ufs / ".swap-file", ufs / "key.pem")
            swaps[0] += 1

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    answers = {b"file": 0, b"missing": 0}
    try:
        for _ in range(2000):
            answer = answer_of(host, 'AT+QFDWL="key.pem"')
            assert b"OUTSIDE" not in answer
            if answer.endswith(OK):
                assert inside in answer
                answers[b"file"] += 1
            else:
                assert answer == b"\r\n+CME ERROR: 405\r\n"
                answers[b"missing"] += 1
    finally:
        stop.set()
        swapper.join(5)
    assert swaps[0] > 10 and answers[b"file"] > 0, (swaps, answers)


def test_files_are_0600_and_a_created_folder_0700(tmp_path):
    store = DirectoryFileStore(tmp_path / "new" / "ufs")
    store.write("cacert.pem", b"x")
    assert stat.S_IMODE((tmp_path / "new" / "ufs").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new" / "ufs" / "cacert.pem").stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o1777])
def test_a_folder_other_users_can_write_is_refused_at_start(tmp_path, mode):
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(mode)
    with pytest.raises(UnsafeFolder, match="written by other users"):
        DirectoryFileStore(folder)
    with pytest.raises(RuntimeError) as failure:
        Emulator(ufs=folder).start()
    assert isinstance(failure.value.__cause__, UnsafeFolder)


def test_partial_writes_a_killed_emulator_left_are_removed_at_start(tmp_path):
    ufs = tmp_path / "ufs"
    ufs.mkdir(mode=0o700)
    (ufs / "cacert.pem").write_bytes(b"kept")
    (ufs / ".client.pem.3f2a91c0.partial").write_bytes(b"half a fi")
    os.symlink("/etc/passwd", ufs / ".evil.partial")
    with Emulator(ufs=ufs) as emulator, AtHost(emulator.port) as host:
        emulator.wait_for_boot()
        assert host.ask("ATE0").endswith(OK)
        assert host.ask("AT+QFLDS") == b"\r\n+QFLDS: 4,1\r\n" + OK
    assert sorted(p.name for p in ufs.iterdir()) == [".evil.partial", "cacert.pem"]
    assert Path("/etc/passwd").exists()


def test_trace_and_key_log_are_created_0600(tmp_path):
    trace, keylog = tmp_path / "trace.jsonl", tmp_path / "keys.log"
    with Emulator(ufs=tmp_path / "ufs", trace=trace, keylog=keylog) as emulator, AtHost(emulator.port) as host:
        emulator.wait_for_boot()
        assert host.ask("AT").endswith(OK)
    assert stat.S_IMODE(trace.stat().st_mode) == 0o600
    assert stat.S_IMODE(keylog.stat().st_mode) == 0o600
