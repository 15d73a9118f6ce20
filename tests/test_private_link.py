"""``Emulator()`` without ``link`` and the plugin's ``ecemu_modem`` put the port behind a link of
their own, in a private folder: every host that opens it gets a fresh pty, so a host that closes the
port mid-answer never hands its unread bytes to the next (docs/reference/robustness.md, "A new host
gets nothing meant for an old one")."""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

import pytest
import serial

from ecemu.api import Emulator
from tests.processes import read_until

BIG_FILE = bytes(65 + i % 26 for i in range(400_000))  # letters: nothing in it looks like an answer
# The next host's command and all it may get back: the echo and the result (V.250).
OWN_ANSWER = b"AT\r\r\nOK\r\n"
WAIT = 10.0  # bounds a failure only


def assert_private_link(port: str) -> Path:
    """``port`` is a symbolic link to a pty, alone in a folder only this user can enter."""
    link = Path(port)
    assert link.is_symlink()
    assert os.readlink(link).startswith("/dev/pts/")
    folder = link.parent.lstat()
    assert stat.S_ISDIR(folder.st_mode) and stat.S_IMODE(folder.st_mode) == 0o700
    assert folder.st_uid == os.getuid()
    return link.parent


def test_without_a_link_the_port_is_a_private_link_that_a_host_opens_at_once_and_stop_removes():
    emulator = Emulator().start()
    try:
        folder = assert_private_link(emulator.port)
        # Opened the moment start() returned, as a host program would: it is seen, and the module
        # powers on for it (boot on open).
        with serial.Serial(emulator.port, 115200, timeout=WAIT) as host:
            assert host.read_until(b"RDY\r\n").endswith(b"\r\nRDY\r\n")
            host.write(b"AT\r")
            assert host.read_until(b"OK\r\n").endswith(OWN_ANSWER)
    finally:
        emulator.stop()
    assert not folder.exists()


def test_each_modem_of_several_has_a_link_and_folder_of_its_own():
    with Emulator() as first, Emulator() as second:
        folders = {assert_private_link(first.port), assert_private_link(second.port)}
        assert len(folders) == 2
    assert not any(folder.exists() for folder in folders)


def test_link_false_gives_the_bare_pty():
    with Emulator(link=False) as emulator:
        assert emulator.port.startswith("/dev/pts/") and not Path(emulator.port).is_symlink()


def test_a_start_that_fails_removes_the_private_folder(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # a UFS folder other users can write is refused at start
    emulator = Emulator(ufs=shared)
    with pytest.raises(RuntimeError, match="failed to start"):
        emulator.start()
    assert emulator.link is not None and not emulator.link.parent.exists()


def test_a_host_leaving_mid_download_leaves_nothing_for_the_next_opener(tmp_path):
    """10 rounds: a host asks AT+QFDWL of a 400 kB file, reads 4 kB of it and closes the port; the
    next host opens it in the very next call and does not flush it, so anything left for the old
    host would come before its own answer."""
    ufs = tmp_path / "ufs"
    ufs.mkdir()
    (ufs / "big.bin").write_bytes(BIG_FILE)
    with Emulator(ufs=ufs) as emulator:
        emulator.wait_for_boot()
        for _ in range(10):
            with serial.Serial(emulator.port, 115200, timeout=WAIT) as old:
                old.write(b'AT+QFDWL="big.bin"\r')
                assert old.read_until(b"CONNECT\r\n").endswith(b'AT+QFDWL="big.bin"\r\r\nCONNECT\r\n')
                assert old.read(4096) == BIG_FILE[:4096]
            new = os.open(emulator.port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            try:
                os.write(new, b"AT\r")
                assert read_until(new, b"OK\r\n", timeout=WAIT) == OWN_ANSWER
            finally:
                os.close(new)


def test_the_plugins_modems_are_on_private_links_removed_after_the_test(pytester):
    """``ecemu_modem`` (and under ``ecemu_replay``, the replay) as a user's test sees it: a private
    link; once the test is over, its folder is gone."""
    pytester.makefile(".log", field="# ecemu-session 1\n0.0 < \\r\\nRDY\\r\\n\n")
    pytester.makepyfile(test_links=textwrap.dedent("""\
        import os
        import stat
        from pathlib import Path

        import pytest
        import serial

        def record(name, port):
            link = Path(port)
            folder = link.parent.lstat()
            assert link.is_symlink() and os.readlink(link).startswith("/dev/pts/")
            assert stat.S_IMODE(folder.st_mode) == 0o700 and folder.st_uid == os.getuid()
            Path(name).write_text(port)

        def test_modem(ecemu_modem):
            record("modem.port", ecemu_modem.port)
            with serial.Serial(ecemu_modem.port, 115200, timeout=10) as port:
                port.write(b"AT\\r")
                assert port.read_until(b"OK\\r\\n") == b"AT\\r\\r\\nOK\\r\\n"

        def test_two_modems(ecemu_modem_factory):
            first, second = ecemu_modem_factory(), ecemu_modem_factory()
            assert Path(first.port).parent != Path(second.port).parent
            record("first.port", first.port)
            record("second.port", second.port)

        @pytest.mark.ecemu_replay("field.log")
        def test_replay(ecemu_modem):
            record("replay.port", ecemu_modem.port)
    """))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "0")
    result.assert_outcomes(passed=3)
    for name in ("modem.port", "first.port", "second.port", "replay.port"):
        folder = Path((pytester.path / name).read_text()).parent
        assert folder.name.startswith("ecemu-port-") and not folder.exists(), name
