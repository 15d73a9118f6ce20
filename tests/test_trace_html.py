"""``ecemu trace FILE --html OUT``: the session as a sequence diagram, checked in a real headless
browser (Chromium: after its scripts ran, under the page's own Content-Security-Policy)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ecemu.api import Emulator
from ecemu.trace_html import render_html
from ecemu.shell.trace import read_entries
from tests.host import AtHost
from tests.parts import require
from tests.tls_servers import TlsServer, echo

needs_chromium = pytest.mark.needs("chromium")  # scripts/test installs Debian's (apt-get, as root)


class Element:
    def __init__(self, tag: str, attrs: dict[str, str]):
        self.tag, self.attrs = tag, attrs
        self.classes = set(attrs.get("class", "").split())
        self.text = ""


class Dom(HTMLParser):
    """Every element of a page with its attributes and the text inside it."""

    VOID = {"meta", "input", "br", "img", "link", "hr"}

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.elements.append(element)
        if tag not in self.VOID:
            self._open.append(element)

    def handle_endtag(self, tag):
        while self._open:
            if self._open.pop().tag == tag:
                break

    def handle_data(self, data):
        for element in self._open:
            element.text += data

    def find(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Element]:
        return [e for e in self.elements if (tag is None or e.tag == tag) and (cls is None or cls in e.classes)
                and all(e.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def by_id(self, ident: str) -> Element:
        (element,) = self.find(id=ident)
        return element


def chromium(tmp_path: Path, *args: str) -> bytes:
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    done = subprocess.run(
        [require("chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", *args],
        capture_output=True, timeout=90, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout


def browser_dom(tmp_path: Path, page: Path, fragment: str = "") -> Dom:
    """The page's DOM after its scripts ran, as Chromium serialises it."""
    return Dom(chromium(tmp_path, "--dump-dom", page.as_uri() + fragment).decode())


@pytest.fixture(scope="module")
def session_trace(tmp_path_factory) -> Path:
    """A real session's trace: commands (one the emulator does not know), a verified-free TLS
    connection to a real server, data both ways, URCs, a fault."""
    folder = tmp_path_factory.mktemp("session")
    trace = folder / "trace.jsonl"
    with TlsServer(behaviour=echo) as server:
        emulator = Emulator(ufs=folder / "ufs", trace=trace).start()
        try:
            emulator.wait_for_boot()
            with AtHost(emulator.port) as host:
                host.ask('AT+CMEE=2;+QSSLCFG="sni",1,1')
                host.ask("AT+QIACT=1")
                assert host.ask("AT+QGPS=1").endswith(b"\r\nERROR\r\n")
                host.ask(f'AT+QSSLOPEN=1,1,0,"127.0.0.1",{server.port},0')
                host.expect(b"+QSSLOPEN: 0,0\r\n")
                emulator.control.latency(ms=0)
                host.ask("AT+QSSLSEND=0,5", final=b"> ")
                host.write(b"hello")
                host.until_final()
                host.expect(b'"recv",0\r\n')
                host.ask("AT+QSSLCLOSE=0")
        finally:
            emulator.stop()
    return trace


def write_html(trace: Path, out: Path) -> None:
    shown = subprocess.run([sys.executable, "-m", "ecemu", "trace", str(trace), "--html", str(out)],
                           check=True, capture_output=True, text=True, timeout=30).stdout
    assert shown == f"html: {out}\n"


def entries_of(trace: Path) -> list[dict]:
    return list(read_entries(trace.read_text().splitlines()))


@needs_chromium
def test_a_real_session_is_drawn_with_its_lanes_rows_and_arrows(session_trace, tmp_path):
    page = tmp_path / "session.html"
    write_html(session_trace, page)
    dom = browser_dom(tmp_path, page)
    entries = entries_of(session_trace)

    assert [e.text for e in dom.find("span", "lane-name")] == ["host", "module", "network"]
    rows = dom.find("div", "row")
    assert [row.attrs["data-kind"] for row in rows if "data-kind" in row.attrs] == [e["kind"] for e in entries]
    assert dom.by_id("shown").text == f"{len(entries)} of {len(entries)} rows shown"  # the script ran

    def count(kind: str) -> int:
        return sum(1 for e in entries if e["kind"] == kind)

    arrows = dom.find("div", "arrow")
    assert len(arrows) == sum(count(k) for k in ("host_in", "host_out", "net_effect", "net_event", "line"))
    # Control lines: the host's (DTR when it opened the port) rightwards, the module's leftwards.
    signals = [a for a in arrows if "signal" in a.classes]
    assert [(a.text, "right" in a.classes) for a in signals] == [
        (f'{e["name"].upper()} {"on" if e["active"] else "off"}', e["by"] == "host")
        for e in entries if e["kind"] == "line"]
    assert signals  # the session has some (RI pulses for its URCs at least)
    for kind, classes in [("host_in", {"from-host", "to-module", "right"}),
                          ("host_out", {"from-module", "to-host", "left"}),
                          ("net_effect", {"from-module", "to-network", "right"}),
                          ("net_event", {"from-network", "to-module", "left"})]:
        assert len([a for a in arrows if classes <= a.classes and "signal" not in a.classes]) == count(kind), kind

    assert [n.text for n in dom.find("div", "command")] == [e["line"] for e in entries if e["kind"] == "command"]
    assert [n.text for n in dom.find("div", "error")] == ["ERROR"]
    assert {n.text for n in dom.find("div", "ok")} == {"OK", "SEND OK"}
    assert any(n.text.startswith("+QSSLURC: \"recv\",0") for n in dom.find("div", "urc"))
    assert any("established" in n.text and "TLSv1.2" in n.text for n in dom.find("div", "tls"))
    assert [f.text.split()[:2] for f in dom.find("div", "fault")] == [["FAULT", "latency"]]

    # Data is its size until clicked; the bytes are in the collapsed part, shown as text or hex.
    summaries = [s.text for s in dom.find("summary") if s.text.split()[1:2] in (["bytes"], ["byte"])]
    assert "5 bytes hello" in summaries
    assert any(d.text.startswith("000000  16 03 0") for d in dom.find("pre"))  # a TLS record, as hex
    assert [d.text.split(":")[0] for d in dom.find("details") if "open" in d.attrs] == ["ecemu coverage"]

    assert [r.text for r in dom.find("tr", "missing")] == ["AT+QGPS=1ERROR 1not implemented"]



TWO_MODEMS = [  # as `ecemu run --count 2` writes: each modem's times count from its own start
    {"t": 0.020, "modem": 0, "kind": "command", "line": "AT+CSQ"},
    {"t": 0.010, "modem": 1, "kind": "command", "line": "AT+CGSN"},
    {"t": 0.021, "modem": 0, "kind": "result", "text": "OK"},
    {"t": 0.011, "modem": 1, "kind": "host_out", "data": "\r\nOK\r\n"},
    {"t": 0.012, "modem": 1, "kind": "result", "text": "OK"},
    {"t": 1.500, "modem": 0, "kind": "urc", "lines": ["+CSQ: 5,99"]},
    {"t": 1.501, "modem": 1, "kind": "urc", "lines": ["RDY"]},
]


def test_times_pauses_and_badges_are_each_modem_s_own():
    dom = Dom(render_html(TWO_MODEMS))
    assert [b.text for b in dom.find("span", "modem")] == ["#0", "#1", "#0", "#1", "#1", "#0", "#1"]
    deltas = [r.text.rsplit("+", 1)[1] for r in dom.find("span", "delta")]
    assert deltas == ["0.0 ms", "0.0 ms", "1.0 ms", "1.0 ms", "1.0 ms", "1479.0 ms", "1489.0 ms"]
    assert [(p.attrs["data-modem"], p.text) for p in dom.find("div", "pause")] == [
        ("0", "… 1.479 s pass …"), ("1", "… 1.489 s pass …")]


@needs_chromium
def test_a_link_chooses_what_the_diagram_shows(tmp_path):
    trace = tmp_path / "two.jsonl"
    trace.write_text("".join(json.dumps(e) + "\n" for e in TWO_MODEMS))
    page = tmp_path / "two.html"
    write_html(trace, page)
    dom = browser_dom(tmp_path, page, "#kinds=command,urc&modem=1")
    assert dom.by_id("shown").text == f"3 of {len(TWO_MODEMS)} rows shown"  # not host_out, not modem 0
    shown = [(r.attrs["data-modem"], r.attrs.get("data-kind")) for r in dom.find("div", "row")
             if "hidden" not in r.classes]
    assert shown == [("1", "command"), ("1", "result"), ("1", None), ("1", "urc")]


HOSTILE = [
    {"t": 0.1, "modem": 0, "kind": "host_in",
     "data": "AT</pre></details><script>document.title='pwned'</script>\r"},
    {"t": 0.1, "modem": 0, "kind": "command", "line": "AT<img src=x onerror=\"document.title='pwned'\">"},
    {"t": 0.2, "modem": 0, "kind": "result", "text": "<b id=\"injected\">OK</b>"},
    {"t": 0.3, "modem": 1, "kind": "urc",
     "lines": ["+X: \"</div><iframe src='http://127.0.0.1:9/'>", "<svg onload=alert(1)>"]},
    {"t": 1.5, "modem": 1, "kind": "<script>alert(1)</script>", "x\" onmouseover=\"alert(1)": "y"},
    {"t": 1.6, "modem": "\"><script>alert(2)</script>", "kind": "fault", "name": "<u>x</u>",
     "args": {"<k>": "</span>"}},
    {"t": 1.7, "modem": 0, "kind": "net_event", "event": "<TcpData>", "conn_id": "<1>", "data": "\x00\x01<&>"},
]


def hostile_trace(folder: Path) -> Path:
    trace = folder / "<hostile> & \"trace\".jsonl"
    trace.write_text("\n".join([json.dumps(e) for e in HOSTILE] + ["{not json", "[1, 2]", '{"t": 1}']) + "\n")
    return trace


@needs_chromium
def test_hostile_trace_content_stays_text_in_the_browser(tmp_path):
    trace = hostile_trace(tmp_path)
    page = tmp_path / "hostile.html"
    write_html(trace, page)
    dom = browser_dom(tmp_path, page)
    assert [e.tag for e in dom.elements if e.tag in {"script", "img", "iframe", "svg", "b", "u"}] == ["script"]
    assert not dom.find(id="injected")
    assert not [e for e in dom.elements if any(a.startswith("on") for a in e.attrs)]
    (title,) = dom.find("title")
    assert title.text == 'ecemu trace: <hostile> & "trace".jsonl'
    assert dom.by_id("shown").text == f"{len(HOSTILE)} of {len(HOSTILE)} rows shown"
    assert [n.text for n in dom.find("div", "command")] == ["AT<img src=x onerror=\"document.title='pwned'\">"]
    assert "<script>alert(1)</script>" in dom.find("div", "other")[0].text
    assert [o.attrs["value"] for o in dom.find("option")][1:] == ["\"><script>alert(2)</script>", "0", "1"]


def test_the_page_is_self_contained_and_allows_only_its_own_style_and_script(session_trace):
    assert "://" not in render_html(entries_of(session_trace))  # nothing to fetch from anywhere
    page = render_html(HOSTILE, title="</title><script>alert(1)</script>")
    dom = Dom(page)
    (csp,) = [m.attrs["content"] for m in dom.find("meta")
              if m.attrs.get("http-equiv") == "Content-Security-Policy"]
    (style,) = dom.find("style")
    (script,) = dom.find("script")

    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    assert f"style-src {digest(style.text)};" in csp and f"script-src {digest(script.text)};" in csp
    assert csp.startswith("default-src 'none';")
    assert not re.search(r"\s(src|href|on\w+)=\"", page, re.I)
    assert "<script>alert" not in page and "</title><script>" not in page


def test_pauses_are_marked_and_big_data_is_cut_when_shown():
    entries = [{"t": 0.0, "modem": 0, "kind": "host_in", "data": "A" * 10000},
               {"t": 2.25, "modem": 0, "kind": "host_out", "data": "\x00" * 3}]
    dom = Dom(render_html(entries))
    assert [r.text for r in dom.find("div", "pause")] == ["… 2.250 s pass …"]
    pres = [p.text for p in dom.find("pre")]
    assert pres[0] == "A" * 4096 + "\n… 5904 more bytes"
    assert pres[1].startswith("000000  00 00 00 ")
    assert [s.text for s in dom.find("summary")][-2:] == ["10000 bytes " + "A" * 40 + "…", "3 bytes 00 00 00"]


def test_the_transcript_and_the_summary_read_the_same_hostile_file(tmp_path):
    trace = hostile_trace(tmp_path)
    for option in ([], ["--summary"]):
        shown = subprocess.run([sys.executable, "-m", "ecemu", "trace", str(trace), *option],
                               check=True, capture_output=True, text=True, timeout=30).stdout.splitlines()
        if not option:
            assert len(shown) == len(HOSTILE)  # the three lines that are no entries are left out
            assert "AT<img src=x onerror=" in shown[1]
        else:
            assert shown[0] == "ecemu coverage: 1 command line, 1 command, 0 not implemented by the emulator"
