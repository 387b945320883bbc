"""The HTTP transport under every request: `request_timeout` bounds the whole answer.

`requests` applies a timeout to each read of the socket, so a server that drips one byte at a
time never times out. Here the body is read in pieces against one deadline for the request.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import requests
import urllib3
from requests.adapters import HTTPAdapter

if TYPE_CHECKING:
    from collections.abc import Mapping

#: Bytes asked of the socket at a time; a read returns what has arrived, up to this.
_PIECE = 256 * 1024


class WholeRequestTimeout(requests.exceptions.ReadTimeout):
    """The answer did not arrive in full within `request_timeout`."""


class DeadlineAdapter(HTTPAdapter):
    """An adapter whose `timeout` (seconds, a number) bounds the whole request and answer.

    The connection and each read also keep that timeout, so the headers of a silent server are
    not waited for beyond it either; only headers dripped byte by byte escape the deadline.
    """

    def send(  # type: ignore[override]
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | None = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send; unless the caller streams, read the body before the deadline or raise."""
        started = time.monotonic()
        response = super().send(
            request, stream=True, timeout=timeout, verify=verify, cert=cert, proxies=proxies
        )
        if stream or not isinstance(timeout, (int, float)):
            return response
        deadline = started + timeout
        pieces: list[bytes] = []
        try:
            while piece := _read_piece(response):
                pieces.append(piece)
                if time.monotonic() > deadline:
                    raise WholeRequestTimeout(
                        f"the answer took longer than `request_timeout` ({timeout:g} s)",
                        request=request,
                        response=response,
                    )
        except BaseException:
            response.close()  # the connection is in an unknown state: never reuse it
            raise
        # What `requests` itself does once it has read a body.
        response._content = b"".join(pieces)
        response._content_consumed = True  # type: ignore[attr-defined]
        return response


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
