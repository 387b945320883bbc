"""The HTTP transport under every request: `request_timeout` bounds the whole request.

`requests` applies its timeout to each read of the socket, so a server that drips an answer one
byte at a time never times out. Here a watchdog shuts the request's connection when the time is
up, whichever phase it is in (status line, headers or body), and the request fails with a
timeout like any other, to be retried.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

if TYPE_CHECKING:
    from collections.abc import Mapping

#: Bytes asked of the socket at a time; a read returns what has arrived, up to this.
_PIECE = 256 * 1024

#: Per sending thread: the connections its current request used (the watchdog's targets).
_sending = threading.local()


class WholeRequestTimeout(requests.exceptions.ReadTimeout):
    """The answer did not arrive in full within `request_timeout`."""


class _WatchedConnection(urllib3.connection.HTTPConnection):
    """A connection that tells the request being sent from this thread that it carries it."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        _register(self)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _register(self)
        super().request(*args, **kwargs)


class _WatchedPool(HTTPConnectionPool):
    ConnectionCls = _WatchedConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def _register(connection: urllib3.connection.HTTPConnection) -> None:
    watch = getattr(_sending, "watch", None)
    if watch is not None:
        watch.connections.append(connection)


class _Watchdog:
    """Shuts the connections of one request once its time is up, unless it finished first."""

    def __init__(self, seconds: float) -> None:
        self.connections: list[urllib3.connection.HTTPConnection] = []
        self.fired = False
        self._lock = threading.Lock()
        self._done = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        _sending.watch = self
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()
        _sending.watch = None

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            for connection in self.connections:
                sock = getattr(connection, "sock", None)
                if sock is not None:
                    # Wakes the blocked read in the sending thread, which then fails.
                    with contextlib.suppress(OSError):  # already closed
                        sock.shutdown(socket.SHUT_RDWR)


class DeadlineAdapter(HTTPAdapter):
    """An adapter whose `timeout` (seconds, a number) bounds the whole request and answer."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """The pools of watched connections (urllib3 lets a PoolManager set its pool classes)."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedPool, "https": _WatchedHTTPSPool}

    def send(  # type: ignore[override]
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | None = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send and, unless the caller streams, read the whole body, all within `timeout`."""
        if stream or not isinstance(timeout, (int, float)):
            return super().send(
                request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
            )
        deadline = time.monotonic() + timeout
        with _Watchdog(timeout) as watchdog:
            try:
                response = super().send(
                    request, stream=True, timeout=timeout, verify=verify, cert=cert, proxies=proxies
                )
                body = _read_body(response, deadline)
            except (requests.exceptions.RequestException, OSError) as error:
                if watchdog.fired:
                    raise _timed_out(request, timeout) from error
                raise
            if body is None or watchdog.fired:
                response.close()  # the connection is in an unknown state: never reuse it
                raise _timed_out(request, timeout)
        # What `requests` itself does once it has read a body.
        response._content = body
        response._content_consumed = True  # type: ignore[attr-defined]
        return response


def _timed_out(request: requests.PreparedRequest, timeout: float) -> WholeRequestTimeout:
    return WholeRequestTimeout(
        f"no complete answer within `request_timeout` ({timeout:g} s)", request=request
    )


def _read_body(response: requests.Response, deadline: float) -> bytes | None:
    """The whole body (decoded), or None when the deadline passed first."""
    pieces: list[bytes] = []
    try:
        while piece := _read_piece(response):
            pieces.append(piece)
            if time.monotonic() > deadline:
                return None
    except BaseException:
        response.close()
        raise
    return b"".join(pieces)


def _read_piece(response: requests.Response) -> bytes:
    """What has arrived of the body (decoded), with urllib3's errors as `requests` raises them."""
    try:
        return response.raw.read1(_PIECE, decode_content=True)  # type: ignore[no-any-return]
    except urllib3.exceptions.ProtocolError as error:
        raise requests.exceptions.ChunkedEncodingError(error) from error
    except urllib3.exceptions.DecodeError as error:
        raise requests.exceptions.ContentDecodingError(error) from error
    except urllib3.exceptions.ReadTimeoutError as error:
        raise requests.exceptions.ConnectionError(error) from error
    except urllib3.exceptions.SSLError as error:
        raise requests.exceptions.SSLError(error) from error
