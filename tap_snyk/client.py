"""SnykStream: what every request to the Snyk REST API shares.

Authentication, the API version, the base URL of the configured region, following `links.next`,
judging responses (retriable or not) and turning refusals into messages a person can act on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, cast

from singer_sdk import RESTStream
from singer_sdk.authenticators import APIKeyAuthenticator
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.helpers.jsonpath import extract_jsonpath
from singer_sdk.streams.rest import HTTPRequest, PageContext

from tap_snyk.errors import SnykError, refusal_message
from tap_snyk.pagination import NextLinkPaginator
from tap_snyk.responses import error_detail, json_document

if TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context

    from tap_snyk.settings import SnykSettings
    from tap_snyk.tap import TapSnyk


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

    @property
    def settings(self) -> SnykSettings:
        """The tap's checked settings."""
        return cast("TapSnyk", self._tap).settings

    @property
    def url_base(self) -> str:
        """The REST API of the configured region."""
        return f"{self.settings.api_origin}/rest"

    @property
    def authenticator(self) -> APIKeyAuthenticator:
        """`Authorization: token …` for API tokens, `bearer …` for OAuth access tokens."""
        scheme = self.config.get("auth_scheme") or "token"
        return APIKeyAuthenticator(
            key="Authorization", value=f"{scheme} {self.config['api_token']}", location="header"
        )

    def get_url_params(
        self, context: Context | None, next_page_token: str | None
    ) -> dict[str, Any]:
        """Parameters of a first page; a next link already carries them all."""
        return {"version": self.settings.api_version}

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
            json_document(response)
        except ValueError as error:
            # A body cut off in transit or an HTML page from a proxy: worth another try.
            raise RetriableAPIError(
                f"Snyk answered {status} with a body that is not a JSON document ({error})",
                response,
            ) from None

    def parse_response(self, response: requests.Response) -> Iterable[dict[str, Any]]:
        """The items of a page."""
        yield from extract_jsonpath(self.records_jsonpath, json_document(response))

    def request_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Request every page; a refusal names the org or group and says what to do."""
        try:
            yield from super().request_records(context)
        except _Refusal as refusal:
            raise SnykError(
                refusal_message(
                    refusal.status,
                    subject=self.subject.format(**(context or {})),
                    permission=self.required_permission,
                    api_origin=self.settings.api_origin,
                    detail=refusal.detail,
                )
            ) from None
