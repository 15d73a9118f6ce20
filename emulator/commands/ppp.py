"""PPP data calls: ATD*99#, ATD*99***<cid>#, AT+CGDATA="PPP",<cid> (27.007 10.2.1.1, 10.1.12).

The call answers CONNECT and runs PPP (``ecemu.core.ppp``) on the channel it was dialled from: the
bare port, or a CMUX channel. IPCP gives the host the context's address (the PDP context table
AT+QIACT and AT+CGACT see: a context the call activates is active for them too, and is taken down
with the call) and the DNS servers AT+QIDNSCFG set, else the profile's. The host's packets go to
the shell's user-mode network engine (libslirp, ``ecemu.shell.ip_link``), which makes each flow a
real socket.

In the call: ``+++`` with its guard times leaves for command mode with the call kept, ATO goes
back, ATH ends it; a DTR drop does what AT&D says (1: command mode, 2: the call ends, 0: nothing):
the serial line's DTR on the bare port (``Modem.set_dtr``), the host's MSC on a CMUX channel. DCD
(DV in the DLC's MSC) is on from CONNECT until the call ends, with AT&C1 (``control_lines.py``). The call
ends with NO CARRIER: the host's LCP Terminate-Request, the module's own when its context goes
down (AT+QIDEACT on another channel, the network's drop, AT+CFUN=0), or a hang-up.

Sources: 27.007, RFC 1661/1662/1332/1877/1334/1994; REFERENCE.md "PPP".
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING

from .basic import radio_on
from .pdp import IPV6, REGISTERED, PdpState
from ..core import events as ev
from ..core.channel import Channel
from ..core.escape import EscapeDetector
from ..core.parser import CommandCall, Form
from ..core.ppp import LinkConfig, PppHooks, PppLink
from ..core.registry import (
    CommandFailed,
    Family,
    FamilyState,
    Pending,
    Reply,
    at_most,
    command,
    family_state,
    int_arg,
    ok,
    require_form,
    str_arg,
)
from ..core.results import CONNECT, NO_CARRIER, OK, CmeCode, Refusal

if TYPE_CHECKING:
    from ..core.modem import Modem
    from ..core.timers import Timer

log = logging.getLogger(__name__)

FAMILY = "ppp"
DIAL_TIMEOUT = 30.0  # seconds the network engine may take to start (chosen)
GPRS_SERVICE_CODE = "99"  # 27.007 10.2.1.1: *99 requests the packet domain service


class DataCall(PppHooks):
    """One PPP data call: the channel's online session and the link's hooks."""

    def __init__(self, family: "PppState", cid: int, activated_here: bool, config: LinkConfig):
        modem = self.modem = family.modem
        self.family = family
        self.cid = cid
        self.activated_here = activated_here
        self.channel: Channel = modem.channel
        self.online = False  # the channel is in PPP now (not left with +++)
        self.over = False
        self.link = PppLink(config, self, lambda: modem.now, modem.call_at, modem.observe,
                            write=self._write)
        self.escape = EscapeDetector(modem.escape_guard, modem.now)
        self._escape_timer: Timer | None = None
        self.connected = False  # the network engine is up
        self.dropped_packets = 0  # from the network while the host took no output (see _event)
        self.conn_id = modem.new_conn_id(self._event)

    # the network engine -------------------------------------------------------------------------

    def _event(self, event: ev.NetworkEvent) -> None:
        modem = self.modem
        if isinstance(event, ev.IpPacket):
            if modem.output_blocked:
                # The host takes nothing of what the module already sent: one more packet would
                # only wait behind it, without bound under a flood (UDP knows no window). A module
                # whose UART transmit buffer is full drops it, which IP allows and TCP repairs by
                # sending again (chosen: RFC 1661 leaves buffering to the implementation).
                if not self.dropped_packets:
                    log.info("data call on context %d: the host is not reading; packets from the network "
                             "are dropped until it does", self.cid)
                self.dropped_packets += 1
                return
            self.link.deliver_ip(event.packet)
        elif isinstance(event, ev.IpLinkUp):
            self.connected = True
            modem.host.finish_pending(Reply(final=CONNECT, online=self))
        elif isinstance(event, ev.IpLinkFailed):
            log.warning("data call on context %d: no network engine (%s): the call fails as without network "
                        "service", self.cid, event.reason)
            self._release()
            modem.host.finish_pending(Reply(final=NO_CARRIER))

    def ip_out(self, packet: bytes) -> None:
        self.modem.effect(ev.SendIp(self.conn_id, packet))

    def network_up(self) -> None:
        pass

    def link_over(self, reason: str) -> None:
        self._end(reason)

    def _write(self, data: bytes) -> None:
        if self.online:
            self.modem.write_host(data)  # the call's channel is in hand: its events and timers run there

    # OnlineSession ------------------------------------------------------------------------------

    def entered(self, modem: "Modem") -> None:
        self.online = True
        self.escape = EscapeDetector(modem.escape_guard, modem.now)
        self.channel.call_up = True  # DCD (DV in a DLC's MSC) on while the call is up, with AT&C1
        modem.lines.refresh()
        if not self.link.started:
            self.link.start()

    def ready_for_host(self) -> bool:
        return True

    def feed_host(self, modem: "Modem", data: bytes) -> None:
        data = self.escape.feed(data, modem.now)
        if data:
            self.link.receive(data)
        self._arm_escape()

    def leave(self, modem: "Modem") -> None:
        """+++ or a DTR drop with AT&D1: command mode, the call kept (ATO goes back)."""
        self._stop_escape()
        self.online = False
        self.family.left[self.channel] = self
        modem.host.leave_online(OK)

    def hang_up(self, modem: "Modem") -> None:
        """A DTR drop with AT&D2, or the channel closed: the call ends at once."""
        self.link.close("hung up")
        self._end("hung up")

    # +++ ----------------------------------------------------------------------------------------

    def _arm_escape(self) -> None:
        deadline = self.escape.deadline()
        if self._escape_timer is not None and (deadline is None or self._escape_timer.deadline != deadline):
            self._escape_timer.cancel()
            self._escape_timer = None
        if deadline is not None and self._escape_timer is None:
            self._escape_timer = self.modem.call_at(deadline, self._poll_escape)

    def _poll_escape(self) -> None:
        self._escape_timer = None
        if not self.online:
            return
        released, escaped = self.escape.poll(self.modem.now)
        if released:
            self.link.receive(released)
        if escaped:
            self.leave(self.modem)
        else:
            self._arm_escape()

    def _stop_escape(self) -> None:
        if self._escape_timer is not None:
            self._escape_timer.cancel()
            self._escape_timer = None

    # the end ------------------------------------------------------------------------------------

    def _release(self) -> None:
        """The network side of the call: the engine closed, a context the call activated taken down."""
        modem = self.modem
        modem.effect(ev.CloseIpLink(self.conn_id))
        modem.forget_conn(self.conn_id)
        self.family.calls.discard(self)
        self.family.left.pop(self.channel, None)
        if self.activated_here:
            self.activated_here = False
            self.family.pdp.deactivate(self.cid)

    def _end(self, reason: str) -> None:
        if self.over:
            return
        self.over = True
        self._stop_escape()
        modem = self.modem
        modem.observe("ppp_call", state="ended", reason=reason, cid=self.cid)
        self._release()
        channel = self.channel
        channel.call_up = False
        modem.lines.refresh()

        def to_host() -> None:
            if self.online and modem.host.online is self:
                self.online = False
                modem.host.leave_online(NO_CARRIER)
            elif modem.host.mode.value == "command" and not modem.line.running:
                # The call ended while its channel was in command mode (after +++): NO CARRIER says so.
                modem.write_host(modem.result_bytes(NO_CARRIER))

        # Told on the call's channel while it is still there (a closed DLC's host is gone).
        if channel is modem.port or modem.channels.get(channel.number) is channel:
            modem.on_channel(channel, to_host)

    def context_down(self) -> None:
        """The context went down under the call: LCP Terminate-Request while the host is in PPP;
        after +++ the host is not listening to PPP, and the call ends at once."""
        if self.online:
            self.link.close("context deactivated")
        else:
            self.link.end_reason = "context deactivated"
            self._end("context deactivated")


class PppState(FamilyState):
    def __init__(self, modem: "Modem"):
        self.modem = modem
        self.calls: set[DataCall] = set()
        self.left: dict[Channel, DataCall] = {}  # calls left with +++, by channel, for ATO and ATH
        self.pdp = family_state(modem, "pdp", PdpState)
        self.pdp.listeners.append(self._context_down)

    def _context_down(self, cid: int, by_network: bool) -> None:
        for call in list(self.calls):
            if call.cid == cid:
                call.activated_here = False  # already down
                self.modem.on_channel(call.channel, call.context_down)

    def resume_online(self) -> Reply | None:
        call = self.left.get(self.modem.channel)
        if call is None or call.over:
            return None
        del self.left[self.modem.channel]
        return Reply(final=CONNECT, online=call)

    def hang_up(self) -> None:
        call = self.left.pop(self.modem.channel, None)
        if call is not None and not call.over:
            call.link.close("ATH")
            call._end("ATH")

    def power_off(self) -> None:
        for call in list(self.calls):
            self.modem.effect(ev.CloseIpLink(call.conn_id))
            call.channel.call_up = False
        self.calls.clear()
        self.left.clear()

    def radio_off(self) -> None:
        pass  # the contexts go down first (the PDP family), and with them the calls

    def dial(self, cid: int) -> Pending | Reply:
        modem = self.modem
        pdp = self.pdp
        attached = radio_on(modem) and modem.profile.network.registration in REGISTERED
        if not attached or pdp.configs[cid].context_type == IPV6:
            # chosen: without network service (or for an IPv6-only context, which PPP here does
            # not carry) the call fails as a modem's dial does, NO CARRIER.
            return Reply(final=NO_CARRIER)
        activated_here = not pdp.is_active(cid)
        if activated_here:
            pdp.activate(cid)
        address = pdp.address(cid)
        assert address is not None
        network = ipaddress.ip_network(modem.profile.network.ip_pool)
        gateway = str(network.broadcast_address - 1)
        asked = pdp.dns_servers(cid)
        # IPCP names the servers AT+QIDNSCFG shows (the profile's until the host sets its own). One
        # on this machine's loopback (a test's server) is named by the module's side of the link,
        # which stands for this machine: the host's stack cannot send to 127.0.0.1 (chosen).
        announced = []
        for server in (pdp.dns[cid].primary, pdp.dns[cid].secondary):
            host = server.partition("#")[0]
            announced.append(gateway if ipaddress.ip_address(host).is_loopback else host)
        config = LinkConfig(address=address, gateway=gateway, dns=tuple(dict.fromkeys(announced)))
        call = DataCall(self, cid, activated_here, config)
        self.calls.add(call)
        modem.observe("ppp_call", state="dialled", cid=cid, address=address)
        modem.effect(ev.OpenIpLink(call.conn_id, address, gateway, str(network), config.dns, asked))

        def timed_out(modem: "Modem") -> Reply:
            call._release()
            return Reply(final=NO_CARRIER)

        return Pending("D", deadline=modem.now + DIAL_TIMEOUT, on_timeout=timed_out)


PPP_FAMILY = Family(FAMILY, state=PppState, needs=("pdp",))


def _state(modem: "Modem") -> PppState:
    return family_state(modem, FAMILY, PppState)


def parse_dial_string(dial: str, max_cid: int) -> int | None:
    """The context a packet domain dial string names (27.007 10.2.1.1: ``*99[*[<called_address>]
    [*[<L2P>][*[<cid>]]]]#``, L2P PPP or 1), 1 when it names none; None when it is no such string."""
    text = dial.strip().upper().replace(" ", "")
    if text[:1] in ("T", "P"):
        text = text[1:]
    if not text.startswith("*" + GPRS_SERVICE_CODE) or not text.endswith("#"):
        return None
    fields = text[1:-1].split("*")
    if fields[0] != GPRS_SERVICE_CODE or len(fields) > 4:
        return None
    if len(fields) >= 3 and fields[2] not in ("", "PPP", "1"):
        return None
    if len(fields) == 4 and fields[3]:
        if not fields[3].isdigit() or not 1 <= int(fields[3]) <= max_cid:
            return None
        return int(fields[3])
    return 1


@command("D", family=FAMILY)
def dial(modem: "Modem", call: CommandCall) -> Pending | Reply:
    """ATD<dial string>: ``*99#`` or ``*99***<cid>#`` start a PPP data call on the context (27.007
    10.2.1.1). A voice number answers NO CARRIER (chosen: the modules' data firmware has no voice
    call here); a malformed packet domain string, ERROR."""
    require_form(call, Form.EXEC)
    dial_string = call.args[0].text if call.args and call.args[0] is not None else ""
    family = _state(modem)
    if "*" not in dial_string and "#" not in dial_string:
        return Reply(final=NO_CARRIER)
    cid = parse_dial_string(dial_string, family.pdp.count)
    if cid is None:
        raise CommandFailed(Refusal.FORM)
    return family.dial(cid)


@command("+CGDATA", family=FAMILY)
def enter_data_state(modem: "Modem", call: CommandCall) -> Pending | Reply:
    """AT+CGDATA="PPP"[,<cid>] (27.007 10.1.12): a PPP data call on the context (1 when none is
    named). Another layer 2 protocol answers +CME ERROR: 4 (chosen: PPP is the one the modules
    take); a bad cid +CME ERROR: 50. The test form lists ``("PPP")``."""
    family = _state(modem)
    if call.form is Form.TEST:
        return ok('+CGDATA: ("PPP")')
    require_form(call, Form.WRITE, Form.EXEC)
    at_most(call, 2)
    protocol = str_arg(call, 0, default="PPP").upper()
    if protocol != "PPP":
        raise CommandFailed(CmeCode.NOT_SUPPORTED)
    cid = int_arg(call, 1, 1, family.pdp.count, default=1)
    return family.dial(cid)
