"""SnykStream: what every request to the Snyk REST API shares.

Authentication, the API version, the base URL of the configured region, following `links.next`,
judging responses (retriable or not) and turning refusals into messages a person can act on.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, cast

import backoff
import requests
import urllib3
from requests.auth import AuthBase
from singer_sdk import RESTStream
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.helpers.jsonpath import extract_jsonpath
from singer_sdk.streams.rest import HTTPRequest, PageContext

from tap_snyk.auth import (
    DEFAULT_TOKEN_LIFETIME,
    TOKEN_PATH,
    AccessToken,
    OAuthClient,
    token_refusal_message,
)
from tap_snyk.errors import SnykError, SnykRefusal, give_up_message, refusal_message
from tap_snyk.fetching import FetchedPage, in_worker, read_in_order, stop_if_cancelled
from tap_snyk.pagination import NextLinkPaginator
from tap_snyk.responses import error_detail, json_document, missing_records
from tap_snyk.retries import FIRST_BACKOFF, server_wait, wait_times
from tap_snyk.settings import REGIONAL_ORIGINS
from tap_snyk.transport import DeadlineAdapter

if TYPE_CHECKING:
    from collections.abc import Generator

    from backoff.types import Details
    from singer_sdk.helpers.types import Context

    from tap_snyk.auth import Credentials
    from tap_snyk.settings import SnykSettings
    from tap_snyk.tap import TapSnyk


#: Faults that usually pass: tried again with backoff, up to `max_retry_seconds` in all.
RETRIABLE_ERRORS = (
    ConnectionResetError,
    RetriableAPIError,
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class _Refusal(FatalAPIError):
    """A 4xx answer, before the stream names what was refused."""

    def __init__(self, status: int, detail: str | None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class SnykStream(RESTStream[str | None]):
    """A stream read from the Snyk REST API."""

    records_jsonpath = "$.data[*]"
    #: What one partition is, for messages, e.g. "organization {org_id}".
    subject: ClassVar[str] = "the Snyk API"
    #: The Snyk permission a token needs to read this stream.
    required_permission: ClassVar[str] = ""
    #: What else a person can do about a 403 than grant the permission.
    refusal_remedy: ClassVar[str] = "remove the id from the settings"
    #: `limit` of a paged JSON:API list (the audit-log searches page with `size` instead).
    page_limit: ClassVar[int | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """A stream whose `request_timeout` bounds each whole request, not each socket read."""
        super().__init__(*args, **kwargs)
        self._worker_sessions = threading.local()
        _bound_by_deadline(self.requests_session)

    @property
    def tap(self) -> TapSnyk:
        """The tap this stream belongs to."""
        return cast("TapSnyk", self._tap)

    @property
    def settings(self) -> SnykSettings:
        """The tap's checked settings."""
        return self.tap.settings

    @property
    def url_base(self) -> str:
        """The REST API of the configured region."""
        return f"{self.settings.api_origin}/rest"

    @property
    def authenticator(self) -> AuthBase:
        """The tap's credentials, shared by every stream: an API token or OAuth access tokens."""
        return self.tap.credentials

    @property
    def requests_session(self) -> requests.Session:
        """The HTTP session of this thread: the SDK's, or a worker's own.

        A `requests.Session` is not documented to be safe across threads.
        """
        if not in_worker():
            return super().requests_session
        session: requests.Session | None = getattr(self._worker_sessions, "session", None)
        if session is None:
            session = self._worker_sessions.session = _bound_by_deadline(requests.Session())
        return session

    @property
    def timeout(self) -> int:
        """Seconds one request may take, so that a hung connection never hangs a job."""
        return self.settings.request_timeout

    def get_url_params(
        self, context: Context | None, next_page_token: str | None
    ) -> dict[str, Any]:
        """Parameters of a first page; a next link already carries them all."""
        params: dict[str, Any] = {"version": self.settings.api_version}
        if self.page_limit:
            params["limit"] = self.page_limit
        return params

    def get_http_request(self, *, page: PageContext) -> HTTPRequest:
        """The first page from path and parameters; every later page is its next link as given."""
        if page.next_page_token:
            return HTTPRequest(url=page.next_page_token, headers=self.http_headers)
        request = super().get_http_request(page=page)
        request.safe_query_chars = ","  # lists go comma separated, as Snyk documents
        return request

    def get_new_paginator(self) -> NextLinkPaginator:
        """Follow `links.next`."""
        return NextLinkPaginator(self.settings.api_origin)

    def validate_response(self, response: requests.Response) -> None:
        """Retry what may pass (429, 5xx, a body that is cut off); refuse the rest."""
        status = response.status_code
        if status == 429 or status >= 500:
            raise RetriableAPIError(f"Snyk answered {status} {response.reason}", response)
        if status >= 400:
            raise _Refusal(status, error_detail(response))
        try:
            document = json_document(response)
        except ValueError as error:
            # A body cut off in transit or an HTML page from a proxy: worth another try.
            raise RetriableAPIError(
                f"Snyk answered {status} with a body that is not a JSON document ({error})",
                response,
            ) from None
        if missing := missing_records(document, self.records_jsonpath):
            # Not "no records": a broken answer, as passing as a cut-off body.
            raise RetriableAPIError(f"Snyk answered {status} with {missing}", response)

    def parse_response(self, response: requests.Response) -> Iterable[dict[str, Any]]:
        """The items of a page."""
        yield from extract_jsonpath(self.records_jsonpath, json_document(response))

    def request_decorator(self, func: Callable[..., requests.Response]) -> Callable:
        """Send at the pace of the tap's rate limit; retry passing faults for a bounded time."""
        limiter = self.tap.rate_limiter

        def paced(*args: Any, **kwargs: Any) -> requests.Response:
            stop_if_cancelled()  # a worker whose run ended sends nothing more, retries included
            limiter.wait_for_turn()
            stop_if_cancelled()  # nor after waiting its turn
            try:
                return func(*args, **kwargs)
            except RetriableAPIError as error:
                if error.response is not None and error.response.status_code == 429:
                    # Every worker waits out a 429, not only the one that met it.
                    limiter.pause(server_wait(error.response) or FIRST_BACKOFF)
                raise

        retried = backoff.on_exception(
            self.backoff_wait_generator,
            RETRIABLE_ERRORS,
            giveup=lambda error: _unreachable(error) is not None,
            max_time=self.settings.max_retry_seconds,
            on_backoff=self.backoff_handler,
            jitter=None,  # wait_times jitters, except where the server named the wait
            logger=None,  # backoff_handler says it, once, as a warning
        )(paced)
        return _renewing_after_401(retried, self.tap.credentials)

    def backoff_wait_generator(self) -> Generator[float, Any, None]:
        """The server's `Retry-After` / `X-RateLimit-Reset` when given, else exponential."""
        return wait_times(lambda error: getattr(error, "response", None))

    def backoff_handler(self, details: Details) -> None:
        """A retry is a warning: the run goes on, and most retries succeed."""
        error = details.get("exception")
        self.logger.warning(
            "%s for %s (try %d); trying again in %.1f s.",
            _fault(error if isinstance(error, BaseException) else None),
            self.subject.format(**(details["args"][1] or {})),
            details["tries"],
            details.get("wait", 0.0),
        )

    def planned_partitions(self) -> list[Context]:
        """The partitions a sync reads, in its order, so that their pages can be read ahead.

        Called in the main thread before the sync, after the run's scope is known.
        """
        return list(self.partitions or [])

    def first_page_request(self, context: Context | None) -> HTTPRequest:
        """The request of a partition's first page, from its path and parameters."""
        return self.get_http_request(page=PageContext(stream_context=context, next_page_token=None))

    def fetch_page(
        self,
        context: Context | None,
        request: HTTPRequest,
        paginator: NextLinkPaginator,
        *,
        may_split: bool = False,  # audit-log searches may split in time windows
    ) -> FetchedPage:
        """Send one request and read its page, in the main thread or a worker.

        Every request takes this path: prepared as the SDK prepares it, sent through
        `request_decorator` (rate limit, retries, the auth of `_request`), judged by
        `validate_response`; the next page is its next link, as the paginator finds it.
        """
        prepared = self.build_prepared_request(
            method=request.method,
            url=request.url,
            params=request.encode_params(),
            headers=request.headers,
        )
        response = self.request_decorator(self._request)(prepared, context)
        items = list(self.parse_response(response))
        if not items:
            paginator.continue_if_empty(response)  # ends paging, with a word if a link went on
            return FetchedPage(items)
        try:
            paginator.advance(response)
        except SnykError as failure:  # a next link that may not be followed: after the items
            return FetchedPage(items, failure=failure)
        if paginator.finished:
            return FetchedPage(items)
        page = PageContext(stream_context=context, next_page_token=paginator.current_value)
        return FetchedPage(items, next=self.get_http_request(page=page))

    def request_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Every item of a partition; a failure names the org or group and says what to do.

        The SDK's page loop is replaced, not wrapped: the pages of a partition the sync planned
        (with `concurrent_requests` above 1) come from the tap's fetcher, read ahead by worker
        threads; any other (a token, the scope's listings) is fetched here, one page after
        another. Both fetch each page with `fetch_page`.
        """
        subject = self.subject.format(**(context or {}))
        fetcher = self.tap.fetcher
        read_ahead = fetcher.take(self, context) if fetcher and not in_worker() else None
        pages = read_ahead or read_in_order(self, context)
        try:
            with contextlib.closing(pages):  # a partition left early frees what was read ahead
                for items in pages:
                    yield from items
        except _Refusal as refusal:
            raise SnykRefusal(
                refusal_message(
                    refusal.status,
                    subject=subject,
                    permission=self.required_permission,
                    api_origin=self.settings.api_origin,
                    detail=refusal.detail,
                    otherwise=self.refusal_remedy.format(stream=self.name),
                    oauth_client_id=self.tap.credentials.client_id,
                ),
                refusal.status,
            ) from None
        except RETRIABLE_ERRORS as error:
            if reason := _unreachable(error):
                raise SnykError(
                    f"Cannot reach the Snyk API at `api_url` ({self.settings.api_origin}): "
                    f"{reason}. Check `api_url` (one of {', '.join(REGIONAL_ORIGINS)}), and "
                    "any proxy or TLS inspection between the tap and Snyk."
                ) from None
            raise SnykError(
                give_up_message(subject, _fault(error), self.settings.max_retry_seconds)
            ) from None


def _bound_by_deadline(session: requests.Session) -> requests.Session:
    """The session, with `request_timeout` bounding each whole request, not each socket read."""
    for prefix in ("https://", "http://"):
        session.mount(prefix, DeadlineAdapter())
    return session


def _renewing_after_401(
    request: Callable[..., requests.Response], credentials: Credentials
) -> Callable[..., requests.Response]:
    """The request, sent once more with a new access token when a 401 answered a live one.

    A second 401 stands: the refusal then says what to check.
    """

    def renewing(
        prepared: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        try:
            return request(prepared, *args, **kwargs)
        except _Refusal as refusal:
            rejected = prepared.headers.get("Authorization")
            if refusal.status != 401 or not credentials.renew_after_rejection(rejected):
                raise
        return request(prepared, *args, **kwargs)  # the authenticator puts in the new token

    return renewing


class TokenEndpoint(SnykStream):
    """`POST {api origin}/oauth2/token`: an OAuth access token, asked like any other request.

    Same retries, rate limit and give-up message as every request; a refusal (4xx) names the
    settings to check. The client authenticates in the body, afresh on every try (a new assertion
    each time), so it is this stream's authenticator.
    """

    name = "oauth2_token"
    path = TOKEN_PATH
    records_jsonpath = "$"
    schema: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}}
    subject = "the OAuth token endpoint"

    def __init__(self, tap: TapSnyk, client: OAuthClient) -> None:
        super().__init__(tap=tap, http_method="POST")
        self.client = client

    @property
    def url_base(self) -> str:
        """The API origin: the token endpoint is not under /rest."""
        return self.settings.api_origin

    @property
    def authenticator(self) -> AuthBase:
        """The client's credentials, in the body of the token request."""
        return _ClientAuthentication(self.client, self.get_url(None))

    def get_url_params(
        self, context: Context | None, next_page_token: str | None
    ) -> dict[str, Any]:
        """None: everything goes in the form."""
        return {}

    def validate_response(self, response: requests.Response) -> None:
        """A refusal ends the run with the settings to check; other faults are retried."""
        status = response.status_code
        if 400 <= status < 500 and status != 429:
            try:
                document = json_document(response)
            except ValueError:
                document = {}
            error, description = document.get("error"), document.get("error_description")
            raise SnykError(
                token_refusal_message(
                    self.client,
                    self.get_url(None),
                    status,
                    error if isinstance(error, str) else None,
                    description if isinstance(description, str) else error_detail(response),
                )
            )
        super().validate_response(response)

    def request_access_token(self) -> AccessToken:
        """A new access token; a run that cannot get one ends with one line saying why."""
        document = next(iter(self.request_records(None)), {})
        value, lifetime = document.get("access_token"), document.get("expires_in")
        token_type = str(document.get("token_type") or "bearer")
        if not isinstance(value, str) or not value or token_type.lower() != "bearer":
            raise SnykError(
                f"The OAuth token endpoint at {self.get_url(None)} answered without a bearer "
                "access token: check `api_url`, it must be the Snyk API of your region."
            )
        return AccessToken(value, _seconds(lifetime) or DEFAULT_TOKEN_LIFETIME)


def _seconds(value: object) -> float | None:
    """A positive number of seconds, also when written as a string ("3599"); else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 < seconds < float("inf") else None


class _ClientAuthentication(AuthBase):
    """A token request's form, with the client's credentials (a fresh assertion each time)."""

    def __init__(self, client: OAuthClient, token_url: str) -> None:
        self.client = client
        self.token_url = token_url

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.prepare_body(data=self.client.token_form(self.token_url), files=None)
        return request


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
