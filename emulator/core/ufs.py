"""UFS, the module's file storage, as the core sees it.

The core reads and writes files only through a ``FileStore``; the shell decides what backs it
(a folder given with ``--ufs``, see ``emulator.shell``), and the core's tests use ``MemoryFileStore``.
Names reaching a store are already validated bare names (no ``UFS:`` prefix).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol

UFS_PREFIX = "UFS:"


def strip_ufs_prefix(path: str) -> str:
    """``UFS:cacert.pem`` and ``cacert.pem`` name the same file (FILE note; SSL note 3.2)."""
    return path[len(UFS_PREFIX):] if path.upper().startswith(UFS_PREFIX) else path


class FileStore(Protocol):
    def read(self, name: str) -> bytes:
        """The file's content; FileNotFoundError when there is none."""

    def write(self, name: str, data: bytes) -> None: ...

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

    def read(self, name: str) -> bytes:
        try:
            return self._files[name]
        except KeyError:
            raise FileNotFoundError(name) from None

    def write(self, name: str, data: bytes) -> None:
        self._files[name] = bytes(data)

    def delete(self, name: str) -> None:
        if self._files.pop(name, None) is None:
            raise FileNotFoundError(name)

    def names(self) -> list[str]:
        return sorted(self._files)

    def size(self, name: str) -> int:
        return len(self.read(name))


class DirectoryFileStore:
    """A store backed by one folder; names are validated before they get here, and checked
    again so that nothing can reach outside the folder."""

    def __init__(self, folder: Path):
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, name: str) -> Path:
        if not name or "/" in name or "\\" in name or "\0" in name or name in (".", ".."):
            raise FileNotFoundError(name)
        path = self.folder / name
        if path.resolve().parent != self.folder:
            raise FileNotFoundError(name)
        return path

    def read(self, name: str) -> bytes:
        path = self._path(name)
        if not path.is_file():
            raise FileNotFoundError(name)
        return path.read_bytes()

    def write(self, name: str, data: bytes) -> None:
        path = self._path(name)
        # A fresh dot file, created exclusively (never through a link someone left in the
        # folder), then renamed: a crash mid-write never leaves half a file under the real name.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".partial", dir=self.folder)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o644)  # mkstemp's 0600 would hide the file from other users
                f.write(data)
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def delete(self, name: str) -> None:
        path = self._path(name)
        if not path.is_file():
            raise FileNotFoundError(name)
        path.unlink()

    def names(self) -> list[str]:
        # Links are not files of the module's (one may point outside the folder), nor are the
        # dot files that hold partial writes.
        return sorted(p.name for p in self.folder.iterdir()
                      if p.is_file() and not p.is_symlink() and not p.name.startswith("."))

    def size(self, name: str) -> int:
        path = self._path(name)
        if not path.is_file():
            raise FileNotFoundError(name)
        return path.stat().st_size
