"""The backlog's policy: which partition the writer takes next, which search a worker fetches next.

Pure decisions on partitions and searches as the fetcher keeps them; the fetcher and the tap
are tested against the fake API in test_concurrency.py.
"""

from __future__ import annotations

from typing import Any

from tap_snyk.backlog import PAGE_ITEMS, SHARE, Cap, Partition, next_to_fetch, next_to_write
from tap_snyk.fetching import FetchedPage, Search

MOST = 64 * PAGE_ITEMS
RESERVE = 8 * PAGE_ITEMS
ROOMY = Cap(held=0, most=MOST, reserve=RESERVE)
FULL = Cap(held=MOST - RESERVE, most=MOST, reserve=RESERVE)


class Orgs:
    """A stream of no HTTP: only what a search needs to exist."""

    name = "org_audit_logs"

    def get_new_paginator(self) -> None:
        return None


def partition(n: int, *, stream: int = 0, **state: Any) -> Partition:
    """Partition `n` of the plan, its first search waiting; `state`: how far it is."""
    context = {"org_id": f"org-{n}"}
    root = Search(Orgs(), context, None, (stream, n))  # type: ignore[arg-type]
    found = Partition(Orgs(), context, (stream, n), root)  # type: ignore[arg-type]
    root.partition = found
    for name, value in state.items():
        setattr(found, name, value)
    return found


def never_slow(context: Any) -> float:
    return 0.0


# -- which partition to write next ----------------------------------------------------------------


def test_a_partition_all_in_is_written_first_the_earliest_planned_of_them() -> None:
    waiting = [partition(0, kept=500), partition(1, unsettled=0), partition(2, unsettled=0)]
    assert next_to_write(waiting, ROOMY) is waiting[1]


def test_a_partition_still_being_read_is_waited_for() -> None:
    assert next_to_write([partition(0, kept=300), partition(1)], ROOMY) is None


def test_one_with_a_share_kept_is_written_as_its_pages_come() -> None:
    waiting = [partition(0, kept=300), partition(1, kept=SHARE)]
    assert next_to_write(waiting, ROOMY) is waiting[1]


def test_when_the_others_cannot_go_on_the_one_with_most_kept_is_written() -> None:
    waiting = [partition(0, kept=100), partition(1, kept=300), partition(2, kept=300)]
    assert next_to_write(waiting, FULL) is waiting[1]


def test_a_failed_partition_is_written_last() -> None:
    failed, going = partition(0, unsettled=0, failed=True, kept=300), partition(1)
    assert next_to_write([failed, going], FULL) is going
    assert next_to_write([failed], ROOMY) is failed


# -- which search to fetch next --------------------------------------------------------------------


def test_the_search_the_writer_waits_for_goes_first_even_at_the_cap() -> None:
    awaited = partition(5).root
    waiting = {partition(0).root, awaited}
    at_cap = Cap(held=MOST, most=MOST, reserve=RESERVE)
    assert next_to_fetch(waiting, awaited=awaited, cap=at_cap, slowest=never_slow) is awaited


def test_the_partition_being_written_has_the_last_workers_worth_of_room() -> None:
    written = partition(5)
    awaited = written.root
    awaited.pages.append(FetchedPage([{}]))  # its next page is in: the writer is busy
    window = Search(Orgs(), written.context, None, (0, 5, 0))  # type: ignore[arg-type]
    window.partition = written
    other = partition(0, begun=True).root
    waiting = {other, window}
    assert next_to_fetch(waiting, awaited=awaited, cap=ROOMY, slowest=never_slow) is window
    waiting = {other}
    assert next_to_fetch(waiting, awaited=awaited, cap=FULL, slowest=never_slow) is None


def test_a_partition_not_written_stops_at_a_share() -> None:
    full_share = partition(0, begun=True, kept=SHARE - PAGE_ITEMS, fetching=1)
    waiting = {full_share.root}
    assert next_to_fetch(waiting, awaited=None, cap=ROOMY, slowest=never_slow) is None


def test_partitions_are_begun_first_slowest_org_first_within_a_stream() -> None:
    going = partition(0, begun=True)
    late = partition(7)
    slow = partition(9)
    later_stream = partition(1, stream=1)
    waiting = {going.root, late.root, slow.root, later_stream.root}

    def slowest(context: Any) -> float:
        return 3.5 if context == slow.context else 0.2

    assert next_to_fetch(waiting, awaited=None, cap=ROOMY, slowest=slowest) is slow.root
    waiting.discard(slow.root)
    assert next_to_fetch(waiting, awaited=None, cap=ROOMY, slowest=slowest) is late.root
    half_full = Cap(held=MOST // 2, most=MOST, reserve=RESERVE)
    assert next_to_fetch(waiting, awaited=None, cap=half_full, slowest=slowest) is going.root
