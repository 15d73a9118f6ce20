"""The UFS file commands: AT+QFUPL, AT+QFLST, AT+QFDEL, AT+QFDWL, AT+QFLDS.

Formats and error codes follow REFERENCE.md "Files"; where it is silent, the FILE AT
commands manuals of the sibling families (BG96, EC2x, UGxx: "doc") and, failing those, what a real
module does ("chosen") decide. Files live in ``modem.files`` (a ``FileStore``, ecemu.core.ufs).
File errors are ``+CME ERROR: <n>``, shown per AT+CMEE.

Behaviour chosen where no document speaks (each is marked ``chosen`` below and listed in the
README): the upload timeout counts silence, not the whole transfer; an upload that times out
with no byte received stores nothing; ``+++`` is data; names are checked against the profile's name length and a
character set that keeps every name inside the UFS folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..core.parser import CommandCall, Form
from ..core.registry import AwaitData, CommandFailed, Outcome, Reply, command, ok, require_form
from ..core.results import CONNECT, OK, CmeError, FileError, Refusal
from ..core.ufs import FileStore, strip_ufs_prefix
from ..core.urcs import frame_after_data

if TYPE_CHECKING:
    from ..core.modem import Modem

FAMILY = "files"


@runtime_checkable
class HoldsOpenFiles(Protocol):
    """The family's state once AT+QFOPEN has a file open (``ecemu.commands.open_files``)."""

    def is_open(self, name: str) -> bool: ...

# AT+QFUPL parameter defaults and ranges (FILE note, doc: file size 10240 bytes, timeout 5 s,
# timeout range 1-65535, ackmode 0/1). These are the command's protocol, not module limits.
DEFAULT_UPLOAD_SIZE = 10240
DEFAULT_TIMEOUT = 5
MAX_TIMEOUT = 65535
ACK_BLOCK = 1024  # ACK mode: an "A" after every 1K block (doc)
ACK = b"A"

STORAGE = "UFS"
# Characters a name may never hold (chosen): path separators, the drive separator (another
# "XXX:" drive does not exist here), the wildcards and characters no filesystem takes.
FORBIDDEN_NAME_CHARS = set('/\\:*?"<>|')

def checksum(data: bytes) -> str:
    """The FILE note's checksum: XOR of big-endian 16-bit words, an odd last byte as the high
    byte of a word whose low byte is 0, shown as lower-case hex (REFERENCE.md, seen, verified).

    The words are XORed as one big integer folded in halves (a multiple of 16 bits each time):
    a 1.5 MB file takes a few milliseconds, not the tens a loop over its words would hold the
    event loop for."""
    if len(data) % 2:
        data += b"\0"
    value, words = int.from_bytes(data, "big"), len(data) // 2
    while words > 1:
        half = words // 2
        value = (value >> (16 * half)) ^ (value & ((1 << (16 * half)) - 1))
        words -= half
    return format(value, "x")


def answer_data(modem: "Modem", line: str) -> Reply:
    """The information line that answers the host's data, then OK: right after the last byte, with
    no CR LF before it. An EC200T's host firmware compares ``+QFUPL: <size>,<checksum>\\r\\n\\r\\nOK\\r\\n``
    from the first byte after the data, and Quectel's host SDK reads ``+QFWRITE:`` as the first line
    after the data (REFERENCE.md "Data after a prompt", seen)."""
    return Reply(raw=frame_after_data(modem.settings, line.encode()))


def ufs_name(modem: "Modem", text: str) -> str:
    """The bare file name for ``text`` (``UFS:`` optional, REFERENCE.md); 406 if it is not one.

    A name is at most ``limits.ufs_name_length`` characters of printable ASCII, not starting with
    ``.`` (the store keeps partial writes in dot files) and without path separators, ``:`` or
    wildcards, so that no name can reach outside the UFS folder (chosen: the module's own file
    system has no folders in UFS file names either).
    """
    name = strip_ufs_prefix(text)
    if not name or len(name) > modem.profile.limits.ufs_name_length or name.startswith("."):
        raise CommandFailed(FileError.INVALID_FILE_NAME)
    if any(ch in FORBIDDEN_NAME_CHARS or not " " <= ch <= "~" for ch in name):
        raise CommandFailed(FileError.INVALID_FILE_NAME)
    return name


def _name_arg(call: CommandCall) -> str:
    """The quoted name at index 0 and no other parameter; 425 otherwise (chosen)."""
    if len(call.args) != 1 or call.args[0] is None or not call.args[0].quoted:
        raise CommandFailed(FileError.INVALID_PARAMETER)
    return call.args[0].text


def number_arg(call: CommandCall, index: int, low: int, high: int | None, default: int) -> int:
    """An optional unquoted number in ``low..high`` (no upper bound with None); 400 when
    malformed or out of range (chosen)."""
    arg = call.args[index] if index < len(call.args) else None
    if arg is None:
        return default
    if arg.quoted or not (arg.text.isascii() and arg.text.isdigit()):  # "²" is a digit to Python
        raise CommandFailed(FileError.INVALID_INPUT_VALUE)
    value = int(arg.text)
    if value < low or (high is not None and value > high):
        raise CommandFailed(FileError.INVALID_INPUT_VALUE)
    return value


def _sizes(files: FileStore) -> dict[str, int]:
    """Every file with its size; a file that vanishes meanwhile (a shared folder) is skipped."""
    sizes = {}
    for name in files.names():
        try:
            sizes[name] = files.size(name)
        except FileNotFoundError:
            continue
    return sizes


def free_space(modem: "Modem") -> int:
    """UFS bytes free: the profile's ``ufs_size`` less what the files take and what files being
    written (AT+QHTTPREADFILE) have taken so far (never below 0)."""
    files = modem.files
    return max(0, modem.profile.limits.ufs_size - sum(_sizes(files).values()) - files.in_progress)


def room_for(modem: "Modem", name: str, writing: int = 0) -> int:
    """The most a file ``name`` may hold, written by a writer that has ``writing`` bytes so far:
    the profile's ``ufs_size`` less every other file (the one it replaces is not counted) and
    every other write in progress."""
    files = modem.files
    sizes = _sizes(files)
    sizes.pop(name, None)
    return modem.profile.limits.ufs_size - sum(sizes.values()) - (files.in_progress - writing)


def _check_space(modem: "Modem", size: int) -> None:
    """Room for ``size`` bytes, or the module's code for why not (chosen split of the FILE
    note's codes: 423 can never fit, 403 nothing free at all, 420 not enough free)."""
    free = free_space(modem)
    if size > modem.profile.limits.ufs_size:
        raise CommandFailed(FileError.FILE_TOO_LARGE)
    if free == 0:
        raise CommandFailed(FileError.DRIVE_FULL)
    if size > free:
        raise CommandFailed(FileError.NO_SPACE)


def _wildcard(pattern: str) -> re.Pattern[str]:
    """``*`` any run of characters, ``?`` one character, all else literal and case-sensitive
    (FILE note: ``*`` lists all; ``?`` as on the module's file system, chosen)."""
    parts = (".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile("".join(parts), re.DOTALL)


# --- AT+QFUPL ------------------------------------------------------------------------------


@dataclass
class UploadSink:
    """The bytes after AT+QFUPL's CONNECT: exactly ``size`` of them, all data (no echo, no
    commands, ``+++`` included: chosen, so that binary files are safe). The file is written once,
    when complete or timed out (see ``expire``), and never over an existing one (407 first)."""

    counted = True  # what the host sent past <file_size> is dropped (the length rule, core/data_entry.py)
    name: str
    size: int
    timeout: float
    ack: bool
    last_byte_at: float
    data: bytearray = field(default_factory=bytearray)

    def feed(self, modem: "Modem", data: bytes) -> tuple[int, Outcome | None]:
        take = data[: self.size - len(self.data)]
        before = len(self.data)
        self.data += take
        self.last_byte_at = modem.now
        if self.ack:
            # An "A" after every complete 1K block but the last: the final result acknowledges
            # the end of the file (chosen; doc describes the A per 1K block).
            blocks = min(len(self.data), self.size - 1) // ACK_BLOCK - before // ACK_BLOCK
            modem.write_host(ACK * max(0, blocks))
        if len(self.data) < self.size:
            return len(take), None
        return len(take), self._store(modem)

    def deadline(self) -> float:
        """The timeout counts from the last byte (or CONNECT): the module waits ``<timeout>``
        seconds for data to come (doc: "no data inputted when <timeout> reaches"), so a large
        file at a slow baud rate still uploads with the default timeout."""
        return self.last_byte_at + self.timeout

    def expire(self, modem: "Modem") -> Outcome:
        """421 once ``<timeout>`` seconds passed without data (the core moves its timer with
        ``deadline`` after every byte). What came before the silence is kept as the file and
        reported as a complete upload would be, then ``+CME ERROR: 421``, numeric whatever AT+CMEE
        says (REFERENCE.md "Files", seen on an EG800K). With no byte at all nothing is stored
        (chosen)."""
        timed_out = CmeError(FileError.TIMED_OUT, numeric_always=True)
        if not self.data:
            return Reply(final=timed_out)
        stored = self._store(modem)
        if stored.final is not OK:
            return stored
        return Reply(raw=stored.raw, final=timed_out)

    def _store(self, modem: "Modem") -> Reply:
        data = bytes(self.data)
        try:
            modem.files.write(self.name, data)
        except OSError:
            return Reply(final=CmeError(FileError.WRITE_FAILED))
        return answer_data(modem, f"+QFUPL: {len(data)},{checksum(data)}")


@command("+QFUPL", family=FAMILY)
def upload(modem: "Modem", call: CommandCall) -> Outcome:
    """AT+QFUPL="<name>"[,<file_size>[,<timeout>[,<ackmode>]]]: CONNECT, exactly <file_size>
    raw bytes, then ``+QFUPL: <upload_size>,<checksum>`` and OK (REFERENCE.md, Files (seen, doc)).

    Omitted parameters take the doc's defaults (10240 bytes, 5 s, ACK off). Chosen error codes:
    a bad name 406, an existing file 407 (the host deletes it first, as on the module), a size
    of 0 or a bad timeout/ackmode 400, no room 423/403/420, more than four parameters 425.
    """
    if call.form is Form.TEST:  # the doc's ranges, with today's free space filled in (chosen)
        return ok(f"+QFUPL: <filename>,(1-{free_space(modem)}),(1-{MAX_TIMEOUT}),(0,1)")
    require_form(call, Form.WRITE)
    if not call.args or call.args[0] is None or not call.args[0].quoted or len(call.args) > 4:
        raise CommandFailed(FileError.INVALID_PARAMETER)
    name = ufs_name(modem, call.args[0].text)
    size = number_arg(call, 1, 1, None, DEFAULT_UPLOAD_SIZE)
    timeout = number_arg(call, 2, 1, MAX_TIMEOUT, DEFAULT_TIMEOUT)
    ack = number_arg(call, 3, 0, 1, 0)
    if name in modem.files.names():
        raise CommandFailed(FileError.FILE_EXISTS)
    _check_space(modem, size)
    sink = UploadSink(name, size, float(timeout), bool(ack), last_byte_at=modem.now)
    return AwaitData(modem.result_bytes(CONNECT), sink, echo=False)


# --- AT+QFLST, AT+QFDEL, AT+QFDWL, AT+QFLDS ------------------------------------------------

# AT+QFLST is answered apart from the module's command parser: an EC200T echoes the LF of
# `AT+QFLST` CR LF before the listing, where AT+QFDEL and the others answer before it
# (REFERENCE.md "Line ends", seen). How long the listing takes is not known; 10 ms (chosen) is
# longer than one byte takes on the line at any AT+IPR rate (1.04 ms at 9600).
LISTING_TIME = 0.010


@command("+QFLST", family=FAMILY, answered_after=LISTING_TIME)
def list_files(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QFLST[="<pattern>"]: ``+QFLST: "UFS:<name>",<size>`` per file, sorted by name
    (REFERENCE.md, Files (seen)); test form answers OK (doc). A pattern that matches nothing
    answers just OK (chosen, as the module lists nothing)."""
    if call.form is Form.TEST:
        return ok()
    require_form(call, Form.EXEC, Form.WRITE)
    pattern = _wildcard(strip_ufs_prefix(_name_arg(call))) if call.form is Form.WRITE else None
    sizes = _sizes(modem.files)
    return ok(*(f'+QFLST: "UFS:{name}",{size}' for name, size in sorted(sizes.items())
                if pattern is None or pattern.fullmatch(name)))


@command("+QFDEL", family=FAMILY)
def delete(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QFDEL="<name>": delete one file, or every file with ``*`` (REFERENCE.md, Files (doc)).

    ``*`` with no file is OK; a missing file is 405; other wildcards are no name, 406 (chosen).
    """
    if call.form is Form.TEST:  # like AT+QFDWL=? (doc) (chosen)
        return ok("+QFDEL: <filename>")
    require_form(call, Form.WRITE)
    text = _name_arg(call)
    opened = modem.families.get(FAMILY)
    is_open = opened.is_open if isinstance(opened, HoldsOpenFiles) else lambda name: False
    if strip_ufs_prefix(text) == "*":
        for name in modem.files.names():
            if not is_open(name):  # an open file stays (chosen)
                _delete_one(modem.files, name, missing_ok=True)
        return ok()
    name = ufs_name(modem, text)
    if is_open(name):
        raise CommandFailed(FileError.FILE_ALREADY_OPEN)  # chosen: the note's code for a file that is open
    _delete_one(modem.files, name)
    return ok()


def _delete_one(files: FileStore, name: str, missing_ok: bool = False) -> None:
    try:
        files.delete(name)
    except FileNotFoundError:
        if not missing_ok:
            raise CommandFailed(FileError.FILE_NOT_FOUND) from None
    except OSError:
        # The folder refused (permissions): REFERENCE.md lists no code for it, so plain ERROR
        # (chosen) rather than a made-up one.
        raise CommandFailed(Refusal.PLAIN) from None


@command("+QFDWL", family=FAMILY)
def download(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QFDWL="<name>": ``CONNECT``, the file's bytes as they are, ``+QFDWL: <size>,<checksum>``
    and OK (REFERENCE.md, Files (doc)). CONNECT and the +QFDWL line are framed like any result
    and information line (per ATV); the data between them is not framed at all. 405 when the
    file is missing, 411 when it cannot be read."""
    if call.form is Form.TEST:
        return ok("+QFDWL: <filename>")
    require_form(call, Form.WRITE)
    name = ufs_name(modem, _name_arg(call))
    try:
        data = modem.files.read(name)
    except FileNotFoundError:
        raise CommandFailed(FileError.FILE_NOT_FOUND) from None
    except OSError:
        raise CommandFailed(FileError.READ_FAILED) from None
    trailer = modem.block([f"+QFDWL: {len(data)},{checksum(data)}".encode()])
    return Reply(raw=modem.result_bytes(CONNECT) + data + trailer)


@command("+QFLDS", family=FAMILY)
def space(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QFLDS="UFS" -> ``+QFLDS: <free>,<total>``; total is the profile's ``ufs_size``
    (REFERENCE.md, Files (doc)). The execution form answers ``+QFLDS: <bytes used>,<files>``
    (doc, BG96 FILE manual). Another storage name is 400 (chosen: this module has UFS only)."""
    if call.form is Form.TEST:  # the one storage this module has (chosen)
        return ok(f'+QFLDS: ("{STORAGE}")')
    if call.form is Form.EXEC:
        sizes = _sizes(modem.files)
        return ok(f"+QFLDS: {sum(sizes.values())},{len(sizes)}")
    require_form(call, Form.WRITE)
    if _name_arg(call).upper() not in (STORAGE, STORAGE + ":"):
        raise CommandFailed(FileError.INVALID_INPUT_VALUE)
    return ok(f"+QFLDS: {free_space(modem)},{modem.profile.limits.ufs_size}")
