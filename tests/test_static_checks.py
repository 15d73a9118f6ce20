"""The house rules a machine can check: layers and no import circles (import-linter), lint (ruff),
types of the core and the command families (mypy). Configured in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("tool, args", [
    ("lint-imports", []),
    ("ruff", ["check", "emulator"]),
    ("mypy", ["emulator"]),
])
def test_static_check_passes(tool, args):
    program = BIN / tool
    if not program.exists():
        pytest.fail(f"{tool} is not installed: pip install -e '.[test]'")
    result = subprocess.run([str(program), *args], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, f"{tool} {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
