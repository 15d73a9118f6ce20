"""Module profiles: one TOML file per module in ``profiles/``.

Everything that differs between the four modules (identity, limits, defaults, boot URCs, network
values) is read from here; code never hard-codes a limit.
"""

from __future__ import annotations

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


def load_profile(name: str = DEFAULT_PROFILE, folder: Path | None = None) -> Profile:
    folder = folder or profiles_dir()
    path = folder / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(available_profiles(folder)) or "none"
        raise ValueError(f"unknown profile {name!r} (known: {known})")
    with path.open("rb") as f:
        return Profile.from_toml(name, tomllib.load(f))
