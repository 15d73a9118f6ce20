"""Result codes, error codes, and how they are framed on the wire: the one place for both.

Framing (SSL note 2.1.2, V.250 6.2.1 - 6.2.6): with ATV1 every information block and result code
is framed ``<CR><LF>text<CR><LF>``. With ATV0 an information block is ``text<CR><LF>`` and a basic
result code is its number and ``<CR>``; extended result codes (``+CME ERROR``, ``SEND OK`` ...)
keep their text. ``<CR>`` is the character in S3 and ``<LF>`` the one in S4 (V.250 6.2.1, 6.2.2:
both are part of the header, trailer and terminator of result codes and information text); by
default 13 and 10. Whether a result code is sent at all (ATQ) is the modem's business.

Errors: a command that fails raises ``CommandFailed(code)`` (``ecemu.core.registry``) with one
code. What the host then sees is up to the command's family, which declares one of two ways
(``Family.errors``):

- ``QIGETERROR`` (the TCP/IP and SSL commands; REFERENCE.md "Boot and basics"): the final result
  is plain ``ERROR`` and the code waits for AT+QIGETERROR; a command of the family that succeeds
  sets it back to 0.
- ``CME`` (the 3GPP, V.250 and FILE commands): ``+CME ERROR: <n>``, shown per AT+CMEE; a failure
  without a code answers plain ``ERROR``.

The codes: ``QiError`` (SSL note chapter 5, the TCP/IP note's table too), ``CmeCode`` (27.007 9.2
and the FILE note's 4xx codes, REFERENCE.md "Files"), and ``Refusal``: failures every family knows
and shows its own way (a form the command does not take, a parameter out of range, a bug).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

CRLF = b"\r\n"
S3_DEFAULT = 13  # V.250 6.2.1: CR
S4_DEFAULT = 10  # V.250 6.2.2: LF


@dataclass(frozen=True)
class FinalResult:
    """A final result code: the last thing a command line answers."""

    text: str
    number: int | None = None  # V.250 numeric form, for the basic result codes only

    def __post_init__(self) -> None:
        # The form nearly every answer takes (ATV1, S3 and S4 as they come), made once.
        object.__setattr__(self, "_usual", CRLF + self.text.encode() + CRLF)

    def encode(self, verbose: bool, s3: int = S3_DEFAULT, s4: int = S4_DEFAULT) -> bytes:
        if verbose and s3 == S3_DEFAULT and s4 == S4_DEFAULT:
            return self._usual  # type: ignore[attr-defined]
        cr, crlf = bytes((s3,)), bytes((s3, s4))
        if verbose:
            return crlf + self.text.encode() + crlf
        if self.number is not None:
            return str(self.number).encode() + cr
        return self.text.encode() + crlf


OK = FinalResult("OK", 0)
CONNECT = FinalResult("CONNECT", 1)
NO_CARRIER = FinalResult("NO CARRIER", 3)
ERROR = FinalResult("ERROR", 4)
SEND_OK = FinalResult("SEND OK")
SEND_FAIL = FinalResult("SEND FAIL")


@dataclass(frozen=True)
class CmeError:
    """``+CME ERROR: <n>``; shown as ``ERROR`` when AT+CMEE=0 and as text when AT+CMEE=2."""

    code: int
    # Some answers give the number even with AT+CMEE=2 (a real EG800K's AT+QFUPL timeout: "421").
    numeric_always: bool = False

    def as_final(self, cmee: int) -> FinalResult:
        if cmee == 0:
            return ERROR
        if cmee == 2 and not self.numeric_always:
            return FinalResult(f"+CME ERROR: {CME_TEXTS.get(self.code, 'unknown')}")
        return FinalResult(f"+CME ERROR: {self.code}")


def encode_block(lines: list[bytes], verbose: bool, s3: int = S3_DEFAULT, s4: int = S4_DEFAULT) -> bytes:
    """An information response or URC: its lines joined by S3 S4 (CRLF) and framed per ATV."""
    crlf = bytes((s3, s4))
    body = crlf.join(lines)
    if verbose:
        return crlf + body + crlf
    return body + crlf

class QiError(enum.IntEnum):
    """SSL note chapter 5; the text is what AT+QIGETERROR prints (lower case as the module prints
    them; 0 and 552 read as seen on a real module, REFERENCE.md, not as the table spells them)."""

    OK = 0
    UNKNOWN = 550
    OPERATION_BLOCKED = 551
    INVALID_PARAMETER = 552
    MEMORY_NOT_ENOUGH = 553
    CREATE_SOCKET_FAILED = 554
    OPERATION_NOT_SUPPORTED = 555
    SOCKET_BIND_FAILED = 556
    SOCKET_LISTEN_FAILED = 557
    SOCKET_WRITE_FAILED = 558
    SOCKET_READ_FAILED = 559
    SOCKET_ACCEPT_FAILED = 560
    OPEN_PDP_FAILED = 561
    CLOSE_PDP_FAILED = 562
    SOCKET_IN_USE = 563
    DNS_BUSY = 564
    DNS_FAILED = 565
    CONNECT_FAILED = 566  # connect, handshake and certificate failures alike (REFERENCE.md, seen)
    SOCKET_CLOSED = 567
    OPERATION_BUSY = 568
    TIMEOUT = 569
    PDP_BROKEN = 570
    CANCEL_SEND = 571
    NOT_ALLOWED = 572
    APN_NOT_CONFIGURED = 573
    PORT_BUSY = 574

    @property
    def text(self) -> str:
        return QI_ERROR_TEXTS[self.value]


QI_ERROR_TEXTS: dict[int, str] = {
    0: "operate successfully",
    550: "unknown error",
    551: "operation blocked",
    552: "invalid parameters",
    553: "memory not enough",
    554: "create socket failed",
    555: "operation not supported",
    556: "socket bind failed",
    557: "socket listen failed",
    558: "socket write failed",
    559: "socket read failed",
    560: "socket accept failed",
    561: "open pdp context failed",
    562: "close pdp context failed",
    563: "socket identity has been used",
    564: "dns busy",
    565: "dns parse failed",
    566: "socket connection failed",
    567: "socket has been closed",
    568: "operation busy",
    569: "operation timeout",
    570: "pdp context break down",
    571: "cancel send",
    572: "operation not allowed",
    573: "apn not configured",
    574: "port busy",
}


class CmeCode(enum.IntEnum):
    """``+CME ERROR: <n>`` (27.007 9.2; FILE note 4xx codes, REFERENCE.md, doc)."""

    NOT_ALLOWED = 3
    NOT_SUPPORTED = 4
    SIM_NOT_INSERTED = 10
    SIM_FAILURE = 13
    NO_NETWORK_SERVICE = 30
    # What a parameter error on a 3GPP command gives when AT+CMEE is 1 or 2 (chosen: 27.007's
    # "incorrect parameters"; the TCP/IP and SSL commands answer plain ERROR instead).
    INCORRECT_PARAMETERS = 50
    UNKNOWN = 100
    # The FILE note's codes.
    INVALID_INPUT_VALUE = 400
    LARGER_THAN_FILE = 401
    READ_ZERO_BYTE = 402
    DRIVE_FULL = 403
    FILE_NOT_FOUND = 405
    INVALID_FILE_NAME = 406
    FILE_EXISTS = 407
    WRITE_FAILED = 409
    OPEN_FAILED = 410
    READ_FAILED = 411
    TOO_MANY_OPEN_FILES = 413
    FILE_READ_ONLY = 414
    INVALID_FILE_HANDLE = 416
    NO_SPACE = 420
    TIMED_OUT = 421
    FILE_TOO_LARGE = 423
    FILE_INVALID_PARAMETER = 425
    FILE_ALREADY_OPEN = 426


# +CME ERROR texts for AT+CMEE=2.
CME_TEXTS: dict[int, str] = {
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    13: "SIM failure",
    30: "no network service",
    50: "incorrect parameters",
    100: "unknown",
    400: "invalid input value",
    401: "larger than the size of the file",
    402: "read zero byte",
    403: "drive full",
    405: "file not found",
    406: "invalid file name",
    407: "file already exist",  # seen on an EG800K (REFERENCE.md "Files"), not the FILE note's text
    409: "fail to write the file",
    410: "fail to open the file",
    411: "fail to read the file",
    413: "reach the max number of file allowed to be opened",
    414: "the file read-only",
    416: "invalid file descriptor",
    420: "no space",
    421: "time out",
    423: "file too large",
    425: "invalid parameter",
    426: "file already opened",
}


class Refusal(enum.Enum):
    """Failures that are not one family's: each family shows them its own way."""

    FORM = "a form or syntax the command does not take"  # QIGETERROR: 552; CME: plain ERROR
    PARAMETER = "a parameter out of range or malformed"  # QIGETERROR: 552; CME: +CME ERROR: 50
    INTERNAL = "an error inside the emulator"  # QIGETERROR: 550; CME: plain ERROR


# An int is a code results.py does not name yet; it is reported as given.
Code = QiError | CmeCode | Refusal | int


class ErrorStore(Protocol):
    """Where AT+QIGETERROR's code is kept (the modem)."""

    last_qi_error: int


class ErrorReporting(Protocol):
    """How a family's failed command is shown to the host."""

    def failed(self, store: ErrorStore, code: Code | None) -> FinalResult | CmeError: ...

    def succeeded(self, store: ErrorStore) -> None: ...


class QiGetErrorReporting:
    """Plain ERROR; the code for AT+QIGETERROR (0 again after a command that succeeds)."""

    def failed(self, store: ErrorStore, code: Code | None) -> FinalResult | CmeError:
        if isinstance(code, int) and not isinstance(code, CmeCode):  # QiError, or a code not named here
            store.last_qi_error = int(code)
        elif code is Refusal.INTERNAL:
            store.last_qi_error = QiError.UNKNOWN
        else:
            store.last_qi_error = QiError.INVALID_PARAMETER
        return ERROR

    def succeeded(self, store: ErrorStore) -> None:
        store.last_qi_error = 0


class CmeReporting:
    """``+CME ERROR: <n>`` per AT+CMEE; plain ERROR without a code."""

    def failed(self, store: ErrorStore, code: Code | None) -> FinalResult | CmeError:
        if isinstance(code, int) and not isinstance(code, QiError):  # CmeCode, or a code not named here
            return CmeError(int(code))
        if code is Refusal.PARAMETER:
            return CmeError(CmeCode.INCORRECT_PARAMETERS)
        return ERROR

    def succeeded(self, store: ErrorStore) -> None:
        pass


QIGETERROR = QiGetErrorReporting()
CME = CmeReporting()
