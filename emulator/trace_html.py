"""A session trace as a sequence diagram in one self-contained HTML file (``ecemu trace --html``).

Three lanes, host, module and network, and one row per trace entry down a time axis: bytes between
host and module and between module and network as arrows labelled with their size (a click shows
them), commands, results, URCs and TLS events as notes on the module's lane, faults across all
lanes, control-line changes as arrows (the host's DTR and RTS rightwards, the module's RI, DCD,
CTS and DSR leftwards), pauses of half a second or more marked. The coverage table of the session
sits on top. Under AT+CMUX each DLC gets a lane between host and module: its frames as arrows from
and to the host, its opening and closing, control messages, and the commands, results, URCs and PPP
states of that channel as notes on it; the data calls' flows and DNS answers are notes on the
network's.

A trace may come from anywhere (a field report), so everything taken from it is escaped, and the
page's Content-Security-Policy allows nothing but its own inline style and script, by hash: no
request leaves the page and no script from the trace could run even if one slipped through.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from typing import Any, Iterable

from .coverage import Coverage, coverage_of_trace
from .shell.trace import session_start, visible

PREVIEW_CHARS = 40  # of data shown on an arrow before a click
DATA_SHOWN_MAX = 4096  # bytes of one data item shown expanded; a trace may hold megabytes
PAUSE_MARKED = 0.5  # seconds between rows from which the pause gets its own row
SUCCESS_RESULTS = {"OK", "CONNECT", "SEND OK"}
_KIND_NAME = re.compile(r"[a-z_]{1,20}")

# Which lane an arrow starts at and ends at; the lanes are host, module, network, left to right.
ARROWS = {"host_in": ("host", "module"), "host_out": ("module", "host"),
          "net_effect": ("module", "network"), "net_event": ("network", "module")}
NOTE_CLASS = {"command": "command", "urc": "urc", "tls": "tls", "received": "received"}

STYLE = """
:root { --host: 16.667%; --module: 50%; --network: 83.333%; --line: #b9c0c8; }
* { box-sizing: border-box; }
body { font: 13px/1.35 system-ui, sans-serif; margin: 0; color: #1d232a; background: #fff; }
header { padding: 10px 16px; border-bottom: 1px solid #dde2e7; }
h1 { font-size: 16px; margin: 0 0 6px; }
code, pre, .mono { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
pre { margin: 4px 0 0; white-space: pre-wrap; word-break: break-all; background: #f4f6f8;
      padding: 4px 6px; border-radius: 3px; text-align: left; }
pre.hex { white-space: pre; word-break: normal; overflow-x: auto; font-size: 11px; }
.controls label { margin-right: 12px; white-space: nowrap; }
.controls button { margin-right: 12px; }
table.coverage { border-collapse: collapse; margin: 6px 0; }
table.coverage td, table.coverage th { border: 1px solid #dde2e7; padding: 2px 8px; text-align: left; }
table.coverage td.count { text-align: right; }
tr.missing td { background: #fdecea; }
.lanes-head, .row { display: grid; grid-template-columns: 118px 1fr; }
.lanes-head { position: sticky; top: 0; background: #fff; border-bottom: 2px solid #1d232a; z-index: 2;
              font-weight: 600; }
.lanes-head .lane-names { position: relative; height: 26px; }
.lane-name { position: absolute; top: 4px; transform: translateX(-50%); }
.lane-name.host { left: var(--host); } .lane-name.module { left: var(--module); }
.lane-name.network { left: var(--network); }
.time { padding: 3px 8px; color: #56616d; text-align: right; border-right: 1px solid #dde2e7; }
.time .delta { display: block; font-size: 10px; color: #8a949e; }
.lanes { position: relative; padding: 3px 0; min-height: 26px;
  background-image: linear-gradient(to right,
    transparent calc(var(--host) - 1px), var(--line) calc(var(--host) - 1px),
    var(--line) calc(var(--host) + 1px), transparent calc(var(--host) + 1px),
    transparent calc(var(--module) - 1px), var(--line) calc(var(--module) - 1px),
    var(--line) calc(var(--module) + 1px), transparent calc(var(--module) + 1px),
    transparent calc(var(--network) - 1px), var(--line) calc(var(--network) - 1px),
    var(--line) calc(var(--network) + 1px), transparent calc(var(--network) + 1px)); }
.arrow { position: relative; width: 33.333%; border-bottom: 2px solid #3d6fb6; text-align: center;
         padding: 0 10px 1px; }
.arrow.from-host, .arrow.to-host { margin-left: var(--host); }
.arrow.from-network, .arrow.to-network { margin-left: var(--module); }
.arrow::after { content: ""; position: absolute; bottom: -6px; border: 5px solid transparent; }
.arrow.right::after { right: -1px; border-left: 9px solid #3d6fb6; border-right: 0; }
.arrow.left::after { left: -1px; border-right: 9px solid #3d6fb6; border-left: 0; }
.arrow.net { border-bottom-color: #7a5cb0; }
.arrow.net.right::after { border-left-color: #7a5cb0; } .arrow.net.left::after { border-right-color: #7a5cb0; }
.size, .event { font-weight: 600; }
.arrow, .note { overflow-wrap: anywhere; }
summary { cursor: pointer; }
.note { position: relative; width: max-content; max-width: 31%; transform: translateX(-50%);
        border: 1px solid; border-radius: 4px; padding: 1px 7px; background: #fff; z-index: 1;
        word-break: break-all; }
.note.on-host { left: var(--host); } .note.on-module { left: var(--module); }
.note.on-network { left: var(--network); }
.note.command { border-color: #1d232a; font-weight: 600; }
.note.ok { border-color: #2e8540; background: #e7f4ea; color: #1e5c2b; }
.note.error { border-color: #c62828; background: #fdecea; color: #8e1c1c; font-weight: 600; }
.note.urc { border-color: #c77700; background: #fff4e0; }
.note.tls { border-color: #7a5cb0; background: #f1ecf9; }
.note.received { border-color: #7a5cb0; border-style: dashed; }
.note.other { border-color: #8a949e; border-style: dotted; }
.session { margin: 6px 0 0; padding: 2px 8px; border-top: 2px solid #1d232a; font-weight: 600; }
.arrow.signal { border-bottom: 2px dashed #2e8540; }
.arrow.signal.right::after { border-left-color: #2e8540; } .arrow.signal.left::after { border-right-color: #2e8540; }
.signal .level { font-weight: 600; }
.fault { margin: 0 6px; padding: 2px 8px; background: #c62828; color: #fff; font-weight: 600;
         border-radius: 3px; text-align: center; }
.row.pause .lanes { min-height: 18px; text-align: center; color: #8a949e; font-style: italic; }
.row.hidden { display: none; }
.modem { font-size: 10px; color: #fff; background: #56616d; border-radius: 3px; padding: 0 3px; }
"""

SCRIPT = """
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll('.row[data-kind]'));
  var pauses = Array.prototype.slice.call(document.querySelectorAll('.row.pause'));
  var boxes = Array.prototype.slice.call(document.querySelectorAll('input[data-show]'));
  var modem = document.getElementById('modem');
  var shown = document.getElementById('shown');
  function update() {
    var kinds = {};
    boxes.forEach(function (box) {
      box.getAttribute('data-show').split(' ').forEach(function (k) { kinds[k] = box.checked; });
    });
    var wanted = modem ? modem.value : '';
    var count = 0;
    rows.forEach(function (row) {
      var kind = row.getAttribute('data-kind');
      var visible = kinds[kind] !== false && (!wanted || row.getAttribute('data-modem') === wanted);
      row.classList.toggle('hidden', !visible);
      if (visible) { count += 1; }
    });
    pauses.forEach(function (row) {
      row.classList.toggle('hidden', !!wanted && row.getAttribute('data-modem') !== wanted);
    });
    shown.textContent = count + ' of ' + rows.length + ' rows shown';
  }
  // A link may choose the view: #kinds=command,result,urc&modem=1
  var asked = {};
  location.hash.replace(/^#/, '').split('&').forEach(function (part) {
    var pair = part.split('=');
    if (pair.length === 2) { asked[pair[0]] = decodeURIComponent(pair[1]); }
  });
  if (asked.kinds) {
    var only = asked.kinds.split(',');
    boxes.forEach(function (box) {
      box.checked = box.getAttribute('data-show').split(' ').some(function (k) { return only.indexOf(k) >= 0; });
    });
  }
  if (modem && asked.modem !== undefined) { modem.value = asked.modem; }
  boxes.forEach(function (box) { box.addEventListener('change', update); });
  if (modem) { modem.addEventListener('change', update); }
  function openAll(open) {
    document.querySelectorAll('.lanes details').forEach(function (d) { d.open = open; });
  }
  document.getElementById('expand').addEventListener('click', function () { openAll(true); });
  document.getElementById('collapse').addEventListener('click', function () { openAll(false); });
  update();
})();
"""

# The filters: label, the kinds they show or hide, shown at first.
FILTERS = [("bytes host ⇄ module", "host_in host_out", True),
           ("commands and results", "command result", True),
           ("URCs", "urc", True),
           ("network", "net_effect net_event", True),
           ("TLS and sockets", "tls socket received", True),
           ("CMUX", "mux mux_frame mux_channel mux_control", True),
           ("PPP", "ppp_call ppp_phase ppp_state ppp_auth ppp_ip ppp_frame ppp_echo ppp_flow ppp_dns "
                   "ppp_protocol_reject ppp_protocol_rejected", True),
           ("control lines", "line line_format sleep lost", True),
           ("faults", "fault", True)]
NETWORK_NOTES = {"ppp_flow", "ppp_dns"}  # notes about the network side of a data call


def _channels(entries: list[dict]) -> list[int]:
    """The DLCs the trace shows activity on, in order (none without AT+CMUX)."""
    seen: set[int] = set()
    for entry in entries:
        kind = entry.get("kind", "")
        for key in ("dlci", "channel"):
            value = entry.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 63 and (
                    kind.startswith("mux") or "channel" in entry):
                seen.add(value)
    return sorted(seen)


def _lane_style(channels: list[int]) -> str:
    """Lane positions and arrow spans for host, one lane per DLC, module and network."""
    if not channels:
        return ""
    names = ["host", *(f"dlc-{n}" for n in channels), "module", "network"]
    position = {name: (index + 0.5) * 100 / len(names) for index, name in enumerate(names)}
    variables = " ".join(f"--{name}: {value:.3f}%;" for name, value in position.items())
    stripes = ", ".join(f"transparent calc(var(--{n}) - 1px), var(--line) calc(var(--{n}) - 1px), "
                        f"var(--line) calc(var(--{n}) + 1px), transparent calc(var(--{n}) + 1px)" for n in names)
    rules = [f":root {{ {variables} }}", f".lanes {{ background-image: linear-gradient(to right, {stripes}); }}",
             f".arrow.from-host.to-module, .arrow.from-module.to-host {{ margin-left: var(--host); "
             f"width: {position['module'] - position['host']:.3f}%; }}",
             f".arrow.from-network, .arrow.to-network {{ margin-left: var(--module); "
             f"width: {position['network'] - position['module']:.3f}%; }}"]
    for name in names[1:-2]:
        rules.append(f".arrow.from-host.to-{name}, .arrow.from-{name}.to-host {{ margin-left: var(--host); "
                     f"width: {position[name] - position['host']:.3f}%; }}")
        rules.append(f".note.on-{name}, .lane-name.{name} {{ left: var(--{name}); }}")
    return "\n" + "\n".join(rules) + "\n"


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def esc(value: Any) -> str:
    return html.escape(value if isinstance(value, str) else str(value), quote=True)


def _bytes_text(value: Any) -> str:
    """A data field as the trace stores it (latin-1 text); anything else as its text."""
    return value if isinstance(value, str) else json.dumps(value)


_DUMP_TEXT = bytes(code if 32 <= code < 127 else ord(".") for code in range(256))
_READABLE = bytes(range(32, 127)) + b"\r\n"


def _hex_dump(raw: bytes) -> str:
    return "\n".join(f"{offset:06x}  {raw[offset:offset + 16].hex(' '):<47}  "
                     f"{raw[offset:offset + 16].translate(_DUMP_TEXT).decode('ascii')}"
                     for offset in range(0, len(raw), 16))


def _data_html(data: str) -> str:
    """Data as its size, expanding on click: as text when it reads as text, else as a hex dump."""
    size = len(data)
    shown = data[:DATA_SHOWN_MAX]
    raw = shown.encode("latin-1", "replace")  # the trace's bytes; "?" for what no byte can be
    if len(raw.translate(None, _READABLE)) <= 0.1 * len(raw):
        body, preview = visible(shown), visible(data[:PREVIEW_CHARS + 1])
        cut, hex_class = len(preview) > PREVIEW_CHARS, ""
    else:
        body, preview = _hex_dump(raw), raw[:PREVIEW_CHARS // 3].hex(" ")
        cut, hex_class = size > PREVIEW_CHARS // 3, ' class="hex"'
    if size > DATA_SHOWN_MAX:
        body += f"\n… {size - DATA_SHOWN_MAX} more bytes"
    if cut:
        preview = preview[:PREVIEW_CHARS] + "…"
    return (f'<details><summary><span class="size">{size} byte{"s" * (size != 1)}</span> '
            f'<code>{esc(preview)}</code></summary><pre{hex_class}>{esc(body)}</pre></details>')


def _fields_text(entry: dict, skip: Iterable[str]) -> str:
    skipped = set(skip) | {"t", "modem", "kind"}
    return " ".join(f"{key}={value if isinstance(value, str) else json.dumps(value)}"
                    for key, value in entry.items() if key not in skipped and value not in ([], {}, ""))


def _arrow(kind: str, entry: dict) -> str:
    start, end = ARROWS[kind]
    direction = "right" if (start, end) in (("host", "module"), ("module", "network")) else "left"
    net = " net" if kind.startswith("net_") else ""
    ends = f"from-{start} to-{end}"
    parts = []
    if net:
        name = entry.get("effect" if kind == "net_effect" else "event", "?")
        conn = entry.get("conn_id")
        parts.append(f'<span class="mono">{esc(name)}</span>')
        if conn is not None:
            parts.append(f"#{esc(conn)}")
        rest = _fields_text(entry, ("effect", "event", "conn_id", "data"))
        if rest:
            parts.append(f'<span class="mono">{esc(rest)}</span>')
    if "data" in entry:
        parts.append(_data_html(_bytes_text(entry["data"])))
    return f'<div class="arrow {direction}{net} {ends}">{" ".join(parts)}</div>'


def _frame_arrow(entry: dict, lane: str) -> str:
    """A 27.010 frame between the host and its DLC's lane."""
    inbound = entry.get("direction") == "in"
    ends = f"from-host to-{lane}" if inbound else f"from-{lane} to-host"
    if "discarded" in entry:
        label = f"discarded: {_bytes_text(entry['discarded'])}"
    else:
        size = entry.get("size", 0)
        label = f"{_bytes_text(entry.get('type', '?'))}{' P/F' if entry.get('pf') else ''}" + (
            f" {size} bytes" if size else "")
    return f'<div class="arrow {"right" if inbound else "left"} {ends}"><span class="mono">{esc(label)}</span></div>'


def _note(kind: str, entry: dict, lane: str = "module") -> str:
    on = f"on-{lane}"
    if kind == "command":
        return f'<div class="note {on} command mono">{esc(visible(_bytes_text(entry.get("line", ""))))}</div>'
    if kind == "result":
        text = _bytes_text(entry.get("text", ""))
        verdict = "ok" if text in SUCCESS_RESULTS else "error"
        return f'<div class="note {on} {verdict} mono">{esc(visible(text))}</div>'
    if kind == "urc":
        lines = entry.get("lines", [])
        lines = [_bytes_text(line) for line in (lines if isinstance(lines, list) else [lines])]
        first = esc(visible(lines[0])) if lines else ""
        data = _data_html("\r\n".join(lines[1:])) if len(lines) > 1 else ""
        return f'<div class="note {on} urc"><span class="mono">{first}</span>{data}</div>'
    if kind.startswith("mux") or kind.startswith("ppp"):
        rest = _fields_text(entry, ("channel",))
        return (f'<div class="note {on} other"><span class="event">{esc(kind)}</span> '
                f'<span class="mono">{esc(rest)}</span></div>')
    if kind in ("tls", "socket"):
        client, event, detail = entry.get("client", "?"), entry.get("event", ""), entry.get("detail", "")
        rest = _fields_text(entry, ("client", "event", "detail"))
        what = "TLS client" if kind == "tls" else "socket"
        return (f'<div class="note on-module tls">{what} {esc(client)}: '
                f'<span class="event">{esc(event)}</span> {esc(detail)} '
                f'<span class="mono">{esc(rest)}</span></div>')
    if kind == "received":
        size = entry.get("size", "?")
        return (f'<div class="note on-module received">client {esc(entry.get("client", "?"))} received '
                f'<span class="size">{esc(size)} bytes</span> of plaintext</div>')
    return (f'<div class="note on-module other"><span class="event">{esc(kind)}</span> '
            f'<span class="mono">{esc(_fields_text(entry, ()))}</span></div>')


def _lane_of(kind: str, entry: dict, channels: set[int] | frozenset[int]) -> str:
    if kind in NETWORK_NOTES:
        return "network"
    number = entry.get("dlci") if kind.startswith("mux") else entry.get("channel")
    if kind in ("mux", "mux_control"):
        number = 0  # the multiplexer itself: the control channel's lane
    if isinstance(number, int) and not isinstance(number, bool) and number in channels:
        return f"dlc-{number}"
    return "module"


def _signal(entry: dict) -> str:
    """A control line's change as an arrow: the host's DTR and RTS towards the module, the module's
    RI, DCD, CTS and DSR towards the host."""
    name = str(entry.get("name", "?")).upper()
    active = entry.get("active")
    level = "on" if active is True else "off" if active is False else "?"
    by_host = entry.get("by") == "host"
    direction = "right from-host to-module" if by_host else "left from-module to-host"
    return f'<div class="arrow signal {direction}"><span class="level">{esc(name)} {level}</span></div>'


def _row_body(kind: str, entry: dict, channels: set[int] | frozenset[int] = frozenset()) -> str:
    if kind in ARROWS:
        return _arrow(kind, entry)
    if kind == "line":
        return _signal(entry)
    if kind == "line_format":
        framing = esc(entry.get("framing", "?"))
        return f'<div class="note on-module other">line now <span class="mono">{framing}</span></div>'
    if kind == "sleep":
        text = "asleep (AT+QSCLK=1, DTR off)" if entry.get("asleep") else "awake"
        return f'<div class="note on-module other">{esc(text)}</div>'
    lane = _lane_of(kind, entry, channels)
    if kind == "mux_frame" and lane != "module":
        return _frame_arrow(entry, lane)
    if kind == "fault":
        args = entry.get("args", {})
        args_text = " ".join(f"{k}={v}" for k, v in args.items()) if isinstance(args, dict) else str(args)
        return (f'<div class="fault">FAULT {esc(entry.get("name", "?"))} '
                f'<span class="mono">{esc(args_text)}</span></div>')
    return _note(kind, entry, lane)


def _coverage_html(coverage: Coverage) -> str:
    if not coverage.seen:
        return "<p>No command line in this trace.</p>"
    rows = []
    for use in coverage.rows():
        missing = not use.command.implemented
        results = ", ".join(f"{text} {count}" for text, count in use.result_counts())
        row_class = ' class="missing"' if missing else ""
        rows.append(f'<tr{row_class}><td class="mono">{esc(use.command.key)}</td>'
                    f'<td class="count">{use.count}</td><td class="mono">{esc(results)}</td>'
                    f'<td>{"not implemented" if missing else ""}</td></tr>')
    summary = esc(coverage.render()[0])
    return (f'<details open><summary>{summary}</summary><table class="coverage"><thead><tr><th>command</th>'
            f'<th>count</th><th>results</th><th></th></tr></thead><tbody>{"".join(rows)}</tbody></table></details>')


def render_html(entries: Iterable[dict], title: str = "session trace") -> str:
    """The page for a trace's entries (``ecemu.shell.trace.read_entries``)."""
    entries = list(entries)
    channels = _channels(entries)
    channel_set = set(channels)
    style = STYLE + _lane_style(channels)
    modems = sorted({str(entry.get("modem", 0)) for entry in entries})
    several = len(modems) > 1
    rows: list[str] = []
    # Each modem's times count from its own start (--count), and again from each session's start
    # (runs appended to one file): deltas and pauses are per modem, within a session.
    previous: dict[str, float] = {}
    for entry in entries:
        kind_text = entry.get("kind", "")
        kind = kind_text if _KIND_NAME.fullmatch(kind_text) else "other"
        t = entry["t"]
        modem = str(entry.get("modem", 0))
        if kind_text == "session":
            previous.pop(modem, None)
            rows.append(f'<div class="row" data-kind="session" data-modem="{esc(modem)}"><div class="time mono">'
                        f'{t:.3f}</div><div class="lanes"><div class="session">session started '
                        f'{esc(session_start(entry))} (modem {esc(modem)}, pid {esc(entry.get("pid", "?"))})'
                        f'</div></div></div>')
            continue
        delta = max(0.0, t - previous.get(modem, t))  # a trace without session entries going back in time
        if delta >= PAUSE_MARKED:
            rows.append(f'<div class="row pause" data-modem="{esc(modem)}"><div class="time"></div>'
                        f'<div class="lanes">… {delta:.3f} s pass …</div></div>')
        previous[modem] = t
        badge = f' <span class="modem">#{esc(modem)}</span>' if several else ""
        body = _row_body(kind_text, entry, channel_set)  # an unknown kind gets a note naming it, escaped
        rows.append(f'<div class="row" data-kind="{kind}" data-modem="{esc(modem)}">'
                    f'<div class="time mono">{t:.3f}{badge}<span class="delta">+{delta * 1000:.1f} ms</span></div>'
                    f'<div class="lanes">{body}</div></div>')
    filters = "".join(f'<label><input type="checkbox" data-show="{kinds}"{" checked" if on else ""}> '
                      f'{esc(label)}</label>' for label, kinds, on in FILTERS)
    modem_select = ""
    if several:
        options = "".join(f'<option value="{esc(m)}">modem {esc(m)}</option>' for m in modems)
        modem_select = f'<label>modem <select id="modem"><option value="">all</option>{options}</select></label>'
    csp = (f"default-src 'none'; style-src {_csp_hash(style)}; script-src {_csp_hash(SCRIPT)}; "
           "img-src 'none'; form-action 'none'; base-uri 'none'")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ecemu trace: {esc(title)}</title>
<style>{style}</style>
</head>
<body>
<header>
<h1>ecemu trace: {esc(title)}</h1>
{_coverage_html(coverage_of_trace(entries))}
<div class="controls">{filters}{modem_select}
<button type="button" id="expand">expand all data</button><button type="button" id="collapse">collapse all</button>
<span id="shown">{len(entries)} rows</span></div>
</header>
<div class="lanes-head"><div class="time">seconds</div><div class="lane-names">
<span class="lane-name host">host</span>{"".join(f'<span class="lane-name dlc-{n}">DLC {n}</span>' for n in channels)}<span class="lane-name module">module</span>
<span class="lane-name network">network</span></div></div>
<main id="diagram">
{chr(10).join(rows)}
</main>
<script>{SCRIPT}</script>
</body>
</html>
"""
