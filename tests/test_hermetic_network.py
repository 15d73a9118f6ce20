"""A hermetic network for CI: a hosts map (``--resolve``, a hosts file), the emulator's own SNTP
answer for chosen names, and a switch that keeps every connection on loopback, each refusal logged
and answered with the family's documented code.

Nothing here may reach past 127.0.0.0/8: every test that could leave loopback if the emulator got
it wrong runs with ``NoWayOut`` on the emulator's loop, which records every connect, look-up and
UDP socket the shell asks for and refuses those outside loopback itself, before the system sees
them. 192.0.2.0/24 (TEST-NET-1, RFC 5737) stands for an address on the internet.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from ecemu.api import Emulator
from ecemu.shell.dns import HostEntry, NetworkPolicy, parse_resolve, read_hosts_file
from tests.host import AtHost
from tests.plain_servers import SntpServer, TcpEchoServer
from tests.wire import OK

OUTSIDE = "192.0.2.1"  # TEST-NET-1: documentation only, and refused before any packet


def loopback(address) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


class NoWayOut:
    """What the emulator's shell asked of the system: connects, look-ups, UDP sockets. Anything
    aimed outside loopback is refused here, so a bug can never send a packet out."""

    def __init__(self) -> None:
        self.asked: list[tuple] = []

    def install(self, runner) -> None:
        loop = runner.loop
        connect, look_up, datagrams = loop.create_connection, loop.getaddrinfo, loop.create_datagram_endpoint

        async def create_connection(factory, host=None, port=None, **kwargs):
            self.asked.append(("connect", host, port))
            if not loopback(host):
                raise ConnectionRefusedError(f"test guard: {host} is outside loopback")
            return await connect(factory, host, port, **kwargs)

        async def getaddrinfo(host, *args, **kwargs):
            self.asked.append(("getaddrinfo", host))
            if not loopback(host):
                raise socket.gaierror(socket.EAI_NONAME, "test guard: no look-up leaves the machine")
            return await look_up(host, *args, **kwargs)

        async def create_datagram_endpoint(factory, local_addr=None, remote_addr=None, **kwargs):
            self.asked.append(("udp", remote_addr))
            if remote_addr is not None and not loopback(remote_addr[0]):
                raise OSError(f"test guard: {remote_addr} is outside loopback")
            return await datagrams(factory, local_addr=local_addr, remote_addr=remote_addr, **kwargs)

        loop.create_connection = create_connection
        loop.getaddrinfo = getaddrinfo
        loop.create_datagram_endpoint = create_datagram_endpoint

    def outside(self) -> list[tuple]:
        """What was asked for outside loopback (the guard refused it; the emulator should never ask)."""
        return [asked for asked in self.asked
                if (asked[0] in ("connect", "getaddrinfo") and not loopback(asked[1]))
                or (asked[0] == "udp" and asked[1] is not None and not loopback(asked[1][0]))]


@pytest.fixture
def hermetic(tmp_path, caplog):
    """A modem on a local-only network, with its PDP context up; yields (emulator, host, guard)."""
    made = []

    def start(**network):
        guard = NoWayOut()
        emulator = Emulator(ufs=tmp_path / f"ufs{len(made)}", **network).start()
        made.append(emulator)
        emulator.call(guard.install)
        emulator.wait_for_boot()
        host = AtHost(emulator.port, timeout=20)
        made.append(host)
        assert host.ask("ATE0").endswith(OK)
        assert host.ask("AT+QIACT=1") == OK
        return emulator, host, guard

    caplog.set_level(logging.INFO, logger="ecemu")
    try:
        yield start
    finally:
        for item in reversed(made):
            item.close() if isinstance(item, AtHost) else item.stop()


def warnings_of(caplog) -> str:
    return "\n".join(record.getMessage() for record in caplog.records
                     if record.name == "ecemu.shell.network" and record.levelno == logging.WARNING)


# --- the hosts map -----------------------------------------------------------------------------

def test_resolve_sends_a_hard_coded_name_and_port_to_a_local_server(hermetic):
    with TcpEchoServer() as server:
        _, host, guard = hermetic(resolve=[f"Broker.Example.COM=127.0.0.1:{server.port}"], local_only=True)
        # The firmware's name and port, as it hard-codes them; case and a final dot do not matter.
        assert host.ask('AT+QIOPEN=1,0,"TCP","broker.example.com.",8883,0,0') == OK
        assert host.expect(b"+QIOPEN: 0,0\r\n") == b"\r\n+QIOPEN: 0,0\r\n"
        assert host.ask("AT+QISEND=0,5", final=b"> ") == b"\r\n> "
        host.write(b"hello")
        assert host.until_final() == b"\r\nSEND OK\r\n"
        assert server.wait_received(0, 5) == b"hello"
        state = host.ask("AT+QISTATE=1,0")
        # The module sees the port it asked for; the address is the resolved one (README).
        assert b'\r\n+QISTATE: 0,"TCP","127.0.0.1",8883,' in state, state
    assert ("connect", "127.0.0.1", server.port) in guard.asked
    assert guard.outside() == [] and not any(asked[0] == "getaddrinfo" for asked in guard.asked)


def test_a_hosts_file_answers_qidnsgip_and_opens(hermetic, tmp_path):
    with TcpEchoServer() as server:
        hosts = tmp_path / "hosts"
        hosts.write_text(f"# the test network\n127.0.0.1:{server.port}  api.example  api2.example # two names\n"
                         "127.0.0.7 other.example\n")
        _, host, guard = hermetic(hosts_file=hosts, local_only=True)
        assert host.ask('AT+QIDNSGIP=1,"other.example"') == OK
        assert host.expect(b'+QIURC: "dnsgip","127.0.0.7"\r\n').endswith(
            b'\r\n+QIURC: "dnsgip",0,1,600\r\n\r\n+QIURC: "dnsgip","127.0.0.7"\r\n')
        assert host.ask('AT+QIOPEN=1,1,"TCP","api2.example",80,0,0') == OK
        assert host.expect(b"+QIOPEN: 1,0\r\n") == b"\r\n+QIOPEN: 1,0\r\n"
        server.connection(0)
    assert guard.outside() == []


def test_resolve_wins_over_the_hosts_file_and_parses_strictly(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.2 a.example\n127.0.0.3 a.example b.example\n")
    policy = NetworkPolicy.build(["b.example=127.0.0.9:1234"], hosts)
    assert policy.lookup("A.EXAMPLE") == HostEntry("127.0.0.2")  # the first line naming it, as hosts(5)
    assert policy.lookup("b.example") == HostEntry("127.0.0.9", 1234)
    assert parse_resolve("ntp.example=127.0.0.1") == ("ntp.example", HostEntry("127.0.0.1"))
    for bad in ("no-equals", "=127.0.0.1", "x=not-an-address", "x=127.0.0.1:0", "x=127.0.0.1:65536", "x=::1"):
        with pytest.raises(ValueError):
            parse_resolve(bad)
    (tmp_path / "bad").write_text("127.0.0.1\n")
    with pytest.raises(ValueError, match="bad:1"):
        read_hosts_file(tmp_path / "bad")


# --- local only: refused with each family's code, and a log line -------------------------------

def test_local_only_refuses_addresses_and_names_with_each_familys_code(hermetic, caplog):
    _, host, guard = hermetic(local_only=True)
    # SSL note 2.2.2 / 4: 565 DNS parse failed, 566 failed to connect.
    assert host.ask(f'AT+QSSLOPEN=1,1,0,"{OUTSIDE}",443,0') == OK
    assert host.expect(b"+QSSLOPEN: 0,566\r\n") == b"\r\n+QSSLOPEN: 0,566\r\n"
    assert host.ask('AT+QSSLOPEN=1,1,1,"example.com",443,0') == OK
    assert host.expect(b"+QSSLOPEN: 1,565\r\n") == b"\r\n+QSSLOPEN: 1,565\r\n"
    # TCP/IP note: the same codes in +QIOPEN; AT+QIDNSGIP's failure is 565.
    assert host.ask(f'AT+QIOPEN=1,2,"TCP","{OUTSIDE}",80,0,0') == OK
    assert host.expect(b"+QIOPEN: 2,566\r\n") == b"\r\n+QIOPEN: 2,566\r\n"
    assert host.ask(f'AT+QIOPEN=1,3,"UDP","{OUTSIDE}",53,0,0') == OK
    assert host.expect(b"+QIOPEN: 3,566\r\n") == b"\r\n+QIOPEN: 3,566\r\n"
    assert host.ask('AT+QIDNSGIP=1,"example.com"') == OK
    assert host.expect(b"565\r\n") == b'\r\n+QIURC: "dnsgip",565\r\n'
    # The AT+QNTP of Quectel's host SDK, without a local SNTP answer for it: its DNS fails (565).
    assert host.ask('AT+QNTP=1,"ntp.aliyun.com"') == OK
    assert host.expect(b"+QNTP: 565\r\n") == b"\r\n+QNTP: 565\r\n"
    # MQTT note: +QMTOPEN <result> 4 (failed to parse the domain name), 5 (network connection error).
    assert host.ask(f'AT+QMTOPEN=0,"{OUTSIDE}",1883') == OK
    assert host.expect(b"+QMTOPEN: 0,5\r\n") == b"\r\n+QMTOPEN: 0,5\r\n"
    assert host.ask('AT+QMTOPEN=1,"mqtt.example.com",1883') == OK
    assert host.expect(b"+QMTOPEN: 1,4\r\n") == b"\r\n+QMTOPEN: 1,4\r\n"
    # HTTP(S) note: 716 socket connect error; before the request leaves, the command's own
    # +CME ERROR, a name that does not resolve included (REFERENCE.md "HTTP(S) and MQTT", seen).
    for url in (f"http://{OUTSIDE}/", "http://example.com/"):
        assert host.ask(f"AT+QHTTPURL={len(url)},10", final=b"CONNECT\r\n") == b"\r\nCONNECT\r\n"
        host.write(url.encode())
        assert host.until_final() == OK
        assert host.ask("AT+QHTTPGET=10") == b"\r\n+CME ERROR: 716\r\n"
    assert guard.outside() == []
    log = warnings_of(caplog)
    assert f"{OUTSIDE}:443 is outside loopback (--local-only): refused, the connect fails" in log
    assert "example.com refused (DNS failure for the module): not in the hosts map" in log
    assert "ntp.aliyun.com refused" in log and "mqtt.example.com refused" in log


def test_local_only_keeps_loopback_and_localhost(hermetic):
    with TcpEchoServer() as server:
        _, host, guard = hermetic(local_only=True)
        for connect_id, name in enumerate(("127.0.0.1", "localhost", "modem.localhost")):
            assert host.ask(f'AT+QIOPEN=1,{connect_id},"TCP","{name}",{server.port},0,0') == OK
            assert host.expect(f"+QIOPEN: {connect_id},0\r\n".encode()) == f"\r\n+QIOPEN: {connect_id},0\r\n".encode()
    assert guard.outside() == []


def test_allowed_networks_are_let_through(hermetic, caplog):
    """--allow: the attempt is made (here the guard stands for that network and refuses it)."""
    _, host, guard = hermetic(local_only=True, allow=["192.0.2.0/28"], resolve=["gw.example=192.0.2.7"])
    assert host.ask('AT+QIOPEN=1,0,"TCP","gw.example",80,0,0') == OK
    assert host.expect(b"+QIOPEN: 0,566\r\n") == b"\r\n+QIOPEN: 0,566\r\n"
    assert ("connect", "192.0.2.7", 80) in guard.asked
    assert host.ask('AT+QIOPEN=1,1,"TCP","192.0.2.99",80,0,0') == OK
    assert host.expect(b"+QIOPEN: 1,566\r\n") == b"\r\n+QIOPEN: 1,566\r\n"
    assert not any(asked[1] == "192.0.2.99" for asked in guard.asked)
    assert "192.0.2.99:80 is outside loopback, 192.0.2.0/28 (--local-only): refused" in warnings_of(caplog)


def test_policy_allows_only_loopback_and_the_listed_networks():
    policy = NetworkPolicy.build(local_only=True, allow=["10.20.0.0/16", "198.51.100.4"])
    assert [policy.allows(a) for a in ("127.0.0.1", "127.9.9.9", "::1", "10.20.3.4", "198.51.100.4")] == [True] * 5
    assert [policy.allows(a) for a in ("10.21.0.1", "198.51.100.5", "8.8.8.8", "not an address")] == [False] * 4
    assert NetworkPolicy().allows("8.8.8.8")  # without the switch, the module's open network


# --- the emulator's own SNTP answer ------------------------------------------------------------

def test_local_ntp_answers_qntp_from_the_module_clock(hermetic):
    _, host, guard = hermetic(local_only=True, local_ntp=["ntp.aliyun.com"])
    assert host.ask('AT+CCLK="31/05/06,07:08:09+32"') == OK  # local time, zone +8 h
    assert host.ask('AT+QNTP=1,"NTP.aliyun.com",123,1') == OK
    answer = host.expect(b'"\r\n')
    # +QNTP shows UTC followed by the module's zone (REFERENCE.md "Time"): 07:08 at +8 h is 23:08 UTC.
    assert answer.startswith(b'\r\n+QNTP: 0,"2031/05/05,23:08:'), answer
    shown = datetime.strptime(answer.decode().split('"')[1][:19], "%Y/%m/%d,%H:%M:%S")
    assert timedelta(0) <= shown - datetime(2031, 5, 5, 23, 8, 9) < timedelta(seconds=30)
    assert answer.endswith(b'+32"\r\n')
    assert host.ask("AT+CCLK?").startswith(b'\r\n+CCLK: "31/05/06,07:08:')  # set from it: unchanged
    assert guard.asked == []  # not even a look-up


def test_local_ntp_star_answers_every_name_and_others_still_ask_a_real_server(hermetic):
    utc = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc).timestamp()
    with SntpServer(utc) as server:
        _, host, guard = hermetic(local_ntp=["pool.ntp.org"], resolve=[f"time.example=127.0.0.1:{server.port}"])
        assert host.ask('AT+QNTP=1,"time.example",123,0') == OK
        assert host.expect(b'"\r\n').startswith(b'\r\n+QNTP: 0,"2030/01/02,03:04:0')
    assert guard.outside() == []
    assert NetworkPolicy.build(local_ntp=["*"]).answers_ntp("anything.example")


# --- the command line ---------------------------------------------------------------------------

ECEMU = [sys.executable, "-m", "ecemu"]


@pytest.mark.parametrize("args,option", [
    (["--resolve", "broker.example"], "--resolve"),
    (["--resolve", "broker.example=10.0.0.1:99999"], "--resolve"),
    (["--hosts-file", "/nonexistent/hosts"], "--hosts-file"),
    (["--allow", "10.0.0.0/8"], "--allow"),  # without --local-only it would mean nothing
    (["--local-only", "--allow", "ten.example"], "--allow"),
])
def test_bad_network_options_are_refused_with_status_2(args, option):
    done = subprocess.run([*ECEMU, "run", *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    assert f"Invalid value for {option}" in done.stderr and "Traceback" not in done.stderr


def test_ecemu_run_logs_its_network_rules(tmp_path):
    from tests.processes import RunningEmulator

    running = RunningEmulator("--local-only", "--resolve", "a.example=127.0.0.1:9", "--local-ntp",
                              "ntp.aliyun.com", "--log-level", "info")
    try:
        running.wait_for_boot()
        log = running.log_text()
    finally:
        assert running.stop() == 0
    assert "network: hosts a.example=127.0.0.1:9; local SNTP for ntp.aliyun.com; local only (loopback)" in log


def test_the_resolve_coroutine_never_asks_the_system_when_local_only():
    """The shell's resolver alone, on a loop of its own: a name outside the map fails as the DNS
    failure, with no resolver of the machine's asked."""
    from ecemu.shell.dns import NameRefused
    from ecemu.shell.network import Network

    async def main():
        loop = asyncio.get_running_loop()
        asked = []

        async def getaddrinfo(*args, **kwargs):
            asked.append(args)
            raise AssertionError("the machine's resolver was asked")
        loop.getaddrinfo = getaddrinfo
        network = Network(lambda event: None)
        network.use_policy(NetworkPolicy.build(["x.example=127.0.0.5:77"], local_only=True))
        assert await network.resolve("x.example", 1, ()) == ("127.0.0.5", 77)
        assert await network.resolve("localhost", 5, ()) == ("127.0.0.1", 5)
        with pytest.raises(NameRefused):
            await network.resolve("y.example", 1, ("8.8.8.8",))  # a public DNS server is not asked either
        return asked

    assert asyncio.run(main()) == []
