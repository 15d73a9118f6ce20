"""Which module a log is of, and which profile stands in for it.

A log of a module with a profile of its own (EC200M-CN, EC200N-CN, EC800M-CN, EC800N-CN,
EG800K-CN) is checked against it. A log of another member of the family (EC200U, EC200T, EC200A,
EC800K ...) is checked against the nearest profile (chosen: EC200x against EC200M-CN, EC800x
against EC800M-CN, EG800x against EG800K-CN); a log of a module outside the family (a BG96, a
SIM7600) is refused unless the user names a profile.
"""

from __future__ import annotations

import re

from ..profile import DEFAULT_PROFILE, available_profiles

FAMILY = "EC200x/EC800x/EG800"
_MODEL = re.compile(r"(E[CG]\d{3}[A-Z]?)", re.I)
_NEAREST = (("EC200", "EC200M-CN"), ("EC800", "EC800M-CN"), ("EG800", "EG800K-CN"))
# Models of other makers and families, as ATI and AT+CGMM print them: enough to say whose log it is.
_OTHERS = re.compile(r"^(BG\d+|EC2[0-5]|EG2[0-5]|EG9\d|EM\d+|SIM\d+|A76\d+|SARA|LARA|TOBY|ME\d{3}|N\d{2}|"
                     r"L\d{3}|M\d{2}|UC\d{2}|MC\d+|ESP|nRF|RM\d+|AIR\d+|Air\d+)", re.I)


class ModuleMismatch(ValueError):
    """A log of a module the emulator does not stand in for."""


def profile_for(model: str | None) -> tuple[str, bool]:
    """(profile name, whether it is the module itself rather than the nearest of its family).

    ``model`` is a profile name, a model (``EC800M``, ``EG800K``) or a firmware revision
    (``EC800MCNGAR06A05M08``); None gives the default profile. Raises ModuleMismatch for a module
    outside the family."""
    if not model:
        return DEFAULT_PROFILE, False
    wanted = model.strip().upper()
    for name in available_profiles():
        if wanted == name.upper() or wanted == name.upper().split("-")[0]:
            return name, True
    match = _MODEL.match(wanted)
    if match:
        stem = match.group(1)
        for name in available_profiles():
            if wanted.startswith(name.upper().replace("-", "")) or name.upper().startswith(stem) and \
                    wanted.startswith(name.upper().split("-")[0]):
                return name, True
        for prefix, profile in _NEAREST:
            if stem.startswith(prefix):
                return profile, False
    raise ModuleMismatch(f"the log is of a {model.strip()}, not of the {FAMILY} family ecemu emulates "
                         f"(profiles: {', '.join(available_profiles())}); give --profile to use it anyway")


def model_in_answer(lines: list[str]) -> str | None:
    """The model an ATI or AT+CGMM answer names (its lines, without line ends), if any."""
    cleaned = [line.strip() for line in lines if line.strip()]
    for index, line in enumerate(cleaned):
        if line.lower() in ("quectel", "quectel_ltd", "quectel incorporated") and index + 1 < len(cleaned):
            return cleaned[index + 1]
    for line in cleaned:
        if _MODEL.fullmatch(line.split("-")[0]) or _OTHERS.match(line):
            return line
    return None
