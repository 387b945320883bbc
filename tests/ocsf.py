"""OCSF's own JSON schemas, offline, to validate the events of snyk_ocsf_events.

The schemas come from the PyPI package `ocsf-json-schema`: it ships OCSF's schema exports (the
compiled schema of each release 1.0.0 to 1.8.0, as schema.ocsf.io serves them) and turns a class
of a release into a JSON Schema (draft 2020-12) on this machine; `jsonschema` validates against
it. Nothing is downloaded.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from typing import Any

from jsonschema import Draft202012Validator
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

OCSF_VERSION = "1.8.0"  # the release transform/models/ocsf/snyk_ocsf_events.sql writes


@functools.cache
def _release(version: str) -> OcsfJsonSchemaEmbedded:
    return OcsfJsonSchemaEmbedded(get_ocsf_schema(version=version))


@functools.cache
def class_validator(class_uid: int, version: str = OCSF_VERSION) -> Draft202012Validator:
    """The validator of one OCSF class of a release, with no profile."""
    release = _release(version)
    name = release.lookup_class_name_from_uid(class_uid=class_uid)
    return Draft202012Validator(release.get_class_schema(class_name=name, profiles=[]))


def ocsf_errors(event: Mapping[str, Any]) -> list[str]:
    """What makes an OCSF event invalid for its class (none: it is valid)."""
    version = event.get("metadata", {}).get("version", OCSF_VERSION)
    validator = class_validator(int(event["class_uid"]), version)
    return [f"{error.json_path}: {error.message}" for error in validator.iter_errors(event)]


def invalid_events(documents: Iterable[str | Mapping[str, Any]]) -> dict[str, list[str]]:
    """The invalid events among OCSF documents (JSON text or parsed), by metadata.uid."""
    invalid = {}
    for document in documents:
        event = json.loads(document) if isinstance(document, str) else document
        errors = ocsf_errors(event)
        if errors:
            invalid[event["metadata"]["uid"]] = errors
    return invalid
