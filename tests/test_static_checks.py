"""The house rules a machine can check: layers and no import circles (import-linter), lint (ruff),
types of the core and the command families (mypy). Configured in pyproject.toml."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("tool, args", [
    ("lint-imports", []),
    ("ruff", ["check", "emulator"]),
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


# --- failures and codes: one way, no bare numbers ---------------------------------------------------

EMULATOR = ROOT / "emulator"
# What carries a code to the host: its first argument must be a member of a table in core/results.py.
CODE_CARRIERS = {"CommandFailed", "CmeError", "OpenFailed"}


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _is_number(node: ast.expr) -> bool:
    if isinstance(node, ast.UnaryOp):
        node = node.operand
    return isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool)


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    where = path.relative_to(ROOT) if ROOT in path.parents else path.name
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _called_name(node) in CODE_CARRIERS:
            if not node.args:
                found.append(f"{where}:{node.lineno}: {_called_name(node)}() without a code")
            elif _is_number(node.args[0]) or any(_is_number(k.value) for k in node.keywords):
                found.append(f"{where}:{node.lineno}: {_called_name(node)} given a bare number")
        elif isinstance(node, ast.ClassDef):
            bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
            if "CommandFailed" in bases:
                found.append(f"{where}:{node.lineno}: {node.name} is another spelling of CommandFailed")
            if bases & {"IntEnum", "CodeTable"} and path != EMULATOR / "core" / "results.py" \
                    and node.name.endswith(("Error", "Code", "Result", "Stat")):
                found.append(f"{where}:{node.lineno}: the code table {node.name} belongs in core/results.py")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = [s for s in node.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
            if len(body) == 1 and isinstance(body[0], ast.Return) and isinstance(body[0].value, ast.Call) \
                    and _called_name(body[0].value) == "CommandFailed":
                found.append(f"{where}:{node.lineno}: {node.name}() is another spelling of CommandFailed(...)")
    return found


def test_handlers_fail_one_way_with_a_code_from_the_tables():
    """Every failure is CommandFailed(code) with a member of a table in core/results.py: no bare
    numbers, no other exception or helper that stands for it, no code table elsewhere."""
    found = [v for path in sorted(EMULATOR.rglob("*.py")) for v in _violations(path)]
    assert found == []


def test_the_check_finds_what_it_looks_for(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import enum\n"
                      "def refused():\n    return CommandFailed(Refusal.PARAMETER)\n"
                      "def bare():\n    raise CommandFailed(552)\n"
                      "def nothing():\n    raise CommandFailed()\n"
                      "x = CmeError(-1)\n"
                      "class ParamError(CommandFailed):\n    pass\n"
                      "class HttpError(enum.IntEnum):\n    OK = 0\n")
    assert sorted(v.split(": ", 1)[1] for v in _violations(sample)) == sorted([
        "refused() is another spelling of CommandFailed(...)",
        "CommandFailed given a bare number",
        "CommandFailed() without a code",
        "CmeError given a bare number",
        "ParamError is another spelling of CommandFailed",
        "the code table HttpError belongs in core/results.py",
    ])
