"""The coverage table: what a session's host code used, and what the emulator did not implement.

The aggregation is fed the observations of a real modem (``CoreHarness``), then shown at the end of
a real ``ecemu run`` process, by ``ecemu trace FILE --summary`` on a trace that process wrote, and
in the pytest plugin's terminal summary.
"""

from __future__ import annotations

import subprocess
import sys

from ecemu.coverage import (MORE_ROWS, NO_RESULT, NOT_RUN, REFUSED_LINE, ROWS_MAX, UNPARSABLE_LINE, Coverage,
                               coverage_of_trace)
from ecemu.shell.trace import read_entries
from tests.harness import CoreHarness
from tests.host import AtHost
from tests.processes import RunningEmulator
from tests.readme_blocks import example


def stopped_log(emulator: RunningEmulator) -> list[str]:
    """Stop the process (SIGTERM, as a CI job ends it) and return its standard error's lines."""
    emulator.process.terminate()
    assert emulator.process.wait(10) == 0
    log = emulator.log_text().splitlines()
    emulator.stop()
    return log


def observed_modem() -> tuple[CoreHarness, Coverage]:
    core = CoreHarness()
    coverage = Coverage()
    coverage.attach(core.modem)
    return core, coverage


def results(coverage: Coverage) -> dict[str, tuple[int, dict[str, int], bool]]:
    return {use.command.key: (use.count, dict(use.result_counts()), use.command.implemented)
            for use in coverage.rows()}


def test_each_command_is_counted_per_form_with_the_results_it_got():
    core, coverage = observed_modem()
    assert core.command("AT") == b"\r\nOK\r\n"
    assert core.command("AT+CMEE=1") == b"\r\nOK\r\n"
    assert core.command('AT+QFDEL="missing.txt"') == b"\r\n+CME ERROR: 405\r\n"
    assert core.command('AT+QFDEL="missing.txt"') == b"\r\n+CME ERROR: 405\r\n"
    assert core.command("AT+QIACT?").endswith(b"\r\nOK\r\n")
    assert core.command("AT+QIACT=1") == b"\r\nOK\r\n"
    assert core.command("AT+QIACT=1") == b"\r\nERROR\r\n"  # active already (561)
    assert core.command("ATS0?") == b"\r\n000\r\n\r\nOK\r\n"
    assert core.command("ATS99=1") == b"\r\nERROR\r\n"
    assert results(coverage) == {
        "AT": (1, {"OK": 1}, True),
        "AT+CMEE=": (1, {"OK": 1}, True),
        "AT+QFDEL=": (2, {"+CME ERROR: 405": 2}, True),
        "AT+QIACT?": (1, {"OK": 1}, True),
        "AT+QIACT=": (2, {"OK": 1, "ERROR": 1}, True),
        "ATS0?": (1, {"OK": 1}, True),
        "ATS99=": (1, {"ERROR": 1}, False),
    }
    assert coverage.lines == 9


def test_a_line_of_several_commands_counts_each_and_stops_at_the_first_unknown_one():
    core, coverage = observed_modem()
    assert core.command('AT+CMEE=2;+QSSLCFG="sni",1,1;E0') == b"\r\nOK\r\n"
    assert core.command("AT+CGMM;+QFOO=1;+CGMI") == b"\r\nEC200M\r\n\r\nERROR\r\n"
    assert results(coverage) == {
        "AT+CGMI": (1, {NOT_RUN: 1}, True),
        "AT+CGMM": (1, {"OK": 1}, True),
        "AT+CMEE=": (1, {"OK": 1}, True),
        "AT+QFOO=": (1, {"ERROR": 1}, False),
        "AT+QSSLCFG=": (1, {"OK": 1}, True),
        "ATE": (1, {"OK": 1}, True),
    }


def test_a_failure_among_implemented_commands_counts_on_the_line_s_last_command():
    """The documented rule: the observations do not tell which implemented command failed."""
    core, coverage = observed_modem()
    assert core.command('AT+CMEE=1;+QFDEL="missing.txt"') == b"\r\n+CME ERROR: 405\r\n"
    assert results(coverage) == {"AT+CMEE=": (1, {"OK": 1}, True),
                                 "AT+QFDEL=": (1, {"+CME ERROR: 405": 1}, True)}


def test_refused_and_unparsable_lines_and_lines_left_without_a_result():
    core, coverage = observed_modem()
    assert core.command("hello") == b"\r\nERROR\r\n"
    assert core.command('AT+QSSLCFG="sni') == b"\r\nERROR\r\n"  # unterminated string
    coverage.observe("command", {"line": b"AT+QSSLCLOSE=0"})  # the module restarted under it
    coverage.observe("command", {"line": b"AT+QSSLCLOSE=0"})
    coverage.observe("result", {"text": "OK"})
    assert results(coverage) == {
        REFUSED_LINE: (1, {"ERROR": 1}, True),
        UNPARSABLE_LINE: (1, {"ERROR": 1}, True),
        "AT+QSSLCLOSE=": (2, {"OK": 1, NO_RESULT: 1}, True),
    }


def test_the_table_marks_what_is_not_implemented_and_names_urcs_tls_and_faults():
    coverage = Coverage()
    for kind, details in [
        ("command", {"line": "AT+QSSLOPEN=1,1,0,\"x\",1,0"}), ("result", {"text": "OK"}),
        ("urc", {"lines": ['+QSSLURC: "recv",0,5', "hello"]}), ("urc", {"lines": ["+QIND: PB DONE"]}),
        ("urc", {"lines": [b'+QSSLURC: "recv",0']}),
        ("tls", {"client": 0, "event": "failed", "detail": "certificate verify failed"}),
        ("fault", {"name": "server-close", "args": {}}),
        ("command", {"line": "AT+QFTPOPEN=\"x\",1"}), ("result", {"text": "ERROR"}),
    ]:
        coverage.observe(kind, details)
    assert coverage.render() == [
        "ecemu coverage: 2 command lines, 2 commands, 1 not implemented by the emulator",
        "  command       count  results",
        "  AT+QFTPOPEN=      1  ERROR 1  << NOT IMPLEMENTED",
        "  AT+QSSLOPEN=      1  OK 1",
        "not implemented: AT+QFTPOPEN=",
        'URCs: +QSSLURC: "recv" 2, +QIND 1',
        "TLS: failed: certificate verify failed 1",
        "faults: server-close 1",
    ]


def test_merged_adds_modems_up_and_a_trace_pairs_each_modem_s_lines_with_its_results():
    lines = [
        '{"t": 0.1, "modem": 0, "kind": "command", "line": "AT+CSQ"}',
        '{"t": 0.1, "modem": 1, "kind": "command", "line": "AT+FOO"}',
        '{"t": 0.2, "modem": 1, "kind": "result", "text": "ERROR"}',
        "not json at all",
        '["a list"]',
        '{"t": "soon", "modem": [0], "kind": "urc", "lines": "RDY"}',
        '{"t": 0.3, "modem": 0, "kind": "result", "text": "OK"}',
        '{"t": 0.4, "modem": 0, "kind": "result"',  # a last line cut short
    ]
    coverage = coverage_of_trace(read_entries(lines))
    assert results(coverage) == {"AT+CSQ": (1, {"OK": 1}, True), "AT+FOO": (1, {"ERROR": 1}, False)}
    assert coverage.urcs == {"RDY": 1}
    assert not Coverage().seen and coverage.seen
    assert Coverage().render() == ["ecemu coverage: no command line"]


def test_the_table_stays_bounded_whatever_names_a_host_sends():
    coverage = Coverage()
    for n in range(ROWS_MAX + 50):
        coverage.observe("command", {"line": f"AT+X{n}".encode()})
        coverage.observe("result", {"text": "ERROR"})
        coverage.observe("urc", {"lines": [f"+U{n}: 1"]})
    assert len(coverage.uses) == ROWS_MAX + 1 and len(coverage.urcs) == ROWS_MAX + 1
    more = coverage.rows()[-1]
    assert (more.command.key, more.count, dict(more.results)) == (MORE_ROWS, 50, {"ERROR": 50})
    assert coverage.urcs[MORE_ROWS] == 50 and coverage.lines == ROWS_MAX + 50


def test_ecemu_run_prints_the_table_on_exit_and_trace_summary_prints_it_from_the_trace(tmp_path):
    trace = tmp_path / "trace.jsonl"
    emulator = RunningEmulator("--trace", str(trace))
    try:
        emulator.wait_for_boot()
        with AtHost(emulator.port) as host:
            assert host.ask("AT+CMEE=1;+CGMM").endswith(b"EC200M\r\n\r\nOK\r\n")
            assert host.ask("AT+QGPS=1").endswith(b"\r\nERROR\r\n")
            assert host.ask("AT+QFDEL=\"none\"").endswith(b"\r\n+CME ERROR: 405\r\n")
    finally:
        log = stopped_log(emulator)
    expected = example("coverage").splitlines()  # the README's table is this session's
    start = log.index(expected[0])
    assert log[start:start + len(expected)] == expected
    assert log[start + len(expected)].startswith("URCs: ")

    summary = subprocess.run([sys.executable, "-m", "ecemu", "trace", str(trace), "--summary"],
                             check=True, capture_output=True, text=True, timeout=30).stdout.splitlines()
    assert summary[:len(expected)] == expected


def test_ecemu_run_prints_nothing_when_no_command_came():
    emulator = RunningEmulator()
    emulator.wait_for_boot()
    log = stopped_log(emulator)
    assert not any("coverage" in line for line in log)


def test_the_plugin_s_terminal_summary_shows_what_the_tests_sent(pytester):
    pytester.makepyfile("""
        import serial

        def test_one(ecemu_modem):
            with serial.Serial(ecemu_modem.port, 115200, timeout=5) as port:
                port.write(b"AT+CGMM;+QFTPSIZE=80\\r")
                assert port.read_until(b"ERROR\\r\\n").endswith(b"EC200M\\r\\n\\r\\nERROR\\r\\n")

        def test_two(ecemu_modem):
            with serial.Serial(ecemu_modem.port, 115200, timeout=5) as port:
                port.write(b"AT+CGMM\\r")
                assert port.read_until(b"OK\\r\\n").endswith(b"OK\\r\\n")

        def test_without_a_modem():
            pass
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([
        "*= ecemu coverage =*",
        "commands the tests sent: 2 command lines, 3 commands, 1 not implemented by the emulator",
        "  command       count  results",
        "  AT+CGMM           2  OK 2",
        "  AT+QFTPSIZE=      1  ERROR 1  << NOT IMPLEMENTED",
        "not implemented: AT+QFTPSIZE=",
    ])


def test_the_plugin_prints_no_table_when_its_modems_saw_no_command(pytester):
    pytester.makepyfile("""
        def test_idle(ecemu_modem):
            assert ecemu_modem.port
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "ecemu coverage" not in result.stdout.str()
