"""The module clock (emulator/core/clock.py) and AT+CCLK (27.007 8.15; REFERENCE.md "Boot and
basics": ``"yy/MM/dd,hh:mm:ss±zz"``, zone in quarter hours).

README: at power-on the clock reads the host's UTC time with zone +00; AT+CCLK= moves only the
module's clock, which then runs on with the time the shell passes in (here, the harness's).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from ecemu.core.clock import ModuleClock, parse_cclk
from tests.harness import BOOT_WALL_CLOCK, CoreHarness
from tests.wire import CME_50, ERROR, OK

UTC = timezone.utc


def cclk(text: str) -> bytes:
    return f'\r\n+CCLK: "{text}"\r\n'.encode() + OK


def fmt(moment: datetime, zone: str = "+00") -> str:
    return moment.strftime("%y/%m/%d,%H:%M:%S") + zone


def host_utc(h: CoreHarness) -> datetime:
    """What the host's clock reads now: the harness gives the modem BOOT_WALL_CLOCK at creation."""
    return BOOT_WALL_CLOCK + timedelta(seconds=h.now - 100.0)  # CoreHarness starts at 100.0


# --- ModuleClock and parse_cclk ----------------------------------------------------------------------


def test_clock_runs_with_the_time_passed_in():
    base = datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)
    clock = ModuleClock(base, 50.0)
    assert clock.utc(50.0) == base
    assert clock.utc(51.5) == base + timedelta(seconds=1.5)
    assert clock.format(50.0) == "30/06/01,12:00:00+00"
    assert clock.format(50.0 + 86400) == "30/06/02,12:00:00+00"


@pytest.mark.parametrize("zone,shown", [(32, "+32"), (-20, "-20"), (0, "+00"), (96, "+96"), (-96, "-96"), (1, "+01")])
def test_set_local_keeps_utc_and_shows_the_zone(zone, shown):
    clock = ModuleClock(datetime(2000, 1, 1, tzinfo=UTC), 0.0)
    clock.set_local(10.0, datetime(2025, 3, 10, 12, 0, 0), zone)
    assert clock.format(10.0) == "25/03/10,12:00:00" + shown
    assert clock.utc(10.0) == datetime(2025, 3, 10, 12, 0, 0, tzinfo=UTC) - timedelta(minutes=15 * zone)
    assert clock.format(70.0) == "25/03/10,12:01:00" + shown


@pytest.mark.parametrize("text,local,zone", [
    ("26/01/02,03:04:05+00", datetime(2026, 1, 2, 3, 4, 5), 0),
    ("24/02/29,23:59:59-32", datetime(2024, 2, 29, 23, 59, 59), -32),
    ("00/01/01,00:00:00+96", datetime(2000, 1, 1), 96),
    ("99/12/31,23:59:59-96", datetime(2099, 12, 31, 23, 59, 59), -96),
    ("30/06/15,12:30:45-00", datetime(2030, 6, 15, 12, 30, 45), 0),
])
def test_parse_cclk_valid(text, local, zone):
    assert parse_cclk(text) == (local, zone)


MALFORMED = [
    "", "26/01/02,03:04:05", "26/01/02 03:04:05+00", "26-01-02,03:04:05+00", "2026/01/02,03:04:05+00",
    "26/1/02,03:04:05+00", "26/01/02,3:04:05+00", "26/01/02,03:04:05+0", "26/01/02,03:04:05+000",
    "26/01/02,03:04:05 +00", " 26/01/02,03:04:05+00", "26/01/02,03:04:05+00 ", "26/01/02,03:04:05*00",
    "26/01/02,03:04:05+00\n", "26/01/02,03:04:05+0x", "aa/bb/cc,dd:ee:ff+gg", "26/01/02,03:04:05+\xb2\xb2",
    "\xb2\xb2/01/02,03:04:05+00",
]
OUT_OF_RANGE = [
    "26/13/02,03:04:05+00", "26/00/02,03:04:05+00", "26/01/00,03:04:05+00", "26/01/32,03:04:05+00",
    "25/02/29,03:04:05+00", "26/04/31,03:04:05+00", "26/01/02,24:00:00+00", "26/01/02,03:60:05+00",
    "26/01/02,03:04:60+00", "26/01/02,03:04:05+97", "26/01/02,03:04:05-97", "26/01/02,03:04:05+99",
]


@pytest.mark.parametrize("text", MALFORMED + OUT_OF_RANGE)
def test_parse_cclk_rejects(text):
    with pytest.raises(ValueError):
        parse_cclk(text)


# --- AT+CCLK -------------------------------------------------------------------------------------------


def test_at_power_on_the_clock_reads_the_host_utc_time_zone_00(h):
    assert h.command("AT+CCLK?") == cclk(fmt(host_utc(h)))
    assert h.modem.clock.utc(h.now) == host_utc(h)


def test_the_clock_advances_with_the_harness_time(h):
    start = host_utc(h)
    h.advance(3600)
    assert h.command("AT+CCLK?") == cclk(fmt(start + timedelta(hours=1)))
    h.advance(86400 * 40 + 1)
    assert h.command("AT+CCLK?") == cclk(fmt(start + timedelta(hours=1, days=40, seconds=1)))


def test_cclk_set_then_read_then_run_on(h):
    assert h.command('AT+CCLK="24/02/29,23:59:50+32"') == OK
    assert h.command("AT+CCLK?") == cclk("24/02/29,23:59:50+32")
    h.advance(15)
    assert h.command("AT+CCLK?") == cclk("24/03/01,00:00:05+32")
    # +32 quarter hours is UTC+8 (REFERENCE.md): the module's UTC is 8 hours earlier.
    assert h.modem.clock.utc(h.now) == datetime(2024, 3, 1, 0, 0, 5, tzinfo=UTC) - timedelta(hours=8)


def test_cclk_negative_zone(h):
    assert h.command('AT+CCLK="30/12/31,23:59:59-20"') == OK
    h.advance(1)
    assert h.command("AT+CCLK?") == cclk("31/01/01,00:00:00-20")
    assert h.modem.clock.utc(h.now) == datetime(2031, 1, 1, 5, 0, 0, tzinfo=UTC)


def test_cclk_setting_is_independent_of_the_host_clock(h, monkeypatch):
    # The core never reads a clock: with every clock of the host broken the module's clock still
    # answers, set and running only on the time the harness passes in.
    def broken(*args, **kwargs):
        raise AssertionError("the core read the host's clock")

    for name in ("time", "time_ns", "monotonic", "monotonic_ns", "perf_counter"):
        monkeypatch.setattr(time, name, broken)
    assert h.command('AT+CCLK="01/02/03,04:05:06+04"') == OK
    h.advance(60)
    assert h.command("AT+CCLK?") == cclk("01/02/03,04:06:06+04")


def test_two_modems_keep_their_own_clocks():
    a, b = CoreHarness(), CoreHarness()
    assert a.command('AT+CCLK="20/01/01,00:00:00+00"') == OK
    assert b.command("AT+CCLK?") == cclk(fmt(host_utc(b)))
    assert a.command("AT+CCLK?") == cclk("20/01/01,00:00:00+00")


def test_cclk_set_twice_last_wins(h):
    assert h.command('AT+CCLK="20/01/01,00:00:00+00";+CCLK="21/05/06,07:08:09-04"') == OK
    assert h.command("AT+CCLK?") == cclk("21/05/06,07:08:09-04")


def test_cclk_test_form_and_execution_form(h):
    assert h.command("AT+CCLK=?") == OK
    assert h.command("AT+CCLK") == ERROR


BAD_WRITES = [f'AT+CCLK="{t}"' for t in MALFORMED[:8] + OUT_OF_RANGE] + [
    "AT+CCLK=", "AT+CCLK=26/01/02,03:04:05+00", 'AT+CCLK="26/01/02,03:04:05+00",1', 'AT+CCLK=,"26/01/02,03:04:05+00"',
    "AT+CCLK=1", 'AT+CCLK="26/01/02,03:04:05+00\n"', 'AT+CCLK="26/01/02,03:04:05+00\x01"',
]


@pytest.mark.parametrize("line", BAD_WRITES)
def test_cclk_bad_values_are_refused_and_change_nothing(h, line):
    assert h.command('AT+CCLK="22/07/08,09:10:11+08"') == OK
    assert h.command(line) == CME_50
    assert h.command("AT+CCLK?") == cclk("22/07/08,09:10:11+08")


@pytest.mark.parametrize("cmee,answer", [(0, ERROR), (2, b"\r\n+CME ERROR: incorrect parameters\r\n")])
def test_cclk_bad_value_per_cmee(h, cmee, answer):
    assert h.command(f"AT+CMEE={cmee}") == OK
    assert h.command('AT+CCLK="26/13/02,03:04:05+00"') == answer


def test_cclk_unterminated_string_is_a_syntax_error(h):
    assert h.command('AT+CCLK="26/01/02,03:04:05+00') == ERROR
    assert h.command("AT+CCLK?") == cclk(fmt(host_utc(h)))


def test_cclk_with_spaces_around_the_string(h):
    assert h.command('AT+CCLK = "26/01/02,03:04:05+00" ') == OK
    assert h.command("AT+CCLK?") == cclk("26/01/02,03:04:05+00")


def test_cclk_in_v0(h):
    assert h.command("ATV0") == b"0\r"
    assert h.command("AT+CCLK?") == f'+CCLK: "{fmt(host_utc(h))}"\r\n0\r'.encode()


def test_the_radio_does_not_touch_the_clock(h):
    assert h.command('AT+CCLK="22/07/08,09:10:11+08"') == OK
    assert h.command("AT+CFUN=0") == OK
    h.advance(10)
    assert h.command("AT+CFUN=1") == OK
    assert h.command("AT+CCLK?") == cclk("22/07/08,09:10:21+08")


def test_atz_does_not_touch_the_clock(h):
    assert h.command('AT+CCLK="22/07/08,09:10:11+08"') == OK
    assert h.command("ATZ") == OK
    assert h.command("AT+CCLK?") == b"AT+CCLK?\r" + cclk("22/07/08,09:10:11+08")


def test_after_a_reboot_the_clock_reads_the_host_time_again(h):
    assert h.command('AT+CCLK="22/07/08,09:10:11+08"') == OK
    h.advance(100)
    assert h.command("AT+CFUN=1,1") == OK
    h.advance(5)
    assert h.command("ATE0") == b"ATE0\r" + OK
    assert h.command("AT+CCLK?") == cclk(fmt(host_utc(h)))
