"""The Singer SDK's standard tap tests, run against the fake Snyk API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from fake_snyk import FakeSnyk, make_events, make_members, make_projects
from tap_snyk.tap import TapSnyk
from tests.conftest import GROUP, ORG_A, ORG_B, TOKEN, unpaced

# The SDK builds its test class from a config at import time, so this module's fake API starts
# here and is stopped by the fixture below when the module's tests are done.
_START = datetime.now(timezone.utc) - timedelta(days=2)
API = FakeSnyk()
API.start()
API.add_org_events(ORG_A, make_events(60, start=_START, org_id=ORG_A, seed=1))
API.add_org_events(ORG_B, make_events(30, start=_START, org_id=ORG_B, seed=2))
API.add_group_events(GROUP, make_events(30, start=_START, group_id=GROUP, seed=3))
API.add_group_orgs(GROUP, [ORG_B])
API.add_group_members(GROUP, make_members(GROUP, level="group"))
for _org in (ORG_A, ORG_B):
    API.add_org_members(_org, make_members(_org))
    API.add_org_projects(_org, make_projects(_org))


@pytest.fixture(scope="module", autouse=True)
def _stop_api() -> Iterator[None]:
    yield
    API.stop()


class TapSnykForSDKTests(TapSnyk):
    """The SDK's standard tests call `sync_all` alone, not `run_sync`: the scope is worked out
    when the tap is made, as `run_sync` does first. They test the streams, not the pacing."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        unpaced(self)
        self.run_context.resolve_scope(need_listings=True)


TestTapSnyk = get_tap_test_class(
    TapSnykForSDKTests,
    config={
        "api_url": API.url,
        "api_token": TOKEN,
        "org_ids": [ORG_A, ORG_B],
        "group_ids": [GROUP],
        "page_size": 20,
    },
    parse_env_config=False,
    suite_config=SuiteConfig(max_records_limit=500),
)
