"""Errors a person can act on, and the words for each kind of refusal by the Snyk API."""

from __future__ import annotations

from singer_sdk.exceptions import FatalAPIError

from tap_snyk.settings import REGIONAL_ORIGINS


class SnykError(FatalAPIError):
    """A failure the tap cannot ride through; its message says what to do."""


class SnykRefusal(SnykError):
    """Snyk refused a request (4xx): retrying will not help, the settings or access must change."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def give_up_message(subject: str, reason: str, max_retry_seconds: int) -> str:
    """One line for a request that kept failing with faults that usually pass."""
    return (
        f"Snyk kept failing for {subject} ({reason}); gave up after retrying for "
        f"{max_retry_seconds} s (`max_retry_seconds`). "
        "Everything read before was delivered with its state, so the next run resumes there. "
        "If it persists, check Snyk's status and the network, or raise `max_retry_seconds`."
    )


def refusal_message(
    status: int,
    *,
    subject: str,
    permission: str,
    api_origin: str,
    detail: str | None,
    otherwise: str = "remove the id from the settings",
    oauth_client_id: str | None = None,
) -> str:
    """One line that says why Snyk refused a request for `subject` and what to do about it.

    `oauth_client_id` names the OAuth service account when the run authenticates as one.
    """
    said = f" Snyk said: {detail}" if detail else ""
    if status == 401 and oauth_client_id:
        return (
            f"Snyk rejected the OAuth access token of `client_id` {oauth_client_id} (401) for "
            f"{subject}, and then a new one: the service account may have been deleted or "
            f"disabled, or belong to another region than `api_url` ({api_origin}). Check it in "
            "Snyk (Group or Org settings > Service accounts) and `api_url`." + said
        )
    if status == 401:
        return (
            f"Snyk rejected the API token (401) for {subject}: it is invalid, expired, or from "
            f"another region than `api_url` ({api_origin}). Tokens only work in their own "
            f"region: {', '.join(REGIONAL_ORIGINS)}. Check `api_token` and `api_url`"
            " (and `auth_scheme`: `token` for API tokens, `bearer` for OAuth access tokens)." + said
        )
    if status == 403:
        who = (
            f"The service account of `client_id` {oauth_client_id}"
            if oauth_client_id
            else "The API token"
        )
        needs = "it needs" if oauth_client_id else "its user or service account needs"
        return (
            f"{who} may not read {subject} (403): {needs} the "
            f"`{permission}` permission there (Snyk Enterprise plan). Grant it, or {otherwise}."
            + said
        )
    if status == 404:
        return (
            f"Snyk does not know {subject} (404) in the region of `api_url` ({api_origin}): check "
            "the id in the settings and the region." + said
        )
    return f"Snyk refused the request for {subject} ({status}).{said or ' No detail was given.'}"
