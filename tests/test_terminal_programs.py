"""Terminal programs at their defaults: pyserial's miniterm ends lines with CR LF (its Enter is
CR, the tty makes it LF, its CRLF end-of-line turns that into CR LF), and an upload typed after
CONNECT stores exactly what was typed (docs/reference/chosen-behaviour.md "Line ends")."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

from ecemu.api import Emulator


def read_until(fd: int, marker: bytes, seconds: float = 15.0) -> bytes:
    deadline = time.monotonic() + seconds
    seen = bytearray()
    while marker not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"waited for {marker!r}; got {bytes(seen)!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the terminal's other side is gone
                break
            seen += chunk
    return bytes(seen)


def test_miniterm_with_its_default_line_ends_uploads_exactly_what_was_typed(tmp_path):
    ufs = tmp_path / "ufs"
    with Emulator(ufs=ufs) as modem:
        modem.wait_for_boot()
        console, terminal = os.openpty()
        miniterm = subprocess.Popen(
            [sys.executable, "-m", "serial.tools.miniterm", modem.port, "115200"],
            stdin=terminal, stdout=terminal, stderr=terminal, close_fds=True)
        os.close(terminal)
        try:
            read_until(console, b"Quit: Ctrl+]")
            for key in b'AT+QFUPL="typed.txt",5\r':  # one key at a time, as a person types
                os.write(console, bytes((key,)))
            read_until(console, b"CONNECT")
            os.write(console, b"hello")
            read_until(console, b"OK")
            os.write(console, b"\x1d")  # Ctrl+]: quit
            miniterm.wait(timeout=10)
        finally:
            if miniterm.poll() is None:
                miniterm.kill()
                miniterm.wait()
            os.close(console)
        assert (ufs / "typed.txt").read_bytes() == b"hello"
