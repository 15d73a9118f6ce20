"""The README's examples, as tests run them: each is the fenced block after `<!-- example: NAME -->`,
so the README and the tests cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def example(name: str) -> str:
    """The text of the README block marked ``<!-- example: name -->``, ending with a newline."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^<!-- example: {re.escape(name)} -->\n```[\w-]*\n(.*?)^```$", text, re.S | re.M)
    assert match, f"README.md has no block marked <!-- example: {name} -->"
    return match.group(1)
