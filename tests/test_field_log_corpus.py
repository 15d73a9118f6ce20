"""The corpus of real-module logs (tests/corpus): each is checked against the emulator with
``ecemu check``, and must give exactly the differences tests/corpus/expected.toml lists for it,
each with its reason. The logs come from public sources (their headers say which); they are what
real EC200x/EC800x/EG800 modules answered, so the expectations come from outside the code.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from ecemu.check import CheckOptions, check_log
from ecemu.sessionlog import read_bytes

CORPUS = Path(__file__).parent / "corpus"
EXPECTED = tomllib.loads((CORPUS / "expected.toml").read_text())["logs"]
README = Path(__file__).resolve().parent.parent / "README.md"
FAMILY = re.compile(r"^(EC200|EC800|EG800)[A-Z]")
SOURCE = re.compile(r"^https://\S+$")


def test_every_log_has_its_expectations_and_a_source():
    logs = sorted(path.name for path in CORPUS.glob("*.log"))
    assert logs == sorted(EXPECTED), "each log needs its entry in expected.toml, and each entry its log"
    assert len(logs) >= 20, "the corpus holds at least 20 real-module logs"
    for name in logs:
        info, records = read_bytes((CORPUS / name).read_bytes())
        assert info.format == "session" and info.warnings == [], name
        headers = info.headers
        assert FAMILY.match(headers["module"]), (name, headers.get("module"))
        assert headers.get("firmware"), name
        # Where a reader can look the log up: a public address, not words about how it was found.
        assert SOURCE.match(headers.get("source", "")), (name, headers.get("source"))
        assert any(record.direction == ">" for record in records), name
        for difference in EXPECTED[name]["differences"]:
            assert difference["why"].strip(), (name, difference)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_emulator_answers_each_log_as_expected(name):
    # The log's host pauses are cut to 0.2 s: nothing in these logs depends on a guard time. The
    # answers are the subject: 5 s of timing tolerance, which a loaded machine's pauses stay inside.
    report = check_log(CORPUS / name, CheckOptions(max_gap=0.2, tolerance=5.0))
    found = [(difference.kind, difference.line) for difference in report.differences]
    expected = [(item["kind"], item["line"]) for item in EXPECTED[name]["differences"]]
    assert found == expected, "\n".join(report.render())


def test_the_readme_states_the_pass_count():
    total = len(EXPECTED)
    passing = sum(1 for entry in EXPECTED.values() if not entry["differences"])
    assert f"{passing} of its {total} logs pass" in README.read_text()
