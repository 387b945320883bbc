"""Reading Snyk's JSON:API responses: the document, parsed once, and its error details."""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import requests

_logger = logging.getLogger("tap-snyk")
_DOCUMENT = "_tap_snyk_document"
#: A JSON escape of a UTF-16 surrogate: only then can a string hold a lone one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def json_document(response: requests.Response) -> dict[str, Any]:
    """The response's JSON document, parsed on first use and kept with the response.

    JSON is UTF-8 (RFC 8259), whatever the content type says: decoded as UTF-8 always, so that
    one bad byte becomes U+FFFD in its own string (with a warning) rather than `requests`
    guessing another codec for the whole body.

    Raises ValueError when the body is not a JSON object (cut off, or an HTML error page).
    """
    document = response.__dict__.get(_DOCUMENT)
    if document is None:
        try:
            text = response.content.decode("utf-8")
        except UnicodeDecodeError:
            text = response.content.decode("utf-8", errors="replace")
            _logger.warning(
                "Snyk's answer for %s held bytes that are not UTF-8: each became U+FFFD "
                "where it stood; the rest of the answer is read as sent.",
                urlsplit(response.url or "").path,
            )
        document = json.loads(text)
        if not isinstance(document, dict):
            raise ValueError(f"expected a JSON object, got {type(document).__name__}")
        if _SURROGATE_ESCAPE.search(response.content):
            document = _without_lone_surrogates(document)
        response.__dict__[_DOCUMENT] = document
    return document


def missing_records(document: dict[str, Any], records_jsonpath: str) -> str | None:
    """What a 2xx document lacks where its records should be, or None when they are there.

    For the streams' simple paths: `$.data.items[*]` (a search: `data.items` is a list),
    `$.data[*]` (a listing: `data` is a list), `$.data` (one resource: `data` is an object),
    `$` (the document itself, e.g. an OAuth token).
    An answer without them breaks the contract; read as "no records" it would lose data.
    """
    many = records_jsonpath.endswith("[*]")
    path = records_jsonpath.removesuffix("[*]").removeprefix("$").removeprefix(".")
    keys = path.split(".") if path else []  # "$": the document itself
    node: Any = document
    for depth, key in enumerate(keys):
        value = node.get(key) if isinstance(node, dict) else None
        if value is None:
            return f"no `{'.'.join(keys[: depth + 1])}`"
        node = value
    wanted, kind = (list, "a list") if many else (dict, "an object")
    if not isinstance(node, wanted):
        return f"`{path or '$'}` is not {kind}"
    return None


def error_detail(response: requests.Response) -> str | None:
    """The `detail` (or `title`) of the errors in a JSON:API error document, if any."""
    try:
        errors = json_document(response).get("errors")
    except ValueError:
        return None
    if not isinstance(errors, list):
        return None
    details = [
        str(error.get("detail") or error.get("title"))
        for error in errors
        if isinstance(error, dict) and (error.get("detail") or error.get("title"))
    ]
    return " ".join(details) or None


def _without_lone_surrogates(value: Any) -> Any:
    """The value with each lone UTF-16 surrogate (valid JSON, but no character) as U+FFFD.

    No UTF-8 output can hold a lone surrogate: left in, one such event would stop every run.
    """
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    return value
