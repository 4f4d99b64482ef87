"""A wall-clock deadline for one fetch, and requests sessions that read the environment as requests users expect.

Socket timeouts bound each wait, not the whole fetch: a server that sends a byte every few seconds (headers or
body) never trips them, and a read of 64 KB only returns when the 64 KB are there, so a check between chunks
comes too late. Here every connection a fetch uses is registered with the fetch's `Deadline`; when it expires,
a timer thread shuts those sockets down, the blocked read returns at once, and the fetch fails as timed out.
A worker is never held past `--timeout`, and neither is Ctrl-C waiting for it.
"""

from __future__ import annotations

import socket
import threading

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_active = threading.local()  # the Deadline of the fetch running in this thread, if any


class Deadline:
    """`with Deadline(seconds) as d:` around one fetch; `d.expired` tells afterwards whether it cut the fetch."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        _active.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        _active.deadline = None
        with self._lock:
            self._sockets.clear()

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if not self.expired:
                self._sockets.append(sock)
                return
        _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv(); close() alone may not
    except OSError:
        pass


def _watch(sock) -> None:
    deadline = getattr(_active, "deadline", None)
    if deadline is not None:
        deadline.watch(sock)


class _WatchedHTTPConnection(HTTPConnection):
    def connect(self):
        super().connect()
        _watch(self.sock)

    def request(self, *args, **kwargs):
        _watch(self.sock)  # a kept-alive connection from the pool joins this fetch's deadline
        return super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def connect(self):
        super().connect()
        _watch(self.sock)

    def request(self, *args, **kwargs):
        _watch(self.sock)
        return super().request(*args, **kwargs)


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter with connections a `Deadline` can cut, direct or through an HTTP(S) proxy."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS pools are their own classes; they keep socket timeouts
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


class EnvSession(requests.Session):
    """A Session that honours the environment as requests users expect (HTTP_PROXY/HTTPS_PROXY/NO_PROXY,
    REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE), minus one surprise: credentials from ~/.netrc are never sent, neither
    with a request nor after a redirect, to whatever site a sitemap or a crawl leads to."""

    def __init__(self):
        super().__init__()
        self.trust_env = True
        adapter = DeadlineAdapter()
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def prepare_request(self, request):
        # Session.prepare_request reads trust_env only to look up .netrc credentials.
        self.trust_env = False
        try:
            return super().prepare_request(request)
        finally:
            self.trust_env = True

    def rebuild_auth(self, prepared_request, response):
        """requests' redirect rule (drop Authorization when the host changes), without its .netrc look-up."""
        headers = prepared_request.headers
        if "Authorization" in headers and self.should_strip_auth(response.request.url, prepared_request.url):
            del headers["Authorization"]
