"""PDP contexts and the commands around them: Quectel's AT+QICSGP, AT+QIACT, AT+QIDEACT,
AT+QIDNSCFG and AT+QIGETERROR, and 3GPP's AT+CGDCONT, AT+CGACT and AT+CGPADDR over the same
contexts, so that either family sees what the other set.

Sources: REFERENCE.md "PDP context" (facts from the TCP/IP note, marked doc or seen there) and the
SSL note (1.3 the steps, 3.1 the examples, 4 the checks, 5 the result codes). Where both are
silent the emulator does what a real Quectel module does, marked ``chosen``.

The family keeps its state (``PdpState``) in ``modem.families["pdp"]``; it is rebuilt at every
power cycle, so a reboot forgets every context. The SSL family reads it (``is_active``,
``address``, ``dns_servers``) and appends to ``listeners`` to close its sockets when a context
goes down.

Every Quectel command of this family answers plain ``ERROR`` on failure and leaves the code for
AT+QIGETERROR (REFERENCE.md "Boot and basics", doc): a bad parameter leaves 552. The 3GPP commands
(family ``packet_domain``) answer ``+CME ERROR`` as 27.007 commands do.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable

from .basic import radio_on
from ..core.parser import CommandCall, Form
from ..core.registry import (
    CommandFailed,
    Family,
    FamilyState,
    Reply,
    at_most,
    command,
    family_state,
    int_arg,
    ok,
    require_form,
    str_arg,
)
from ..core.results import QIGETERROR, CmeCode, QiError, Refusal

if TYPE_CHECKING:
    from ..core.modem import Modem

log = logging.getLogger(__name__)

FAMILY = "pdp"
# AT+QIGETERROR is registered outside the "pdp" family on purpose: the modem sets the stored code
# back to 0 after every command of a family reporting through QIGETERROR that succeeds, so reading
# the code from inside such a family would wipe it. The code must survive being read (the host
# may ask twice, or log it and ask again), and REFERENCE.md (seen) says it reports the last
# command that itself answered ERROR -- which AT+QIGETERROR is not.
REPORT_FAMILY = "qigeterror"
PACKET_DOMAIN_FAMILY = "packet_domain"  # the 27.007 commands: +CME ERROR, no AT+QIGETERROR code

IPV4, IPV6, IPV4V6 = 1, 2, 3
PDP_TYPES = {"IP": IPV4, "IPV6": IPV6, "IPV4V6": IPV4V6}  # AT+CGDCONT's names of the context types
PDP_TYPE_NAMES = {number: name for name, number in PDP_TYPES.items()}
# What AT+CGDCONT? shows as <PDP_addr> (the host asks for no static address; chosen: the EC2x style).
UNSET_ADDRESSES = {IPV4: "0.0.0.0", IPV6: "0:0:0:0:0:0:0:0", IPV4V6: "0.0.0.0,0:0:0:0:0:0:0:0"}
AUTH_MAX = 3  # 0 none, 1 PAP, 2 CHAP, 3 PAP or CHAP (REFERENCE.md, doc)
REGISTERED = (1, 5)  # home, roaming (27.007 7.2)


# --- state ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContextConfig:
    """What AT+QICSGP sets. An unconfigured context reads ``1,"","","",0`` (chosen: IPv4, the
    network's default APN, no authentication, as a fresh module reads)."""

    context_type: int = IPV4
    apn: str = ""
    username: str = ""
    password: str = ""
    authentication: int = 0
    # Listed by AT+CGDCONT? / AT+CGACT?: set by AT+QICSGP or AT+CGDCONT, activated, or context 1 of
    # a fresh module (chosen: the network's default bearer, as modules list it).
    defined: bool = False


@dataclass(frozen=True)
class ActiveContext:
    """An activated context keeps the type it was activated with; a later AT+QICSGP changes only
    the next activation (chosen)."""

    context_type: int
    address: str  # IPv4, or IPv6 for an IPv6 context
    address6: str | None = None  # an IPv4v6 context's IPv6 address


@dataclass
class DnsConfig:
    primary: str
    secondary: str
    # Only the servers the host named itself are asked (see PdpState.dns_servers).
    primary_set: bool = False
    secondary_set: bool = False


@functools.lru_cache(maxsize=None)
def _pool_addresses(pool: str, count: int) -> tuple[str, ...]:
    """The pool's 1st..count-th host addresses; a profile whose pool is too small is refused.

    Cached: every power cycle of every modem asks again, and the arithmetic is not free.
    """
    network = ipaddress.ip_network(pool)
    addresses = [network.network_address + n for n in range(1, count + 1)]
    last = addresses[-1]
    if last not in network or (network.version == 4 and last == network.broadcast_address):
        raise ValueError(f"address pool {pool} is too small for {count} PDP contexts")
    # IPv6 in upper case, as the module writes it: an EC200U reads
    # "2409:8D1E:750C:DFA4::1" and an EC600S "240E:404:2500:9D0E:..." (REFERENCE.md "PDP context", seen).
    return tuple(str(a).upper() for a in addresses)


class PdpState(FamilyState):
    """The PDP contexts of one power cycle, and the interface the SSL family uses."""

    def __init__(self, modem: "Modem"):
        self.modem = modem
        self.count = modem.profile.limits.pdp_contexts
        net = modem.profile.network
        self._addresses = {
            IPV4: _pool_addresses(net.ip_pool, self.count),
            IPV6: _pool_addresses(net.ip6_pool, self.count),
        }
        self.configs = {cid: ContextConfig(defined=(cid == 1)) for cid in self.ids}
        self.dns = {cid: DnsConfig(*net.dns) for cid in self.ids}
        self.active: dict[int, ActiveContext] = {}
        # Called with (cid, by_network) after a context has gone down.
        self.listeners: list[Callable[[int, bool], None]] = []
        self.attach()

    @property
    def ids(self) -> range:
        return range(1, self.count + 1)

    @property
    def id_range(self) -> str:
        return f"(1-{self.count})"

    # --- what other families read ------------------------------------------------------------

    def is_active(self, cid: int) -> bool:
        return cid in self.active

    def address(self, cid: int) -> str | None:
        context = self.active.get(cid)
        return context.address if context else None

    def dns_servers(self, cid: int) -> tuple[str, ...]:
        """The servers the host set with AT+QIDNSCFG, primary first; () until it sets one.

        The profile's defaults are only shown: the shell resolves through the host's own resolver
        unless the host asked for particular servers (emulator/shell/dns.py).
        """
        dns = self.dns.get(cid)
        if dns is None:
            return ()
        named = [server for server, explicit in ((dns.primary, dns.primary_set),
                                                  (dns.secondary, dns.secondary_set)) if explicit]
        # 0.0.0.0 / :: is how a host clears a server; there is nothing to ask there (chosen).
        return tuple(s for s in named if not ipaddress.ip_address(s.partition("#")[0]).is_unspecified)

    # --- changes ----------------------------------------------------------------------------

    def activate(self, cid: int) -> None:
        """An IPv4v6 context gets both addresses; other families use its IPv4 one (``address``).
        An activated context is a defined one from then on (AT+CGDCONT? lists it)."""
        self.configs[cid] = replace(self.configs[cid], defined=True)
        context_type = self.configs[cid].context_type
        if context_type == IPV6:
            self.active[cid] = ActiveContext(IPV6, self._addresses[IPV6][cid - 1])
        else:
            self.active[cid] = ActiveContext(context_type, self._addresses[IPV4][cid - 1],
                                             self._addresses[IPV6][cid - 1] if context_type == IPV4V6 else None)

    def attach(self) -> None:
        """LTE attach (power-on, AT+CFUN=1 after 0/4): the network brings up the default bearer,
        as the profile's ``[network.default_bearer]`` says the firmware shows it.

        An EG800K and an EC200U read ``+QIACT: 1,1,1,"<ip>"`` right after boot, before the host
        activated anything, and answer AT+QIACT=1 with ERROR (REFERENCE.md "PDP context", seen):
        the context is active, AT+CGACT? and AT+CGPADDR show it, and sockets may open on it at
        once. Its APN is the network's unless the host configured the context itself (an attach
        uses the APN the host defined, 27.007 10.1.1); with no ``default_bearer`` every context
        waits for the host (the profile's choice)."""
        bearer = self.modem.profile.default_bearer
        cid = bearer.context
        if cid not in self.ids or cid in self.active or not _attached(self.modem):
            return
        config = self.configs[cid]
        if not config.apn:
            config = replace(config, context_type=PDP_TYPES[bearer.type.upper()], apn=bearer.apn)
        self.configs[cid] = replace(config, defined=True)
        self.activate(cid)

    def radio_on(self) -> None:
        """AT+CFUN=1 after 0/4: registered again, the default bearer comes back (``attach``)."""
        self.attach()

    def listed(self) -> list[int]:
        """The contexts AT+CGDCONT? and AT+CGACT? list: the defined ones."""
        return [cid for cid in self.ids if self.configs[cid].defined]

    def addresses(self, cid: int) -> tuple[str, ...]:
        """Every address of an active context, IPv4 first; () when it is not active."""
        context = self.active.get(cid)
        if context is None:
            return ()
        return (context.address,) + ((context.address6,) if context.address6 else ())

    def deactivate(self, cid: int) -> None:
        """AT+QIDEACT: the host takes the context down; nothing happens to an inactive one."""
        if self.active.pop(cid, None) is not None:
            self._tell(cid, by_network=False)

    def network_drop(self, cid: int) -> None:
        """The network drops the context: the URC first, then each socket's own closed URC."""
        if cid not in self.active:
            return
        self.modem.emit_urc(f'+QIURC: "pdpdeact",{cid}')
        del self.active[cid]
        self._tell(cid, by_network=True)

    def radio_off(self) -> None:
        """AT+CFUN=0/4: every context is lost as if the network had dropped it, URC included.

        chosen: the module reports ``+QIURC: "pdpdeact"`` for each, as for any context it did not
        take down on the host's request, so a host that waits for the URC learns of it the same way.
        """
        for cid in sorted(self.active):
            self.network_drop(cid)

    def _tell(self, cid: int, by_network: bool) -> None:
        for listener in list(self.listeners):
            try:
                listener(cid, by_network)
            except Exception:
                # One family's bug must not keep the others from hearing the context went down.
                log.exception("PDP listener failed for context %d", cid)


# The family: its commands report failures through AT+QIGETERROR. AT+QIGETERROR itself is in
# REPORT_FAMILY, which reports the CME way and so never touches the stored code.
PDP_FAMILY = Family(FAMILY, errors=QIGETERROR, state=PdpState)


def _state(modem: "Modem") -> PdpState:
    return family_state(modem, "pdp", PdpState)


def _attached(modem: "Modem") -> bool:
    return radio_on(modem) and modem.profile.network.registration in REGISTERED


def _cid(pdp: PdpState, call: CommandCall) -> int:
    return int_arg(call, 0, 1, pdp.count)


def _one_cid(pdp: PdpState, call: CommandCall) -> int:
    if len(call.args) != 1:
        raise CommandFailed(Refusal.PARAMETER)
    return _cid(pdp, call)


# --- commands -------------------------------------------------------------------------------


@command("+QICSGP", family=FAMILY)
def configure_context(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QICSGP=<cid>[,<type>,<APN>[,<user>,<pwd>[,<auth>]]]; AT+QICSGP=<cid> reads it back as
    ``+QICSGP: <type>,"<APN>","<user>","<pwd>",<auth>`` (REFERENCE.md, PDP context (doc); SSL
    note 3.1.1).

    The SSL note's own example has seven parameters, ``AT+QICSGP=1,1,"UNINET","","","",1``, one
    string more than the TCP/IP note's syntax. chosen: with seven parameters the sixth is a
    reserved string (it must be quoted; its value is ignored) and the seventh is <auth>, which
    makes the example read as APN "UNINET" with PAP authentication, as its "1" suggests.

    Parameters left out keep their previous values (SSL note 2.1.1). The bracket pairs go together:
    a type without an APN, or a user name without a password, is refused (chosen).
    """
    pdp = _state(modem)
    if call.form is Form.TEST:
        return ok(f"+QICSGP: {pdp.id_range},(1-3),<APN>,<username>,<password>,(0-{AUTH_MAX})")
    require_form(call, Form.WRITE)
    cid = _cid(pdp, call)
    count = len(call.args)
    if count == 1:
        c = pdp.configs[cid]
        return ok(f'+QICSGP: {c.context_type},"{c.apn}","{c.username}","{c.password}",{c.authentication}')
    if count not in (3, 5, 6, 7):
        raise CommandFailed(Refusal.PARAMETER)
    old = pdp.configs[cid]
    if count == 7:
        str_arg(call, 5)
        auth = int_arg(call, 6, 0, AUTH_MAX)
    else:
        auth = int_arg(call, 5, 0, AUTH_MAX, default=old.authentication)
    # Everything is checked before anything is kept: a refused command changes nothing.
    new = replace(old, context_type=int_arg(call, 1, IPV4, IPV4V6), apn=str_arg(call, 2),
                  username=str_arg(call, 3, default=old.username),
                  password=str_arg(call, 4, default=old.password), authentication=auth, defined=True)
    pdp.configs[cid] = new
    return ok()


@command("+QIACT", family=FAMILY)
def activate_context(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QIACT=<cid> activates; AT+QIACT? lists ``+QIACT: <cid>,1,<type>,"<IP>"`` per active
    context in order (REFERENCE.md, PDP context (doc); SSL note 1.3 step 2, 3.1.2); an IPv4v6
    context shows both addresses, ``+QIACT: 1,1,3,"<IPv4>","<IPv6>"`` (REFERENCE.md "PDP context",
    seen).

    The address is the profile pool's <cid>-th host, so context 1 reads 10.7.157.1 as in 3.1.2.
    Activation answers at once, not after the real network's seconds (chosen).

    Activating a context that is already active answers ERROR: an EG800K does so for the default
    bearer LTE brought up at attach (REFERENCE.md "PDP context", seen; ``PdpState.attach``). So
    does activating with the radio off (AT+CFUN=0/4) or unregistered; chosen: both leave 561
    ("open PDP context failed") for AT+QIGETERROR. An empty APN activates: the network gives its
    default one.
    """
    pdp = _state(modem)
    if call.form is Form.TEST:
        return ok(f"+QIACT: {pdp.id_range}")
    if call.form is Form.READ:
        return ok(*(f"+QIACT: {cid},1,{c.context_type}," + ",".join(f'"{a}"' for a in pdp.addresses(cid))
                    for cid, c in sorted(pdp.active.items())))
    require_form(call, Form.WRITE)
    cid = _one_cid(pdp, call)
    if pdp.is_active(cid) or not _attached(modem):
        raise CommandFailed(QiError.OPEN_PDP_FAILED)
    pdp.activate(cid)
    return ok()


@command("+QIDEACT", family=FAMILY)
def deactivate_context(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QIDEACT=<cid>: the context goes down and every socket on it is closed (REFERENCE.md, PDP
    context (doc); SSL note 1.3 step 7, 3.1.3).

    The sockets' families hear it through the listeners (by_network False) before the OK.
    chosen: deactivating a context that is not active answers OK, as real modules do: the host
    asked for the context to be down, and it is.
    """
    pdp = _state(modem)
    if call.form is Form.TEST:
        return ok(f"+QIDEACT: {pdp.id_range}")
    require_form(call, Form.WRITE)
    pdp.deactivate(_one_cid(pdp, call))
    return ok()


def _dns_address(call: CommandCall, index: int) -> str:
    """A quoted IPv4 or IPv6 address; ``<ip>#<port>`` also names a port (chosen: an emulator
    extension so that tests can point the module at a DNS server of their own)."""
    text = str_arg(call, index)
    host, sep, port = text.partition("#")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise CommandFailed(Refusal.PARAMETER) from None
    if sep and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise CommandFailed(Refusal.PARAMETER)
    return text


@command("+QIDNSCFG", family=FAMILY)
def configure_dns(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QIDNSCFG=<cid>[,<pri>[,<sec>]]; AT+QIDNSCFG=<cid> reads ``+QIDNSCFG: <cid>,"<pri>","<sec>"``
    (REFERENCE.md, PDP context (doc); SSL note 4 item 2).

    Until the host sets them the servers shown are the profile's (chosen: as if the network had
    given them), whether or not the context is active. A secondary left out keeps its previous
    value (SSL note 2.1.1). The settings last until the next power cycle (chosen).
    """
    pdp = _state(modem)
    if call.form is Form.TEST:
        return ok(f"+QIDNSCFG: {pdp.id_range},<pridnsaddr>,<secdnsaddr>")
    require_form(call, Form.WRITE)
    cid = _cid(pdp, call)
    count = len(call.args)
    dns = pdp.dns[cid]
    if count == 1:
        return ok(f'+QIDNSCFG: {cid},"{dns.primary}","{dns.secondary}"')
    if count > 3:
        raise CommandFailed(Refusal.PARAMETER)
    primary = _dns_address(call, 1)
    secondary = _dns_address(call, 2) if count == 3 else None
    dns.primary, dns.primary_set = primary, True
    if secondary is not None:
        dns.secondary, dns.secondary_set = secondary, True
    return ok()


@command("+QIGETERROR", family=REPORT_FAMILY)
def last_error(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QIGETERROR: ``+QIGETERROR: <err>,<description>`` for the last TCP/IP or SSL command that
    answered ERROR (REFERENCE.md, PDP context (seen); SSL note chapter 5).

    Reading the code does not reset it (see REPORT_FAMILY). chosen: the test form answers OK; a
    code outside the table reads "unknown error".
    """
    if call.form is Form.TEST:
        return ok()
    require_form(call, Form.EXEC)
    code = modem.last_qi_error
    return ok(f"+QIGETERROR: {int(code)},{code.text}")


# --- the 27.007 packet domain commands over the same contexts -----------------------------------


def _context_definition(cid: int, config: ContextConfig) -> str:
    kind = config.context_type
    return f'+CGDCONT: {cid},"{PDP_TYPE_NAMES[kind]}","{config.apn}","{UNSET_ADDRESSES[kind]}",0,0,0,0'


@command("+CGDCONT", family=PACKET_DOMAIN_FAMILY)
def define_context(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CGDCONT=<cid>[,<PDP_type>[,<APN>[,<PDP_addr>[,<d_comp>[,<h_comp>...]]]]] (27.007 10.1.1):
    the same context AT+QICSGP configures, <PDP_type> "IP", "IPV6" or "IPV4V6" being its type 1, 2,
    3; AT+QICSGP's user name, password and authentication stay. ``AT+CGDCONT=<cid>`` alone makes
    the context undefined again (27.007). The read form lists each defined context as
    ``+CGDCONT: <cid>,"<type>","<APN>","<addr>",0,0,0,0`` (the EC2x layout, doc); the test form one
    line per type. Parameters after <APN> are checked and not kept (the host asks for no static
    address or compression the emulator could honour). ``AT+CGDCONT=1,"IP","CMNET"`` answers OK
    on an EC800M (REFERENCE.md "Start-up commands", seen).
    """
    pdp = _state(modem)
    if call.form is Form.TEST:
        return ok(*(f'+CGDCONT: {pdp.id_range},"{name}",,,(0-2),(0-4),(0,1),(0,1)' for name in PDP_TYPES))
    if call.form is Form.READ:
        return ok(*(_context_definition(cid, pdp.configs[cid]) for cid in pdp.listed()))
    require_form(call, Form.WRITE)
    at_most(call, 8)
    cid = _cid(pdp, call)
    if len(call.args) == 1:
        pdp.configs[cid] = ContextConfig()
        return ok()
    type_name = str_arg(call, 1).upper()
    if type_name not in PDP_TYPES:
        raise CommandFailed(Refusal.PARAMETER)
    apn = str_arg(call, 2, default="")
    str_arg(call, 3, default="")
    int_arg(call, 4, 0, 2, default=0)
    int_arg(call, 5, 0, 4, default=0)
    int_arg(call, 6, 0, 1, default=0)
    int_arg(call, 7, 0, 1, default=0)
    pdp.configs[cid] = replace(pdp.configs[cid], context_type=PDP_TYPES[type_name], apn=apn, defined=True)
    return ok()


@command("+CGACT", family=PACKET_DOMAIN_FAMILY)
def context_activation(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CGACT=<state>[,<cid>[,<cid>...]] (27.007 10.1.10): 1 activates, 0 deactivates the contexts
    named, or every listed one when none is named; a context already in that state is left as it is
    (27.007). The same activation as AT+QIACT, so AT+QIACT? shows it and sockets use it; deactivating
    closes the context's sockets as AT+QIDEACT does. Read: ``+CGACT: <cid>,<state>`` for each
    defined context. Activating with the radio off or unregistered answers
    ``+CME ERROR: 30`` (chosen). ``AT+CGACT=1,1`` answers OK on an EC800M (REFERENCE.md "Start-up
    commands", seen).
    """
    pdp = _state(modem)
    if call.form is Form.TEST:
        return ok("+CGACT: (0,1)")
    if call.form is Form.READ:
        return ok(*(f"+CGACT: {cid},{int(pdp.is_active(cid))}" for cid in pdp.listed()))
    require_form(call, Form.WRITE)
    state = int_arg(call, 0, 0, 1)
    cids = [int_arg(call, i, 1, pdp.count) for i in range(1, len(call.args))] or pdp.listed()
    if state == 0:
        for cid in cids:
            pdp.deactivate(cid)
        return ok()
    if any(not pdp.is_active(cid) for cid in cids) and not _attached(modem):
        raise CommandFailed(CmeCode.NO_NETWORK_SERVICE)
    for cid in cids:
        if not pdp.is_active(cid):
            pdp.activate(cid)
    return ok()


@command("+CGPADDR", family=PACKET_DOMAIN_FAMILY)
def context_addresses(modem: "Modem", call: CommandCall) -> Reply:
    """AT+CGPADDR[=<cid>[,<cid>...]] (27.007 10.1.14): ``+CGPADDR: <cid>,"<addr>"`` for each context
    named, or each defined one; an IPv4v6 context shows ``"<IPv4>","<IPv6>"`` and a context that is
    not active its cid alone (27.007: the address is omitted when there is none). The test form
    lists the defined contexts' ids."""
    pdp = _state(modem)
    if call.form is Form.TEST:
        return ok("+CGPADDR: (" + ",".join(map(str, pdp.listed())) + ")")
    if call.form is Form.EXEC:
        cids = pdp.listed()
    else:
        require_form(call, Form.WRITE)
        cids = [int_arg(call, i, 1, pdp.count) for i in range(len(call.args))]
    return ok(*(f"+CGPADDR: {cid}" + "".join(f',"{a}"' for a in pdp.addresses(cid)) for cid in cids))
