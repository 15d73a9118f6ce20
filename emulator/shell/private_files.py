"""Files the emulator writes for its user alone: the trace and the TLS key log hold everything the
host and the servers said (the key log decrypts it), the HTML trace the same, and a server's key
is a key.

Every such file is opened here, whatever path the user gave:

- never through a symbolic link (``O_NOFOLLOW``): a link planted at the path is refused, so a
  root-owned file it points to is never appended to;
- created exclusively (``O_CREAT | O_EXCL``) with mode 0600, exactly (the umask does not change it);
- a file already at the path is taken only when it is a regular file of the user running the
  emulator, with no other name (one hard link), that no other user can read or write (no group or
  other permission bits); anything else (another user's file, one made 0666 beforehand, a FIFO, a
  hard link to something else) is refused with ``PrivateFileRefused`` saying why.

A file taken is appended to (``append=True``: the trace, the key log) or emptied first.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path
from typing import IO, Any

MODE = 0o600
_FLAGS = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC


class PrivateFileRefused(PermissionError):
    """A path the emulator will not write its private data to; the message says why."""


def open_private(path: str | os.PathLike, append: bool = True) -> int:
    """A descriptor open for writing on ``path``, as the module docstring says; appending or emptied."""
    flags = _FLAGS | (os.O_APPEND if append else 0)
    for _ in range(3):  # the file may vanish between the two opens; try again, then give up
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, MODE)
        except FileExistsError:
            pass
        else:
            try:
                os.fchmod(fd, MODE)  # the umask may have taken bits away: exactly 0600
            except BaseException:
                os.close(fd)
                raise
            return fd
        try:
            # O_NONBLOCK: a FIFO put there must not hang the emulator (it is refused below).
            fd = os.open(path, flags | os.O_NONBLOCK)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise PrivateFileRefused(errno.EPERM, "is a symbolic link; not followed", str(path)) from None
            if exc.errno == errno.ENXIO:  # a FIFO nobody reads, a device without its driver
                raise PrivateFileRefused(errno.EPERM, "exists and is not a regular file", str(path)) from None
            raise
        try:
            _refuse_unless_private(fd, path)
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
            if not append:
                os.ftruncate(fd, 0)
        except BaseException:
            os.close(fd)
            raise
        return fd
    raise FileNotFoundError(errno.ENOENT, "keeps disappearing", str(path))


def _refuse_unless_private(fd: int, path: str | os.PathLike) -> None:
    st = os.fstat(fd)
    why = None
    if not stat.S_ISREG(st.st_mode):
        why = "is not a regular file"
    elif st.st_uid != os.geteuid():
        why = f"belongs to another user (uid {st.st_uid})"
    elif st.st_mode & 0o077:
        why = (f"can be read or written by other users (mode {stat.S_IMODE(st.st_mode):04o}); "
               "chmod 600 it or choose another path")
    elif st.st_nlink != 1:
        why = f"has {st.st_nlink} hard links"
    if why is not None:
        raise PrivateFileRefused(errno.EPERM, f"exists and {why}", str(path))


def open_private_file(path: str | os.PathLike, mode: str = "a", **kwargs: Any) -> IO[Any]:
    """``open_private`` as a file object: ``mode`` "a"/"ab" appends, "w"/"wb" empties first."""
    if mode.rstrip("b") not in ("a", "w"):
        raise ValueError(f"mode {mode!r}: a private file is written, appended (a) or anew (w)")
    fd = open_private(path, append=mode.startswith("a"))
    try:
        return os.fdopen(fd, mode, **kwargs)
    except BaseException:
        os.close(fd)
        raise


def write_private(path: str | os.PathLike, data: bytes | str) -> None:
    """``data`` as the whole content of the private file ``path``."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with open_private_file(path, "wb") as f:
        f.write(raw)


def check_private(path: Path) -> None:
    """That ``path`` can be written as a private file (created now if missing, 0600): an option's
    path is checked before anything starts. Raises OSError (``PrivateFileRefused``) if not."""
    os.close(open_private(path, append=True))


def private_opener(path: str, flags: int) -> int:
    """For ``open(path, "a"/"ab", opener=private_opener)``: ``open_private`` appending."""
    return open_private(path, append=bool(flags & os.O_APPEND))
