"""The ``ecemu`` command line."""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import click

from emulator import __version__
from emulator.profile import DEFAULT_PROFILE, available_profiles, load_profile


@click.group()
@click.version_option(__version__, prog_name="ecemu")
def main() -> None:
    """Emulator of the Quectel EC200x/EC800x LTE modules on a virtual serial port."""


def _parse_tcp(value: str | None) -> tuple[str, int] | None:
    if value is None:
        return None
    host, _, port = value.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise click.BadParameter("expected HOST:PORT or PORT", param_hint="--tcp") from None
    if not 0 <= number <= 65535:
        raise click.BadParameter("port out of range", param_hint="--tcp")
    return host or "127.0.0.1", number


@main.command()
@click.option("--profile", "profile_name", default=DEFAULT_PROFILE, show_default=True,
              help="Module profile (see `ecemu profiles`).")
@click.option("--link", type=click.Path(path_type=Path),
              help="Create a symbolic link at this path to the port; removed on exit.")
@click.option("--ufs", type=click.Path(path_type=Path, file_okay=False),
              help="Folder holding the module's file storage (UFS); a fresh temporary one when omitted.")
@click.option("--escape-guard-ms", default=1000, show_default=True, type=click.IntRange(0, 60000),
              help="Guard time of silence around +++ in transparent mode.")
@click.option("--tcp", "tcp", metavar="[HOST:]PORT",
              help="Serve the port over TCP as RFC 2217 instead of a pty (HOST defaults to 127.0.0.1).")
@click.option("--count", default=1, show_default=True, type=click.IntRange(1, 1000),
              help="Run this many independent modems in one process.")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False))
def run(profile_name: str, link: Path | None, ufs: Path | None, escape_guard_ms: int, tcp: str | None,
        count: int, log_level: str) -> None:
    """Run emulated modules until SIGINT or SIGTERM."""
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        profile = load_profile(profile_name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--profile") from None
    tcp_address = _parse_tcp(tcp)
    temporary_ufs = ufs is None
    ufs_root = Path(tempfile.mkdtemp(prefix="ecemu-ufs-")) if temporary_ufs else ufs
    try:
        asyncio.run(_serve(profile, ufs_root, link, escape_guard_ms / 1000.0, tcp_address, count))
    finally:
        if temporary_ufs:
            shutil.rmtree(ufs_root, ignore_errors=True)


def _nth(count: int, index: int, path: Path | None) -> Path | None:
    """With --count above 1, modem N gets PATH-N; a single modem gets PATH itself."""
    if path is None or count == 1:
        return path
    return path.with_name(f"{path.name}-{index}")


async def _serve(profile, ufs_root: Path, link: Path | None, escape_guard: float,
                 tcp: tuple[str, int] | None, count: int) -> None:
    from emulator.shell.rfc2217 import Rfc2217Host
    from emulator.shell.runner import ModemRunner

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runners = []
    try:
        for index in range(count):
            ufs = ufs_root if count == 1 else ufs_root / str(index)
            host = None
            if tcp is not None:
                host = Rfc2217Host(tcp[0], tcp[1] + index if tcp[1] else 0)
            runner = ModemRunner(profile, ufs, _nth(count, index, link), escape_guard, host=host)
            try:
                runner.start()
            except (FileExistsError, OSError) as exc:
                raise click.ClickException(str(exc)) from None
            runners.append(runner)
            click.echo(f"port: {runner.host.address}")
            modem_link = _nth(count, index, link)
            if modem_link is not None and tcp is None:
                click.echo(f"link: {modem_link}")
        sys.stdout.flush()
        await stop.wait()
    finally:
        for runner in runners:
            runner.stop()


@main.command()
def profiles() -> None:
    """List the module profiles."""
    for name in available_profiles():
        click.echo(name)


@main.command()
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
def certs(folder: Path) -> None:
    """Write the test PKI (CA, server, client and broken certificates) into FOLDER."""
    from emulator.pki import write_test_pki

    for name, path in sorted(write_test_pki(folder).items()):
        click.echo(f"{name}: {path}")
