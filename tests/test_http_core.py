"""The HTTP(S) family in the sans-IO core, on the module's clock: the request's bytes, every timeout
(<rsptime>, <wait_time>, <input_time>, the URL's <timeout>), a server or the network going at each
stage, busy, and flow control of a large body. The server is played by the test over plain TCP."""

from __future__ import annotations

import pytest

from ecemu.core import events as ev
from tests.harness import CoreHarness, no_internal_errors
from tests.wire import OK


def sent(h: CoreHarness) -> bytes:
    return b"".join(e.data for e in h.take_effects() if isinstance(e, ev.SendTcp))


@pytest.fixture
def h():
    with no_internal_errors():
        harness = CoreHarness()
        assert harness.command("AT+QIACT=1") == OK
        yield harness


def set_url(h: CoreHarness, url: str) -> None:
    assert h.command(f"AT+QHTTPURL={len(url)},10") == b"\r\nCONNECT\r\n"
    assert h.send(url.encode()) == OK


def get(h: CoreHarness, url: str = "http://example.com/path?q=1", rsptime: int = 5) -> int:
    """AT+QHTTPGET sent and connected, its answer held until the server answers (REFERENCE.md
    "HTTP(S) failures"); the connection's id."""
    set_url(h, url)
    assert h.command(f"AT+QHTTPGET={rsptime}") == b""
    [open_tcp] = h.take_effects()
    assert isinstance(open_tcp, ev.OpenTcp)
    assert h.event(ev.TcpConnected(open_tcp.conn_id, "10.0.0.9", open_tcp.port, 40000)) == b""
    return open_tcp.conn_id


def test_the_request_as_it_goes_on_the_wire(h):
    assert h.command('AT+QHTTPCFG="auth","user:pw"') == OK
    conn = get(h)
    assert sent(h) == (b"GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n"
                       b"User-Agent: QUECTEL_MODULE\r\nAuthorization: Basic dXNlcjpwdw==\r\n\r\n")
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    assert h.event(ev.TcpData(conn, answer)) == OK + b"\r\n+QHTTPGET: 0,200,5\r\n"
    assert any(isinstance(e, ev.CloseTcp) for e in h.take_effects())  # the response is whole
    assert h.command("AT+QHTTPREAD") == b"\r\nCONNECT\r\nhello\r\nOK\r\n\r\n+QHTTPREAD: 0\r\n"


def test_no_response_within_rsptime_is_702(h):
    get(h, rsptime=5)
    assert h.advance(4.9) == b""
    assert h.advance(0.1) == OK + b"\r\n+QHTTPGET: 702\r\n"  # it left: OK, then the URC
    assert any(isinstance(e, ev.CloseTcp) for e in h.take_effects())


def test_a_second_request_while_one_runs_is_busy(h):
    conn = get(h)
    assert h.event(ev.TcpData(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")) == (
        OK + b"\r\n+QHTTPGET: 0,200,10\r\n")
    assert h.command("AT+QHTTPGET=5") == b"\r\n+CME ERROR: 703\r\n"  # its body still comes
    assert h.command("AT+QHTTPURL=5") == b"\r\n+CME ERROR: 703\r\n"
    assert h.command("AT+QHTTPSTOP") == OK
    assert h.command("AT+QHTTPREAD") == b"\r\n+CME ERROR: 705\r\n"


@pytest.mark.parametrize("reset, code", [(False, 719), (True, 719)])
def test_server_closing_before_answering(h, reset, code):
    conn = get(h)
    assert h.event(ev.TcpClosed(conn, reset=reset)) == OK + f"\r\n+QHTTPGET: {code}\r\n".encode()


def test_server_breaking_off_the_body_ends_the_read_with_717(h):
    conn = get(h)
    h.event(ev.TcpData(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"))
    assert h.command("AT+QHTTPREAD=30") == b"\r\nCONNECT\r\nabc"  # and it waits for the rest
    assert h.event(ev.TcpData(conn, b"de")) == b"de"
    assert h.event(ev.TcpClosed(conn, reset=True)) == b"\r\nOK\r\n\r\n+QHTTPREAD: 717\r\n"


def test_a_body_that_does_not_end_within_wait_time_is_722(h):
    conn = get(h)
    h.event(ev.TcpData(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"))
    assert h.command("AT+QHTTPREAD=3") == b"\r\nCONNECT\r\nabc"
    assert h.advance(3) == b"\r\nOK\r\n\r\n+QHTTPREAD: 722\r\n"


def test_the_network_dropping_the_context_is_709(h):
    get(h)
    h.modem.families["pdp"].network_drop(1)
    assert b"\r\n+QHTTPGET: 709\r\n" in h.take_output()


def test_not_http_is_721(h):
    conn = get(h)
    assert h.event(ev.TcpData(conn, b"SSH-2.0-OpenSSH\r\n\r\n")) == OK + b"\r\n+QHTTPGET: 721\r\n"


def test_url_and_post_body_input_timeouts_are_726(h):
    assert h.command("AT+QHTTPURL=20,2") == b"\r\nCONNECT\r\n"
    assert h.send(b"http://exa") == b""
    assert h.advance(2) == b"\r\n+CME ERROR: 726\r\n"
    set_url(h, "http://example.com/p")
    assert h.command("AT+QHTTPPOST=10,3,5") == b""  # it connects before it says CONNECT
    [open_tcp] = h.take_effects()
    assert h.event(ev.TcpConnected(open_tcp.conn_id, "10.0.0.9", 80, 40000)) == b"\r\nCONNECT\r\n"
    assert h.send(b"12345") == b""
    assert h.advance(3) == b"\r\n+CME ERROR: 726\r\n"
    assert any(isinstance(e, ev.CloseTcp) for e in h.take_effects())


def test_a_server_closing_while_the_host_sends_the_body_answers_at_the_body_s_end(h):
    """The body entry runs to its length; then the command answers the loss (719, "socket
    closed", the HTTP note's table), and nothing is sent."""
    set_url(h, "http://example.com/p")
    assert h.command("AT+QHTTPPOST=5,3,5") == b""
    [open_tcp] = h.take_effects()
    assert h.event(ev.TcpConnected(open_tcp.conn_id, "10.0.0.9", 80, 40000)) == b"\r\nCONNECT\r\n"
    assert h.send(b"12") == b""
    assert h.event(ev.TcpClosed(open_tcp.conn_id)) == b""
    assert h.send(b"345") == b"\r\n+CME ERROR: 719\r\n"
    assert sent(h) == b""
    assert h.command("AT") == OK


def test_post_connect_failure_answers_the_command(h):
    set_url(h, "http://example.com/p")
    assert h.command("AT+QHTTPPOST=10") == b""
    [open_tcp] = h.take_effects()
    assert h.event(ev.TcpConnectFailed(open_tcp.conn_id, "refused")) == b"\r\n+CME ERROR: 716\r\n"
    # A name that does not resolve: the command's own 716, no OK (an EG800K, REFERENCE.md
    # "HTTP(S) failures").
    set_url(h, "http://nowhere.invalid/")
    assert h.command("AT+QHTTPGET") == b""
    [open_tcp] = h.take_effects()
    assert h.event(ev.TcpConnectFailed(open_tcp.conn_id, "dns")) == b"\r\n+CME ERROR: 716\r\n"


def test_post_sends_body_with_its_headers(h):
    assert h.command('AT+QHTTPCFG="contenttype",1') == OK
    set_url(h, "http://example.com:8080/p")
    h.command("AT+QHTTPPOST=5")
    [open_tcp] = h.take_effects()
    h.event(ev.TcpConnected(open_tcp.conn_id, "10.0.0.9", 8080, 40000))
    assert h.send(b"a=1&b") == OK
    assert sent(h) == (b"POST /p HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\n"
                       b"User-Agent: QUECTEL_MODULE\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\na=1&b")
    assert h.event(ev.TcpData(open_tcp.conn_id, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")) == (
        b"\r\n+QHTTPPOST: 0,201,0\r\n")


def test_a_large_body_pauses_the_socket_until_read(h):
    conn = get(h)
    limit = h.modem.profile.limits.recv_buffer
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {3 * limit}\r\n\r\n".encode()
    h.event(ev.TcpData(conn, head + b"x" * limit))
    assert ev.PauseReading(conn) in h.take_effects()
    answer = h.command("AT+QHTTPREAD")
    assert answer == b"\r\nCONNECT\r\n" + b"x" * limit
    assert ev.ResumeReading(conn) in h.take_effects()
    assert h.event(ev.TcpData(conn, b"y" * (2 * limit))) == b"y" * (2 * limit) + b"\r\nOK\r\n\r\n+QHTTPREAD: 0\r\n"


def test_a_cr_lf_host_s_lf_is_not_part_of_the_url_or_the_body(h):
    url = b"http://example.com/x"
    assert h.send(b"AT+QHTTPURL=%d,10\r\n" % len(url)) == b"\r\nCONNECT\r\n"
    assert h.send(url) == OK
    assert h.modem.families["http"].url == url.decode()
    assert h.send(b"AT+QHTTPPOST=4\r\n") == b""
    [open_tcp] = h.take_effects()
    assert h.event(ev.TcpConnected(open_tcp.conn_id, "10.0.0.9", 80, 40000)) == b"\r\nCONNECT\r\n"
    assert h.send(b"bo") == b""
    assert h.send(b"dy") == OK
    assert sent(h).endswith(b"\r\n\r\nbody")


# --- when a failure is told, redirects, AT+QHTTPGETEX (REFERENCE.md "HTTP(S) failures") -----------


def answer_with(h: CoreHarness, conn: int, head: bytes) -> bytes:
    return h.event(ev.TcpData(conn, head))


def opened(h: CoreHarness) -> ev.OpenTcp:
    [open_tcp] = [e for e in h.take_effects() if isinstance(e, ev.OpenTcp)]
    return open_tcp


def test_a_failure_before_the_request_leaves_is_the_commands_own_error(h):
    set_url(h, "http://example.com/")
    assert h.command("AT+QHTTPGET=5") == b""
    assert h.event(ev.TcpConnectFailed(opened(h).conn_id, "refused")) == b"\r\n+CME ERROR: 716\r\n"
    assert h.command("AT+QHTTPGET=5") == b""
    assert h.event(ev.TcpConnectFailed(opened(h).conn_id, "timeout")) == b"\r\n+CME ERROR: 716\r\n"
    assert h.command("AT+QHTTPGET=5") == b""
    opened(h)
    assert h.advance(5) == b"\r\n+CME ERROR: 702\r\n"  # rsptime passed before it connected
    assert h.command("AT+QHTTPREAD") == b"\r\n+CME ERROR: 705\r\n"  # as an EG800K after 716


def test_an_absolute_location_is_followed_on_a_new_connection(h):
    conn = get(h, "http://example.com/a")
    sent(h)
    head = b"HTTP/1.1 302 Found\r\nLocation: http://other.example:8080/b?c=1\r\nContent-Length: 0\r\n\r\n"
    assert answer_with(h, conn, head) == b""  # the command still holds its answer
    assert any(isinstance(e, ev.CloseTcp) and e.conn_id == conn for e in h.take_effects())
    assert h.advance(0) == b""
    follow = opened(h)
    assert (follow.host, follow.port) == ("other.example", 8080)
    h.event(ev.TcpConnected(follow.conn_id, "10.0.0.10", 8080, 40001))
    assert sent(h).startswith(b"GET /b?c=1 HTTP/1.1\r\nHost: other.example:8080\r\n")
    assert answer_with(h, follow.conn_id, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") == (
        OK + b"\r\n+QHTTPGET: 0,200,2\r\n")
    assert h.command("AT+QHTTPREAD") == b"\r\nCONNECT\r\nok\r\nOK\r\n\r\n+QHTTPREAD: 0\r\n"


@pytest.mark.parametrize("location", [b"/get", b"other/page", b"ftp://example.com/file"])
def test_a_location_that_is_not_an_absolute_http_url_is_711(h, location):
    conn = get(h)
    head = b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n"
    assert answer_with(h, conn, head) == b"\r\n+CME ERROR: 711\r\n"
    assert any(isinstance(e, ev.CloseTcp) for e in h.take_effects())
    assert h.command("AT") == OK


def test_redirects_stop_after_five(h):
    conn = get(h, "http://example.com/0")
    for hop in range(1, 7):
        head = f"HTTP/1.1 301 Moved\r\nLocation: http://example.com/{hop}\r\n\r\n".encode()
        out = answer_with(h, conn, head)
        if hop == 6:
            assert out == b"\r\n+CME ERROR: 711\r\n"
            break
        assert out == b"" and h.advance(0) == b""
        conn = opened(h).conn_id
        h.event(ev.TcpConnected(conn, "10.0.0.9", 80, 40000 + hop))


def test_a_redirect_without_location_and_a_post_are_answers(h):
    conn = get(h)
    assert answer_with(h, conn, b"HTTP/1.1 304 Not Modified\r\n\r\n") == OK + b"\r\n+QHTTPGET: 0,304\r\n"
    set_url(h, "http://example.com/p")
    h.command("AT+QHTTPPOST=1")
    post = opened(h)
    h.event(ev.TcpConnected(post.conn_id, "10.0.0.9", 80, 40002))
    assert h.send(b"x") == OK
    head = b"HTTP/1.1 302 Found\r\nLocation: http://example.com/q\r\nContent-Length: 0\r\n\r\n"
    assert answer_with(h, post.conn_id, head) == b"\r\n+QHTTPPOST: 0,302,0\r\n"


def test_getex_asks_for_the_range_and_answers_206(h):
    set_url(h, "http://example.com/range/16")
    assert h.command("AT+QHTTPGETEX=80,8,8") == b""
    first = opened(h)
    h.event(ev.TcpConnected(first.conn_id, "10.0.0.9", 80, 40000))
    assert sent(h) == (b"GET /range/16 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n"
                       b"User-Agent: QUECTEL_MODULE\r\nRange: bytes=8-15\r\n\r\n")
    head = b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 8-15/16\r\nContent-Length: 8\r\n\r\nijklmnop"
    assert answer_with(h, first.conn_id, head) == OK + b"\r\n+QHTTPGET: 0,206,8\r\n"
    assert h.command("AT+QHTTPREAD") == b"\r\nCONNECT\r\nijklmnop\r\nOK\r\n\r\n+QHTTPREAD: 0\r\n"


def test_getex_forms_and_refusals(h):
    assert h.command("AT+QHTTPGETEX=?") == b"\r\n+QHTTPGETEX: (1-65535),(0-2147483647),(1-2147483647)\r\n" + OK
    set_url(h, "http://example.com/")
    for bad in ("AT+QHTTPGETEX=80,-1,8", "AT+QHTTPGETEX=80,0,0", "AT+QHTTPGETEX=0,0,8"):
        assert h.command(bad) == b"\r\n+CME ERROR: 730\r\n", bad  # out of range (chosen: 730)
    for malformed in ("AT+QHTTPGETEX=80,0", "AT+QHTTPGETEX"):
        assert h.command(malformed) == b"\r\nERROR\r\n", malformed  # the family's malformed line
    assert h.command('AT+QHTTPCFG="requestheader",1') == OK
    assert h.command("AT+QHTTPGETEX=80,0,8") == b"\r\n+CME ERROR: 730\r\n"  # the note: requestheader 0 only


def test_reqheader_add_and_remove(h):
    # Host code for the EC800M adds its own fields with "reqheader/add" (a public EC800M Python
    # driver adds Content-Type and more this way); the EC200x/EG800K HTTP(S) note lists the setting.
    assert h.command('AT+QHTTPCFG="reqheader/add","Content-Type","image/jpeg"') == OK
    assert h.command('AT+QHTTPCFG="reqheader/add","X-Device","42"') == OK
    assert h.command('AT+QHTTPCFG="reqheader/add"') == (
        b'\r\n+QHTTPCFG: "reqheader/add","Content-Type","image/jpeg"\r\n'
        b'+QHTTPCFG: "reqheader/add","X-Device","42"\r\n' + OK)
    assert h.command('AT+QHTTPCFG="reqheader/remove","x-device"') == OK
    assert h.command('AT+QHTTPCFG="reqheader/remove","x-device"') == b"\r\n+CME ERROR: 730\r\n"
    assert h.command('AT+QHTTPCFG="reqheader/add","Bad:Name","1"') == b"\r\n+CME ERROR: 730\r\n"
    set_url(h, "http://example.com/p")
    h.command("AT+QHTTPPOST=2")
    post = opened(h)
    h.event(ev.TcpConnected(post.conn_id, "10.0.0.9", 80, 40000))
    assert h.send(b"hi") == OK
    assert sent(h) == (b"POST /p HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nUser-Agent: QUECTEL_MODULE\r\n"
                       b"Content-Length: 2\r\nContent-Type: image/jpeg\r\n\r\nhi")  # one Content-Type: the host's
