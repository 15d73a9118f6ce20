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
    round_trip_ms: int = 0  # the radio network's round trip, added to every connection (chosen)

    def __post_init__(self) -> None:
        # TOML gives a list; a frozen profile keeps a tuple.
        object.__setattr__(self, "dns", tuple(self.dns))


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
    boot_urcs: tuple[BootUrc, ...]

    @classmethod
    def from_toml(cls, name: str, data: dict) -> "Profile":
        network = dict(data["network"])
        network["csq"] = tuple(network["csq"])
        return cls(
            name=name,
            identity=Identity(**data["identity"]),
            limits=Limits(**data["limits"]),
            defaults=Defaults(**data["defaults"]),
            network=Network(**network),
            boot_urcs=tuple(BootUrc(**u) for u in data.get("boot", {}).get("urc", [])),
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
