"""What a run says about itself: where it starts, how far a long one is, and what it did.

At the default log level a run prints a start line (its scope, the API and how it
authenticates), one warning per real problem, a progress line at most every
`PROGRESS_INTERVAL` seconds while a long run reads, and a closing summary: events per stream, the
orgs and groups read, requests, retries and 429s, the time taken, and whether the run was
complete. The SDK's own INFO lines (METRIC lines, a line per stream and per partition) are left
out of the console by `quiet_console`; at DEBUG (`TAP_SNYK_LOGLEVEL=DEBUG`, or `meltano
--log-level=debug`) they are shown, and a logging config of one's own (`SINGER_SDK_LOG_CONFIG`)
with a handler on `singer_sdk.metrics` writes the METRIC lines wherever it says.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import singer_sdk

from tap_snyk.fetching import in_cancelled_search
from tap_snyk.records import parse_timestamp

if TYPE_CHECKING:
    from tap_snyk.client import RequestStats
    from tap_snyk.scope import RunScope
    from tap_snyk.settings import SnykSettings

#: Seconds between progress lines; a run shorter than this prints none.
PROGRESS_INTERVAL = 30.0
_SDK = str(Path(singer_sdk.__file__).parent)


class _SdkChatter(logging.Filter):
    """Leaves out the SDK's INFO lines unless everything was asked for (DEBUG).

    Also its "An unhandled error occurred while syncing" ERROR: the tap's own line that follows
    says what happened and what to do (an error of the tap itself comes with its traceback).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.pathname.startswith(_SDK) or logging.getLogger().isEnabledFor(logging.DEBUG):
            return True
        if record.levelno == logging.INFO:
            return False
        return not str(record.msg).startswith("An unhandled error occurred while syncing")


class _CancelledWorkers(logging.Filter):
    """Nothing from a worker whose search was cancelled: its run ended, the tap's line is last."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not in_cancelled_search()


def quiet_console() -> None:
    """The console shows what a person needs: no SDK chatter, nothing after the run's end.

    Applied to the handlers of the root logger, whoever set them up (the SDK's console, or the
    logging config Meltano hands a plugin): a handler of one's own on `singer_sdk.metrics`, in a
    config of one's own (`SINGER_SDK_LOG_CONFIG`), still gets every METRIC line.
    """
    for handler in logging.getLogger().handlers:
        kinds = {type(f) for f in handler.filters}
        for kind in (_CancelledWorkers, _SdkChatter):
            if kind not in kinds:
                handler.addFilter(kind())


@dataclass
class _Span:
    """The time one partition's first search covers, and how far its records have come."""

    start: datetime
    end: datetime
    reached: str | None = None  # the `created` of the latest record written
    done: bool = False

    def read(self) -> float:
        """Seconds of the span read."""
        if self.done:
            return self.seconds
        if self.reached is None:
            return 0.0
        reached = min(parse_timestamp(self.reached), self.end)
        return max((reached - self.start).total_seconds(), 0.0)

    @property
    def seconds(self) -> float:
        """Seconds the span covers."""
        return max((self.end - self.start).total_seconds(), 1.0)


class RunReport:
    """Counts what a run writes and says it: a start line, progress, a closing summary.

    `record` is called for every record the run writes (in the main thread); it is cheap.
    """

    def __init__(
        self, logger: logging.Logger, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.logger = logger
        self._clock = clock
        self.started = clock()
        self.events: Counter[str] = Counter()
        self._spans: dict[tuple[str, str], _Span] = {}
        self._stream_started: dict[str, float] = {}
        self._next_progress = self.started + PROGRESS_INTERVAL
        self._orgs = self._groups = 0

    def start(
        self,
        settings: SnykSettings,
        scope: RunScope,
        streams: Iterable[str],
        authentication: str,
        version: str,
    ) -> None:
        """The start line: what the run reads, where, and how it authenticates."""
        orgs, groups = len(scope.audited_org_ids), len(scope.group_ids)
        self._orgs, self._groups = orgs, groups
        discovered = len(scope.discovered_org_ids)
        found = f" ({discovered} found in their groups)" if discovered else ""
        names = list(streams)
        self.logger.info(
            "tap-snyk %s reads %s%s and %s, %d stream(s): %s; from %s with %s; up to %d "
            "requests in flight, at most %d a minute.",
            version,
            _count(orgs, "organization"),
            found,
            _count(groups, "group"),
            len(names),
            ", ".join(names),
            settings.api_origin,
            authentication,
            settings.concurrent_requests,
            settings.max_requests_per_minute,
        )

    def span(self, stream: str, partition: str, start: datetime, end: datetime | None) -> None:
        """A partition's search covers `start` to `end` (None: up to now), for progress."""
        span = _Span(start, end or datetime.now(timezone.utc))
        self._spans.setdefault((stream, partition), span)

    def record(self, stream: str, partition: str | None, created: str | None) -> None:
        """A record was written; now and then, a progress line."""
        self.events[stream] += 1
        if created is not None and (span := self._spans.get((stream, partition or ""))):
            span.reached = created
        if stream not in self._stream_started:
            self._stream_started[stream] = self._clock()
        if (now := self._clock()) >= self._next_progress:
            self._next_progress = now + PROGRESS_INTERVAL
            self.progress(now)

    def partition_done(self, stream: str, partition: str) -> None:
        """Every record of a partition's span was written."""
        if span := self._spans.get((stream, partition)):
            span.done = True

    def progress(self, now: float) -> None:
        """One line: per stream being read, how much of its time range, events, rate, time left."""
        parts = []
        by_stream: dict[str, list[_Span]] = {}
        for (stream, _), span in self._spans.items():
            by_stream.setdefault(stream, []).append(span)
        for stream, spans in by_stream.items():
            fraction = sum(s.read() for s in spans) / sum(s.seconds for s in spans)
            if fraction >= 1.0 or stream not in self._stream_started:
                continue
            elapsed = max(now - self._stream_started[stream], 1e-3)
            events = self.events[stream]
            left = elapsed * (1 - fraction) / fraction if fraction > 0 else None
            parts.append(
                f"{stream} {fraction:.0%} of its time range read ({events:,} events, "
                f"{events / elapsed:,.0f}/s"
                + (f", about {_duration(left)} left)" if left is not None else ")")
            )
        if parts:
            self.logger.info("After %s: %s.", _duration(now - self.started), "; ".join(parts))

    def summary(self, stats: RequestStats, *, outcome: str, completeness: str) -> None:
        """The closing line: what was delivered, from where, what it cost, how the run ended."""
        written = ", ".join(f"{stream} {count:,}" for stream, count in self.events.items())
        self.logger.info(
            "%s in %s: %s record(s) delivered (%s) from %s and %s; %s request(s), %s retried, "
            "%s answered 429. %s",
            outcome,
            _duration(self._clock() - self.started),
            f"{sum(self.events.values()):,}",
            written or "none",
            _count(self._orgs, "organization"),
            _count(self._groups, "group"),
            f"{stats.sent:,}",
            f"{stats.retries:,}",
            f"{stats.throttled:,}",
            completeness,
        )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _duration(seconds: float) -> str:
    """12.3 s, 4 min 05 s, 1 h 02 min."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
