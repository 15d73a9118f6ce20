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


@main.command()
@click.option("--profile", "profile_name", default=DEFAULT_PROFILE, show_default=True,
              help="Module profile (see `ecemu profiles`).")
@click.option("--link", type=click.Path(path_type=Path),
              help="Create a symbolic link at this path to the port; removed on exit.")
@click.option("--ufs", type=click.Path(path_type=Path, file_okay=False),
              help="Folder holding the module's file storage (UFS); a fresh temporary one when omitted.")
@click.option("--escape-guard-ms", default=1000, show_default=True, type=click.IntRange(0, 60000),
              help="Guard time of silence around +++ in transparent mode.")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False))
def run(profile_name: str, link: Path | None, ufs: Path | None, escape_guard_ms: int, log_level: str) -> None:
    """Run one emulated module until SIGINT or SIGTERM."""
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        profile = load_profile(profile_name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--profile") from None
    temporary_ufs = ufs is None
    ufs_dir = Path(tempfile.mkdtemp(prefix="ecemu-ufs-")) if temporary_ufs else ufs
    try:
        asyncio.run(_serve(profile, ufs_dir, link, escape_guard_ms / 1000.0))
    finally:
        if temporary_ufs:
            shutil.rmtree(ufs_dir, ignore_errors=True)


async def _serve(profile, ufs: Path, link: Path | None, escape_guard: float) -> None:
    from emulator.shell.runner import ModemRunner

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = ModemRunner(profile, ufs, link, escape_guard)
    try:
        runner.start()
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        click.echo(f"port: {runner.host.address}")
        if link is not None:
            click.echo(f"link: {link}")
        sys.stdout.flush()
        await stop.wait()
    finally:
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
