"""OAuth 2.0 service accounts against the fake API's token endpoint: tokens obtained, renewed
before they expire and after a 401, refusals named, faults retried, the assertion as Snyk wants it.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs

import duckdb
import jwt
import pytest

from fake_snyk import CLIENT_ASSERTION_TYPE, FakeSnyk, Fault, make_events
from tests.conftest import ORG_A, KeyPair, oauth_config, run_cli, run_tap
from tests.meltano_project import ROOT, meltano, meltano_env

NOW = datetime.now(timezone.utc).replace(microsecond=0)
CLIENT_ID = "7c1e0a52-service-account"
CLIENT_SECRET = "client-secret-9d8c7b"
EVENTS = make_events(60, start=NOW - timedelta(hours=3), org_id=ORG_A)
#: What a search without `events` returns: Snyk hides api.access events.
VISIBLE = [event for event in EVENTS if event["event"] != "api.access"]


@pytest.fixture
def api(snyk_api: FakeSnyk, key_pair: KeyPair) -> FakeSnyk:
    """The fake API with a client-secret and a private-key service account, and some events."""
    snyk_api.add_oauth_client(CLIENT_ID, secret=CLIENT_SECRET)
    snyk_api.add_oauth_client("jwt-client", public_key=key_pair.public_pem, key_id=key_pair.key_id)
    snyk_api.add_org_events(ORG_A, EVENTS)
    return snyk_api


def secret_config(api: FakeSnyk, **settings: object) -> dict:
    # A bounded `max_retry_seconds`: a fault the tap keeps retrying fails the test, not hangs it.
    defaults = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "max_retry_seconds": 30}
    return oauth_config(api, **{**defaults, **settings})


def key_config(api: FakeSnyk, key_pair: KeyPair, **settings: object) -> dict:
    key = {"private_key": key_pair.private_pem, "private_key_id": key_pair.key_id,
           "max_retry_seconds": 30}  # fmt: skip
    return oauth_config(api, client_id="jwt-client", **{**key, **settings})


def assert_each_event_once(records: list[dict]) -> None:
    assert len(records) == len(VISIBLE)
    assert len({record["event_id"] for record in records}) == len(VISIBLE)
    assert [record["created"][:23] for record in records] == [e["created"][:23] for e in VISIBLE]


def test_short_lived_tokens_are_renewed_before_they_expire_and_every_event_arrives_once(
    api: FakeSnyk,
) -> None:
    api.token_lifetime = 2
    # About 20 pages, each answered after 0.3 s: the run outlives several 2-second tokens. (The
    # fake checks a token after the delay, so a delay under the 0.5 s margin keeps this exact.)
    api.faults.append(Fault(delay=0.3, times=30, path="/audit_logs/"))
    started = time.monotonic()
    # One page after another: the run's length is the pages' (read side by side, it is shorter).
    run = run_tap(secret_config(api, page_size=3, concurrent_requests=1))
    assert run.exit_code == 0, run.error
    assert_each_event_once(run.records("org_audit_logs"))
    assert time.monotonic() - started > 4  # the run needed several tokens …
    assert api.tokens_issued >= 3  # … and asked for them …
    assert api.unauthorized == 0  # … before each one expired
    # Every page was asked for with a bearer access token, never with the client secret.
    for request in api.rest_requests:
        authorization = request.header("Authorization") or ""
        assert authorization.startswith("bearer ")
        assert CLIENT_SECRET not in authorization


def test_the_client_secret_goes_only_in_the_form_of_the_token_request(api: FakeSnyk) -> None:
    run = run_tap(secret_config(api))
    assert run.exit_code == 0, run.error
    [token_request] = api.token_requests
    assert token_request.method == "POST"
    assert token_request.header("Content-Type") == "application/x-www-form-urlencoded"
    form = parse_qs(token_request.body.decode())
    assert form == {
        "grant_type": ["client_credentials"],
        "client_id": [CLIENT_ID],
        "client_secret": [CLIENT_SECRET],
    }
    assert all(CLIENT_SECRET not in request.target for request in api.requests)


def test_a_private_key_jwt_service_account_is_accepted(api: FakeSnyk, key_pair: KeyPair) -> None:
    api.token_lifetime = 2
    api.faults.append(Fault(delay=0.8, times=4, path="/audit_logs/"))
    run = run_tap(key_config(api, key_pair, page_size=10))
    assert run.exit_code == 0, run.error
    assert_each_event_once(run.records("org_audit_logs"))
    assert api.tokens_issued >= 2


def test_each_client_assertion_is_signed_and_claimed_as_snyk_asks(
    api: FakeSnyk, key_pair: KeyPair
) -> None:
    api.token_lifetime = 2
    api.faults.append(Fault(delay=0.8, times=4, path="/audit_logs/"))
    assert run_tap(key_config(api, key_pair, page_size=10)).exit_code == 0
    token_url = f"{api.url}/oauth2/token"
    ids = []
    for request in api.token_requests:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        assert form["grant_type"] == "client_credentials"
        assert form["client_assertion_type"] == CLIENT_ASSERTION_TYPE
        assertion = form["client_assertion"]
        assert jwt.get_unverified_header(assertion) == {
            "alg": "RS256",
            "typ": "JWT",
            "kid": key_pair.key_id,
        }
        claims = jwt.decode(
            assertion, key_pair.public_pem, algorithms=["RS256"], audience=token_url
        )
        assert claims["iss"] == claims["sub"] == "jwt-client"
        assert 0 < claims["exp"] - time.time() <= 300
        ids.append(claims["jti"])
    assert len(ids) >= 2
    assert len(set(ids)) == len(ids)


def test_a_revoked_token_is_renewed_once_and_the_run_goes_on(api: FakeSnyk) -> None:
    # The second page finds every access token revoked.
    api.faults.append(Fault(revoke_tokens=True, path="cursor="))
    run = run_tap(secret_config(api, page_size=10))
    assert run.exit_code == 0, run.error
    assert_each_event_once(run.records("org_audit_logs"))
    # Requests in flight side by side may all meet the revoked token; one renewal serves them.
    assert api.unauthorized >= 1
    assert api.tokens_issued == 2


def test_a_new_token_refused_again_ends_the_run_with_the_401_message(api: FakeSnyk) -> None:
    api.faults.append(Fault(revoke_tokens=True, times=2, path="cursor="))
    # One request at a time: the second revocation then answers the renewed request itself.
    run = run_tap(secret_config(api, page_size=10, concurrent_requests=1))
    assert run.exit_code == 1
    assert run.error is not None
    assert f"Snyk rejected the OAuth access token of `client_id` {CLIENT_ID} (401)" in run.error
    assert f"organization {ORG_A}" in run.error
    assert api.unauthorized == 2
    assert api.tokens_issued == 2  # renewed once, not in a loop
    assert len(run.records("org_audit_logs")) == 10  # the first page was delivered


def test_a_wrong_secret_is_one_line_naming_the_setting_and_no_rest_request(
    api: FakeSnyk, tmp_path: Path
) -> None:
    result = run_cli(tmp_path, {**secret_config(api), "client_secret": "not-the-secret"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "`client_secret`" in line]
    assert len(lines) == 1, result.stderr
    assert "Snyk refused the OAuth client (401 invalid_client)" in lines[0]
    assert "region of `api_url`" in lines[0]
    assert "not-the-secret" not in result.stderr + result.stdout
    assert api.rest_requests == []
    assert len(api.token_requests) == 1  # a refusal is not retried
    assert '"type":"RECORD"' not in result.stdout.replace(" ", "")


def test_a_key_id_not_on_the_service_account_names_private_key_id(
    api: FakeSnyk, key_pair: KeyPair
) -> None:
    run = run_tap(key_config(api, key_pair, private_key_id="key-2"))
    assert run.exit_code == 1
    assert run.error is not None
    assert "`client_id`, `private_key` and `private_key_id`" in run.error
    assert "`kid`" in run.error
    assert api.rest_requests == []


def test_an_unknown_client_id_is_refused_before_any_rest_request(api: FakeSnyk) -> None:
    run = run_tap(secret_config(api, client_id="nobody"))
    assert run.exit_code == 1
    assert run.error is not None
    assert "invalid_client" in run.error
    assert api.rest_requests == []


def test_the_token_endpoint_answering_503_is_retried(api: FakeSnyk) -> None:
    api.faults.append(Fault(status=503, times=2, path="/oauth2/token"))
    run = run_tap(secret_config(api))
    assert run.exit_code == 0, run.error
    assert_each_event_once(run.records("org_audit_logs"))
    assert len(api.token_requests) == 3


@pytest.mark.parametrize(
    "fault",
    [Fault(truncated_body=True, path="/oauth2/token"), Fault(reset=True, path="/oauth2/token")],
    ids=["cut-body", "reset"],
)
def test_a_cut_or_lost_token_answer_is_retried(api: FakeSnyk, fault: Fault) -> None:
    api.faults.append(fault)
    run = run_tap(secret_config(api))
    assert run.exit_code == 0, run.error
    assert_each_event_once(run.records("org_audit_logs"))
    assert len(api.token_requests) == 2


def test_the_token_endpoint_failing_for_good_gives_up_in_one_line(
    api: FakeSnyk, tmp_path: Path
) -> None:
    api.faults.append(Fault(status=503, times=1000, path="/oauth2/token"))
    result = run_cli(tmp_path, secret_config(api, max_retry_seconds=2))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if "gave up" in line]
    assert "Snyk kept failing for the OAuth token endpoint (Snyk answered 503" in line
    assert "`max_retry_seconds`" in line
    assert api.rest_requests == []
    assert len(api.token_requests) > 1


def test_the_connection_check_says_how_it_authenticated(
    api: FakeSnyk, key_pair: KeyPair, tmp_path: Path
) -> None:
    result = run_cli(tmp_path, secret_config(api), "--test")
    assert result.returncode == 0, result.stderr
    assert (
        "OK   the OAuth service account: OAuth 2.0 client credentials with a client secret "
        f"(`client_id` {CLIENT_ID}): access token obtained, valid for 3599 s; "
        f"valid at {api.url}, for Fake User"
    ) in result.stderr
    result = run_cli(tmp_path, key_config(api, key_pair), "--test")
    assert result.returncode == 0, result.stderr
    assert "with a private key JWT (`client_id` jwt-client, `private_key_id` key-1)" in (
        result.stderr
    )
    assert "access token obtained" in result.stderr


def test_the_connection_check_with_a_wrong_secret_fails_at_once(
    api: FakeSnyk, tmp_path: Path
) -> None:
    result = run_cli(tmp_path, {**secret_config(api), "client_secret": "wrong"}, "--test")
    assert result.returncode == 1
    assert "FAIL the OAuth service account: Snyk refused the OAuth client" in result.stderr
    assert api.rest_requests == []


def test_an_api_token_still_works_with_either_scheme(api: FakeSnyk) -> None:
    for scheme in ("token", "bearer"):
        api.reset_requests()
        config = {**oauth_config(api), "api_token": "test-token", "auth_scheme": scheme}
        run = run_tap(config)
        assert run.exit_code == 0, run.error
        assert api.token_requests == []
        assert {r.header("Authorization") for r in api.requests} == {f"{scheme} test-token"}


def test_meltano_runs_with_a_private_key_written_as_in_secrets_example(
    api: FakeSnyk, key_pair: KeyPair, tmp_path: Path
) -> None:
    # The PEM as a multi-line single-quoted value, as .secrets.example shows it, loaded the way
    # scripts/sync loads .secrets/tap-snyk.env; then real Meltano into a real DuckDB file.
    api.token_lifetime = 2
    api.faults.append(Fault(delay=0.8, times=3, path="/audit_logs/"))
    secrets = tmp_path / "tap-snyk.env"
    secrets.write_text(
        "TAP_SNYK_CLIENT_ID=jwt-client\n"
        f"TAP_SNYK_PRIVATE_KEY_ID={key_pair.key_id}\n"
        f"TAP_SNYK_PRIVATE_KEY='{key_pair.private_pem}'\n"
        f"TAP_SNYK_API_URL={api.url}\n"
        f"TAP_SNYK_ORG_IDS='{json.dumps([ORG_A])}'\n"
        "TAP_SNYK_PAGE_SIZE=10\n"
    )
    database = tmp_path / "tap_snyk.duckdb"
    env = meltano_env(tmp_path, TARGET_DUCKDB_PATH=str(database))
    result = subprocess.run(
        ["bash", "-c", 'set -a; . "$1"; set +a; exec "$2" run tap-snyk target-duckdb', "sync",
         str(secrets), meltano()],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-5000:]
    with duckdb.connect(str(database), read_only=True) as db:
        [(count, distinct)] = db.execute(
            "select count(*), count(distinct event_id) from snyk.org_audit_logs"
        ).fetchall()
    assert count == distinct == len(VISIBLE)
    assert api.tokens_issued >= 2
    assert "PRIVATE KEY" not in result.stdout + result.stderr


def test_a_client_refused_mid_run_ends_it_in_one_line_after_what_was_read(
    api: FakeSnyk,
) -> None:
    api.token_lifetime = 2
    api.faults.append(Fault(delay=0.3, times=30, path="/audit_logs/"))
    # A second into the run the service account's secret is rotated away: the next renewal fails.
    refuse = Fault(status=401, times=1000, path="/oauth2/token")
    timer = threading.Timer(1.0, api.faults.append, args=(refuse,))
    timer.start()
    try:
        run = run_tap(secret_config(api, page_size=3))
    finally:
        timer.cancel()
    assert run.exit_code == 1
    assert run.error is not None
    assert "Snyk refused the OAuth client (401) at" in run.error
    assert "`client_secret`" in run.error
    records = run.records("org_audit_logs")
    assert 0 < len(records) < len(VISIBLE)
    assert run.final_state["bookmarks"]["org_audit_logs"]  # the next run resumes after them


@pytest.mark.parametrize(
    ("expires_in", "lifetime"), [(2, 2.0), ("2", 2.0), (None, 3600.0), ("soon", 3600.0)]
)
def test_the_token_lifetime_is_read_as_given_or_assumed_an_hour(
    api: FakeSnyk, expires_in: object, lifetime: float
) -> None:
    from tap_snyk.tap import TapSnyk

    tap = TapSnyk(config=secret_config(api), parse_env_config=False)
    api.token_lifetime = expires_in  # the fake sends it as given
    assert tap.run_context.api.credentials.obtain().endswith(f"valid for {lifetime:g} s")


def test_workers_in_flight_share_one_token_and_one_renewal_at_a_time(snyk_api: FakeSnyk) -> None:
    snyk_api.add_oauth_client(CLIENT_ID, secret=CLIENT_SECRET)
    snyk_api.token_lifetime = 2
    orgs = [f"{ORG_A[:-2]}{n:02d}" for n in range(6)]
    events = {org: make_events(40, start=NOW - timedelta(hours=3), org_id=org, seed=n)
              for n, org in enumerate(orgs)}  # fmt: skip
    for org, items in events.items():
        snyk_api.add_org_events(org, items)
    # Every answer takes 0.3 s (under the 0.5 s renewal margin), so that pages of the six orgs
    # are in flight side by side across several token lifetimes.
    snyk_api.faults.append(Fault(delay=0.3, times=1000, path="/audit_logs/"))
    started = time.monotonic()
    run = run_tap(secret_config(snyk_api, org_ids=orgs, page_size=4, concurrent_requests=8))
    elapsed = time.monotonic() - started
    assert run.exit_code == 0, run.error
    records = run.records("org_audit_logs")
    expected = sum(
        len([e for e in items if e["event"] != "api.access"]) for items in events.values()
    )
    assert len(records) == len({r["event_id"] for r in records}) == expected
    assert snyk_api.unauthorized == 0
    assert snyk_api.peak_in_flight >= 4  # the workers did read side by side
    # One renewal per lifetime at most (every 1.5 s), however many workers needed a token then.
    assert 2 <= snyk_api.tokens_issued <= elapsed / 1.5 + 2


def test_workers_that_meet_a_revoked_token_renew_it_once_between_them(
    snyk_api: FakeSnyk,
) -> None:
    snyk_api.add_oauth_client(CLIENT_ID, secret=CLIENT_SECRET)
    orgs = [f"{ORG_A[:-2]}{n:02d}" for n in range(6)]
    visible = 0
    for org in orgs:
        events = make_events(40, start=NOW - timedelta(hours=3), org_id=org)
        snyk_api.add_org_events(org, events)
        visible += len([event for event in events if event["event"] != "api.access"])
    snyk_api.faults.append(Fault(delay=0.2, times=1000, path="/audit_logs/"))
    # A later page finds every token revoked while other workers' requests are in flight.
    snyk_api.faults.insert(0, Fault(revoke_tokens=True, path="cursor="))
    run = run_tap(secret_config(snyk_api, org_ids=orgs, page_size=4, concurrent_requests=8))
    assert run.exit_code == 0, run.error
    records = run.records("org_audit_logs")
    assert len(records) == len({r["event_id"] for r in records}) == visible
    assert snyk_api.unauthorized >= 1
    assert snyk_api.tokens_issued == 2


def test_the_connection_check_names_the_service_account_when_its_tokens_are_refused(
    api: FakeSnyk, tmp_path: Path
) -> None:
    api.faults.append(Fault(revoke_tokens=True, times=2, path="/rest/self"))
    result = run_cli(tmp_path, secret_config(api), "--test")
    assert result.returncode == 1
    assert (
        "FAIL the OAuth service account: Snyk rejected the OAuth access token of `client_id` "
        f"{CLIENT_ID} (401) for `/rest/self`"
    ) in result.stderr
    assert api.tokens_issued == 2  # the first, and one renewal after the first 401
