"""Hostile hosts, servers and local users, each attack made from outside the core: a real DNS
server answering garbage, a real pty host, a real RFC 2217 socket, a real process of another
user, a folder changed under the emulator by another thread."""

from __future__ import annotations

import os
import re
import select
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import serial

from ecemu.api import Emulator
from ecemu.shell.file_store import DirectoryFileStore, UnsafeFolder
from ecemu.shell.private_files import PrivateFileRefused
from ecemu.shell.rfc2217 import TelnetFilter, socket_owner
from tests.host import AtHost
from tests.processes import RunningEmulator, read_until
from tests.wire import OK

ANSWER_END = re.compile(rb"\r\n(OK|ERROR|\+CME ERROR: \d+)\r\n")


def answer_of(host: AtHost, line: str, timeout: float = 10.0) -> bytes:
    """Send ``line`` and read to its final result, the bytes of a download included (whose
    CONNECT is not the end of the answer)."""
    host.write(line.encode("latin-1") + b"\r")
    return host.until_match(ANSWER_END, f"the answer to {line}", timeout)


@pytest.fixture
def modem(start_modem):
    return start_modem(echo=False)


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


# --- private files: the trace, the key log and every file ecemu writes -----------------------------


def ecemu(*args: str, umask: int | None = None) -> subprocess.CompletedProcess:
    def set_umask() -> None:
        if umask is not None:
            os.umask(umask)

    return subprocess.run([sys.executable, "-m", "ecemu", *args], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL, preexec_fn=set_umask)


def refused_run(option: str, path: Path, words: str) -> None:
    """``ecemu run OPTION PATH`` exits 2 at once, naming the option and saying why."""
    result = ecemu("run", option, str(path))
    assert result.returncode == 2, result.stderr
    said = " ".join(result.stderr.split())  # click wraps long lines
    assert re.search(rf"Invalid value for '?{option}'?: cannot write ", said) and words in said, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("option", ["--trace", "--keylog"])
def test_a_link_planted_at_the_trace_or_keylog_path_is_refused_and_its_target_untouched(tmp_path, option):
    target = tmp_path / "root-only"
    target.write_bytes(b"precious\n")
    target.chmod(0o600)
    planted = tmp_path / "out"
    os.symlink(target, planted)
    refused_run(option, planted, "is a symbolic link; not followed")
    assert target.read_bytes() == b"precious\n"
    with pytest.raises(RuntimeError) as failure:
        Emulator(ufs=tmp_path / "ufs", **{option[2:]: planted}).start()
    assert isinstance(failure.value.__cause__, PrivateFileRefused)
    assert target.read_bytes() == b"precious\n"


@pytest.mark.parametrize("mode", [0o644, 0o666, 0o640, 0o604], ids=oct)
def test_a_trace_others_can_read_or_write_is_refused(tmp_path, mode):
    trace = tmp_path / "trace.jsonl"
    trace.write_bytes(b"")
    trace.chmod(mode)
    refused_run("--trace", trace, f"can be read or written by other users (mode {mode:04o}); chmod 600 it")
    refused_run("--keylog", trace, "chmod 600 it")
    assert trace.read_bytes() == b""


def test_a_fifo_or_a_second_hard_link_is_refused(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    refused_run("--trace", fifo, "is not a regular file")  # and no hang waiting for a reader
    other = tmp_path / "elsewhere"
    other.write_bytes(b"")
    other.chmod(0o600)
    os.link(other, tmp_path / "linked")
    refused_run("--trace", tmp_path / "linked", "has 2 hard links")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own a file as another user")
@pytest.mark.parametrize("mode", [0o600, 0o666], ids=oct)
def test_run_as_root_a_trace_another_user_made_beforehand_is_refused(tmp_path, mode):
    """Another local user creates the trace's path first (0666, to read what root writes there,
    or 0600): root's ecemu refuses it instead of writing the session into it."""
    tmp_path.chmod(0o755)
    trace = tmp_path / "trace.jsonl"
    trace.write_bytes(b"")
    os.chown(trace, NOBODY, NOBODY)
    trace.chmod(mode)
    refused_run("--trace", trace, f"belongs to another user (uid {NOBODY})")
    refused_run("--keylog", trace, f"belongs to another user (uid {NOBODY})")
    assert trace.read_bytes() == b""


def test_an_own_private_trace_is_appended_and_new_files_are_0600_whatever_the_umask(tmp_path):
    trace = tmp_path / "trace.jsonl"
    trace.write_bytes(b"")
    trace.chmod(0o600)
    with Emulator(ufs=tmp_path / "ufs", trace=trace) as emulator, AtHost(emulator.port) as host:
        emulator.wait_for_boot()
        assert host.ask("AT").endswith(OK)
    first = trace.read_bytes()
    assert first
    with Emulator(ufs=tmp_path / "ufs", trace=trace) as emulator, AtHost(emulator.port) as host:
        emulator.wait_for_boot()
        assert host.ask("AT").endswith(OK)
    assert trace.read_bytes().startswith(first) and len(trace.read_bytes()) > len(first)
    # ecemu trace --html writes a private page too, with the loosest umask.
    html = tmp_path / "page.html"
    shown = ecemu("trace", str(trace), "--html", str(html), umask=0)
    assert shown.returncode == 0, shown.stderr
    assert stat.S_IMODE(html.stat().st_mode) == 0o600
    fresh = tmp_path / "fresh.jsonl"
    run = subprocess.Popen([sys.executable, "-m", "ecemu", "run", "--trace", str(fresh)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, preexec_fn=lambda: os.umask(0))
    try:
        assert run.stdout.readline().startswith(b"port: ")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o600  # not 0644, not 0666
    finally:
        run.terminate()
        run.wait(10)
        run.stdout.close()
        run.stderr.close()


# --- RFC 2217: malformed and endless options, other users ------------------------------------------

COM_PORT = b"\x2c"
IAC_B, SB_B, SE_B = b"\xff", b"\xfa", b"\xf0"


@pytest.fixture
def tcp_emulator():
    running = RunningEmulator("--tcp", "127.0.0.1:0")
    host, port = running.port.removeprefix("rfc2217://").rsplit(":", 1)
    yield running, (host, int(port))
    running.stop()


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_rfc2217_malformed_options_are_ignored_and_every_data_byte_kept(tcp_emulator):
    running, address = tcp_emulator
    with socket.create_connection(address, timeout=5) as client:
        read_until(client.fileno(), b"RDY\r\n")
        segments = [
            IAC_B + SE_B + b"AT+CFUN=4\r",  # SE with no SB
            IAC_B + SB_B + COM_PORT + b"\x01\x00" + IAC_B + SE_B + b"AT+CFUN?\r",  # short SET-BAUDRATE
            IAC_B + SB_B + COM_PORT + b"\x03\x09" + IAC_B + SE_B + b"ATI\r",  # unknown parity value
            IAC_B + SB_B + COM_PORT + b"\x04" + IAC_B + SE_B + b"AT+CFUN=1\r",  # SET-STOPSIZE, no value
        ]
        for segment in segments:
            client.sendall(segment)
        received = read_until(client.fileno(), b"AT+CFUN=1\r\r\nOK\r\n", timeout=10)
        assert b"ATI\r\r\nQuectel\r\n" in received
        assert b"AT+CFUN=4\r\r\nOK\r\n" in received
        assert b"AT+CFUN?\r\r\n+CFUN: 4\r\n\r\nOK\r\n" in received


def test_rfc2217_an_endless_subnegotiation_does_not_grow_the_emulator(tcp_emulator):
    running, address = tcp_emulator
    pid = running.process.pid
    with socket.create_connection(address, timeout=10) as client:
        read_until(client.fileno(), b"RDY\r\n")
        before = _rss_kib(pid)
        client.sendall(IAC_B + SB_B + COM_PORT + b"\x01")
        chunk = b"\x00" * (1 << 20)
        for _ in range(64):
            client.sendall(chunk)
        client.sendall(IAC_B + SE_B + b"ATE0\r")
        read_until(client.fileno(), b"ATE0\r\r\nOK\r\n", timeout=30)
        grown_mib = (_rss_kib(pid) - before) / 1024
        assert grown_mib < 16, f"the emulator grew by {grown_mib:.0f} MiB over a 64 MiB option"


NOBODY = 65534


def _connect_as(uid: int, address: tuple[str, int]) -> bytes:
    """In a child process running as ``uid``: connect, send a command, return what came back."""
    # The child connects by name, which takes the idna codec: imported here, while the interpreter's
    # files can still be read (after setuid the other user may not be allowed to read them).
    "127.0.0.1".encode("idna")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: only system calls, then _exit
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            with socket.create_connection(address, timeout=5) as sock:
                sock.sendall(b"AT+CFUN=4\r")
                received = b""
                while len(received) < 4096:
                    try:
                        chunk = sock.recv(4096)
                    except (ConnectionResetError, socket.timeout):
                        break
                    if not chunk:
                        break
                    received += chunk
            os.write(write_end, received)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        received = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return received


@pytest.mark.needs("root")  # to run a client as another user
def test_rfc2217_on_loopback_refuses_another_users_socket_and_takes_ours(tcp_emulator):
    running, address = tcp_emulator
    assert _connect_as(NOBODY, address) == b""  # closed before a byte was read or answered
    port = serial.serial_for_url(running.port, timeout=5)
    try:
        port.write(b"AT+CFUN?\r")
        assert port.read_until(b"OK\r\n").endswith(b"+CFUN: 1\r\n\r\nOK\r\n")  # never set to 4
    finally:
        port.close()
    assert "a socket of another user" in running.log_text()


def test_socket_owner_reads_the_owner_of_a_loopback_socket():
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        with client, accepted:
            assert socket_owner(accepted.getpeername(), accepted.getsockname()) == os.geteuid()
            assert socket_owner(("127.0.0.1", 1), accepted.getsockname()) is None


def test_telnet_filter_keeps_every_data_byte_however_the_stream_is_split():
    from serial.rfc2217 import PortManager

    class Line:
        baudrate, bytesize, parity, stopbits, rtscts, xonxoff = 115200, 8, "N", 1, False, False
        dtr = rts = cts = dsr = cd = True
        ri = break_condition = False

    sent = []
    stream = (b"AT\xff\xff\r" + IAC_B + SE_B + b"A" + IAC_B + SB_B + COM_PORT + b"\x01\x00\x01\xc2\x00" + IAC_B + SE_B
              + b"B" + IAC_B + b"\xfd\x01" + IAC_B + SB_B + b"x" * 500 + IAC_B + SE_B + b"C\xff\xff")
    expected = b"AT\xff\rABC\xff"
    for cut in range(len(stream)):
        telnet = TelnetFilter(PortManager(Line(), type("Conn", (), {"write": staticmethod(sent.append)})()))
        assert telnet.feed(stream[:cut]) + telnet.feed(stream[cut:]) == expected
        assert len(telnet.suboption) <= 64


# --- the port changes hands: nothing of one host reaches the next --------------------------------


def test_reopening_in_the_middle_of_a_download_gives_the_new_host_only_its_own_answers(tmp_path):
    # The emulator in its own process: in this one, the GIL would pause it at random for the host.
    (tmp_path / "ufs").mkdir(mode=0o700)
    (tmp_path / "ufs" / "big.bin").write_bytes(b"Z" * (1 << 20))
    running = RunningEmulator("--ufs", str(tmp_path / "ufs"), "--link", str(tmp_path / "modem"))
    try:
        # The boot URCs first (they go to whoever holds the port as they come, as on the module).
        running.wait_for_boot()
        # Behind the link every host has a pty of its own: no round leaks a byte of the download
        # (docs/reference/robustness.md "A new host gets nothing meant for an old one").
        for _ in range(10):
            with serial.Serial(running.port, 115200, timeout=5) as old:
                old.write(b'AT+QFDWL="big.bin"\r')
                assert b"CONNECT" in old.read_until(b"ZZZZ")
            with serial.Serial(running.port, 115200, timeout=5) as new:
                new.write(b"AT\r")
                assert new.read_until(b"OK\r\n") == b"AT\r\r\nOK\r\n"
    finally:
        assert running.stop() == 0


def _lose_the_host_in_data_mode(emulator: Emulator, command: bytes, prompt: bytes, payload: bytes) -> None:
    with serial.Serial(emulator.port, 115200, timeout=5) as old:
        old.write(command + b"\r")
        assert old.read_until(prompt).endswith(prompt)
        old.write(payload)
        old.flush()
    deadline = time.monotonic() + 10
    while not emulator.call(lambda runner: runner.host_has_left):  # it noticed the host went
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_host_lost_in_the_middle_of_an_upload_leaves_the_next_in_command_mode(tmp_path):
    with Emulator(ufs=tmp_path / "ufs") as emulator:
        emulator.wait_for_boot()
        _lose_the_host_in_data_mode(emulator, b'AT+QFUPL="half.bin",100', b"CONNECT\r\n", b"0123456789")
        with AtHost(emulator.port) as new:
            assert new.ask("AT") == b"AT\r\r\nOK\r\n"
            # What came is kept, as when the upload's time runs out.
            assert new.ask("AT+QFLST") == b'AT+QFLST\r\r\n+QFLST: "UFS:half.bin",10\r\n\r\nOK\r\n'


def test_a_host_lost_at_the_send_prompt_leaves_the_next_in_command_mode(tmp_path):
    from tests.tls_servers import TlsServer, echo

    with TlsServer(behaviour=echo) as server, Emulator(ufs=tmp_path / "ufs") as emulator:
        emulator.wait_for_boot()
        with AtHost(emulator.port) as first:
            assert first.ask("ATE0").endswith(OK)
            assert first.ask("AT+QIACT=1") == OK
            assert first.ask(f'AT+QSSLOPEN=1,1,0,"127.0.0.1",{server.port},0') == OK
            assert first.expect(b"+QSSLOPEN: 0,0\r\n")
        _lose_the_host_in_data_mode(emulator, b"AT+QSSLSEND=0,10", b"> ", b"abc")
        with AtHost(emulator.port) as new:
            assert new.ask("AT") == OK
            new.ask("AT+QSSLSEND=0,5", final=b"> ")
            new.write(b"hello")
            assert new.until_final() == b"\r\nSEND OK\r\n"
            assert new.expect(b'+QSSLURC: "recv",0\r\n')
            assert new.ask("AT+QSSLRECV=0,100") == b"\r\n+QSSLRECV: 5\r\nhello\r\n" + OK
        assert bytes(server.connection().received) == b"hello"  # the lost host's "abc" was dropped


# --- a host that writes and does not read -----------------------------------------------------------


def test_a_host_that_does_not_read_is_flow_controlled_and_then_gets_every_answer_in_order(tmp_path):
    from ecemu.shell.runner import HOST_QUEUE_HIGH

    blob = bytes(range(256)) * 400  # 100 KiB
    (tmp_path / "ufs").mkdir(mode=0o700)
    (tmp_path / "ufs" / "blob.bin").write_bytes(blob)
    with Emulator(ufs=tmp_path / "ufs") as emulator:
        emulator.wait_for_boot()
        with AtHost(emulator.port) as host:
            assert host.ask("ATE0").endswith(OK)
            download = answer_of(host, 'AT+QFDWL="blob.bin"')
            space = host.ask("AT+QFLDS")
        fd = os.open(emulator.port, os.O_RDWR | os.O_NOCTTY)
        try:
            commands = (b'AT+QFDWL="blob.bin"\r' + b"AT+QFLDS\r" * 500) * 40
            expected = (download + space * 500) * 40
            writer = threading.Thread(target=lambda: os.write(fd, commands) and None, daemon=True)
            writer.start()
            # The deadlines only bound a failure (a module that never pauses, or stops sending):
            # 4.6 MB under a loaded machine take what they take, so the second one is a stall bound,
            # renewed by every byte that arrives.
            deadline = time.monotonic() + 60
            # The module stops taking the host's bytes while its answers wait: the host is blocked.
            while not emulator.call(lambda runner: runner.reading_paused and runner.output_full):
                assert time.monotonic() < deadline, "the emulator never stopped reading the host"
                time.sleep(0.01)
            assert writer.is_alive()
            received = bytearray()
            while len(received) < len(expected):
                ready = select.select([fd], [], [], 30)[0]
                assert ready, f"nothing for 30 s after {len(received)} of {len(expected)} bytes"
                received += os.read(fd, 65536)
            writer.join(10)
        finally:
            os.close(fd)
        assert bytes(received) == expected
        peak = emulator.call(lambda runner: runner.host_queue_peak)
        assert HOST_QUEUE_HIGH <= peak <= HOST_QUEUE_HIGH + len(download)
