"""Telling a script that started ``ecemu run`` that every port is ready to be opened.

Two ways, as service managers expect them: a descriptor the caller passed (``--ready-fd N``, as
s6 and many scripts use: one line, then the descriptor is closed), and systemd's notification
socket (``NOTIFY_SOCKET``: a datagram ``READY=1``). Either is sent once every port is fully
watched, which is also when the ``port:`` lines have been printed.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"


def check_ready_fd(fd: int) -> None:
    """Refuse a descriptor that is not open for writing (before anything starts)."""
    import fcntl

    flags = fcntl.fcntl(fd, fcntl.F_GETFL)  # OSError (EBADF) when it is not open
    if flags & os.O_ACCMODE == os.O_RDONLY:
        raise OSError(f"descriptor {fd} is open for reading only")


def notify_ready(ready_fd: int | None, status: str) -> None:
    """``READY=1`` to the descriptor (then closed) and to systemd's socket, where there is one."""
    if ready_fd is not None:
        try:
            os.write(ready_fd, b"READY=1\n")
        except OSError as exc:
            log.warning("cannot write to --ready-fd %d: %s", ready_fd, exc.strerror or exc)
        finally:
            try:
                os.close(ready_fd)
            except OSError:
                pass
    _systemd_notify(f"READY=1\nSTATUS={status}\nMAINPID={os.getpid()}")


def notify_stopping() -> None:
    _systemd_notify("STOPPING=1")


def _systemd_notify(message: str) -> None:
    address = os.environ.get(NOTIFY_SOCKET_ENV, "")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("cannot notify %s=%s: %s", NOTIFY_SOCKET_ENV, address.replace("\0", "@"), exc.strerror or exc)
