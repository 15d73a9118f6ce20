"""``ecemu check``: every difference between a log and the emulator, reported with the log's line.

The logs here are written by hand as a real module would have answered (the answers follow the
AT manuals' framing), then altered where a difference must be found: a different value, a line
the emulator does not say, one in another order, one that came much later. The emulator's own
answers are not imported from the code under test; they are the bytes the README documents.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from ecemu.check import CheckOptions, check_log, load_rules
from ecemu.sessionlog.modules import ModuleMismatch, profile_for


@pytest.fixture(autouse=True)
def fast_network(monkeypatch):
    monkeypatch.setenv("ECEMU_NETWORK_RTT_MS", "0")


def write(tmp_path, text: str, name: str = "field.log"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


GOOD = """\
    # ecemu-session 1
    # module: EC800M-CN
    0.000 > AT+CGMM\\r
    0.010 < AT+CGMM\\r\\r\\nEC800M\\r\\n\\r\\nOK\\r\\n
    1.000 > AT+CSQ\\r
    1.010 < AT+CSQ\\r\\r\\n+CSQ: 11,99\\r\\n\\r\\nOK\\r\\n
    2.000 > AT+CGSN\\r
    2.010 < AT+CGSN\\r\\r\\n861234567890123\\r\\n\\r\\nOK\\r\\n
    3.000 > AT+QIACT=1\\r
    3.400 < AT+QIACT=1\\r\\r\\nOK\\r\\n
    4.000 > AT+QIACT?\\r
    4.010 < AT+QIACT?\\r\\r\\n+QIACT: 1,1,1,"100.64.3.7"\\r\\n\\r\\nOK\\r\\n
    """


def test_a_log_the_emulator_answers_alike_has_no_difference(tmp_path):
    # Signal, IMEI and address differ from the emulator's: they are normalised. The timing check
    # runs with a tolerance a loaded machine cannot exceed (its own test is the next one).
    report = check_log(write(tmp_path, GOOD), CheckOptions(tolerance=10.0))
    assert report.passed, "\n".join(report.render())
    assert report.profile == "EC800M-CN" and report.exact_profile
    assert report.exchanges == 5
    assert report.render()[-1] == "no differences"


def test_each_kind_of_difference_is_reported_with_its_line(tmp_path):
    log = write(tmp_path, """\
        # ecemu-session 1
        # module: EC800M-CN
        0.000 > AT+CMEE?\\r
        0.010 < AT+CMEE?\\r\\r\\n+CMEE: 2\\r\\n\\r\\nOK\\r\\n
        1.000 > AT+CGMM\\r
        1.010 < AT+CGMM\\r\\r\\nEC800M\\r\\n\\r\\nOK\\r\\n\\r\\n+QIURC: "pdpdeact",1\\r\\n
        2.000 > AT+QIACT=1\\r
        7.000 < AT+QIACT=1\\r\\r\\nOK\\r\\n
        8.000 > AT+CPIN?\\r
        8.010 < AT+CPIN?\\r\\r\\nOK\\r\\n\\r\\n+CPIN: READY\\r\\n
        """)
    # 2.5 s: QIACT's 5 s in the log is far outside it, and a loaded machine's pause is not.
    report = check_log(log, CheckOptions(tolerance=2.5))
    assert not report.passed
    shown = [(d.kind, d.line, d.expected, d.got) for d in report.differences]
    assert shown == [
        ("bytes", 4, "\\r\\n+CMEE: 2\\r\\n", "\\r\\n+CMEE: 1\\r\\n"),
        ("missing", 6, '\\r\\n+QIURC: "pdpdeact",1\\r\\n', None),
        ("timing", 8, "AT+QIACT=1\\r", None),
        ("timing", 8, "\\r\\nOK\\r\\n", None),
        ("order", 10, "\\r\\n+CPIN: READY\\r\\n", None),
    ]
    assert "the log has 5.000 s (tolerance 2.500 s)" in report.differences[2].detail
    text = "\n".join(report.render())
    assert "line 4     bytes    log:      \\r\\n+CMEE: 2\\r\\n\n" in text
    assert "                    emulator: \\r\\n+CMEE: 1\\r\\n" in text
    assert text.endswith("5 differences")


def test_a_line_the_emulator_says_a_turn_early_is_an_order_difference(tmp_path):
    # The log's module said OK to AT+QIACT=1 only after the host's next line.
    log = write(tmp_path, """\
        # ecemu-session 1
        # module: EC800M-CN
        0.000 > AT+QIACT=1\\r
        0.010 < AT+QIACT=1\\r
        0.200 > AT\\r
        0.300 < \\r\\nOK\\r\\nAT\\r\\r\\nOK\\r\\n
        """)
    report = check_log(log, CheckOptions(timing=False))
    assert [(d.kind, d.line) for d in report.differences] == [("order", 6)]
    assert report.differences[0].detail == "the emulator said it before the host's next line; the log has it after"


def test_rules_the_user_adds(tmp_path):
    log = write(tmp_path, """\
        # ecemu-session 1
        # module: EC800M-CN
        # normalise: ^\\+CSCS: .* => +CSCS: <charset>
        0.000 > AT+CMEE?\\r
        0.010 < AT+CMEE?\\r\\r\\n+CMEE: 2\\r\\n\\r\\nOK\\r\\n
        1.000 > AT+CSCS?\\r
        1.010 < AT+CSCS?\\r\\r\\n+CSCS: "UCS2"\\r\\n\\r\\nOK\\r\\n
        """)
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nname = "error reporting"\npattern = \'^\\+CMEE: \\d\'\nreplace = "+CMEE: <n>"\n')
    report = check_log(log, CheckOptions(rules=load_rules([rules]), tolerance=10.0))  # rules, not timing
    assert report.passed, "\n".join(report.render())
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rule]]\npattern = "("\nreplace = "x"\n')
    with pytest.raises(ValueError, match="bad.toml: rule 1"):
        load_rules([bad])


def test_a_transcript_compares_its_lines(tmp_path):
    # A terminal program's log of an EC800M: times, both the typed line and its echo, a blank
    # line here and there. Echo and blank lines aside, its lines are the emulator's.
    log = write(tmp_path, """\
        [10:20:01.100] AT+CPIN?
        [10:20:01.108] AT+CPIN?
        [10:20:01.108] +CPIN: READY
        [10:20:01.108]
        [10:20:01.108] OK
        [10:20:05.500] ATI
        [10:20:05.507] ATI
        [10:20:05.507] Quectel
        [10:20:05.507] EC800M
        [10:20:05.507] Revision: EC800MCNGAR06A05M08
        [10:20:05.507] OK
        [10:20:09.000] AT+QIACT=1
        [10:20:09.610] OK
        [10:20:12.000] AT+COPS?
        [10:20:12.010] +COPS: 0,0,"CHN-UNICOM",7
        [10:20:12.010] OK
        """, "terminal.txt")
    # Its lines are the subject; timing has its own test, and a loaded machine can pause a second.
    report = check_log(log, CheckOptions(tolerance=10.0))
    assert report.line_ends == "inferred" and report.module == "EC800M" and report.profile == "EC800M-CN"
    assert report.passed, "\n".join(report.render())
    wrong = write(tmp_path, log.read_text().replace("[10:20:12.010] OK", "[10:20:12.010] ERROR"), "wrong.txt")
    report = check_log(wrong, CheckOptions(tolerance=10.0))
    assert [(d.kind, d.line, d.expected, d.got) for d in report.differences] == [("bytes", 16, "ERROR", "OK")]


def test_servers_are_replaced_by_local_stand_ins(tmp_path):
    # TCP to a host on the internet, then HTTP to another: the emulator's reach local servers.
    url = b"http://api.example.com/bytes/100"
    log = write(tmp_path, f"""\
        > AT+QIACT=1
        < OK
        > AT+QIOPEN=1,0,"TCP","iot.example.com",5000,0,1
        < OK
        < +QIOPEN: 0,0
        > AT+QISEND=0,5
        < >
        > hello
        < SEND OK
        < +QIURC: "recv",0,5
        < hello
        > AT+QICLOSE=0
        < OK
        > AT+QHTTPCFG="contextid",1
        < OK
        > AT+QHTTPURL={len(url)},80
        < CONNECT
        > {url.decode()}
        < OK
        > AT+QHTTPGET=80
        < OK
        < +QHTTPGET: 0,200,100
        """, "stand-ins.txt")
    report = check_log(log, CheckOptions(profile="EC200M-CN"))
    assert report.passed, "\n".join(report.render())


def test_a_url_that_never_resolves_keeps_its_host_and_a_url_reads_back_as_the_logs(tmp_path):
    # .invalid never resolves (RFC 6761): the log's failure is what the emulator must show, so no
    # stand-in takes that URL; a URL that did go to the stand-in reads back as the log has it.
    invalid, url = "http://nowhere.invalid/", "http://api.example.com/get"
    log = write(tmp_path, f"""\
        > AT+QIACT=1
        < OK
        > AT+QHTTPURL={len(invalid)},80
        < CONNECT
        > {invalid}
        < OK
        > AT+QHTTPGET=80
        < +CME ERROR: 716
        > AT+QHTTPURL={len(url)},80
        < CONNECT
        > {url}
        < OK
        > AT+QHTTPURL?
        < +QHTTPURL: {url}
        < OK
        """, "urls.txt")
    report = check_log(log, CheckOptions(profile="EC200M-CN"))
    assert report.passed, "\n".join(report.render())


def test_which_profile_stands_in_for_which_module():
    assert profile_for("EC800M-CN") == ("EC800M-CN", True)
    assert profile_for("EC800MCNGAR06A05M08") == ("EC800M-CN", True)
    assert profile_for("EC200U") == ("EC200M-CN", False)
    assert profile_for("EG800K") == ("EG800K-CN", True)
    assert profile_for("EG800KCNGCR07A04M04") == ("EG800K-CN", True)
    assert profile_for("EG800Q") == ("EG800K-CN", False)
    with pytest.raises(ModuleMismatch, match="the log is of a BG96, not of the EC200x/EC800x/EG800 family"):
        profile_for("BG96")


def test_a_log_of_another_module_is_refused(tmp_path):
    log = write(tmp_path, """\
        AT+CSQ
        +CSQ: 20,99
        OK
        ATI
        Quectel
        BG96
        Revision: BG96MAR02A07M1G
        OK
        """, "bg96.txt")
    with pytest.raises(ModuleMismatch, match=r"bg96.txt: line 5: the log is of a BG96"):
        check_log(log)
    result = subprocess.run([sys.executable, "-m", "ecemu", "check", str(log)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and "the log is of a BG96" in result.stderr
    forced = subprocess.run([sys.executable, "-m", "ecemu", "check", "--profile", "EC200M-CN", "--no-timing",
                             str(log)], capture_output=True, text=True, timeout=60)
    assert forced.returncode == 1, forced.stdout + forced.stderr  # checked anyway: the model differs
    assert "log:      BG96" in forced.stdout


def test_exit_status_for_ci(tmp_path):
    good = write(tmp_path, GOOD)
    bad = write(tmp_path, GOOD.replace("+CSQ: 11,99", "+CSQ: 11"), "bad.log")
    broken = write(tmp_path, GOOD.replace("1.010 <", "1.010 <<"), "broken.log")
    # The exit status is the subject: a tolerance a loaded machine's pauses stay inside.
    results = {name: subprocess.run([sys.executable, "-m", "ecemu", "check", "--tolerance-ms", "10000", str(path)],
                                    capture_output=True, text=True, timeout=60)
               for name, path in (("good", good), ("bad", bad), ("broken", broken))}
    assert results["good"].returncode == 0, results["good"].stdout
    assert results["bad"].returncode == 1
    assert results["bad"].stdout.splitlines()[-1] == "1 difference"
    assert results["broken"].returncode == 2
    assert results["broken"].stderr.startswith(f"ecemu check: {broken}:6: not a record")
