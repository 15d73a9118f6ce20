"""The bytes the module writes, as the documents and real logs give them: one set for every test.

A result code in verbose mode (ATV1) is framed as <CR><LF>text<CR><LF> (V.250 5.7.1; REFERENCE.md
"Line ends"), which is what the framed constants below hold. ``OK_END`` is the tail of an answer
(``answer.endswith(OK_END)``) where a test does not care whether an echo or information text came
first. The expectations here are written from the documents, never imported from the emulator.
"""

from __future__ import annotations

CRLF = b"\r\n"


def framed(text: bytes) -> bytes:
    """A result code or URC line as the module frames it: CR LF, the text, CR LF."""
    return CRLF + text + CRLF


# Final results (V.250 5.7.1, verbose; the SSL note's and TCP/IP note's examples).
OK = framed(b"OK")
ERROR = framed(b"ERROR")
CONNECT = framed(b"CONNECT")
NO_CARRIER = framed(b"NO CARRIER")
SEND_OK = framed(b"SEND OK")
OK_END = b"OK\r\n"


def cme(code: int) -> bytes:
    """``+CME ERROR: <code>`` in numeric form (AT+CMEE=1, the family's default)."""
    return framed(b"+CME ERROR: %d" % code)


CME_3 = cme(3)    # operation not allowed
CME_30 = cme(30)  # no network service
CME_50 = cme(50)  # incorrect parameters

# The prompt for data after AT+QSSLSEND / AT+QISEND (SSL note 2.2.3: ">" after CR LF, and a space).
PROMPT = b"\r\n> "

# What the module prints after power-on, in order (REFERENCE.md "Boot and basics", seen on a real
# module): RDY, +CPIN: READY, +QUSIM: 1, then +QIND: SMS DONE and +QIND: PB DONE.
BOOT_LINES = (b"RDY", b"+CPIN: READY", b"+QUSIM: 1", b"+QIND: SMS DONE", b"+QIND: PB DONE")
BOOT_URCS = b"".join(framed(line) for line in BOOT_LINES)


class EC200M:
    """What an EC200M-CN with the shipped profile reports, written out here so that a transcript's
    expectations do not come from the profile the emulator loads (profiles/EC200M-CN.toml states the
    same chosen values; a change there has to be made here too, on purpose)."""

    manufacturer = b"Quectel"
    model = b"EC200M"
    revision = b"EC200MCNLAR02A02M16"
    imei = b"869487060012340"
    iccid = b"89860012345678901234"
    imsi = b"460001234567890"
    address = b"10.7.157.1"  # context 1's: the first host of the profile's pool, 10.7.157.0/24
    at_port = b"usbmodem"  # AT+QSSLSTATE's <AT_port>, as in the SSL note's examples (2.2.7)


def file_checksum(data: bytes) -> str:
    """The checksum AT+QFUPL and AT+QFDWL report, written from its definition in the FILE note
    (REFERENCE.md "Files"): the XOR of the data's big-endian 16-bit words, an odd last byte the
    high byte of a word whose low byte is 0, in lower-case hex without leading zeros. A plain loop,
    not the emulator's folding; test_files.py checks both against hand-computed values and a real
    module's answer."""
    padded = data + b"\0" * (len(data) % 2)
    value = 0
    for i in range(0, len(padded), 2):
        value ^= padded[i] << 8 | padded[i + 1]
    return format(value, "x")


# AT+QIGETERROR's <err> and its description: the SSL note's error-code chapter (5), in lower case as
# real modules print it, and 552 in the plural a module printed (REFERENCE.md "PDP context", seen).
QI_ERRORS = {
    0: "operate successfully",
    550: "unknown error", 551: "operation blocked", 552: "invalid parameters", 553: "memory not enough",
    554: "create socket failed", 555: "operation not supported", 556: "socket bind failed",
    557: "socket listen failed", 558: "socket write failed", 559: "socket read failed",
    560: "socket accept failed", 561: "open pdp context failed", 562: "close pdp context failed",
    563: "socket identity has been used", 564: "dns busy", 565: "dns parse failed",
    566: "socket connection failed", 567: "socket has been closed", 568: "operation busy",
    569: "operation timeout", 570: "pdp context break down", 571: "cancel send",
    572: "operation not allowed", 573: "apn not configured", 574: "port busy",
}
