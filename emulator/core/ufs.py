"""UFS, the module's file storage, as the core sees it.

The core reads and writes files only through a ``FileStore``; the shell decides what backs it
(a folder given with ``--ufs``, see ``ecemu.shell``), and the core's tests use ``MemoryFileStore``.
Names reaching a store are already validated bare names (no ``UFS:`` prefix).
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import Protocol

UFS_PREFIX = "UFS:"


def strip_ufs_prefix(path: str) -> str:
    """``UFS:cacert.pem`` and ``cacert.pem`` name the same file (FILE note; SSL note 3.2)."""
    return path[len(UFS_PREFIX):] if path.upper().startswith(UFS_PREFIX) else path


class FileWriter(Protocol):
    """A file's new content, written in pieces (``FileStore.create``): nothing is seen under its
    name until ``commit``, and ``discard`` leaves nothing behind."""

    written: int  # bytes written so far

    def write(self, data: bytes) -> None: ...

    def commit(self) -> None:
        """The content becomes the file (replacing one of that name)."""

    def discard(self) -> None:
        """Nothing of it stays; the file of that name, if any, is untouched."""


class FileStore(Protocol):
    def read(self, name: str) -> bytes:
        """The file's content; FileNotFoundError when there is none."""

    def write(self, name: str, data: bytes) -> None: ...

    def create(self, name: str) -> FileWriter:
        """A writer for ``name``'s new content (FileExistsError when something that is not a
        file holds the name)."""

    @property
    def in_progress(self) -> int:
        """Bytes written by writers not yet committed or discarded (they take room too)."""

    def delete(self, name: str) -> None:
        """FileNotFoundError when there is none."""

    def names(self) -> list[str]:
        """Every file name, sorted."""

    def size(self, name: str) -> int:
        """FileNotFoundError when there is none."""


class MemoryFileStore:
    """A store in memory, for tests of the core."""

    def __init__(self, files: dict[str, bytes] | None = None):
        self._files: dict[str, bytes] = dict(files or {})
        self._writers: set[_MemoryWriter] = set()

    def read(self, name: str) -> bytes:
        try:
            return self._files[name]
        except KeyError:
            raise FileNotFoundError(name) from None

    def write(self, name: str, data: bytes) -> None:
        self._files[name] = bytes(data)

    def create(self, name: str) -> "_MemoryWriter":
        writer = _MemoryWriter(self, name)
        self._writers.add(writer)
        return writer

    @property
    def in_progress(self) -> int:
        return sum(writer.written for writer in self._writers)

    def delete(self, name: str) -> None:
        if self._files.pop(name, None) is None:
            raise FileNotFoundError(name)

    def names(self) -> list[str]:
        return sorted(self._files)

    def size(self, name: str) -> int:
        return len(self.read(name))


class _MemoryWriter:
    def __init__(self, store: MemoryFileStore, name: str):
        self.store, self.name = store, name
        self.data = bytearray()
        self.written = 0

    def write(self, data: bytes) -> None:
        self.data += data
        self.written += len(data)

    def commit(self) -> None:
        self.store._writers.discard(self)
        self.store._files[self.name] = bytes(self.data)

    def discard(self) -> None:
        self.store._writers.discard(self)
        self.data.clear()


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
