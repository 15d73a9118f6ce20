"""The ``ecemu`` command line."""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Callable

import click

from . import __version__
from .echo_server import SERVER_CERTIFICATES
from .profile import DEFAULT_PROFILE, Profile, available_profiles, load_profile
from .shell.private_files import write_private

if TYPE_CHECKING:
    from .scenario import Scenario
    from .shell.dns import NetworkPolicy


# Signals that end ``ecemu run`` and ``ecemu echo-server`` cleanly (link, socket, folders removed):
# SIGHUP too, since closing the terminal a foreground emulator runs in sends it.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STATUS_INTERVAL = 0.25  # seconds between updates of the status line on a terminal
CONTROL_ENV = "ECEMU_CONTROL"  # default control socket of `ecemu run --control` and `ecemu ctl --socket`


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ecemu")
def main() -> None:
    """Emulator of the Quectel EC200x/EC800x LTE modules on a virtual serial port."""


def _parse_tcp(value: str | None, option: str = "--tcp", host_required: bool = False) -> tuple[str, int] | None:
    if value is None:
        return None
    host, _, port = value.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise click.BadParameter("expected HOST:PORT" + ("" if host_required else " or PORT"),
                                 param_hint=option) from None
    if not 0 <= number <= 65535 or (host_required and number == 0):
        raise click.BadParameter("port out of range", param_hint=option)
    if host_required and not host:
        raise click.BadParameter("expected HOST:PORT", param_hint=option)
    return host.strip("[]") or "127.0.0.1", number


# AT+IPR's rates (commands/basic.py BAUD_RATES), offered by --baud.
BAUD_CHOICES = ("9600", "19200", "38400", "57600", "115200", "230400", "460800", "921600")


@dataclass(frozen=True)
class Transport:
    """How the host reaches the port: ``pty`` (the default), ``tcp`` (RFC 2217), ``tcp-raw``,
    ``connect`` or ``device``; ``option`` is the option it came from (named in errors)."""

    kind: str = "pty"
    address: tuple[str, int] | None = None
    devices: tuple[Path, ...] = ()
    option: str | None = None

    def host(self, index: int, baud: int):
        """Modem ``index``'s host link, or None for a pty of its own (``PtyHost``)."""
        if self.kind == "device":
            from .core.uart import LineFormat
            from .shell.device import DeviceHost

            return DeviceHost(self.devices[index], LineFormat(baud))
        if self.address is None:
            return None
        host, port = self.address[0], self.address[1] + index if self.address[1] else 0
        if self.kind == "tcp":
            from .shell.rfc2217 import Rfc2217Host

            return Rfc2217Host(host, port)
        from .shell.tcp_host import RawTcpClient, RawTcpServer

        return RawTcpServer(host, port) if self.kind == "tcp-raw" else RawTcpClient(host, port)


def _transport(tcp: str | None, tcp_raw: str | None, connect: str | None, devices: tuple[Path, ...]) -> Transport:
    given = [name for name, value in (("--tcp", tcp), ("--tcp-raw", tcp_raw), ("--connect", connect),
                                      ("--device", devices)) if value]
    if len(given) > 1:
        raise click.UsageError(f"{' and '.join(given)} are different ports; give one")
    if tcp is not None:
        return Transport("tcp", _parse_tcp(tcp), option="--tcp")
    if tcp_raw is not None:
        return Transport("tcp-raw", _parse_tcp(tcp_raw, "--tcp-raw"), option="--tcp-raw")
    if connect is not None:
        return Transport("connect", _parse_tcp(connect, "--connect", host_required=True), option="--connect")
    if devices:
        return Transport("device", devices=devices, option="--device")
    return Transport()


def _network_options(command: Callable) -> Callable:
    """The options of a hermetic network (``ecemu.shell.dns.NetworkPolicy``)."""
    options = [
        click.option("--resolve", "resolve", multiple=True, metavar="NAME=ADDR[:PORT]",
                     help="Resolve NAME to ADDR for the module (and connect to PORT instead of the "
                          "module's, when given); repeatable; before any DNS."),
        click.option("--hosts-file", "hosts_file", type=click.Path(path_type=Path, dir_okay=False),
                     help="More names, hosts(5) style: ADDR[:PORT] NAME [NAME ...] per line."),
        click.option("--local-ntp", "local_ntp", multiple=True, metavar="NAME",
                     help="Answer AT+QNTP to NAME from the module clock, without a packet leaving "
                          "the machine; repeatable; '*' for every name."),
        click.option("--local-only", "local_only", is_flag=True,
                     help="Refuse every address outside loopback (and --allow): names not in the "
                          "hosts map fail as DNS failures, addresses as connect failures, each logged."),
        click.option("--allow", "allow", multiple=True, metavar="NET",
                     help="With --local-only: also allow this address or network (ADDR/PREFIX); repeatable."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _network_policy(resolve: tuple[str, ...], hosts_file: Path | None, local_ntp: tuple[str, ...],
                    local_only: bool, allow: tuple[str, ...]):
    """The policy the options ask for; a usage error (exit 2) naming the option otherwise."""
    from .shell.dns import NetworkPolicy, parse_network, parse_resolve, read_hosts_file

    for text in resolve:
        try:
            parse_resolve(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--resolve") from None
    for text in allow:
        try:
            parse_network(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--allow") from None
    if allow and not local_only:
        raise click.BadParameter("only means something with --local-only", param_hint="--allow")
    if hosts_file is not None:
        try:
            read_hosts_file(hosts_file)
        except OSError as exc:
            raise click.BadParameter(f"cannot read {hosts_file}: {exc.strerror or exc}", param_hint="--hosts-file") from None
        except (ValueError, UnicodeError) as exc:
            raise click.BadParameter(str(exc), param_hint="--hosts-file") from None
    return NetworkPolicy.build(resolve, hosts_file, local_ntp, local_only, allow)


def _load_profile_option(profile_name: str) -> Profile:
    try:
        return load_profile(profile_name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--profile") from None


@main.command()
@click.option("--profile", "profile_name", default=DEFAULT_PROFILE, show_default=True, metavar="NAME|FILE",
              help="Module profile (see `ecemu profiles`), or a TOML file of your own (it may start "
                   "from a shipped one: base = \"EC200M-CN\").")
@click.option("--link", type=click.Path(path_type=Path),
              help="Create a symbolic link at this path to the port; removed on exit.")
@click.option("--ufs", type=click.Path(path_type=Path, file_okay=False),
              help="Folder holding the module's file storage (UFS); a fresh temporary one when omitted.")
@click.option("--escape-guard-ms", default=1000, show_default=True, type=click.IntRange(0, 60000),
              help="Guard time of silence around +++ in transparent mode.")
@click.option("--tcp", "tcp", metavar="[HOST:]PORT",
              help="Serve the port over TCP as RFC 2217 instead of a pty (HOST defaults to 127.0.0.1).")
@click.option("--tcp-raw", "tcp_raw", metavar="[HOST:]PORT",
              help="Serve the port as raw TCP, every byte as it is (QEMU -chardev socket, ser2net raw, "
                   "socat); HOST defaults to 127.0.0.1.")
@click.option("--connect", "connect", metavar="HOST:PORT",
              help="Connect out to a raw TCP server (QEMU's or Renode's UART socket) and be the module "
                   "there, trying again until it listens.")
@click.option("--device", "devices", metavar="PATH", multiple=True, type=click.Path(path_type=Path),
              help="Be the module on an existing serial device: a USB-serial adapter or the pty of "
                   "QEMU, Renode or Zephyr; repeat for several modems.")
@click.option("--baud", "baud", default="115200", show_default=True, type=click.Choice(BAUD_CHOICES),
              help="The UART's rate at power-on (AT+IPR); a --device is set to it.")
@click.option("--line", "line", default="usb", show_default=True, type=click.Choice(["usb", "uart"]),
              help="usb: bytes move at memory speed, as over the module's USB port; uart: each byte takes "
                   "its time at AT+IPR's rate and AT+ICF's framing (115200 8N1: 86.8 us), both ways.")
@click.option("--control", "control", type=click.Path(path_type=Path), envvar=CONTROL_ENV,
              help=f"Path of the control socket (environment: {CONTROL_ENV}); default LINK.ctl, or one "
                   f"in a private temporary folder.")
@click.option("--trace", "trace", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
              help="Append a session trace (JSON lines) to this file; read it with `ecemu trace`. "
                   "'-': a readable transcript on standard output, live.")
@click.option("--keylog", "keylog", type=click.Path(path_type=Path, dir_okay=False),
              help="Write TLS keys in the NSS key log format (for Wireshark) to this file.")
@click.option("--scenario", "scenario_name", metavar="FILE|NAME",
              help="Fire the faults of a scenario file (see profiles/scenarios and `ecemu scenarios`).")
@click.option("--count", default=1, show_default=True, type=click.IntRange(1, 1000),
              help="Run this many independent modems in one process.")
@click.option("--boot", "boot", default=None, type=click.Choice(["on-open", "at-start"]),
              help="Power the module on when a host first opens the port (its boot URCs then reach "
                   "hosts that flush on open), or as soon as the emulator starts. Default: on-open; "
                   "at-start with --device (on-open there waits for the board's first byte).")
@click.option("--ready-fd", "ready_fd", type=click.IntRange(3, None), metavar="N",
              help="Write READY=1 to this open descriptor (then close it) once every port can be "
                   "opened; with NOTIFY_SOCKET set, systemd is told too.")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False))
@_network_options
def run(profile_name: str, link: Path | None, ufs: Path | None, escape_guard_ms: int, tcp: str | None,
        tcp_raw: str | None, connect: str | None, devices: tuple[Path, ...], baud: str, line: str,
        control: Path | None, trace: Path | None, keylog: Path | None, scenario_name: str | None, count: int,
        boot: str | None, ready_fd: int | None, log_level: str, resolve: tuple[str, ...], hosts_file: Path | None,
        local_ntp: tuple[str, ...], local_only: bool, allow: tuple[str, ...]) -> None:
    """Run emulated modules until SIGINT, SIGTERM or SIGHUP.

    On a terminal, a status line under the announcements shows whether a host has the port open,
    the mode, open connections and the bytes each way.
    """
    from .shell.link_lock import LinkInUse, LinkLock
    from .shell.loop import run_bounded
    from .shell.private_files import private_opener
    from .shell.readiness import check_ready_fd

    from .shell.trace import STDOUT

    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    profile = _load_profile_option(profile_name)
    network_policy = _network_policy(resolve, hosts_file, local_ntp, local_only, allow)
    transport = _transport(tcp, tcp_raw, connect, devices)
    if transport.kind == "device":
        if count not in (1, len(devices)):
            raise click.BadParameter(f"{len(devices)} devices for {count} modems; leave --count out", param_hint="--count")
        count = len(devices)
        if len(set(map(str, devices))) != len(devices):
            raise click.BadParameter("the same device twice", param_hint="--device")
    if boot is None:
        boot = "at-start" if transport.kind == "device" else "on-open"
    scenario = None
    if scenario_name is not None:
        from .scenario import ScenarioError, load_scenario

        try:
            scenario = load_scenario(scenario_name)
        except ScenarioError as exc:
            raise click.BadParameter(str(exc), param_hint="--scenario") from None
    if ufs is not None:
        _check_folder(ufs, "--ufs")
    if control is not None:
        _check_folder(control.parent, "--control")
    if trace is not None and str(trace) != STDOUT:
        _check_writable_file(trace, "--trace")
    if ready_fd is not None:
        try:
            check_ready_fd(ready_fd)
        except OSError as exc:
            raise click.BadParameter(f"cannot write to descriptor {ready_fd}: {exc.strerror or exc}",
                                     param_hint="--ready-fd") from None
    links = [_nth(count, index, link) for index in range(count)] if link is not None else []
    locks: list[LinkLock] = []
    cleanup: list[Path] = []
    keylog_file = None
    options: RunOptions | None = None
    try:
        for modem_link in links:
            lock = LinkLock(modem_link)
            try:
                lock.acquire()
            except LinkInUse as exc:
                raise click.BadParameter(str(exc), param_hint="--link") from None
            except OSError as exc:
                raise click.BadParameter(f"cannot use {modem_link}: {exc.strerror or exc}",
                                         param_hint="--link") from None
            locks.append(lock)
            if modem_link.exists() and not modem_link.is_symlink():
                raise click.BadParameter(f"{modem_link} exists and is not a symbolic link", param_hint="--link")
        if keylog is not None:
            try:
                keylog_file = open(keylog, "ab", opener=private_opener)
            except OSError as exc:
                raise click.BadParameter(f"cannot write {keylog}: {exc.strerror or exc}",
                                         param_hint="--keylog") from None
        temporary_ufs = ufs is None
        ufs_root = ufs if ufs is not None else Path(tempfile.mkdtemp(prefix="ecemu-ufs-"))
        if temporary_ufs:
            cleanup.append(ufs_root)
        controls, control_option = _control_paths(count, control, links, cleanup)
        modem_links: list[Path | None] = list(links) if links else [None] * count
        options = RunOptions(profile, ufs_root, modem_links, escape_guard_ms / 1000.0,
                             transport, count, controls, control_option, trace, keylog_file, scenario,
                             boot=boot, ready_fd=ready_fd, baud=int(baud), line=line,
                             network_policy=network_policy)
        run_bounded(_serve(options))
    finally:
        if options is not None:
            _print_coverage(options.coverages)
        for folder in cleanup:
            shutil.rmtree(folder, ignore_errors=True)
        if keylog_file is not None:
            keylog_file.close()
        for lock in reversed(locks):
            lock.release()


def _check_folder(folder: Path, option: str) -> None:
    """A folder the emulator will write into: created if missing, refused if it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.BadParameter(f"cannot create folder {folder}: {exc.strerror or exc}", param_hint=option) from None
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise click.BadParameter(f"cannot write into {folder}", param_hint=option)


def _check_writable_file(path: Path, option: str) -> None:
    """A private file (docs/reference/robustness.md "Private files"): created 0600 now if missing,
    refused if not ours."""
    from .shell.private_files import check_private

    try:
        check_private(path)
    except OSError as exc:
        raise click.BadParameter(f"cannot write {path}: {exc.strerror or exc}", param_hint=option) from None


def _control_paths(count: int, control: Path | None, links: list[Path],
                   cleanup: list[Path]) -> tuple[list[Path], str]:
    """The control socket of each modem, and the option it comes from (named in errors).

    Modem i's socket is named after its own link (``LINK-i.ctl``), so ``ecemu ctl --link LINK-i``
    finds it; an explicit ``--control PATH`` gives ``PATH-i``."""
    if control is not None:
        return [_nth(count, index, control) for index in range(count)], "--control"
    if links:
        return [modem_link.with_name(modem_link.name + ".ctl") for modem_link in links], "--link"
    control_dir = Path(tempfile.mkdtemp(prefix="ecemu-ctl-"))  # mode 0700
    cleanup.append(control_dir)
    return [_nth(count, index, control_dir / "control.sock") for index in range(count)], "--control"


def _print_coverage(coverages: list) -> None:
    """The coverage table of every modem of the run, on standard error, once a command came."""
    from .coverage import Coverage

    total = Coverage.merged(coverages)
    if total.seen:
        click.echo("\n".join(total.render()), err=True)


def _nth(count: int, index: int, path: Path) -> Path:
    """With --count above 1, modem N gets PATH-N; a single modem gets PATH itself."""
    if count == 1:
        return path
    return path.with_name(f"{path.name}-{index}")


@dataclass
class RunOptions:
    profile: Profile
    ufs_root: Path
    links: list[Path | None]
    escape_guard: float
    transport: Transport
    count: int
    controls: list[Path]
    control_option: str  # the option the control paths come from, named when one cannot be used
    trace: Path | None
    keylog_file: BinaryIO | None
    scenario: Scenario | None = None
    coverages: list = field(default_factory=list)  # ecemu.coverage.Coverage, one per modem
    boot: str = "on-open"
    network_policy: NetworkPolicy | None = None  # None: the open network
    ready_fd: int | None = None  # --ready-fd
    baud: int = 115200  # --baud
    line: str = "usb"  # --line


def _coverage_of(runner):
    from .coverage import Coverage

    coverage = Coverage()
    coverage.attach(runner.modem)
    return coverage


async def _serve(o: RunOptions) -> None:
    from .api import apply_network_policy
    from .control import Controller
    from .shell.control_socket import ControlServer
    from .shell.readiness import notify_ready, notify_stopping
    from .shell.trace import STDOUT
    from .shell.pty_link import pty_host
    from .shell.runner import ModemRunner

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    started: list = []  # runners and control servers, stopped in reverse
    runners: list = []
    status = None
    keylog_file = o.keylog_file
    try:
        for index in range(o.count):
            ufs = o.ufs_root if o.count == 1 else o.ufs_root / str(index)
            host = o.transport.host(index, o.baud)
            modem_link = o.links[index]
            scenario = copy.deepcopy(o.scenario)  # each modem plays its own copy
            runner = ModemRunner(o.profile.for_modem(index), ufs, host if host is not None else pty_host(modem_link),
                                 o.escape_guard, trace=o.trace, modem_index=index, scenario=scenario,
                                 control=Controller, boot=o.boot, baud=o.baud, line=o.line)
            control = ControlServer(o.controls[index], runner)
            try:
                runner.start()
            except OSError as exc:
                started.append(runner)  # what it opened before failing is closed
                raise _start_error(exc, o.transport.option or ("--link" if modem_link else None)) from None
            started.append(runner)
            runners.append(runner)
            if o.network_policy is not None:
                apply_network_policy(runner, o.network_policy)
            try:
                control.start()
            except OSError as exc:
                raise _start_error(exc, o.control_option) from None
            started.append(control)
            o.coverages.append(_coverage_of(runner))
            if keylog_file is not None:
                runner.modem.keylog = _keylog_writer(keylog_file)
            click.echo(f"port: {runner.host.address}")
            if modem_link is not None and host is None:
                click.echo(f"link: {modem_link}")
            click.echo(f"control: {control.path}")
        sys.stdout.flush()
        notify_ready(o.ready_fd, " ".join(f"port: {runner.host.address}" for runner in runners))
        # The status line needs standard output to itself: a terminal, not the live trace.
        if sys.stdout.isatty() and str(o.trace) != STDOUT:
            status = StatusLine(runners, sys.stdout)
            status.start(loop)
        await stop.wait()
        notify_stopping()
    finally:
        if status is not None:
            status.stop()
        for item in reversed(started):
            item.close() if hasattr(item, "close") else item.stop()


def _start_error(exc: OSError, option: str | None) -> click.ClickException:
    from .shell.device import DeviceError

    if isinstance(exc, DeviceError):
        return click.BadParameter(str(exc), param_hint=option)
    message = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    if option is None:
        return click.ClickException(message)
    return click.BadParameter(message, param_hint=option)


class StatusLine:
    """One line on the terminal, rewritten in place (CR, erase to the end) a few times a second:
    whether a host has the port open, the mode, open connections, bytes each way."""

    def __init__(self, runners: list, out):
        self.runners = runners
        self.out = out
        self._shown = ""
        self._handle: asyncio.TimerHandle | None = None
        self._log_handlers: list[logging.Handler] = []

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # A log line to the same terminal first clears the status line, which comes back under it
        # at the next update, instead of the two running into each other.
        self._log_handlers = [handler for handler in logging.getLogger().handlers
                              if isinstance(handler, logging.StreamHandler) and _isatty(handler.stream)]
        for handler in self._log_handlers:
            handler.addFilter(self._clear_for_log)
        self._update()

    def _clear_for_log(self, record: logging.LogRecord) -> bool:
        if self._shown:
            self._write("\r\x1b[K")
            self._shown = ""
        return True

    def _update(self) -> None:
        # Only while the emulator is the terminal's foreground job: started with `&` (picocom in
        # the same terminal, as in the README), or sent there with Ctrl+Z and `bg`, it keeps quiet
        # and takes the line up again after `fg`.
        if _in_foreground(self.out):
            text = self.text()
            if text != self._shown:
                self._write("\r" + text + "\x1b[K")
                self._shown = text
        else:
            self._shown = ""
        self._handle = self._loop.call_later(STATUS_INTERVAL, self._update)

    def _write(self, text: str) -> None:
        try:
            self.out.write(text)
            self.out.flush()
        except OSError:
            pass  # the terminal went away; SIGHUP follows

    def text(self) -> str:
        runners = self.runners
        attached = sum(_host_attached(runner) for runner in runners)
        connections = sum(len(runner.network.connections) for runner in runners)
        received = sum(runner.bytes_from_host for runner in runners)
        sent = sum(runner.bytes_to_host for runner in runners)
        if len(runners) == 1:
            host = "host attached" if attached else "no host"
            mode = f"{runners[0].modem.port.host.mode.value} mode"
        else:
            host = f"{attached} of {len(runners)} hosts attached"
            modes = sorted({runner.modem.port.host.mode.value for runner in runners})
            mode = "modes: " + ", ".join(modes)
        plural = "" if connections == 1 else "s"
        return (f"{host} | {mode} | {connections} connection{plural} | "
                f"host→module {_size(received)} | module→host {_size(sent)}")

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        for handler in self._log_handlers:
            handler.removeFilter(self._clear_for_log)
        if self._shown:
            self._write("\r\x1b[K")


def _in_foreground(stream) -> bool:
    """Whether this process's group is the foreground job of the terminal ``stream`` writes to; a
    terminal that is not this process's controlling terminal has no jobs: always foreground."""
    try:
        return os.tcgetpgrp(stream.fileno()) == os.getpgrp()
    except OSError:
        return True  # ENOTTY: not our controlling terminal
    except (AttributeError, ValueError):
        return False


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _host_attached(runner) -> bool:
    return runner.has_host


def _keylog_writer(keylog_file: BinaryIO) -> Callable[[bytes], None]:
    """Each NSS key log line to the file, at once (a capture tool reads it while the run goes on)."""
    def write(line: bytes) -> None:
        keylog_file.write(line + b"\n")
        keylog_file.flush()
    return write


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "kB", "MB"):
        if size < 1000 or unit == "MB":
            return f"{count} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


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
    from .demo import run_demo

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
@click.option("--cert", "cert", default="rsa", show_default=True, type=click.Choice(SERVER_CERTIFICATES),
              help="The certificate served, from the test PKI: rsa or ecdsa (good), or one that a "
                   "verifying client must refuse (see certs/README.md).")
def echo_server(port: int, ca_path: Path | None, cert: str) -> None:
    """A TLS echo server on 127.0.0.1 with the test PKI, until SIGINT, SIGTERM or SIGHUP.

    --ca writes the CA the firmware is meant to trust whatever --cert serves, so a refused
    connection is refused for the certificate's own defect.
    """
    import threading

    from .echo_server import TlsEchoServer

    stop = threading.Event()
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda *_: stop.set())
    if ca_path is not None:
        _check_writable_file(ca_path, "--ca")
    try:
        server = TlsEchoServer(port=port, cert=cert)
    except OSError as exc:
        raise click.BadParameter(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}",
                                 param_hint="--port") from None
    with server:
        click.echo(f"port: {server.port}")
        click.echo(f"cert: {cert}")
        if ca_path is not None and server.ca_pem is not None:  # always made with the test PKI's CA
            write_private(ca_path, server.ca_pem)
            click.echo(f"ca: {ca_path}")
        sys.stdout.flush()
        stop.wait()


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--socket", "socket_path", type=click.Path(path_type=Path), envvar=CONTROL_ENV,
              help=f"The control socket `ecemu run` announced (environment: {CONTROL_ENV}).")
@click.option("--link", type=click.Path(path_type=Path),
              help="The port link of the modem (`ecemu run --link`; with --count, LINK-i): uses LINK.ctl.")
@click.option("--list", "list_ops", is_flag=True, help="List the operations, their arguments and bounds.")
@click.argument("operation", required=False)
@click.argument("arguments", nargs=-1)
def ctl(socket_path: Path | None, link: Path | None, list_ops: bool, operation: str | None,
        arguments: tuple[str, ...]) -> None:
    """Control a running emulator: ecemu ctl --link LINK OPERATION [NAME=VALUE ...].

    Arguments out of their bounds (see --list) are refused here, with exit status 2.
    """
    import json

    from .control import OPERATIONS, ControlError
    from .shell.control_socket import request

    if list_ops or operation is None:
        for name, listed in sorted(OPERATIONS.items()):
            params = " ".join(p.name.replace("_", "-") + ("" if p.required else f"={p.default}")
                              for p in listed.parameters)
            click.echo(f"{name} {params}".rstrip() + f"\n    {listed.summary}")
            for param in listed.parameters:
                click.echo(f"    {param.describe().replace('_', '-')}")
        return
    if link is not None:
        socket_path = link.with_name(link.name + ".ctl")
    if socket_path is None:
        raise click.UsageError("give --link PATH or --socket PATH (announced by `ecemu run` as control:)")
    args = {}
    for item in arguments:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.UsageError(f"arguments are NAME=VALUE, not {item!r}")
        args[name.replace("-", "_")] = value
    op = OPERATIONS.get(operation)
    if op is None:
        raise click.BadParameter(f"unknown operation {operation!r}; known: {', '.join(sorted(OPERATIONS))}",
                                 param_hint="OPERATION")
    try:
        op.convert(args)
    except ControlError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        answer = request(socket_path, operation, args)
    except OSError as exc:
        raise click.ClickException(f"cannot reach {socket_path}: {exc.strerror or exc}") from None
    if not answer.get("ok"):
        raise click.ClickException(answer.get("error", "failed"))
    if answer.get("result") is not None:
        click.echo(json.dumps(answer["result"], indent=2))


@main.command()
@click.argument("file", type=click.File("r", encoding="utf-8", errors="replace"))
@click.option("--summary", is_flag=True,
              help="Print the coverage table (each command, its count and results) instead of the transcript.")
@click.option("--html", "html_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the session as a sequence diagram to this self-contained HTML file.")
def trace(file, summary: bool, html_path: Path | None) -> None:
    """Show a session trace written with `ecemu run --trace`: a timed transcript, the coverage table
    (--summary) or a sequence diagram (--html)."""
    from .shell.trace import read_entries, render

    if not summary and html_path is None:
        for line in render(file):
            click.echo(line)
        return
    entries = list(read_entries(file))
    if summary:
        from .coverage import coverage_of_trace

        for line in coverage_of_trace(entries).render():
            click.echo(line)
    if html_path is not None:
        from .trace_html import render_html

        try:
            write_private(html_path, render_html(entries, title=Path(file.name).name))
        except OSError as exc:
            raise click.BadParameter(f"cannot write {html_path}: {exc.strerror or exc}", param_hint="--html") from None
        click.echo(f"html: {html_path}")


@main.command()
def profiles() -> None:
    """List the module profiles."""
    for name in available_profiles():
        click.echo(name)


@main.command()
def scenarios() -> None:
    """List the scenarios shipped in profiles/scenarios, with what each reproduces."""
    from .scenario import available_scenarios, load_scenario

    for name in available_scenarios():
        click.echo(f"{name}\n    {load_scenario(name).description}")


@main.command()
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
def certs(folder: Path) -> None:
    """Write the test PKI (CA, server, client and broken certificates) into FOLDER."""
    from .pki import write_test_pki

    _check_folder(folder, "FOLDER")
    try:
        written = write_test_pki(folder)
    except OSError as exc:
        raise click.BadParameter(f"cannot write into {folder}: {exc.strerror or exc}", param_hint="FOLDER") from None
    for name, path in sorted(written.items()):
        click.echo(f"{name}: {path}")


@main.command("http-server")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port on 127.0.0.1 for HTTP; 0 picks a free one.")
@click.option("--tls-port", default=8443, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port on 127.0.0.1 for HTTPS (the test PKI); 0 picks a free one.")
@click.option("--ca", "ca_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the CA certificate of the HTTPS chain here, to upload for seclevel 1.")
def http_server(port: int, tls_port: int, ca_path: Path | None) -> None:
    """HTTP and HTTPS servers on 127.0.0.1 for AT+QHTTP* (ecemu.http_server), until SIGINT, SIGTERM or SIGHUP."""
    import threading

    from .http_server import HttpTestServer

    stop = threading.Event()
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda *_: stop.set())
    if ca_path is not None:
        _check_writable_file(ca_path, "--ca")
    try:
        plain, secure = HttpTestServer(port=port), HttpTestServer(tls=True, port=tls_port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1: {exc}") from None
    with plain, secure:
        click.echo(f"http: {plain.url}\nhttps: {secure.url}")
        if ca_path is not None and secure.ca_pem is not None:
            write_private(ca_path, secure.ca_pem)
            click.echo(f"ca: {ca_path}")
        sys.stdout.flush()
        stop.wait()


@main.command("mqtt-broker")
@click.option("--port", default=1883, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port on 127.0.0.1 for MQTT; 0 picks a free one.")
@click.option("--tls-port", default=8883, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port on 127.0.0.1 for MQTT over TLS (the test PKI); 0 picks a free one.")
@click.option("--client-certificates", is_flag=True, help="The TLS port asks for a client certificate (seclevel 2).")
@click.option("--ca", "ca_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the CA certificate of the TLS chain here, to upload for seclevel 1.")
def mqtt_broker(port: int, tls_port: int, client_certificates: bool, ca_path: Path | None) -> None:
    """A Mosquitto broker on 127.0.0.1 for AT+QMT* (ecemu.mqtt_broker), until SIGINT, SIGTERM or SIGHUP.

    Mosquitto runs as a child process that ends with this command, however it ends (killed
    included); a port another process already listens on is refused, never shared.
    """
    import threading

    from .mqtt_broker import BrokerUnavailable, MqttBroker, PortInUse

    stop = threading.Event()
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda *_: stop.set())
    if ca_path is not None:
        _check_writable_file(ca_path, "--ca")
    try:
        broker = MqttBroker(port=port, tls_port=tls_port, client_certificates=client_certificates,
                            die_with_parent=True).start()
    except PortInUse as exc:
        raise click.BadParameter(str(exc), param_hint="--tls-port" if exc.port == tls_port else "--port") from None
    except (BrokerUnavailable, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    try:
        click.echo(f"mqtt: {broker.host}:{broker.port}\nmqtts: {broker.host}:{broker.tls_port}")
        if ca_path is not None:
            write_private(ca_path, broker.ca_pem)
            click.echo(f"ca: {ca_path}")
        sys.stdout.flush()
        stop.wait()
    finally:
        broker.close()


# --- field logs: ecemu record, replay, check, convert ----------------------------------------

def _read_options(function):
    """The options that say how to read a log whose own lines cannot say it."""
    options = [
        click.option("--format", "log_format", default="auto", show_default=True,
                     type=click.Choice(["auto", "session", "trace", "transcript", "capture"]),
                     help="The log's format; auto tells them apart by their first lines."),
        click.option("--host-marker", metavar="TEXT",
                     help="In a transcript: the text before what the host sent (found in the log by default)."),
        click.option("--module-marker", metavar="TEXT",
                     help="In a transcript: the text before what the module said."),
        click.option("--host-line-end", default="cr", show_default=True, type=click.Choice(["cr", "crlf"]),
                     help="In a transcript that does not show CR and LF: what ended the host's lines."),
        click.option("--capture-host", type=click.Choice(["<", ">"]),
                     help="In a capture: the sign of the host's bytes (socat: > by default; interceptty: <)."),
        click.option("--strict", is_flag=True, help="A transcript line that cannot be placed is an error, not a warning."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _make_read_options(log_format, host_marker, module_marker, host_line_end, capture_host, strict):
    from .sessionlog import ReadOptions

    return ReadOptions(host_marker=host_marker, module_marker=module_marker,
                       host_line_end=b"\r\n" if host_line_end == "crlf" else b"\r",
                       capture_host=capture_host, strict=strict, format=log_format)


def _warnings_to_stderr(info) -> None:
    for number, message in info.warnings:
        click.echo(f"line {number}: warning: {message}", err=True)
    if info.warning_count > len(info.warnings):
        click.echo(f"... and {info.warning_count - len(info.warnings)} more warnings", err=True)


@main.command()
@click.option("--device", required=True, type=click.Path(path_type=Path),
              help="The real module's port (e.g. /dev/ttyUSB2), opened in raw mode.")
@click.option("--baud", default=115200, show_default=True, type=int,
              help="The device's line speed (a USB port or a pty ignores it).")
@click.option("--link", type=click.Path(path_type=Path),
              help="The host side: a pty, with a symbolic link at this path (removed on exit).")
@click.option("--tcp-raw", "tcp_raw", metavar="[HOST:]PORT",
              help="The host side: a raw TCP port instead (HOST defaults to 127.0.0.1; port 0 picks one).")
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The session file to write (created 0600).")
@click.option("--module", "module_name", metavar="NAME",
              help="The module's model or profile, written in the session's header (e.g. EC800M-CN).")
def record(device: Path, baud: int, link: Path | None, tcp_raw: str | None, out: Path,
           module_name: str | None) -> None:
    """Record a session through a real module: a transparent tap between a host and --device.

    Every byte each way is passed on unchanged and written to --out with its time. Either side
    may close and reopen. Runs until SIGINT, SIGTERM or SIGHUP; `ecemu replay` and `ecemu check`
    read the file.
    """
    from .record import Recorder
    from .shell.device import DeviceError

    if (link is None) == (tcp_raw is None):
        raise click.UsageError("give the host side: --link PATH or --tcp-raw [HOST:]PORT (one of them)")
    tcp_address = None
    if tcp_raw is not None:
        tcp_address = _parse_tcp(tcp_raw)
    _check_writable_file(out, "--out") if out.exists() else _check_folder(out.parent, "--out")
    if link is not None and link.exists() and not link.is_symlink():
        raise click.BadParameter(f"{link} exists and is not a symbolic link", param_hint="--link")
    headers = {"module": module_name} if module_name else {}

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, stop.set)
        try:
            recorder = Recorder(device, out, link=link, tcp=tcp_address, baud=baud, headers=headers)
        except DeviceError as exc:
            raise click.BadParameter(f"cannot open {exc}", param_hint="--device") from None
        except OSError as exc:
            raise click.BadParameter(f"cannot write {out}: {exc.strerror or exc}", param_hint="--out") from None
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--baud") from None
        try:
            await recorder.start()
            click.echo(f"port: {recorder.address}")
            if link is not None:
                click.echo(f"link: {link}")
            click.echo(f"out: {out}")
            sys.stdout.flush()
            await stop.wait()
        finally:
            recorder.close()

    asyncio.run(serve())


@main.command()
@click.argument("log_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--link", type=click.Path(path_type=Path),
              help="Create a symbolic link at this path to the port; removed on exit.")
@click.option("--on-divergence", "on_divergence", default="stop", show_default=True,
              type=click.Choice(["stop", "emulate"]),
              help="When the host departs from the log: stop with a report, or carry on as the emulated module.")
@click.option("--profile", "profile_name", help="The module to emulate after a divergence (default: the log's).")
@_read_options
def replay(log_file: Path, link: Path | None, on_divergence: str, profile_name: str | None, log_format: str,
           host_marker, module_marker, host_line_end, capture_host, strict) -> None:
    """Play the module's side of a recorded session on a port.

    When the host sends what the log's host sent next, the module answers with the logged bytes
    at the logged delays. Ends when the log is played and the host has closed the port (exit 0),
    when the host departs from it with --on-divergence stop (a report on standard error, exit 1),
    or on SIGINT, SIGTERM or SIGHUP.
    """
    from .replay import ReplayServer
    from .sessionlog import LogError
    from .sessionlog.modules import ModuleMismatch

    if link is not None and link.exists() and not link.is_symlink():
        raise click.BadParameter(f"{link} exists and is not a symbolic link", param_hint="--link")
    options = _make_read_options(log_format, host_marker, module_marker, host_line_end, capture_host, strict)
    reports: list[str] = []

    async def serve() -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, stop.set)
        def diverged(text: str) -> None:
            reports.append(text)
            click.echo(f"ecemu replay: {text}", err=True)

        server = ReplayServer(log_file, link, on_divergence, profile_name, options, diverged)
        try:
            server.start()
            click.echo(f"port: {server.port}")
            if link is not None:
                click.echo(f"link: {link}")
            sys.stdout.flush()
            done = asyncio.ensure_future(server.done.wait())
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait([done, stopped], return_when=asyncio.FIRST_COMPLETED)
            for task in (done, stopped):
                task.cancel()
        finally:
            server.close()
        _warnings_to_stderr(server.info)
        if reports and on_divergence == "stop":
            return 1
        if server.engine.finished:
            click.echo(f"played to the end: {server.engine.host_records_matched} host lines matched", err=True)
        return 0

    from .sessionlog import validate

    try:
        # The whole log is read once first: a bad line is refused now, not when the host reaches it.
        validate(log_file, options)
        status = asyncio.run(serve())
    except (LogError, ModuleMismatch) as exc:
        click.echo(f"ecemu replay: {exc}", err=True)
        sys.exit(2)
    sys.exit(status)


@main.command()
@click.argument("log_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--profile", "profile_name", help="The module to check against (default: the log's, or its nearest).")
@click.option("--rules", "rule_files", multiple=True, type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="More normalising rules: a TOML file of [[rule]] tables with pattern and replace.")
@click.option("--tolerance-ms", default=1000, show_default=True, type=click.IntRange(0, 600000),
              help="How much sooner or later than in the log a line may come.")
@click.option("--no-timing", is_flag=True, help="Compare bytes and order only, not times.")
@_read_options
def check(log_file: Path, profile_name: str | None, rule_files: tuple[Path, ...], tolerance_ms: int,
          no_timing: bool, log_format: str, host_marker, module_marker, host_line_end, capture_host, strict) -> None:
    """Play a log's host side against the emulator and print every difference.

    Exit status 0 when the emulator answered as the module did, 1 when it did not, 2 when the
    log cannot be checked (unreadable, of another module, a bad rule).
    """
    from .check import CheckOptions, check_log, load_rules
    from .sessionlog import LogError
    from .sessionlog.modules import ModuleMismatch
    from .sessionlog.rules import RuleError

    options = _make_read_options(log_format, host_marker, module_marker, host_line_end, capture_host, strict)
    from .sessionlog import validate

    try:
        rules = load_rules(list(rule_files))
        validate(log_file, options)  # a bad line is refused before the emulator starts
        report = check_log(log_file, CheckOptions(profile=profile_name, rules=rules, tolerance=tolerance_ms / 1000,
                                                  timing=not no_timing, read_options=options))
    except (LogError, ModuleMismatch, RuleError) as exc:
        click.echo(f"ecemu check: {exc}", err=True)
        sys.exit(2)
    for line in report.render():
        click.echo(line)
    sys.exit(0 if report.passed else 1)


@main.command()
@click.argument("log_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The session file to write; written whole or not at all.")
@click.option("--header", "headers", multiple=True, metavar="KEY=VALUE",
              help="A header for the session (module=EC800M-CN, source=URL, firmware=...).")
@_read_options
def convert(log_file: Path, out: Path, headers: tuple[str, ...], log_format: str, host_marker, module_marker,
            host_line_end, capture_host, strict) -> None:
    """Convert a log (a trace, a transcript, a capture) into the session format.

    Lines that cannot be placed are listed on standard error with their numbers.
    """
    from .sessionlog import LogError, SessionWriter, open_log

    extra: dict[str, str] = {}
    for item in headers:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"headers are KEY=VALUE, not {item!r}", param_hint="--header")
        extra[key.strip()] = value.strip()
    options = _make_read_options(log_format, host_marker, module_marker, host_line_end, capture_host, strict)
    _check_folder(out.parent, "--out")
    partial = out.with_name(f".{out.name}.partial")
    try:
        with open_log(log_file, options=options) as log, open(partial, "wb") as handle:
            writer = SessionWriter(handle, {**log.info.headers, **extra}, flush=False)
            for rule in log.info.normalise:
                writer.comment(f"normalise: {rule}")
            count = 0
            for record in log.records():
                writer.write(record)
                count += 1
        os.replace(partial, out)
    except LogError as exc:
        partial.unlink(missing_ok=True)
        click.echo(f"ecemu convert: {exc}", err=True)
        sys.exit(2)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _warnings_to_stderr(log.info)
    click.echo(f"{out}: {count} records ({log.info.format}, line ends {log.info.line_ends})")
