"""UFS, the module's file storage, as the core sees it.

The core reads and writes files only through a ``FileStore``; the shell decides what backs it
(the folder given with ``--ufs``: ``ecemu.shell.file_store.DirectoryFileStore``), and the core's
tests use ``MemoryFileStore``. Names reaching a store are already validated bare names (no ``UFS:``
prefix).
"""

from __future__ import annotations

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
