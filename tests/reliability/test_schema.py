"""Every operation of the live /api/v1 driven by schemathesis from its own OpenAPI document: no request it
generates gets a 5xx, and every response (its status code and body) is one the document declares.
"""

import json

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance
from schemathesis.core.failures import FailureGroup

pytestmark = [pytest.mark.redis, pytest.mark.worker, pytest.mark.live_server_http]

EXAMPLES_PER_OPERATION = 5
SERVER_SYNC_WAIT_S = 5  # a job route answers 202 after this: well inside the client's timeout, so nothing is shrunk
CLIENT_TIMEOUT_S = 60
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def describe(case, response) -> str:
    body = case.body if case.body is not None and type(case.body).__name__ != "NotSet" else None
    request = (
        f"{case.method} {case.formatted_path} query={case.query or {}} "
        f"body={json.dumps(body, default=str)[:300] if body is not None else '-'}"
    )
    return f"{case.operation.label}: {request} -> {response.status_code} {response.text[:300]}"


def run_operation(operation, session, base_url, failures, statuses, path_parameters=None):
    """Up to EXAMPLES_PER_OPERATION cases of one operation; each failing check is collected, not raised."""

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(path_parameters=path_parameters or None))
    def exercise(case):
        response = case.call(base_url=base_url, session=session, timeout=CLIENT_TIMEOUT_S)
        statuses.append(response.status_code)
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            for exc in group.exceptions:
                failures.append(f"{describe(case, response)}\n    {type(exc).__name__}: {exc.title}")
        except AssertionError as exc:  # one failing check is raised alone
            failures.append(
                f"{describe(case, response)}\n    {type(exc).__name__}: {getattr(exc, 'title', str(exc)[:200])}"
            )

    exercise()


@pytest.fixture
def quick_sync_answers(settings):
    """The live server's job routes wait only SERVER_SYNC_WAIT_S before their 202 (set before imalink_server starts
    it): a generated request that starts a long job (a drill, a migration) then never runs into the client's timeout,
    which Hypothesis would take for a failure and spend minutes shrinking."""
    settings.IMALINK_SYNC_WAIT = SERVER_SYNC_WAIT_S


def test_every_operation_answers_within_its_schema(
    quick_sync_answers, imalink_server, api_token, make_storage, allowed_root
):
    storage = make_storage("Schema target")  # something real for the generated requests to land on
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {api_token}"
    session.trust_env = False  # loopback only, never through a proxy
    base_url = imalink_server.url  # the document's paths already start with /api/v1
    # Fetched here with a generous timeout (the first schema build is slow on a loaded machine), then handed over.
    document = requests.get(
        f"{base_url}/api/v1/openapi.json", headers={"Authorization": f"Bearer {api_token}"}, timeout=120
    ).json()
    schema = schemathesis.openapi.from_dict(document)
    known = {"uuid": storage["storage_uuid"], "storage_uuid": storage["storage_uuid"]}

    failures, statuses, operations = [], [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        run_operation(operation, session, base_url, failures, statuses)
        names = {p.name for p in operation.path_parameters}
        if names and names <= known.keys():
            run_operation(operation, session, base_url, failures, statuses, {name: known[name] for name in names})

    assert operations > 30, f"the schema lists only {operations} operations"
    assert len(statuses) >= operations * 2, f"only {len(statuses)} requests for {operations} operations"
    print(f"{operations} operations, {len(statuses)} requests, statuses {sorted(set(statuses))}")
    # One line per distinct problem (operation and first line of the failure), with the first request that showed it.
    distinct = {}
    for failure in failures:
        key = (failure.split(":", 1)[0], failure.rsplit("\n", 1)[-1])
        distinct.setdefault(key, failure)
    assert not distinct, f"{len(distinct)} schema problems:\n" + "\n".join(distinct.values())
