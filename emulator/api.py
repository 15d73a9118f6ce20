"""The Python API: run an emulator in a background thread.

    with Emulator(profile="EC800N-CN", ufs=path) as modem:
        port = serial.Serial(modem.port)
        modem.control.fail_opens(count=1, error="dns")

The emulator runs on its own asyncio loop in a daemon thread; ``call`` runs a function on that
loop (with the runner) and returns its result, which is how the control operations reach it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import shutil
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping

from .control import OPERATIONS, Controller, Operation, controller_of
from .profile import DEFAULT_PROFILE, Profile, load_profile
from .shell.dns import NetworkPolicy
from .shell.link_lock import LinkLock
from .shell.loop import run_bounded
from .shell.private_files import private_opener
from .shell.runner import ModemRunner

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
# wait_for_boot returns as soon as the boot URCs are out (well under a second); its timeout only
# bounds a failure, so it is generous enough for a machine under heavy load.
BOOT_TIMEOUT = 30.0
PRIVATE_LINK_NAME = "modem"

log = logging.getLogger(__name__)


def apply_network_policy(runner: ModemRunner, policy: NetworkPolicy) -> None:
    """The user's network rules on a started runner; the emulator's SNTP answers read its modem's
    clock (AT+CCLK), whichever power cycle it is in."""
    runner.network.use_policy(policy, lambda: runner.modem.clock.utc(runner.loop.time()).timestamp())


def private_link() -> Path:
    """Where a port link of one's own goes: ``modem`` in a new folder only this user can enter
    (0700), so nobody else can open, replace or plant the link. Remove it with ``remove_private_link``."""
    return Path(tempfile.mkdtemp(prefix="ecemu-port-")) / PRIVATE_LINK_NAME


def remove_private_link(link: Path) -> None:
    """The folder of a ``private_link()`` and whatever is left in it."""
    shutil.rmtree(link.parent, ignore_errors=True)


def run_on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[[], Any], timeout: float) -> Any:
    """Run ``fn()`` on ``loop`` (running in another thread) and return its result or raise its
    exception here."""
    future: Future = Future()

    def run() -> None:
        try:
            result = fn()
        except BaseException as exc:
            future.set_exception(exc)
            return
        if isinstance(result, asyncio.Future):  # an operation that waits (wait_ri)
            result.add_done_callback(lambda done: _settle(future, done))
        else:
            future.set_result(result)

    loop.call_soon_threadsafe(run)
    return future.result(timeout)


class Emulator:
    """One emulated module on a pty of its own, running in a background thread.

    ``profile``: the module (``ecemu profiles``); ``ufs``: the folder of its file storage (a
    temporary one, removed at stop, when omitted); ``link``: a symbolic link to the port, locked
    against a second emulator (omitted: a link in a private temporary folder, removed at stop;
    ``False``: no link, the bare pty); ``escape_guard_ms``: the guard time of ``+++``; ``scenario``,
    ``trace``, ``keylog``: as ``ecemu run --scenario/--trace/--keylog``; ``boot``: as
    ``ecemu run --boot`` ("on-open", the default, or "at-start"; "at-start" with a device). A
    hermetic network, as ``ecemu
    run``'s options of the same names: ``resolve`` (``["NAME=ADDR[:PORT]", ...]`` or ``{NAME:
    "ADDR[:PORT]"}``), ``hosts_file``, ``local_ntp`` (names whose AT+QNTP the emulator answers from
    the module clock; ``"*"`` for all), ``local_only`` (no connection outside loopback and the
    ``allow`` networks). ``profile`` is a name or a ``Profile``; ``identity`` overrides fields of
    its ``[identity]`` table (``{"imei": "..."}``).

    Where the port is: a pty of its own behind the link, a fresh one for each host that opens it
    (the default), so a host that closes the port mid-answer never hands its unread bytes to the
    next; ``device``: an existing serial device or
    another program's pty (``ecemu run --device``), at ``baud`` (AT+IPR's rate at power-on);
    ``tcp_raw``: a raw TCP server on ``(host, port)`` (port 0 picks one); ``connect``: a raw TCP
    connection out to ``(host, port)``, tried until it listens. ``port`` is then the device's path,
    ``socket://HOST:PORT`` or ``tcp-connect://HOST:PORT``. ``line``: "usb" (the default: bytes at
    memory speed) or "uart" (each byte takes its time at AT+IPR's rate, ``ecemu run --line uart``).

    Use it as a context manager (or ``start()``/``stop()``). ``port`` is the device path to open,
    ``wait_for_boot()`` waits for the boot URCs, and ``control`` has one method per control
    operation (``ecemu ctl --list``): ``modem.control.signal(rssi=5)``.
    """

    def __init__(self, profile: str | Profile = DEFAULT_PROFILE, ufs: str | Path | None = None,
                 link: str | Path | Literal[False] | None = None, escape_guard_ms: int = 1000,
                 scenario: str | Path | None = None, trace: str | Path | None = None,
                 keylog: str | Path | None = None, boot: str | None = None, device: str | Path | None = None,
                 baud: int = 115200, tcp_raw: tuple[str, int] | None = None,
                 connect: tuple[str, int] | None = None, line: str = "usb",
                 resolve: Iterable[str] | Mapping[str, str] = (), hosts_file: str | Path | None = None,
                 local_ntp: Iterable[str] = (), local_only: bool = False, allow: Iterable[str] = (),
                 identity: Mapping[str, str] | None = None):
        self.profile = profile if isinstance(profile, Profile) else load_profile(profile)
        if identity:
            self.profile = self.profile.with_identity(**identity)
        self.network_policy = NetworkPolicy.build(
            dict(resolve) if isinstance(resolve, Mapping) else list(resolve), hosts_file,
            list(local_ntp), local_only, list(allow))
        if sum(x is not None for x in (device, tcp_raw, connect)) > 1:
            raise ValueError("device, tcp_raw and connect are different ports; give one")
        self.device = Path(device) if device is not None else None
        self.tcp_raw = tcp_raw
        self.connect = connect
        self.baud = baud
        self.line = line
        self.boot = boot if boot is not None else ("at-start" if device is not None else "on-open")
        self.scenario = None
        if scenario is not None:
            from .scenario import load_scenario

            self.scenario = load_scenario(scenario)
        self.trace = Path(trace) if trace is not None else None
        self.keylog = Path(keylog) if keylog is not None else None
        self._own_ufs = ufs is None
        self.ufs = Path(ufs) if ufs is not None else Path(tempfile.mkdtemp(prefix="ecemu-ufs-"))
        # No link given: start() makes a private one (below), unless the bare pty was asked for
        # or the port is not a pty at all.
        self._private_link = link is None and device is None and tcp_raw is None and connect is None
        self.link = Path(link) if link is not None and link is not False else None
        self.escape_guard = escape_guard_ms / 1000.0
        self.runner: ModemRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._booted = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._closers: list[Callable[[], None]] = []

    @property
    def port(self) -> str:
        """Where the host opens the module: the link (a fresh pty behind it for each opener; a
        private one unless ``link`` named it), the pty slave's path (``/dev/pts/5``) with
        ``link=False``, the device, or the TCP address."""
        if self.runner is None or not self._ready.is_set():
            raise RuntimeError("the emulator is not running")
        return self.runner.host.address

    def start(self) -> "Emulator":
        """Start the emulator; once this returns, the port exists and a host may open it."""
        if self._private_link and self.link is None:
            self.link = private_link()
        self._thread = threading.Thread(target=self._run, name="ecemu", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            self.stop()
            raise RuntimeError("the emulator did not start in time")
        if self._error is not None:
            self.stop()  # its folders
            raise RuntimeError(f"the emulator failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        run_bounded(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        # A private link needs no lock: nobody else can reach its folder.
        lock = LinkLock(self.link) if self.link is not None and not self._private_link else None
        try:
            if lock is not None:
                lock.acquire()
                self._closers.append(lock.release)
            runner = self.runner = ModemRunner(self.profile, self.ufs, self._host_link(), self.escape_guard,
                                               trace=self.trace, scenario=self.scenario,
                                               control=Controller, boot=self.boot, baud=self.baud,
                                               line=self.line)
            runner.on_booted = self._booted.set
            runner.start()
            apply_network_policy(runner, self.network_policy)
            if self.keylog is not None:
                keylog_file = open(self.keylog, "ab", opener=private_opener)
                self._closers.append(keylog_file.close)

                def write_keylog(line: bytes) -> None:
                    keylog_file.write(line + b"\n")
                    keylog_file.flush()

                runner.modem.keylog = write_keylog
        except BaseException as exc:  # reported to start()
            self._error = exc
            if self.runner is not None:
                self.runner.stop()  # what it opened before failing
            for close in self._closers:
                close()
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            runner.stop()
            for close in reversed(self._closers):
                close()

    def _host_link(self):
        if self.device is not None:
            from .core.uart import LineFormat
            from .shell.device import DeviceHost

            return DeviceHost(self.device, LineFormat(self.baud))
        from .shell.tcp_host import RawTcpClient, RawTcpServer

        if self.tcp_raw is not None:
            return RawTcpServer(*self.tcp_raw)
        if self.connect is not None:
            return RawTcpClient(*self.connect)
        from .shell.pty_link import pty_host

        return pty_host(self.link)  # a pty of its own (one per opener of the link)

    def call(self, fn: Callable[[ModemRunner], Any], timeout: float = 10.0) -> Any:
        """Run ``fn(runner)`` on the emulator's loop and return its result."""
        runner, loop = self.runner, self._loop
        if runner is None or loop is None:
            raise RuntimeError("the emulator is not running")
        return run_on_loop(loop, lambda: fn(runner), timeout)

    def wait_for_boot(self, timeout: float = BOOT_TIMEOUT) -> None:
        """Return once the module has printed its boot URCs (it then answers at once); ``timeout``
        only bounds a module that never boots.

        With ``boot="on-open"`` the module powers on when a host first opens the port; a module
        no host has opened yet is powered on by this call, so waiting first and opening after
        works as with ``boot="at-start"`` (the boot URCs then wait in the port, and an opener
        that flushes its input never sees them). To see ``RDY``, open the port first."""
        if not self._booted.is_set():
            self.call(lambda runner: runner.power_on())
        if not self._booted.wait(timeout):
            raise TimeoutError("the module did not finish booting")

    @property
    def control(self) -> "ControlProxy":
        """The control operations (``ecemu ctl --list``) as methods: ``modem.control.signal(rssi=5)``.

        An operation's method is its name with ``_`` for ``-`` (``fail-opens``: ``fail_opens``);
        ``help(modem.control)`` lists them with their arguments and bounds.
        """
        return ControlProxy(self)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the emulator and end its thread, within ``timeout`` seconds whatever it is doing
        (a host writing, connections open, a flood in flight)."""
        thread = self._thread
        if self._loop is not None and self._stopped is not None and thread is not None and thread.is_alive():
            try:
                self._loop.call_soon_threadsafe(self._stopped.set)
            except RuntimeError:
                pass  # the loop has just closed: the thread is ending
            thread.join(timeout)
            if thread.is_alive():
                log.error("the emulator's thread did not end within %.0f s of the stop", timeout)
        if self._own_ufs:
            shutil.rmtree(self.ufs, ignore_errors=True)
        if self._private_link and self.link is not None:
            remove_private_link(self.link)

    @property
    def running(self) -> bool:
        """The emulator's thread is alive: started and not yet ended (``stop`` ends it)."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _settle(future: Future, done: asyncio.Future) -> None:
    """The thread's future gets what the loop's future came to."""
    if done.cancelled():
        future.set_exception(RuntimeError("the emulator stopped"))
    elif done.exception() is not None:
        future.set_exception(done.exception())
    else:
        future.set_result(done.result())


class ControlProxy:
    """The control operations of one running emulator, one method each (``ecemu ctl --list``).

    Each method runs on the emulator's loop and returns the operation's result; an argument out of
    its bounds, or an operation that cannot be carried out, raises ``ecemu.control.ControlError``.
    """

    def __init__(self, emulator: Emulator):
        self._emulator = emulator

    def _invoke(self, name: str, arguments: dict[str, Any]) -> Any:
        waits = arguments.get("seconds", 10.0) if name == "wait-ri" else 0.0
        waits = min(float(waits), 3600.0) if isinstance(waits, (int, float)) and waits > 0 else 0.0
        return self._emulator.call(lambda runner: controller_of(runner).invoke(name, arguments), timeout=10.0 + waits)

    def __getattr__(self, name: str) -> Any:
        known = ", ".join(sorted(op.python_name for op in OPERATIONS.values()))
        raise AttributeError(f"no control operation {name!r}; known: {known}")


def _method_for(op: Operation) -> Callable[..., Any]:
    """A method of ControlProxy with the operation's own signature and documentation."""
    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for param in op.parameters:
        parameters.append(inspect.Parameter(param.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                            default=param.default, annotation=param.kind))
    signature = inspect.Signature(parameters)

    def method(self: ControlProxy, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        return self._invoke(op.name, {k: v for k, v in bound.arguments.items() if k != "self"})

    arguments = "\n".join(f"    {param.describe()}" for param in op.parameters)
    method.__name__ = op.python_name
    method.__qualname__ = f"ControlProxy.{op.python_name}"
    method.__dict__["__signature__"] = signature  # what inspect.signature() reads
    method.__doc__ = f"{op.doc}\n\n``ecemu ctl {op.name}``" + (f"; arguments:\n{arguments}" if arguments else "")
    return method


for _op in OPERATIONS.values():
    setattr(ControlProxy, _op.python_name, _method_for(_op))
