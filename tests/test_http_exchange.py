"""The HTTP exchange's steps in the sans-IO core: a step the exchange's table does not allow raises
and leaves the request as it was, so it still ends as the HTTP note says."""

from __future__ import annotations

import pytest

from ecemu.core import events as ev
from ecemu.core.lifecycle import IllegalTransition
from tests.harness import CoreHarness, no_internal_errors
from tests.wire import OK


def test_reading_a_response_that_is_not_there_raises_and_the_request_goes_on():
    with no_internal_errors():
        h = CoreHarness()
        assert h.command("AT+QIACT=1") == OK
        url = "http://example.com/"
        assert h.command(f"AT+QHTTPURL={len(url)},10") == b"\r\nCONNECT\r\n"
        assert h.send(url.encode()) == OK
        assert h.command("AT+QHTTPGET=5") == b""
        [open_tcp] = h.take_effects()
        assert isinstance(open_tcp, ev.OpenTcp)
        http = h.modem.families["http"]
        with pytest.raises(IllegalTransition, match="'read' is not allowed"):
            http.read_over()  # nothing has been received, let alone read
        h.event(ev.TcpConnected(open_tcp.conn_id, "10.0.0.9", open_tcp.port, 40000))
        with pytest.raises(IllegalTransition, match="'read' is not allowed"):
            http.read_over()  # the request has left; no answer yet
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
        # HTTP note 2.3.3: OK, then +QHTTPGET: <err>,<httprspcode>,<content_length>; 2.3.6: the read
        assert h.event(ev.TcpData(open_tcp.conn_id, answer)) == OK + b"\r\n+QHTTPGET: 0,200,2\r\n"
        assert h.command("AT+QHTTPREAD") == b"\r\nCONNECT\r\nhi\r\nOK\r\n\r\n+QHTTPREAD: 0\r\n"
        with pytest.raises(IllegalTransition, match="'read' is not allowed"):
            http.read_over()  # read once already
