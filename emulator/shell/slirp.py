"""libslirp (the user-mode network engine QEMU and Podman use) through ctypes, on the asyncio loop.

One ``SlirpNetwork`` is one virtual Ethernet segment: the guest's frames go in with ``input``,
slirp's frames for the guest come out through ``on_frame``; every TCP or UDP flow the guest opens
becomes a socket of this machine, which slirp owns and polls. Its descriptors are watched with
``loop.add_reader``/``add_writer`` as slirp asks (``slirp_pollfds_fill``) and handed back to it
(``slirp_pollfds_poll``); its timers run on ``loop.call_at``.

ctypes rather than cffi: the binding is a dozen functions and two structures, the standard
library's ctypes reads them without a compiler or a new dependency. Debian's libslirp0 (4.7) is
the engine: ``apt-get install libslirp0``. Without it ``load()`` raises ``SlirpMissing`` and a data
call fails as without network service (commands/ppp.py), the log saying why.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import ipaddress
import logging
import select
import socket
from typing import Callable

log = logging.getLogger(__name__)

POLL_IN, POLL_OUT, POLL_PRI, POLL_ERR, POLL_HUP = 1, 2, 4, 8, 16
SLIRP_TIMEOUT_CAP_MS = 1000  # slirp lowers it to what its TCP timers need


class SlirpMissing(RuntimeError):
    pass


class _In6(ctypes.Structure):
    _fields_ = [("s6_addr", ctypes.c_uint8 * 16)]


class _Config(ctypes.Structure):
    """``SlirpConfig``, version 1 (libslirp.h)."""

    _fields_ = [
        ("version", ctypes.c_uint32),
        ("restricted", ctypes.c_int),
        ("in_enabled", ctypes.c_bool),
        ("vnetwork", ctypes.c_uint32),
        ("vnetmask", ctypes.c_uint32),
        ("vhost", ctypes.c_uint32),
        ("in6_enabled", ctypes.c_bool),
        ("vprefix_addr6", _In6),
        ("vprefix_len", ctypes.c_uint8),
        ("vhost6", _In6),
        ("vhostname", ctypes.c_char_p),
        ("tftp_server_name", ctypes.c_char_p),
        ("tftp_path", ctypes.c_char_p),
        ("bootfile", ctypes.c_char_p),
        ("vdhcp_start", ctypes.c_uint32),
        ("vnameserver", ctypes.c_uint32),
        ("vnameserver6", _In6),
        ("vdnssearch", ctypes.c_void_p),
        ("vdomainname", ctypes.c_char_p),
        ("if_mtu", ctypes.c_size_t),
        ("if_mru", ctypes.c_size_t),
        ("disable_host_loopback", ctypes.c_bool),
        ("enable_emu", ctypes.c_bool),
    ]


_SEND = ctypes.CFUNCTYPE(ctypes.c_ssize_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
_ERROR = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_void_p)
_CLOCK = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p)
_TIMER_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_TIMER_NEW = ctypes.CFUNCTYPE(ctypes.c_void_p, _TIMER_CB, ctypes.c_void_p, ctypes.c_void_p)
_TIMER_FREE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
_TIMER_MOD = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p)
_FD = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p)
_NOTIFY = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_ADD_POLL = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
_GET_REVENTS = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


class _Callbacks(ctypes.Structure):
    _fields_ = [
        ("send_packet", _SEND),
        ("guest_error", _ERROR),
        ("clock_get_ns", _CLOCK),
        ("timer_new", _TIMER_NEW),
        ("timer_free", _TIMER_FREE),
        ("timer_mod", _TIMER_MOD),
        ("register_poll_fd", _FD),
        ("unregister_poll_fd", _FD),
        ("notify", _NOTIFY),
    ]


_library: ctypes.CDLL | None = None


def load() -> ctypes.CDLL:
    """The engine; ``SlirpMissing`` saying what to install when it is not there."""
    global _library
    if _library is not None:
        return _library
    name = ctypes.util.find_library("slirp") or "libslirp.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise SlirpMissing(f"libslirp is not installed ({exc}); install it: apt-get install libslirp0") from None
    lib.slirp_new.restype = ctypes.c_void_p
    lib.slirp_new.argtypes = [ctypes.POINTER(_Config), ctypes.POINTER(_Callbacks), ctypes.c_void_p]
    lib.slirp_cleanup.argtypes = [ctypes.c_void_p]
    lib.slirp_input.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.slirp_pollfds_fill.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32), _ADD_POLL, ctypes.c_void_p]
    lib.slirp_pollfds_poll.argtypes = [ctypes.c_void_p, ctypes.c_int, _GET_REVENTS, ctypes.c_void_p]
    lib.slirp_version_string.restype = ctypes.c_char_p
    _library = lib
    return lib


def version() -> str:
    return load().slirp_version_string().decode()


def _address(text: str) -> int:
    """An IPv4 address as ``struct in_addr`` holds it: network byte order in memory."""
    return int.from_bytes(socket.inet_aton(text), "little")


class _Timer:
    def __init__(self, callback, opaque):
        self.callback = callback
        self.opaque = opaque
        self.handle: asyncio.TimerHandle | None = None


class SlirpNetwork:
    """One slirp instance on the running loop."""

    def __init__(self, network: str, gateway: str, on_frame: Callable[[bytes], None]):
        lib = self._lib = load()
        self.loop = asyncio.get_running_loop()
        self.on_frame = on_frame
        net = ipaddress.ip_network(network)
        config = self._config = _Config()
        config.version = 1
        config.restricted = 0
        config.in_enabled = True
        config.vnetwork = _address(str(net.network_address))
        config.vnetmask = _address(str(net.netmask))
        config.vhost = _address(gateway)
        config.in6_enabled = False
        config.vdhcp_start = _address(str(net.network_address + 200 if net.num_addresses > 256 else
                                          net.broadcast_address - 20))
        config.vnameserver = _address(str(net.broadcast_address - 2))
        config.if_mtu = 1500
        config.if_mru = 1500
        config.disable_host_loopback = False  # the gateway stands for this machine's 127.0.0.1
        # The callbacks live as long as the instance: slirp keeps the pointers.
        self._send_cb = _SEND(self._send)
        self._error_cb = _ERROR(self._guest_error)
        self._clock_cb = _CLOCK(lambda _: int(self.loop.time() * 1e9))
        self._timer_new_cb = _TIMER_NEW(self._timer_new)
        self._timer_free_cb = _TIMER_FREE(self._timer_free)
        self._timer_mod_cb = _TIMER_MOD(self._timer_mod)
        self._register_cb = _FD(lambda fd, _: None)
        self._unregister_cb = _FD(self._unregister)
        self._notify_cb = _NOTIFY(lambda _: self._soon())
        callbacks = self._callbacks = _Callbacks(self._send_cb, self._error_cb, self._clock_cb, self._timer_new_cb,
                                                 self._timer_free_cb, self._timer_mod_cb, self._register_cb,
                                                 self._unregister_cb, self._notify_cb)
        self._add_poll_cb = _ADD_POLL(self._add_poll)
        self._get_revents_cb = _GET_REVENTS(self._get_revents)
        self._timers: dict[int, _Timer] = {}
        self._timer_ids = 0
        self._polled: list[tuple[int, int]] = []  # (fd, slirp events) of the last fill
        self._revents: list[int] = []
        self._readers: set[int] = set()
        self._writers: set[int] = set()
        self._cycle_handle: asyncio.Handle | None = None
        self._wakeup: asyncio.TimerHandle | None = None
        self.slirp = lib.slirp_new(ctypes.byref(config), ctypes.byref(callbacks), None)
        if not self.slirp:
            raise SlirpMissing("slirp_new failed")
        self.closed = False
        self._soon()

    # slirp's callbacks ------------------------------------------------------------------------

    def _send(self, buf, size, _opaque) -> int:
        try:
            self.on_frame(ctypes.string_at(buf, size))
        except Exception:
            log.exception("slirp frame handler failed")
        return size

    def _guest_error(self, message, _opaque) -> None:
        log.info("slirp: %s", message.decode(errors="replace"))

    def _timer_new(self, callback, cb_opaque, _opaque) -> int:
        self._timer_ids += 1
        self._timers[self._timer_ids] = _Timer(callback, cb_opaque)
        return self._timer_ids

    def _timer_free(self, timer_id, _opaque) -> None:
        timer = self._timers.pop(timer_id or 0, None)
        if timer is not None and timer.handle is not None:
            timer.handle.cancel()

    def _timer_mod(self, timer_id, expire_ms, _opaque) -> None:
        timer = self._timers.get(timer_id or 0)
        if timer is None:
            return
        if timer.handle is not None:
            timer.handle.cancel()

        def fire() -> None:
            timer.handle = None
            if not self.closed:
                timer.callback(timer.opaque)
                self._soon()

        timer.handle = self.loop.call_at(expire_ms / 1000.0, fire)

    def _unregister(self, fd, _opaque) -> None:
        self._watch(fd, read=False, write=False)

    def _add_poll(self, fd, events, _opaque) -> int:
        self._polled.append((fd, events))
        return len(self._polled) - 1

    def _get_revents(self, index, _opaque) -> int:
        return self._revents[index] if 0 <= index < len(self._revents) else 0

    # the cycle: fill, poll without waiting, hand back, watch ---------------------------------

    def _soon(self) -> None:
        if self._cycle_handle is None and not self.closed:
            self._cycle_handle = self.loop.call_soon(self._cycle)

    def _cycle(self) -> None:
        self._cycle_handle = None
        if self.closed:
            return
        lib = self._lib
        self._polled = []
        timeout = ctypes.c_uint32(SLIRP_TIMEOUT_CAP_MS)
        lib.slirp_pollfds_fill(self.slirp, ctypes.byref(timeout), self._add_poll_cb, None)
        poller = select.poll()
        registered: dict[int, int] = {}
        for fd, events in self._polled:
            mask = (select.POLLIN if events & POLL_IN else 0) | (select.POLLOUT if events & POLL_OUT else 0) \
                | (select.POLLPRI if events & POLL_PRI else 0)
            registered[fd] = registered.get(fd, 0) | mask
        for fd, mask in registered.items():
            try:
                poller.register(fd, mask)
            except (OSError, ValueError):
                pass
        ready: dict[int, int] = {}
        try:
            ready = dict(poller.poll(0))
        except OSError:
            pass
        self._revents = []
        for fd, _ in self._polled:
            got = ready.get(fd, 0)
            self._revents.append((POLL_IN if got & select.POLLIN else 0) | (POLL_OUT if got & select.POLLOUT else 0)
                                 | (POLL_PRI if got & select.POLLPRI else 0) | (POLL_ERR if got & select.POLLERR else 0)
                                 | (POLL_HUP if got & select.POLLHUP else 0))
        lib.slirp_pollfds_poll(self.slirp, 0, self._get_revents_cb, None)
        # Watch what slirp waits for; the next cycle runs when any of it comes, or its timeout.
        want_read = {fd for fd, mask in registered.items() if mask & (select.POLLIN | select.POLLPRI)}
        want_write = {fd for fd, mask in registered.items() if mask & select.POLLOUT}
        for fd in (self._readers | self._writers) - (want_read | want_write):
            self._watch(fd, read=False, write=False)
        for fd in want_read | want_write:
            self._watch(fd, read=fd in want_read, write=fd in want_write)
        if self._wakeup is not None:
            self._wakeup.cancel()
        self._wakeup = self.loop.call_later(timeout.value / 1000.0, self._soon)

    def _watch(self, fd: int, read: bool, write: bool) -> None:
        if read and fd not in self._readers:
            self.loop.add_reader(fd, self._soon)
            self._readers.add(fd)
        elif not read and fd in self._readers:
            self._readers.discard(fd)
            self._remove(self.loop.remove_reader, fd)
        if write and fd not in self._writers:
            self.loop.add_writer(fd, self._soon)
            self._writers.add(fd)
        elif not write and fd in self._writers:
            self._writers.discard(fd)
            self._remove(self.loop.remove_writer, fd)

    @staticmethod
    def _remove(remove: Callable[[int], bool], fd: int) -> None:
        try:
            remove(fd)
        except (OSError, ValueError):
            pass  # slirp closed it already

    # the guest's side ---------------------------------------------------------------------------

    def input(self, frame: bytes) -> None:
        if self.closed:
            return
        self._lib.slirp_input(self.slirp, frame, len(frame))
        self._soon()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for fd in list(self._readers | self._writers):
            self._watch(fd, read=False, write=False)
        for timer in self._timers.values():
            if timer.handle is not None:
                timer.handle.cancel()
        if self._wakeup is not None:
            self._wakeup.cancel()
        if self._cycle_handle is not None:
            self._cycle_handle.cancel()
        self._lib.slirp_cleanup(self.slirp)
        self.slirp = None
