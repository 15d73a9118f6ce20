"""AT+CMUX: the port becomes a 3GPP TS 27.010 multiplexer (``ecemu.core.cmux``,
``ecemu.core.channel.MuxSession``), each DLC the host opens a full AT channel of the one module.

Sources: 27.007 5.7 (the command and its parameters), 27.010 (the protocol); REFERENCE.md "CMUX"
(what the EC200x takes, doc and chosen).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.channel import MuxSession
from ..core.cmux import CmuxParameters
from ..core.parser import CommandCall, Form
from ..core.registry import CommandFailed, Reply, command, int_arg, ok, require_form
from ..core.results import CmeCode, Refusal

if TYPE_CHECKING:
    from ..core.modem import Modem

FAMILY = "cmux"

# AT+CMUX=? as the EC2x/EC200x answers it (REFERENCE.md "CMUX"): the basic option and UIH frames
# only; port speeds 1-8 (9600 ... 921600 bit/s).
RANGES = (("mode", 0, 0), ("subset", 0, 0), ("port_speed", 1, 8), ("n1", 1, 32768), ("t1", 1, 255),
          ("n2", 0, 100), ("t2", 2, 255), ("t3", 1, 255), ("k", 1, 7))


def _shown(params: CmuxParameters) -> str:
    return ",".join(str(getattr(params, name)) for name, _, _ in RANGES)


@command("+CMUX", family=FAMILY)
def multiplexer(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CMUX=<mode>[,<subset>[,<port_speed>[,<N1>[,<T1>[,<N2>[,<T2>[,<T3>[,<k>]]]]]]]] (27.007 5.7):
    OK, then 27.010 frames on the port. Parameters left out take 27.007's defaults (0,0,5,31,10,3,
    30,10,2). The advanced option (mode 1) and subsets other than UIH are refused with +CME ERROR:
    4 (not supported), a value out of range with 50, T2 not above T1 with 50 (27.007: T2 must be
    longer than T1), and AT+CMUX inside a DLC with 3 (chosen: a multiplexer is not nested).
    The read form shows the parameters in use (the defaults outside a multiplexer)."""
    if call.form is Form.TEST:
        return ok("+CMUX: " + ",".join(f"({low})" if low == high else f"({low}-{high})" for _, low, high in RANGES))
    if call.form is Form.READ:
        params = modem.mux.params if modem.mux is not None else CmuxParameters()
        return ok(f"+CMUX: {_shown(params)}")
    require_form(call, Form.WRITE)
    if modem.multiplexed:
        raise CommandFailed(CmeCode.NOT_ALLOWED)
    if len(call.args) > len(RANGES):
        raise CommandFailed(Refusal.PARAMETER)
    defaults = CmuxParameters()
    values = {}
    for index, (name, low, high) in enumerate(RANGES):
        value = int_arg(call, index, 0, 65535, default=getattr(defaults, name))
        if name in ("mode", "subset") and value in (1, 2):
            raise CommandFailed(CmeCode.NOT_SUPPORTED)  # 27.007 defines them; the module has not
        if not low <= value <= high:
            raise CommandFailed(Refusal.PARAMETER)
        values[name] = value
    params = CmuxParameters(**values)
    if params.t2 <= params.t1:
        raise CommandFailed(Refusal.PARAMETER)
    return Reply(online=MuxSession(modem, params))
