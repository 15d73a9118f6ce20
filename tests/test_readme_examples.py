"""The documentation's examples for a firmware developer at a terminal, for reproducing a field bug,
for the Python API and for ``--ready-fd``, run as written (Docker's: test_docker.py; the "In CI"
example: test_pytest_plugin.py): the blocks come from README.md and docs/ (``<!-- example: NAME
-->``, tests/readme_blocks.py), the ``ecemu`` commands run as real processes, and pyserial stands in
for the person at the terminal. Servers listen on 127.0.0.1 only; the docs' fixed port 4433
becomes a free one, and /tmp/modem a link in the test's folder. And every marked block is run by
some test.
"""

from __future__ import annotations

import json
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import serial

from tests.processes import wait_for_boot
from tests.readme_blocks import ROOT, example, marked_examples

START_TIMEOUT = 15.0
SCREEN_TIMEOUT = 10.0
PAYLOAD = b"0123456789" * 60  # what "(600 bytes)" stands for in the field-bug session
PAYLOAD_SHOWN = "(600 bytes)"


def shell_commands(block: str) -> list[list[str]]:
    """The commands of a sh block, comments and a trailing ``&`` dropped."""
    commands = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words and words[-1] == "&":
            words = words[:-1]
        if words:
            commands.append(words)
    return commands


class Background:
    """A command started as in a shell with ``&``; it announces ``key: value`` lines on stdout."""

    def __init__(self, words: list[str], wanted: set[str], cwd: Path | None = None, env: dict | None = None):
        assert words[0] == "ecemu"
        self.log = tempfile.NamedTemporaryFile(prefix="ecemu-log-")
        self.process = subprocess.Popen([*ecemu(), *words[1:]], stdout=subprocess.PIPE, stderr=self.log,
                                        stdin=subprocess.DEVNULL, cwd=cwd, env=env)
        self.announced: dict[str, str] = {}
        deadline = time.monotonic() + START_TIMEOUT
        fd = self.process.stdout.fileno()
        pending = b""
        while not wanted <= self.announced.keys():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                self.stop()
                raise TimeoutError(f"{words} announced only {self.announced}; log: {self.log_text()}")
            chunk = os.read(fd, 4096)
            if not chunk:
                self.stop()
                raise RuntimeError(f"{words} exited early; log: {self.log_text()}")
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                key, _, value = line.decode().partition(": ")
                self.announced[key] = value

    def log_text(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(10)
        finally:
            self.process.stdout.close()
            self.log.close()


def ecemu() -> list[str]:
    """How the tests run the `ecemu` command: the installed script next to this Python."""
    script = Path(sys.executable).parent / "ecemu"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ecemu"]


def start_echo_server(words: list[str]) -> tuple[Background, str]:
    """Start ``ecemu echo-server --port N`` on a free port instead; returns it and the README's N."""
    assert words[:2] == ["ecemu", "echo-server"] and "--port" in words
    index = words.index("--port") + 1
    readme_port = words[index]
    return Background([*words[:index], "0", *words[index + 1:]], {"port"}), readme_port


class Screen:
    """What a terminal shows of the module's output: its bytes, the CRs gone (picocom's view)."""

    def __init__(self, port: serial.Serial):
        self.port = port
        self.received = bytearray()

    def text(self) -> str:
        return self.received.decode("latin-1").replace("\r", "").replace(PAYLOAD.decode(), PAYLOAD_SHOWN)

    def wait_for(self, expected: str) -> None:
        deadline = time.monotonic() + SCREEN_TIMEOUT
        while self.text() != expected and time.monotonic() < deadline:
            self.received += self.port.read(max(1, self.port.in_waiting))
        assert self.text() == expected


def play(port: serial.Serial, session: str) -> None:
    """Type what the session shows typed: lines starting with AT (then Enter, a CR), and the data
    after a `> ` prompt; before each, the screen must show exactly the session up to that point."""
    inputs: list[tuple[int, bytes]] = []  # where on the screen the typing starts, what is typed
    offset = 0
    for line in session.splitlines(keepends=True):
        if line.startswith("AT"):
            inputs.append((offset, line.rstrip("\n").encode() + b"\r"))
        elif line.startswith("> "):
            typed = line[2:].rstrip("\n")
            inputs.append((offset + 2, PAYLOAD if typed == PAYLOAD_SHOWN else typed.encode()))
        offset += len(line)
    screen = Screen(port)
    for at, typed in inputs:
        screen.wait_for(session[:at])
        port.write(typed)
    screen.wait_for(session)


def test_firmware_developer_at_a_terminal(tmp_path):
    commands = shell_commands(example("terminal"))
    assert [words[:2] for words in commands] == [["ecemu", "echo-server"], ["ecemu", "run"], ["picocom", "/tmp/modem"]]
    link = tmp_path / "modem"
    server, readme_port = start_echo_server(commands[0])
    try:
        run_words = [str(link) if word == "/tmp/modem" else word for word in commands[1]]
        emulator = Background(run_words, {"port", "link", "control"})
        try:
            wait_for_boot(str(link))  # the boot URCs, which the person sees first
            with serial.Serial(str(link), 115200, timeout=0.05) as port:  # picocom /tmp/modem
                play(port, example("terminal-session").replace(readme_port, server.announced["port"]))
        finally:
            assert emulator.stop() == 0
    finally:
        assert server.stop() == 0
    assert not link.exists()


def test_reproducing_a_field_bug(tmp_path):
    commands = shell_commands(example("field-bug"))
    assert [words[:2] for words in commands] == [["ecemu", "echo-server"], ["ecemu", "run"], ["ecemu", "trace"]]
    link = tmp_path / "modem"
    server, readme_port = start_echo_server(commands[0])
    try:
        run_words = [str(link) if word == "/tmp/modem" else word for word in commands[1]]
        emulator = Background(run_words, {"port", "link", "control"}, cwd=tmp_path)
        try:
            wait_for_boot(str(link))
            with serial.Serial(str(link), 115200, timeout=0.05) as port:  # the firmware
                play(port, example("field-bug-session").replace(readme_port, server.announced["port"]))
            shown = subprocess.run([*ecemu(), *commands[2][1:]], cwd=tmp_path, capture_output=True, text=True,
                                   timeout=30, check=True).stdout
        finally:
            assert emulator.stop() == 0
    finally:
        server.stop()
    # The README's excerpt of the trace is there, in order (times differ from run to run).
    lines = iter(shown.splitlines())
    for wanted in example("field-bug-trace").splitlines():
        pattern = re.compile(r"\s+".join(re.escape(part) for part in wanted.split()[1:]))
        assert any(pattern.search(line) for line in lines), f"not in the trace, in order: {wanted}"
    entries = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    assert {"name": "server-close", "args": {"client": 0}}.items() <= next(
        e for e in entries if e["kind"] == "fault").items()
    assert re.search(r"^CLIENT_RANDOM [0-9a-f]{64} [0-9a-f]{96}$", (tmp_path / "keys.txt").read_text(), re.M)


def test_the_echo_server_writes_the_ca_that_verifies_it(tmp_path):
    """`ecemu echo-server --ca ca.pem`, as the terminal section says, for secllevel 1."""
    import socket
    import ssl

    server = Background(["ecemu", "echo-server", "--port", "0", "--ca", str(tmp_path / "ca.pem")], {"port", "ca"})
    try:
        context = ssl.create_default_context(cafile=server.announced["ca"])
        with socket.create_connection(("127.0.0.1", int(server.announced["port"])), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"hello")
            assert tls.recv(100) == b"hello"
    finally:
        assert server.stop() == 0


# --- the Python API and --ready-fd, as the command line reference shows them ---------------------


def test_the_python_api_example_boots_a_module_and_reads_rdy():
    namespace: dict = {}
    try:
        exec(compile(example("python-api"), "python-api", "exec"), namespace)  # asserts RDY itself
    finally:
        if "port" in namespace:
            namespace["port"].close()
    opened = Path(namespace["port"].port)  # the emulator's private link, opened by pyserial; gone at stop
    assert opened.name == "modem" and opened.parent.name.startswith("ecemu-port-") and not opened.parent.exists()


def test_the_control_example_drives_a_module_on_its_link(tmp_path):
    link = tmp_path / "modem"
    block = example("python-control")
    assert '"/tmp/modem"' in block
    namespace: dict = {}
    exec(compile(block.replace("/tmp/modem", str(link)), "python-control", "exec"), namespace)
    assert not link.exists()  # the with block ended: the emulator stopped and removed its link


def test_the_ready_fd_example_says_ready_once_the_link_can_be_opened(tmp_path):
    block = example("ready-fd")
    assert "/tmp/ready" in block and "/tmp/modem" in block
    script = block.replace("/tmp/ready", str(tmp_path / "ready")).replace("/tmp/modem", str(tmp_path / "modem"))
    script += """
test "$ready" = READY=1
test -e "$LINK"
python -c 'import os, sys; os.close(os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY))' "$LINK"
kill -TERM $!
wait $!
"""
    bin_folder = str(Path(sys.executable).parent)
    environment = {**os.environ, "PATH": bin_folder + os.pathsep + os.environ.get("PATH", ""),
                   "LINK": str(tmp_path / "modem")}
    result = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=environment, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "modem").exists()


def test_the_scenario_format_example_is_the_shipped_server_close_scenario(tmp_path):
    from ecemu.scenario import load_scenario

    written = tmp_path / "mine.toml"
    written.write_text(example("scenario"))
    mine, shipped = load_scenario(written), load_scenario("server-closes-mid-response")
    assert (mine.description, mine.faults) == (shipped.description, shipped.faults)


# --- every marked block runs somewhere ------------------------------------------------------------

# The blocks the tests ran before the README was split into docs/: each must still be marked and run.
RUN_BEFORE = {"ci", "ci-ini", "terminal", "terminal-session", "docker", "compose", "field-bug",
              "field-bug-session", "field-bug-trace", "field-log", "field-log-pytest", "coverage", "http-mqtt"}


def test_every_marked_block_is_used_by_a_test_and_none_that_ran_was_dropped():
    marked = set(marked_examples())
    used = set()
    for path in (ROOT / "tests").glob("*.py"):
        used |= set(re.findall(r"""(?:example|document_of)\(\s*["']([\w-]+)["']""", path.read_text(encoding="utf-8")))
    assert RUN_BEFORE <= marked, f"no longer marked: {sorted(RUN_BEFORE - marked)}"
    assert marked <= used, f"marked but run by no test: {sorted(marked - used)}"
    assert used <= marked, f"used by a test but marked nowhere: {sorted(used - marked)}"
