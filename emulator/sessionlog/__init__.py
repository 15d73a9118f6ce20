"""Field logs: the session format, its writer, and readers for the logs users have.

Nothing here touches the emulator: ``ecemu record``, ``ecemu replay`` and ``ecemu check``
(``ecemu.record``, ``ecemu.replay``, ``ecemu.check``) are built on it. The format is described in
``ecemu.sessionlog.format``, the readers in ``ecemu.sessionlog.readers``.
"""

from .format import (
    EVENT, HOST, MODULE, LogError, Record, SessionInfo, SessionWriter, escape, unescape, write_session,
)
from .readers import FORMATS, ReadOptions, SessionLog, open_log, read_bytes, validate

__all__ = [
    "EVENT", "FORMATS", "HOST", "MODULE", "LogError", "ReadOptions", "Record", "SessionInfo", "SessionLog",
    "SessionWriter", "escape", "open_log", "read_bytes", "unescape", "validate", "write_session",
]
