"""The commands real drivers send at start-up and connect (emulator/commands/identity.py, radio.py,
device.py, the 27.007 PDP commands of pdp.py), through the sans-IO core, byte for byte: every form
(test, read, write, execution) of every command, values from the profile, settings kept and read
back, bad parameters answered per AT+CMEE, the radio off, AT+QPOWD and power cycles.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from ecemu.commands import COMMAND_SET
from ecemu.profile import available_profiles, load_profile
from tests.harness import CoreHarness
from tests.wire import CME_3, CME_30, CME_50, ERROR, OK

PROFILES = available_profiles()
PROFILE = load_profile("EC200M-CN")
IDENT = PROFILE.identity


def info(*lines: str) -> bytes:
    """An information block, then OK, as the module frames them with ATV1."""
    return b"\r\n" + b"\r\n".join(line.encode("latin-1") for line in lines) + b"\r\n" + OK


def each(*lines: str) -> bytes:
    """The answers of several commands on one line: each one's information framed on its own."""
    return b"".join(b"\r\n" + line.encode("latin-1") + b"\r\n" for line in lines) + OK


def urc(*texts: str) -> bytes:
    return b"".join(b"\r\n" + t.encode("latin-1") + b"\r\n" for t in texts)


@pytest.fixture(params=PROFILES)
def hp(request) -> CoreHarness:
    return CoreHarness(profile=request.param)


# --- every form of every command, on the default module (EC200M-CN) ------------------------------

# (line, exact answer); the values are the EC200M-CN profile's, written out so a change shows here.
EXACT = [
    # SIM and identity
    ("AT+QCCID", info("+QCCID: 89860012345678901234")),
    ("AT+QCCID=?", OK),
    ("AT+CCID", info("+CCID: 89860012345678901234")),
    ("AT+CCID=?", OK),
    ("AT+CIMI", info("460001234567890")),
    ("AT+CIMI=?", OK),
    ("AT+CGSN", info("869487060012340")),
    ("AT+CGSN=?", info("+CGSN: (0-3)")),
    ("AT+CGSN=0", info("869487060012340")),
    ("AT+CGSN=1", info('+CGSN: "869487060012340"')),
    ("AT+CGSN=2", info('+CGSN: "8694870600123401"')),
    ("AT+CGSN=3", info('+CGSN: "01"')),
    ("AT+QGMR", info("EC200MCNLAR02A02M16_01.200.01.200")),
    ("AT+QGMR=?", OK),
    ("AT+QINISTAT", info("+QINISTAT: 7")),
    ("AT+QINISTAT=?", info("+QINISTAT: (0-7)")),
    ("AT+QSIMSTAT?", info("+QSIMSTAT: 0,1")),
    ("AT+QSIMSTAT=?", info("+QSIMSTAT: (0,1)")),
    ("AT+QSIMDET?", info("+QSIMDET: 0,0")),
    ("AT+QSIMDET=?", info("+QSIMDET: (0,1),(0,1)")),
    ("AT+QSIMDET=0,0", OK),
    ('AT+CPIN="1234"', CME_3),
    ('AT+CPIN="12345678","1234"', CME_3),
    ('AT+CLCK="SC",2', info("+CLCK: 0")),
    ('AT+CLCK="sc",2', info("+CLCK: 0")),
    ('AT+CLCK="FD",2', info("+CLCK: 0")),
    ('AT+CLCK=?', info('+CLCK: ("SC","AO","OI","OX","AI","IR","AB","AG","AC","FD","PF","PN","PU","PP","PC")')),
    ('AT+CLCK="SC",1,"1234"', CME_3),
    ('AT+CPWD=?', info('+CPWD: ("AB",4),("AC",4),("AG",4),("AI",4),("AO",4),("IR",4),("OI",4),("OX",4),'
                       '("SC",8),("P2",8)')),
    ('AT+CPWD="SC","1234","4321"', CME_3),
    # network
    ("AT+QNWINFO", info('+QNWINFO: "FDD LTE","46000","LTE BAND 3",1650')),
    ("AT+QNWINFO=?", OK),
    ("AT+QCSQ", info('+QCSQ: "LTE",-73,-85,175,-10')),
    ("AT+QCSQ=?", info('+QCSQ: ("NOSERVICE","LTE")')),
    ("AT+CESQ", info("+CESQ: 99,99,255,255,20,56")),
    ("AT+CESQ=?", info("+CESQ: (0-63,99),(0-7,99),(0-96,255),(0-49,255),(0-34,255),(0-97,255)")),
    ("AT+QSPN", info('+QSPN: "CHINA MOBILE","CMCC","",0,"46000"')),
    ("AT+QSPN?", info('+QSPN: "CHINA MOBILE","CMCC","",0,"46000"')),
    ("AT+QSPN=?", OK),
    ('AT+QENG="servingcell"', info('+QENG: "servingcell","NOCONN","LTE","FDD",460,00,A1B2C3D,123,1650,3,5,5,'
                                   '5A0B,-85,-10,-73,15,40')),
    ('AT+QENG="SERVINGCELL"', info('+QENG: "servingcell","NOCONN","LTE","FDD",460,00,A1B2C3D,123,1650,3,5,5,'
                                   '5A0B,-85,-10,-73,15,40')),
    ('AT+QENG="neighbourcell"', OK),
    ("AT+QENG=?", info('+QENG: ("servingcell","neighbourcell")')),
    ("AT+CEER", info('+CEER: "No cause information available"')),
    ("AT+CEER=?", OK),
    ("AT+QLTS", info('+QLTS: "2026/01/02,03:04:10+00,0"')),
    ("AT+QLTS=0", info('+QLTS: "2026/01/02,03:04:10+00,0"')),
    ("AT+QLTS=1", info('+QLTS: "2026/01/02,03:04:10+00,0"')),
    ("AT+QLTS=2", info('+QLTS: "2026/01/02,03:04:10+00,0"')),
    ("AT+QLTS=?", info("+QLTS: (0-2)")),
    ("AT+CTZR?", info("+CTZR: 0")),
    ("AT+CTZR=?", info("+CTZR: (0-2)")),
    ("AT+CTZR=0", OK),
    ("AT+CTZU?", info("+CTZU: 0")),
    ("AT+CTZU=?", info("+CTZU: (0,1,3)")),
    ("AT+CTZU=1", OK),
    ("AT+CPSMS?", info("+CPSMS: 0,,,,")),
    ("AT+CPSMS=?", info('+CPSMS: (0-2),("00000000"-"11111111"),("00000000"-"11111111"),'
                        '("00000000"-"11111111"),("00000000"-"11111111")')),
    ("AT+CPSMS=0", OK),
    ("AT+CPSMS", OK),
    ("AT+CEDRXS?", OK),
    ("AT+CEDRXS=?", info('+CEDRXS: (0-3),(4),("0000"-"1111")')),
    ("AT+CEDRXS=0", OK),
    ('AT+QCFG="band"', info('+QCFG: "band",0x3,0x1e200000095')),
    ('AT+QCFG="nwscanmode"', info('+QCFG: "nwscanmode",0')),
    ('AT+QCFG="nwscanseq"', info('+QCFG: "nwscanseq",00')),
    ('AT+QCFG="roamservice"', info('+QCFG: "roamservice",255')),
    ('AT+QCFG="servicedomain"', info('+QCFG: "servicedomain",2')),
    ('AT+QCFG="gprsattach"', info('+QCFG: "gprsattach",1')),
    ('AT+QCFG="urc/ri/ring"', info('+QCFG: "urc/ri/ring","pulse",120,1000,5000,"off",1')),
    ('AT+QCFG="urc/ri/smsincoming"', info('+QCFG: "urc/ri/smsincoming","pulse",120,1')),
    ('AT+QCFG="urc/ri/other"', info('+QCFG: "urc/ri/other","pulse",120,1')),
    ('AT+QCFG="risignaltype"', info('+QCFG: "risignaltype","respective"')),
    ('AT+QCFG="urc/delay"', info('+QCFG: "urc/delay",0')),
    ('AT+QCFG="urc/cache"', info('+QCFG: "urc/cache",0')),
    ('AT+QCFG="apready"', info('+QCFG: "apready",0,0,500')),
    ('AT+QCFG="iotopmode"', ERROR),
    ('AT+QCFG="iotopmode",0,1', ERROR),
    ("AT+QCFG", ERROR),
    ("AT+QCFG?", ERROR),
    # PDP
    ("AT+CGDCONT?", info('+CGDCONT: 1,"IP","","0.0.0.0",0,0,0,0')),
    ("AT+CGDCONT=?", info('+CGDCONT: (1-15),"IP",,,(0-2),(0-4),(0,1),(0,1)',
                          '+CGDCONT: (1-15),"IPV6",,,(0-2),(0-4),(0,1),(0,1)',
                          '+CGDCONT: (1-15),"IPV4V6",,,(0-2),(0-4),(0,1),(0,1)')),
    ('AT+CGDCONT=1,"IP","CMNET"', OK),  # REFERENCE.md: OK on an EC800M
    ("AT+CGACT?", info("+CGACT: 1,0")),
    ("AT+CGACT=?", info("+CGACT: (0,1)")),
    ("AT+CGACT=0,1", OK),
    ("AT+CGPADDR", info("+CGPADDR: 1")),
    ("AT+CGPADDR=1", info("+CGPADDR: 1")),
    ("AT+CGPADDR=1,2", info("+CGPADDR: 1", "+CGPADDR: 2")),
    ("AT+CGPADDR=?", info("+CGPADDR: (1)")),
    # power and misc
    ("AT+QSCLK?", info("+QSCLK: 0")),
    ("AT+QSCLK=?", info("+QSCLK: (0,1)")),
    ("AT+QSCLK=0", OK),
    ("AT+QPOWD=?", info("+QPOWD: (0,1)")),
    ("AT+CBC", info("+CBC: 0,75,3800")),
    ("AT+CBC=?", OK),
    ("AT+QTEMP", info("+QTEMP: 33,31,32")),
    ("AT+QTEMP=?", OK),
    ("AT+CSCS?", info('+CSCS: "GSM"')),
    ("AT+CSCS=?", info('+CSCS: ("GSM","IRA","UCS2")')),
    ('AT+CSCS="IRA"', OK),
    ("AT+CMGF?", info("+CMGF: 0")),
    ("AT+CMGF=?", info("+CMGF: (0,1)")),
    ("AT+CMGF=1", OK),
    ("AT+CPMS?", info('+CPMS: "SM",0,50,"SM",0,50,"SM",0,50')),
    ("AT+CPMS=?", info('+CPMS: ("SM","ME"),("SM","ME"),("SM","ME")')),
    ('AT+CPMS="ME","ME","ME"', info("+CPMS: 0,50,0,50,0,50")),
    ("AT+CNMI?", info("+CNMI: 2,1,0,0,0")),
    ("AT+CNMI=?", info("+CNMI: (0-2),(0-3),(0-2),(0-2),(0-1)")),
    ("AT+CNMI=2,1", OK),
    ("AT+CSMP?", info("+CSMP: 17,167,0,0")),
    ("AT+CSMP=?", OK),
    ("AT+CSMP=17,167,0,0", OK),
    ("AT+CLAC=?", OK),
]


@pytest.mark.parametrize("line,answer", EXACT, ids=[line for line, _ in EXACT])
def test_every_form_answers_exactly(h, line, answer):
    assert h.command(line) == answer


# Forms a command does not have answer plain ERROR whatever AT+CMEE (as every other family).
WRONG_FORMS = ["AT+QCCID?", "AT+QCCID=1", "AT+CCID?", "AT+CIMI?", "AT+CIMI=1", "AT+QGMR?", "AT+QINISTAT?",
               "AT+QSIMSTAT", "AT+QSIMDET", "AT+CLCK", "AT+CLCK?", "AT+CPWD", "AT+CPWD?", "AT+CGSN?",
               "AT+QNWINFO?", "AT+QNWINFO=1", "AT+QCSQ?", "AT+CESQ?", "AT+QENG", "AT+QENG?",
               "AT+CEER?", "AT+QLTS?", "AT+CTZR", "AT+CTZU", "AT+QCFG?", "AT+CGDCONT", "AT+CGACT",
               "AT+QSCLK", "AT+QPOWD?", "AT+CBC?", "AT+QTEMP?", "AT+CSCS", "AT+CMGF?=", "AT+CPMS",
               "AT+CLAC?", "AT+CLAC=1"]


@pytest.mark.parametrize("line", WRONG_FORMS)
def test_a_form_a_command_does_not_have_answers_error(h, line):
    for cmee in (0, 1, 2):
        assert h.command(f"AT+CMEE={cmee}") == OK
        assert h.command(line) == ERROR, cmee


# A bad parameter of a 3GPP or Quectel command of these families: +CME ERROR: 50 per AT+CMEE.
BAD_PARAMETERS = ["AT+CGSN=4", "AT+CGSN=1,1", "AT+QSIMSTAT=2", "AT+QSIMSTAT=0,0", "AT+QSIMDET=2,0",
                  "AT+QSIMDET=1", 'AT+CLCK="XX",2', 'AT+CLCK="SC",3', 'AT+CLCK="SC"', 'AT+CPWD="SC","1"',
                  'AT+CPWD="ZZ","1","2"', "AT+CPIN=1234", 'AT+QENG="cell"', 'AT+QENG="servingcell",1',
                  "AT+QLTS=3", "AT+QLTS=0,1", "AT+CTZR=3", "AT+CTZR=0,0", "AT+CTZU=2", "AT+CTZU=4",
                  'AT+CPSMS=1,,,"0101"', "AT+CPSMS=3", 'AT+CEDRXS=1,5', 'AT+CEDRXS=1,4,"01"',
                  'AT+QCFG="nwscanmode",4', 'AT+QCFG="nwscanmode",1,2', 'AT+QCFG="nwscanmode",1,1,1',
                  'AT+QCFG="band",0x3', 'AT+QCFG="band",0xZZ,0x1,0', 'AT+QCFG="risignaltype","wave"',
                  'AT+QCFG="urc/cache",0,1', 'AT+QCFG="apready",1,1,99', 'AT+QCFG="urc/ri/ring","pulse",0',
                  "AT+CGDCONT=0", "AT+CGDCONT=16", 'AT+CGDCONT=1,"PPP"', 'AT+CGDCONT=1,"IP","a","",3',
                  "AT+CGACT=2,1", "AT+CGACT=1,16", "AT+CGPADDR=0", "AT+QSCLK=2", "AT+QSCLK=0,0", "AT+QPOWD=2",
                  'AT+CSCS="UTF8"', "AT+CSCS=GSM", "AT+CMGF=2", 'AT+CPMS="XX"', 'AT+CPMS="SM","SM","SM","SM"',
                  "AT+CNMI=3", "AT+CNMI=2,1,0,0,0,0", "AT+CSMP=256"]


@pytest.mark.parametrize("line", BAD_PARAMETERS)
def test_a_bad_parameter_answers_per_cmee(h, line):
    before = h.modem.families["radio"].qcfg.copy(), h.modem.families["device"].__dict__.copy()
    for cmee, answer in [(0, ERROR), (1, CME_50), (2, b"\r\n+CME ERROR: incorrect parameters\r\n")]:
        assert h.command(f"AT+CMEE={cmee}") == OK
        assert h.command(line) == answer, cmee
    assert (h.modem.families["radio"].qcfg, h.modem.families["device"].__dict__) == before


def test_cme_3_reads_as_text_with_cmee_2(h):
    assert h.command("AT+CMEE=2") == OK
    assert h.command('AT+CPIN="0000"') == b"\r\n+CME ERROR: operation not allowed\r\n"
    assert h.command("AT+CMEE=0") == OK
    assert h.command('AT+CPIN="0000"') == ERROR


# --- values per module -----------------------------------------------------------------------------


def test_identity_comes_from_each_profile(hp):
    ident = hp.modem.profile.identity
    assert hp.command("AT+QCCID") == info(f"+QCCID: {ident.iccid}")
    assert hp.command("AT+CCID") == info(f"+CCID: {ident.iccid}")
    assert hp.command("AT+CIMI") == info(ident.imsi)
    assert hp.command("AT+QGMR") == info(f"{ident.revision}_{ident.build}")
    assert hp.command("AT+CGSN=2") == info(f'+CGSN: "{ident.imei[:14]}{ident.imei_svn}"')
    assert hp.command("AT+CBC") == info("+CBC: {},{},{}".format(*hp.modem.profile.device.battery))


def test_the_iccid_and_imsi_differ_per_module():
    profiles = [load_profile(name).identity for name in PROFILES]
    assert len({p.iccid for p in profiles}) == len({p.imsi for p in profiles}) == len(PROFILES)
    for ident in profiles:
        assert len(ident.imsi) == 15 and ident.imsi.isdigit()
        assert ident.imsi.startswith(PROFILE.network.mcc_mnc)
        assert 19 <= len(ident.iccid) <= 20 and ident.iccid.startswith("89")


def test_the_band_mask_is_the_profiles_bands(hp):
    net = hp.modem.profile.network
    answer = hp.command('AT+QCFG="band"')
    gsm, lte = answer.split(b"\r\n")[1].decode().split(",")[1:]
    assert int(gsm, 16) == net.gsm_band_mask
    assert [bit + 1 for bit in range(64) if int(lte, 16) >> bit & 1] == list(net.lte_bands)


# --- settings kept and read back ---------------------------------------------------------------------


@pytest.mark.parametrize("write,read,answer", [
    ("AT+QSIMSTAT=1", "AT+QSIMSTAT?", "+QSIMSTAT: 1,1"),
    ("AT+QSIMDET=1,0", "AT+QSIMDET?", "+QSIMDET: 1,0"),
    ("AT+CTZR=1", "AT+CTZR?", "+CTZR: 1"),
    ("AT+CTZU=3", "AT+CTZU?", "+CTZU: 3"),
    ('AT+CPSMS=1,,,"00000100","00001111"', "AT+CPSMS?", '+CPSMS: 1,,,"00000100","00001111"'),
    ('AT+CEDRXS=2,4,"0101"', "AT+CEDRXS?", '+CEDRXS: 4,"0101"'),
    ("AT+CEDRXS=1", "AT+CEDRXS?", '+CEDRXS: 4,"0000"'),
    ('AT+QCFG="nwscanmode",3,1', 'AT+QCFG="nwscanmode"', '+QCFG: "nwscanmode",3'),
    ('AT+QCFG="nwscanmode",1', 'AT+QCFG="nwscanmode"', '+QCFG: "nwscanmode",1'),
    ('AT+QCFG="nwscanseq",0301', 'AT+QCFG="nwscanseq"', '+QCFG: "nwscanseq",0301'),
    ('AT+QCFG="band",0,0x15,1', 'AT+QCFG="band"', '+QCFG: "band",0x0,0x15'),
    ('AT+QCFG="band",3,1A0080800C5', 'AT+QCFG="band"', '+QCFG: "band",0x3,0x1a0080800c5'),
    ('AT+QCFG="roamservice",1', 'AT+QCFG="roamservice"', '+QCFG: "roamservice",1'),
    ('AT+QCFG="urc/ri/ring","off"', 'AT+QCFG="urc/ri/ring"', '+QCFG: "urc/ri/ring","off",120,1000,5000,"off",1'),
    ('AT+QCFG="urc/ri/ring","auto",200,1000,5000,"on",2', 'AT+QCFG="urc/ri/ring"',
     '+QCFG: "urc/ri/ring","auto",200,1000,5000,"on",2'),
    ('AT+QCFG="URC/RI/SMSINCOMING","always",50', 'AT+QCFG="urc/ri/smsincoming"',
     '+QCFG: "urc/ri/smsincoming","always",50,1'),
    ('AT+QCFG="risignaltype","physical"', 'AT+QCFG="risignaltype"', '+QCFG: "risignaltype","physical"'),
    ('AT+QCFG="urc/cache",1', 'AT+QCFG="urc/cache"', '+QCFG: "urc/cache",1'),
    ('AT+QCFG="apready",1,0,500', 'AT+QCFG="apready"', '+QCFG: "apready",1,0,500'),
    ("AT+QSCLK=1", "AT+QSCLK?", "+QSCLK: 1"),  # REFERENCE.md: +QSCLK: 1 read on an EC200T
    ('AT+CSCS="UCS2"', "AT+CSCS?", '+CSCS: "UCS2"'),
    ("AT+CMGF=1", "AT+CMGF?", "+CMGF: 1"),
    ('AT+CPMS="ME"', "AT+CPMS?", '+CPMS: "ME",0,50,"SM",0,50,"SM",0,50'),
    ("AT+CNMI=1,2,0,1,0", "AT+CNMI?", "+CNMI: 1,2,0,1,0"),
    ("AT+CNMI=,0", "AT+CNMI?", "+CNMI: 2,0,0,0,0"),
    ("AT+CSMP=49,255,0,8", "AT+CSMP?", "+CSMP: 49,255,0,8"),
])
def test_a_setting_is_kept_and_read_back(h, write, read, answer):
    assert h.command(write) == (info("+CPMS: 0,50,0,50,0,50") if write.startswith("AT+CPMS") else OK)
    assert h.command(read) == info(answer)


def test_psm_and_edrx_switched_off_forget_their_values(h):
    assert h.command('AT+CPSMS=1,,,"00000100","00001111"') == OK
    assert h.command("AT+CPSMS=2") == OK
    assert h.command("AT+CPSMS?") == info("+CPSMS: 0,,,,")
    assert h.command('AT+CEDRXS=1,4,"0101"') == OK
    assert h.command("AT+CEDRXS=0") == OK
    assert h.command("AT+CEDRXS?") == OK  # off: not listed
    assert h.command("AT+CEDRXS=1") == OK
    assert h.command("AT+CEDRXS?") == info('+CEDRXS: 4,"0101"')  # the value stays until mode 3
    assert h.command("AT+CEDRXS=3") == OK
    assert h.command("AT+CEDRXS=1") == OK
    assert h.command("AT+CEDRXS?") == info('+CEDRXS: 4,"0000"')


def test_every_setting_is_back_to_its_default_after_a_power_cycle(h):
    for line in ("AT+CTZR=2", "AT+CTZU=1", 'AT+QCFG="nwscanmode",3', "AT+QSCLK=1", "AT+CMGF=1",
                 'AT+CSCS="UCS2"', "AT+QSIMSTAT=1", 'AT+CGDCONT=2,"IP","x"'):
        assert h.command(line) == OK
    assert h.command("AT+CFUN=1,1") == OK
    h.advance(5.0)
    assert h.command("ATE0") == b"ATE0\r\r\nOK\r\n"
    assert h.command("AT+CTZR?;+CTZU?;+QCFG=\"nwscanmode\";+QSCLK?;+CMGF?;+CSCS?;+QSIMSTAT?;+CGDCONT?") == each(
        "+CTZR: 0", "+CTZU: 0", '+QCFG: "nwscanmode",0', "+QSCLK: 0", "+CMGF: 0", '+CSCS: "GSM"',
        "+QSIMSTAT: 0,1", '+CGDCONT: 1,"IP","","0.0.0.0",0,0,0,0')


# --- the SIM during boot ---------------------------------------------------------------------------


def test_qinistat_grows_with_the_boot_urcs():
    h = CoreHarness(boot=False, echo=True)
    due = {u.text: u.after_ms / 1000.0 for u in PROFILE.boot_urcs}
    out = h.advance(0.0)
    assert out == urc("RDY")
    assert h.send(b"AT+QINISTAT\r") == b"AT+QINISTAT\r" + info("+QINISTAT: 0")
    h.advance(due["+CPIN: READY"])
    assert h.send(b"AT+QINISTAT\r") == b"AT+QINISTAT\r" + info("+QINISTAT: 1")
    h.advance(due["+QIND: SMS DONE"] - due["+CPIN: READY"])
    assert h.send(b"AT+QINISTAT\r") == b"AT+QINISTAT\r" + info("+QINISTAT: 3")
    h.advance(due["+QIND: PB DONE"] - due["+QIND: SMS DONE"])
    assert h.send(b"AT+QINISTAT\r") == b"AT+QINISTAT\r" + info("+QINISTAT: 7")


# --- the radio off, the network's time -----------------------------------------------------------------


def test_without_service_the_network_commands_say_so(h):
    assert h.command("AT+CFUN=4") == OK
    assert h.command("AT+QNWINFO") == info("+QNWINFO: No Service")
    assert h.command("AT+QCSQ") == info('+QCSQ: "NOSERVICE"')
    assert h.command("AT+CESQ") == info("+CESQ: 99,99,255,255,255,255")
    assert h.command('AT+QENG="servingcell"') == info('+QENG: "servingcell","SEARCH"')
    assert h.command("AT+QSPN") == CME_30
    assert h.command("AT+CGACT=1,1") == CME_30
    assert h.command("AT+CGACT=0,1") == OK
    assert h.command("AT+CFUN=1") == OK
    assert h.command("AT+QNWINFO") == info('+QNWINFO: "FDD LTE","46000","LTE BAND 3",1650')


def test_the_signal_fault_moves_the_lte_values(h):
    h.modem.signal = (31, 99)
    assert h.command("AT+QCSQ") == info('+QCSQ: "LTE",-51,-85,175,-10')
    h.modem.signal = (99, 99)
    assert h.command("AT+QCSQ") == info('+QCSQ: "NOSERVICE"')
    assert h.command("AT+CESQ") == info("+CESQ: 99,99,255,255,255,255")


def test_qeng_shows_connect_while_a_context_is_active(h):
    assert h.command("AT+QIACT=1") == OK
    assert h.command('AT+QENG="servingcell"').startswith(b'\r\n+QENG: "servingcell","CONNECT","LTE"')


@pytest.mark.parametrize("reporting,expected", [
    (0, b""),
    (1, urc('+CTZV: "+32"')),
    (2, urc('+CTZE: "+32",0,"2026/05/06,22:10:03"')),
])
def test_registering_again_reports_the_network_time_per_ctzr(h, reporting, expected):
    # The module clock in UTC+8 (zone +32), as the network's time would set it.
    assert h.command('AT+CCLK="26/05/06,22:10:00+32"') == OK
    assert h.command(f"AT+CTZR={reporting}") == OK
    assert h.command("AT+CFUN=0") == OK
    h.advance(3.0)
    assert h.command("AT+CFUN=1") == OK + expected
    assert h.command("AT+QLTS=2") == info('+QLTS: "2026/05/06,22:10:03+32,0"')
    assert h.command("AT+QLTS=1") == info('+QLTS: "2026/05/06,14:10:03+32,0"')


def test_no_time_report_while_the_radio_stays_off_or_comes_on_twice(h):
    assert h.command("AT+CTZR=1") == OK
    assert h.command("AT+CFUN=4") == OK
    assert h.command("AT+CFUN=0") == OK
    assert h.command("AT+CFUN=1") == OK + urc('+CTZV: "+00"')
    assert h.command("AT+CFUN=1") == OK


def test_an_unregistered_module_has_no_network_time(h):
    profile = h.modem.profile
    h.modem.profile = replace(profile, network=replace(profile.network, registration=2))  # searching
    h.modem.reboot()
    h.advance(5.0)
    assert h.command("ATE0") == b"ATE0\r\r\nOK\r\n"
    assert h.command("AT+QLTS") == info('+QLTS: ""')  # Quectel AT manual: not synchronised yet
    assert h.command("AT+QNWINFO") == info("+QNWINFO: No Service")


# --- PDP: the 27.007 commands and AT+QICSGP / AT+QIACT over one table -------------------------------


def test_cgdcont_and_qicsgp_see_each_other(h):
    assert h.command('AT+CGDCONT=2,"IPV6","ims"') == OK
    assert h.command("AT+QICSGP=2") == info('+QICSGP: 2,"ims","","",0')
    assert h.command('AT+QICSGP=3,3,"CMNET","user","pass",2') == OK
    assert h.command("AT+CGDCONT?") == info('+CGDCONT: 1,"IP","","0.0.0.0",0,0,0,0',
                                            '+CGDCONT: 2,"IPV6","ims","0:0:0:0:0:0:0:0",0,0,0,0',
                                            '+CGDCONT: 3,"IPV4V6","CMNET","0.0.0.0,0:0:0:0:0:0:0:0",0,0,0,0')
    # AT+CGDCONT leaves AT+QICSGP's user, password and authentication alone.
    assert h.command('AT+CGDCONT=3,"IP","other"') == OK
    assert h.command("AT+QICSGP=3") == info('+QICSGP: 1,"other","user","pass",2')
    # The cid alone makes it undefined again.
    assert h.command("AT+CGDCONT=3") == OK
    assert h.command("AT+QICSGP=3") == info('+QICSGP: 1,"","","",0')
    assert h.command("AT+CGDCONT?") == info('+CGDCONT: 1,"IP","","0.0.0.0",0,0,0,0',
                                            '+CGDCONT: 2,"IPV6","ims","0:0:0:0:0:0:0:0",0,0,0,0')


def test_cgact_and_qiact_see_each_other(h):
    assert h.command('AT+CGDCONT=1,"IP","CMNET"') == OK
    assert h.command("AT+CGACT=1,1") == OK
    assert h.command("AT+QIACT?") == info('+QIACT: 1,1,1,"10.7.157.1"')
    assert h.command("AT+CGPADDR=1") == info('+CGPADDR: 1,"10.7.157.1"')
    assert h.command("AT+CGACT=1,1") == OK  # already active: left as it is (27.007)
    assert h.command("AT+QIACT=2") == OK
    assert h.command("AT+CGACT?") == info("+CGACT: 1,1", "+CGACT: 2,1")
    assert h.command("AT+CGPADDR") == info('+CGPADDR: 1,"10.7.157.1"', '+CGPADDR: 2,"10.7.157.2"')
    assert h.command("AT+CGACT=0,2") == OK
    assert h.command("AT+QIACT?") == info('+QIACT: 1,1,1,"10.7.157.1"')
    assert h.command("AT+QIDEACT=1") == OK
    assert h.command("AT+CGACT?") == info("+CGACT: 1,0", "+CGACT: 2,0")


def test_cgact_without_a_cid_acts_on_every_defined_context(h):
    assert h.command('AT+CGDCONT=4,"IP","x"') == OK
    assert h.command("AT+CGACT=1") == OK
    assert h.command("AT+QIACT?") == info('+QIACT: 1,1,1,"10.7.157.1"', '+QIACT: 4,1,1,"10.7.157.4"')
    assert h.command("AT+CGACT=0") == OK
    assert h.command("AT+QIACT?") == OK


def test_ipv4v6_and_ipv6_contexts_show_their_addresses(h):
    assert h.command('AT+CGDCONT=1,"IPV4V6","CMNET"') == OK
    assert h.command('AT+QICSGP=2,2,"ims"') == OK
    assert h.command("AT+QIACT=1;+QIACT=2") == OK
    assert h.command("AT+QIACT?") == info('+QIACT: 1,1,3,"10.7.157.1","2001:DB8:7:9D00::1"',
                                          '+QIACT: 2,1,2,"2001:DB8:7:9D00::2"')
    assert h.command("AT+CGPADDR=1,2") == info('+CGPADDR: 1,"10.7.157.1","2001:DB8:7:9D00::1"',
                                               '+CGPADDR: 2,"2001:DB8:7:9D00::2"')


def test_cgact_deactivation_tells_the_sockets_as_qideact_does(h):
    told = []
    h.modem.families["pdp"].listeners.append(lambda cid, by_network: told.append((cid, by_network)))
    assert h.command("AT+CGACT=1,1") == OK
    assert h.command("AT+CGACT=0,1") == OK
    assert told == [(1, False)]


# --- AT+QPOWD: off until a power cycle -------------------------------------------------------------------


@pytest.mark.parametrize("line", ["AT+QPOWD", "AT+QPOWD=1", "AT+QPOWD=0"])
def test_qpowd_answers_ok_then_powered_down_then_nothing(h, line):
    assert h.command("AT+QIACT=1") == OK
    assert h.command(line) == OK + urc("POWERED DOWN")
    assert h.command("AT") == b""
    assert h.send(b"ATI\r\nAT+CSQ\r") == b""
    assert h.advance(10.0) == b""
    assert h.modem.families["pdp"].active  # (the state is gone with the next power cycle)
    h.modem.reboot()
    boot = h.advance(5.0)
    assert boot == urc(*(u.text for u in sorted(PROFILE.boot_urcs, key=lambda u: u.after_ms)))
    # What the host sent while the module was off is lost, not answered after the reboot.
    assert h.command("ATE0") == b"ATE0\r\r\nOK\r\n"
    assert h.command("AT+QIACT?") == OK


def test_qpowd_with_echo_and_cr_lf(h):
    assert h.command("ATE1") == OK
    # The answer follows the echoed CR; the LF of the CR LF is the line's, taken after it without
    # an echo (README, line ends).
    assert h.send(b"AT+QPOWD=1\r\n") == b"AT+QPOWD=1\r" + OK + urc("POWERED DOWN")
    assert h.send(b"AT\r\n") == b""


def test_a_line_after_qpowd_in_the_same_write_is_not_answered(h):
    assert h.send(b"AT+QPOWD\rAT+CSQ\r") == OK + urc("POWERED DOWN")
    assert h.advance(1.0) == b""


# --- AT+CLAC, unknown commands ---------------------------------------------------------------------------


def test_clac_lists_exactly_the_command_table(h):
    answer = h.command("AT+CLAC")
    assert answer.startswith(b"\r\n") and answer.endswith(b"\r\n" + OK)
    listed = answer[2:-2 - len(OK)].decode().split("\r\n")
    assert listed == sorted(f"AT{name}" for name in COMMAND_SET.commands)
    for name in ("AT+QCCID", "AT+CGDCONT", "AT+QCFG", "AT+QPOWD", "AT+CLAC", "ATE", "AT&D", "ATS3"):
        assert name in listed


def test_an_unknown_command_is_observed_as_unknown(h):
    seen = []
    h.modem.observer = lambda kind, details: seen.append((kind, details))
    assert h.command("AT+QGPS=1") == ERROR
    assert h.command("AT+CSQ=1") == ERROR  # known, wrong form: no "unknown"
    assert h.command("AT+CSQ;+ZZZZ?;+CPIN?") == info("+CSQ: 20,99")[:-len(OK)] + ERROR
    unknown = [d["name"] for kind, d in seen if kind == "unknown"]
    assert unknown == ["+QGPS", "+ZZZZ"]
    assert [kind for kind, _ in seen].count("command") == 3


# --- line ends and echo -----------------------------------------------------------------------------------


def test_cr_lf_line_ends_with_echo_off(h):
    assert h.send(b"AT+QCCID\r\n") == info("+QCCID: 89860012345678901234")
    assert h.send(b"AT+CGDCONT=1,\"IP\",\"CMNET\"\r\nAT+CGACT=1,1\r\nAT+CGPADDR=1\r\n") == (
        OK + OK + info('+CGPADDR: 1,"10.7.157.1"'))


def test_echo_on_with_cr_line_ends():
    h = CoreHarness(echo=True)
    assert h.send(b"AT+CTZR=0\r") == b"AT+CTZR=0\r" + OK
    assert h.send(b"AT+QNWINFO\r") == b"AT+QNWINFO\r" + info('+QNWINFO: "FDD LTE","46000","LTE BAND 3",1650')
    # Bytes split anywhere give the same answer.
    out = b"".join(h.send(bytes([b])) for b in b'AT+QCFG="band"\r')
    assert out == b'AT+QCFG="band"\r' + info('+QCFG: "band",0x3,0x1e200000095')


def test_cme_407_text(h):
    assert h.command('AT+QFUPL="a.txt",1') == b"\r\nCONNECT\r\n"
    h.send(b"x")
    assert h.command("AT+CMEE=2") == OK
    assert h.command('AT+QFUPL="a.txt",1') == b"\r\n+CME ERROR: file already exist\r\n"


def test_qpowd_drops_every_connection_silently():
    from ecemu.core import events as ev
    from tests.core_network import SimulatedNetwork

    h = CoreHarness()
    net = SimulatedNetwork(h)
    assert h.command("AT+QIACT=1") == OK
    assert h.command('AT+QSSLOPEN=1,1,4,"127.0.0.1",8010,0') == OK
    assert net.run() == urc("+QSSLOPEN: 4,0")
    assert h.command("AT+QPOWD") == OK + urc("POWERED DOWN")
    assert h.advance(0.0) == b""  # the power goes right after POWERED DOWN
    assert any(isinstance(e, ev.CloseTcp) and e.abort for e in h.take_effects())
    assert h.advance(5.0) == b""
    h.modem.reboot()
    assert b"QSSLURC" not in h.advance(5.0)
