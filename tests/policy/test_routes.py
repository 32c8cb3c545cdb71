"""The update-policy API is described by the OpenAPI document of the server that mounts it."""

from __future__ import annotations

from openapi_spec_validator import validate

from vigil.policy.routes import ROUTES as POLICY_ROUTES
from vigil.serving import docs_ui
from vigil.serving.openapi import document
from vigil.serving.routes import ROUTES


def test_the_policy_routes_make_a_valid_openapi_document_with_the_servers() -> None:
    doc = document([*ROUTES, *POLICY_ROUTES])
    validate(doc)
    documented = {(m.upper(), path) for path, ops in doc["paths"].items() for m in ops}
    assert {(r.method, r.template) for r in POLICY_ROUTES} <= documented
    assert all(r.template in docs_ui.page([*ROUTES, *POLICY_ROUTES]) for r in POLICY_ROUTES)
