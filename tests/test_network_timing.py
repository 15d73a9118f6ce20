"""The radio network's round trip: each profile has a realistic one (REFERENCE.md "SSL, as real
modules show it": a handshake takes its time), and ECEMU_NETWORK_RTT_MS sets it, 0 for fast suites."""

from __future__ import annotations

import time

import pytest

from ecemu.api import Emulator
from ecemu.profile import available_profiles, load_profile
from ecemu.shell.runner import ROUND_TRIP_ENV, network_round_trip
from tests.host import AtHost
from tests.tls_servers import TlsServer, echo
from tests.wire import OK


@pytest.mark.parametrize("name", available_profiles())
def test_every_profile_has_a_realistic_round_trip(name, monkeypatch):
    monkeypatch.delenv(ROUND_TRIP_ENV, raising=False)
    profile = load_profile(name)
    assert 20 <= profile.network.round_trip_ms <= 300  # tens to hundreds of ms, as LTE
    assert network_round_trip(profile) == profile.network.round_trip_ms


def test_the_environment_overrides_the_profile(monkeypatch):
    monkeypatch.setenv(ROUND_TRIP_ENV, "0")
    assert network_round_trip(load_profile()) == 0
    monkeypatch.setenv(ROUND_TRIP_ENV, "250")
    assert network_round_trip(load_profile()) == 250
    for bad in ("-1", "fast", "60001"):
        monkeypatch.setenv(ROUND_TRIP_ENV, bad)
        with pytest.raises(ValueError, match=ROUND_TRIP_ENV):
            network_round_trip(load_profile())


def test_an_open_and_an_echo_take_the_round_trips_they_take_on_a_network(tmp_path, monkeypatch):
    round_trip = 0.2
    monkeypatch.setenv(ROUND_TRIP_ENV, str(int(round_trip * 1000)))
    with TlsServer(behaviour=echo) as server:
        emulator = Emulator(ufs=tmp_path / "ufs").start()
        try:
            emulator.wait_for_boot()
            host = AtHost(emulator.port)
            assert host.ask("ATE0").endswith(OK)
            assert host.ask("AT+QIACT=1") == OK
            asked = time.monotonic()
            assert host.ask(f'AT+QSSLOPEN=1,1,0,"127.0.0.1",{server.port},1') == OK
            assert host.expect(b"+QSSLOPEN: 0,0\r\n").endswith(b"+QSSLOPEN: 0,0\r\n")
            # The connect, then the ClientHello out and the server's flight back: two round trips
            # at least before the handshake can be done (a lower bound: a slow machine only adds).
            assert time.monotonic() - asked >= 2 * round_trip
            sent = time.monotonic()
            host.ask("AT+QSSLSEND=0,4", final=b"> ")
            host.write(b"ping")
            assert host.until_final() == b"\r\nSEND OK\r\n"
            assert host.expect(b"ping").endswith(b"ping")
            assert time.monotonic() - sent >= round_trip  # out and back again
            host.close()
        finally:
            emulator.stop()
