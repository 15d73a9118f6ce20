"""Where a transport plugs in: the ``HostLink`` every way of reaching the host implements.

The runner (``ModemRunner``) drives the core and never knows which transport carries the port:
a pty of its own (``pty_port.PtyHost``), an existing serial device or another program's pty
(``device.DeviceHost``), RFC 2217 (``rfc2217.Rfc2217Host``) or raw TCP, listening or connecting
(``tcp_host``). A transport reports what the host does (``HostEvents``: bytes, comings and goings,
DTR and RTS) and carries out what the module does (bytes, the line's format, RI/DCD/CTS/DSR).
"""

from __future__ import annotations

from typing import Protocol

from ..core.uart import LineFormat

# The module's output lines and the host's, by the names the trace and the control interface use.
MODULE_LINES = ("ri", "dcd", "cts", "dsr")
HOST_LINES = ("dtr", "rts")


class HostEvents(Protocol):
    """What a transport tells the runner (``ModemRunner`` implements it)."""

    def host_data(self, data: bytes) -> None: ...

    def host_attached(self) -> None: ...

    def host_left(self, last_words: bytes = b"") -> None: ...

    def host_writable(self) -> None: ...

    def host_flushed_input(self) -> None: ...

    def set_dtr(self, active: bool) -> None: ...

    def set_rts(self, active: bool) -> None: ...


class HostLink(Protocol):
    """Where the host is: it reports bytes and comings and goings to the runner, and takes output."""

    @property
    def address(self) -> str:
        """What `ecemu run` announces as "port: ..."."""

    # With boot on open: how long after the first host comes the module powers on.
    open_settle: float

    def start(self, runner) -> None:
        """Ready when it returns: a host that comes at once is seen (the runner announces the port
        only then)."""

    def write(self, data: bytes) -> int:
        """Take what can be taken now; the rest waits for ``runner.host_writable``."""

    def want_writable(self, on: bool) -> None: ...

    def discard_unread(self) -> None:
        """Forget output no host has read (the host that would have read it left)."""

    def discard_input(self) -> None:
        """Forget what the host sent that the module has not read (the module rebooted)."""

    def pause_reading(self, paused: bool) -> None:
        """Stop (True) or resume (False) taking bytes from the host."""

    def set_format(self, line_format: LineFormat) -> None:
        """The line's rate and framing (AT+IPR, AT+ICF): a serial device's termios; elsewhere kept."""

    def set_module_line(self, line: str, active: bool) -> None:
        """One of the module's output lines (``MODULE_LINES``) changed."""

    def close(self) -> None: ...


class QuietLink:
    """What a transport without a line format or modem-control pins does with them: nothing (the
    runner keeps the lines' state for ``ecemu ctl`` and the trace)."""

    def discard_input(self) -> None:
        pass

    def set_format(self, line_format: LineFormat) -> None:
        pass

    def set_module_line(self, line: str, active: bool) -> None:
        pass
