"""Fuzz every documented operation of the live server: nothing ever answers 5xx.

schemathesis reads the server's own ``/openapi.json`` and generates valid (positive) and
invalid (negative) requests for each operation, bounded and derandomized so the run is
short and the same every time. Hypothesis drives each operation's strategy directly
(schemathesis' pytest parametrization does not support the installed pytest).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from tests.serving.conftest import ServerThread
from tests.serving.test_auth import register_churn

from vigil.experiments.config import parse_endpoint
from vigil.experiments.store import EndpointStore
from vigil.serving.config import ServingSettings
from vigil.serving.registry_provider import RegistryProvider

EXAMPLES = 8
SERVED = {"name": "clf", "alias": "production", "version": "1"}


@pytest.fixture(scope="module")
def live_schema(server: ServerThread) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "served"),
    [
        (GenerationMode.POSITIVE, False),
        (GenerationMode.NEGATIVE, False),
        # Path parameters naming what is served, so bodies reach validation and the model.
        (GenerationMode.POSITIVE, True),
    ],
)
def test_no_operation_answers_5xx(
    live_schema: schemathesis.BaseSchema, mode: GenerationMode, served: bool
):
    operations = [result.ok() for result in live_schema.get_all_operations()]
    statuses: dict[str, set[int]] = {}
    if mode == GenerationMode.NEGATIVE:
        # Nothing to make invalid in an operation without parameters or body.
        operations = [
            op
            for op in operations
            if list(op.iter_parameters()) or op.get_request_payload_content_types()
        ]
    for operation in operations:
        seen = statuses.setdefault(operation.label, set())

        names = {p.name for p in operation.iter_parameters() if p.location == "path"}
        fixed = {k: v for k, v in SERVED.items() if k in names} if served else None

        @given(case=operation.as_strategy(generation_mode=mode, path_parameters=fixed))
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            response = case.call(timeout=30)
            case.validate_response(response, checks=[not_a_server_error])
            seen.add(response.status_code)  # noqa: B023
            assert response.status_code < 500, (case.as_curl_command(), response.text)

        run()
    assert len(statuses) == len(operations) and all(statuses.values())
    if served:  # the model resolves, so bodies reach signature validation (not 404)
        assert statuses["POST /v1/models/{name}/predict"] <= {200, 400, 422}
        assert statuses["GET /v1/models/{name}"] == {200}


# -- every operation of a registry-backed server -----------------------------------------

REGISTRY_EXAMPLES = 6
REGISTERED = {"name": "churn", "alias": "production", "version": "1", "endpoint": "ep"}


@pytest.fixture(scope="module")
def registry_schema(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[schemathesis.BaseSchema]:
    """A server as ``vigil serve`` builds it (registry, capture, an experiment endpoint), so
    the admin, feedback and endpoint operations reach their handlers too."""
    vigil = register_churn(tmp_path_factory.mktemp("fuzz-registry"))
    endpoint = {
        "name": "ep",
        "variants": [{"name": "a", "model": "models:/churn@production"}],
        "policy": {"kind": "fixed", "variant": "a"},
    }
    EndpointStore(vigil).put(parse_endpoint(endpoint), actor="test")
    provider = RegistryProvider(vigil, poll_interval=0, settings=ServingSettings())
    with ServerThread(vigil.serving_app(provider)) as server:
        yield schemathesis.openapi.from_url(f"{server.url}/openapi.json")


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_operation_of_a_registry_server_answers_5xx(
    registry_schema: schemathesis.BaseSchema, mode: GenerationMode
) -> None:
    operations = [result.ok() for result in registry_schema.get_all_operations()]
    # Those that change state last: deleting the endpoint or the alias first would turn
    # every later operation on them into a 404.
    operations.sort(
        key=lambda op: (
            op.method.upper() in ("DELETE", "POST") and not op.get_request_payload_content_types()
        )
    )
    if mode == GenerationMode.NEGATIVE:  # the path is fixed: only a body can be made invalid
        operations = [op for op in operations if op.get_request_payload_content_types()]
    statuses: dict[str, set[int]] = {}
    for operation in operations:
        seen = statuses.setdefault(operation.label, set())
        names = {p.name for p in operation.iter_parameters() if p.location == "path"}
        fixed = {k: v for k, v in REGISTERED.items() if k in names}
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)

        @given(case=strategy)
        @settings(
            max_examples=REGISTRY_EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            response = case.call(timeout=30)
            seen.add(response.status_code)  # noqa: B023
            assert response.status_code < 500, (case.as_curl_command(), response.text[:500])

        run()
    assert {label for label, codes in statuses.items() if codes} >= {
        "POST /v1/feedback",
        "PUT /v1/admin/endpoints/{endpoint}",
        "POST /v1/endpoints/{endpoint}/predict",
    }
    if mode == GenerationMode.POSITIVE:  # valid requests reach the handlers: not all 404
        assert statuses["POST /v1/feedback"] & {200, 422}
        assert statuses["GET /v1/admin/endpoints/{endpoint}"] == {200}
