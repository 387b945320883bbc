"""TapSnyk: the settings, each with a description, and the list of streams."""

from __future__ import annotations

import contextlib
import functools
import io
import math
import signal
import sys
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING, Any

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

import click
from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.tap_base import CliTestOptionValue

from tap_snyk.auth import ApiToken, Credentials, OAuthCredentials
from tap_snyk.check import check_connection
from tap_snyk.client import SnykStream, TokenEndpoint
from tap_snyk.errors import SnykError
from tap_snyk.fetching import PageFetcher
from tap_snyk.retries import RequestRateLimiter
from tap_snyk.scope import RunScope, resolve_scope
from tap_snyk.settings import (
    DEFAULT_CONCURRENT_REQUESTS,
    MAX_CONCURRENT_REQUESTS,
    REGIONAL_ORIGINS,
    SNYK_REQUESTS_PER_SECOND,
    SettingsError,
    SnykSettings,
)
from tap_snyk.state import checked_state, parsed_state_text
from tap_snyk.streams import (
    GroupAuditLogsStream,
    GroupMembershipsStream,
    GroupOrgsLookupStream,
    GroupOrgsStream,
    OrganizationsStream,
    OrgAuditLogsStream,
    OrgMembershipsStream,
    ProjectsStream,
)

if TYPE_CHECKING:
    from types import FrameType


class TapSnyk(Tap):
    """Snyk audit logs of organizations and groups, incremental, each event once by `event_id`."""

    name = "tap-snyk"
    message_writer_class = MsgSpecWriter

    config_jsonschema = th.PropertiesList(
        th.Property(
            "api_token",
            th.StringType,
            secret=True,
            description=(
                "Snyk API token: a personal or service-account token (`auth_scheme` token) or an "
                "OAuth access token (`auth_scheme` bearer). Audit logs need the Enterprise plan. "
                "Or leave it unset and use an OAuth service account (`client_id`)."
            ),
        ),
        th.Property(
            "auth_scheme",
            th.StringType,
            default="token",
            allowed_values=["token", "bearer"],
            description=(
                "How `api_token` is sent: `token` for API tokens (the default), `bearer` for "
                "OAuth access tokens."
            ),
        ),
        th.Property(
            "client_id",
            th.StringType,
            description=(
                "Client id of an OAuth 2.0 service account (instead of `api_token`), with "
                "`client_secret`, or with `private_key` and `private_key_id`. Access tokens are "
                "asked from `api_url`'s /oauth2/token and renewed before they expire."
            ),
        ),
        th.Property(
            "client_secret",
            th.StringType,
            secret=True,
            description="Client secret of the OAuth 2.0 service account `client_id`.",
        ),
        th.Property(
            "private_key",
            th.StringType,
            secret=True,
            description=(
                "For a private-key-JWT service account `client_id`: its RSA private key, the PEM "
                "text (newlines may be written as \\n)."
            ),
        ),
        th.Property(
            "private_key_id",
            th.StringType,
            description=(
                "The id (`kid`) of the public key of `private_key` on the service account's JWKS."
            ),
        ),
        th.Property(
            "api_url",
            th.StringType,
            default="https://api.snyk.io",
            description=(
                "Origin of the Snyk API of your region: " + ", ".join(REGIONAL_ORIGINS) + ". "
                "A token only works in its own region. A trailing `/rest` is tolerated."
            ),
        ),
        th.Property(
            "api_version",
            th.StringType,
            default="2024-10-15",
            description="Snyk REST API version date; 2024-04-29 or later.",
        ),
        th.Property(
            "org_ids",
            th.ArrayType(th.StringType),
            description="Organization UUIDs whose audit logs to extract (stream org_audit_logs).",
        ),
        th.Property(
            "group_ids",
            th.ArrayType(th.StringType),
            description="Group UUIDs whose group audit logs to extract (stream group_audit_logs).",
        ),
        th.Property(
            "discover_orgs",
            th.BooleanType,
            default=False,
            description=(
                "When true, org_audit_logs also reads every organization of each group in "
                "`group_ids`, listed at the start of each run, so new orgs need no config change."
            ),
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description=(
                "Earliest event time to extract (RFC3339). Default: 90 days before now, "
                "Snyk's retention."
            ),
        ),
        th.Property(
            "end_date",
            th.DateTimeType,
            description="Optional exclusive upper bound on event time, for bounded backfills.",
        ),
        th.Property(
            "lookback_hours",
            th.IntegerType,
            default=24,
            description=(
                "Each run re-reads this many hours before its bookmark, to catch events that "
                "Snyk publishes late (up to 24 hours); `event_id` keeps them once. 0 turns it off."
            ),
        ),
        th.Property(
            "lookback_interval_minutes",
            th.IntegerType,
            default=0,
            description=(
                "Re-read each org's or group's `lookback_hours` at most once per this many "
                "minutes; runs in between read only from the bookmark, at a request or two when "
                "nothing happened. A late event is then caught if Snyk publishes it within "
                "`lookback_hours` minus this interval. 0 (the default): every run re-reads."
            ),
        ),
        th.Property(
            "events",
            th.ArrayType(th.StringType),
            description=(
                "Only these event types. `api.access` events come only when listed here. "
                "Cannot be combined with `exclude_events`."
            ),
        ),
        th.Property(
            "exclude_events",
            th.ArrayType(th.StringType),
            description="Every event type but these. Cannot be combined with `events`.",
        ),
        th.Property(
            "page_size",
            th.IntegerType,
            default=100,
            description="Events per request, 1 to 100.",
        ),
        th.Property(
            "max_requests_per_minute",
            th.IntegerType,
            default=1200,
            description=(
                "The tap sends at most this many requests in any minute, below Snyk's 1620 per "
                "token, so it rarely meets a 429; lower it when other tools share the token."
            ),
        ),
        th.Property(
            "concurrent_requests",
            th.IntegerType,
            default=DEFAULT_CONCURRENT_REQUESTS,
            description=(
                "Requests in flight at once, 1 to "
                f"{MAX_CONCURRENT_REQUESTS}: orgs, groups and time windows of a busy one are read "
                "side by side (each event still once, written in order), up to "
                "`max_requests_per_minute`. 1 reads one page after another."
            ),
        ),
        th.Property(
            "request_timeout",
            th.IntegerType,
            default=60,
            description="Seconds one request may take before it is abandoned and tried again.",
        ),
        th.Property(
            "max_retry_seconds",
            th.IntegerType,
            default=600,
            description=(
                "How long to keep retrying a request that meets passing faults (429, 5xx, "
                "timeouts, cut-off answers) before the run fails; the next run resumes."
            ),
        ),
    ).to_dict()

    _settings: SnykSettings | None = None
    _scope: RunScope | None = None
    #: Reads pages ahead of the sync, while a sync with `concurrent_requests` above 1 runs.
    fetcher: PageFetcher | None = None

    @property
    def settings(self) -> SnykSettings:
        """The checked settings; a tap whose settings failed the check cannot sync."""
        if self._settings is None:
            raise SnykError("The settings of tap-snyk are not valid; see the errors above.")
        return self._settings

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        # The JSON schema checks types; SnykSettings checks meaning (UUIDs, dates, ranges),
        # so that every mistake is reported at once, before any request.
        errors = super()._validate_config(raise_errors=False)
        try:
            self._settings = SnykSettings.from_config(self.config, now=datetime.now(timezone.utc))
        except SettingsError as error:
            errors += error.errors
        if errors and raise_errors:
            raise ConfigValidationError(
                "Config validation failed", errors=errors, schema=self.config_jsonschema
            )
        return errors

    @functools.cached_property
    def rate_limiter(self) -> RequestRateLimiter:
        """One limit for every request of the run: Snyk counts requests per token."""
        per_minute = self.settings.max_requests_per_minute
        # Spread over the minute (never above Snyk's per-second limit): no bursts, no 429.
        per_second = min(SNYK_REQUESTS_PER_SECOND, math.ceil(per_minute / 60))
        return RequestRateLimiter(per_minute, per_second=per_second)

    @property
    def scope(self) -> RunScope:
        """The orgs and groups of this run, worked out by `resolve_scope()`."""
        if self._scope is None:
            raise RuntimeError(
                "TapSnyk.scope was read before the run's scope was worked out: call "
                "resolve_scope() first (sync_all and the connection check do)."
            )
        return self._scope

    def resolve_scope(self) -> RunScope:
        """List the groups' orgs once, as far as this run needs them, and keep the answer.

        Raises SnykError when a listing fails other than by a refusal (403, 404).
        """
        lister = (GroupOrgsStream if self.settings.discover_orgs else GroupOrgsLookupStream)(
            tap=self
        )
        self._scope = resolve_scope(
            self.settings,
            list_orgs=lambda group_id: lister.request_records({"group_id": group_id}),
            need_listings=self.streams["organizations"].selected,
        )
        return self._scope

    @functools.cached_property
    def credentials(self) -> Credentials:
        """The Authorization of every request of the run, shared by every stream and thread.

        The first OAuth access token is asked for at the start of a sync (and of the connection
        check), before any REST request.
        """
        auth = self.settings.auth
        if isinstance(auth, ApiToken):
            return Credentials(auth)
        return OAuthCredentials(
            auth,
            TokenEndpoint(tap=self, client=auth).request_access_token,
            logger=self.logger,
        )

    @functools.cached_property
    def problems(self) -> list[str]:
        """What went wrong in this run without stopping it; any of them makes the run fail."""
        return []

    def report_problem(self, message: str) -> None:
        """Log a problem now; the run goes on and ends with exit status 1 after its state."""
        self.logger.error("%s", message)
        self.problems.append(message)

    @override  # type: ignore[misc]  # final in the SDK: wrapped, not replaced
    def sync_all(self) -> None:
        """Work out the run's scope, sync every selected stream, then fail if anything was wrong.

        Raises SnykError naming the problems of the run, after the final STATE was written.
        """
        self.credentials.obtain()  # refused client credentials: one line, before any request
        scope = self.resolve_scope()
        for refusal in scope.failed_discoveries.values():
            self.report_problem(f"The orgs of a group were not read: {refusal}")
        with self._reading_ahead():
            super().sync_all()
        if self.problems:
            raise SnykError(_summary(self.problems))

    @contextlib.contextmanager
    def _reading_ahead(self) -> Iterator[None]:
        """Worker threads fetch the pages of every partition the sync will read, in its order."""
        workers = self.settings.concurrent_requests
        if workers <= 1:
            yield
            return
        with PageFetcher(workers) as fetcher:
            for stream in self.streams.values():
                if stream.selected and isinstance(stream, SnykStream):
                    for context in stream.planned_partitions():
                        fetcher.plan(stream, context)
            self.fetcher = fetcher
            try:
                yield
            finally:
                self.fetcher = None

    @override  # type: ignore[misc]  # final in the SDK: wrapped, not replaced
    def run_sync_dry_run(
        self, dry_run_record_limit: int | None = 1, streams: Iterable[Stream] | None = None
    ) -> bool:
        """The SDK's dry run (its standard tests), on the run's scope like a sync."""
        self.resolve_scope()
        return super().run_sync_dry_run(dry_run_record_limit, streams)

    def discover_streams(self) -> list[Stream]:
        """The audit-log streams, then the lookups that give their ids names."""
        return [
            stream(tap=self)
            for stream in (
                OrgAuditLogsStream,
                GroupAuditLogsStream,
                OrganizationsStream,
                GroupMembershipsStream,
                OrgMembershipsStream,
                ProjectsStream,
            )
        ]

    def report_connection_check(self) -> bool:
        """Check the token and read access to every org and group, one line each, no records."""
        findings = check_connection(self)
        for finding in findings:
            if finding.warning:
                self.logger.warning("WARN %s: %s", finding.subject, finding.detail)
            elif finding.ok:
                self.logger.info("OK   %s: %s", finding.subject, finding.detail)
            else:
                self.logger.error("FAIL %s: %s", finding.subject, finding.detail)
        failed = sum(not finding.ok for finding in findings)
        if failed:
            self.logger.error("Connection check failed: %d of %d checks.", failed, len(findings))
        else:
            self.logger.info("Connection check passed: %d checks.", len(findings))
        return not failed

    @classmethod
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """`--test` runs the connection check and exits 1 when anything failed."""
        if value != CliTestOptionValue.All.value:  # off, or `--test=schema`
            super().cb_test(ctx, param, value)
            return
        config = ctx.params.get("config")
        try:
            tap = cls(
                config=config.config if config else {},
                parse_env_config=bool(config and config.parse_env),
                validate_config=True,
            )
        except ConfigValidationError as error:
            for message in error.errors:
                cls.logger.error("%s", message)
            ctx.exit(1)
        ctx.exit(0 if tap.report_connection_check() else 1)

    @override
    @classmethod
    def get_singer_command(cls) -> click.Command:
        """The SDK's command line, with `--test` described as what it does in this tap."""
        command = super().get_singer_command()
        [test] = [param for param in command.params if param.name == "test"]
        assert isinstance(test, click.Option)  # the SDK declares it so
        test.help = (
            "Check the setup without syncing: the token, then one page of every selected stream "
            "for each org and group; one OK/WARN/FAIL line each, no Singer messages, exit 1 if "
            "anything failed. --test=schema prints the streams' SCHEMA messages."
        )
        return command

    @override
    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """On SIGTERM or SIGINT: a final STATE, then exit 128 + the signal (143, 130).

        The SDK's own handler exits 0, so a scheduler would record an interrupted run as a
        success; a test runs the tap in a subprocess and pins this.
        """
        try:
            self.state_writer.write_state(self.state)
        finally:
            name = signal.Signals(signum).name
            self.logger.error(
                "Stopped by %s: the state of everything delivered was written, so the next run "
                "resumes there.",
                name,
            )
            sys.exit(128 + signum)

    @override
    def load_state(self, state: dict[str, Any]) -> None:
        """Take the state in only once it is checked and each bookmark is in the tap's form."""
        now = datetime.now(timezone.utc)
        super().load_state(checked_state(state, now=now, warn=self.logger.warning))

    @override
    @classmethod
    def invoke(  # type: ignore[override]
        cls, *, state: IO[str] | None = None, **kwargs: Any
    ) -> None:
        """Run the tap; a failure it cannot ride through ends in one line that says what to do."""
        try:
            if state is not None:  # read here, so that a state that is not JSON is one line too
                text = state.read()
                state = io.StringIO(text) if parsed_state_text(text) else None
            super().invoke(state=state, **kwargs)
        except SnykError as error:
            cls.logger.error("%s", error)
            sys.exit(1)


def _summary(problems: list[str]) -> str:
    """One line for the end of a run that had problems (each was logged when it happened)."""
    if len(problems) == 1:
        return problems[0]
    return (
        f"The run finished with {len(problems)} problems (each logged above); everything else "
        f"was read and its state written. The first: {problems[0]}"
    )


if __name__ == "__main__":
    TapSnyk.cli()
