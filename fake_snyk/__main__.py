"""`python -m fake_snyk`: the `fake-snyk` command."""

from __future__ import annotations

from fake_snyk.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
