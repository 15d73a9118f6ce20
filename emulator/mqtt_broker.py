"""A real MQTT broker on 127.0.0.1 for the emulator's MQTT(S) commands: Mosquitto, started as a
child process with a configuration of its own, listening on plain TCP and on TLS with the test
PKI's server certificate (``ecemu.pki``), optionally asking for a client certificate.

    with MqttBroker() as broker:          # raises BrokerUnavailable without mosquitto
        broker.port, broker.tls_port, broker.ca_pem

``ecemu mqtt-broker`` runs one from the command line, the pytest plugin's ``ecemu_mqtt_broker``
fixture one per test. Debian's package is ``mosquitto``; ``ECEMU_MOSQUITTO`` names another binary.
"""

from __future__ import annotations

import ctypes
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .shell.private_files import open_private_file, write_private

START_TIMEOUT = 10.0


class BrokerUnavailable(RuntimeError):
    """No mosquitto on this machine."""


class PortInUse(RuntimeError):
    """A port asked for is taken (another broker, perhaps one an earlier run left behind): the
    broker is not started, so that nobody talks to the other one believing it is this one."""

    def __init__(self, host: str, port: int):
        super().__init__(f"{host}:{port} is already in use by another process (a broker left running?)")
        self.port = port


def _check_free(host: str, port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as mosquitto binds: TIME_WAIT is no owner
        try:
            probe.bind((host, port))
        except OSError:
            raise PortInUse(host, port) from None


PR_SET_PDEATHSIG = 1  # prctl(2)


def _ending_with(parent: int):
    """For the child, before it runs mosquitto: a SIGTERM when ``parent`` ends, however it ends
    (SIGKILL included), and no start at all when it has already gone."""
    def arrange() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)
    return arrange


def mosquitto_binary() -> str | None:
    named = os.environ.get("ECEMU_MOSQUITTO")
    if named:
        return named if os.access(named, os.X_OK) else None
    return shutil.which("mosquitto") or next(
        (path for path in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(path, os.X_OK)), None)


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class MqttBroker:
    """Mosquitto on ``host``: ``port`` (plain) and ``tls_port`` (TLS 1.2, the PKI's server-rsa chain).

    ``client_certificates``: the TLS listener asks for a client certificate signed by the PKI's CA
    (the module's secllevel 2). Ports are chosen free unless given; ``restart`` stops and starts the
    same broker on the same ports (a broker going away under connected clients).
    ``die_with_parent``: mosquitto gets SIGTERM when the thread that started it ends (Linux's
    parent-death signal), for a process that may be killed (``ecemu mqtt-broker``); leave it off
    when a short-lived thread starts the broker. A port given and taken raises ``PortInUse``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls_port: int = 0,
                 client_certificates: bool = False, die_with_parent: bool = False):
        binary = mosquitto_binary()
        if binary is None:
            raise BrokerUnavailable("mosquitto is not installed (Debian: apt-get install mosquitto)")
        from .pki import generate_test_pki

        self.binary = binary
        self.host = host
        self._fixed_ports = (port, tls_port)
        self.port = port or _free_port(host)
        self.tls_port = tls_port or _free_port(host)
        pki = generate_test_pki()
        self.ca_pem = pki["ca.pem"]
        self.client_cert_pem, self.client_key_pem = pki["client-chain.pem"], pki["client.key"]
        self._folder = tempfile.TemporaryDirectory(prefix="ecemu-mqtt-")
        folder = Path(self._folder.name)
        write_private(folder / "ca.pem", self.ca_pem)
        write_private(folder / "server.pem", pki["server-rsa-chain.pem"])
        write_private(folder / "server.key", pki["server-rsa.key"])
        self.config_path = folder / "mosquitto.conf"
        self._client_certificates = client_certificates
        self._write_config()
        self.log_path = folder / "mosquitto.log"
        self.process: subprocess.Popen | None = None
        self._die_with_parent = die_with_parent

    def _write_config(self) -> None:
        folder = self.config_path.parent
        write_private(
            self.config_path,
            # Run as whoever started it: as root, mosquitto would switch to its own user, who cannot
            # read this private folder.
            f"user {getpass.getuser()}\n"
            "per_listener_settings false\nallow_anonymous true\npersistence false\n"
            f"listener {self.port} {self.host}\n"
            f"listener {self.tls_port} {self.host}\n"
            f"cafile {folder / 'ca.pem'}\ncertfile {folder / 'server.pem'}\nkeyfile {folder / 'server.key'}\n"
            "tls_version tlsv1.2\n"
            f"require_certificate {'true' if self._client_certificates else 'false'}\n")

    def start(self) -> "MqttBroker":
        """Start mosquitto; ports chosen here that another process took meanwhile are chosen again."""
        for attempt in range(3):
            try:
                return self._start_once()
            except PortInUse:
                raise
            except RuntimeError:
                if any(self._fixed_ports) or self.process is not None or attempt == 2:
                    raise
                self.port, self.tls_port = _free_port(self.host), _free_port(self.host)
                self._write_config()
        return self

    def _start_once(self) -> "MqttBroker":
        for port in self._fixed_ports:
            if port:
                _check_free(self.host, port)
        log = open_private_file(self.log_path, "ab")
        try:
            self.process = subprocess.Popen([self.binary, "-c", str(self.config_path), "-v"], stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            preexec_fn=_ending_with(os.getpid()) if self._die_with_parent else None)
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT
        for port in (self.port, self.tls_port):
            while True:
                if self.process.poll() is not None:
                    self.process = None
                    raise RuntimeError(f"mosquitto exited: {self.log()}")
                try:
                    socket.create_connection((self.host, port), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(f"mosquitto did not listen on {port}: {self.log()}") from None
                    time.sleep(0.02)  # polling a listener that is coming up, bounded by the deadline
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def restart(self) -> None:
        """The same broker again, on the same ports."""
        self.stop()
        self._start_once()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        self.stop()
        self._folder.cleanup()

    def __enter__(self) -> "MqttBroker":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()
