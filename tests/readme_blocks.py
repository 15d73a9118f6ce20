"""The documentation's examples, as tests run them: each is the fenced block after
`<!-- example: NAME -->` in README.md or in a page under docs/, so the docs and the tests cannot
drift apart. A name is marked once across all of them; a block may move between pages freely."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"

_MARKED = re.compile(r"^<!-- example: ([\w-]+) -->\n```[\w-]*\n(.*?)^```$", re.S | re.M)
_MARKER = re.compile(r"^<!-- example: ([\w-]+) -->", re.M)


def documents() -> list[Path]:
    """The pages whose examples run: README.md and every Markdown page under docs/."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def marked_examples() -> dict[str, tuple[Path, str]]:
    """Every marked block: name -> (the page, the block's text ending with a newline). A marker
    not followed by a fenced block, or a name marked twice, is an error."""
    found: dict[str, tuple[Path, str]] = {}
    for page in documents():
        text = page.read_text(encoding="utf-8")
        blocks = {match.start(): match for match in _MARKED.finditer(text)}
        for marker in _MARKER.finditer(text):
            name = marker.group(1)
            where = page.relative_to(ROOT)
            assert marker.start() in blocks, f"{where}: <!-- example: {name} --> is not followed by a fenced block"
            assert name not in found, f"<!-- example: {name} --> is marked in {found[name][0].relative_to(ROOT)} and {where}"
            found[name] = (page, blocks[marker.start()].group(2))
    return found


def example(name: str) -> str:
    """The text of the block marked ``<!-- example: name -->``, ending with a newline."""
    examples = marked_examples()
    assert name in examples, f"no page of the docs has a block marked <!-- example: {name} -->"
    return examples[name][1]


def document_of(name: str) -> str:
    """The whole text of the page that holds the example ``name``."""
    examples = marked_examples()
    assert name in examples, f"no page of the docs has a block marked <!-- example: {name} -->"
    return examples[name][0].read_text(encoding="utf-8")
