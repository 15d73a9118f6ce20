"""The FILE note's open-file commands, AT+QFOPEN to AT+QFCLOSE (REFERENCE.md "Files"), byte for
byte through the core.

The first test replays what Quectel's host SDK (quectel-develop/user-friendly-project,
``quectel/modules/src/ql_file.c`` and its ``example_fs.c``) sends and reads: each command and CR
LF in one write, echo on, the answer read as lines; after AT+QFWRITE's data the first line must be
``+QFWRITE: ...``, after AT+QFREAD's ``CONNECT <n>`` exactly n bytes and then ``\\r\\nOK\\r\\n``.
"""

from __future__ import annotations


from ecemu.core.ufs import MemoryFileStore
from ecemu.profile import load_profile
from tests.harness import CoreHarness
from tests.wire import CONNECT, OK

UFS_SIZE = load_profile("EC200M-CN").limits.ufs_size

CONTENT = b"1234567890abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"  # example_fs.c's FILE_CONTENT


def cme(code: int) -> bytes:
    return b"\r\n+CME ERROR: %d\r\n" % code


def test_the_sdk_example_opens_writes_seeks_reads_and_closes():
    h = CoreHarness(echo=True)  # the SDK never turns echo off
    sent = b'AT+QFOPEN="UFS:ufp_test.txt",0\r\n'
    assert h.send(sent) == sent[:-1] + b"\r\n+QFOPEN: 1\r\n" + OK
    # ql_fwrite: CONNECT as a line of its own, then the data, then "+QFWRITE: %d,%*d" as the very
    # first line after it, then lines until one holds OK.
    assert h.send(b"AT+QFWRITE=1,62\r\n") == b"AT+QFWRITE=1,62\r" + CONNECT
    assert h.send(CONTENT) == b"+QFWRITE: 62,62\r\n" + OK
    assert h.send(b"AT+QFSEEK=1,0,0\r\n") == b"AT+QFSEEK=1,0,0\r" + OK
    # ql_fread asks for sizeof(read_data), 64: "CONNECT %d" says how many follow, then "\r\nOK\r\n".
    assert h.send(b"AT+QFREAD=1,64\r\n") == b"AT+QFREAD=1,64\r\r\nCONNECT 62\r\n" + CONTENT + OK
    # Read again at the end of the file: 402, which ql_fread takes as "nothing more", not a failure.
    assert h.send(b"AT+QFREAD=1,64\r\n") == b"AT+QFREAD=1,64\r" + cme(402)
    assert h.send(b"AT+QFCLOSE=1\r\n") == b"AT+QFCLOSE=1\r" + OK
    assert h.files.read("ufp_test.txt") == CONTENT


def test_open_modes(h):
    h.files.write("a.txt", b"old data")
    assert h.command('AT+QFOPEN="a.txt"') == b"\r\n+QFOPEN: 1\r\n" + OK  # mode 0, the default: opened as it is
    assert h.command("AT+QFREAD=1,3") == b"\r\nCONNECT 3\r\nold" + OK
    assert h.command("AT+QFCLOSE=1") == OK
    assert h.command('AT+QFOPEN="a.txt",1') == b"\r\n+QFOPEN: 2\r\n" + OK  # mode 1: emptied
    assert h.command("AT+QFREAD=2") == cme(402)
    assert h.command("AT+QFCLOSE=2") == OK
    assert h.files.read("a.txt") == b""
    assert h.command('AT+QFOPEN="none.txt",2') == cme(405)  # mode 2: an existing file only
    h.files.write("ro.txt", b"read me")
    assert h.command('AT+QFOPEN="ro.txt",2') == b"\r\n+QFOPEN: 3\r\n" + OK
    assert h.command("AT+QFREAD=3") == b"\r\nCONNECT 7\r\nread me" + OK  # no length: to the end
    assert h.command("AT+QFWRITE=3,1") == cme(414)  # read only
    assert h.command('AT+QFOPEN="new.txt"') == b"\r\n+QFOPEN: 4\r\n" + OK  # mode 0 creates it
    assert h.command('AT+QFLST="new.txt"') == b'\r\n+QFLST: "UFS:new.txt",0\r\n' + OK


def test_handles_that_are_not_open_and_files_open_twice(h):
    assert h.command("AT+QFREAD=1,10") == cme(416)
    assert h.command('AT+QFOPEN="f"') == b"\r\n+QFOPEN: 1\r\n" + OK
    assert h.command('AT+QFOPEN="UFS:f"') == cme(426)  # the same file, with or without UFS:
    assert h.command("AT+QFCLOSE=1") == OK
    assert h.command("AT+QFCLOSE=1") == cme(416)  # closed: its number is not used again
    assert h.command('AT+QFOPEN="f"') == b"\r\n+QFOPEN: 2\r\n" + OK
    assert h.command("AT+QFSEEK=1,0") == cme(416)
    assert h.command('AT+QFOPEN="a/b"') == cme(406)
    assert h.command('AT+QFOPEN="g",3') == cme(400)


def test_one_open_file_too_many(h):
    limit = h.modem.profile.limits.ufs_open_files
    for index in range(limit):
        assert h.command(f'AT+QFOPEN="f{index}"') == b"\r\n+QFOPEN: %d\r\n" % (index + 1) + OK
    assert h.command('AT+QFOPEN="one-more"') == cme(413)
    assert h.command("AT+QFCLOSE=1") == OK
    assert h.command('AT+QFOPEN="one-more"') == b"\r\n+QFOPEN: %d\r\n" % (limit + 1) + OK


def test_seek_and_position(h):
    h.files.write("s", b"0123456789")
    assert h.command('AT+QFOPEN="s"') == b"\r\n+QFOPEN: 1\r\n" + OK
    assert h.command("AT+QFSEEK=1,4") == OK
    assert h.command("AT+QFPOSITION=1") == b"\r\n+QFPOSITION: 4\r\n" + OK
    assert h.command("AT+QFSEEK=1,2,1") == OK  # from the pointer
    assert h.command("AT+QFREAD=1,2") == b"\r\nCONNECT 2\r\n67" + OK
    assert h.command("AT+QFSEEK=1,0,2") == OK  # the end
    assert h.command("AT+QFPOSITION=1") == b"\r\n+QFPOSITION: 10\r\n" + OK
    assert h.command("AT+QFSEEK=1,1,2") == cme(401)  # past the end
    assert h.command("AT+QFSEEK=1,11") == cme(401)
    assert h.command("AT+QFPOSITION=1") == b"\r\n+QFPOSITION: 10\r\n" + OK  # unmoved
    assert h.command("AT+QFSEEK=1,3,0") == OK
    assert h.command("AT+QFWRITE=1,2") == CONNECT
    assert h.send(b"ab") == b"+QFWRITE: 2,10\r\n" + OK  # written over, the size kept
    assert h.command("AT+QFSEEK=1,0,2") == OK
    assert h.command("AT+QFWRITE=1,3") == CONNECT
    assert h.send(b"xyz") == b"+QFWRITE: 3,13\r\n" + OK  # appended
    assert h.command("AT+QFCLOSE=1") == OK
    assert h.files.read("s") == b"012ab56789xyz"


def test_ufs_shows_the_file_as_it_was_until_it_is_closed(h):
    """The FILE note: AT+QFLST shows no up-to-date size of a file open for writing until
    AT+QFCLOSE; and a file that is open cannot be deleted (chosen: 426)."""
    h.files.write("log", b"12")
    assert h.command('AT+QFOPEN="log"') == b"\r\n+QFOPEN: 1\r\n" + OK
    assert h.command("AT+QFSEEK=1,0,2") == OK
    assert h.command("AT+QFWRITE=1,3") == CONNECT
    assert h.send(b"345") == b"+QFWRITE: 3,5\r\n" + OK
    assert h.command('AT+QFLST="log"') == b'\r\n+QFLST: "UFS:log",2\r\n' + OK
    assert h.command('AT+QFDEL="log"') == cme(426)
    h.files.write("other", b"x")
    assert h.command('AT+QFDEL="*"') == OK  # every file but the open one
    assert h.files.names() == ["log"]
    assert h.command("AT+QFCLOSE=1") == OK
    assert h.command('AT+QFLST="log"') == b'\r\n+QFLST: "UFS:log",5\r\n' + OK


def test_a_write_without_length_ends_when_the_host_falls_silent(h):
    assert h.command('AT+QFOPEN="w"') == b"\r\n+QFOPEN: 1\r\n" + OK
    assert h.command("AT+QFWRITE=1,,2") == CONNECT
    assert h.send(b"part one, ") == b""
    assert h.advance(1.5) == b""
    assert h.send(b"part two") == b""
    assert h.advance(1.9) == b""
    assert h.advance(0.2) == b"+QFWRITE: 18,18\r\n" + OK
    assert h.command("AT+QFCLOSE=1") == OK
    assert h.files.read("w") == b"part one, part two"


def test_the_bytes_past_length_are_dropped_and_data_is_never_a_command(h):
    assert h.command('AT+QFOPEN="d"') == b"\r\n+QFOPEN: 1\r\n" + OK
    assert h.command("AT+QFWRITE=1,4") == CONNECT
    # CR, LF, Ctrl+Z and +++ are data; what came past the 4th byte in the same write is dropped.
    assert h.send(b"\r\x1a+\nAT\r") == b"+QFWRITE: 4,4\r\n" + OK
    assert h.command("AT") == OK
    assert h.command("AT+QFCLOSE=1") == OK
    assert h.files.read("d") == b"\r\x1a+\n"


def test_numeric_responses_and_the_write_answer_with_atv0(h):
    assert h.command("ATV0") == b"0\r"
    assert h.command('AT+QFOPEN="v"') == b"+QFOPEN: 1\r\n0\r"
    assert h.command("AT+QFWRITE=1,2") == b"1\r"
    assert h.send(b"hi") == b"+QFWRITE: 2,2\r\n0\r"
    assert h.command("AT+QFSEEK=1,0") == b"0\r"
    assert h.command("AT+QFREAD=1,2") == b"1\rhi0\r"


def test_no_room_for_a_write():
    h = CoreHarness(files=MemoryFileStore({"big": b"x" * (UFS_SIZE - 10)}))
    assert h.command('AT+QFOPEN="w"') == b"\r\n+QFOPEN: 1\r\n" + OK
    assert h.command("AT+QFWRITE=1,11") == cme(420)
    assert h.command("AT+QFWRITE=1,10") == CONNECT
    assert h.send(b"0123456789") == b"+QFWRITE: 10,10\r\n" + OK


def test_a_power_cycle_closes_the_files_keeping_what_was_written(h):
    assert h.command('AT+QFOPEN="p"') == b"\r\n+QFOPEN: 1\r\n" + OK
    assert h.command("AT+QFWRITE=1,3") == CONNECT
    assert h.send(b"abc") == b"+QFWRITE: 3,3\r\n" + OK
    assert h.command("AT+CFUN=1,1") == OK
    h.advance(5.0)
    assert h.files.read("p") == b"abc"
    assert h.command("ATE0") == b"ATE0\r\r\nOK\r\n"
    assert h.command("AT+QFOPEN?") == OK  # nothing open any more
    assert h.command("AT+QFREAD=1") == cme(416)


def test_the_forms_listed(h):
    h.command('AT+QFOPEN="one.txt",1')
    assert h.command("AT+QFOPEN?") == b'\r\n+QFOPEN: "one.txt",1,1\r\n' + OK
    assert h.command("AT+QFOPEN=?") == b"\r\n+QFOPEN: <filename>[,(0-2)]\r\n" + OK
    assert h.command("AT+QFREAD=?") == b"\r\n+QFREAD: <filehandle>[,<length>]\r\n" + OK
    assert h.command("AT+QFWRITE=?") == b"\r\n+QFWRITE: <filehandle>[,<length>[,<timeout>]]\r\n" + OK
    assert h.command("AT+QFCLOSE=?") == b"\r\n+QFCLOSE: <filehandle>\r\n" + OK
    assert h.command("AT+QFREAD") == b"\r\nERROR\r\n"
