"""Result codes and how they are framed on the wire (SSL note 2.1.2, V.250 6.2.1 - 6.2.6).

With ATV1 every information block and result code is framed ``<CR><LF>text<CR><LF>``. With ATV0
an information block is ``text<CR><LF>`` and a basic result code is its number and ``<CR>``;
extended result codes (``+CME ERROR``, ``SEND OK`` ...) keep their text.

``<CR>`` is the character in S3 and ``<LF>`` the one in S4 (V.250 6.2.1, 6.2.2: both are part of
the header, trailer and terminator of result codes and information text); by default 13 and 10.
Whether a result code is sent at all (ATQ) is the modem's business: see ``Modem._finish``.
"""

from __future__ import annotations

from dataclasses import dataclass

CRLF = b"\r\n"
S3_DEFAULT = 13  # V.250 6.2.1: CR
S4_DEFAULT = 10  # V.250 6.2.2: LF


@dataclass(frozen=True)
class FinalResult:
    """A final result code: the last thing a command line answers."""

    text: str
    number: int | None = None  # V.250 numeric form, for the basic result codes only

    def encode(self, verbose: bool, s3: int = S3_DEFAULT, s4: int = S4_DEFAULT) -> bytes:
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
    407: "file already exist",  # seen on an EG800K (REFERENCE.md "Files"), not the FILE note's text
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
