"""The Snyk API client every request of a run shares; it knows no stream.

`SnykApi` holds what every request needs: the origin of the configured region, one HTTP session
per thread (each request bounded as a whole by `request_timeout`), the run's rate limit, retries
of passing faults for at most `max_retry_seconds`, the credentials (an API token, or OAuth access
tokens it asks for itself and renews after a 401), judging each answer (retriable or not), and
the words for every failure: which org or group, which permission, which setting to check.

The streams send their pages through the SDK's request path and lend it these parts
(`retrying`, `judge`, `session`); the calls that are not streams are plain methods here: an
OAuth access token, `/rest/self`, and a group's org listing.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import backoff
import requests
import urllib3
from requests.auth import AuthBase
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.helpers.jsonpath import extract_jsonpath

from tap_snyk.auth import (
    DEFAULT_TOKEN_LIFETIME,
    TOKEN_PATH,
    AccessToken,
    ApiToken,
    Credentials,
    OAuthClient,
    OAuthCredentials,
    token_refusal_message,
)
from tap_snyk.errors import SnykError, SnykRefusal, give_up_message, refusal_message
from tap_snyk.fetching import stop_if_cancelled
from tap_snyk.pagination import NextLinkPaginator
from tap_snyk.responses import error_detail, json_document, missing_records
from tap_snyk.retries import FIRST_BACKOFF, RequestRateLimiter, server_wait, wait_times
from tap_snyk.settings import REGIONAL_ORIGINS, SNYK_REQUESTS_PER_SECOND
from tap_snyk.transport import DeadlineAdapter

if TYPE_CHECKING:
    from backoff.types import Details

    from tap_snyk.settings import SnykSettings

#: Faults that usually pass: tried again with backoff, up to `max_retry_seconds` in all.
RETRIABLE_ERRORS = (
    ConnectionResetError,
    RetriableAPIError,
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)

Send = Callable[..., requests.Response]


@dataclass(frozen=True)
class Endpoint:
    """What a request reads, in the words its failures are told in.

    `subject` names it ("organization 1234…"); `permission` is the Snyk permission a token needs
    for it; `remedy` is what else a person can do about a 403 than grant the permission.
    """

    subject: str
    permission: str = ""
    remedy: str = "remove the id from the settings"


class Refused(FatalAPIError):
    """A 4xx answer, before it is told as a `SnykRefusal` naming what was refused."""

    def __init__(self, status: int, detail: str | None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class RequestStats:
    """What the run's requests cost: sent, retried, answered 429. Safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent = 0
        self.retries = 0
        self.throttled = 0

    def count(self, **increments: int) -> None:
        """Add to the counts named, e.g. `count(sent=1)`."""
        with self._lock:
            for name, value in increments.items():
                setattr(self, name, getattr(self, name) + value)


class SnykApi:
    """The Snyk REST API of one region, as every request of a run reaches it."""

    def __init__(
        self,
        settings: SnykSettings,
        *,
        logger: logging.Logger,
        limiter: RequestRateLimiter | None = None,
    ) -> None:
        self.settings = settings
        self.origin = settings.api_origin
        self.logger = logger
        #: One limit for every request of the run: Snyk counts requests per token.
        self.limiter = limiter or RequestRateLimiter(
            settings.max_requests_per_minute,
            # Spread over the minute (never above Snyk's per-second limit): no bursts, no 429.
            per_second=min(
                SNYK_REQUESTS_PER_SECOND, math.ceil(settings.max_requests_per_minute / 60)
            ),
        )
        self.stats = RequestStats()
        self.credentials = self._credentials()
        self._sessions = threading.local()

    # -- the parts every request uses ----------------------------------------------------------

    def session(self) -> requests.Session:
        """The calling thread's HTTP session (a `requests.Session` is not known thread-safe)."""
        session: requests.Session | None = getattr(self._sessions, "session", None)
        if session is None:
            session = self._sessions.session = requests.Session()
            for prefix in ("https://", "http://"):
                # `request_timeout` bounds each whole request, not each socket read.
                session.mount(prefix, DeadlineAdapter())
        return session

    def retrying(self, send: Send, *, subject: Callable[[tuple[Any, ...]], str]) -> Send:
        """`send`, at the pace of the run's rate limit, retried while faults pass.

        `send(prepared, …)` sends one prepared request and judges its answer. Retries stop after
        `max_retry_seconds`, or at once when the API cannot be reached at all; a 401 that
        answered a live OAuth access token is sent once more with a new one. `subject(args)`
        names, for the warning of each retry, what the request reads.
        """
        stats, limiter = self.stats, self.limiter

        def paced(*args: Any, **kwargs: Any) -> requests.Response:
            stop_if_cancelled()  # a worker whose run ended sends nothing more, retries included
            limiter.wait_for_turn(stop_if_cancelled)  # nor stays in line for a turn once cancelled
            stats.count(sent=1)
            try:
                return send(*args, **kwargs)
            except RetriableAPIError as error:
                if error.response is not None and error.response.status_code == 429:
                    stats.count(throttled=1)
                    # Every worker waits out a 429, not only the one that met it.
                    limiter.pause(server_wait(error.response) or FIRST_BACKOFF)
                raise

        def on_backoff(details: Details) -> None:
            stop_if_cancelled()  # a run that ended says nothing more
            stats.count(retries=1)
            error = details.get("exception")
            self.logger.warning(
                "%s for %s (try %d); trying again in %.1f s.",
                _fault(error if isinstance(error, BaseException) else None),
                subject(details["args"]),
                details["tries"],
                details.get("wait", 0.0),
            )

        retried = backoff.on_exception(
            lambda: wait_times(lambda error: getattr(error, "response", None)),
            RETRIABLE_ERRORS,
            giveup=lambda error: _unreachable(error) is not None,
            max_time=self.settings.max_retry_seconds,
            on_backoff=on_backoff,
            jitter=None,  # wait_times jitters, except where the server named the wait
            logger=None,  # on_backoff says it, once, as a warning
        )(paced)
        return self._renewing_after_401(retried)

    def judge(self, response: requests.Response, records_jsonpath: str) -> None:
        """Retry what may pass (429, 5xx, a body that is cut off); refuse the rest."""
        status = response.status_code
        if status == 429 or status >= 500:
            raise RetriableAPIError(f"Snyk answered {status} {response.reason}", response)
        if status >= 400:
            raise Refused(status, error_detail(response))
        try:
            document = json_document(response)
        except ValueError as error:
            # A body cut off in transit or an HTML page from a proxy: worth another try.
            raise RetriableAPIError(
                f"Snyk answered {status} with a body that is not a JSON document ({error})",
                response,
            ) from None
        if missing := missing_records(document, records_jsonpath):
            # Not "no records": a broken answer, as passing as a cut-off body.
            raise RetriableAPIError(f"Snyk answered {status} with {missing}", response)

    @staticmethod
    def records(response: requests.Response, records_jsonpath: str) -> list[Any]:
        """The records of a judged answer."""
        return list(extract_jsonpath(records_jsonpath, json_document(response)))

    def paginator(self) -> NextLinkPaginator:
        """A paginator that follows `links.next`, never off this API's origin."""
        return NextLinkPaginator(self.origin)

    def failure(self, error: Exception, endpoint: Endpoint) -> Exception:
        """A request's failure as one line that says what to do, or the error itself.

        A refusal (4xx) names the endpoint's permission; faults that kept coming, the retries
        given up; an API that cannot be reached, `api_url`.
        """
        if isinstance(error, Refused):
            return SnykRefusal(
                refusal_message(
                    error.status,
                    subject=endpoint.subject,
                    permission=endpoint.permission,
                    api_origin=self.origin,
                    detail=error.detail,
                    otherwise=endpoint.remedy,
                    oauth_client_id=self.credentials.client_id,
                ),
                error.status,
            )
        if isinstance(error, RETRIABLE_ERRORS):
            if reason := _unreachable(error):
                return SnykError(
                    f"Cannot reach the Snyk API at `api_url` ({self.origin}): {reason}. Check "
                    f"`api_url` (one of {', '.join(REGIONAL_ORIGINS)}), and any proxy or TLS "
                    "inspection between the tap and Snyk."
                )
            return SnykError(
                give_up_message(endpoint.subject, _fault(error), self.settings.max_retry_seconds)
            )
        return error

    # -- calls that are not streams ------------------------------------------------------------

    def get_all(
        self, path: str, endpoint: Endpoint, *, records_jsonpath: str, limit: int | None = None
    ) -> Iterator[Any]:
        """Every record of a JSON:API document or list under /rest, one page after another."""
        params: dict[str, Any] = {"version": self.settings.api_version}
        if limit:
            params["limit"] = limit
        prepared: requests.PreparedRequest | None = requests.Request(
            "GET", f"{self.origin}/rest{path}", params=params
        ).prepare()
        paginator = self.paginator()
        send = self.retrying(self._sender(records_jsonpath), subject=lambda _: endpoint.subject)
        try:
            while prepared is not None:
                response = send(prepared, self.credentials)
                records = self.records(response, records_jsonpath)
                yield from records
                url = paginator.next_after(response, records)
                prepared = requests.Request("GET", url).prepare() if url else None
        except (Refused, *RETRIABLE_ERRORS) as error:
            raise self.failure(error, endpoint) from None

    def whoami(self) -> dict[str, Any]:
        """`/rest/self`: who the credentials belong to."""
        endpoint = Endpoint("`/rest/self` (who the credentials belong to)")
        user = next(self.get_all("/self", endpoint, records_jsonpath="$.data"), None)
        return user if isinstance(user, dict) else {}

    def group_orgs(self, group_id: str, *, remedy: str) -> Iterator[Any]:
        """The orgs of a group, as its listing describes them (JSON:API resources)."""
        endpoint = Endpoint(
            f"group {group_id}", "group.read (to list the group's organizations)", remedy
        )
        return self.get_all(
            f"/groups/{group_id}/orgs", endpoint, records_jsonpath="$.data[*]", limit=100
        )

    def access_token(self, client: OAuthClient) -> AccessToken:
        """A new OAuth access token for `client`, asked like any other request.

        Same retries, rate limit and give-up message as every request; a refusal names the
        settings to check. The client authenticates in the body, afresh on every try.
        """
        token_url = f"{self.origin}{TOKEN_PATH}"
        endpoint = Endpoint("the OAuth token endpoint")

        def refused(response: requests.Response) -> None:
            status = response.status_code
            if 400 <= status < 500 and status != 429:
                try:
                    document = json_document(response)
                except ValueError:
                    document = {}
                error, description = document.get("error"), document.get("error_description")
                raise SnykError(
                    token_refusal_message(
                        client,
                        token_url,
                        status,
                        error if isinstance(error, str) else None,
                        description if isinstance(description, str) else error_detail(response),
                    )
                )

        send = self.retrying(self._sender("$", before=refused), subject=lambda _: endpoint.subject)
        try:
            response = send(
                requests.Request("POST", token_url).prepare(), _ClientForm(client, token_url)
            )
        except RETRIABLE_ERRORS as error:
            raise self.failure(error, endpoint) from None
        document = json_document(response)
        value, lifetime = document.get("access_token"), document.get("expires_in")
        token_type = str(document.get("token_type") or "bearer")
        if not isinstance(value, str) or not value or token_type.lower() != "bearer":
            raise SnykError(
                f"The OAuth token endpoint at {token_url} answered without a bearer access "
                "token: check `api_url`, it must be the Snyk API of your region."
            )
        return AccessToken(value, _seconds(lifetime) or DEFAULT_TOKEN_LIFETIME)

    # -- inside ----------------------------------------------------------------------------------

    def _credentials(self) -> Credentials:
        """The Authorization of every request: the API token, or OAuth access tokens."""
        auth = self.settings.auth
        if isinstance(auth, ApiToken):
            return Credentials(auth)
        return OAuthCredentials(auth, lambda: self.access_token(auth), logger=self.logger)

    def _sender(
        self, records_jsonpath: str, *, before: Callable[[requests.Response], None] | None = None
    ) -> Send:
        """One try of a plain call: authenticate, send, judge (`before` judges first)."""

        def send(prepared: requests.PreparedRequest, auth: AuthBase) -> requests.Response:
            response = self.session().send(auth(prepared), timeout=self.settings.request_timeout)
            if before is not None:
                before(response)
            self.judge(response, records_jsonpath)
            return response

        return send

    def _renewing_after_401(self, send: Send) -> Send:
        """`send`, once more with a new access token when a 401 answered a live one.

        A second 401 stands: the refusal then says what to check.
        """
        credentials = self.credentials

        def renewing(
            prepared: requests.PreparedRequest, *args: Any, **kwargs: Any
        ) -> requests.Response:
            try:
                return send(prepared, *args, **kwargs)
            except Refused as refusal:
                rejected = prepared.headers.get("Authorization")
                if refusal.status != 401 or not credentials.renew_after_rejection(rejected):
                    raise
            return send(prepared, *args, **kwargs)  # the credentials put in the new token

        return renewing


class _ClientForm(AuthBase):
    """A token request's form, with the client's credentials (a fresh assertion each try)."""

    def __init__(self, client: OAuthClient, token_url: str) -> None:
        self.client = client
        self.token_url = token_url

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.prepare_body(data=self.client.token_form(self.token_url), files=None)
        return request


def _seconds(value: object) -> float | None:
    """A positive number of seconds, also when written as a string ("3599"); else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 < seconds < float("inf") else None


def _unreachable(error: BaseException) -> str | None:
    """Why the API cannot be reached at all (no such host, TLS refused), or None if it might be.

    Retrying these for `max_retry_seconds` would only hide a wrong `api_url` or proxy.
    """
    if isinstance(error, requests.exceptions.SSLError):
        return "the TLS handshake failed (certificate not trusted, or not an HTTPS server)"
    cause = error.args[0] if error.args else None
    if isinstance(getattr(cause, "reason", None), urllib3.exceptions.NameResolutionError):
        return "its host name does not resolve"
    return None


def _fault(error: BaseException | None) -> str:
    """A passing fault in a few words, without URLs (they are noise here) or headers."""
    if isinstance(error, RetriableAPIError):
        return str(error)
    if isinstance(error, requests.exceptions.Timeout):
        return "no complete answer within `request_timeout`"
    return f"no answer from Snyk: {type(error).__name__}"
