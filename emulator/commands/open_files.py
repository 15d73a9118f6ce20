"""The FILE note's commands on open files: AT+QFOPEN, AT+QFREAD, AT+QFWRITE, AT+QFSEEK,
AT+QFPOSITION, AT+QFCLOSE (REFERENCE.md "Files").

The family's FILE application note (V1.5, EG800K among its modules) has them with the same forms
as the sibling FILE manuals (BG96, EC2x): a file handle from AT+QFOPEN, a file pointer that
AT+QFREAD and AT+QFWRITE move on, ``CONNECT <n>`` and the data for a read, ``CONNECT``, the data
and ``+QFWRITE: <written_length>,<total_length>`` for a write, errors as ``+CME ERROR: <n>``
(4xx). Quectel's host SDK drives them for every module it supports.

An open file is held in memory and written to UFS when it is closed: the note says AT+QFLST shows
no up-to-date size of a file that is open for writing until AT+QFCLOSE (chosen: what is read
back through the handle is always the latest). A power cycle closes every file, writing it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .files import (
    DEFAULT_TIMEOUT,
    FAMILY,
    MAX_TIMEOUT,
    answer_data,
    free_space,
    number_arg,
    ufs_name,
)
from ..core.parser import CommandCall, Form
from ..core.registry import (
    AwaitData,
    CommandFailed,
    Family,
    FamilyState,
    Outcome,
    Reply,
    command,
    family_state,
    ok,
    require_form,
)
from ..core.results import CONNECT, FileError, FinalResult

if TYPE_CHECKING:
    from ..core.modem import Modem

# AT+QFOPEN's <mode> (FILE note): 0 opens the file, creating it when missing; 1 creates it, or
# empties it when it exists; 2 opens an existing file for reading only.
OPEN_OR_CREATE, CREATE_OR_EMPTY, READ_ONLY = 0, 1, 2
# AT+QFSEEK's <position>: where <offset> counts from.
FROM_START, FROM_CURRENT, FROM_END = 0, 1, 2


@dataclass
class OpenFile:
    name: str  # the bare UFS name
    given: str  # the name as AT+QFOPEN had it, for AT+QFOPEN?
    mode: int
    data: bytearray
    stored_size: int  # the size in UFS, what AT+QFLST shows until the file is closed
    position: int = 0
    changed: bool = False


@dataclass
class OpenFiles(FamilyState):
    """``modem.families["files"]``: the open files by handle."""

    modem: "Modem"
    handles: dict[int, OpenFile] = field(default_factory=dict)
    # Handles count up from 1 and are not used again in a power cycle, so a handle the host
    # already closed answers 416 rather than reaching another file (chosen).
    _numbers: "itertools.count[int]" = field(default_factory=lambda: itertools.count(1))

    def is_open(self, name: str) -> bool:
        return any(f.name == name for f in self.handles.values())

    def power_off(self) -> None:
        """Every file is closed, as AT+QFCLOSE would (chosen: the module keeps what was written)."""
        for handle in list(self.handles):
            try:
                self.close(handle)
            except CommandFailed:
                pass

    def open(self, name: str, given: str, mode: int) -> int:
        if self.is_open(name):
            raise CommandFailed(FileError.FILE_ALREADY_OPEN)
        if len(self.handles) >= self.modem.profile.limits.ufs_open_files:
            raise CommandFailed(FileError.TOO_MANY_OPEN_FILES)
        files = self.modem.files
        exists = name in files.names()
        if mode == READ_ONLY and not exists:
            raise CommandFailed(FileError.FILE_NOT_FOUND)
        try:
            if exists and mode != CREATE_OR_EMPTY:
                data = files.read(name)
            else:
                data = b""
                files.write(name, data)  # created or emptied at once: AT+QFLST lists it with size 0
        except OSError:
            raise CommandFailed(FileError.OPEN_FAILED) from None
        handle = next(self._numbers)
        self.handles[handle] = OpenFile(name, given, mode, bytearray(data), len(data))
        return handle

    def get(self, call: CommandCall) -> tuple[int, OpenFile]:
        """The open file AT+<cmd>=<filehandle>,... names; 400 for no number, 416 for no such file."""
        arg = call.args[0] if call.args else None
        if arg is None or arg.quoted or not (arg.text.isascii() and arg.text.isdigit()):
            raise CommandFailed(FileError.INVALID_INPUT_VALUE)
        handle = int(arg.text)
        opened = self.handles.get(handle)
        if opened is None:
            raise CommandFailed(FileError.INVALID_FILE_HANDLE)
        return handle, opened

    def close(self, handle: int) -> None:
        opened = self.handles.pop(handle)
        if opened.changed:
            try:
                self.modem.files.write(opened.name, bytes(opened.data))
            except OSError:
                raise CommandFailed(FileError.WRITE_FAILED) from None


FILES_FAMILY = Family(FAMILY, state=OpenFiles)


def _open_files(modem: "Modem") -> OpenFiles:
    return family_state(modem, FAMILY, OpenFiles)


def _at_most(call: CommandCall, count: int) -> None:
    if len(call.args) > count:
        raise CommandFailed(FileError.INVALID_PARAMETER)


def _opened(modem: "Modem", call: CommandCall, most: int) -> tuple[OpenFiles, int, OpenFile]:
    """The write form naming an open file by its handle, with at most ``most`` parameters."""
    require_form(call, Form.WRITE)
    _at_most(call, most)
    state = _open_files(modem)
    handle, opened = state.get(call)
    return state, handle, opened


# --- AT+QFOPEN, AT+QFCLOSE ---------------------------------------------------------------------


@command("+QFOPEN", family=FAMILY)
def open_file(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QFOPEN="<filename>"[,<mode>]: ``+QFOPEN: <filehandle>`` (FILE note). Mode 0 (the
    default) opens the file or creates it, 1 creates it or empties it, 2 opens an existing file
    to read only (405 when there is none). A file already open is 426 (chosen: the note's code
    for it), one open file too many 413; AT+QFOPEN? lists ``+QFOPEN: "<filename>",<filehandle>,<mode>``
    for each open file, the name as the host gave it (chosen)."""
    state = _open_files(modem)
    if call.form is Form.TEST:
        return ok(f"+QFOPEN: <filename>[,({OPEN_OR_CREATE}-{READ_ONLY})]")
    if call.form is Form.READ:
        return ok(*(f'+QFOPEN: "{f.given}",{handle},{f.mode}' for handle, f in state.handles.items()))
    require_form(call, Form.WRITE)
    _at_most(call, 2)
    if call.args[0] is None or not call.args[0].quoted:
        raise CommandFailed(FileError.INVALID_PARAMETER)
    given = call.args[0].text
    name = ufs_name(modem, given)
    mode = number_arg(call, 1, OPEN_OR_CREATE, READ_ONLY, OPEN_OR_CREATE)
    return ok(f"+QFOPEN: {state.open(name, given, mode)}")


@command("+QFCLOSE", family=FAMILY)
def close_file(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QFCLOSE=<filehandle>: the file is written to UFS and the handle freed (FILE note); 416
    for a handle that is not open, 409 when UFS refuses the write (the handle is freed all the
    same, chosen)."""
    if call.form is Form.TEST:
        return ok("+QFCLOSE: <filehandle>")
    state, handle, _ = _opened(modem, call, 1)
    state.close(handle)
    return ok()


# --- AT+QFREAD, AT+QFWRITE --------------------------------------------------------------------


@command("+QFREAD", family=FAMILY)
def read_file(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QFREAD=<filehandle>[,<length>]: ``CONNECT <read_length>``, that many bytes from the file
    pointer on, then OK; the pointer moves past them (FILE note). Without <length> the read goes
    to the end of the file (chosen). At the end of the file: ``+CME ERROR: 402`` (read zero byte),
    which Quectel's host SDK takes as the end of a read (REFERENCE.md "Files", seen in its
    source)."""
    if call.form is Form.TEST:
        return ok("+QFREAD: <filehandle>[,<length>]")
    _, _, opened = _opened(modem, call, 2)
    left = len(opened.data) - opened.position
    length = number_arg(call, 1, 1, None, max(left, 1))
    data = bytes(opened.data[opened.position:opened.position + length])
    if not data:
        raise CommandFailed(FileError.READ_ZERO_BYTE)
    opened.position += len(data)
    connect = FinalResult(f"{CONNECT.text} {len(data)}", CONNECT.number)
    return Reply(raw=modem.result_bytes(connect) + data)


@dataclass
class WriteSink:
    """The bytes after AT+QFWRITE's CONNECT: ``length`` of them, or when no length was given all
    that comes until ``timeout`` seconds pass without a byte (FILE note: the write ends at
    <length> or at <timeout>); never echoed, ``+++`` included, as AT+QFUPL's data (chosen)."""

    opened: OpenFile
    length: int | None  # None: until the timeout, at most ``room`` bytes
    room: int
    timeout: float
    last_byte_at: float
    data: bytearray = field(default_factory=bytearray)

    @property
    def counted(self) -> bool:
        return self.length is not None  # the length rule: bytes past it are dropped (core/data_entry.py)

    def feed(self, modem: "Modem", data: bytes) -> tuple[int, Outcome | None]:
        limit = self.length if self.length is not None else self.room
        take = data[: limit - len(self.data)]
        self.data += take
        self.last_byte_at = modem.now
        if len(self.data) < limit:
            return len(take), None
        return len(take), self._written(modem)

    def deadline(self) -> float:
        return self.last_byte_at + self.timeout

    def expire(self, modem: "Modem") -> Outcome:
        """The time ran out: what came is written, and answered as a complete write would be."""
        return self._written(modem)

    def _written(self, modem: "Modem") -> Reply:
        opened, data = self.opened, bytes(self.data)
        start = opened.position
        opened.data[start:start + len(data)] = data
        opened.position = start + len(data)
        opened.changed = opened.changed or bool(data)
        return answer_data(modem, f"+QFWRITE: {len(data)},{len(opened.data)}")


@command("+QFWRITE", family=FAMILY)
def write_file(modem: "Modem", call: CommandCall) -> AwaitData | Reply:
    """AT+QFWRITE=<filehandle>[,<length>[,<timeout>]]: ``CONNECT``, the data written at the file
    pointer, then ``+QFWRITE: <written_length>,<total_length>`` right after the last byte, and OK
    (FILE note; the framing: REFERENCE.md "Data after a prompt", seen). <timeout> (default 5 s,
    as AT+QFUPL's) counts silence; when it passes what came is written. A file opened read-only
    is 414; a write that would not fit in UFS 420 (403 when nothing is free)."""
    if call.form is Form.TEST:
        return ok("+QFWRITE: <filehandle>[,<length>[,<timeout>]]")
    _, _, opened = _opened(modem, call, 3)
    length = number_arg(call, 1, 1, None, 0) or None
    timeout = number_arg(call, 2, 1, MAX_TIMEOUT, DEFAULT_TIMEOUT)
    if opened.mode == READ_ONLY:
        raise CommandFailed(FileError.FILE_READ_ONLY)
    # Room: UFS's free space, counting this file at the size it has in UFS (chosen).
    free = free_space(modem)
    room = free + opened.stored_size - opened.position
    if room <= 0 or (length is not None and length > room):
        raise CommandFailed(FileError.DRIVE_FULL if free == 0 else FileError.NO_SPACE)
    sink = WriteSink(opened, length, room, float(timeout), last_byte_at=modem.now)
    return AwaitData(modem.result_bytes(CONNECT), sink, echo=False)


# --- AT+QFSEEK, AT+QFPOSITION -----------------------------------------------------------------


@command("+QFSEEK", family=FAMILY)
def seek_file(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QFSEEK=<filehandle>,<offset>[,<position>]: the file pointer moves to <offset> bytes from
    the start (0, the default), the pointer (1) or the end (2) (FILE note). A place past the end
    of the file is ``+CME ERROR: 401`` (the note: an offset beyond the file's size is an error;
    401 is its code "larger than the size of the file", chosen)."""
    if call.form is Form.TEST:
        return ok(f"+QFSEEK: <filehandle>,<offset>[,({FROM_START}-{FROM_END})]")
    _, _, opened = _opened(modem, call, 3)
    if len(call.args) < 2 or call.args[1] is None:
        raise CommandFailed(FileError.INVALID_PARAMETER)
    offset = number_arg(call, 1, 0, None, 0)
    origin = number_arg(call, 2, FROM_START, FROM_END, FROM_START)
    base = {FROM_START: 0, FROM_CURRENT: opened.position, FROM_END: len(opened.data)}[origin]
    if base + offset > len(opened.data):
        raise CommandFailed(FileError.LARGER_THAN_FILE)
    opened.position = base + offset
    return ok()


@command("+QFPOSITION", family=FAMILY)
def file_position(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QFPOSITION=<filehandle>: ``+QFPOSITION: <offset>``, the file pointer counted from the
    start of the file (FILE note)."""
    if call.form is Form.TEST:
        return ok("+QFPOSITION: <filehandle>")
    _, _, opened = _opened(modem, call, 1)
    return ok(f"+QFPOSITION: {opened.position}")
