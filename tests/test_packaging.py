"""An installed (not editable) package carries the profiles and scenarios it reads at run time."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from ecemu.profile import available_profiles
from ecemu.scenario import available_scenarios

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_carries_every_profile_and_scenario(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path),
                    str(ROOT)], check=True, capture_output=True, timeout=240)
    wheel = next(tmp_path.glob("ecemu-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for profile in available_profiles():
        assert f"ecemu/profiles/{profile}.toml" in names
    for scenario in available_scenarios():
        assert f"ecemu/profiles/scenarios/{scenario}.toml" in names
    assert "ecemu/pki.py" in names and "ecemu/shell/runner.py" in names
    # The source folder's name never reaches an installation: one top-level package, ecemu.
    assert {name.split("/")[0] for name in names if not name.startswith("ecemu-")} == {"ecemu"}


def test_the_import_name_is_ecemu():
    from ecemu import Emulator
    from ecemu.api import Emulator as ApiEmulator

    assert Emulator is ApiEmulator
