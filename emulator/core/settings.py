"""The V.250 / 27.007 settings of the port: what ATZ and AT&F restore, a power cycle too."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..profile import Profile

# The S-registers and their power-on values: S0 0 and S3 13 seen (REFERENCE.md, AT&V); S4 10, S5 8,
# S6 2 and S8 2 are V.250's defaults; S7 0 and S10 15 are the Quectel EC2x AT manual's (doc). S3 ends
# a command line, S4 follows S3 in every header and trailer, S5 erases (V.250 6.2.1 - 6.2.3).
S_REGISTER_DEFAULTS = {0: 0, 3: 13, 4: 10, 5: 8, 6: 2, 7: 0, 8: 2, 10: 15}


@dataclass
class Settings:
    """The V.250 / 27.007 settings that ATZ and AT&F restore."""

    echo: bool
    verbose: bool
    cmee: int
    dtr_mode: int
    urc_port: str
    registration_report: dict[str, int] = field(default_factory=lambda: {"+CREG": 0, "+CGREG": 0, "+CEREG": 0})
    quiet: bool = False  # ATQ1: no result codes (V.250 6.2.5); Q0 is the default (REFERENCE.md AT&V)
    result_codes: int = 4  # ATX (REFERENCE.md AT&V: X4)
    dcd_mode: int = 1  # AT&C (REFERENCE.md AT&V: &C1)
    s_registers: dict[int, int] = field(default_factory=lambda: dict(S_REGISTER_DEFAULTS))
    baud_rate: int = 115200  # AT+IPR; kept and reported, the port ignores it
    flow_control: tuple[int, int] = (0, 0)  # AT+IFC
    char_framing: tuple[int, int] = (3, 3)  # AT+ICF

    @classmethod
    def factory(cls, profile: Profile) -> "Settings":
        d = profile.defaults
        return cls(echo=d.echo, verbose=d.verbose, cmee=d.cmee, dtr_mode=d.dtr_mode, urc_port=d.urc_port)
