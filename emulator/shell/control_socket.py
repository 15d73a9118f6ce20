"""The local control socket: a Unix socket, owner-only, speaking one JSON object per line.

Request:  {"op": "signal", "args": {"rssi": 5}}
Answer:   {"ok": true, "result": null}   or   {"ok": false, "error": "..."}
"""

from __future__ import annotations

import asyncio
import json
import math
import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any


class ControlError(Exception):
    """An operation that cannot be carried out as asked; the message says why."""


if TYPE_CHECKING:
    from .runner import ModemRunner

log = logging.getLogger(__name__)

MAX_REQUEST = 64 * 1024


class ControlServer:
    def __init__(self, path: Path, runner: "ModemRunner"):
        self.path = Path(path)
        self.runner = runner
        self._server: asyncio.AbstractServer | None = None

    def start(self) -> None:
        """Bind now (so the path can be announced at once) and serve on the running loop."""
        if self.path.exists() or self.path.is_symlink():
            if not self.path.is_socket():
                raise FileExistsError(f"{self.path} exists and is not a socket")
            self.path.unlink()  # left over from a run that did not end cleanly
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket is created owner-only, never briefly open to others
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        sock.listen(8)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._serve(sock))

    async def _serve(self, sock: socket.socket) -> None:
        self._server = await asyncio.start_unix_server(self._client, sock=sock, limit=MAX_REQUEST)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except (asyncio.LimitOverrunError, ValueError):
                    writer.write(_encode({"ok": False, "error": "request too long"}))
                    break
                if not line:
                    break
                answer = self.handle(line)
                if isinstance(answer, asyncio.Future):  # an operation that waits (wait-ri)
                    answer = await self._outcome(answer)
                writer.write(_encode(answer))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    @staticmethod
    async def _outcome(future: asyncio.Future) -> dict[str, Any]:
        try:
            return {"ok": True, "result": await future}
        except ControlError as exc:
            return {"ok": False, "error": str(exc)}

    def handle(self, line: bytes) -> "dict[str, Any] | asyncio.Future":
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("op"), str):
                raise ControlError('a request is {"op": NAME, "args": {...}}')
            args = request.get("args") or {}
            if not isinstance(args, dict):
                raise ControlError("args must be an object")
            controller = self.runner.controller
            if controller is None:
                raise ControlError("this emulator has no control interface")
            result = controller.invoke(request["op"], args)
            if isinstance(result, asyncio.Future):
                return result
            return {"ok": True, "result": result}
        except json.JSONDecodeError as exc:
            return {"ok": False, "error": f"not JSON: {exc}"}
        except ControlError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # a fault must never take the emulator down
            log.exception("control operation failed")
            return {"ok": False, "error": f"internal error: {exc}"}

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        try:
            if self.path.is_socket():
                self.path.unlink()
        except OSError:
            pass


def _encode(answer: dict[str, Any]) -> bytes:
    return (json.dumps(answer) + "\n").encode()


def request(path: Path, op: str, args: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """One request to a running emulator's control socket (used by ``ecemu ctl``); an operation
    that waits (``seconds``) gets that much longer."""
    try:
        waits = float(args.get("seconds", 0))
    except (TypeError, ValueError):
        waits = 0.0
    if math.isfinite(waits) and waits > 0:
        timeout += min(waits, 3600.0)  # an operation's longest wait (its bound)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(_encode({"op": op, "args": args}))
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)
