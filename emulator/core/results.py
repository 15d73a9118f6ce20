"""Result codes, error codes, and how they are framed on the wire: the one place for both.

Framing (SSL note 2.1.2, V.250 6.2.1 - 6.2.6): with ATV1 every information block and result code
is framed ``<CR><LF>text<CR><LF>``. With ATV0 an information block is ``text<CR><LF>`` and a basic
result code is its number and ``<CR>``; extended result codes (``+CME ERROR``, ``SEND OK`` ...)
keep their text. ``<CR>`` is the character in S3 and ``<LF>`` the one in S4 (V.250 6.2.1, 6.2.2:
both are part of the header, trailer and terminator of result codes and information text); by
default 13 and 10. Whether a result code is sent at all (ATQ) is the modem's business.

Errors: a command that fails raises ``CommandFailed(code)`` (``ecemu.core.registry``) with one
code, a member of one of the tables below; nothing else names a code. The tables, one per family of
errors, each code with the document's text for it:

- ``CmeCode``: 27.007 9.2.1, the 3GPP commands' ``+CME ERROR: <n>``;
- ``FileError``: the FILE note's 4xx codes (REFERENCE.md "Files"), shown as ``+CME ERROR: <n>``;
- ``QiError``: the TCP/IP and SSL commands' 5xx codes (SSL note chapter 5; the TCP/IP note);
- ``HttpError``: the HTTP(S) note's 7xx codes;
- ``MqttOpenResult``, ``MqttCloseResult``, ``MqttDisconnectResult``, ``MqttStat``, ``MqttResult``:
  the MQTT note's codes of its URCs;
- ``Refusal``: failures no table names, each family showing them its own way; ``Refusal.PARAMETER``
  is how every handler refuses a parameter.

What the host sees is up to the command's family, which declares one way (``Family.errors``):

- ``QIGETERROR`` (the TCP/IP and SSL commands; REFERENCE.md "Boot and basics"): the final result
  is plain ``ERROR`` and the code waits for AT+QIGETERROR; a command of the family that succeeds
  sets it back to 0.
- ``CME`` (the 3GPP, V.250 and FILE commands): ``+CME ERROR: <n>``, shown per AT+CMEE; a
  ``Refusal`` other than ``PARAMETER`` answers plain ``ERROR``.
- ``HTTP`` (the HTTP(S) commands): ``+CME ERROR: <err>`` with the HTTP note's code.
- ``PLAIN`` (the MQTT commands): plain ``ERROR`` whatever went wrong.
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

    code: "CmeCode | FileError | HttpError"
    # Some answers give the number even with AT+CMEE=2 (a real EG800K's AT+QFUPL timeout: "421").
    numeric_always: bool = False

    def as_final(self, cmee: int) -> FinalResult:
        if cmee == 0:
            return ERROR
        if cmee == 2 and not self.numeric_always:
            return FinalResult(f"+CME ERROR: {self.code.text}")
        return FinalResult(f"+CME ERROR: {int(self.code)}")


def encode_block(lines: list[bytes], verbose: bool, s3: int = S3_DEFAULT, s4: int = S4_DEFAULT) -> bytes:
    """An information response or URC: its lines joined by S3 S4 (CRLF) and framed per ATV."""
    crlf = bytes((s3, s4))
    body = crlf.join(lines)
    if verbose:
        return crlf + body + crlf
    return body + crlf


class CodeTable(enum.IntEnum):
    """A table of one family's codes: each member is the number on the wire and, in ``text``, what
    the family's document says of it."""

    text: str

    def __new__(cls, value: int, text: str) -> "CodeTable":
        member = int.__new__(cls, value)
        member._value_ = value
        member.text = text
        return member


class CmeCode(CodeTable):
    """``+CME ERROR: <n>`` of the 3GPP commands (27.007 9.2.1); ``text`` is what AT+CMEE=2 shows."""

    NOT_ALLOWED = 3, "operation not allowed"
    NOT_SUPPORTED = 4, "operation not supported"
    SIM_NOT_INSERTED = 10, "SIM not inserted"
    SIM_FAILURE = 13, "SIM failure"
    NO_NETWORK_SERVICE = 30, "no network service"
    # What a parameter error on a 3GPP command gives when AT+CMEE is 1 or 2 (``Refusal.PARAMETER``;
    # chosen: 27.007's "incorrect parameters"; the TCP/IP and SSL commands answer plain ERROR instead).
    INCORRECT_PARAMETERS = 50, "incorrect parameters"
    UNKNOWN = 100, "unknown"


class FileError(CodeTable):
    """The FILE note's ``+CME ERROR: <n>`` codes (REFERENCE.md "Files"); ``text`` is what AT+CMEE=2
    shows."""

    INVALID_INPUT_VALUE = 400, "invalid input value"
    LARGER_THAN_FILE = 401, "larger than the size of the file"
    READ_ZERO_BYTE = 402, "read zero byte"
    DRIVE_FULL = 403, "drive full"
    FILE_NOT_FOUND = 405, "file not found"
    INVALID_FILE_NAME = 406, "invalid file name"
    FILE_EXISTS = 407, "file already exist"  # as an EG800K shows it (REFERENCE.md "Files", seen)
    WRITE_FAILED = 409, "fail to write the file"
    OPEN_FAILED = 410, "fail to open the file"
    READ_FAILED = 411, "fail to read the file"
    TOO_MANY_OPEN_FILES = 413, "reach the max number of file allowed to be opened"
    FILE_READ_ONLY = 414, "the file read-only"
    INVALID_FILE_HANDLE = 416, "invalid file descriptor"
    NO_SPACE = 420, "no space"
    TIMED_OUT = 421, "time out"
    FILE_TOO_LARGE = 423, "file too large"
    INVALID_PARAMETER = 425, "invalid parameter"
    FILE_ALREADY_OPEN = 426, "file already opened"


class QiError(CodeTable):
    """The TCP/IP and SSL commands' codes (SSL note chapter 5, the TCP/IP note's table too);
    ``text`` is what AT+QIGETERROR prints (lower case as the module prints them; 0 and 552 read as
    seen on a real module, REFERENCE.md, not as the table spells them)."""

    OK = 0, "operate successfully"
    UNKNOWN = 550, "unknown error"
    OPERATION_BLOCKED = 551, "operation blocked"
    INVALID_PARAMETER = 552, "invalid parameters"
    MEMORY_NOT_ENOUGH = 553, "memory not enough"
    CREATE_SOCKET_FAILED = 554, "create socket failed"
    OPERATION_NOT_SUPPORTED = 555, "operation not supported"
    SOCKET_BIND_FAILED = 556, "socket bind failed"
    SOCKET_LISTEN_FAILED = 557, "socket listen failed"
    SOCKET_WRITE_FAILED = 558, "socket write failed"
    SOCKET_READ_FAILED = 559, "socket read failed"
    SOCKET_ACCEPT_FAILED = 560, "socket accept failed"
    OPEN_PDP_FAILED = 561, "open pdp context failed"
    CLOSE_PDP_FAILED = 562, "close pdp context failed"
    SOCKET_IN_USE = 563, "socket identity has been used"
    DNS_BUSY = 564, "dns busy"
    DNS_FAILED = 565, "dns parse failed"
    # connect, handshake and certificate failures alike (REFERENCE.md, seen)
    CONNECT_FAILED = 566, "socket connection failed"
    SOCKET_CLOSED = 567, "socket has been closed"
    OPERATION_BUSY = 568, "operation busy"
    TIMEOUT = 569, "operation timeout"
    PDP_BROKEN = 570, "pdp context break down"
    CANCEL_SEND = 571, "cancel send"
    NOT_ALLOWED = 572, "operation not allowed"
    APN_NOT_CONFIGURED = 573, "apn not configured"
    PORT_BUSY = 574, "port busy"


class HttpError(CodeTable):
    """<err> of the HTTP(S) commands and URCs (HTTP note, its table of error codes; REFERENCE.md
    "HTTP(S) and MQTT"). The module shows them as numbers only (``HTTP``)."""

    OK = 0, "Operation successful"
    UNKNOWN = 701, "HTTP(S) unknown error"
    TIMEOUT = 702, "HTTP(S) timeout"
    BUSY = 703, "HTTP(S) busy"
    UART_BUSY = 704, "HTTP(S) UART busy"
    NO_REQUEST = 705, "HTTP(S) no GET/POST requests"
    NETWORK_BUSY = 706, "HTTP(S) network busy"
    NETWORK_OPEN_FAILED = 707, "HTTP(S) network open failed"
    NETWORK_NO_CONFIG = 708, "HTTP(S) network no configuration"
    NETWORK_DEACTIVATED = 709, "HTTP(S) network deactivated"
    NETWORK_ERROR = 710, "HTTP(S) network error"
    URL_ERROR = 711, "HTTP(S) URL error"
    EMPTY_URL = 712, "HTTP(S) empty URL"
    IP_ADDRESS_ERROR = 713, "HTTP(S) IP address error"
    DNS_ERROR = 714, "HTTP(S) DNS error"
    SOCKET_CREATE_ERROR = 715, "HTTP(S) socket create error"
    SOCKET_CONNECT_ERROR = 716, "HTTP(S) socket connect error"
    SOCKET_READ_ERROR = 717, "HTTP(S) socket read error"
    SOCKET_WRITE_ERROR = 718, "HTTP(S) socket write error"
    SOCKET_CLOSED = 719, "HTTP(S) socket closed"
    DATA_ENCODE_ERROR = 720, "HTTP(S) data encode error"
    DATA_DECODE_ERROR = 721, "HTTP(S) data decode error"
    READ_TIMEOUT = 722, "HTTP(S) read timeout"
    RESPONSE_FAILED = 723, "HTTP(S) response failed"
    INPUT_TIMEOUT = 726, "Input timeout"
    WAIT_DATA_TIMEOUT = 727, "Wait data timeout"
    WAIT_RESPONSE_TIMEOUT = 728, "Wait HTTP(S) response timeout"
    # also AT+QHTTPREADFILE's answer when the body does not fit in UFS (REFERENCE.md)
    MEMORY_ERROR = 729, "Memory allocation failed"
    INVALID_PARAMETER = 730, "Invalid parameter"


# The MQTT family's codes: the MQTT note gives one table per URC. The MQTT commands themselves
# answer plain ERROR whatever went wrong (``PLAIN``); these come in the URCs.


class MqttOpenResult(CodeTable):
    """<result> of ``+QMTOPEN: <client_idx>,<result>`` (MQTT note 3.2.2, AT+QMTOPEN)."""

    FAILED = -1, "Failed to open network"
    OK = 0, "Network opened successfully"
    WRONG_PARAMETER = 1, "Wrong parameter"
    IDENTIFIER_OCCUPIED = 2, "MQTT identifier is occupied"
    PDP_FAILED = 3, "Failed to activate PDP"
    DNS_FAILED = 4, "Failed to parse domain name"
    NETWORK_ERROR = 5, "Network connection error"


class MqttCloseResult(CodeTable):
    """<result> of ``+QMTCLOSE: <client_idx>,<result>`` (MQTT note 3.2.3, AT+QMTCLOSE)."""

    FAILED = -1, "Failed to close network"
    OK = 0, "Network closed successfully"


class MqttDisconnectResult(CodeTable):
    """<result> of ``+QMTDISC: <client_idx>,<result>`` (MQTT note 3.2.5, AT+QMTDISC)."""

    FAILED = -1, "Failed to close connection"
    OK = 0, "Connection closed successfully"


class MqttStat(CodeTable):
    """<err_code> of ``+QMTSTAT: <client_idx>,<err_code>`` (MQTT note 4.1): why the link went."""

    CLOSED_BY_PEER = 1, "Connection is closed or reset by peer"
    PING_FAILED = 2, "Sending PINGREQ packet timed out or failed"
    CONNECT_FAILED = 3, "Sending CONNECT packet timed out or failed"
    CONNACK_FAILED = 4, "Receiving CONNACK packet timed out or failed"
    SERVER_DISCONNECTED = 5, ("The client sends DISCONNECT packet to sever and the server is initiative to "
                              "close MQTT connection")
    SEND_FAILED = 6, "The client is initiative to close MQTT connection due to packet sending failure all the time"
    LINK_DOWN = 7, "The link is not alive or the server is unavailable"


class MqttResult(CodeTable):
    """<result> of ``+QMTCONN``, ``+QMTSUB``, ``+QMTUNS``, ``+QMTPUB`` (MQTT note 3.2.4 - 3.2.8)."""

    OK = 0, "Packet sent successfully and ACK received from server"
    RETRANSMITTED = 1, "Packet retransmission"
    FAILED = 2, "Failed to send packet"


class Refusal(enum.Enum):
    """Failures no family's table names: each family shows them its own way (its ``ErrorReporting``
    below). ``PARAMETER`` is how every handler refuses a parameter."""

    FORM = "a form or syntax the command does not take"  # QIGETERROR: 552; the others: plain ERROR
    PARAMETER = "a parameter out of range or malformed"  # QIGETERROR: 552; CME: 50; HTTP: 730; PLAIN: ERROR
    # A value refused with plain ERROR whatever AT+CMEE says: V.250's answer to a value a basic
    # command does not take, and a failure no table has a code for.
    PLAIN = "refused with plain ERROR"  # QIGETERROR: 552; the others: plain ERROR
    INTERNAL = "an error inside the emulator"  # QIGETERROR: 550; the others: plain ERROR


# The one code a failed command carries (``CommandFailed``).
Code = QiError | CmeCode | FileError | HttpError | Refusal


class ErrorStore(Protocol):
    """Where AT+QIGETERROR's code is kept (the modem)."""

    last_qi_error: QiError


class ErrorReporting(Protocol):
    """How a family's failed command is shown to the host."""

    def failed(self, store: ErrorStore, code: Code) -> FinalResult | CmeError: ...

    def succeeded(self, store: ErrorStore) -> None: ...


class QiGetErrorReporting:
    """Plain ERROR; the code for AT+QIGETERROR (0 again after a command that succeeds)."""

    def failed(self, store: ErrorStore, code: Code) -> FinalResult | CmeError:
        if isinstance(code, QiError):
            store.last_qi_error = code
        elif code is Refusal.INTERNAL:
            store.last_qi_error = QiError.UNKNOWN
        else:
            store.last_qi_error = QiError.INVALID_PARAMETER
        return ERROR

    def succeeded(self, store: ErrorStore) -> None:
        store.last_qi_error = QiError.OK


class CmeReporting:
    """``+CME ERROR: <n>`` per AT+CMEE; plain ERROR for a failure no table names."""

    def failed(self, store: ErrorStore, code: Code) -> FinalResult | CmeError:
        if isinstance(code, (CmeCode, FileError)):
            return CmeError(code)
        if code is Refusal.PARAMETER:
            return CmeError(CmeCode.INCORRECT_PARAMETERS)
        return ERROR

    def succeeded(self, store: ErrorStore) -> None:
        pass


class HttpReporting:
    """``+CME ERROR: <err>`` with the HTTP note's code (shown as a number whatever AT+CMEE=2 asks:
    chosen, the module has no texts for them); a malformed line answers plain ERROR."""

    def failed(self, store: ErrorStore, code: Code) -> FinalResult | CmeError:
        if isinstance(code, HttpError):
            return CmeError(code, numeric_always=True)
        if isinstance(code, (CmeCode, FileError)):
            return CmeError(code)
        if code is Refusal.PARAMETER:
            return CmeError(HttpError.INVALID_PARAMETER, numeric_always=True)
        return ERROR

    def succeeded(self, store: ErrorStore) -> None:
        pass


class PlainReporting:
    """Plain ``ERROR`` whatever went wrong: the MQTT commands (MQTT note 3.2)."""

    def failed(self, store: ErrorStore, code: Code) -> FinalResult | CmeError:
        return ERROR

    def succeeded(self, store: ErrorStore) -> None:
        pass


QIGETERROR = QiGetErrorReporting()
CME = CmeReporting()
HTTP = HttpReporting()
PLAIN = PlainReporting()
