"""HTTP(S) through the real pty against real servers on 127.0.0.1 (``ecemu.http_server``): the HTTP
note's GET and POST flows, HTTPS with verification on (one TLS path with AT+QSSLOPEN), a 1 MB
download byte for byte, header modes, files, and each error code from its real cause."""

from __future__ import annotations

import socket
import time

import pytest

from ecemu.api import Emulator
from ecemu.http_server import HttpTestServer, body_bytes
from tests.host import AtHost
from tests.wire import OK


@pytest.fixture
def host(start_modem):
    """Echo on, context 1 active; the host waits 30 s at most (AT+QHTTPGET's own wait is longer)."""
    return start_modem(active=True, timeout=30)[1]


@pytest.fixture(scope="module")
def http_server():
    with HttpTestServer() as server:
        yield server


@pytest.fixture(scope="module")
def https_server():
    with HttpTestServer(tls=True) as server:
        yield server


said = AtHost.said
set_url = AtHost.set_http_url


def urc(host: AtHost, text: str) -> None:
    wanted = b"\r\n" + text.encode() + b"\r\n"
    assert host.expect(wanted).endswith(wanted)


def read_body(host: AtHost, expected_length: int) -> bytes:
    """AT+QHTTPREAD=80: CONNECT, the body, OK, +QHTTPREAD: 0; the body."""
    assert host.ask("AT+QHTTPREAD=80", final=b"CONNECT\r\n") == b"AT+QHTTPREAD=80\r\r\nCONNECT\r\n"
    body = host.read_exactly(expected_length, timeout=60)
    assert host.until_final() == OK
    urc(host, "+QHTTPREAD: 0")
    return body


def test_get_as_the_note_shows_it(host, http_server):
    assert said(host, 'AT+QHTTPCFG="contextid",1') == OK
    assert said(host, 'AT+QHTTPCFG="contextid"') == b'\r\n+QHTTPCFG: "contextid",1\r\n' + OK
    set_url(host, f"{http_server.url}/index.html")
    assert said(host, "AT+QHTTPGET=80") == OK
    text = b"Hello from ecemu: /index.html\n"
    urc(host, f"+QHTTPGET: 0,200,{len(text)}")
    assert read_body(host, len(text)) == text
    seen = http_server.requests[-1]
    assert (seen.method, seen.path) == ("GET", "/index.html")
    assert seen.headers["Host"] == f"127.0.0.1:{http_server.port}"
    assert said(host, "AT+QHTTPREAD=80") == b"\r\n+CME ERROR: 705\r\n"  # read once


def test_https_download_of_1_mb_is_byte_exact_with_verification_on(host, https_server):
    assert host.upload("cacert.pem", https_server.ca_pem).endswith(OK)
    for line in ('AT+QHTTPCFG="sslctxid",1', 'AT+QSSLCFG="sslversion",1,4', 'AT+QSSLCFG="ciphersuite",1,0XFFFF',
                 'AT+QSSLCFG="seclevel",1,1', 'AT+QSSLCFG="cacert",1,"UFS:cacert.pem"'):
        assert said(host, line) == OK
    size = 1 << 20
    set_url(host, f"https://localhost:{https_server.port}/bytes/{size}")
    assert said(host, "AT+QHTTPGET=80") == OK
    urc(host, f"+QHTTPGET: 0,200,{size}")
    assert read_body(host, size) == body_bytes(size)


def test_https_refuses_a_certificate_for_another_name(host, https_server):
    assert host.upload("cacert.pem", https_server.ca_pem).endswith(OK)
    for line in ('AT+QSSLCFG="seclevel",1,1', 'AT+QSSLCFG="cacert",1,"UFS:cacert.pem"'):
        assert said(host, line) == OK
    # Before the request leaves, every failure is the command's own 716 (REFERENCE.md "HTTP(S)
    # failures": an EG800K answers an unresolvable name so).
    set_url(host, f"https://no-such-host.invalid:{https_server.port}/")
    assert said(host, "AT+QHTTPGET=80") == b"\r\n+CME ERROR: 716\r\n"  # that name does not resolve
    with HttpTestServer(tls=True, cert="server-wronghost") as wrong:
        set_url(host, f"https://localhost:{wrong.port}/")
        assert said(host, "AT+QHTTPGET=80") == b"\r\n+CME ERROR: 716\r\n"  # its certificate is refused
        assert wrong.requests == []


def test_post_sends_the_body_and_the_content_type(host, http_server):
    assert said(host, 'AT+QHTTPCFG="contenttype",4') == OK
    set_url(host, f"{http_server.url}/api/post")
    body = b'{"temperature": 21.5}'
    line = f"AT+QHTTPPOST={len(body)},80,80"
    assert host.ask(line, final=b"CONNECT\r\n") == line.encode() + b"\r\r\nCONNECT\r\n"
    host.write(body)
    assert host.until_final() == OK
    urc(host, f"+QHTTPPOST: 0,200,{len(body)}")
    assert read_body(host, len(body)) == body
    seen = http_server.requests[-1]
    assert (seen.method, seen.path, seen.body) == ("POST", "/api/post", body)
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["Content-Length"] == str(len(body))


def test_response_header_and_request_header_modes(host, http_server):
    assert said(host, 'AT+QHTTPCFG="responseheader",1') == OK
    assert said(host, 'AT+QHTTPCFG="requestheader",1') == OK
    set_url(host, f"{http_server.url}/ignored")
    request = (f"GET /custom HTTP/1.1\r\nHost: 127.0.0.1:{http_server.port}\r\nX-Device: 42\r\n\r\n").encode()
    line = f"AT+QHTTPGET=80,{len(request)}"
    assert host.ask(line, final=b"CONNECT\r\n") == line.encode() + b"\r\r\nCONNECT\r\n"
    host.write(request)
    assert host.until_final() == OK
    text = b"Hello from ecemu: /custom\n"
    urc(host, f"+QHTTPGET: 0,200,{len(text)}")
    assert host.ask("AT+QHTTPREAD=80", final=b"CONNECT\r\n").endswith(b"CONNECT\r\n")
    answer = host.until_final()
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\n" + text + OK)
    assert b"Content-Length: 26\r\n" in answer
    urc(host, "+QHTTPREAD: 0")
    assert http_server.requests[-1].headers["X-Device"] == "42"


@pytest.mark.parametrize("path", ["chunked/100000", "close/70000"])
def test_bodies_without_a_length(host, http_server, path):
    size = int(path.split("/")[1])
    set_url(host, f"{http_server.url}/{path}")
    assert said(host, "AT+QHTTPGET=80") == OK
    urc(host, "+QHTTPGET: 0,200")
    assert read_body(host, size) == body_bytes(size)


def test_files_up_and_down(host, http_server):
    payload = bytes(range(256)) * 40
    assert host.upload("post.bin", payload).endswith(OK)
    set_url(host, f"{http_server.url}/upload")
    assert said(host, 'AT+QHTTPPOSTFILE="UFS:post.bin",80') == OK
    urc(host, f"+QHTTPPOSTFILE: 0,200,{len(payload)}")
    assert http_server.requests[-1].body == payload
    assert said(host, 'AT+QHTTPREADFILE="UFS:back.bin",80') == OK
    urc(host, "+QHTTPREADFILE: 0")
    answer = said(host, 'AT+QFLST="back.bin"')
    assert answer == f'\r\n+QFLST: "UFS:back.bin",{len(payload)}\r\n'.encode() + OK


def test_error_codes_from_their_causes(host, http_server):
    assert said(host, "AT+QHTTPGET=80") == b"\r\n+CME ERROR: 712\r\n"  # no URL yet
    assert said(host, "AT+QHTTPREAD=80") == b"\r\n+CME ERROR: 705\r\n"  # no request
    set_url(host, "ftp://127.0.0.1/file")
    assert said(host, "AT+QHTTPGET=80") == b"\r\n+CME ERROR: 711\r\n"
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    set_url(host, f"http://127.0.0.1:{closed_port}/")
    assert said(host, "AT+QHTTPGET=80") == b"\r\n+CME ERROR: 716\r\n"  # refused
    set_url(host, f"{http_server.url}/status/404")
    assert said(host, "AT+QHTTPGET=80") == OK
    urc(host, "+QHTTPGET: 0,404,11")
    assert read_body(host, 11) == b"status 404\n"  # (a GET while it still arrived would be 703, busy)
    assert said(host, 'AT+QHTTPCFG="contextid",2') == OK
    assert said(host, "AT+QHTTPGET=80") == b"\r\n+CME ERROR: 709\r\n"  # context 2 is not active
    assert said(host, 'AT+QHTTPCFG="contenttype",9') == b"\r\n+CME ERROR: 730\r\n"
    assert said(host, "AT+QHTTPSTOP") == OK


def test_a_server_reset_during_a_download_ends_the_read_with_717(tmp_path, http_server):
    with Emulator(ufs=tmp_path / "ufs") as running:
        running.wait_for_boot()
        with AtHost(running.port, timeout=30) as host:
            assert host.ask("AT+QIACT=1") == b"AT+QIACT=1\r" + OK
            size = 4_000_000  # far more than the module buffers: the server waits for the host
            set_url(host, f"{http_server.url}/bytes/{size}")
            assert said(host, "AT+QHTTPGET=80") == OK
            urc(host, f"+QHTTPGET: 0,200,{size}")
            # Once the module holds part of the body (a condition, polled up to a deadline) ...
            deadline = time.monotonic() + 10
            while running.call(lambda runner: len(runner.modem.families["http"].response.body)) == 0:
                assert time.monotonic() < deadline, "no body arrived"
                time.sleep(0.01)
            running.control.server_reset(client=0, family="http")  # `ecemu ctl server-reset ... family=http`
            assert host.ask("AT+QHTTPREAD=80", final=b"CONNECT\r\n").endswith(b"CONNECT\r\n")
            answer = host.expect(b"\r\n+QHTTPREAD: 717\r\n")
            body = answer[: -len(b"\r\nOK\r\n\r\n+QHTTPREAD: 717\r\n")]
            assert answer.endswith(b"\r\nOK\r\n\r\n+QHTTPREAD: 717\r\n")
            assert 0 < len(body) < size and body == body_bytes(len(body))
