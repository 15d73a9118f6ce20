"""The external parts some tests need, and what a test does when one is missing: it skips on a
developer's machine, and FAILS where ``CI`` is true, because a CI run that passes without testing
what it claims is worse than a red one. ``scripts/test`` installs them (apt-get, as root).

Mark a test ``@pytest.mark.needs("mosquitto")`` (checked before it runs, see conftest.py), or call
``require("chromium")`` where the part's path is wanted; ``import_or_missing`` for a module.
"""

from __future__ import annotations

import importlib
import os
import shutil
from ctypes.util import find_library
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NoReturn

import pytest

IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _mosquitto() -> str | None:
    from ecemu.mqtt_broker import mosquitto_binary

    return mosquitto_binary()


def _chromium() -> str | None:
    return next((path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))),
                None)


def _module(name: str) -> Callable[[], Any]:
    def find() -> Any:
        try:
            return importlib.import_module(name)
        except ImportError:
            return None
    return find


def _file(path: str) -> Callable[[], str | None]:
    return lambda: path if Path(path).is_file() else None


@dataclass(frozen=True)
class Part:
    find: Callable[[], Any]  # the part (a path, a module, True) or None
    how: str  # how to get it


PARTS: dict[str, Part] = {
    "mosquitto": Part(_mosquitto, "Debian package mosquitto"),
    "chromium": Part(_chromium, "Debian package chromium"),
    "python-mbedtls": Part(_module("mbedtls.tls"),
                           "pip install python-mbedtls==2.10.1 (on Python 3.13: built against Debian's libmbedtls-dev)"),
    # A real root CA in the system's store, used as a file a firmware team would upload.
    "ca-certificates": Part(_file("/etc/ssl/certs/ISRG_Root_X1.pem"), "Debian package ca-certificates"),
    "root": Part(lambda: os.geteuid() == 0 or None, "run as root (CI does)"),
    # For tests of other host programs and transports.
    "qemu": Part(lambda: shutil.which("qemu-system-arm"), "Debian package qemu-system-arm"),
    "gcc-arm-none-eabi": Part(lambda: shutil.which("arm-none-eabi-gcc"), "Debian package gcc-arm-none-eabi"),
    "newlib-arm": Part(_file("/usr/lib/arm-none-eabi/newlib/thumb/v7-m/nofp/libc_nano.a"),
                       "Debian package libnewlib-arm-none-eabi"),
    "libslirp": Part(lambda: find_library("slirp"), "Debian package libslirp0"),
    "socat": Part(lambda: shutil.which("socat"), "Debian package socat"),
    "picocom": Part(lambda: shutil.which("picocom"), "Debian package picocom"),
    # Host stacks written elsewhere (tests/external_stacks.py): Debian's gsm0710muxd on a private
    # D-Bus, and lwIP's PPPoS client built from Debian's lwip source package with gcc and Mbed TLS.
    "gsm0710muxd": Part(_file("/usr/sbin/gsm0710muxd"), "Debian package gsm0710muxd"),
    "dbus": Part(lambda: shutil.which("dbus-daemon") and shutil.which("dbus-send"),
                 "Debian packages dbus-daemon and dbus-bin"),
    "gcc": Part(lambda: shutil.which("gcc"), "Debian package gcc"),
    "dpkg-dev": Part(lambda: shutil.which("apt-get") and shutil.which("dpkg-source"),
                     "apt-get and Debian package dpkg-dev (apt-get source)"),
    "libmbedtls-dev": Part(_file("/usr/include/mbedtls/ssl.h"), "Debian package libmbedtls-dev"),
    "lwip-source": Part(lambda: shutil.which("apt-get"), "Debian's lwip source package (apt-get source lwip, "
                                                         "from the deb-src twins of the machine's sources)"),
}


def missing(part: str, detail: str = "") -> NoReturn:
    """Skip the test (a module, at import) for want of ``part``; fail it in CI."""
    message = f"{part} is missing{': ' + detail if detail else ''} ({PARTS[part].how})"
    if IN_CI:
        pytest.fail(message + "; CI is set, so a missing part fails instead of skipping", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def require(part: str) -> Any:
    """The part (its path, module ...), or the test skips (fails in CI)."""
    found = PARTS[part].find()
    if found is None:
        missing(part)
    return found


def import_or_missing(module: str, part: str) -> Any:
    """``importlib.import_module(module)``; at a test module's top: the module skips (fails in CI)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing(part, str(exc))
