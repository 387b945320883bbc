"""Running the suite on several workers (pytest-xdist) so that none is left with a long tail.

`scripts/test` runs `pytest -n auto`: a worker per core and one more, as the end-to-end tests
spend much of their time waiting on Meltano, dbt and PostgreSQL. The unit of work is a test
module, as with xdist's `--dist loadscope`, since modules share fixtures of module scope (a
Meltano project, a fake API started at import); tests that share a pipeline (a fixture that runs
Meltano and dbt once for tests in several modules, or once per parameter) are one unit of their
own, so that it runs once. Each time a worker asks for work it gets the longest unit left: the
end-to-end pipelines start first, side by side, and the short modules fill in around them.
"""

from __future__ import annotations

import os
import sys

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadGroupScheduling
from xdist.workermanage import WorkerController

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

#: Fixtures that run a whole pipeline once for every test that uses them, across modules (a
#: session's) or for one parameter (test_dbt.py's `built`, once per database).
PIPELINES = ("alerting", "demo_sync", "built")

#: Rough seconds of the longest units, run one at a time on the 2-core machine; every other unit
#: is short, and the ones with more tests go first. Only the order matters: longest first.
LONG = {
    "alerting": 80,  # four meltano runs, three dbt builds (test_alerts.py, test_ocsf.py)
    "built-duckdb": 60,  # test_dbt.py: meltano and dbt into DuckDB
    "tests/test_meltano_project.py": 55,  # the walkthrough in a new Meltano project
    "demo_sync": 55,  # scripts/sync --demo (test_readme.py, test_sync.py)
    "built-postgres": 50,  # test_dbt.py: meltano and dbt into PostgreSQL
    "tests/test_meltano_postgres.py": 40,
    "tests/test_oauth.py": 35,
    "tests/test_faults.py": 35,
    "tests/test_concurrency.py": 30,
    "tests/test_lookback_interval.py": 25,
    "tests/test_meltano_duckdb.py": 20,
    "tests/test_security.py": 20,
    "tests/test_meltano_yml.py": 20,
    "tests/test_windows.py": 15,
    "tests/test_code.py": 12,
}


def pipeline_of(item: pytest.Item) -> str | None:
    """The pipeline whose unit the test runs in, if it uses one."""
    fixtures = getattr(item, "fixturenames", ())
    for name in PIPELINES:
        if name in fixtures:
            callspec = getattr(item, "callspec", None)
            if callspec is not None and name in callspec.params:
                return f"{name}-{callspec.params[name]}"
            return name
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist names each test's group in its node id
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the tests of a pipeline in its group (xdist's `xdist_group`)."""
    for item in items:
        pipeline = pipeline_of(item)
        if pipeline is not None:
            item.add_marker(pytest.mark.xdist_group(pipeline))


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto`: a worker per core and one more (PYTEST_XDIST_AUTO_NUM_WORKERS decides, if set)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    return (os.cpu_count() or 1) + 1


def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> LongestFirst | None:
    """The scheduler of distributed runs."""
    if config.getoption("dist") == "loadgroup":
        return LongestFirst(config, log)
    return None


class LongestFirst(LoadGroupScheduling):
    """Units of tests (a module, or the tests of a pipeline), the longest left goes next."""

    @override
    def _split_scope(self, nodeid: str) -> str:
        """The unit of a test: its pipeline's group, if xdist named one, or its module."""
        group = super()._split_scope(nodeid)
        return group if group != nodeid else nodeid.split("::", 1)[0]

    @override
    def _assign_work_unit(self, node: WorkerController) -> None:
        """Give the worker the longest unit left."""
        longest = max(
            self.workqueue, key=lambda unit: (LONG.get(unit, 0), len(self.workqueue[unit]))
        )
        self.workqueue.move_to_end(longest, last=False)  # the unit the next line hands out
        super()._assign_work_unit(node)
