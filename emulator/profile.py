"""Module profiles: one TOML file per module in ``profiles/``.

Everything that differs between the four modules (identity, limits, defaults, boot URCs, network
values) is read from here; code never hard-codes a limit.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PROFILE = "EC200M-CN"


def profiles_dir() -> Path:
    """The folder holding the profile files: ``ECEMU_PROFILES`` when set, else the checkout's
    ``profiles/``, else the copy an installed package carries (``emulator/profiles``)."""
    override = os.environ.get("ECEMU_PROFILES")
    if override:
        return Path(override)
    here = Path(__file__).resolve().parent
    checkout = here.parent / "profiles"
    return checkout if checkout.is_dir() else here / "profiles"


@dataclass(frozen=True)
class Identity:
    manufacturer: str
    model: str
    product: str
    revision: str
    imei: str
    imei_svn: str  # the software version number of AT+CGSN=2/3
    build: str  # AT+QGMR shows ``<revision>_<build>``
    iccid: str  # the emulated SIM's
    imsi: str


@dataclass(frozen=True)
class Limits:
    ssl_contexts: int
    clients: int
    pdp_contexts: int
    send_max: int
    recv_max: int
    line_length: int
    recv_buffer: int
    send_buffer: int
    ufs_size: int
    ufs_name_length: int
    ufs_open_files: int  # files AT+QFOPEN holds open at once


@dataclass(frozen=True)
class Defaults:
    echo: bool
    verbose: bool
    cmee: int
    dtr_mode: int
    urc_port: str
    at_port: str


@dataclass(frozen=True)
class Network:
    operator: str
    access_technology: int
    csq: tuple[int, int]
    registration: int
    tac: str
    cell_id: str
    ip_pool: str  # AT+QIACT: context N of an IPv4 (or IPv4v6) type gets this network's Nth host
    ip6_pool: str  # the same for IPv6 contexts
    dns: tuple[str, str]  # the primary and secondary DNS servers AT+QIDNSCFG shows by default
    # The serving network and cell (AT+QNWINFO, AT+QSPN, AT+QENG, AT+QCSQ, AT+CESQ).
    mcc_mnc: str
    operator_short: str
    spn: str
    duplex: str  # "FDD" or "TDD"
    band: int
    earfcn: int
    pci: int
    bandwidth: int
    rsrp: int
    rsrq: int
    sinr: int
    srxlev: int
    gsm_band_mask: int  # AT+QCFG="band" defaults
    lte_bands: tuple[int, ...]
    round_trip_ms: int = 0  # the radio network's round trip, added to every connection (chosen)

    def __post_init__(self) -> None:
        # TOML gives lists; a frozen profile keeps tuples.
        object.__setattr__(self, "dns", tuple(self.dns))
        object.__setattr__(self, "lte_bands", tuple(self.lte_bands))


@dataclass(frozen=True)
class Device:
    battery: tuple[int, int, int]  # AT+CBC: <bcs>,<bcl>,<voltage in mV>
    temperatures: tuple[int, int, int]  # AT+QTEMP
    sms_capacity: int  # AT+CPMS: messages each storage holds

    def __post_init__(self) -> None:
        object.__setattr__(self, "battery", tuple(self.battery))
        object.__setattr__(self, "temperatures", tuple(self.temperatures))


@dataclass(frozen=True)
class DefaultBearer:
    """The PDP context LTE's attach brings up (the default EPS bearer), as the module's firmware
    shows it: active before the host activated anything (``[network.default_bearer]``).
    ``context`` 0: the firmware shows none, every context waits for AT+QIACT / AT+CGACT."""

    context: int = 0
    apn: str = ""  # the APN the network gave it (AT+QICSGP and AT+CGDCONT? read it)
    type: str = "IP"  # "IP", "IPV6" or "IPV4V6", as AT+CGDCONT names them

    def __post_init__(self) -> None:
        if self.type.upper() not in ("IP", "IPV6", "IPV4V6"):
            raise ValueError(f"default_bearer type {self.type!r} is not IP, IPV6 or IPV4V6")


@dataclass(frozen=True)
class BootUrc:
    after_ms: int
    text: str


@dataclass(frozen=True)
class Profile:
    name: str
    identity: Identity
    limits: Limits
    defaults: Defaults
    network: Network
    device: Device
    boot_urcs: tuple[BootUrc, ...]
    default_bearer: DefaultBearer = DefaultBearer()

    def with_identity(self, **fields: str) -> "Profile":
        """The same module with other identity values (``imei=...``); ValueError for a field
        ``[identity]`` does not have."""
        known = {f.name for f in dataclasses.fields(Identity)}
        unknown = set(fields) - known
        if unknown:
            raise ValueError(f"no identity field {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
        return dataclasses.replace(self, identity=dataclasses.replace(self.identity, **fields))

    def for_modem(self, index: int) -> "Profile":
        """Modem ``index`` of a fleet (``ecemu run --count``): modem 0 is the profile as written,
        modem i has the IMEI's serial number, the ICCID and the IMSI's MSIN moved on by i, with
        their check digits made again (REFERENCE.md "Boot and basics", chosen: distinct and valid,
        and the user's own profile sets where they start)."""
        if index == 0:
            return self
        identity = self.identity
        return self.with_identity(imei=next_imei(identity.imei, index), iccid=next_iccid(identity.iccid, index),
                                  imsi=next_imsi(identity.imsi, index))

    @classmethod
    def from_toml(cls, name: str, data: dict) -> "Profile":
        network = dict(data["network"])
        network["csq"] = tuple(network["csq"])
        bearer = DefaultBearer(**network.pop("default_bearer", {}))
        return cls(
            name=name,
            identity=Identity(**data["identity"]),
            limits=Limits(**data["limits"]),
            defaults=Defaults(**data["defaults"]),
            network=Network(**network),
            device=Device(**data["device"]),
            boot_urcs=tuple(BootUrc(**u) for u in data.get("boot", {}).get("urc", [])),
            default_bearer=bearer,
        )


def available_profiles(folder: Path | None = None) -> list[str]:
    folder = folder or profiles_dir()
    return sorted(p.stem for p in folder.glob("*.toml"))


def is_profile_path(name: str) -> bool:
    """A user's own profile file (``--profile ./my-module.toml``) rather than a shipped name."""
    return name.endswith(".toml") or os.sep in name


def load_profile(name: str = DEFAULT_PROFILE, folder: Path | None = None) -> Profile:
    """A shipped profile by name, or a TOML file of the user's by path. A user's file may start
    from a shipped one, ``base = "EC200M-CN"``, and give only the tables and keys that differ.
    ValueError (saying what is wrong) for a missing or unreadable profile."""
    folder = folder or profiles_dir()
    if is_profile_path(name):
        path = Path(name)
        try:
            with path.open("rb") as f:
                data = tomllib.load(f)
        except OSError as exc:
            raise ValueError(f"cannot read profile {name}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"profile {name} is not valid TOML: {exc}") from None
        base = data.pop("base", None)
        if base is not None:
            if not isinstance(base, str) or is_profile_path(base):
                raise ValueError(f"profile {name}: base must name a shipped profile, not {base!r}")
            data = _merged(_read_named(base, folder), data)
        return _from_toml(path.stem, data, name)
    return _from_toml(name, _read_named(name, folder), name)


def _read_named(name: str, folder: Path) -> dict:
    path = folder / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(available_profiles(folder)) or "none"
        raise ValueError(f"unknown profile {name!r} (known: {known}; or give a path to a .toml file)")
    with path.open("rb") as f:
        return tomllib.load(f)


def _merged(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` laid over it, table by table (a list, [[boot.urc]], replaces)."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _from_toml(name: str, data: dict, where: str) -> Profile:
    try:
        return Profile.from_toml(name, data)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"profile {where} is incomplete or has unknown keys: {exc}") from None


# --- identities of a fleet ------------------------------------------------------------------------

def luhn_digit(body: str) -> str:
    """The Luhn check digit of ``body`` (ISO/IEC 7812, as the IMEI's and the ICCID's last digit)."""
    total = 0
    for position, digit in enumerate(reversed(body)):
        value = int(digit) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def _moved_on(digits: str, step: int) -> str:
    """``digits`` as a number plus ``step``, kept to its length (wrapping round)."""
    if not digits.isdigit():
        raise ValueError(f"{digits!r} is not all digits")
    return str((int(digits) + step) % 10 ** len(digits)).zfill(len(digits))


def next_imei(imei: str, step: int) -> str:
    """An IMEI (TS 23.003: TAC 8, serial number 6, Luhn check digit) with the serial moved on."""
    body = imei[:8] + _moved_on(imei[8:14], step)
    return body + luhn_digit(body)


def next_iccid(iccid: str, step: int) -> str:
    """An ICCID (ITU-T E.118: issuer and account digits, Luhn check digit) with the account moved on."""
    body = iccid[:7] + _moved_on(iccid[7:-1], step)
    return body + luhn_digit(body)


def next_imsi(imsi: str, step: int) -> str:
    """An IMSI (TS 23.003: MCC 3, MNC 2 here, MSIN) with the MSIN moved on."""
    return imsi[:5] + _moved_on(imsi[5:], step)
