"""A fake Snyk REST API for tap-snyk (moved from tests/fake_snyk.py; split by concern next)."""

from fake_snyk.server import *  # noqa: F403
from fake_snyk.server import parse_rfc3339, seed_demo_data  # noqa: F401
