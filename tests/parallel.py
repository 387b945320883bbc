"""Running the suite on several workers (pytest-xdist) so that none is left with a long tail.

`scripts/test` runs `pytest -n auto`: a worker per core and one more, as the end-to-end tests
spend much of their time waiting on Meltano, dbt and PostgreSQL. The unit of work is a test
module, as with xdist's `--dist loadscope`, since a module's tests share its fixtures of module
scope (a Meltano project, a fake API started at import); the modules that share a pipeline (a
fixture of session scope that runs Meltano and dbt once) are one unit, so that it runs once.
Each time a worker asks for work it gets the longest unit left: the end-to-end pipelines start
first, side by side, and the short modules fill in around them. The few tests that time
requests to tens of milliseconds come last, each while no other test runs (`ALONE`), so that
the load of the others does not skew what they measure.

The controller sees only node ids, so the units are named by module path. (xdist's
`--dist loadgroup` carries groups in node ids, which pytest 9.2 no longer lets it change.)
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Generator
from pathlib import Path

import pytest
from xdist import is_xdist_worker
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling
from xdist.workermanage import WorkerController

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

#: The modules whose tests share a pipeline of session scope, by the fixture that runs it.
SHARED = {
    "tests/test_alerts.py": "alerting",  # four meltano runs and three dbt builds
    "tests/test_ocsf.py": "alerting",
    "tests/test_readme.py": "demo_sync",  # scripts/sync --demo
    "tests/test_sync.py": "demo_sync",
}

#: Rough seconds of the longest units on a worker, three workers sharing the 2-core machine
#: (`--durations`, or the time between a unit's first and last test); every other unit is short,
#: and the ones with more tests go first. Only the order matters: longest first.
LONG = {
    "tests/test_dbt.py": 145,  # meltano and dbt into PostgreSQL, then into DuckDB
    "alerting": 100,  # four meltano runs, three dbt builds
    "tests/test_meltano_project.py": 90,  # docs/meltano-project.md in a new Meltano project
    "tests/test_security.py": 80,
    "tests/test_concurrency.py": 70,
    "demo_sync": 65,  # scripts/sync --demo
    "tests/test_meltano_postgres.py": 60,
    "tests/test_meltano_yml.py": 45,
    "tests/test_meltano_duckdb.py": 45,
    "tests/test_oauth.py": 40,
    "tests/test_faults.py": 35,
    "tests/test_lookback_interval.py": 35,
    "tests/test_packaging.py": 20,
    "tests/test_windows.py": 15,
    "tests/test_state.py": 15,
    "tests/test_run_output.py": 15,
}


#: The tests that time requests to tens of milliseconds: the last unit, each test run alone.
ALONE = (
    "tests/test_concurrency.py::"
    "test_no_429_from_a_server_with_snyks_limits_even_at_the_highest_setting",
    "tests/test_rate_limit.py::"
    "test_the_tap_keeps_its_pace_through_a_429_with_many_requests_waiting",
)
ALONE_UNIT = "alone"


def unit_of(nodeid: str) -> str:
    """The unit a test runs in: its module, or the pipeline its module shares, or `ALONE_UNIT`."""
    if nodeid in ALONE:
        return ALONE_UNIT
    module = nodeid.split("::", 1)[0]
    return SHARED.get(module, module)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each name in `ALONE` is a test; a test that uses a shared pipeline from a module not in
    `SHARED` would build it again."""
    collected = {item.nodeid for item in items}
    modules = {nodeid.split("::", 1)[0] for nodeid in collected}
    for nodeid in ALONE:
        if nodeid.split("::", 1)[0] in modules and nodeid not in collected:
            raise pytest.UsageError(f"tests/parallel.py: ALONE names {nodeid}, no such test")
    for item in items:
        for pipeline in set(SHARED.values()) & set(getattr(item, "fixturenames", ())):
            if unit_of(item.nodeid) != pipeline:
                raise pytest.UsageError(
                    f"{item.nodeid} uses `{pipeline}`: add its module to SHARED in "
                    "tests/parallel.py, so that the pipeline runs once when the tests run on "
                    "several workers"
                )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """On a worker, each test holds a lock on the run's folder: shared, or alone for `ALONE`.

    The lock covers the test's fixtures too, so that no pipeline is built beside a test alone.
    """
    if not is_xdist_worker(item.session):
        return (yield)
    run_folder = Path(item.config.option.basetemp).parent  # xdist's basetemp of each worker
    with open(run_folder / "alone.lock", "a") as lock:  # closing it releases the lock
        fcntl.flock(lock, fcntl.LOCK_EX if unit_of(item.nodeid) == ALONE_UNIT else fcntl.LOCK_SH)
        return (yield)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto`: a worker per core and one more (PYTEST_XDIST_AUTO_NUM_WORKERS decides, if set)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    return (os.cpu_count() or 1) + 1


def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> LongestFirst | None:
    """The scheduler of `-n` (xdist's default `--dist load`); other `--dist` modes are xdist's."""
    if config.getoption("dist") == "load":
        return LongestFirst(config, log)
    return None


class LongestFirst(LoadScopeScheduling):
    """Units of tests (a module, or the modules of a pipeline), the longest left goes next."""

    @override
    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)

    @override
    def _assign_work_unit(self, node: WorkerController) -> None:
        """Give the worker the longest unit left; `ALONE_UNIT` after every other."""
        longest = max(
            self.workqueue,
            key=lambda unit: (unit != ALONE_UNIT, LONG.get(unit, 0), len(self.workqueue[unit])),
        )
        self.workqueue.move_to_end(longest, last=False)  # the unit the next line hands out
        super()._assign_work_unit(node)
