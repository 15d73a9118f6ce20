"""The session format (emulator/sessionlog/format.py): written and read back byte for byte, and
every malformed line refused with its line number.

The expected texts below are written out by hand from the format's description, not produced by
the writer under test.
"""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecemu.sessionlog import EVENT, HOST, MODULE, LogError, Record, SessionWriter, read_bytes
from ecemu.sessionlog.format import MAX_LINE, escape, unescape


def test_a_session_is_written_as_its_description_says():
    out = io.BytesIO()
    writer = SessionWriter(out, {"module": "EC800M-CN", "source": "bench, unit 7"})
    writer.record(0.0, MODULE, b"\r\nRDY\r\n")
    writer.record(1.25, HOST, b"AT+QSSLSEND=0,5\r")
    writer.record(1.2504, MODULE, b"AT+QSSLSEND=0,5\r\r\n> ")
    writer.record(1.5, HOST, b"\x00\xff\\\t\x1a")
    writer.record(2.0, MODULE, b"\r\n+QSSLURC: \"recv\",0\r\n", channel=1)
    writer.record(3.0, EVENT, b"host-closed")
    assert out.getvalue().decode() == (
        "# ecemu-session 1\n"
        "# module: EC800M-CN\n"
        "# source: bench, unit 7\n"
        "0.000000 < \\r\\nRDY\\r\\n\n"
        "1.250000 > AT+QSSLSEND=0,5\\r\n"
        "1.250400 < AT+QSSLSEND=0,5\\r\\r\\n>\\x20\n"
        "1.500000 > \\x00\\xff\\\\\\t\\x1a\n"
        "2.000000 <1 \\r\\n+QSSLURC: \"recv\",0\\r\\n\n"
        "3.000000 ! host-closed\n"
    )


def test_a_hand_written_session_reads_as_its_bytes():
    text = (
        "# ecemu-session 1\n"
        "# module: EG800K\n"
        "# normalise: \\+QLTS: .* => +QLTS: <time>\n"
        "# normalise: ^x => y\n"
        "\n"
        "# a comment between records\n"
        "0.5 > AT+CGMM\\r\n"
        "0.51 < AT+CGMM\\r\\r\\nEG800K\\r\\n\\r\\nOK\\r\\n\n"
        "- > AT+QIOPEN=1,0,\"TCP\",\"\\{host}\",\\{port},0,1\\r\n"
        "- < \\r\\n+QIOPEN: 0,0\\r\\n \n"
        "7 <2 données\n"
    ).encode("utf-8")
    info, records = read_bytes(text)
    assert info.format == "session"
    assert info.headers == {"module": "EG800K"}
    assert info.normalise == ["\\+QLTS: .* => +QLTS: <time>", "^x => y"]
    assert [(r.time, r.direction, r.data, r.channel, r.line) for r in records] == [
        (0.5, HOST, b"AT+CGMM\r", 0, 7),
        (0.51, MODULE, b"AT+CGMM\r\r\nEG800K\r\n\r\nOK\r\n", 0, 8),
        (None, HOST, b'AT+QIOPEN=1,0,"TCP","",,0,1\r', 0, 9),
        (None, MODULE, b"\r\n+QIOPEN: 0,0\r\n ", 0, 10),
        (7.0, MODULE, "données".encode("utf-8"), 2, 11),
    ]
    assert records[2].parts == (b'AT+QIOPEN=1,0,"TCP","', "host", b'",', "port", b",0,1\r")
    assert records[2].shown() == 'AT+QIOPEN=1,0,"TCP","\\{host}",\\{port},0,1\\r'


@given(st.binary(max_size=300))
def test_any_bytes_survive_escaping(data):
    text = escape(data)
    assert text.isascii() and "\n" not in text and not text.endswith(" ")
    assert unescape(text) == (data,)


@given(st.lists(st.tuples(st.sampled_from([HOST, MODULE]), st.binary(min_size=1, max_size=80),
                          st.integers(0, 3)), max_size=20))
def test_records_survive_a_round_trip(items):
    records = [Record(index * 0.25, direction, data, channel) for index, (direction, data, channel) in enumerate(items)]
    out = io.BytesIO()
    writer = SessionWriter(out)
    for record in records:
        writer.write(record)
    _, read = read_bytes(out.getvalue())
    assert [(r.time, r.direction, r.data, r.channel) for r in read] == \
        [(r.time, r.direction, r.data, r.channel) for r in records]


@pytest.mark.parametrize("line, message", [
    ("1.0 > AT\\q", "line 3: unknown escape \\q at column 9"),
    ("1.0 > AT\\x4", "line 3: unknown escape \\x at column 9"),
    ("1.0 > AT\\", "line 3: a backslash at the end of the line (truncated escape?)"),
    ("1.0 > AT\x01\\r", "line 3: binary data (byte 0x01) at column 9"),
    ("1.0 ? AT", "line 3: not a record: '1.0 ? AT' (the direction is >, < or !"),
    ("1,0 > AT", "line 3: not a record: '1,0 > AT' (a record is TIME DIRECTION DATA; TIME is seconds or -)"),
    ("1.0  > AT", "line 3: not a record"),
    ("0.5 > AT", "line 3: time 0.5 goes back (the line before says 1.000000)"),
    ("1.5 ! \\{x}", "line 3: placeholder \\{x} where none is allowed"),
    ("1.5 > \\{}", "line 3: empty placeholder"),
])
def test_a_malformed_line_is_refused_with_its_number(line, message):
    text = f"# ecemu-session 1\n1.0 < \\r\\nOK\\r\\n\n{line}\n".encode("latin-1")
    with pytest.raises(LogError) as caught:
        read_bytes(text, source="field.log")
    assert str(caught.value).startswith("field.log:" + message.split(": ", 1)[0].removeprefix("line ") + ": " +
                                        message.split(": ", 1)[1])


def test_bytes_that_are_not_utf8_are_binary_data():
    with pytest.raises(LogError, match=r"^<log>:2: binary data \(byte 0xff\) at column 9: not UTF-8"):
        read_bytes(b"# ecemu-session 1\n1.0 > AT\xff\xfe\r\n")


def test_a_file_that_is_not_a_session_says_so():
    with pytest.raises(LogError, match=r"1: not a session log"):
        read_bytes(b"1.0 > AT\\r\n", format="session")


def test_a_log_cut_off_mid_line_is_reported():
    info, records = read_bytes(b"# ecemu-session 1\n1.0 > AT\\r\n1.1 < AT\\r\\r\\nO")
    assert records[-1].data == b"AT\r\r\nO"
    assert info.warnings == [(3, "the last line has no line end: the log may be cut short")]
    with pytest.raises(LogError, match="3: the last line has no line end"):
        from ecemu.sessionlog import ReadOptions

        read_bytes(b"# ecemu-session 1\n1.0 > AT\\r\n1.1 < AT\\r\\r\\nO", options=ReadOptions(strict=True))


def test_a_line_longer_than_the_limit_is_refused_without_being_kept():
    huge = b"# ecemu-session 1\n1.0 > " + b"A" * (MAX_LINE + 10) + b"\n"
    with pytest.raises(LogError, match=r"2: line longer than 1024 KiB"):
        read_bytes(huge)
