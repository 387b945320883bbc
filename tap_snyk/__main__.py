"""`python -m tap_snyk`: the same command line as `tap-snyk`."""

from __future__ import annotations

from tap_snyk.tap import TapSnyk

TapSnyk.cli()
