"""The `fake-snyk` command (also `python -m fake_snyk`): demo data served on 127.0.0.1.

fake-snyk --port 8765        serve until Ctrl-C, after printing the TAP_SNYK_* settings to use
fake-snyk -- meltano run tap-snyk target-duckdb    run a command with them set, then stop
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone

from fake_snyk.demo import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, seed_demo_data
from fake_snyk.server import DEFAULT_TOKEN, FakeSnyk


def main(argv: Sequence[str] | None = None) -> int:
    """Serve demo data until Ctrl-C, or run the command after `--` against it."""
    args = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in args:
        args, command = args[: args.index("--")], args[args.index("--") + 1 :]
    parser = argparse.ArgumentParser(
        prog="fake-snyk",
        description="Serve a fake Snyk audit-log API with demo data and print the TAP_SNYK_* "
        "settings that point tap-snyk at it. With `-- COMMAND ...`, run COMMAND with them set, "
        "then stop.",
    )
    parser.add_argument(
        "--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765; 0: any free)"
    )
    parser.add_argument("--orgs", type=int, default=2, help="number of orgs")
    parser.add_argument("--groups", type=int, default=1, help="number of groups")
    parser.add_argument("--events", type=int, default=500, help="events per org and per group")
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="seconds every answer takes, e.g. 0.15 for a live-like audit search (default 0)",
    )
    parser.add_argument(
        "--oauth",
        action="store_true",
        help="hand the command an OAuth service account (TAP_SNYK_CLIENT_ID and "
        "TAP_SNYK_CLIENT_SECRET) rather than an API token",
    )
    parser.add_argument(
        "--token-lifetime",
        type=int,
        default=3599,
        metavar="SECONDS",
        help="seconds an OAuth access token lives (default 3599, as Snyk's)",
    )
    options = parser.parse_args(args)
    if options.latency < 0:
        parser.error("--latency must be 0 or more seconds")
    if options.token_lifetime < 1:
        parser.error("--token-lifetime must be 1 or more seconds")
    api = FakeSnyk(port=options.port, latency=options.latency)
    api.token_lifetime = options.token_lifetime
    try:
        api.start()
    except OSError as error:
        print(
            f"cannot serve on 127.0.0.1:{options.port} ({error}): pick another --port",
            file=sys.stderr,
        )
        return 2
    with api:
        # Anchored to the start of the day (UTC), so that runs on one day see the same events.
        today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        org_ids, group_ids = seed_demo_data(
            api,
            orgs=options.orgs,
            groups=options.groups,
            events=options.events,
            now=today,
        )
        env = {
            "TAP_SNYK_API_URL": api.url,
            "TAP_SNYK_API_TOKEN": DEFAULT_TOKEN,
            "TAP_SNYK_ORG_IDS": json.dumps(org_ids),
            "TAP_SNYK_GROUP_IDS": json.dumps(group_ids),
        }
        if options.oauth:
            api.add_oauth_client(DEMO_CLIENT_ID, secret=DEMO_CLIENT_SECRET)
            env.update(
                TAP_SNYK_API_TOKEN="",  # one way to authenticate only
                TAP_SNYK_CLIENT_ID=DEMO_CLIENT_ID,
                TAP_SNYK_CLIENT_SECRET=DEMO_CLIENT_SECRET,
            )
        for name, value in env.items():
            print(f"{name}={value}", file=sys.stderr)
        try:
            if command:
                done = subprocess.run(command, env={**os.environ, **env}, check=False)  # noqa: S603
                return done.returncode
            print("fake Snyk API serving; Ctrl-C stops it", file=sys.stderr)
            while True:
                time.sleep(3600)
        except FileNotFoundError as exc:
            print(f"cannot run {command[0]!r}: {exc}", file=sys.stderr)
            return 127
        except KeyboardInterrupt:
            return 130 if command else 0
