"""TapSnyk: the settings and the streams, and a run: one context, the SDK's sync, one last word."""

from __future__ import annotations

import functools
import json
import sys
from datetime import datetime, timezone
from typing import IO, Any

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

import click
from singer_sdk import Stream, Tap
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.tap_base import CliTestOptionValue

from tap_snyk.check import check_connection
from tap_snyk.errors import SnykError
from tap_snyk.output import STOP_SIGNALS, Stopped, WholeMessageWriter
from tap_snyk.report import quiet_console
from tap_snyk.run import RunContext
from tap_snyk.settings import SETTINGS, SettingsError, SnykSettings
from tap_snyk.state import checked_state, parsed_state_text
from tap_snyk.stream import SnykStream
from tap_snyk.streams import STREAMS


class TapSnyk(Tap):
    """Snyk audit logs of organizations and groups, incremental, each event once by `event_id`."""

    name = "tap-snyk"
    message_writer_class = WholeMessageWriter
    config_jsonschema = SETTINGS

    def __init__(self, *, validate_config: bool = True, **kwargs: Any) -> None:
        """The tap of a config; every mistake in it is reported at once, before any request.

        The SDK checks the config's types against `SETTINGS` and only warns; `SnykSettings`
        checks types, bounds and meaning together and words each error for a person.
        """
        super().__init__(validate_config=False, **kwargs)
        if validate_config and self.config_errors:
            raise ConfigValidationError(
                "Config validation failed", errors=self.config_errors, schema=SETTINGS
            )

    @functools.cached_property
    def _checked_settings(self) -> SnykSettings | SettingsError:
        try:
            return SnykSettings.from_config(self.config, now=datetime.now(timezone.utc))
        except SettingsError as error:
            return error

    @property
    def config_errors(self) -> list[str]:
        """What is wrong with the config, one sentence each that says what to do; or nothing."""
        checked = self._checked_settings
        return checked.errors if isinstance(checked, SettingsError) else []

    @functools.cached_property
    def run_context(self) -> RunContext:
        """What every stream and request of this run shares, built once, handed to the streams."""
        checked = self._checked_settings
        return RunContext(
            checked if isinstance(checked, SnykSettings) else None, logger=self.logger
        )

    @override
    def discover_streams(self) -> list[Stream]:
        """The audit-log streams, then the lookups that give their ids names."""
        return [stream(tap=self, run=self.run_context) for stream in STREAMS]

    def selected_streams(self) -> list[SnykStream]:
        """The streams this run syncs, in the SDK's order."""
        return [s for s in self.streams.values() if s.selected and isinstance(s, SnykStream)]

    def run_sync(self) -> None:
        """Sync every selected stream on the run's scope, reading ahead, then report problems.

        The SDK's `sync_all` does the syncing. A failure (`SnykError`) or a stop signal
        (`Stopped`) that ends it part-way leaves a final STATE of everything written, so the
        next run resumes right after it.
        Raises SnykError naming the problems of the run, after the final STATE.
        """
        run = self.run_context
        streams = self.selected_streams()
        run.start(
            need_listings=self.streams["organizations"].selected,
            streams=[stream.name for stream in streams],
            version=self.plugin_version,
        )
        try:
            with run.reading_ahead(streams):
                self.sync_all()
        except (SnykError, Stopped) as ended:
            self.state_writer.write_state(self.state)
            run.ended_early("Stopped" if isinstance(ended, Stopped) else "Failed")
            raise
        run.finish(skipped=[skip for stream in streams for skip in stream.skipped])

    def report_connection_check(self) -> bool:
        """Check the credentials and read access to every org and group, one line each."""
        findings = check_connection(
            self.run_context,
            self.selected_streams(),
            need_listings=self.streams["organizations"].selected,
        )
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

    @override
    def load_state(self, state: dict[str, Any]) -> None:
        """Take the state in only once it is checked and each bookmark is in the tap's form."""
        now = datetime.now(timezone.utc)
        super().load_state(checked_state(state, now=now, warn=self.logger.warning))

    # -- the command line ----------------------------------------------------------------------

    @override
    @classmethod
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: Any = None,
        state: IO[str] | None = None,
        catalog: IO[str] | None = None,
    ) -> None:
        """Run the tap: the SDK's command, with `run_sync` for `sync_all`.

        A failure the tap cannot ride through ends in one line that says what to do, exit 1; a
        stop signal, after the final STATE, exits 128 + the signal (143, 130), not the SDK's 0.
        """
        if about:
            cls.print_about(about_format)
            sys.exit(0)
        try:
            # Read here, so that a state that is not JSON is one line too.
            text = state.read() if state is not None else ""
            tap = cls(
                config=config.config if config else None,
                state=parsed_state_text(text) or None,
                catalog=None if catalog is None else json.loads(catalog.read()),
                parse_env_config=bool(config and config.parse_env),
                validate_config=True,
            )
            with STOP_SIGNALS.handled():
                tap.run_sync()
        except SnykError as error:
            cls.logger.error("%s", error)
            sys.exit(1)
        except Stopped as stop:
            cls.logger.error(
                "Stopped by %s: the state of everything delivered was written, so the next run "
                "resumes there.",
                stop,
            )
            sys.exit(stop.exit_status)

    @classmethod
    @override
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
        """The SDK's command line, with `--test` described as what it does in this tap.

        Called once the SDK has set up the console's logging: its INFO chatter leaves the view.
        """
        quiet_console()
        command = super().get_singer_command()
        [test] = [param for param in command.params if param.name == "test"]
        assert isinstance(test, click.Option)  # the SDK declares it so
        test.help = (
            "Check the setup without syncing: the credentials, then one page of every selected "
            "stream for each org and group; one OK/WARN/FAIL line each, no Singer messages, exit "
            "1 if anything failed. --test=schema prints the streams' SCHEMA messages."
        )
        return command


if __name__ == "__main__":
    TapSnyk.cli()
