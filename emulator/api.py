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
import shutil
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

from ecemu.control import OPERATIONS, Controller, Operation, controller_of
from ecemu.profile import DEFAULT_PROFILE, load_profile
from ecemu.shell.link_lock import LinkLock
from ecemu.shell.private_files import private_opener
from ecemu.shell.runner import ModemRunner

START_TIMEOUT = 10.0



def run_on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[[], Any], timeout: float) -> Any:
    """Run ``fn()`` on ``loop`` (running in another thread) and return its result or raise its
    exception here."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:
            future.set_exception(exc)

    loop.call_soon_threadsafe(run)
    return future.result(timeout)

class Emulator:
    """One emulated module on a pty of its own, running in a background thread.

    ``profile``: the module (``ecemu profiles``); ``ufs``: the folder of its file storage (a
    temporary one, removed at stop, when omitted); ``link``: a symbolic link to the port, locked
    against a second emulator; ``escape_guard_ms``: the guard time of ``+++``; ``scenario``,
    ``trace``, ``keylog``: as ``ecemu run --scenario/--trace/--keylog``; ``boot``: as
    ``ecemu run --boot`` ("on-open", the default, or "at-start").

    Use it as a context manager (or ``start()``/``stop()``). ``port`` is the device path to open,
    ``wait_for_boot()`` waits for the boot URCs, and ``control`` has one method per control
    operation (``ecemu ctl --list``): ``modem.control.signal(rssi=5)``.
    """

    def __init__(self, profile: str = DEFAULT_PROFILE, ufs: str | Path | None = None,
                 link: str | Path | None = None, escape_guard_ms: int = 1000,
                 scenario: str | Path | None = None, trace: str | Path | None = None,
                 keylog: str | Path | None = None, boot: str = "on-open"):
        self.profile = load_profile(profile)
        self.boot = boot
        self.scenario = None
        if scenario is not None:
            from ecemu.scenario import load_scenario

            self.scenario = load_scenario(scenario)
        self.trace = Path(trace) if trace is not None else None
        self.keylog = Path(keylog) if keylog is not None else None
        self._own_ufs = ufs is None
        self.ufs = Path(ufs) if ufs is not None else Path(tempfile.mkdtemp(prefix="ecemu-ufs-"))
        self.link = Path(link) if link is not None else None
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
        """The device path of the pty slave, e.g. ``/dev/pts/5``."""
        if self.runner is None or not self._ready.is_set():
            raise RuntimeError("the emulator is not running")
        return self.runner.host.address

    def start(self) -> "Emulator":
        self._thread = threading.Thread(target=self._run, name="ecemu", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError("the emulator did not start in time")
        if self._error is not None:
            raise RuntimeError(f"the emulator failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        lock = LinkLock(self.link) if self.link is not None else None
        try:
            if lock is not None:
                lock.acquire()
                self._closers.append(lock.release)
            runner = self.runner = ModemRunner(self.profile, self.ufs, self.link, self.escape_guard,
                                               trace=self.trace, scenario=self.scenario, control=Controller,
                                               boot=self.boot)
            runner.on_booted = self._booted.set
            runner.start()
            if self.keylog is not None:
                keylog_file = open(self.keylog, "ab", opener=private_opener)
                self._closers.append(keylog_file.close)

                def write_keylog(line: bytes) -> None:
                    keylog_file.write(line + b"\n")
                    keylog_file.flush()

                runner.modem.keylog = write_keylog
        except BaseException as exc:  # reported to start()
            self._error = exc
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

    def call(self, fn: Callable[[ModemRunner], Any], timeout: float = 10.0) -> Any:
        """Run ``fn(runner)`` on the emulator's loop and return its result."""
        runner, loop = self.runner, self._loop
        if runner is None or loop is None:
            raise RuntimeError("the emulator is not running")
        return run_on_loop(loop, lambda: fn(runner), timeout)

    def wait_for_boot(self, timeout: float = 10.0) -> None:
        """Return once the module has printed its boot URCs (it then answers at once).

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

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None and self._thread and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(START_TIMEOUT)
        if self._own_ufs:
            shutil.rmtree(self.ufs, ignore_errors=True)

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class ControlProxy:
    """The control operations of one running emulator, one method each (``ecemu ctl --list``).

    Each method runs on the emulator's loop and returns the operation's result; an argument out of
    its bounds, or an operation that cannot be carried out, raises ``ecemu.control.ControlError``.
    """

    def __init__(self, emulator: Emulator):
        self._emulator = emulator

    def _invoke(self, name: str, arguments: dict[str, Any]) -> Any:
        return self._emulator.call(lambda runner: controller_of(runner).invoke(name, arguments))

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
