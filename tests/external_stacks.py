"""Host stacks written elsewhere, fetched and built here at test time (never kept in the repository):
lwIP's PPPoS client (Debian's lwip source package, built with PPP, DNS, TCP and altcp TLS on the
system's Mbed TLS, around the small driver in tests/lwip_ppp/), and Debian's gsm0710muxd, a 27.010
multiplexer daemon controlled over D-Bus (a private bus here).

Debian's liblwip0 is built without PPP_SUPPORT (its shared library has no ppp symbols), hence the
build from source. The source is fetched with apt-get from the deb-src twins of the machine's own
Debian sources, into a cache folder outside the checkout (``ECEMU_TEST_CACHE``, default
~/.cache/ecemu-tests), and built once per version of the driver.

A missing part skips the test, or fails it where CI=true (``tests/parts.py``; scripts/test installs
every part as root).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

from tests.parts import missing, require

HERE = Path(__file__).parent
DRIVER = HERE / "lwip_ppp"
LWIP_PACKAGE = "lwip"
BUILD_TIMEOUT = 600
MUXD_START_TIMEOUT = 60.0  # gsm0710muxd waits 7 s for a modem's power pins, then chats
_build_lock = threading.Lock()


def cache_dir() -> Path:
    base = os.environ.get("ECEMU_TEST_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ecemu-tests")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _source_lists(folder: Path) -> Path:
    """deb-src twins of the machine's deb sources (deb822 and one-line styles)."""
    parts = folder / "sources.list.d"
    parts.mkdir(parents=True, exist_ok=True)
    apt = Path("/etc/apt")
    for index, path in enumerate([apt / "sources.list", *sorted((apt / "sources.list.d").glob("*"))]):
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            (parts / f"{index}.sources").write_text(text.replace("Types: deb\n", "Types: deb-src\n"))
        elif path.suffix == ".list" or path.name == "sources.list":
            lines = [line.replace("deb ", "deb-src ", 1) for line in text.splitlines() if line.startswith("deb ")]
            (parts / f"{index}.list").write_text("\n".join(lines) + "\n")
    return parts


def _fetch_lwip_source(folder: Path) -> Path:
    """The unpacked lwip source package (apt-get source), under ``folder``."""
    existing = sorted(folder.glob("lwip-*/src/netif/ppp/pppos.c"))
    if existing:
        return existing[-1].parents[3]
    state = folder / "apt"
    for sub in ("lists/partial", "cache/archives/partial"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    parts = _source_lists(state)
    options = ["-o", "Dir::Etc::SourceList=/dev/null", "-o", f"Dir::Etc::SourceParts={parts}",
               "-o", f"Dir::State::Lists={state / 'lists'}", "-o", f"Dir::Cache={state / 'cache'}",
               "-o", "APT::Sandbox::User=root", "-q"]
    subprocess.run(["apt-get", *options, "update"], check=True, capture_output=True, timeout=BUILD_TIMEOUT)
    subprocess.run(["apt-get", *options, "source", LWIP_PACKAGE], check=True, capture_output=True,
                   timeout=BUILD_TIMEOUT, cwd=folder)
    found = sorted(folder.glob("lwip-*/src/netif/ppp/pppos.c"))
    if not found:
        raise RuntimeError("apt-get source lwip gave no PPP sources")
    return found[-1].parents[3]


def lwip_ppp_client() -> Path:
    """The lwIP PPPoS client, built once (per version of tests/lwip_ppp/)."""
    for part in ("gcc", "dpkg-dev", "libmbedtls-dev"):
        require(part)
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(DRIVER.rglob("*")) if p.is_file())).hexdigest()[:12]
    folder = cache_dir() / "lwip"
    folder.mkdir(parents=True, exist_ok=True)
    binary = folder / f"ppp_client-{digest}"
    with _build_lock, open(folder / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build for every test worker
        if binary.exists():
            return binary
        try:
            source = _fetch_lwip_source(folder)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, RuntimeError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            missing("lwip-source", f"{exc}: {detail.decode(errors='replace')[-300:]}")
        src = source / "src"
        files = [*sorted((src / "core").glob("*.c")), *sorted((src / "core" / "ipv4").glob("*.c")),
                 *sorted((src / "netif" / "ppp").glob("*.c")), *sorted((src / "netif" / "ppp" / "polarssl").glob("*.c")),
                 *sorted((src / "apps" / "altcp_tls").glob("*.c")), src / "netif" / "ethernet.c",
                 DRIVER / "ppp_client.c"]
        partial = binary.with_suffix(".partial")
        subprocess.run(["gcc", "-O2", "-w", f"-I{DRIVER}", f"-I{src / 'include'}", f"-I{src / 'apps' / 'altcp_tls'}",
                        *map(str, files), "-lmbedtls", "-lmbedx509", "-lmbedcrypto", "-o", str(partial)],
                       check=True, capture_output=True, timeout=BUILD_TIMEOUT)
        partial.rename(binary)
    return binary


class LwipRun:
    """One run of the lwIP client; its lines as they come (``wait_for``), its exit code at the end."""

    def __init__(self, binary: Path, tty: str, port: int, *, tls_ca: Path | None = None, host: str = "localhost",
                 message: str | None = None, download: int | None = None, hold_seconds: float = 0.0,
                 dial: str | None = None):
        args = [str(binary), "--tty", tty, "--host", host, "--port", str(port), "--hold-seconds", str(hold_seconds)]
        if tls_ca is not None:
            args += ["--tls", str(tls_ca)]
        if message is not None:
            args += ["--message", message]
        if download is not None:
            args += ["--download", str(download)]
        if dial is not None:
            args += ["--dial", dial]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._arrived = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._arrived:
                self.lines.append(line.rstrip("\n"))
                self._arrived.notify_all()
        with self._arrived:
            self._arrived.notify_all()

    def wait_for(self, prefix: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for line in self.lines:
                    if line.startswith(prefix):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"lwIP client never said {prefix!r}; it said {self.lines}")
                self._arrived.wait(min(left, 0.5))

    def finish(self, timeout: float = 90.0) -> tuple[int, list[str]]:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(10)
        return code, self.lines


_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""
MUXD_CALL = ["--print-reply", "--type=method_call", "--dest=org.pyneo.mux", "/org/pyneo/Muxer"]


@contextlib.contextmanager
def gsm0710muxd(port: str, channels: int = 2, frame_size: int = 127) -> Iterator[list[str]]:
    """Debian's gsm0710muxd on ``port`` in basic mode: it chats the module into AT+CMUX and opens a
    DLC for each channel asked (over its D-Bus interface, on a private bus); yields their ptys."""
    muxd_binary = require("gsm0710muxd")
    require("dbus")
    with tempfile.TemporaryDirectory(prefix="ecemu-mux-") as folder:
        socket_path = Path(folder, "bus")
        config = Path(folder, "bus.conf")
        config.write_text(_BUS_CONFIG.format(socket=socket_path))
        bus = subprocess.Popen(["dbus-daemon", f"--config-file={config}", "--nofork"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=f"unix:path={socket_path}")
        muxd = None
        try:
            deadline = time.monotonic() + 10
            while not socket_path.exists():
                if time.monotonic() > deadline:
                    raise AssertionError("the private D-Bus did not start")
                time.sleep(0.05)
            # No -l: its log file gets a hex dump of every frame, which slows it down tenfold.
            muxd = subprocess.Popen([muxd_binary, "-s", port, "-m", "basic", "-f", str(frame_size)],
                                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

            def call(*args: str) -> str:
                result = subprocess.run(["dbus-send", "--system", *MUXD_CALL, *args], env=env,
                                        capture_output=True, text=True, timeout=30)
                return result.stdout + result.stderr

            deadline = time.monotonic() + 10
            while "method return" not in call("org.pyneo.Powered.SetPower", "string:ecemu", "boolean:true"):
                if time.monotonic() > deadline:
                    raise AssertionError("gsm0710muxd did not come up on the bus")
                time.sleep(0.1)
            ptys: list[str] = []
            deadline = time.monotonic() + MUXD_START_TIMEOUT
            while len(ptys) < channels:
                answer = call("org.pyneo.Powered.GetDevice", "string:ecemu")
                device = answer.split('"')[1].replace("file://", "") if '"' in answer else ""
                if device.startswith("/dev/"):
                    ptys.append(device)
                    continue
                if time.monotonic() > deadline:
                    raise AssertionError(f"gsm0710muxd opened no channel: {answer}")
                time.sleep(0.25)
            yield ptys
        finally:
            if muxd is not None:
                muxd.terminate()
                try:
                    muxd.wait(10)
                except subprocess.TimeoutExpired:
                    muxd.kill()
                    muxd.wait()
            bus.terminate()
            bus.wait(10)
