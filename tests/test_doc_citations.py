"""Every cited section exists, every link between the docs resolves.

The code, the tests, the profiles, the scripts, the benchmarks and the docs cite the facts they rely
on as ``REFERENCE.md "<section>"``, and the documentation's own sections as ``README "<section>"``
or ``docs/<page>.md "<section>"``; a citation may run over a line break, inside a comment or a
docstring. Each must name a heading of that page. And every relative Markdown link (``[text](path)``,
``[text](path#anchor)``, ``[text](#anchor)``) in the project's Markdown pages must reach a file that
exists and, with an anchor, a heading of that page, slugged as GitHub slugs headings.

Expectations come from the pages themselves, read here: nothing is imported from the emulator.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Where citations are looked for: the source, the tests, the docs, the profiles, scripts, benchmarks,
# and the files at the top of the checkout. tests/corpus holds logs from elsewhere, not our prose.
CITING_FOLDERS = ("emulator", "tests", "docs", "profiles", "benchmarks", "scripts", "certs", ".ci")
CITING_TOP_FILES = ("README.md", "ARCHITECTURE.md", "REFERENCE.md", "CHANGELOG.md", "pyproject.toml",
                    "Dockerfile", "compose.yaml")
NOT_OURS = (ROOT / "tests" / "corpus",)
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".c", ".h", ".sh", ".yaml", ".yml", ".cfg", ".ini", ""}

# A line break inside a citation, with what continues a comment or a docstring on the next line.
_BREAK = r"(?:[ \t]*\n[ \t]*(?:#+|//|\*|;)?[ \t]*)"
_GAP = rf"(?:[ \t]+|{_BREAK})+"
_QUOTED = rf'"((?:[^"\n]|{_BREAK})+?)"'
_CITED_PAGE = r"(?<![\w/.-])(REFERENCE\.md|README(?:\.md)?|docs/[\w./-]+\.md)"
CITATION = re.compile(rf"{_CITED_PAGE},?{_GAP}{_QUOTED}((?:\s*(?:,|and){_GAP}{_QUOTED})*)")
FURTHER = re.compile(rf"(?:,|and){_GAP}{_QUOTED}")


def citing_files() -> list[Path]:
    files = [ROOT / name for name in CITING_TOP_FILES if (ROOT / name).is_file()]
    for folder in CITING_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            if (path.is_file() and path.suffix in TEXT_SUFFIXES and "__pycache__" not in path.parts
                    and path != Path(__file__).resolve()  # its own examples of citations, below
                    and not any(path.is_relative_to(other) for other in NOT_OURS)):
                files.append(path)
    return files


def _one_line(text: str) -> str:
    return re.sub(_BREAK, " ", text).strip()


def citations(text: str) -> list[tuple[str, str, int]]:
    """(page, section, line number) of each citation in ``text``; ``<section>``-style
    placeholders (a citation described, not made) are left out."""
    found = []
    for match in CITATION.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        page = "README.md" if match.group(1) == "README" else match.group(1)
        sections = [match.group(2)] + [further.group(1) for further in FURTHER.finditer(match.group(3) or "")]
        for section in sections:
            section = _one_line(section)
            if not section.startswith("<"):
                found.append((page, section, line))
    return found


_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)


def without_code(markdown: str) -> str:
    """The page with its fenced blocks and inline code blanked (their lines kept, for numbers)."""
    markdown = _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), markdown)
    return re.sub(r"`[^`\n]*`", "", markdown)


def headings(markdown: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", without_fences(markdown), re.M)]


def without_fences(markdown: str) -> str:
    return _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), markdown)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text in lower case, punctuation other than
    hyphens and underscores dropped, spaces made hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("**", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for heading in headings(markdown):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def markdown_pages() -> list[Path]:
    pages = [path for path in ROOT.rglob("*.md")
             if not any(part.startswith(".") for part in path.relative_to(ROOT).parts)
             and not any(path.is_relative_to(other) for other in NOT_OURS)]
    return sorted(pages)


LINK = re.compile(r"!?\[(?:[^\]\n]|\n(?!\n))*\]\(([^()\s]*(?:\([^()\s]*\)[^()\s]*)*)(?:\s+\"[^\"]*\")?\)")
DEFINITION = re.compile(r"^[ \t]{0,3}\[[^\]]+\]:\s*(\S+)", re.M)


def links(markdown: str) -> list[tuple[str, int]]:
    text = without_code(markdown)
    found = [(m.group(1), text.count("\n", 0, m.start()) + 1) for m in LINK.finditer(text)]
    found += [(m.group(1), text.count("\n", 0, m.start()) + 1) for m in DEFINITION.finditer(text)]
    return found


SUBCOMMANDS = ("run", "ctl", "demo", "echo-server", "http-server", "mqtt-broker", "certs", "profiles", "scenarios",
               "trace", "record", "replay", "check", "convert")
# ``ecemu SUBCOMMAND`` and the words after it on the same line, up to a backtick, a quote, a comment
# or where a shell command line ends.
COMMAND_LINE = re.compile(rf"\becemu ({'|'.join(SUBCOMMANDS)})((?:[ \t]+[^\s`|&;#)\"']+)*)")


def named_options(text: str) -> list[tuple[str, str, int]]:
    """(subcommand, option, line number) of each ``--option`` written after ``ecemu SUBCOMMAND``."""
    found = []
    for match in COMMAND_LINE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        for option in re.findall(r"(?<!\S)(--[a-z][a-z0-9-]*)", match.group(2)):
            found.append((match.group(1), option, line))
    return found


def ecemu_help(subcommand: str) -> str:
    script = Path(sys.executable).parent / "ecemu"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "ecemu"]
    return subprocess.run([*command, subcommand, "--help"], capture_output=True, text=True, timeout=60,
                          check=True).stdout


# --- the tests ----------------------------------------------------------------------------------


def test_every_cited_section_is_a_heading_of_the_cited_page():
    missing = []
    cited = 0
    for path in citing_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for page, section, line in citations(text):
            cited += 1
            target = ROOT / page
            if not target.is_file():
                missing.append(f"{path.relative_to(ROOT)}:{line}: {page} \"{section}\": no such page")
            elif section not in headings(target.read_text(encoding="utf-8")):
                missing.append(f"{path.relative_to(ROOT)}:{line}: {page} \"{section}\": no such heading")
    assert cited > 100  # the code cites REFERENCE.md throughout: finding none means the search broke
    assert not missing, "\n".join(missing)


def test_every_relative_link_and_anchor_between_the_docs_resolves():
    broken = []
    checked = 0
    for page in markdown_pages():
        for target, line in links(page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not between the docs
                continue
            checked += 1
            path_part, _, anchor = target.partition("#")
            destination = (page.parent / path_part).resolve() if path_part else page
            where = f"{page.relative_to(ROOT)}:{line}: ({target})"
            if not destination.exists():
                broken.append(f"{where}: no such file")
            elif anchor:
                if destination.suffix != ".md":
                    broken.append(f"{where}: an anchor into a page that is not Markdown")
                elif anchor not in anchors(destination.read_text(encoding="utf-8")):
                    broken.append(f"{where}: no heading with that anchor")
    assert checked > 100  # README and docs/ link to each other throughout
    assert not broken, "\n".join(broken)


def test_every_ecemu_option_the_docs_and_profiles_name_exists():
    """An option written after ``ecemu SUBCOMMAND`` in the docs, the profiles, the scripts or the
    source is one that ``ecemu SUBCOMMAND --help`` lists (a profile once named ``--network-rtt``)."""
    pages = [*markdown_pages(), *sorted((ROOT / "profiles").rglob("*.toml")), *sorted((ROOT / "scripts").iterdir()),
             *sorted((ROOT / "emulator").rglob("*.py"))]
    named = [(page, *found) for page in pages if page.is_file()
             for found in named_options(page.read_text(encoding="utf-8"))]
    assert len(named) > 50
    known = {sub: set(re.findall(r"--[a-z][a-z0-9-]*", ecemu_help(sub))) for sub in {sub for _, sub, _, _ in named}}
    unknown = [f"{page.relative_to(ROOT)}:{line}: ecemu {sub} {option}" for page, sub, option, line in named
               if option not in known[sub]]
    assert not unknown, "\n".join(unknown)


def test_the_readers_of_citations_and_anchors_read_what_they_should():
    """The parsing above, on known text: a citation over a comment's line break, two sections in
    one citation, a placeholder; GitHub's anchors for headings with code, punctuation and links."""
    code = '# as seen (REFERENCE.md "Boot and\n# basics"; REFERENCE.md "CMUX", "PPP")\nx = 1  # REFERENCE.md "<section>"'
    assert citations(code) == [("REFERENCE.md", "Boot and basics", 1), ("REFERENCE.md", "CMUX", 2),
                               ("REFERENCE.md", "PPP", 2)]
    docstring = '    """AT+X (docs/reference/tls.md "Certificate\n    checks")."""'
    assert citations(docstring) == [("docs/reference/tls.md", "Certificate checks", 1)]
    assert citations('see README, "In CI"') == [("README.md", "In CI", 1)]
    assert slug("The line's rate: `--line usb` or `--line uart`") == "the-lines-rate---line-usb-or---line-uart"
    assert slug("TCP/IP: AT+QIOPEN and its family") == "tcpip-atqiopen-and-its-family"
    assert slug("HTTP(S)") == "https"
    assert slug("RFC 2217 (`--tcp`)") == "rfc-2217---tcp"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}
    assert links("[x](a.md#b) `[y](c.md)`\n```\n[z](d.md)\n```\n[w]: e.md\n") == [("a.md#b", 1), ("e.md", 5)]
    assert named_options("`ecemu run --link L & firmware --x`\necemu trace FILE --summary # --not") == [
        ("run", "--link", 1), ("trace", "--summary", 2)]
