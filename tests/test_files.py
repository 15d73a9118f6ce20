"""The UFS file commands (REFERENCE.md "Files"): through the core, byte for byte,
and end to end through a real pty with pyserial."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import serial
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ecemu.commands.files import checksum
from ecemu.core.ufs import MemoryFileStore
from ecemu.shell.file_store import DirectoryFileStore
from ecemu.profile import available_profiles, load_profile
from tests.harness import CoreHarness
from tests.processes import RunningEmulator
from tests.wire import CONNECT, OK, file_checksum

ISRG_ROOT_X1 = Path("/etc/ssl/certs/ISRG_Root_X1.pem")
LIMITS = load_profile("EC200M-CN").limits
# Everything a line editor or an escape detector might take for its own.
NASTY = b"AT\r\nAT+QFLST\r\x1a+++\r\x08\x7f\x00\xffA/\n"


def cme(code: int) -> bytes:
    return f"\r\n+CME ERROR: {code}\r\n".encode()


def uploaded(data: bytes) -> bytes:
    return f"+QFUPL: {len(data)},{file_checksum(data)}\r\n".encode() + OK


def downloaded(data: bytes) -> bytes:
    return CONNECT + data + f"\r\n+QFDWL: {len(data)},{file_checksum(data)}\r\n".encode() + OK


def upload(h: CoreHarness, name: str, data: bytes, params: str = "") -> bytes:
    """AT+QFUPL with ``<file_size>`` = len(data); CONNECT is checked, the rest returned."""
    assert h.command(f'AT+QFUPL="{name}",{len(data)}{params}') == CONNECT
    return h.send(data)


# --- the checksum ---------------------------------------------------------------------------


@pytest.mark.parametrize("data, expected", [
    (b"", "0"),
    (b"\x12\x34", "1234"),
    (b"\x12", "1200"),  # an odd last byte is the high byte of a word
    (b"\x12\x34\x56", "4434"),  # 0x1234 ^ 0x5600
    (b"\x00\x01", "1"),  # no zero padding
    (b"\xff\xff\xff\xff", "0"),
    (b"ABCD", "206"),  # 0x4142 ^ 0x4344
    (b"hello", "6b09"),  # 0x6865 ^ 0x6c6c ^ 0x6f00
])
def test_checksum_of_hand_computed_inputs(data, expected):
    assert checksum(data) == expected
    assert file_checksum(data) == expected  # the tests' own, which the expectations below use


@pytest.mark.needs("ca-certificates")  # ISRG Root X1
def test_checksum_of_isrg_root_x1_is_the_one_a_real_module_gave():
    """REFERENCE.md (seen, verified): the 1939-byte PEM gives ``+QFUPL: 1939,4f64``."""
    pem = ISRG_ROOT_X1.read_bytes()
    assert len(pem) == 1939
    h = CoreHarness()
    assert upload(h, "isrg.pem", pem) == b"+QFUPL: 1939,4f64\r\n" + OK


# --- AT+QFUPL -------------------------------------------------------------------------------


def test_upload_answers_connect_then_size_and_checksum_byte_for_byte():
    h = CoreHarness()
    assert h.command('AT+QFUPL="cacert.pem",5') == b"\r\nCONNECT\r\n"
    assert h.send(b"hello") == b"+QFUPL: 5,6b09\r\n\r\nOK\r\n"
    assert h.files.read("cacert.pem") == b"hello"


def test_upload_data_is_not_echoed_while_the_command_line_is():
    h = CoreHarness(echo=True)
    assert h.command('AT+QFUPL="a.bin",4') == b'AT+QFUPL="a.bin",4\r\r\nCONNECT\r\n'
    assert h.send(b"ab\r\n") == uploaded(b"ab\r\n")
    assert h.command("AT") == b"AT\r" + OK


def test_upload_with_atv0_frames_connect_and_results_as_numbers():
    h = CoreHarness()
    assert h.command("ATV0") == b"0\r"
    assert h.command('AT+QFUPL="a",2') == b"1\r"
    assert h.send(b"hi") == b"+QFUPL: 2,6869\r\n0\r"


@pytest.mark.parametrize("name", ["UFS:c.pem", "ufs:c.pem", "c.pem"])
def test_ufs_prefix_is_optional(name):
    h = CoreHarness()
    assert upload(h, name, b"x") == uploaded(b"x")
    assert h.files.names() == ["c.pem"]


def test_binary_data_with_line_endings_ctrl_z_escape_and_at_is_all_data():
    data = NASTY * 3 + bytes(range(256))
    h = CoreHarness()
    assert upload(h, "bin", data) == uploaded(data)
    assert h.files.read("bin") == data
    assert h.command("AT") == OK


def test_omitted_size_takes_the_documented_default_of_10240_bytes():
    h = CoreHarness()
    assert h.command('AT+QFUPL="big"') == CONNECT
    data = bytes(range(256)) * 40
    assert h.send(data[:-1]) == b""
    assert h.send(data[-1:]) == uploaded(data)
    assert h.files.size("big") == 10240
    assert h.command("AT") == OK


def test_bytes_that_came_with_the_last_data_byte_are_dropped_later_ones_are_commands():
    # The length rule (REFERENCE.md "Data after a prompt"): what the host had sent past <file_size>
    # when the file is complete is neither file nor command, as past AT+QMTPUBEX's length on an
    # EC800M; a command sent after the answer runs.
    h = CoreHarness()
    assert h.command('AT+QFUPL="a",3') == CONNECT
    assert h.send(b"xyzAT+QFLST\r") == uploaded(b"xyz")
    assert h.files.read("a") == b"xyz"
    assert h.command("AT+QFLST") == b'\r\n+QFLST: "UFS:a",3\r\n' + OK


def test_commands_after_the_upload_on_the_same_line_run_once_it_is_done():
    h = CoreHarness()
    assert h.command('AT+QFUPL="a",2;+QFLST') == CONNECT
    assert h.send(b"hi") == b"+QFUPL: 2,6869\r\n" + b'\r\n+QFLST: "UFS:a",2\r\n' + OK


def test_upload_split_at_every_byte_boundary():
    data = NASTY + b"payload"
    wire = data + b"AT+QFLST\r"  # what follows the file in the same write is dropped
    for cut in range(len(data)):
        h = CoreHarness()
        assert h.command(f'AT+QFUPL="f",{len(data)}') == CONNECT
        assert h.send(wire[:cut]) + h.send(wire[cut:]) == uploaded(data), cut
        assert h.files.read("f") == data
        assert h.command("AT+QFLST") == f'\r\n+QFLST: "UFS:f",{len(data)}\r\n'.encode() + OK


def test_upload_one_byte_at_a_time():
    data = NASTY
    h = CoreHarness()
    assert h.command(f'AT+QFUPL="f",{len(data)}') == CONNECT
    out = b"".join(h.send(bytes((b,))) for b in data)
    assert out == uploaded(data)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=1, max_size=200), cuts=st.lists(st.integers(0, 220), max_size=6),
       echo=st.booleans())
def test_upload_split_anywhere_gives_the_same_file_and_answer(data, cuts, echo):
    h = CoreHarness(echo=echo)
    line = f'AT+QFUPL="f",{len(data)}'.encode()
    assert h.command(line) == (line + b"\r" if echo else b"") + CONNECT
    bounds = [0, *sorted({cut for cut in cuts if cut < len(data)}), len(data)]
    out = b""
    for start, end in itertools.pairwise(bounds):
        out += h.send(data[start:end])
        out += h.advance(0.5)  # at most 8 pieces: even in all, less silence than the 5 s timeout
    assert out == uploaded(data)
    assert h.files.read("f") == data
    assert h.command("AT") == (b"AT\r" if echo else b"") + OK


def test_ack_mode_sends_a_after_every_1k_block_but_the_last():
    h = CoreHarness()
    data = bytes(range(256)) * 10  # 2560 bytes: blocks end at 1024 and 2048
    assert h.command(f'AT+QFUPL="a",{len(data)},5,1') == CONNECT
    assert h.send(data[:1023]) == b""
    assert h.send(data[1023:1024]) == b"A"
    assert h.send(data[1024:2000]) == b""
    assert h.send(data[2000:]) == b"A" + uploaded(data)


def test_ack_mode_with_a_whole_number_of_blocks_ends_with_the_result_not_an_a():
    h = CoreHarness()
    data = b"\x1a" * 2048
    assert h.command(f'AT+QFUPL="a",{len(data)},5,1') == CONNECT
    assert h.send(data) == b"A" + uploaded(data)


def test_ack_mode_off_sends_no_a():
    h = CoreHarness()
    data = b"z" * 3000
    assert h.command(f'AT+QFUPL="a",{len(data)},5,0') == CONNECT
    assert h.send(data) == uploaded(data)


# --- AT+QFUPL timeouts ----------------------------------------------------------------------


def test_no_data_within_the_default_5_s_times_out_with_421_and_stores_nothing():
    h = CoreHarness()
    assert h.command('AT+QFUPL="a",5') == CONNECT
    assert h.advance(4.5) == b""
    assert h.advance(0.5) == cme(421)
    assert h.files.names() == []
    assert h.command("AT") == OK  # back in command mode


def test_timeout_counts_silence_so_a_slow_upload_still_completes():
    """Chosen: the timeout is the wait for data; each byte starts it again."""
    h = CoreHarness()
    data = b"0123456789"
    assert h.command(f'AT+QFUPL="slow",{len(data)}') == CONNECT
    out = b""
    for byte in data:
        out += h.advance(4.5) + h.send(bytes((byte,)))
    assert out == uploaded(data)
    assert h.files.read("slow") == data


def test_partial_data_then_silence_keeps_what_came_and_times_out():
    # REFERENCE.md "Files" (seen on an EG800K): the part received is stored and reported, then 421.
    h = CoreHarness()
    assert h.command('AT+QFUPL="a",5') == CONNECT
    assert h.advance(3.0) == b""
    assert h.send(b"he") == b""
    assert h.advance(4.5) == b""  # 4.5 s of silence since the last byte
    assert h.advance(0.5) == b"+QFUPL: 2,6865\r\n" + cme(421)
    assert h.files.read("a") == b"he"
    assert h.send(b"AT\r") == OK  # what follows is a command again, not data
    assert h.command("AT+QFLST") == b'\r\n+QFLST: "UFS:a",2\r\n' + OK


@pytest.mark.needs("ca-certificates")  # ISRG Root X1
def test_the_eg800k_upload_timeout_transcript():
    # AT+CMEE=2, AT+QFUPL="badssl-root.pem",3000,10, the 1939-byte PEM, then silence: the module
    # answers the PEM's size and checksum, then 421 as a number, and keeps the PEM as the file.
    pem = ISRG_ROOT_X1.read_bytes()
    h = CoreHarness()
    assert h.command("AT+CMEE=2") == OK
    assert h.send(b'AT+QFUPL="badssl-root.pem",3000,10\r\n') == CONNECT
    assert h.send(pem) == b""
    assert h.advance(9.9) == b""
    assert h.advance(0.1) == b"+QFUPL: 1939,4f64\r\n\r\n+CME ERROR: 421\r\n"
    assert h.command("AT+QFLST") == b'\r\n+QFLST: "UFS:badssl-root.pem",1939\r\n' + OK


def test_timeout_parameter_is_in_seconds():
    h = CoreHarness()
    assert h.command('AT+QFUPL="a",5,2') == CONNECT
    assert h.advance(1.5) == b""
    assert h.advance(0.5) == cme(421)


def test_timeout_is_numeric_even_with_cmee_2_and_error_with_cmee_0():
    h = CoreHarness()
    assert h.command("AT+CMEE=2") == OK
    assert h.command('AT+QFUPL="a",5,1') == CONNECT
    assert h.advance(1.0) == b"\r\n+CME ERROR: 421\r\n"  # as the EG800K answers (REFERENCE.md "Files")
    assert h.command("AT+CMEE=0") == OK
    assert h.command('AT+QFUPL="a",5,1') == CONNECT
    assert h.advance(1.0) == b"\r\nERROR\r\n"


def test_timed_out_upload_leaves_other_files_alone():
    h = CoreHarness(files=MemoryFileStore({"keep": b"kept"}))
    assert h.command('AT+QFUPL="new",100,1') == CONNECT
    h.send(b"abc")
    assert h.advance(1.0) == b"+QFUPL: 3,262\r\n" + cme(421)  # 0x6162 ^ 0x6300
    assert h.files.names() == ["keep", "new"] and h.files.read("keep") == b"kept"


# --- AT+QFUPL refused -----------------------------------------------------------------------


@pytest.mark.parametrize("line, answer", [
    ('AT+QFUPL="a",0', cme(400)),  # the size range starts at 1
    ('AT+QFUPL="a",abc', cme(400)),
    ('AT+QFUPL="a","5"', cme(400)),
    ('AT+QFUPL="a",-5', cme(400)),
    ('AT+QFUPL="a",\xb2', cme(400)),  # a superscript two is no digit on the wire
    ('AT+QFUPL="a",5,\xb9', cme(400)),
    ('AT+QFUPL="a",5,0', cme(400)),  # timeout 1-65535
    ('AT+QFUPL="a",5,65536', cme(400)),
    ('AT+QFUPL="a",5,5,2', cme(400)),  # ackmode 0 or 1
    ('AT+QFUPL="a",5,5,0,1', cme(425)),  # a fifth parameter
    ("AT+QFUPL=a,5", cme(425)),  # the name is a string
    ("AT+QFUPL=,5", cme(425)),
    ('AT+QFUPL=""', cme(406)),
    ('AT+QFUPL="UFS:"', cme(406)),
    ('AT+QFUPL="../a",5', cme(406)),
    (f'AT+QFUPL="a",{LIMITS.ufs_size + 1}', cme(423)),  # can never fit
    ("AT+QFUPL", b"\r\nERROR\r\n"),  # no such form
    ("AT+QFUPL?", b"\r\nERROR\r\n"),
])
def test_upload_refused_stores_nothing_and_stays_in_command_mode(line, answer):
    h = CoreHarness(files=MemoryFileStore({"keep": b"kept"}))
    assert h.command(line.encode("latin-1")) == answer
    assert h.files.names() == ["keep"] and h.files.read("keep") == b"kept"
    assert h.command("AT") == OK


def test_upload_to_an_existing_name_is_407_and_the_file_is_untouched():
    h = CoreHarness(files=MemoryFileStore({"cacert.pem": b"old"}))
    assert h.command('AT+QFUPL="UFS:cacert.pem",3') == cme(407)
    assert h.send(b"new") == b""  # not data: it waits for its CR as a (bad) command line
    assert h.files.read("cacert.pem") == b"old"


def test_a_full_disk_is_403():
    h = CoreHarness(files=MemoryFileStore({"big": bytes(LIMITS.ufs_size)}))
    assert h.command('AT+QFUPL="a",1') == cme(403)


def test_too_little_free_space_is_420_and_exactly_enough_fits():
    h = CoreHarness(files=MemoryFileStore({"big": bytes(LIMITS.ufs_size - 10)}))
    assert h.command('AT+QFUPL="a",11') == cme(420)
    assert upload(h, "a", b"0123456789") == uploaded(b"0123456789")
    assert h.command('AT+QFLDS="UFS"') == f"\r\n+QFLDS: 0,{LIMITS.ufs_size}\r\n".encode() + OK


def test_omitted_size_needs_room_for_the_default_size():
    h = CoreHarness(files=MemoryFileStore({"big": bytes(LIMITS.ufs_size - 10239)}))
    assert h.command('AT+QFUPL="a"') == cme(420)


def test_a_store_that_fails_to_write_is_409():
    class FailingStore(MemoryFileStore):
        def write(self, name: str, data: bytes) -> None:
            raise OSError("disk gone")

    h = CoreHarness(files=FailingStore())
    assert upload(h, "a", b"abc") == cme(409)
    assert h.command("AT") == OK


def test_upload_test_form_shows_the_free_space():
    h = CoreHarness(files=MemoryFileStore({"a": b"12345"}))
    assert h.command("AT+QFUPL=?") == (
        f"\r\n+QFUPL: <filename>,(1-{LIMITS.ufs_size - 5}),(1-65535),(0,1)\r\n".encode() + OK)


# --- names ----------------------------------------------------------------------------------


BAD_NAMES = [
    "", "UFS:", ".", "..", "../x", "..\\x", "a/b", "a\\b", "/etc/passwd", "UFS:/etc/passwd",
    "UFS:../x", ".hidden", ".a.partial", "a\x00b", "a\x01b", "a\tb", "caf\xe9", "RAM:a", "UFS:UFS:a",
    "a*", "a?", "a<b", "a>b", "a|b", "x" * (LIMITS.ufs_name_length + 1),
]


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize("command", ['AT+QFUPL="{}",1', 'AT+QFDWL="{}"', 'AT+QFDEL="{}"'])
def test_names_the_module_refuses_are_406(name, command):
    h = CoreHarness(files=MemoryFileStore({"keep": b"kept"}))
    assert h.command(command.format(name).encode("latin-1")) == cme(406)
    assert h.files.names() == ["keep"]


def test_a_name_of_the_profiles_full_length_is_accepted_with_or_without_prefix():
    name = "n" * LIMITS.ufs_name_length
    h = CoreHarness()
    assert upload(h, name, b"x") == uploaded(b"x")
    assert h.command(f'AT+QFDWL="UFS:{name}"') == downloaded(b"x")


def test_names_are_case_sensitive_and_may_hold_spaces():
    h = CoreHarness()
    assert upload(h, "My Cert.pem", b"a") == uploaded(b"a")
    assert upload(h, "my cert.pem", b"b") == uploaded(b"b")
    assert h.files.names() == ["My Cert.pem", "my cert.pem"]


# --- AT+QFLST -------------------------------------------------------------------------------


FILES = {"a.pem": b"1", "b.pem": b"22", "ca.crt": b"333", "user_key.pem": b"", "x": b"4444"}


def listing(*names: str) -> bytes:
    """One information block: the lines joined by CRLF, framed once (ATV1)."""
    if not names:
        return OK
    lines = (f'+QFLST: "UFS:{n}",{len(FILES[n])}'.encode() for n in names)
    return b"\r\n" + b"\r\n".join(lines) + b"\r\n" + OK


@pytest.mark.parametrize("line, names", [
    ("AT+QFLST", sorted(FILES)),
    ('AT+QFLST="*"', sorted(FILES)),
    ('AT+QFLST="UFS:*"', sorted(FILES)),
    ('AT+QFLST="*.pem"', ["a.pem", "b.pem", "user_key.pem"]),
    ('AT+QFLST="?.pem"', ["a.pem", "b.pem"]),
    ('AT+QFLST="c?.*"', ["ca.crt"]),
    ('AT+QFLST="x"', ["x"]),
    ('AT+QFLST="UFS:x"', ["x"]),
    ('AT+QFLST="X"', []),  # case-sensitive
    ('AT+QFLST="[ab].pem"', []),  # brackets are plain characters
    ('AT+QFLST="nothing"', []),
    ('AT+QFLST="../*"', []),
])
def test_list_forms_and_patterns(line, names):
    h = CoreHarness(files=MemoryFileStore(FILES))
    assert h.command(line) == listing(*names)


def test_list_of_an_empty_ufs_is_just_ok():
    assert CoreHarness().command("AT+QFLST") == OK


def test_list_test_form_and_refused_forms():
    h = CoreHarness(files=MemoryFileStore(FILES))
    assert h.command("AT+QFLST=?") == OK
    assert h.command("AT+QFLST?") == b"\r\nERROR\r\n"
    assert h.command("AT+QFLST=*") == cme(425)
    assert h.command('AT+QFLST="*","x"') == cme(425)


def test_list_shows_the_uploaded_size():
    h = CoreHarness()
    upload(h, "c.pem", b"x" * 1939)
    assert h.command("AT+QFLST") == b'\r\n+QFLST: "UFS:c.pem",1939\r\n' + OK


# --- AT+QFDEL -------------------------------------------------------------------------------


def test_delete_one_file_with_or_without_prefix():
    h = CoreHarness(files=MemoryFileStore(FILES))
    assert h.command('AT+QFDEL="a.pem"') == OK
    assert h.command('AT+QFDEL="UFS:b.pem"') == OK
    assert h.files.names() == ["ca.crt", "user_key.pem", "x"]


def test_delete_a_missing_file_is_405():
    h = CoreHarness(files=MemoryFileStore(FILES))
    assert h.command('AT+QFDEL="nope"') == cme(405)
    assert h.command('AT+QFDEL="A.PEM"') == cme(405)
    assert h.files.names() == sorted(FILES)


@pytest.mark.parametrize("pattern", ["*", "UFS:*"])
def test_delete_star_deletes_everything_and_is_ok_on_an_empty_ufs(pattern):
    h = CoreHarness(files=MemoryFileStore(FILES))
    assert h.command(f'AT+QFDEL="{pattern}"') == OK
    assert h.files.names() == []
    assert h.command(f'AT+QFDEL="{pattern}"') == OK


def test_delete_forms():
    h = CoreHarness(files=MemoryFileStore(FILES))
    assert h.command("AT+QFDEL=?") == b"\r\n+QFDEL: <filename>\r\n" + OK
    assert h.command("AT+QFDEL") == b"\r\nERROR\r\n"
    assert h.command("AT+QFDEL=a.pem") == cme(425)
    assert h.command('AT+QFDEL="UFS:"') == cme(406)
    assert h.files.names() == sorted(FILES)


def test_deleted_space_is_free_again():
    h = CoreHarness(files=MemoryFileStore({"big": bytes(LIMITS.ufs_size)}))
    assert h.command('AT+QFUPL="a",1') == cme(403)
    assert h.command('AT+QFDEL="big"') == OK
    assert upload(h, "a", b"1") == uploaded(b"1")


# --- AT+QFDWL -------------------------------------------------------------------------------


def test_download_is_connect_raw_data_then_size_and_checksum_byte_for_byte():
    data = NASTY + bytes(range(256))
    h = CoreHarness(files=MemoryFileStore({"f.bin": data}))
    assert h.command('AT+QFDWL="f.bin"') == (
        b"\r\nCONNECT\r\n" + data + f"\r\n+QFDWL: {len(data)},{file_checksum(data)}\r\n".encode() + b"\r\nOK\r\n")


def test_download_hello_exactly():
    h = CoreHarness(files=MemoryFileStore({"a.txt": b"hello"}))
    assert h.command('AT+QFDWL="UFS:a.txt"') == b"\r\nCONNECT\r\nhello\r\n+QFDWL: 5,6b09\r\n\r\nOK\r\n"


def test_download_with_atv0():
    h = CoreHarness(files=MemoryFileStore({"a.txt": b"hello"}))
    h.command("ATV0")
    assert h.command('AT+QFDWL="a.txt"') == b"1\rhello+QFDWL: 5,6b09\r\n0\r"


def test_download_of_an_empty_file():
    h = CoreHarness(files=MemoryFileStore({"e": b""}))
    assert h.command('AT+QFDWL="e"') == b"\r\nCONNECT\r\n\r\n+QFDWL: 0,0\r\n\r\nOK\r\n"


def test_download_what_was_uploaded():
    data = NASTY * 50
    h = CoreHarness()
    upload(h, "round.trip", data)
    assert h.command('AT+QFDWL="round.trip"') == downloaded(data)


def test_download_refused():
    h = CoreHarness()
    assert h.command('AT+QFDWL="missing"') == cme(405)
    assert h.command("AT+QFDWL=?") == b"\r\n+QFDWL: <filename>\r\n" + OK
    assert h.command("AT+QFDWL") == b"\r\nERROR\r\n"
    assert h.command('AT+QFDWL="a","b"') == cme(425)
    assert h.command("AT+CMEE=2") == OK
    assert h.command('AT+QFDWL="missing"') == b"\r\n+CME ERROR: file not found\r\n"


def test_download_a_file_the_store_cannot_read_is_411():
    class Unreadable(MemoryFileStore):
        def read(self, name: str) -> bytes:
            raise PermissionError(name)

    h = CoreHarness(files=Unreadable({"a": b"x"}))
    assert h.command('AT+QFDWL="a"') == cme(411)


# --- AT+QFLDS -------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", available_profiles())
def test_space_total_is_the_profiles_ufs_size_and_free_is_what_files_leave(profile):
    total = load_profile(profile).limits.ufs_size
    h = CoreHarness(profile=profile)
    assert h.command('AT+QFLDS="UFS"') == f"\r\n+QFLDS: {total},{total}\r\n".encode() + OK
    upload(h, "a", b"x" * 100)
    upload(h, "b", b"y" * 23)
    assert h.command('AT+QFLDS="UFS"') == f"\r\n+QFLDS: {total - 123},{total}\r\n".encode() + OK
    assert h.command("AT+QFLDS") == b"\r\n+QFLDS: 123,2\r\n" + OK
    h.command('AT+QFDEL="a"')
    assert h.command('AT+QFLDS="UFS"') == f"\r\n+QFLDS: {total - 23},{total}\r\n".encode() + OK


def test_space_forms():
    h = CoreHarness()
    assert h.command("AT+QFLDS=?") == b'\r\n+QFLDS: ("UFS")\r\n' + OK
    assert h.command("AT+QFLDS") == b"\r\n+QFLDS: 0,0\r\n" + OK
    assert h.command('AT+QFLDS="ufs"') == f"\r\n+QFLDS: {LIMITS.ufs_size},{LIMITS.ufs_size}\r\n".encode() + OK
    assert h.command('AT+QFLDS="RAM"') == cme(400)
    assert h.command("AT+QFLDS=UFS") == cme(425)
    assert h.command("AT+QFLDS?") == b"\r\nERROR\r\n"


# --- nothing outside the folder -------------------------------------------------------------


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def sandbox(tmp_path):
    """``ufs`` (with a link to the outside planted in it) beside ``outside``, which must never change."""
    ufs, outside = tmp_path / "ufs", tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"precious")
    (outside / "cacert.pem").write_bytes(b"not yours")
    ufs.mkdir()
    (ufs / "link").symlink_to(outside / "victim")
    return tmp_path


HOSTILE_NAMES = [
    "../outside/victim", "..\\outside\\victim", "UFS:../outside/victim", "../outside", "..", ".", "",
    "/", "UFS:..", "link", "UFS:link", "..././outside/victim", "....//outside/victim", "a\x00/../../x",
    "../../../../../../tmp/ecemu-escape",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.one_of(
    st.sampled_from(HOSTILE_NAMES),
    st.text(alphabet=st.sampled_from(list("./\\:*?~ a\x00UFS")), max_size=30),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255, exclude_characters='"\r'), max_size=90),
))
@example(name="ABSOLUTE")
def test_no_name_the_host_can_send_touches_anything_outside_the_folder(sandbox, name):
    ufs, outside = sandbox / "ufs", sandbox / "outside"
    if name == "ABSOLUTE":
        name = str(outside / "victim")
    before_outside, before_top = _snapshot(outside), sorted(p.name for p in sandbox.iterdir())
    h = CoreHarness(files=DirectoryFileStore(ufs))
    quoted = b'"' + name.encode("latin-1") + b'"'
    answer = h.command(b"AT+QFUPL=" + quoted + b",3,1")
    if answer.endswith(CONNECT):
        h.send(b"bad")
    h.advance(2.0)  # an upload left waiting times out
    for line in (b"AT+QFDWL=", b"AT+QFLST=", b"AT+QFDEL="):
        h.command(line + quoted)
    assert _snapshot(outside) == before_outside
    assert sorted(p.name for p in sandbox.iterdir()) == before_top
    assert (ufs / "link").is_symlink()
    for p in ufs.iterdir():  # only plain files, right in the folder
        assert p.name == "link" or (p.is_file() and not p.is_symlink()), p
    assert h.command('AT+QFDEL="*"') + h.command("AT") == OK + OK


def test_a_link_in_the_folder_is_neither_listed_read_written_nor_deleted(sandbox):
    ufs, outside = sandbox / "ufs", sandbox / "outside"
    h = CoreHarness(files=DirectoryFileStore(ufs))
    assert h.command("AT+QFLST") == OK
    assert h.command('AT+QFDWL="link"') == cme(405)
    assert h.command('AT+QFDEL="link"') == cme(405)
    assert upload(h, "link", b"bad") == cme(409)
    assert (outside / "victim").read_bytes() == b"precious"
    assert (ufs / "link").is_symlink()
    assert sorted(p.name for p in ufs.iterdir()) == ["link"]  # no partial file left behind


def test_directory_store_round_trip_leaves_no_partial_files(tmp_path):
    h = CoreHarness(files=DirectoryFileStore(tmp_path))
    data = NASTY * 10
    assert upload(h, "c.pem", data) == uploaded(data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pem"]
    assert (tmp_path / "c.pem").read_bytes() == data
    assert h.command('AT+QFUPL="d.pem",5,1') == CONNECT
    assert h.advance(1.0) == cme(421)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pem"]


# --- end to end through a real pty ----------------------------------------------------------


def ask(port: serial.Serial, line: bytes, final: bytes = b"OK\r\n") -> bytes:
    port.write(line + b"\r")
    answer = port.read_until(final)
    assert answer.endswith(final), answer
    return answer


def certificate() -> bytes:
    if ISRG_ROOT_X1.is_file():
        return ISRG_ROOT_X1.read_bytes()
    body = b"".join(bytes(range(33, 97)) + b"\n" for _ in range(25))
    return b"-----BEGIN CERTIFICATE-----\n" + body + b"-----END CERTIFICATE-----\n"


@pytest.fixture
def start_emulator(tmp_path, request):
    started: list[RunningEmulator] = []

    def start(ufs: Path) -> RunningEmulator:
        running = RunningEmulator("--ufs", str(ufs), "--log-level", "debug")
        started.append(running)
        running.wait_for_boot()
        return running

    yield start
    for running in started:
        if getattr(request.node, "failed_call", False):
            print("emulator log:\n" + running.log_text()[-8000:])
        running.stop()


def pty_upload(port: serial.Serial, name: str, data: bytes) -> None:
    port.write(f'AT+QFUPL="{name}",{len(data)}\r'.encode())
    assert port.read_until(CONNECT) == CONNECT
    port.write(data)
    expected = uploaded(data)
    assert port.read(len(expected)) == expected


def test_pty_upload_list_download_delete_a_certificate(start_emulator, tmp_path):
    cert = certificate()
    running = start_emulator(tmp_path / "ufs")
    with serial.Serial(running.port, 115200, timeout=5) as port:
        assert ask(port, b"ATE0") == b"ATE0\r" + OK
        pty_upload(port, "UFS:cacert.pem", cert)
        assert (tmp_path / "ufs" / "cacert.pem").read_bytes() == cert
        assert ask(port, b"AT+QFLST") == f'\r\n+QFLST: "UFS:cacert.pem",{len(cert)}\r\n'.encode() + OK
        port.write(b'AT+QFDWL="cacert.pem"\r')
        expected = downloaded(cert)
        assert port.read(len(expected)) == expected
        total = LIMITS.ufs_size
        assert ask(port, b'AT+QFLDS="UFS"') == f"\r\n+QFLDS: {total - len(cert)},{total}\r\n".encode() + OK
        assert ask(port, b'AT+QFDEL="UFS:cacert.pem"') == OK
        assert ask(port, b"AT+QFLST") == OK
    assert not (tmp_path / "ufs" / "cacert.pem").exists()


def test_pty_binary_upload_and_timeout(start_emulator, tmp_path):
    data = bytes(range(256)) * 8 + NASTY  # every byte value through the raw port
    running = start_emulator(tmp_path / "ufs")
    with serial.Serial(running.port, 115200, timeout=5) as port:
        assert ask(port, b"ATE0") == b"ATE0\r" + OK
        pty_upload(port, "all.bin", data)
        port.write(b'AT+QFDWL="all.bin"\r')
        expected = downloaded(data)
        assert port.read(len(expected)) == expected
        port.write(b'AT+QFUPL="late.bin",100,1\r')
        assert port.read_until(CONNECT) == CONNECT
        port.write(b"only part")
        kept = f"+QFUPL: 9,{file_checksum(b'only part')}\r\n".encode() + cme(421)
        assert port.read_until(cme(421)) == kept  # within the port's 5 s timeout
        assert ask(port, b"AT+QFLST") == (f'\r\n+QFLST: "UFS:all.bin",{len(data)}\r\n'
                                          f'+QFLST: "UFS:late.bin",9\r\n').encode() + OK


def test_pty_files_survive_a_restart_on_the_same_folder(start_emulator, tmp_path):
    cert = certificate()
    ufs = tmp_path / "ufs"
    first = start_emulator(ufs)
    with serial.Serial(first.port, 115200, timeout=5) as port:
        ask(port, b"ATE0")
        pty_upload(port, "cacert.pem", cert)
    assert first.stop() == 0
    second = start_emulator(ufs)
    with serial.Serial(second.port, 115200, timeout=5) as port:
        ask(port, b"ATE0")
        assert ask(port, b"AT+QFLST") == f'\r\n+QFLST: "UFS:cacert.pem",{len(cert)}\r\n'.encode() + OK
        port.write(b'AT+QFDWL="UFS:cacert.pem"\r')
        expected = downloaded(cert)
        assert port.read(len(expected)) == expected
