"""Result codes and how they are framed on the wire (SSL note 2.1.2, V.250 6.2.6 - 6.2.7).

With ATV1 every information block and result code is framed ``<CR><LF>text<CR><LF>``. With ATV0
an information block is ``text<CR><LF>`` and a basic result code is its number and ``<CR>``;
extended result codes (``+CME ERROR``, ``SEND OK`` ...) keep their text.
"""

from __future__ import annotations

from dataclasses import dataclass

CRLF = b"\r\n"


@dataclass(frozen=True)
class FinalResult:
    """A final result code: the last thing a command line answers."""

    text: str
    number: int | None = None  # V.250 numeric form, for the basic result codes only

    def encode(self, verbose: bool) -> bytes:
        if verbose:
            return CRLF + self.text.encode() + CRLF
        if self.number is not None:
            return str(self.number).encode() + b"\r"
        return self.text.encode() + CRLF


OK = FinalResult("OK", 0)
CONNECT = FinalResult("CONNECT", 1)
NO_CARRIER = FinalResult("NO CARRIER", 3)
ERROR = FinalResult("ERROR", 4)
SEND_OK = FinalResult("SEND OK")
SEND_FAIL = FinalResult("SEND FAIL")

# +CME ERROR texts for AT+CMEE=2 (3GPP TS 27.007 9.2 and the FILE note's 4xx codes, REFERENCE.md).
CME_TEXTS = {
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
    407: "file already existed",
    409: "fail to write the file",
    410: "fail to open the file",
    411: "fail to read the file",
    420: "no space",
    421: "time out",
    423: "file too large",
    425: "invalid parameter",
}

# The code a parameter error on a 3GPP command gives when AT+CMEE is 1 or 2 (chosen: 27.007's
# "incorrect parameters"; the module's TCP/IP and SSL commands answer plain ERROR instead).
CME_INCORRECT_PARAMETERS = 50


@dataclass(frozen=True)
class CmeError:
    """``+CME ERROR: <n>``; shown as ``ERROR`` when AT+CMEE=0 and as text when AT+CMEE=2."""

    code: int

    def as_final(self, cmee: int) -> FinalResult:
        if cmee == 0:
            return ERROR
        if cmee == 2:
            return FinalResult(f"+CME ERROR: {CME_TEXTS.get(self.code, 'unknown')}")
        return FinalResult(f"+CME ERROR: {self.code}")


def encode_block(lines: list[bytes], verbose: bool) -> bytes:
    """An information response or URC: its lines joined by CRLF and framed per ATV."""
    body = CRLF.join(lines)
    if verbose:
        return CRLF + body + CRLF
    return body + CRLF
