"""Files the emulator writes for its user alone: the trace and the TLS key log hold everything
the host and servers said, and the key log decrypts it, so they are created 0600."""

from __future__ import annotations

import os


def private_opener(path: str, flags: int) -> int:
    """For ``open(..., opener=private_opener)``: a file created now gets mode 0600 (an existing
    one keeps its mode)."""
    return os.open(path, flags | os.O_CLOEXEC, 0o600)
