"""The Docker image and the compose fleet, checked without a Docker engine: the Dockerfile is read
instruction by instruction, its build context is what .dockerignore lets through, the wheel its
build stage makes is built here from exactly that context, installed (not editable) into a folder
of its own, and the image's command is run from it, with the image's environment; compose.yaml and
the Docker commands of the docs (docs/how-to/docker.md) are checked against the Dockerfile."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Callable

import serial

from tests.processes import read_until
from tests.readme_blocks import ROOT, document_of, example


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            out.append((instruction.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for instruction, rest in instructions():
        if instruction == "FROM":
            out.append([])
        out[-1].append((instruction, rest))
    return out


def the(stage: list[tuple[str, str]], name: str) -> str:
    values = [rest for instruction, rest in stage if instruction == name]
    assert len(values) == 1, f"{name}: {values}"
    return values[0]


def environment(stage: list[tuple[str, str]]) -> dict[str, str]:
    env = {}
    for instruction, rest in stage:
        if instruction == "ENV":
            for word in shlex.split(rest):
                name, _, value = word.partition("=")
                env[name] = value
    return env


def context_files() -> tuple[list[str], Callable[[str], bool]]:
    """The files of the checkout that .dockerignore lets into the build context (Docker's rules:
    patterns in order, the last that matches a path or one of its folders decides, ! re-includes)."""
    patterns = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            include = line.startswith("!")
            patterns.append((line.lstrip("!").rstrip("/"), include))

    def excluded(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        verdict = False
        for pattern, include in patterns:
            if any(fnmatch.fnmatchcase(prefix, pattern) or fnmatch.fnmatchcase(prefix, pattern.replace("**/", ""))
                   for prefix in prefixes):
                verdict = not include
        return verdict

    files = []
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in (".git", ".venv")] if folder == str(ROOT) else dirs
        for name in names:
            path = Path(folder, name).relative_to(ROOT).as_posix()
            if not excluded(path):
                files.append(path)
    return files, excluded


def test_the_build_context_carries_only_what_the_image_needs():
    files, excluded = context_files()
    assert excluded(".venv/bin/python") and excluded(".git/HEAD") and excluded("tests/test_docker.py")
    assert excluded("emulator/__pycache__/cli.cpython-311.pyc")
    tops = {path.split("/")[0] for path in files}
    assert tops == {"pyproject.toml", "README.md", "emulator", "profiles"}
    build, final = stages()
    for instruction, rest in build:
        if instruction == "COPY":
            for source in rest.split()[:-1]:
                assert any(path == source or path.startswith(source + "/") for path in files), source


def test_the_image_installs_the_wheel_of_its_build_stage_not_an_editable_checkout():
    build, final = stages()
    assert the(build, "FROM").endswith("AS build") and the(build, "FROM").startswith("python:3.11-slim")
    assert the(build, "RUN") == "python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ."
    assert the(final, "FROM") == "python:3.11-slim"
    assert the(final, "COPY") == "--from=build /wheels /wheels"
    install = the(final, "RUN")
    assert "pip install --no-cache-dir --quiet /wheels/*.whl" in install and " -e " not in install
    assert "rm -rf /wheels" in install
    assert the(final, "USER") == "ecemu" and "chown ecemu /run/ecemu" in install
    env = environment(final)
    assert env["PATH"].startswith("/opt/ecemu/bin:") and "python -m venv /opt/ecemu" in install
    assert env["ECEMU_CONTROL"] == "/run/ecemu/control.sock"


def test_the_wheel_from_the_context_runs_the_image_command_and_ctl_reaches_it(tmp_path):
    """What `docker build` and `docker run` would do, minus Docker: the context copied as
    .dockerignore allows, `pip wheel` on it, the wheel installed into a folder of its own, then the
    image's ENTRYPOINT + CMD with its ECEMU_CONTROL, and `ecemu ctl status` with no option."""
    files, _ = context_files()
    context = tmp_path / "context"
    for path in files:
        (context / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, context / path)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels),
                    str(context)], check=True, capture_output=True, timeout=240)
    wheel = next(wheels.glob("ecemu-*.whl"))
    entry_points = next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith("entry_points.txt"))
    assert "ecemu = ecemu.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile", "--target",
                    str(site), str(wheel)], check=True, capture_output=True, timeout=240)
    assert not list(site.glob("__editable__*")) and (site / "ecemu" / "profiles" / "EC200M-CN.toml").is_file()

    build, final = stages()
    command = json.loads(the(final, "ENTRYPOINT")) + json.loads(the(final, "CMD"))
    port = the(final, "EXPOSE")
    assert command == ["ecemu", "run", "--tcp", f"0.0.0.0:{port}"]
    control = tmp_path / "run" / "control.sock"
    control.parent.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ECEMU_PROFILES"}
    env |= {"PYTHONPATH": str(site), "ECEMU_CONTROL": str(control), "PYTHONUNBUFFERED": "1"}
    words = ["127.0.0.1:0" if word == f"0.0.0.0:{port}" else word for word in command[1:]]
    process = subprocess.Popen([sys.executable, "-m", "ecemu", *words], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        announced = read_until(process.stdout.fileno(), f"control: {control}\n".encode(), timeout=15).decode()
        where = subprocess.run([sys.executable, "-c", "import ecemu; print(ecemu.__file__)"], env=env,
                               cwd=tmp_path, capture_output=True, text=True, check=True, timeout=30).stdout
        assert Path(where.strip()).is_relative_to(site)
        status = subprocess.run([sys.executable, "-m", "ecemu", "ctl", "status"], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=30)
        assert status.returncode == 0, status.stderr
        url = re.search(r"port: (rfc2217://\S+)\n", announced).group(1)
        assert json.loads(status.stdout)["port"] == url
        health = subprocess.run(healthcheck(final), env=env, cwd=tmp_path, capture_output=True, timeout=30)
        assert health.returncode == 0, health.stderr  # the image's HEALTHCHECK, as Docker runs it
        client = serial.serial_for_url(url, timeout=5)
        try:
            client.write(b"AT\r")
            assert client.read_until(b"AT\r\r\nOK\r\n").endswith(b"AT\r\r\nOK\r\n")
        finally:
            client.close()
    finally:
        process.terminate()
        assert process.wait(10) == 0
        process.stdout.close()
    assert not control.exists()
    unhealthy = subprocess.run(healthcheck(final), env=env, cwd=tmp_path, capture_output=True, timeout=30)
    assert unhealthy.returncode not in (0, 2)  # no module answering: unhealthy (a usage error would be 2)


def healthcheck(stage: list[tuple[str, str]]) -> list[str]:
    """The command of the stage's HEALTHCHECK (exec form), run here as ``python -m ecemu``."""
    words = the(stage, "HEALTHCHECK").split(" CMD ", 1)
    options, command = words[0].split(), json.loads(words[1])
    assert {option.split("=")[0] for option in options} <= {"--interval", "--timeout", "--start-period", "--retries"}
    assert command[0] == "ecemu"
    return [sys.executable, "-m", "ecemu", *command[1:]]


def test_the_image_has_a_healthcheck_asking_the_module():
    final = stages()[-1]
    check = the(final, "HEALTHCHECK")
    assert check.endswith('CMD ["ecemu", "ctl", "status"]')  # ECEMU_CONTROL: the socket of the image's module
    assert "--interval=10s" in check and "--timeout=5s" in check


def test_the_readme_docker_commands_match_the_image():
    final = stages()[-1]
    port = the(final, "EXPOSE")
    commands = [shlex.split(line, comments=True) for line in example("docker").splitlines()]
    commands = [words for words in commands if words]
    build, docker_run, attach, docker_exec = commands
    assert build[:2] == ["docker", "build"] and build[-1] == "."
    tag = build[build.index("-t") + 1]
    name = docker_run[docker_run.index("--name") + 1]
    assert docker_run[-1] == tag and f"{port}:{port}" in docker_run
    assert attach[:4] == ["python", "-m", "serial.tools.miniterm", f"rfc2217://localhost:{port}"]
    assert docker_exec[:5] == ["docker", "exec", name, "ecemu", "ctl"]


def test_compose_runs_count_modems_on_the_published_ports_and_the_echo_server_beside_them():
    text = (ROOT / "compose.yaml").read_text()
    services = dict(re.findall(r"^  ([\w-]+):\n((?:    .*\n|      .*\n)+)", text, re.M))
    assert set(services) == {"modems", "tls-server"}
    modems = json.loads(re.search(r"command: (\[.*\])", services["modems"]).group(1))
    count = int(modems[modems.index("--count") + 1])
    port = int(modems[modems.index("--tcp") + 1].rpartition(":")[2])
    assert modems[:3] == ["run", "--tcp", f"0.0.0.0:{port}"]
    assert f'"{port}-{port + count - 1}:{port}-{port + count - 1}"' in services["modems"]
    server = json.loads(re.search(r"command: (\[.*\])", services["tls-server"]).group(1))
    assert server[:3] == ["echo-server", "--port", "4433"]
    assert 'network_mode: "service:modems"' in services["tls-server"]  # the modems reach it on 127.0.0.1
    for body in services.values():
        assert "build: ." in body
        assert "healthcheck:" in body


def compose_healthcheck(service: str) -> list[str]:
    text = (ROOT / "compose.yaml").read_text()
    body = dict(re.findall(r"^  ([\w-]+):\n((?:    .*\n|      .*\n)+)", text, re.M))[service]
    return json.loads(re.search(r"^      test: (\[.*\])$", body, re.M).group(1))


def test_the_compose_health_checks_ask_every_module_and_the_echo_server(tmp_path):
    """The fleet's command run here with its control sockets in a folder of the test's; the health
    check's shell line (compose's $$ is one $) run against it: healthy, then unhealthy once a module
    has gone."""
    kind, line = compose_healthcheck("modems")
    assert kind == "CMD-SHELL"
    line = line.replace("$$", "$")
    text = (ROOT / "compose.yaml").read_text()
    count = int(re.search(r'"--count", "(\d+)"', text).group(1))
    assert re.search(r"for i in ([\d ]+);", line).group(1).split() == [str(i) for i in range(count)]
    control = tmp_path / "control.sock"
    env = dict(os.environ, ECEMU_CONTROL=str(control))
    bindir = tmp_path / "bin"  # `ecemu` on the PATH, as in the image
    bindir.mkdir()
    (bindir / "ecemu").write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m ecemu \"$@\"\n")
    (bindir / "ecemu").chmod(0o755)
    env["PATH"] = f"{bindir}:{env['PATH']}"
    line = line.replace("/run/ecemu/control.sock", str(control))
    process = subprocess.Popen([sys.executable, "-m", "ecemu", "run", "--tcp", "127.0.0.1:0", "--count", str(count)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        read_until(process.stdout.fileno(), f"control: {control}-{count - 1}\n".encode(), timeout=20)
        assert subprocess.run(["sh", "-c", line], env=env, capture_output=True, timeout=60).returncode == 0
    finally:
        process.terminate()
        assert process.wait(10) == 0
        process.stdout.close()
    assert subprocess.run(["sh", "-c", line], env=env, capture_output=True, timeout=60).returncode == 1
    kind, *command = compose_healthcheck("tls-server")
    assert kind == "CMD" and command[:2] == ["python", "-c"] and "4433" in command[2]
    from ecemu.echo_server import TlsEchoServer

    with TlsEchoServer() as server:
        probe = command[2].replace("4433", str(server.port))
        assert subprocess.run([sys.executable, "-c", probe], timeout=30).returncode == 0


def test_the_readme_compose_commands_work_with_compose_v1_and_v2():
    lines = [line for line in example("compose").splitlines() if line.strip()]
    for line in lines:
        words = shlex.split(line, comments=True)
        assert words[:2] == ["docker", "compose"], line  # v1: the same words after docker-compose
        assert words[2] in ("up", "ps", "exec", "down"), line  # subcommands both versions have (not cp)
        if words[2] == "exec" and ">" in line:
            assert "-T" in words  # no terminal: the file's bytes come through unchanged
    text = document_of("compose")
    assert "`docker-compose`" in text and "docker compose cp" not in example("compose")
