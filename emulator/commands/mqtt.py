"""The MQTT commands: AT+QMTCFG, AT+QMTOPEN, AT+QMTCLOSE, AT+QMTCONN, AT+QMTDISC, AT+QMTSUB,
AT+QMTUNS, AT+QMTPUB, AT+QMTPUBEX, AT+QMTRECV.

Source: Quectel's "EC2x&EG9x&EM05 MQTT Application Note" V1.1 ("MQTT note" below: 3.2.1 -
3.2.9 the commands, 4.1 - 4.3 the URCs, 5.1 / 5.2 the examples without and with SSL) and the "LTE
Standard MQTT Application Note" V1.2 (the same examples, AT+QMTPUB with ">" beside AT+QMTPUBEX).
No EC200x/EC800x MQTT note was found; these modules answer the same command set. Status: the notes'
example chapters run verbatim through the pty against Mosquitto, byte for byte, with TLS
verification on (tests/test_mqtt_note_examples.py). Each handler checks its parameters and hands
the work to the family's state (``ecemu.commands.mqtt_state``). A command that cannot be carried
out answers plain ``ERROR``, as the notes' response tables give it; what happens on the network
comes later as the URC the note names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .prompted_data import PromptedData
from .mqtt_state import CLIENTS, RECV_SLOTS, MqttClient, MqttConfig, MqttFamily, Session
from ..core.parser import CommandCall, Form
from ..core.registry import (
    AwaitData,
    CommandFailed,
    Family,
    Outcome,
    Reply,
    command,
    family_state,
    int_arg,
    ok,
    require_form,
    str_arg,
)
from ..core.results import PLAIN, MqttCloseResult, Refusal
from ..core.sockets import OpenFailed

if TYPE_CHECKING:
    from ..core.modem import Modem

FAMILY = "mqtt"
PROMPT = b"> "
# chosen: the largest message AT+QMTPUB / AT+QMTPUBEX take after ">" (the note gives no figure).
MAX_MESSAGE = 4096


MQTT_FAMILY = Family(FAMILY, errors=PLAIN, state=MqttFamily, needs=("pdp", "ssl"))


def _family(modem: "Modem") -> MqttFamily:
    return family_state(modem, FAMILY, MqttFamily)


def _word(call: CommandCall, index: int) -> str:
    """A string parameter, quoted or not: an EC800M took ``AT+QMTCONN=0,0``, its <clientID> bare
    (REFERENCE.md "MQTT", seen)."""
    arg = call.args[index] if index < len(call.args) else None
    if arg is None:
        raise CommandFailed(Refusal.PARAMETER)
    return arg.text


def _given(call: CommandCall, index: int) -> bool:
    return index < len(call.args) and call.args[index] is not None


def _client(modem: "Modem", call: CommandCall, index: int = 0) -> MqttClient:
    return _family(modem).client(int_arg(call, index, 0, CLIENTS - 1))


def _connected(modem: "Modem", call: CommandCall) -> MqttClient:
    client = _client(modem, call)
    if not client.in_session(Session.CONNECTED):
        raise CommandFailed(Refusal.PARAMETER)
    return client


def _msgid(call: CommandCall, index: int, client: MqttClient) -> int:
    msgid = int_arg(call, index, 1, 65535)
    if not client.packet_id_free(msgid):
        raise CommandFailed(Refusal.PARAMETER)  # chosen: an identifier still in flight is refused (MQTT 3.1.1 2.3.1)
    return msgid


# --- AT+QMTCFG (MQTT note 3.2.1) ----------------------------------------------------------------


class Option:
    """One <type> of AT+QMTCFG: its values in order, each (attribute, low, high) or a string."""

    def __init__(self, offered: str, *fields: tuple[str, int, int] | str):
        self.offered = offered
        self.fields = fields

    def show(self, config: MqttConfig) -> str:
        shown = []
        for spec in self.fields:
            value = getattr(config, spec if isinstance(spec, str) else spec[0])
            shown.append(f'"{value}"' if isinstance(spec, str) else str(value))
        return ",".join(shown)

    def set(self, config: MqttConfig, call: CommandCall) -> None:
        values: list[tuple[str, int | str]] = []
        for offset, spec in enumerate(self.fields):
            index = 2 + offset
            if not _given(call, index):
                if offset == 0:
                    raise CommandFailed(Refusal.PARAMETER)
                break  # later values are optional and keep what they were
            if isinstance(spec, str):
                values.append((spec, str_arg(call, index)))
            else:
                values.append((spec[0], int_arg(call, index, spec[1], spec[2])))
        for attribute, value in values:
            setattr(config, attribute, value)


# The options and their ranges as an EC600S-CN (the family's platform) lists them in its
# AT+QMTCFG=?, in its order and words (REFERENCE.md "HTTP(S) and MQTT", seen); only the options the
# emulator has are listed.
OPTIONS: dict[str, Option] = {
    "version": Option("(3,4)", ("version", 3, 4)),
    "pdpcid": Option("(1-15)", ("pdpcid", 1, 15)),
    "ssl": Option("(0,1),(0-5)", ("ssl_enable", 0, 1), ("ssl_ctx", 0, 5)),
    "keepalive": Option("(0-3600)", ("keepalive", 0, 3600)),
    "session": Option("(0,1)", ("clean_session", 0, 1)),
    "timeout": Option("(1-1200),(1-10),(0,1)", ("pkt_timeout", 1, 1200), ("retry_times", 1, 10),
                      ("timeout_notice", 0, 1)),
    "will": Option('(0,1),(0-2),(0,1),"willtopic","willmessage"', ("will_flag", 0, 1), ("will_qos", 0, 2),
                   ("will_retain", 0, 1), "will_topic", "will_message"),
    "recv/mode": Option("(0,1),(0,1)", ("recv_mode", 0, 1), ("recv_length", 0, 1)),
    # Alibaba Cloud's device triple (the MQTT notes' "aliauth"); an EC800M takes it with OK
    # (REFERENCE.md "MQTT", seen). AT+QMTCONN then signs in with it (mqtt_state.aliyun_login).
    "aliauth": Option('"product key","device name","device secret"', "ali_product_key", "ali_device_name",
                      "ali_device_secret"),
}


@command("+QMTCFG", family=FAMILY)
def mqtt_config(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QMTCFG="<type>",<client_idx>[,<value>...] (MQTT note 3.2.1): query or set one option of a
    client. Options apply to the next AT+QMTOPEN / AT+QMTCONN and are lost at a reboot."""
    if call.form is Form.TEST:
        return ok(*(f'+QMTCFG: "{name}",(0-{CLIENTS - 1}),{option.offered}' for name, option in OPTIONS.items()))
    require_form(call, Form.WRITE)
    name = str_arg(call, 0).lower()
    option = OPTIONS.get(name)
    if option is None or len(call.args) > 2 + len(option.fields):
        raise CommandFailed(Refusal.PARAMETER)
    client = _client(modem, call, 1)
    if len(call.args) == 2:
        return ok(f'+QMTCFG: "{name}",{option.show(client.config)}')
    if name == "pdpcid" and int_arg(call, 2, 1, 15) > modem.profile.limits.pdp_contexts:
        raise CommandFailed(Refusal.PARAMETER)
    option.set(client.config, call)
    return ok()


# --- AT+QMTOPEN, AT+QMTCLOSE (MQTT note 3.2.2, 3.2.3) -------------------------------------------


@command("+QMTOPEN", family=FAMILY)
def mqtt_open(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QMTOPEN=<client_idx>,"<host_name>",<port> (MQTT note 3.2.2): OK, then
    ``+QMTOPEN: <client_idx>,<result>`` once the network (and TLS) is up or has failed."""
    family = _family(modem)
    if call.form is Form.TEST:
        return ok(f'+QMTOPEN: (0-{CLIENTS - 1}),"<host_name>",(1-65535)')
    if call.form is Form.READ:
        return ok(*(f'+QMTOPEN: {c.client_id},"{c.connection.address}",{c.connection.remote_port}' for c in family.clients if c.network_open))
    require_form(call, Form.WRITE)
    if len(call.args) != 3:
        raise CommandFailed(Refusal.PARAMETER)
    client = _client(modem, call)
    host = str_arg(call, 1).strip()
    port = int_arg(call, 2, 1, 65535)
    if not host:
        raise CommandFailed(Refusal.PARAMETER)
    try:
        client.open_network(host, port)
    except OpenFailed as failure:
        client.report_open_failure(failure)  # the command was fine: the failure is the URC's to tell
    return ok()


@command("+QMTCLOSE", family=FAMILY)
def mqtt_close(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QMTCLOSE=<client_idx> (MQTT note 3.2.3): OK, then ``+QMTCLOSE: <client_idx>,0``."""
    if call.form is Form.TEST:
        return ok(f"+QMTCLOSE: (0-{CLIENTS - 1})")
    require_form(call, Form.WRITE)
    if len(call.args) != 1:
        raise CommandFailed(Refusal.PARAMETER)
    client = _client(modem, call)
    if client.link is None:
        raise CommandFailed(Refusal.PARAMETER)  # chosen: nothing is open on that client
    client.close_network()
    modem.emit_urc(f"+QMTCLOSE: {client.client_id},{int(MqttCloseResult.OK)}")
    return ok()


# --- AT+QMTCONN, AT+QMTDISC (MQTT note 3.2.4, 3.2.5) --------------------------------------------


@command("+QMTCONN", family=FAMILY)
def mqtt_connect(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QMTCONN=<client_idx>,"<clientID>"[,"<username>"[,"<password>"]] (MQTT note 3.2.4): OK,
    then ``+QMTCONN: <client_idx>,<result>[,<ret_code>]`` when the broker has answered."""
    family = _family(modem)
    if call.form is Form.TEST:
        return ok(f'+QMTCONN: (0-{CLIENTS - 1}),"<clientID>","<username>","<password>"')
    if call.form is Form.READ:
        return ok(*(f"+QMTCONN: {c.client_id},{int(c.link.session)}" for c in family.clients
                    if c.network_open and c.link is not None))
    require_form(call, Form.WRITE)
    if not 2 <= len(call.args) <= 4:
        raise CommandFailed(Refusal.PARAMETER)
    client = _client(modem, call)
    client_id = _word(call, 1)
    username = _word(call, 2) if _given(call, 2) else None
    password = _word(call, 3) if _given(call, 3) else None
    if not client.in_session(Session.INITIALIZING):
        raise CommandFailed(Refusal.PARAMETER)
    client.connect(client_id, username, password)
    return ok()


@command("+QMTDISC", family=FAMILY)
def mqtt_disconnect(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QMTDISC=<client_idx> (MQTT note 3.2.5): OK, DISCONNECT and the connection closed, then
    ``+QMTDISC: <client_idx>,0``."""
    if call.form is Form.TEST:
        return ok(f"+QMTDISC: (0-{CLIENTS - 1})")
    require_form(call, Form.WRITE)
    if len(call.args) != 1:
        raise CommandFailed(Refusal.PARAMETER)
    client = _client(modem, call)
    if not client.network_open:
        raise CommandFailed(Refusal.PARAMETER)
    client.disconnect()
    return ok()


# --- AT+QMTSUB, AT+QMTUNS (MQTT note 3.2.6, 3.2.7) ----------------------------------------------


@command("+QMTSUB", family=FAMILY)
def mqtt_subscribe(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QMTSUB=<client_idx>,<msgid>,"<topic1>",<qos1>[,"<topic2>",<qos2>...] (MQTT note 3.2.6):
    OK, then ``+QMTSUB: <client_idx>,<msgid>,<result>[,<value>]`` (the granted QoS of each topic)."""
    if call.form is Form.TEST:
        return ok(f'+QMTSUB: (0-{CLIENTS - 1}),(1-65535),"<topic>",(0-2)')
    require_form(call, Form.WRITE)
    if len(call.args) < 4 or len(call.args) % 2:
        raise CommandFailed(Refusal.PARAMETER)
    client = _connected(modem, call)
    msgid = _msgid(call, 1, client)
    topics = [(str_arg(call, index), int_arg(call, index + 1, 0, 2)) for index in range(2, len(call.args), 2)]
    if any(not topic for topic, _ in topics):
        raise CommandFailed(Refusal.PARAMETER)
    client.subscribe(msgid, topics)
    return ok()


@command("+QMTUNS", family=FAMILY)
def mqtt_unsubscribe(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QMTUNS=<client_idx>,<msgid>,"<topic1>"[,"<topic2>"...] (MQTT note 3.2.7): OK, then
    ``+QMTUNS: <client_idx>,<msgid>,<result>``."""
    if call.form is Form.TEST:
        return ok(f'+QMTUNS: (0-{CLIENTS - 1}),(1-65535),"<topic>"')
    require_form(call, Form.WRITE)
    if len(call.args) < 3:
        raise CommandFailed(Refusal.PARAMETER)
    client = _connected(modem, call)
    msgid = _msgid(call, 1, client)
    topics = [str_arg(call, index) for index in range(2, len(call.args))]
    if any(not topic for topic in topics):
        raise CommandFailed(Refusal.PARAMETER)
    client.unsubscribe(msgid, topics)
    return ok()


# --- AT+QMTPUB, AT+QMTPUBEX (LTE Standard MQTT note V1.2; MQTT note 3.2.8) ----------------------


class MessageSink(PromptedData):
    """The message after ``>``: ``length`` bytes, or up to Ctrl+Z (sent) or ESC (cancelled)."""

    def __init__(self, length: int | None, done: Callable[[bytes], None]):
        # chosen: cancelled, nothing published; too long before Ctrl+Z, refused whole
        super().__init__(length, MAX_MESSAGE, cancelled=CommandFailed(Refusal.PARAMETER),
                         too_long=CommandFailed(Refusal.PARAMETER))
        self.done = done

    def _finish(self, modem: "Modem") -> Outcome | CommandFailed:
        try:
            self.done(bytes(self.data))
        except CommandFailed as failure:
            return failure
        return Reply()


def _publish_call(modem: "Modem", call: CommandCall, urc: str) -> tuple[MqttClient, int, int, int, str]:
    client = _connected(modem, call)
    qos = int_arg(call, 2, 0, 2)
    msgid = int_arg(call, 1, 0, 0) if qos == 0 else _msgid(call, 1, client)
    retain = int_arg(call, 3, 0, 1)
    topic = str_arg(call, 4)
    if not topic:
        raise CommandFailed(Refusal.PARAMETER)
    return client, msgid, qos, retain, topic


def _publisher(client: MqttClient, urc: str, msgid: int, qos: int, retain: int, topic: str) -> Callable[[bytes], None]:
    def publish(payload: bytes) -> None:
        if not client.in_session(Session.CONNECTED):
            raise CommandFailed(Refusal.PARAMETER)  # the connection went while the host typed
        client.publish(urc, msgid, qos, bool(retain), topic, payload)
    return publish


def _publish_inline(client: MqttClient, urc: str, msgid: int, qos: int, retain: int, topic: str,
                    message: str) -> Reply:
    """The message given in the command line, quoted, in the place of <msglen>: published at once,
    OK, then the URC. Its limit is the command line's (the profile's ``line_length``); an empty
    one is refused as <msglen> 0 would be (chosen)."""
    if not message:
        raise CommandFailed(Refusal.PARAMETER)
    _publisher(client, urc, msgid, qos, retain, topic)(message.encode("latin-1"))
    return ok()


@command("+QMTPUB", family=FAMILY)
def mqtt_publish(modem: "Modem", call: CommandCall) -> Outcome:
    """AT+QMTPUB=<client_idx>,<msgid>,<qos>,<retain>,"<topic>"[,<msglen>] (LTE Standard MQTT note V1.2): ``>``,
    the message (<msglen> bytes, or up to Ctrl+Z; ESC cancels), OK, then
    ``+QMTPUB: <client_idx>,<msgid>,<result>[,<value>]``.

    With the message quoted in the place of <msglen>, ``AT+QMTPUB=0,0,0,0,"/topic/test","hello
    world!"``, it is published at once: OK, then ``+QMTPUB: 0,0,0``. That is the form Quectel's
    own host SDK sends for every module but the BG95, and public EC200M/EC800 firmwares send
    (REFERENCE.md "MQTT", seen)."""
    if call.form is Form.TEST:
        return ok(f'+QMTPUB: (0-{CLIENTS - 1}),(0-65535),(0-2),(0,1),"<topic>",(1-{MAX_MESSAGE})')
    require_form(call, Form.WRITE)
    if not 5 <= len(call.args) <= 6:
        raise CommandFailed(Refusal.PARAMETER)
    client, msgid, qos, retain, topic = _publish_call(modem, call, "+QMTPUB")
    inline = call.args[5] if len(call.args) == 6 else None
    if inline is not None and inline.quoted:
        return _publish_inline(client, "+QMTPUB", msgid, qos, retain, topic, inline.text)
    length = int_arg(call, 5, 1, MAX_MESSAGE) if _given(call, 5) else None
    return AwaitData(_prompt(modem), MessageSink(length, _publisher(client, "+QMTPUB", msgid, qos, retain, topic)))


@command("+QMTPUBEX", family=FAMILY)
def mqtt_publish_ex(modem: "Modem", call: CommandCall) -> Outcome:
    """AT+QMTPUBEX=<client_idx>,<msgid>,<qos>,<retain>,"<topic>",<msglen> (MQTT note 3.2.8): ``>``,
    <msglen> bytes, OK, then ``+QMTPUBEX: <client_idx>,<msgid>,<result>[,<value>]``. The older
    notes' form with the message quoted in place of <msglen> publishes it at once (its outcome as
    ``+QMTPUB``, as those notes show it)."""
    if call.form is Form.TEST:
        # As an EC800M (EC800MCNGAR06A05M08) answers it, space and names included (REFERENCE.md
        # "MQTT", seen).
        return ok(f'+QMTPUBEX: (0-{CLIENTS - 1}), <msgid>,(0-2),(0,1),"topic","length"')
    require_form(call, Form.WRITE)
    if len(call.args) != 6 or call.args[5] is None:
        raise CommandFailed(Refusal.PARAMETER)
    client, msgid, qos, retain, topic = _publish_call(modem, call, "+QMTPUBEX")
    if call.args[5].quoted:
        # The BG96-era form: the message in place, its outcome told as +QMTPUB (those notes).
        return _publish_inline(client, "+QMTPUB", msgid, qos, retain, topic, call.args[5].text)
    length = int_arg(call, 5, 1, MAX_MESSAGE)
    return AwaitData(_prompt(modem), MessageSink(length, _publisher(client, "+QMTPUBEX", msgid, qos, retain, topic)))


def _prompt(modem: "Modem") -> bytes:
    registers = modem.settings.s_registers
    return bytes((registers[3], registers[4])) + PROMPT


# --- AT+QMTRECV (MQTT note 3.2.9) -----------------------------------------------------------------


@command("+QMTRECV", family=FAMILY)
def mqtt_receive(modem: "Modem", call: CommandCall) -> Reply:
    """AT+QMTRECV=<client_idx>[,<recv_id>] (MQTT note 3.2.9): the messages kept in buffer mode
    (AT+QMTCFG="recv/mode",<idx>,1), each ``+QMTRECV: <client_idx>,<msgid>,"<topic>"[,<len>],
    "<payload>"``; AT+QMTRECV? shows which of the five slots of each client hold one."""
    family = _family(modem)
    if call.form is Form.TEST:
        return ok(f"+QMTRECV: (0-{CLIENTS - 1}),(0-{RECV_SLOTS - 1})")
    if call.form is Form.READ:
        return ok(*(f"+QMTRECV: {c.client_id}," + ",".join("1" if slot else "0" for slot in c.slots)
                    for c in family.clients if c.network_open))
    require_form(call, Form.WRITE)
    if len(call.args) > 2:
        raise CommandFailed(Refusal.PARAMETER)
    client = _client(modem, call)
    config = client.link.config if client.link is not None else client.config
    indexes = [int_arg(call, 1, 0, RECV_SLOTS - 1)] if _given(call, 1) else list(range(RECV_SLOTS))
    lines = []
    for index in indexes:
        message = client.take_slot(index)
        if message is not None:
            lines.append(client.message_line(message, config))
    return Reply(lines)
