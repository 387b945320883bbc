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
) -> str:
    """One line that says why Snyk refused a request for `subject` and what to do about it."""
    said = f" Snyk said: {detail}" if detail else ""
    if status == 401:
        return (
            f"Snyk rejected the API token (401) for {subject}: it is invalid, expired, or from "
            f"another region than `api_url` ({api_origin}). Tokens only work in their own "
            f"region: {', '.join(REGIONAL_ORIGINS)}. Check `api_token` and `api_url`"
            " (and `auth_scheme`: `token` for API tokens, `bearer` for OAuth access tokens)." + said
        )
    if status == 403:
        return (
            f"The API token may not read {subject} (403): its user or service account needs the "
            f"`{permission}` permission there (Snyk Enterprise plan). Grant it, or {otherwise}."
            + said
        )
    if status == 404:
        return (
            f"Snyk does not know {subject} (404) in the region of `api_url` ({api_origin}): check "
            "the id in the settings and the region." + said
        )
    return f"Snyk refused the request for {subject} ({status}).{said or ' No detail was given.'}"
