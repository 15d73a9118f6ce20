"""The module's real-time clock (AT+CCLK), independent of the host's clock.

The clock is an offset from the monotonic time the shell passes in: setting it with AT+CCLK moves
only the module's idea of the time, and it then advances in real time. The SSL commands check
certificate validity against ``utc()`` (SSL note 1.5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

# ASCII digits only, and the whole string: "$" would also match before a trailing newline.
_CCLK = re.compile(r"([0-9]{2})/([0-9]{2})/([0-9]{2}),([0-9]{2}):([0-9]{2}):([0-9]{2})([+-])([0-9]{2})")


@dataclass
class ModuleClock:
    utc_at_base: datetime  # aware, UTC
    base: float  # monotonic time at which utc_at_base held
    zone_quarters: int = 0  # time zone in quarter hours, as +CCLK prints it

    def utc(self, now: float) -> datetime:
        return self.utc_at_base + timedelta(seconds=now - self.base)

    def set_local(self, now: float, local: datetime, zone_quarters: int) -> None:
        self.utc_at_base = (local - timedelta(minutes=15 * zone_quarters)).replace(tzinfo=timezone.utc)
        self.base = now
        self.zone_quarters = zone_quarters

    def format(self, now: float) -> str:
        """``yy/MM/dd,hh:mm:ss±zz`` in the module's local time."""
        local = self.utc(now) + timedelta(minutes=15 * self.zone_quarters)
        sign = "+" if self.zone_quarters >= 0 else "-"
        return local.strftime("%y/%m/%d,%H:%M:%S") + f"{sign}{abs(self.zone_quarters):02d}"


def parse_cclk(text: str) -> tuple[datetime, int]:
    """Parse ``yy/MM/dd,hh:mm:ss±zz``; raises ValueError when malformed or out of range."""
    m = _CCLK.fullmatch(text)
    if not m:
        raise ValueError(text)
    yy, mo, dd, hh, mi, ss, sign, zz = m.groups()
    zone = int(zz)
    if zone > 96:  # 27.007 allows -96..+96 quarter hours
        raise ValueError(text)
    local = datetime(2000 + int(yy), int(mo), int(dd), int(hh), int(mi), int(ss))
    return local, -zone if sign == "-" else zone
