"""The house rules a machine can check: layers and no import circles (import-linter), lint (ruff, over
the package, the tests and the benchmarks), types of the core and the command families (mypy).
Configured in pyproject.toml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("tool, args", [
    ("lint-imports", []),
    ("ruff", ["check", "emulator", "tests", "benchmarks"]),
    ("mypy", []),
])
def test_static_check_passes(tool, args, tmp_path):
    program = BIN / tool
    if not program.exists():
        pytest.fail(f"{tool} is not installed: pip install -e '.[test]'")
    # mypy finds a package by its folder's name: it reads emulator/ as ecemu through a link.
    (tmp_path / "ecemu").symlink_to(ROOT / "emulator")
    environment = {**os.environ, "MYPYPATH": str(tmp_path)}
    result = subprocess.run([str(program), *args], cwd=ROOT, capture_output=True, text=True, timeout=240,
                            env=environment)
    assert result.returncode == 0, f"{tool} {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
