"""The ``ecemu`` command line."""

from __future__ import annotations

import asyncio
import copy
import logging
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from dataclasses import dataclass

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
@click.option("--control", "control", type=click.Path(path_type=Path),
              help="Path of the control socket; default LINK.ctl, or a private temporary folder.")
@click.option("--trace", "trace", type=click.Path(path_type=Path, dir_okay=False),
              help="Write a session trace (JSON lines) to this file; read it with `ecemu trace`.")
@click.option("--keylog", "keylog", type=click.Path(path_type=Path, dir_okay=False),
              help="Write TLS keys in the NSS key log format (for Wireshark) to this file.")
@click.option("--scenario", "scenario_name", metavar="FILE|NAME",
              help="Fire the faults of a scenario file (see profiles/scenarios and `ecemu scenarios`).")
@click.option("--count", default=1, show_default=True, type=click.IntRange(1, 1000),
              help="Run this many independent modems in one process.")
@click.option("--boot", "boot", default="on-open", show_default=True,
              type=click.Choice(["on-open", "at-start"]),
              help="Power the module on when a host first opens the port (its boot URCs then reach "
                   "hosts that flush on open), or as soon as the emulator starts.")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False))
def run(profile_name: str, link: Path | None, ufs: Path | None, escape_guard_ms: int, tcp: str | None,
        control: Path | None, trace: Path | None, keylog: Path | None, scenario_name: str | None, count: int,
        boot: str, log_level: str) -> None:
    """Run emulated modules until SIGINT or SIGTERM."""
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        profile = load_profile(profile_name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--profile") from None
    tcp_address = _parse_tcp(tcp)
    scenario = None
    if scenario_name is not None:
        from emulator.scenario import ScenarioError, load_scenario

        try:
            scenario = load_scenario(scenario_name)
        except ScenarioError as exc:
            raise click.BadParameter(str(exc), param_hint="--scenario") from None
    temporary_ufs = ufs is None
    ufs_root = Path(tempfile.mkdtemp(prefix="ecemu-ufs-")) if temporary_ufs else ufs
    control_dir = None
    if control is None and link is None:
        control_dir = Path(tempfile.mkdtemp(prefix="ecemu-ctl-"))  # mode 0700
        control = control_dir / "control.sock"
    elif control is None:
        control = link.with_name(link.name + ".ctl")
    options = RunOptions(profile, ufs_root, link, escape_guard_ms / 1000.0, tcp_address, count, control,
                         trace, keylog, scenario, boot)
    try:
        asyncio.run(_serve(options))
    finally:
        if temporary_ufs:
            shutil.rmtree(ufs_root, ignore_errors=True)
        if control_dir is not None:
            shutil.rmtree(control_dir, ignore_errors=True)


def _nth(count: int, index: int, path: Path | None) -> Path | None:
    """With --count above 1, modem N gets PATH-N; a single modem gets PATH itself."""
    if path is None or count == 1:
        return path
    return path.with_name(f"{path.name}-{index}")


@dataclass
class RunOptions:
    profile: object
    ufs_root: Path
    link: Path | None
    escape_guard: float
    tcp: tuple[str, int] | None
    count: int
    control: Path
    trace: Path | None
    keylog: Path | None
    scenario: object = None
    boot: str = "on-open"


async def _serve(o: RunOptions) -> None:
    from emulator.shell.control_socket import ControlServer
    from emulator.shell.private_files import private_opener
    from emulator.shell.rfc2217 import Rfc2217Host
    from emulator.shell.runner import ModemRunner

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    started: list = []  # runners and control servers, stopped in reverse
    keylog_file = open(o.keylog, "ab", opener=private_opener) if o.keylog is not None else None
    try:
        for index in range(o.count):
            ufs = o.ufs_root if o.count == 1 else o.ufs_root / str(index)
            host = None
            if o.tcp is not None:
                host = Rfc2217Host(o.tcp[0], o.tcp[1] + index if o.tcp[1] else 0)
            modem_link = _nth(o.count, index, o.link)
            scenario = copy.deepcopy(o.scenario)  # each modem plays its own copy
            runner = ModemRunner(o.profile, ufs, modem_link, o.escape_guard, host=host, trace=o.trace,
                                 modem_index=index, scenario=scenario, boot=o.boot)
            control = ControlServer(_nth(o.count, index, o.control), runner)
            try:
                runner.start()
                started.append(runner)
                control.start()
                started.append(control)
            except (FileExistsError, OSError) as exc:
                raise click.ClickException(str(exc)) from None
            if keylog_file is not None:
                runner.modem.keylog = lambda line, f=keylog_file: (f.write(line + b"\n"), f.flush())
            click.echo(f"port: {runner.host.address}")
            if modem_link is not None and o.tcp is None:
                click.echo(f"link: {modem_link}")
            click.echo(f"control: {control.path}")
        sys.stdout.flush()
        await stop.wait()
    finally:
        for item in reversed(started):
            item.close() if hasattr(item, "close") else item.stop()
        if keylog_file is not None:
            keylog_file.close()


@main.command()
@click.option("--profile", "profile_name", default=DEFAULT_PROFILE, show_default=True,
              help="Module profile (see `ecemu profiles`).")
@click.option("--escape-guard-ms", default=200, show_default=True, type=click.IntRange(1, 10000),
              help="Guard time around +++ in example 3.5; shorter than the module's 1000 to keep the demo quick.")
@click.option("--quiet", is_flag=True, help="Print only each example's PASS or FAIL.")
def demo(profile_name: str, escape_guard_ms: int, quiet: bool) -> None:
    """Play the SSL note's chapter 3 examples through the port against a local TLS server.

    Prints what the host sent and what the module answered, and per example PASS or FAIL against
    the bytes the note shows; exits 0 when all pass. Needs no network beyond 127.0.0.1.
    """
    from emulator.demo import run_demo

    try:
        load_profile(profile_name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--profile") from None
    if not run_demo(profile_name, escape_guard_ms, quiet, echo=click.echo):
        sys.exit(1)


@main.command("echo-server")
@click.option("--port", default=4433, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port on 127.0.0.1; 0 picks a free one.")
@click.option("--ca", "ca_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the CA certificate of the server's chain here, to upload for secllevel 1.")
def echo_server(port: int, ca_path: Path | None) -> None:
    """A TLS echo server on 127.0.0.1 with the test PKI, until SIGINT or SIGTERM."""
    import threading

    from emulator.echo_server import TlsEchoServer

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        server = TlsEchoServer(port=port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {exc}") from None
    with server:
        click.echo(f"port: {server.port}")
        if ca_path is not None:
            ca_path.write_bytes(server.ca_pem)
            click.echo(f"ca: {ca_path}")
        sys.stdout.flush()
        stop.wait()


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--socket", "socket_path", type=click.Path(path_type=Path),
              help="The control socket `ecemu run` announced.")
@click.option("--link", type=click.Path(path_type=Path), help="The port link given to `ecemu run` (uses LINK.ctl).")
@click.option("--list", "list_ops", is_flag=True, help="List the operations and their arguments.")
@click.argument("operation", required=False)
@click.argument("arguments", nargs=-1)
def ctl(socket_path: Path | None, link: Path | None, list_ops: bool, operation: str | None,
        arguments: tuple[str, ...]) -> None:
    """Control a running emulator: ecemu ctl --socket PATH OPERATION [NAME=VALUE ...]."""
    import json

    from emulator.control import OPERATIONS
    from emulator.shell.control_socket import request

    if list_ops or operation is None:
        for name, op in sorted(OPERATIONS.items()):
            params = " ".join(p.name.replace("_", "-") + ("" if p.default is p.empty else f"={p.default}")
                              for p in op.parameters)
            click.echo(f"{name} {params}".rstrip() + f"\n    {op.summary}")
        return
    if socket_path is None:
        if link is None:
            raise click.UsageError("give --socket PATH (announced by `ecemu run` as control:) or --link PATH")
        socket_path = link.with_name(link.name + ".ctl")
    args = {}
    for item in arguments:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.UsageError(f"arguments are NAME=VALUE, not {item!r}")
        args[name.replace("-", "_")] = value
    try:
        answer = request(socket_path, operation, args)
    except OSError as exc:
        raise click.ClickException(f"cannot reach {socket_path}: {exc}") from None
    if not answer.get("ok"):
        raise click.ClickException(answer.get("error", "failed"))
    if answer.get("result") is not None:
        click.echo(json.dumps(answer["result"], indent=2))


@main.command()
@click.argument("file", type=click.File("r"))
def trace(file) -> None:
    """Print a session trace written with `ecemu run --trace` as a timed transcript."""
    from emulator.shell.trace import render

    for line in render(file):
        click.echo(line)


@main.command()
def profiles() -> None:
    """List the module profiles."""
    for name in available_profiles():
        click.echo(name)


@main.command()
def scenarios() -> None:
    """List the scenarios shipped in profiles/scenarios, with what each reproduces."""
    from emulator.scenario import available_scenarios, load_scenario

    for name in available_scenarios():
        click.echo(f"{name}\n    {load_scenario(name).description}")


@main.command()
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
def certs(folder: Path) -> None:
    """Write the test PKI (CA, server, client and broken certificates) into FOLDER."""
    from emulator.pki import write_test_pki

    for name, path in sorted(write_test_pki(folder).items()):
        click.echo(f"{name}: {path}")
