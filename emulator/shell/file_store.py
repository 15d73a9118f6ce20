"""The UFS in a folder: the ``FileStore`` (``ecemu.core.ufs``) the shell hands the modem for
``--ufs``. The core sees only the Protocol; the descriptors and the folder's safety are here."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path


class UnsafeFolder(PermissionError):
    """A UFS folder another user could write to: they could swap a file of the module's for a
    link to one of ours between two commands."""


# Where a write is assembled before it is renamed to its name: ``.<name>.<random>.partial``.
PARTIAL_SUFFIX = ".partial"
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC


class DirectoryFileStore:
    """A store backed by one folder, for one user: files 0600, the folder 0700 when created.

    Every access is relative to a descriptor of the folder and never follows a link (O_NOFOLLOW,
    ``dir_fd``): a link swapped in between a check and an open, or a folder renamed under the
    emulator, can never make it read or write outside the folder. A folder another user can
    write to is refused at start. Dot files that an interrupted write left are removed at start.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder).resolve()
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._dir_fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY | _OPEN_FLAGS)
        self._writers: set[_PartialFile] = set()
        try:
            self._refuse_shared_folder()
            self._remove_partial_writes()
        except BaseException:
            self.close()
            raise

    def _refuse_shared_folder(self) -> None:
        st = os.fstat(self._dir_fd)
        if st.st_uid != os.geteuid():
            raise UnsafeFolder(f"UFS folder {self.folder} belongs to another user (uid {st.st_uid})")
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise UnsafeFolder(f"UFS folder {self.folder} can be written by other users "
                               f"(mode {stat.S_IMODE(st.st_mode):04o}); chmod go-w it or choose another")

    def _remove_partial_writes(self) -> None:
        for entry in os.scandir(self._dir_fd):
            if entry.name.startswith(".") and entry.name.endswith(PARTIAL_SUFFIX) \
                    and entry.is_file(follow_symlinks=False):
                os.unlink(entry.name, dir_fd=self._dir_fd)

    def close(self) -> None:
        for writer in list(getattr(self, "_writers", ())):
            writer.discard()
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1

    def __del__(self) -> None:
        self.close()

    @staticmethod
    def _check(name: str) -> str:
        if not name or "/" in name or "\\" in name or "\0" in name or name in (".", ".."):
            raise FileNotFoundError(name)
        return name

    def _stat(self, name: str) -> os.stat_result:
        """The file's own status (a link is not followed); FileNotFoundError unless a regular file."""
        try:
            st = os.stat(self._check(name), dir_fd=self._dir_fd, follow_symlinks=False)
        except (NotADirectoryError, ValueError):
            raise FileNotFoundError(name) from None
        if not stat.S_ISREG(st.st_mode):
            raise FileNotFoundError(name)
        return st

    def read(self, name: str) -> bytes:
        try:
            # O_NONBLOCK: a FIFO put in the folder must not hang the emulator; a link fails (ELOOP).
            fd = os.open(self._check(name), os.O_RDONLY | os.O_NONBLOCK | _OPEN_FLAGS, dir_fd=self._dir_fd)
        except OSError:
            raise FileNotFoundError(name) from None
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise FileNotFoundError(name)
            return f.read()

    def write(self, name: str, data: bytes) -> None:
        writer = self.create(name)
        try:
            writer.write(data)
            writer.commit()
        except BaseException:
            writer.discard()
            raise

    def create(self, name: str) -> "_PartialFile":
        try:
            st = os.stat(self._check(name), dir_fd=self._dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISREG(st.st_mode):
                raise FileExistsError(name)  # a link or a folder in its place is left alone
        # A fresh dot file, created exclusively (never through a link someone left in the
        # folder), then renamed: a crash mid-write never leaves half a file under the real name.
        while True:
            tmp = f".{name}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS, 0o600, dir_fd=self._dir_fd)
                break
            except FileExistsError:
                continue
        writer = _PartialFile(self, name, tmp, fd)
        self._writers.add(writer)
        return writer

    @property
    def in_progress(self) -> int:
        return sum(writer.written for writer in self._writers)

    def delete(self, name: str) -> None:
        self._stat(name)
        try:
            os.unlink(name, dir_fd=self._dir_fd)  # a link swapped in meanwhile: only the link goes
        except OSError:
            raise FileNotFoundError(name) from None

    def names(self) -> list[str]:
        # Links are not files of the module's (one may point outside the folder), nor are the
        # dot files that hold partial writes.
        return sorted(entry.name for entry in os.scandir(self._dir_fd)
                      if entry.is_file(follow_symlinks=False) and not entry.name.startswith("."))

    def size(self, name: str) -> int:
        return self._stat(name).st_size


class _PartialFile:
    """A ``DirectoryFileStore`` file being written: a dot file renamed to its name on commit."""

    def __init__(self, store: DirectoryFileStore, name: str, tmp: str, fd: int):
        self.store, self.name, self.tmp = store, name, tmp
        self.file = os.fdopen(fd, "wb")
        self.written = 0

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.written += len(data)

    def commit(self) -> None:
        store = self.store
        store._writers.discard(self)
        try:
            self.file.close()
            os.replace(self.tmp, self.name, src_dir_fd=store._dir_fd, dst_dir_fd=store._dir_fd)
        except BaseException:
            self._remove()
            raise

    def discard(self) -> None:
        self.store._writers.discard(self)
        try:
            self.file.close()
        except OSError:
            pass
        self._remove()

    def _remove(self) -> None:
        if self.store._dir_fd < 0:
            return
        try:
            os.unlink(self.tmp, dir_fd=self.store._dir_fd)
        except FileNotFoundError:
            pass
