"""Injected failures: a test queues a `Fault`, and the next request it matches gets it.

A fault answers instead of the API (an error status, an HTML page, given bytes), cuts the API's
answer, resets the connection, or slows the answer down (a delay first, a drip of its body); one
fault may be served to several requests (`times`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from fake_snyk.jsonapi import JSONAPI_CONTENT_TYPE, ApiError, Response


@dataclass
class Fault:
    """One injected failure, consumed by the next request whose target contains `path`.

    Actions (at most one): `status` (an error status with a JSON:API body), `truncated_body`
    (the normal answer cut in half, Content-Length matching the cut body), `not_json` (200 with
    an HTML page), `reset` (close the connection without answering) or `body` (200 with these
    bytes, as `application/vnd.api+json` with no charset, like the live API). `delay` seconds
    are slept first; a delay alone then answers normally (read-timeout tests). `drip` sends the
    answer's body one byte every `drip` seconds, after its headers. `headers` are added to the
    answer (e.g. Retry-After). `times` serves the same fault to that many matching requests.
    `revoke_tokens` revokes every live OAuth access token first, like a delay, then answers as
    above (or normally, so the request's own access token is refused).
    """

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    truncated_body: bool = False
    not_json: bool = False
    reset: bool = False
    body: bytes | None = None
    delay: float = 0.0
    drip: float = 0.0
    path: str | None = None
    times: int = 1
    revoke_tokens: bool = False

    def __post_init__(self) -> None:
        actions = [
            self.status is not None,
            self.truncated_body,
            self.not_json,
            self.reset,
            self.body is not None,
        ]
        if sum(actions) > 1:
            raise ValueError(
                "a Fault has at most one of status, truncated_body, not_json, reset, body"
            )
        if sum(actions) == 0 and self.delay <= 0 and self.drip <= 0 and not self.revoke_tokens:
            raise ValueError(
                "a Fault needs an action (status, truncated_body, not_json, reset, body), "
                "a delay or a drip"
            )
        if self.times < 1:
            raise ValueError("Fault.times must be at least 1")

    def matches(self, target: str) -> bool:
        """Tell whether this fault applies to a request target (path and raw query)."""
        return self.path is None or self.path in target

    def replacement(self) -> Response | None:
        """The answer sent instead of the API's (status, not_json, body); None: the API's."""
        if self.status is not None:
            return ApiError(self.status, "injected fault").response()
        if self.not_json:
            page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
            return Response(200, page, {"Content-Type": "text/html; charset=utf-8"})
        if self.body is not None:
            return Response(200, self.body, {"Content-Type": JSONAPI_CONTENT_TYPE})
        return None


def take_fault(faults: list[Fault], target: str) -> Fault | None:
    """Take the first fault matching a request target off `faults`; callers hold a lock."""
    for index, fault in enumerate(faults):
        if fault.matches(target):
            if fault.times > 1:
                # Count down on a copy: the test's own Fault object stays as written.
                faults[index] = replace(fault, times=fault.times - 1)
            else:
                del faults[index]
            return fault
    return None
