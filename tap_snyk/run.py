"""The run context: what every stream and request of one run shares, built once and handed down.

The tap builds one `RunContext` per run from the checked settings and gives it to each stream.
It holds the API client (HTTP sessions, rate limit, retries, credentials), the run's scope (which
orgs and groups it reads), the fetcher that reads pages ahead while a sync runs, and the problems
of the run. Nothing in it knows the tap; nothing below it reaches back up.

The flow reads one way: settings -> scope (`start`) -> partitions -> searches (planned by
`reading_ahead`) -> pages -> records -> Singer messages.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Protocol

from tap_snyk.client import SnykApi
from tap_snyk.errors import SnykError
from tap_snyk.fetching import PagedStream, PageFetcher
from tap_snyk.report import RunReport
from tap_snyk.scope import RunScope, resolve_scope

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_snyk.settings import SnykSettings


class PlannedStream(PagedStream, Protocol):
    """A stream whose partitions a sync reads, so that their pages can be read ahead."""

    def planned_partitions(self) -> list[Context]:
        """The partitions a sync reads, in its order (in the main thread, before the sync)."""


class RunContext:
    """What one run shares: settings, API client, scope, fetcher, problems."""

    def __init__(self, settings: SnykSettings | None, *, logger: logging.Logger) -> None:
        """A run of `settings`; None when they are not valid (the run can then only discover)."""
        self._settings = settings
        self.logger = logger
        #: Reads pages ahead of the sync, while a sync with `concurrent_requests` above 1 runs.
        self.fetcher: PageFetcher | None = None
        #: What went wrong in this run without stopping it; any of them makes the run fail.
        self.problems: list[str] = []
        #: What the run says about itself: the start, progress, the closing summary.
        self.report = RunReport(logger)
        self._scope: RunScope | None = None

    @property
    def settings(self) -> SnykSettings:
        """The checked settings; a run whose settings failed the check cannot request."""
        if self._settings is None:
            raise SnykError("The settings of tap-snyk are not valid; see the errors above.")
        return self._settings

    @functools.cached_property
    def api(self) -> SnykApi:
        """The Snyk API client of the run, shared by every stream and thread."""
        return SnykApi(self.settings, logger=self.logger)

    @property
    def scope(self) -> RunScope:
        """The orgs and groups of this run, as `resolve_scope()` worked them out."""
        if self._scope is None:
            raise RuntimeError(
                "The run's scope was read before the run's scope was worked out: call "
                "resolve_scope() first (the sync and the connection check do)."
            )
        return self._scope

    def resolve_scope(self, *, need_listings: bool) -> RunScope:
        """List the groups' orgs once, as far as this run needs them, and keep the answer.

        `need_listings`: whether the orgs of every group are needed even without
        `discover_orgs` (the `organizations` stream is selected).
        Raises SnykError when a listing fails other than by a refusal (403, 404).
        """
        settings = self.settings
        remedy = (
            "turn `discover_orgs` off and name the group's orgs in `org_ids`"
            if settings.discover_orgs
            else "deselect the stream (drop `organizations.*` from tap-snyk's `select` in "
            "meltano.yml)"
        )
        self._scope = resolve_scope(
            settings,
            list_orgs=lambda group_id: self.api.group_orgs(group_id, remedy=remedy),
            need_listings=need_listings,
        )
        return self._scope

    def start(self, *, need_listings: bool, streams: list[str], version: str) -> None:
        """Before the sync: credentials (an OAuth token), then the scope, then the start line.

        A refused group listing that costs orgs the user asked for is a problem of the run.
        """
        credentials = self.api.credentials
        credentials.obtain()  # refused client credentials: one line, no REST request
        scope = self.resolve_scope(need_listings=need_listings)
        self.report.start(self.settings, scope, streams, credentials.describe(), version)
        for refusal in scope.failed_discoveries.values():
            self.report_problem(f"The orgs of a group were not read: {refusal}")

    @contextlib.contextmanager
    def reading_ahead(self, streams: Iterable[PlannedStream]) -> Iterator[None]:
        """Worker threads fetch the pages of every partition the sync will read, in its order."""
        workers = self.settings.concurrent_requests
        if workers <= 1:
            yield
            return
        with PageFetcher(workers) as fetcher:
            for stream in streams:
                for context in stream.planned_partitions():
                    fetcher.plan(stream, context)
            self.fetcher = fetcher
            try:
                yield
            finally:
                self.fetcher = None

    def report_problem(self, message: str) -> None:
        """Log a problem now; the run goes on and ends with exit status 1 after its state."""
        self.logger.error("%s", message)
        self.problems.append(message)

    def finish(self, *, skipped: list[str]) -> None:
        """After the sync: the closing summary, then one line for the problems, if any.

        `skipped`: what the streams skipped (refused partitions, items not loaded), each
        warned of when met. Raises SnykError naming the problems (each was logged when met).
        """
        if self.problems:
            completeness = f"Incomplete: {len(self.problems)} problem(s), each logged above."
        elif skipped:
            completeness = f"Complete but for what was skipped: {', '.join(skipped)}."
        else:
            completeness = "Complete: every org and group was read."
        self.report.summary(self.api.stats, outcome="Done", completeness=completeness)
        if not self.problems:
            return
        first = self.problems[0]
        if len(self.problems) == 1:
            raise SnykError(first)
        raise SnykError(
            f"The run finished with {len(self.problems)} problems (each logged above); "
            f"everything else was read and its state written. The first: {first}"
        )

    def ended_early(self, how: str) -> None:
        """The closing summary of a run that failed or was stopped (the last STATE is out)."""
        self.report.summary(
            self.api.stats,
            outcome=how,
            completeness="Incomplete: the next run resumes right after what was delivered.",
        )
