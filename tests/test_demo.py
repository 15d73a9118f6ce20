"""``ecemu demo`` (the SSL note's chapter 3 examples through the port) and ``scripts/run``, which
shows it to a newcomer before starting the emulator."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from ecemu.demo import show
from ecemu.mqtt_broker import mosquitto_binary
from ecemu.profile import profiles_dir

ROOT = Path(__file__).resolve().parent.parent
ECEMU = [sys.executable, "-m", "ecemu"]

# The MQTT(S) example runs where Mosquitto is installed (scripts/test installs it where it can).
EXAMPLES = ["3.1", "3.2", "3.3", "3.4", "3.5", "HTTPS", *(["MQTTS"] if mosquitto_binary() else []), "3.1.3"]


def demo(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*ECEMU, "demo", *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, env=env)


def test_the_demo_plays_every_example_and_passes():
    result = demo()
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert [m.group(1) for m in re.finditer(r"^  PASS  (\S+) ", out, re.M)] == EXAMPLES
    assert "FAIL" not in out
    assert out.rstrip().endswith(f"All {len(EXAMPLES)} examples pass: every answer is the one the note shows.")
    # The transcript: the host's lines, the module's answers line by line, CR and LF visible.
    assert "Power-on" in out and "          +QIND: PB DONE\\r\\n\n" in out
    assert re.search(r'^  host    AT\+QSSLOPEN=1,1,4,"127\.0\.0\.1",\d+,0\\r +set up an SSL connection$', out, re.M)
    assert "  host    Test data from SSL^Z" in out
    assert ("  module  AT+QSSLRECV=4,1500\\r\n          \\r\\n\n          +QSSLRECV: 18\\r\\n\n"
            "          Test data from SSL\\r\\n\n          \\r\\n\n          OK\\r\\n\n") in out
    assert '          +QSSLURC: "recv",4,18\\r\\n\n          Test data from SSL\\r\\n\n' in out
    assert "  host    +++" in out and "(silence, 300 ms)" in out


def test_quiet_prints_only_the_verdicts_and_the_profile_is_chosen():
    result = demo("--quiet", "--profile", "EC800N-CN", "--escape-guard-ms", "100")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines[:-1]] == [["PASS", number] for number in EXAMPLES]
    assert lines[-1] == f"All {len(EXAMPLES)} examples pass: every answer is the one the note shows."


def test_an_answer_unlike_the_notes_fails_the_example_and_the_exit_status(tmp_path):
    # A module whose PDP address pool differs from the note's answers AT+QIACT? differently.
    folder = tmp_path / "profiles"
    shutil.copytree(profiles_dir(), folder)
    profile = folder / "EC200M-CN.toml"
    profile.write_text(profile.read_text().replace('"10.7.157.0/24"', '"10.9.0.0/24"'))
    result = demo("--quiet", env={**os.environ, "ECEMU_PROFILES": str(folder)})
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        "  FAIL  3.1 Configure and activate a PDP context",
        "        after:    AT+QIACT?\\r",
        '        the note: AT+QIACT?\\r\\r\\n+QIACT: 1,1,1,"10.7.157.1"\\r\\n\\r\\nOK\\r\\n',
        '        received: AT+QIACT?\\r\\r\\n+QIACT: 1,1,1,"10.9.0.1"\\r\\n\\r\\nOK\\r\\n',
    ]
    assert all(line.endswith("not run (it builds on the failed one)") for line in lines[4:-1])
    assert lines[-1] == f"0 examples pass, 1 FAIL, {len(EXAMPLES) - 1} not run."


def test_an_unknown_profile_is_a_usage_error():
    result = demo("--profile", "EC999")
    assert result.returncode == 2 and "--profile" in result.stderr


def test_bytes_are_shown_line_by_line_with_cr_and_lf_visible():
    assert show(b"AT\r\r\nOK\r\n") == ["AT\\r", "\\r\\n", "OK\\r\\n"]
    assert show(b"\r\n> ") == ["\\r\\n", "> "]
    assert show(b"data\x1a\x00\\") == ["data^Z\\x00\\\\"]
    assert show(b"") == [""]


def test_scripts_run_plays_the_demo_then_runs_the_emulator_with_the_arguments(tmp_path):
    # The scripts as they are, in a checkout whose .venv is already set up, with a stand-in ecemu
    # that logs how it was called.
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / ".venv" / ".installed").touch()  # newer than pyproject.toml: nothing to install
    log = tmp_path / "calls.txt"
    for name, body in {
        "python": "exit 0",
        "ecemu": f'echo "$*" >> {log}\n'
                 'if [ "$1" = demo ]; then echo "All 6 examples pass."; else echo "port: /dev/pts/99"; fi',
    }.items():
        (venv_bin / name).write_text(f"#!/bin/sh\n{body}\n")
        (venv_bin / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"}  # the default interpreter's .venv
    result = subprocess.run([tmp_path / "scripts" / "run", "--profile", "EC800N-CN"], capture_output=True,
                            text=True, timeout=30, stdin=subprocess.DEVNULL, env=env)
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines() == ["demo", "run --profile EC800N-CN"]
    out = result.stdout
    assert out.index("All 6 examples pass.") < out.index("port: /dev/pts/99")
    # How to reach the README's commands, said before the emulator takes the terminal.
    assert f"source {tmp_path}/.venv/bin/activate" in result.stderr
    assert ".venv/bin/python -m serial.tools.miniterm PORT 115200" in result.stderr


def test_ci_runs_exactly_the_test_script():
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[-1] == "exec scripts/test -q"


def _stand_in_checkout(tmp_path, venv: str) -> Path:
    """The scripts in a checkout whose environment ``venv`` is set up, with a stand-in python that
    logs how it was called; returns the log."""
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    (tmp_path / "pyproject.toml").write_text("")
    venv_bin = tmp_path / venv / "bin"
    venv_bin.mkdir(parents=True)
    for stamp in (".installed", ".installed-test", ".parts-tried"):
        (tmp_path / venv / stamp).touch()  # newer than pyproject.toml: nothing to install or try
    log = tmp_path / "calls.txt"
    (venv_bin / "python").write_text(f'#!/bin/sh\necho "$0 $*" >> {log}\n')
    (venv_bin / "python").chmod(0o755)
    return log


def test_scripts_test_runs_the_suite_on_another_interpreter_in_its_own_environment(tmp_path):
    log = _stand_in_checkout(tmp_path, ".venv-3.13")
    other = tmp_path / "python3.13"  # an interpreter that only says its version
    other.write_text("#!/bin/sh\necho 3.13\n")
    other.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"PYTHON": str(other)}
    result = subprocess.run(["bash", tmp_path / "scripts" / "test", "-q", "tests/x.py"], capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL, env=env)
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines()[-1] == f"{tmp_path}/.venv-3.13/bin/python -m pytest -q tests/x.py"
    assert not (tmp_path / ".venv").exists()


def test_scripts_test_under_ci_stops_when_a_part_cannot_be_installed(tmp_path):
    """CI=true, chromium not on the PATH and apt-get failing: the run stops before pytest, loudly."""
    log = _stand_in_checkout(tmp_path, ".venv")
    tools = tmp_path / "tools"  # a PATH with what the script needs, no chromium, a failing apt-get
    tools.mkdir()
    for name in ("bash", "sh", "id", "touch", "timeout", "dirname", "cat", "rm"):
        (tools / name).symlink_to(shutil.which(name))
    (tools / "apt-get").write_text("#!/bin/sh\necho no network >&2\nexit 100\n")
    (tools / "apt-get").chmod(0o755)
    env = {"PATH": str(tools), "CI": "true", "HOME": str(tmp_path)}
    result = subprocess.run([str(tools / "bash"), tmp_path / "scripts" / "test", "-q"], capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL, env=env)
    assert result.returncode == 1, result.stderr
    assert "CI=true and the tests' parts are missing: chromium" in result.stderr
    assert not log.exists() or "-m pytest" not in log.read_text()  # pytest never ran
